"""Build orchestration through the real command: determinism, incremental builds, safety."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image as Picture

from conftest import B12, EPOCH, ROOT, run_publish, small_filesystem
from pipeline import stages
from pipeline.errors import EXIT_ENVIRONMENT

FORMATS = ",".join(stages.available())
QUICK = "pdf,html"         # where the test is about the build, not about every stage: keeps the suite fast


def make_project(tmp_path: Path) -> Path:
    """A copy of the project's source and theme, so a test may break them."""
    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    shutil.copy(B12, project / "source" / B12.name)
    shutil.copytree(ROOT / "themes", project / "themes")
    return project


def snapshot(folder: Path) -> dict[str, tuple[bytes, int, float]]:
    return {p.name: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime) for p in sorted(folder.iterdir())}


def build(project: Path, *extra: str, formats: str = FORMATS) -> subprocess.CompletedProcess:
    return run_publish("build", "--format", formats, "--out", str(project / "output"),
                       "--cache", str(project / ".cache"), *extra, cwd=project)


def report(project: Path, *extra: str, formats: str = FORMATS) -> dict:
    result = build(project, "--report", str(project / "report.json"), *extra, formats=formats)
    assert result.returncode == 0, result.stderr
    return {s["format"]: s for s in json.loads((project / "report.json").read_text())["articles"][0]["stages"]}


def test_every_stage_exists():
    assert stages.available() == list(stages.STAGE_MODULES), "a stage module is missing"


def test_two_clean_builds_are_byte_identical(tmp_path):
    first, second = make_project(tmp_path / "1"), make_project(tmp_path / "2")
    assert build(first).returncode == 0 and build(second).returncode == 0
    a, b = first / "output" / B12.stem, second / "output" / B12.stem
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert len(names) > 4
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), f"{name} differs between two builds"


def test_a_build_with_no_change_rebuilds_nothing(tmp_path):
    project = make_project(tmp_path)
    first = report(project)
    assert {s["status"] for s in first.values()} == {"built"}
    before = snapshot(project / "output" / B12.stem)
    second = report(project)
    assert {name: s["status"] for name, s in second.items()} == {name: "cached" for name in first}
    assert snapshot(project / "output" / B12.stem) == before, "an up-to-date output was rewritten"


def test_editing_one_sentence_rebuilds_the_outputs_holding_it_and_speaks_one_utterance(tmp_path):
    project = make_project(tmp_path)
    report(project)
    source = project / "source" / B12.name
    source.write_text(source.read_text().replace("These shellfish are packed with B12.",
                                                 "These shellfish are full of B12."))
    second = report(project)
    assert {s["status"] for s in second.values()} == {"built"}
    if "audio" in second:
        assert second["audio"]["synthesized"] == 1
    html = project / "output" / B12.stem / f"{B12.stem}.html"
    if html.exists():
        assert "These shellfish are full of B12." in html.read_text()


@pytest.mark.parametrize("change", ["theme file", "referenced image", "damaged output"])
def test_the_quick_no_change_check_still_notices_what_changed(tmp_path, change):
    """A build after a build answers from a stamp, without reading the article; it must still see every change."""
    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    shutil.copytree(ROOT / "themes", project / "themes")
    picture = project / "source" / "figure.png"
    Picture.new("RGB", (40, 30), (30, 90, 160)).save(picture)
    (project / "source" / "figure.yaml").write_text(
        "title: A figure\nlanguage: en\nbody:\n  - p: One sentence.\n"
        "  - image:\n      src: figure.png\n      alt: A blue rectangle\n")
    assert {s["status"] for s in report(project, formats=QUICK).values()} == {"built"}
    assert {s["status"] for s in report(project, formats=QUICK).values()} == {"cached"}
    assert list((project / ".cache" / "stamps").glob("*.json")), "no stamp was kept"
    if change == "theme file":
        css = project / "themes" / "default" / "css" / "html.css"
        css.write_text(css.read_text() + "\nbody { letter-spacing: 0.01em; }\n")
        expected = {"pdf": "built", "html": "built"}
    elif change == "referenced image":
        Picture.new("RGB", (40, 30), (160, 90, 30)).save(picture)
        expected = {"pdf": "built", "html": "built"}
    else:
        (project / "output" / "figure" / "figure.pdf").write_bytes(b"%PDF-1.7 damaged")
        expected = {"pdf": "built", "html": "cached"}
    assert {name: s["status"] for name, s in report(project, formats=QUICK).items()} == expected


