"""Benchmark: `publish build` against the chain a user would script by hand, and how its cost grows.

Run on demand (not part of the test suite), whole or in parts:

    python3 bench/run.py [--only a,c,d,e,f,g,h] [--runs 5] [--batch 100] [--small 1000]

Measured with the median of several runs (the machine's speed drifts, so
builds that are compared are timed alternately):
  (a)  like for like: a cold build of the peer's outputs (PDF, EPUB, HTML, MP3)
       against the hand-scripted peer (pandoc to HTML and EPUB, WeasyPrint on
       pandoc's HTML, espeak-ng on pandoc's plain text, ffmpeg to MP3);
  (a′) the full default build (the M4B too), with where its time goes;
  (c)  a rebuild with no change, against (a′);
  (d)  a one-sentence edit against (a′) in every run, and utterances synthesized;
  (e)  a batch of N variants of the article, against N × (a′);
  (f)  peak memory (PSS) of the whole process tree in (a′) and (e);
  (g)  growth: the article repeated 1, 4 and 16 times; time per 1,000 words and peak memory;
  (h)  a batch of many small generated articles: CPU use over time, cache size, peak memory.
Each run prints its table and appends it to bench/results.json with the machine's core count.

    python3 bench/run.py --voices

measures each speech engine instead (bench/voices.json), on the short
article of the voice tests (and the system engine on B12 too): CPU seconds
(user and system, of every process) per minute of speech, publish's
synthesis against the engine's own command-line program on the same
sentences, in turns, a cold narration and a one-sentence edit.

    python3 bench/run.py --voices --instructions

also counts, for the system engine, the instructions executed (valgrind's
callgrind, every process) by publish's synthesis with one engine and by
espeak-ng's own program on the same sentences: a count that, unlike CPU
seconds, does not move with the machine's other work or its clock.
"""
from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
import articles  # noqa: E402  (the benchmark's own article generators, beside this file)

ROOT = Path(__file__).resolve().parent.parent
SOURCE = articles.SOURCE
SEED = ROOT / "tests" / "fixtures" / "b12-seed.txt"
RESULTS = ROOT / "bench" / "results.json"
ENV = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600", "PYTHONPATH": str(ROOT)}
LIKE_FOR_LIKE = "pdf,epub,html,mp3"         # what the peer chain makes
GROWTH = (1, 4, 16)
TICKS = os.sysconf("SC_CLK_TCK")
TARGETS = {"a_over_b": 0.8, "c_over_full": 0.05, "d_over_full": 0.25, "e_over_n_full": 0.40, "f_peak_mib": 300,
           "g_per_kword_ratio": 1.2, "g_peak_mib": 400, "h_peak_mib": 300}


# -- measuring one command ------------------------------------------------------------

def tree_memory(pid: int) -> tuple[float, dict[str, float]]:
    """Memory of a process and all its descendants: the sum of their proportional set sizes (PSS), in MiB,
    and that sum by process name (the build's workers and helpers name themselves: pub-documents,
    pub-narration, pub-speech; the build's own process is `main`).

    Build workers are forked and share most of their pages with the parent;
    summing resident sizes would count those pages once per process. PSS
    divides each shared page among the processes that share it.

    A helper program (ffmpeg) is started with vfork: until it has replaced
    itself with the program, the child runs in its parent's memory, and its
    PSS is the whole worker's a second time. Such a child still has its
    parent's name, so a worker's child with the worker's name, or one that
    changes name while it is being read, is left out for that sample.
    """
    total, parts, stack = 0, {}, [(pid, None)]
    while stack:
        p, parent_name = stack.pop()
        try:
            name = _name(p)
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
            if _name(p) == name and name != parent_name:
                total += pss
                part = "main" if p == pid else name
                parts[part] = parts.get(part, 0) + pss / 2**20
            stack.extend((child, None if p == pid else name) for child in _children(p))
        except (OSError, StopIteration):
            pass
    return total / 2**20, parts


def tree_cpu_seconds(pid: int) -> float:
    """CPU time used so far by a process tree: each live process's own, and that of the children it has
    already waited for (which the kernel adds to their parent's account)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])        # utime, stime, cutime, cstime
            stack.extend(_children(p))
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def _children(pid: int) -> list[int]:
    """Every child of a process: /proc lists them by the thread that started them (the narration's encoders
    start ffmpeg from threads of their own), so every thread is asked."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:                      # the thread has ended meanwhile
            pass
    return found


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every process's (from /proc/stat): what the
    other users of a shared machine take shows as busy time that is not ours."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]                                 # idle, iowait
    return (sum(fields) - idle) / TICKS, sum(fields) / TICKS


