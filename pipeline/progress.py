"""What the person running a build sees: live progress on a terminal, one line per event otherwise.

Progress and the summary go to stderr; stdout stays free for what scripts
read (the summary table on a terminal is for people, so it goes there too).
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from .build import Job, Quiet, StageResult

if TYPE_CHECKING:         # rich is loaded only for a terminal: a quiet build with nothing to do stays quick
    from rich.console import Console
    from rich.table import Table


def human_size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def describe(result: StageResult) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in sorted(result.report.items()) if isinstance(v, (int, float)))
    return extra


class Lines(Quiet):
    """One line per event, for logs and CI (not a terminal)."""

    def __init__(self, stream=None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.verbose = verbose

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, jobs):
        if self.verbose:
            for job in jobs:
                plan = ", ".join(f"{n} ({r.status if r.status != 'pending' else 'to build'})"
                                 for n, r in job.stages.items())
                self.say(f"{job.source_label}: plan: {plan or 'nothing'}")

    def waiting(self, job):
        self.say(f"{job.source_label}: waiting for another build of this article to finish")

    def stage_started(self, job, name):
        if self.verbose:
            # Handed to a pool, a stage may wait there behind the one its worker is running.
            worker = job.stages[name].worker
            self.say(f"{job.source_label}: {name}: " + (f"handed to the {worker} workers" if worker else "started"))

    def stage_finished(self, job, result):
        if result.status == "failed":
            self.say(f"{job.source_label}: {result.name}: FAILED")
        else:
            extra = describe(result)
            self.say(f"{job.source_label}: {result.name}: built in {result.seconds:.1f} s" + (f" ({extra})" if extra else ""))

    def article_finished(self, job):
        if job.ok:
            cached = [n for n, r in job.stages.items() if r.status == "cached"]
            if cached:
                self.say(f"{job.source_label}: up to date: {', '.join(cached)}")
            self.say(f"{job.source_label}: done → {job.folder}{'/' if not str(job.folder).endswith('/') else ''}")
        else:
            self.say(f"{job.source_label}: not published; the previous outputs are unchanged")


class Live_(Quiet):
    """A live table of every article's stages, for a terminal."""

    def __init__(self, console: Console):
        self.console = console
        self.live = None
        self.jobs = []
        self.started: dict[tuple[int, str], float] = {}

    def table(self) -> Table:
        from rich.table import Table
        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("article")
        table.add_column("stage")
        table.add_column("status")
        table.add_column("time", justify="right")
        for job in self.jobs:
            for name, result in job.stages.items():
                seconds = result.seconds
                if result.status == "running":
                    seconds = time.monotonic() - self.started[(id(job), name)]
                table.add_row(job.slug, name, result.status, f"{seconds:.1f} s" if seconds else "")
        return table

    def start(self, jobs):
        from rich.live import Live
        self.jobs = [j for j in jobs if j.stages]
        self.live = Live(self.table(), console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def waiting(self, job):
        self.console.print(f"{job.source_label}: waiting for another build of this article to finish")

    def stage_started(self, job, name):
        job.stages[name].status = "running"
        self.started[(id(job), name)] = time.monotonic()
        self.live.update(self.table())

    def stage_finished(self, job, result):
        self.live.update(self.table())

    def stop(self):
        if self.live:
            self.live.stop()


def summary(jobs: list[Job], console: Console | None = None) -> None:
    """The table at the end: every output, its size, time, and whether it was built or reused."""
    rows = []
    for job in jobs:
        for name, result in job.stages.items():
            if result.status in ("built", "cached"):
                for path in result.paths:
                    size = path.stat().st_size if path.is_file() else 0
                    rows.append((job.slug, name, path.name, human_size(size),
                                 f"{result.seconds:.1f} s" if result.status == "built" else "",
                                 result.status))
            elif result.status in ("failed", "skipped"):
                rows.append((job.slug, name, "", "", "", result.status))
    if console is not None:
        from rich.table import Table
        table = Table(title="Build summary", header_style="bold")
        for column in ("article", "format", "output", "size", "time", "result"):
            table.add_column(column, justify="right" if column in ("size", "time") else "left")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    else:
        for row in rows:
            print("  ".join(x for x in row if x), file=sys.stderr)