def built_then_edited(tmp_path, formats: str = FORMATS) -> tuple[Path, Path, dict]:
    """A project built once, then its article changed so that every stage must rebuild."""
    project = make_project(tmp_path)
    assert build(project, formats=formats).returncode == 0
    folder = project / "output" / B12.stem
    before = snapshot(folder)
    source = project / "source" / B12.name
    source.write_text(source.read_text().replace("Eggs", "Hen eggs"))
    return project, folder, before


def test_a_failing_stage_publishes_nothing_and_keeps_the_previous_outputs(tmp_path):
    project, folder, before = built_then_edited(tmp_path, QUICK)
    # break only the PDF template
    template = sorted((project / "themes" / "default" / "templates" / "pdf").glob("*.html"))[0]
    template.write_text(template.read_text() + "\n{% if %}\n")
    result = build(project, formats=QUICK)
    assert result.returncode == 1
    assert "the pdf stage failed" in result.stderr
    assert f"{template.name}:" in result.stderr and "template syntax error" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(folder) == before, "outputs changed although a stage failed"
    left = [p for p in (project / "output").iterdir() if p.name.startswith(".") and p.suffix != ".lock"]
    assert not left, "temporary files left"      # the article's lock file stays, for every build to lock the same file


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _start_build(project: Path) -> subprocess.Popen:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    return subprocess.Popen([sys.executable, "-m", "pipeline", "build", "--format", FORMATS,
                             "--out", str(project / "output"), "--cache", str(project / ".cache")],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _staging(project: Path) -> list[Path]:
    return list((project / "output").glob(f".{B12.stem}.staging-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_an_interrupted_build_leaves_the_previous_outputs_intact(tmp_path, sig):
    project, folder, before = built_then_edited(tmp_path)
    shutil.rmtree(project / ".cache", ignore_errors=True)   # make the rebuild slow enough to interrupt
    proc = _start_build(project)
    _wait_for(lambda: _staging(project) and any(p.iterdir() for p in _staging(project)))
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert not _staging(project), "Ctrl-C left temporary files"
    assert snapshot(folder) == before
    # the next build cleans up whatever a killed build left, and succeeds
    assert build(project).returncode == 0
    assert not _staging(project)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 kB file system: a real 'disk full'."""
    with small_filesystem(tmp_path / "disk", "16k") as mount:
        yield mount


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_output(tmp_path, tiny_disk):
    result = run_publish("build", str(B12), "--format", QUICK, "--out", str(tiny_disk / "output"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert "Traceback" not in result.stderr and "how to fix:" in result.stderr
    assert "No space left on device" in result.stderr and "free some disk space" in result.stderr
    leftovers = [p for p in (tiny_disk / "output").rglob("*")] if (tiny_disk / "output").exists() else []
    assert not [p for p in leftovers if p.is_file() and p.suffix != ".lock"], f"partial output left: {leftovers}"


def test_a_read_only_output_folder_is_a_clear_error(tmp_path, tiny_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    result = run_publish("build", str(B12), "--format", QUICK, "--out", str(tiny_disk / "output"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == EXIT_ENVIRONMENT
    assert "Traceback" not in result.stderr and "how to fix:" in result.stderr
    assert "cannot create the output folder (Read-only file system)" in result.stderr


def test_documents_and_narration_have_workers_of_their_own():
    """A worker keeps the libraries it has loaded: the PDF's WeasyPrint and the narration's numpy and
    espeak-ng are never held by the same process, and spare workers go where the work is."""
    from pipeline.build import _pools, _sizes

    def sizes(formats, workers):
        pools = _pools(_sizes([(None, name) for name in formats], workers))
        for pool in pools.values():
            pool.shutdown()
        return {group: pool._max_workers for group, pool in pools.items()}

    one_article = ["audio", "pdf", "epub", "html"]
    assert sizes(one_article, 2) == {"narration": 1, "documents": 1}
    assert sizes(one_article, 4) == {"narration": 1, "documents": 3}
    assert sizes(one_article * 10, 8) == {"narration": 2, "documents": 6}
    assert sizes(["pdf", "epub", "html"] * 5, 2) == {"documents": 2}
    assert sizes(["audio"] * 3, 2) == {"narration": 2}


def test_a_batch_hands_out_work_as_workers_free_and_a_released_stage_first(tmp_path):
    """A batch's workers are handed one task each and one more waiting, the rest wait in the build; a stage
    released by another (the read-aloud EPUB, once its narration ends) goes ahead of the documents stages
    still waiting, so each article is published as soon as it can be, not all of them at the end."""
    from pipeline.build import LENDABLE, Job, Quiet, build as run_build, worker_group
    from pipeline.source import load_article
    from pipeline.theme import load_theme

    class Recorder(Quiet):
        def __init__(self):
            self.events = []

        def stage_started(self, job, name):
            self.events.append(("started", job.slug, name, job.stages[name].worker))

        def stage_finished(self, job, result):
            self.events.append(("finished", job.slug, result.name, result.worker))

    theme = load_theme(ROOT / "themes" / "default")
    formats = ["pdf", "html", "epub", "audio", "read-aloud"]
    jobs = []
    for n, word in enumerate(("apple", "birch", "cedar", "daisy", "elder", "fern")):
        source = tmp_path / f"handout-{n}.yaml"
        source.write_text(f"title: Handout about the {word}\nlanguage: en\nbody:\n"
                          f"  - p: The {word} note says to drink water with each {word} meal.\n", encoding="utf-8")
        jobs.append(Job(load_article(source, source.name, theme=theme), theme, formats, source.name))
    progress = Recorder()
    run_build(jobs, tmp_path / "out", tmp_path / "cache", workers=2, progress=progress)
    assert all(job.ok for job in jobs), [job.error for job in jobs]

    running = {"documents": set(), "narration": set()}
    released = set()              # articles whose read-aloud EPUB could start (their narration has ended)
    overtaken = []                # documents stages started while a released read-aloud EPUB was waiting
    for event, slug, name, group in progress.events:
        assert group == worker_group(name) or name in LENDABLE, f"{name} of {slug} ran on a {group} worker"
        if event == "started":
            running[group].add((slug, name))
            assert len(running[group]) <= 2, f"more tasks handed to one worker than it can start: {running}"
            if name == "read-aloud":
                released.remove(slug)
            else:
                overtaken += [(slug, name, waiting) for waiting in released if group == "documents"]
        else:
            running[group].remove((slug, name))
            if name == "audio":
                released.add(slug)
    assert not overtaken, overtaken
    # whichever worker makes it, an article's read-aloud EPUB starts before a second narration after its own ends
    for slug in {e[1] for e in progress.events}:
        spoken = progress.events.index(("finished", slug, "audio", "narration"))
        started = next(n for n, e in enumerate(progress.events) if e[:3] == ("started", slug, "read-aloud"))
        later = [e for e in progress.events[spoken + 1:started] if e[0] == "finished" and e[2] == "audio"]
        assert len(later) <= 1, f"{slug}'s read-aloud EPUB waited for {len(later)} narrations: {progress.events}"
    # the case that matters happened: an article's read-aloud EPUB started before other articles' documents
    first_read_aloud = next(n for n, e in enumerate(progress.events) if (e[0], e[2]) == ("started", "read-aloud"))
    assert any(e[0] == "started" and e[2] == "pdf" for e in progress.events[first_read_aloud:]), progress.events


def test_a_group_with_nothing_left_lends_its_idle_worker_to_light_stages_only():
    """Once the narration has nothing left to narrate, its idle worker takes the documents' light stages (the
    released ones first), never a PDF: WeasyPrint would stay loaded in the process that narrates."""
    from collections import deque

    from pipeline.build import LENDABLE, _lendable

    released = {"documents": deque([("b", "read-aloud")]), "narration": deque()}
    waiting = {"documents": deque([("a", "pdf-large"), ("a", "epub"), ("b", "pdf"), ("b", "html")]),
               "narration": deque([("c", "audio")])}
    assert _lendable("narration", released, waiting) is None                     # it has a narration to make
    waiting["narration"].popleft()
    taken = []
    while (task := _lendable("narration", released, waiting)) is not None:
        taken.append(task)
    assert taken == [("b", "read-aloud"), ("a", "epub"), ("b", "html")]
    assert list(waiting["documents"]) == [("a", "pdf-large"), ("b", "pdf")]     # left, in their order
    waiting["narration"].append(("c", "audio"))
    released["documents"].clear()
    waiting["documents"].clear()
    assert _lendable("documents", released, waiting) is None                     # a narration is not light
    assert {"pdf", "pdf-large", "audio"}.isdisjoint(LENDABLE)


def test_a_group_whose_own_work_is_done_is_ended_before_the_build_ends():
    """The documents' worker is ended once only the read-aloud EPUBs of narrations still being made are left
    (the narration's worker takes them); never while it has work of its own, and never the last group."""
    from collections import deque

    from pipeline.build import Job, StageResult, _done_groups

    def job(**stages):
        return Job(None, None, list(stages), "a.yaml",
                   stages={name.replace("_", "-"): StageResult(name.replace("_", "-"), status, worker=worker)
                           for name, (status, worker) in stages.items()})

    pools = {"documents": object(), "narration": object()}
    queues = {"documents": deque(), "narration": deque()}
    narrating = job(pdf=("built", "documents"), audio=("pending", "narration"), read_aloud=("pending", ""))
    idle = {"documents": 0, "narration": 1}
    assert _done_groups(pools, idle, queues, queues, [narrating]) == ["documents"]
    laying_out = job(pdf=("pending", ""), audio=("built", "narration"))     # a PDF not yet handed out
    assert _done_groups(pools, idle, queues, queues, [narrating, laying_out]) == []
    assert _done_groups(pools, {"documents": 1, "narration": 1}, queues, queues, [narrating]) == []
    assert _done_groups(pools, {"documents": 0, "narration": 0}, queues, queues, []) == ["documents"]
    assert _done_groups({"narration": object()}, idle, queues, queues, []) == []


def test_a_finished_run_lets_go_of_its_articles_and_still_reports_them(tmp_path):
    """Once a run of a batch is over, the batch's process keeps only what its report and summary say: nothing
    holds an article's model any more, and the summary still lists every file it built."""
    import gc
    import io
    import weakref

    from rich.console import Console

    from pipeline.build import Job, build as run_build
    from pipeline.progress import summary
    from pipeline.source import load_article
    from pipeline.theme import load_theme

    theme = load_theme(ROOT / "themes" / "default")
    jobs = []
    for word in ("apple", "birch"):
        source = tmp_path / f"{word}.yaml"
        source.write_text(f"title: Handout about the {word}\nlanguage: en\nbody:\n"
                          f"  - p: The {word} note says to drink water.\n", encoding="utf-8")
        jobs.append(Job(load_article(source, source.name, theme=theme), theme, ["html", "epub"], source.name))
    run_build(jobs, tmp_path / "out", tmp_path / "cache", workers=2)
    assert all(job.ok for job in jobs), [job.error for job in jobs]
    models = [weakref.ref(job.article) for job in jobs]
    for job in jobs:
        job.let_go()
    gc.collect()
    assert [model() for model in models] == [None, None], "something still holds a finished article's model"
    table = io.StringIO()
    summary(jobs, Console(file=table, width=200))
    for word in ("apple", "birch"):
        assert f"{word}.html" in table.getvalue() and f"{word}.epub" in table.getvalue()
    assert [job.slug for job in jobs] == ["apple", "birch"] and all(job.ok for job in jobs)


def test_a_batch_freezes_for_its_workers_only_what_it_still_holds(build_b12):
    """Before each run's workers are forked, the batch's process freezes what it holds (`share_with_workers`).
    What it has finished with but not yet collected must not be frozen with it: the catalogue written after each
    run leaves its entries in a cycle (the template's macros and context), and frozen they would stay for the
    rest of the batch, a run's worth more each time."""
    import gc
    import weakref

    from pipeline.catalogue import read_entries, render_index
    from pipeline.memory import share_with_workers
    from pipeline.theme import load_theme

    out = build_b12("html").parent
    theme = load_theme(ROOT / "themes" / "default")
    gc.disable()                    # no collection of its own may free the entry before the freeze
    try:
        entries = read_entries(out)
        assert "Is B12 Good for Lower Back Pain?" in render_index(entries, theme)
        entry = weakref.ref(entries[0])
        del entries
        share_with_workers()
        assert entry() is None, "the finished catalogue's entry was frozen with what the batch still holds"
    finally:
        gc.unfreeze()
        gc.enable()


def test_a_long_batch_reads_each_run_of_articles_only_when_its_turn_comes(tmp_path, monkeypatch):
    """A batch longer than a run reads a run's articles only once the run before it is published: the batch's
    process never holds more articles than one run's. An error in a later run's article is still said, with its
    place, the others are built, and the exit status tells of it."""
    import re
    import sys

    from pipeline import cli

    monkeypatch.setattr(cli, "ARTICLES_PER_WORKER", 2)
    words = ["apple", "birch", "cedar", "damson", "elder"]
    sources = []
    for word in words:
        source = tmp_path / f"{word}.yaml"
        source.write_text(f"title: Handout about the {word}\nlanguage: en\nbody:\n"
                          f"  - p: The {word} note says to drink water.\n", encoding="utf-8")
        sources.append(source)
    sources[3].write_text("title: Handout about the damson\nlanguage: en\nbody:\n  - p: [unclosed\n",
                          encoding="utf-8")
    out = tmp_path / "out"

    def published() -> list[str]:
        return sorted(manifest.parent.name for manifest in out.glob("*/manifest.json"))

    class Recorded:
        """The error output, with which articles were published when each line was written."""
        def __init__(self):
            self.lines = []

        def write(self, text):
            if text.strip():
                self.lines.append((text, published()))
            return len(text)

        def flush(self):
            pass

        def isatty(self):
            return False

    recorded = Recorded()
    monkeypatch.setattr(sys, "stderr", recorded)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = cli.main(["build", *map(str, sources), "--out", str(out), "--cache", str(tmp_path / "cache"),
                           "--format", "html", "--quiet"])
    finally:
        for number, handler in handlers.items():     # the command sets its own; the tests' are put back
            signal.signal(number, handler)
    said = [(text, published) for text, published in recorded.lines
            if re.search(r"damson\.yaml:\d+:\d+: error", text)]
    assert said, recorded.lines
    assert said[0][1] == ["apple", "birch"], "the second run's article was read before the first run was built"
    assert status != 0
    assert published() == ["apple", "birch", "cedar", "elder"]


def test_verbose_says_a_stage_was_handed_to_workers_not_that_it_started(tmp_path):
    """A stage handed to a pool may wait there behind the one its worker is running: the log says so, and says
    "started" only where the build runs the stage itself (--jobs 1)."""
    source = ROOT / "tests" / "fixtures" / "es" / "dolor-lumbar-autocuidado.yaml"
    pooled = run_publish("build", str(source), "--format", "pdf,pdf-large", "--verbose", "--out", str(tmp_path / "a"))
    assert pooled.returncode == 0, pooled.stderr
    said = (pooled.stdout + pooled.stderr).splitlines()
    for name in ("pdf", "pdf-large"):
        handed = next(n for n, line in enumerate(said) if line.endswith(f": {name}: handed to the documents workers"))
        assert any(f": {name}: built in " in line for line in said[handed:])
    assert not any(line.endswith(": started") for line in said)
    alone = run_publish("build", str(source), "--format", "html", "--verbose", "--jobs", "1",
                        "--out", str(tmp_path / "b"))
    assert alone.returncode == 0, alone.stderr
    said = (alone.stdout + alone.stderr).splitlines()
    assert any(line.endswith("dolor-lumbar-autocuidado.yaml: html: started") for line in said)