def folder_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:                  # removed meanwhile (the cache keeping within its limit)
                pass
    return total


class Point(NamedTuple):
    """One moment of a watched run (see `timed`)."""
    seconds: float                       # into the run
    cpu: float                           # CPU seconds of the process tree so far
    cache_bytes: int
    mib: float                           # memory of the process tree (PSS)
    machine: tuple[float, float]         # the machine's busy and total CPU seconds so far (machine_cpu)
    mib_by_process: dict[str, float]     # see tree_memory


@dataclass
class Run:
    wall: float                          # seconds
    cpu: float                           # seconds of CPU, the whole process tree
    machine_busy: float = 0.0            # the fraction of the machine's cores busy meanwhile, with anyone's work
    peak_mib: float = 0.0                # only when sampled
    peak_parts: dict = field(default_factory=dict)   # the peak by process name (see tree_memory)
    peak_at: float = 0.0                 # seconds into the run
    timeline: list[Point] = field(default_factory=list)     # when watched
    report: dict = field(default_factory=dict)


def timed(cmd: list[str] | str, cwd: Path = ROOT, shell: bool = False, sample: float = 0.0,
          watch: float = 0.0, cache: Path | None = None, report: Path | None = None) -> Run:
    """Run a command; its wall and CPU time, and if asked its peak memory (read every *sample* seconds) and a
    timeline of its CPU use and cache size (every *watch* seconds).

    Reading PSS walks every process's page tables, which takes CPU from the
    build being measured: runs whose time is compared are not sampled.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    machine_before = machine_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = Run(0.0, 0.0)
    done = threading.Event()

    def sampler():
        while not done.is_set():
            total, parts = tree_memory(proc.pid)
            if total > run.peak_mib:
                run.peak_mib, run.peak_parts, run.peak_at = total, parts, time.perf_counter() - started
            done.wait(sample)

    def watcher():
        while not done.is_set():
            memory, parts = tree_memory(proc.pid)
            run.timeline.append(Point(time.perf_counter() - started, tree_cpu_seconds(proc.pid),
                                      folder_bytes(cache) if cache and cache.exists() else 0, memory, machine_cpu(),
                                      parts))
            done.wait(watch)
    threads = [threading.Thread(target=t) for t, wanted in ((sampler, sample), (watcher, watch)) if wanted]
    for thread in threads:
        thread.start()
    _, err = proc.communicate()
    done.set()
    for thread in threads:
        thread.join()
    run.wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    run.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    machine_after = machine_cpu()
    run.machine_busy = (machine_after[0] - machine_before[0]) / max(1e-9, machine_after[1] - machine_before[1])
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {cmd}\n{err.decode()[-2000:]}")
    if report:
        run.report = json.loads(report.read_text())
    return run


def publish(sources: list[Path], out: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "build", *map(str, sources), "--out", str(out), "--cache", str(cache),
            "--quiet", *extra]


def peer_chain(folder: Path) -> Run:
    """What a user would script by hand, one tool after the other."""
    shutil.copy(SEED, folder / "article.md")
    pandoc = shutil.which("pandoc") or _pypandoc_binary()
    script = (
        f'"{pandoc}" article.md -s --metadata title="Is B12 Good for Lower Back Pain?" -o article.html && '
        f'"{pandoc}" article.md --metadata title="Is B12 Good for Lower Back Pain?" -o article.epub && '
        f'"{sys.executable}" -m weasyprint article.html article.pdf && '
        f'"{pandoc}" article.md -t plain -o article.txt && '
        'espeak-ng -f article.txt -w article.wav && '
        'ffmpeg -loglevel error -y -i article.wav -ac 1 -b:a 64k article.mp3'
    )
    return timed(script, cwd=folder, shell=True)


def _pypandoc_binary() -> str:
    try:
        import pypandoc
        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        raise SystemExit("pandoc is needed for the peer chain: pip install pypandoc-binary (or apt-get install pandoc)")


def stage_seconds(run: Run) -> dict[str, float]:
    return {s["format"]: s["seconds"] for a in run.report["articles"] for s in a["stages"]}


def median(values) -> float:
    return statistics.median(list(values))


# -- the measurements ------------------------------------------------------------------

class Bench:
    def __init__(self, work: Path, runs: int, batch: int, small: int):
        self.work, self.runs, self.batch, self.small = work, runs, batch, small
        self.results: dict = {}
        self._count = 0

    def folder(self, name: str) -> Path:
        self._count += 1
        path = self.work / f"{name}-{self._count}"
        path.mkdir()
        return path

    def cold(self, formats: str | None = None, sample: float = 0.0) -> tuple[Run, Path]:
        """A cold build of B12 (empty output and cache folders), with its report; and its folder."""
        folder = self.folder("cold")
        extra = ("--format", formats) if formats else ()
        run = timed(publish([SOURCE], folder / "out", folder / "cache", *extra, "--report", str(folder / "r.json")),
                    sample=sample, report=folder / "r.json")
        return run, folder

    def full_build(self) -> float:
        """(a′), measured here if part (a) has not been run: the base of (c), (d) and (e)."""
        if "a_full_s" not in self.results:
            self.cold()                                    # warm the file system cache and the byte code
            self.results["a_full_s"] = round(median(self.cold()[0].wall for _ in range(self.runs)), 3)
        return self.results["a_full_s"]

    def part_a(self) -> None:
        r = self.results
        self.cold(LIKE_FOR_LIKE)                           # warm the file system cache and the byte code
        peer_chain(self.folder("peer"))
        like, full, peer = [], [], []
        for _ in range(self.runs):                         # alternately: the machine's speed drifts over minutes
            like.append(self.cold(LIKE_FOR_LIKE)[0])
            full.append(self.cold()[0])
            peer.append(peer_chain(self.folder("peer")))
        a, a_full, b = (median(run.wall for run in runs) for runs in (like, full, peer))
        r.update({"a_like_for_like_s": round(a, 3), "b_peer_chain_s": round(b, 3), "a_over_b": round(a / b, 3),
                  "a_over_b_runs": [round(x.wall / y.wall, 3) for x, y in zip(like, peer)],
                  "a_full_s": round(a_full, 3),
                  "a_machine_busy": round(median(run.machine_busy for run in [*like, *full, *peer]), 3)})
        # where the full build's time goes: CPU of the whole tree, and each stage's own time (stages overlap)
        stages = {name: round(median(stage_seconds(run)[name] for run in full), 2) for name in stage_seconds(full[0])}
        r["a_full_where"] = {
            "cpu_s": round(median(run.cpu for run in full), 2),
            "cpu_like_for_like_s": round(median(run.cpu for run in like), 2),
            "cpu_peer_s": round(median(run.cpu for run in peer), 2),
            "cores_busy": round(median(run.cpu / run.wall for run in full), 2),
            "stage_s": stages,
            "audio_stage_like_for_like_s": round(median(stage_seconds(run)["audio"] for run in like), 2),
        }

    def part_c(self) -> None:
        _, folder = self.cold()
        build = publish([SOURCE], folder / "out", folder / "cache")
        c = median(timed(build).wall for _ in range(self.runs))
        self.results.update({"c_no_change_s": round(c, 3), "c_over_full": round(c / self.full_build(), 3)})

    def part_d(self) -> None:
        full = self.full_build()
        times, synthesized = [], []
        for n in range(self.runs):
            folder = self.folder("edit")
            source = folder / SOURCE.name
            shutil.copy(SOURCE, source)
            build = publish([source], folder / "out", folder / "cache", "--report", str(folder / "r.json"))
            timed(build)
            source.write_text(SOURCE.read_text().replace(
                "Another accessible source of dietary B12.", f"Another accessible source of dietary B12, edit {n}."))
            run = timed(build, report=folder / "r.json")
            times.append(run.wall)
            audio = [s for s in run.report["articles"][0]["stages"] if s["format"] == "audio"]
            synthesized.append(audio[0].get("synthesized") if audio else None)
        self.results.update({"d_one_sentence_s": round(median(times), 3), "d_over_full": round(median(times) / full, 3),
                             "d_over_full_runs": [round(t / full, 3) for t in times],
                             "d_utterances_synthesized": synthesized})

    def part_e(self) -> None:
        full = self.full_build()
        sources = [articles.variant(n, self.folder("batch") / f"variant-{n:03d}.yaml") for n in range(self.batch)]
        folder = self.folder("batch-out")
        run = timed(publish(sources, folder / "out", folder / "cache"), sample=0.5)
        self.results.update({"batch": self.batch, "e_batch_s": round(run.wall, 3),
                             "e_over_n_full": round(run.wall / (self.batch * full), 3),
                             "f_peak_batch_mib": round(run.peak_mib, 1)})
        self._peak()

    def part_f(self) -> None:
        run, _ = self.cold(sample=0.02)
        self.results["f_peak_cold_mib"] = round(run.peak_mib, 1)
        self._peak()

    def _peak(self) -> None:
        peaks = [v for k, v in self.results.items() if k in ("f_peak_cold_mib", "f_peak_batch_mib")]
        self.results["f_peak_mib"] = max(peaks)

    def part_g(self) -> None:
        sources = {times: articles.repeated(times, self.folder(f"x{times}") / f"b12-x{times}.yaml") for times in GROWTH}
        words, peaks, walls, cpus = {}, {}, {t: [] for t in GROWTH}, {t: [] for t in GROWTH}
        for times, source in sources.items():             # first, once each: memory, words (and a warm start)
            folder = self.folder(f"growth-x{times}")
            run = timed(publish([source], folder / "out", folder / "cache"), sample=0.1)
            peaks[times] = run.peak_mib
            transcript = next((folder / "out").glob("*/*.transcript.txt")).read_text("utf-8")
            words[times] = len(transcript.split())
        for _ in range(max(1, self.runs // 2 + 1)):        # then timed, the sizes in turn
            for times, source in sources.items():
                folder = self.folder(f"growth-x{times}")
                run = timed(publish([source], folder / "out", folder / "cache"))
                walls[times].append(run.wall)
                cpus[times].append(run.cpu)
        per_kword = {t: median(walls[t]) / words[t] * 1000 for t in GROWTH}
        self.results["g_growth"] = {
            f"x{t}": {"words": words[t], "wall_s": round(median(walls[t]), 2), "cpu_s": round(median(cpus[t]), 2),
                      "s_per_kword": round(per_kword[t], 3), "peak_mib": round(peaks[t], 1)} for t in GROWTH}
        self.results["g_per_kword_ratio"] = round(per_kword[GROWTH[-1]] / per_kword[GROWTH[0]], 3)
        # CPU time moves less than wall time with other work on the machine
        cpu_per_kword = {t: median(cpus[t]) / words[t] * 1000 for t in GROWTH}
        self.results["g_cpu_per_kword_ratio"] = round(cpu_per_kword[GROWTH[-1]] / cpu_per_kword[GROWTH[0]], 3)
        self.results["g_peak_mib"] = round(peaks[GROWTH[-1]], 1)

    def part_h(self) -> None:
        folder = self.folder("small")
        sources = [articles.small(n, folder / f"handout-{n:04d}.yaml") for n in range(self.small)]
        out, cache = self.folder("small-out"), self.folder("small-cache")
        limit = "2G"
        report = out / "r.json"
        run = timed(publish(sources, out / "out", cache, "--cache-limit", limit, "--report", str(report)),
                    sample=1.0, watch=5.0, cache=cache, report=report)
        published = sum(a["published"] for a in run.report["articles"])
        cores = os.cpu_count() or 1
        # CPU use in windows of 30 s (the first and last are the start and the end of the batch, left out)
        busy, machine = [], []            # our share of the cores, and how busy they were with anyone's work
        points = run.timeline
        step = max(1, round(30 / 5))
        for i in range(step, len(points) - step, step):
            start, end = points[i], points[i + step]
            busy.append((end.cpu - start.cpu) / (end.seconds - start.seconds) / cores)
            machine.append((end.machine[0] - start.machine[0]) / max(1e-9, end.machine[1] - start.machine[1]))
        tenths = [points[min(len(points) - 1, len(points) * k // 10)] for k in range(1, 10)] if points else []
        # how steadily articles were published: each manifest is written as its article is published
        published_at = sorted(path.stat().st_mtime for path in (out / "out").glob("*/manifest.json"))
        gaps = [later - earlier for earlier, later in zip(published_at, published_at[1:])]
        self.results["h_small_batch"] = {
            "articles": self.small, "published": published, "wall_s": round(run.wall, 1),
            "per_article_s": round(run.wall / self.small, 3), "cpu_s": round(run.cpu, 1),
            "cpu_use": round(run.cpu / run.wall / cores, 3),
            "longest_wait_between_articles_published_s": round(max(gaps), 1) if gaps else None,
            "cpu_use_30s_windows": {"min": round(min(busy), 3) if busy else None,
                                    "median": round(median(busy), 3) if busy else None,
                                    "below_75_percent": sum(b < 0.75 for b in busy), "windows": len(busy),
                                    "machine_busy_min": round(min(machine), 3) if machine else None},
            "machine_busy": round(run.machine_busy, 3),
            "cache_peak_bytes": max((point.cache_bytes for point in points), default=0), "cache_end_bytes": folder_bytes(cache),
            "cache_limit": limit, "peak_mib": round(run.peak_mib, 1), "peak_at_s": round(run.peak_at),
            "peak_by_process_mib": {name: round(mib, 1) for name, mib in sorted(run.peak_parts.items())},
            "memory_mib_by_tenth": [round(point.mib) for point in tenths],   # does memory grow with the articles done?
            "memory_mib_by_tenth_by_process": [{name: round(mib) for name, mib in sorted(point.mib_by_process.items())}
                                               for point in tenths],
        }
        self.results["h_peak_mib"] = round(run.peak_mib, 1)


# -- the table --------------------------------------------------------------------------

def table(r: dict) -> list[tuple[str, str, str]]:
    def met(value, key, lower=True):
        return f"≤ {TARGETS[key]}: " + ("met" if value <= TARGETS[key] else "missed")
    rows = []
    if "a_over_b" in r:
        rows += [("(a) like for like: PDF, EPUB, HTML, MP3", f"{r['a_like_for_like_s']:.2f} s", ""),
                 ("(b) hand-scripted peer chain", f"{r['b_peer_chain_s']:.2f} s", ""),
                 ("    a / b", f"{r['a_over_b']:.2f}", met(r["a_over_b"], "a_over_b")),
                 ("    a / b in each run", " ".join(f"{x:.2f}" for x in r["a_over_b_runs"]), ""),
                 ("    cores busy meanwhile (anyone's work)", f"{r['a_machine_busy']:.0%}", "")]
    if "a_full_s" in r:
        rows.append(("(a′) full default build (with the M4B)", f"{r['a_full_s']:.2f} s", "reported"))
    if "a_full_where" in r:
        w = r["a_full_where"]
        rows += [("     CPU: full / like for like / peer",
                  f"{w['cpu_s']:.1f} / {w['cpu_like_for_like_s']:.1f} / {w['cpu_peer_s']:.1f} s", ""),
                 ("     cores busy (of the full build)", f"{w['cores_busy']:.2f}", ""),
                 ("     stage time (they overlap)", ", ".join(f"{k} {v:.2f} s" for k, v in w["stage_s"].items()), ""),
                 ("     narration stage, MP3 only", f"{w['audio_stage_like_for_like_s']:.2f} s", "")]
    if "c_over_full" in r:
        rows.append(("(c) no-change rebuild / a′", f"{r['c_over_full']:.1%} ({r['c_no_change_s']:.2f} s)",
                     f"≤ {TARGETS['c_over_full']:.0%}: " + ("met" if r["c_over_full"] <= TARGETS["c_over_full"] else "missed")))
    if "d_over_full" in r:
        worst = max(r["d_over_full_runs"])
        rows += [("(d) one-sentence edit / a′", f"{r['d_over_full']:.1%} ({r['d_one_sentence_s']:.2f} s)",
                  f"≤ {TARGETS['d_over_full']:.0%} in every run: " + ("met" if worst <= TARGETS["d_over_full"] else "missed")),
                 ("    in each run", " ".join(f"{x:.1%}" for x in r["d_over_full_runs"]), ""),
                 ("    utterances synthesized", " ".join(map(str, r["d_utterances_synthesized"])), "1 in each run")]
    if "e_over_n_full" in r:
        rows.append((f"(e) batch of {r['batch']} / {r['batch']} × a′", f"{r['e_over_n_full']:.1%} ({r['e_batch_s']:.0f} s)",
                     f"≤ {TARGETS['e_over_n_full']:.0%}: " + ("met" if r["e_over_n_full"] <= TARGETS["e_over_n_full"] else "missed")))
    if "f_peak_mib" in r:
        parts = ", ".join(f"{name} {r[key]:.0f}" for name, key in (("cold", "f_peak_cold_mib"), ("batch", "f_peak_batch_mib"))
                          if key in r)
        rows.append(("(f) peak memory (PSS, process tree)", f"{r['f_peak_mib']:.0f} MiB ({parts})",
                     met(r["f_peak_mib"], "f_peak_mib")))
    if "g_growth" in r:
        for name, g in r["g_growth"].items():
            rows.append((f"(g) {name}: {g['words']} words", f"{g['wall_s']:.1f} s, {g['s_per_kword']:.2f} s per 1,000 words, "
                         f"{g['peak_mib']:.0f} MiB", ""))
        rows += [("    time per 1,000 words, x16 / x1", f"{r['g_per_kword_ratio']:.2f}", met(r["g_per_kword_ratio"], "g_per_kword_ratio")),
                 ("    CPU time per 1,000 words, x16 / x1", f"{r['g_cpu_per_kword_ratio']:.2f}", ""),
                 ("    peak memory at x16", f"{r['g_peak_mib']:.0f} MiB", met(r["g_peak_mib"], "g_peak_mib"))]
    if "h_small_batch" in r:
        h = r["h_small_batch"]
        windows = h["cpu_use_30s_windows"]
        rows += [(f"(h) {h['articles']} small articles", f"{h['published']} published in {h['wall_s']:.0f} s "
                  f"({h['per_article_s']:.2f} s each)", "completes"),
                 ("    CPU use of both cores", f"{h['cpu_use']:.0%} overall; 30 s windows: min {windows['min']:.0%}, "
                  f"median {windows['median']:.0%}" if windows["min"] is not None else f"{h['cpu_use']:.0%}", ""),
                 ("    cores busy with anyone's work", f"{h['machine_busy']:.0%} overall" + (
                     f"; 30 s windows: min {windows['machine_busy_min']:.0%}" if windows["min"] is not None else ""), ""),
                 ("    longest wait between two articles published",
                  f"{h['longest_wait_between_articles_published_s']} s", ""),
                 ("    cache (peak / end / limit)", f"{h['cache_peak_bytes'] / 2**20:.0f} / {h['cache_end_bytes'] / 2**20:.0f} MiB"
                  f" / {h['cache_limit']}", ""),
                 ("    peak memory", f"{h['peak_mib']:.0f} MiB", met(h["peak_mib"], "h_peak_mib")),
                 ("      by process", ", ".join(f"{name} {mib:.0f}" for name, mib in h["peak_by_process_mib"].items())
                  + f" (at {h['peak_at_s']} s)", ""),
                 ("    memory at each tenth of the batch", " ".join(map(str, h["memory_mib_by_tenth"])) + " MiB", "")]
    return rows


def print_table(r: dict) -> None:
    rows = table(r)
    width = max(len(row[0]) for row in rows)
    values = max(len(row[1]) for row in rows)
    print(f"{r['date']}, {r['cores']} cores, median of {r['runs']} runs; parts {','.join(r['parts'])}")
    print(f"{'measure':<{width}}  {'value':<{values}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:<{values}}  {target}")


def append_results(entry: dict) -> None:
    """bench/results.json holds every run, each with the machine's core count (figures of two machines differ)."""
    try:
        previous = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        previous = []
    if isinstance(previous, dict):            # written by an earlier version of this script: one run
        previous = [previous]
    RESULTS.write_text(json.dumps([*previous, entry], indent=2) + "\n")


VOICE_ARTICLE = ROOT / "tests" / "fixtures" / "voice" / "folate.yaml"


def children_cpu() -> float:
    """CPU seconds (user and system) of every finished child process so far."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_voices(work: Path, runs: int = 3) -> dict:
    """Each engine's synthesis against its own program on the same sentences, in turns: *runs* times each for
    Piper, on the short article (B12 takes it minutes), and three times as many for the system engine, on the
    short article and on B12 (where its start is a smaller share), whose runs take a second or less and move
    with the machine's other work by a quarter. Which of the two goes first alternates from turn to turn; the
    overhead is of the medians, and each turn's figures are reported too."""
    from speak import spoken_texts, write_lines       # (which puts the package on the module path)
    from pipeline.stages.audio import STAGE as narration
    from pipeline.stages.audio.engines import PIPER_NOISE, choose, config_of, length_scale, piper_program
    from pipeline.stages.audio.synth import Synthesizer
    from pipeline.theme import load_theme
    theme = load_theme(ROOT / "themes" / "default")
    # what a build's narration worker loads before it speaks (numpy, pyttsx3's binding): its imports are not synthesis
    narration.preload()
    results = {}
    for engine, article_path in (("system", VOICE_ARTICLE), ("system", SOURCE), ("piper", VOICE_ARTICLE)):
        texts = spoken_texts(article_path, theme)
        name = f"{engine} ({article_path.stem})"
        lines = write_lines(texts, work / f"{engine}-{article_path.stem}.txt")
        choice = choose(engine, theme.voices, "en", theme.root)
        if engine == "piper":
            own = [piper_program(), "--model", str(choice.model), "--config", str(config_of(choice.model)),
                   "--input-file", str(lines), "--output-file", str(work / "own.wav"),
                   "--length-scale", str(length_scale(theme.voice_rate)),
                   "--noise-scale", str(PIPER_NOISE), "--noise-w-scale", str(PIPER_NOISE)]
        else:
            own = ["espeak-ng", "-v", "en-us", "-s", str(theme.voice_rate), "-f", str(lines), "-w", str(work / "own.wav")]
        ours, parents, theirs, walls, loads = [], [], [], [], []

        def publish_synthesis(n: int) -> list[Path]:
            """publish's synthesis alone: its helper processes, the threads, checks and cache of this process."""
            cache = work / f"speech-{engine}-{article_path.stem}-{n}"
            started, cpu, parent = time.perf_counter(), children_cpu() + time.process_time(), time.process_time()
            synth = Synthesizer(choice, "en", theme.voice_rate, cache)
            made = synth.wavs(texts)
            synth.close()
            ours.append(children_cpu() + time.process_time() - cpu)
            parents.append(time.process_time() - parent)
            walls.append(time.perf_counter() - started)
            return made

        for n in range(runs * (3 if engine == "system" else 1)):
            if n % 2:
                wavs = publish_synthesis(n)
            cpu = children_cpu()
            subprocess.run(own, check=True, capture_output=True)
            theirs.append(children_cpu() - cpu)
            if not n % 2:
                wavs = publish_synthesis(n)
            loads.append(os.getloadavg()[0])
        import wave
        speech = sum(wave.open(str(w)).getnframes() / wave.open(str(w)).getframerate() for w in wavs)
        results[name] = {
            "voice": choice.voice, "utterances": len(texts), "speech_s": round(speech, 1),
            "cpu_s_per_minute_of_speech": round(median(ours) / speech * 60, 3),
            "own_program_cpu_s_per_minute_of_speech": round(median(theirs) / speech * 60, 3),
            "cpu_s": [round(x, 3) for x in ours], "own_program_cpu_s": [round(x, 3) for x in theirs],
            "of_which_publish_process_cpu_s": [round(x, 3) for x in parents],
            "overhead_over_own_cli": round(median(ours) / median(theirs) - 1, 3),
            "overhead_each_run": [round(x / y - 1, 3) for x, y in zip(ours, theirs)],
            "synthesis_wall_s": round(median(walls), 2), "load_average": [round(x, 1) for x in loads],
        }
        if article_path != VOICE_ARTICLE:
            continue
        # a cold narration of the short article, and a one-sentence edit
        folder = work / f"article-{engine}"
        folder.mkdir()
        source = folder / VOICE_ARTICLE.name
        shutil.copy(VOICE_ARTICLE, source)
        report = folder / "report.json"
        build = publish([source], folder / "out", folder / "cache", "--format", "audio", "--voice-engine", engine,
                        "--report", str(report))
        cold = timed(build)
        source.write_text(source.read_text().replace("Beans, peas and lentils.", "Beans, peas and chickpeas."))
        edit_run = timed(build, report=report)
        results[name].update({
            "cold_narration_s": round(cold.wall, 2), "cold_narration_cpu_s": round(cold.cpu, 2),
            "one_sentence_edit_s": round(edit_run.wall, 2), "one_sentence_edit_cpu_s": round(edit_run.cpu, 2),
            "edit_synthesized": edit_run.report["articles"][0]["stages"][0]["synthesized"],
        })
    return results


def callgrind(command: list[str], folder: Path) -> dict[int, int]:
    """Run *command* under valgrind's callgrind, following the programs it starts: the instructions executed
    by it and by every process it started, by process id.

    A forked process inherits its parent's counts: callgrind is told to write them out and start again from
    zero as a process forks (glibc's _Fork), so that each process counts only its own instructions."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is needed to count instructions: apt-get install valgrind")
    folder.mkdir()
    done = subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-before=_Fork",
                           f"--callgrind-out-file={folder}/cg.%p", *command], cwd=ROOT,
                          env={**ENV, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if done.returncode != 0:
        raise SystemExit(f"failed under callgrind: {command}\n{done.stderr.decode()[-2000:]}")
    counts: dict[int, int] = {}
    for path in folder.glob("cg.*"):                 # cg.PID, and cg.PID.N for the counts written at a fork
        text = path.read_text("utf-8", errors="replace")
        line = next(line for line in text.splitlines() if line.startswith(("summary:", "totals:")))
        pid = int(path.name.split(".")[1])
        counts[pid] = counts.get(pid, 0) + int(line.split()[1])
    return counts


def measure_instructions(work: Path, rate: int) -> dict:
    """The system engine's instructions: publish's synthesis with one engine (bench/speak.py: `speak` less
    `prepare`, every process of each) against espeak-ng's own program on the same sentences, on the short
    article and on B12, with a cache that an earlier build has left (no speech in it). Instructions run
    in user space: the system's work for a process (starting it, its page faults) is not counted, in either.
    (From one run to the next the difference moves by up to some 12 million instructions, 2 to 3 % of the
    short article's figure and a tenth of a percent of B12's.)"""
    from speak import spoken_texts, write_lines       # (which puts the package on the module path)
    from pipeline.theme import load_theme
    theme = load_theme(ROOT / "themes" / "default")
    speak = str(ROOT / "bench" / "speak.py")
    results = {}
    for article_path in (VOICE_ARTICLE, SOURCE):
        texts = spoken_texts(article_path, theme)
        lines = write_lines(texts, work / f"count-{article_path.stem}.txt")
        own = callgrind(["espeak-ng", "-v", "en-us", "-s", str(rate), "-f", str(lines), "-w", str(work / "own.wav")],
                        work / f"cg-own-{article_path.stem}")
        # the cache as earlier builds leave it (espeak-ng's version, the check of its library: see engines.py),
        # without the speech
        cache = work / f"cache-{article_path.stem}"
        subprocess.run([sys.executable, speak, "speak", str(article_path), "system", str(cache)], check=True, env=ENV,
                       capture_output=True)
        shutil.rmtree(cache / "speech")
        runs = {mode: callgrind([sys.executable, speak, mode, str(article_path), "system", str(cache)],
                                work / f"cg-{mode}-{article_path.stem}")
                for mode in ("prepare", "speak")}
        ours = sum(runs["speak"].values()) - sum(runs["prepare"].values())
        theirs = sum(own.values())
        results[f"system ({article_path.stem})"] = {
            "instructions": ours, "own_program_instructions": theirs, "overhead_over_own_cli": round(ours / theirs - 1, 4),
            "utterances": len(texts), "processes": len(runs["speak"])}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,c,d,e,f,g,h", help="the parts to run, e.g. a,g (default: all)")
    parser.add_argument("--runs", type=int, default=5, help="runs per timed measurement (the median is reported)")
    parser.add_argument("--batch", type=int, default=100, help="articles in the batch (e)")
    parser.add_argument("--small", type=int, default=1000, help="small articles in the batch (h); it takes long")
    parser.add_argument("--voices", action="store_true", help="measure the speech engines instead")
    parser.add_argument("--instructions", action="store_true",
                        help="with --voices: also count the system engine's instructions (valgrind, some minutes)")
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set("acdefgh")
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}: the parts are a, c, d, e, f, g, h")
    # The package's bytecode as setup.sh leaves it: a file changed since would otherwise be compiled again in
    # every build measured wherever Python may not write its cache (PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(ROOT / "pipeline", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    bench = Bench(work, args.runs, args.batch, args.small)
    try:
        if args.voices:
            voices = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
                      **measure_voices(work, max(1, min(args.runs, 3)))}
            if args.instructions:
                from pipeline.theme import load_theme
                rate = load_theme(ROOT / "themes" / "default").voice_rate
                for name, counted in measure_instructions(work, rate).items():
                    voices[name]["instructions"] = counted
            (ROOT / "bench" / "voices.json").write_text(json.dumps(voices, indent=2) + "\n")
            print(json.dumps(voices, indent=2))
            return
        for part in "acdefgh":
            if part in parts:
                getattr(bench, f"part_{part}")()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    entry = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
             "load_average": [round(x, 1) for x in os.getloadavg()], "runs": args.runs, "parts": parts,
             **bench.results, "targets": TARGETS}
    append_results(entry)
    print_table(entry)


if __name__ == "__main__":
    main()
