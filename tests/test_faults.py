"""Fault injection: a damaged cache, builds killed anywhere (publishing too), racing builds, unusable folders.

Whatever goes wrong around a build, an output is either right or not
published, and every environment problem is a located error with a fix and
its own exit code (see the README's table).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import B12, EPOCH, ROOT, require_tool, run_publish, small_filesystem
from pipeline.errors import EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_LOCK_WAIT

QUICK = "epub,html"              # two formats that build in a few seconds, for tests about publishing


# -- helpers ------------------------------------------------------------------------------------------

def decoded_samples(path: Path) -> int:
    """The audio's length as a player hears it: every frame decoded, not what the container claims."""
    ffmpeg = require_tool("ffmpeg", "apt-get install ffmpeg")
    done = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", "22050", "-"],
                          capture_output=True, check=True)
    return len(done.stdout) // 2


def narrate(source: Path, out: Path, cache: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_publish("build", str(source), "--format", "audio", "--out", str(out), "--cache", str(cache),
                       "--report", str(out.parent / "report.json"), *extra, timeout=timeout)


def audio_report(out: Path) -> dict:
    return json.loads((out.parent / "report.json").read_text())["articles"][0]["stages"][0]


def manifest_matches(folder: Path) -> bool:
    """Every file the manifest lists is there with its size and SHA-256, and nothing else is."""
    import hashlib
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {entry["path"]: entry for entry in manifest["outputs"]}
    present = {p.name for p in folder.iterdir()} - {"manifest.json"}
    return present == set(listed) and all(
        hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"] for name, entry in listed.items())


def _comparable(name: str, data: bytes) -> bytes:
    """A file's bytes, but a manifest without the source's path (which differs between two test projects)."""
    if name != "manifest.json":
        return data
    manifest = json.loads(data)
    return json.dumps([manifest["outputs"], manifest["stages"]]).encode()


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: _comparable(p.name, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def narrated(tmp_path_factory):
    """A clean build of the B12 narration: its folder, its cache, and what a listener gets from it."""
    base = tmp_path_factory.mktemp("clean")
    source = base / B12.name
    shutil.copy(B12, source)
    result = narrate(source, base / "out", base / "cache")
    assert result.returncode == 0, result.stderr
    folder = base / "out" / B12.stem
    return {"source": source, "cache": base / "cache", "folder": folder, "listened": listened(folder)}


# -- a damaged cache ------------------------------------------------------------------------------------

def _half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _zeros(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _header_only(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:44])


def _odd_length(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x01")


DAMAGE = {
    # case: (what is damaged, how, whether the chapters' encodings are removed so that all speech is read)
    "three chapter MP3s cut to half": ("encoded/*.mp3", [_half] * 3, False),
    "MP3 and AAC encodings emptied or zero-filled": ("encoded/*.[ma][pa][3c]", [_empty, _zeros, _empty, _zeros], False),
    "a truncated AAC chunk and a damaged layout": ("encoded/*.aac", [_half], False),
    "ten speech files cut to their header": ("speech/*.wav", [_header_only] * 10, True),
    "odd-length and zero-filled speech files": ("speech/*.wav", [_odd_length, _zeros], True),
}


def listened(folder: Path) -> dict:
    """What a listener gets: the decoded length of both files, the captions and the transcript."""
    return {"mp3": decoded_samples(folder / f"{B12.stem}.mp3"), "m4b": decoded_samples(folder / f"{B12.stem}.m4b"),
            "vtt": (folder / f"{B12.stem}.vtt").read_text(),
            "transcript": (folder / f"{B12.stem}.transcript.txt").read_text()}


def cue_ids(vtt: str) -> list[str]:
    return [block.split("\n")[0] for block in vtt.split("\n\n")[1:]]


@pytest.mark.parametrize("case", [*DAMAGE, "a fifth of all entries, at random"])
def test_a_damaged_cache_entry_is_found_moved_aside_and_made_again(narrated, tmp_path, case):
    """The rebuilt narration is what a clean build gives, the build says which entries were damaged, and the
    repair is kept: the next build finds nothing wrong.

    Where only encodings were damaged, it is the clean build exactly (decoded length, captions, transcript).
    Where speech is spoken again, espeak-ng may say it a few samples differently from the first time (its
    speech depends on what the process said before), which can move a chapter by a frame step (0.4 s): there
    every caption must still be there and the narration within a second of the clean one's length, where
    a damaged sentence left out would cost it several seconds."""
    cache, out = tmp_path / "cache", tmp_path / "out"
    shutil.copytree(narrated["cache"], cache)
    rng = random.Random(case)
    entries = sorted(p for p in cache.glob("*/*") if p.suffix in (".wav", ".mp3", ".aac", ".json")
                     and p.parent.name in ("speech", "encoded"))
    if case in DAMAGE:
        pattern, ways, everything_read = DAMAGE[case]
        damaged = rng.sample(sorted(cache.glob(pattern)), len(ways))
        for path, way in zip(damaged, ways):
            way(path)
        if case.startswith("a truncated AAC"):
            layout = sorted(cache.glob("encoded/*.json"))[0]
            layout.write_text(layout.read_text().replace('"length": ', '"length": 1'))
            damaged.append(layout)
        if everything_read:
            shutil.rmtree(cache / "encoded")
    else:
        damaged = rng.sample(entries, len(entries) // 5)
        for path in damaged:
            rng.choice([_half, _empty, _zeros, _header_only, _odd_length])(path)

    result = narrate(narrated["source"], out, cache)
    assert result.returncode == 0, result.stderr
    report = audio_report(out)
    heard, clean = listened(out / B12.stem), narrated["listened"]
    if not any(path.suffix == ".wav" for path in damaged):
        assert heard == clean
    else:
        assert heard["transcript"] == clean["transcript"]
        assert cue_ids(heard["vtt"]) == cue_ids(clean["vtt"])
        assert abs(heard["mp3"] - clean["mp3"]) <= 22050 and abs(heard["m4b"] - clean["m4b"]) <= 22050
    named = [line for line in result.stderr.splitlines() if "warning: damaged cache entry" in line]
    assert report["cache_repaired"] == len(named) == len(report["damaged_entries"]) > 0
    if case in DAMAGE:                      # every damaged entry that the build needed is named
        assert len(named) == len(damaged), result.stderr
        for path in damaged:
            assert any(path.name in line for line in named), f"{path.name} not named:\n{result.stderr}"
            assert path.with_name(path.name + ".damaged").is_file(), "not moved aside"
    shutil.rmtree(out)
    again = narrate(narrated["source"], out, cache)
    assert again.returncode == 0 and audio_report(out)["cache_repaired"] == 0, again.stderr
    assert audio_report(out)["synthesized"] == 0 and audio_report(out)["encoded"] == 0


def test_a_cache_folder_that_is_a_file_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    (cache).mkdir()
    (cache / "encoded").write_text("not a folder")
    result = run_publish("build", str(B12), "--format", "audio", "--out", str(tmp_path / "out"), "--cache", str(cache))
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert "cache/encoded" in result.stderr and "is a file, not a folder" in result.stderr
    assert "--cache" in result.stderr and "delete" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / B12.stem).exists()

    whole = tmp_path / "cache-file"
    whole.write_text("")
    result = run_publish("build", str(B12), "--format", "html", "--out", str(tmp_path / "out"), "--cache", str(whole))
    assert result.returncode == EXIT_ENVIRONMENT and "cache-file: error:" in result.stderr, result.stderr


# -- temporary files ---------------------------------------------------------------------------------------

def test_the_next_build_removes_what_a_killed_build_was_writing(tmp_path):
    """Temporary files of a process that has ended go, damaged entries go after an hour; a running build's stay."""
    from pipeline.cache import prune
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(ended.stdout), os.getpid()
    key = "ab" * 32
    (tmp_path / "speech").mkdir()
    (tmp_path / "encoded").mkdir()
    gone = [tmp_path / "speech" / f"{key}.wav.{dead}-0badc0de.tmp", tmp_path / "encoded" / f"{key}.mp3.{dead}.tmp",
            tmp_path / "speech" / "tmpab12cd34.wav", tmp_path / "encoded" / f"{key}.aac.damaged",
            *(tmp_path / f"{memo}.{dead}-00ff00ff.tmp" for memo in ("versions.json", "languages.json.sha256",
                                                                       "espeak-restore.json"))]
    kept = [tmp_path / "speech" / f"{key}.wav.{alive}-0badc0de.tmp", tmp_path / "speech" / "notes.tmp"]
    hour_ago = time.time() - 3700
    for path in gone + kept:
        path.write_bytes(b"x" * 100)
        os.utime(path, (hour_ago, hour_ago))
    assert prune(tmp_path, 2**30) == (len(gone), 100 * len(gone))
    assert not any(path.exists() for path in gone) and all(path.exists() for path in kept)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_a_build_stopped_while_speaking_leaves_no_temporary_file_after_the_next_build(tmp_path, sig):
    source = tmp_path / B12.name
    shutil.copy(B12, source)
    cache, out = tmp_path / "cache", tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "build", str(source), "--format", "audio,html",
                             "--out", str(out), "--cache", str(cache)], cwd=ROOT,
                            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(cache.glob("speech/*.wav"))) < 20:
        assert proc.poll() is None and time.monotonic() < deadline, "the build ended before it could be stopped"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED and "Traceback" not in err, err
    assert not (out / B12.stem).exists()
    result = narrate(source, out, cache)
    assert result.returncode == 0, result.stderr
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")], "temporary files left in the cache"
    assert audio_report(out)["cache_repaired"] == 0


# -- publishing: all old or all new ---------------------------------------------------------------------------

def _project(base: Path, edited: bool) -> Path:
    project = base / ("new" if edited else "old")
    (project / "source").mkdir(parents=True)
    text = B12.read_text()
    (project / "source" / B12.name).write_text(text.replace("Eggs", "Hen eggs") if edited else text)
    return project


def _build(project: Path, formats: str = QUICK, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "build", str(project / "source" / B12.name),
                             "--format", formats, "--out", str(project / "output"), "--cache", str(project / ".cache")],
                            cwd=ROOT,
                            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _snapshot_through(folder_fd: int) -> dict[str, bytes] | None:
    """What a reader that opened the folder once sees."""
    try:
        names = os.listdir(folder_fd)
        files = {}
        for name in names:
            fd = os.open(name, os.O_RDONLY, dir_fd=folder_fd)
            with os.fdopen(fd, "rb") as f:
                files[name] = _comparable(name, f.read())
    except FileNotFoundError:
        return None
    return files


def test_a_build_killed_anywhere_leaves_the_folder_all_old_or_all_new(tmp_path):
    """Killed at random moments, publishing included (slowed by a pause between its steps), the article's
    folder is at every instant the previous build or the new one, with a manifest that matches."""
    old, new = _project(tmp_path, edited=False), _project(tmp_path, edited=True)
    reference = tmp_path / "reference"
    shutil.copytree(new, reference)
    for project in (old, reference):
        assert _build(project).wait(timeout=300) == 0
    before = contents(old / "output" / B12.stem)
    after = contents(reference / "output" / B12.stem)
    assert before != after and set(before) == set(after)
    folder = old / "output" / B12.stem
    shutil.copytree(old / "output", tmp_path / "old-output")
    shutil.copy(new / "source" / B12.name, old / "source" / B12.name)

    rng = random.Random(20261130)
    outcomes = set()
    for attempt in range(6):
        proc = _build(old, PUBLISH_TEST_PUBLISH_PAUSE="0.3")
        stop_at = time.monotonic() + rng.uniform(0.5, 6.0)
        seen = []
        while proc.poll() is None and time.monotonic() < stop_at:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                snapshot = _snapshot_through(fd)
                # A folder swapped out while it was read is then removed: what was read of it is not what is there.
                still_there = os.fstat(fd).st_ino == os.stat(folder).st_ino
            finally:
                os.close(fd)
            if snapshot and still_there:
                seen.append(snapshot)
            time.sleep(0.02)
        proc.kill()
        proc.wait(timeout=60)
        for files in seen:                     # what readers saw while the build ran
            assert files in (before, after), ("a reader saw a mix of two builds: " + repr(
                {name: (data == before.get(name), data == after.get(name)) for name, data in files.items()}))
        now = contents(folder)
        assert now in (before, after), f"attempt {attempt}: the folder is a mix of two builds"
        assert manifest_matches(folder)
        outcomes.add("new" if now == after else "old")
        if now == after:                       # published: start again from the old build
            shutil.rmtree(old / "output")
            shutil.copytree(tmp_path / "old-output", old / "output")
    finished = _build(old)
    assert finished.wait(timeout=300) == 0, finished.stderr.read()
    assert contents(folder) == after and manifest_matches(folder)
    assert not list((old / "output").glob(f".{B12.stem}.staging-*")), "a killed build's staging folder was left"
    assert "old" in outcomes, "no kill landed before the swap"


def test_a_build_of_one_format_keeps_the_others_from_the_previous_build(tmp_path):
    project = _project(tmp_path, edited=False)
    assert _build(project, "html").wait(timeout=300) == 0
    folder = project / "output" / B12.stem
    html = contents(folder)
    folder.chmod(0o2770)                   # as set up for a web server's group
    assert _build(project, "epub").wait(timeout=300) == 0
    now = contents(folder)
    assert folder.stat().st_mode & 0o7777 == 0o2770, "the new folder lost the permissions given to the old one"
    assert {name: data for name, data in now.items() if name in html and name != "manifest.json"} == \
        {name: data for name, data in html.items() if name != "manifest.json"}
    assert f"{B12.stem}.epub" in now and manifest_matches(folder)
    formats = {entry["format"] for entry in json.loads(now["manifest.json"])[0]}
    assert formats == {"html", "epub"}


# -- the lock ----------------------------------------------------------------------------------------------------

LOCK_RACE = """
import os, sys, time
from pathlib import Path
from pipeline.build import article_lock
out, rounds = Path(sys.argv[1]), int(sys.argv[2])
marker = out / "holder"
for _ in range(rounds):
    lock = article_lock(out, "article")
    with lock:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            sys.exit("two processes held the lock at once")
        os.close(fd)
        time.sleep(0.0005)
        os.unlink(marker)
"""


def test_the_article_lock_is_held_by_one_process_at_a_time(tmp_path):
    racers = [subprocess.Popen([sys.executable, "-c", LOCK_RACE, str(tmp_path), "300"], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True) for _ in range(4)]
    for racer in racers:
        _, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
    assert (tmp_path / ".article.lock").is_file(), "the lock file must stay in place"


def test_a_second_build_waits_for_the_first_and_wait_bounds_it(tmp_path):
    project = _project(tmp_path, edited=False)
    first = _build(project)
    lock = project / "output" / f".{B12.stem}.lock"
    deadline = time.monotonic() + 120
    while not list((project / "output").glob(f".{B12.stem}.staging-*")):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)           # paused, it holds the lock for as long as the test needs
    try:
        bounded = run_publish("build", str(project / "source" / B12.name), "--format", QUICK, "--out",
                              str(project / "output"), "--cache", str(project / ".cache"), "--wait", "1")
        assert bounded.returncode == EXIT_LOCK_WAIT, bounded.stderr
        assert "waiting for another build of this article" in bounded.stderr
        assert "still running after 1 s (--wait)" in bounded.stderr and "how to fix:" in bounded.stderr
        second = _build(project)
        time.sleep(3)
        assert second.poll() is None, "the second build did not wait"
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0
    assert second.wait(timeout=300) == 0
    assert "waiting for another build of this article" in second.stderr.read()
    assert lock.is_file() and manifest_matches(project / "output" / B12.stem)


# -- environment errors and their exit codes ----------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB file system."""
    with small_filesystem(tmp_path / "disk", "1m") as mount:
        yield mount


def _read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


@pytest.mark.parametrize("case", ["report is a folder", "report folder missing", "report on a read-only disk",
                                  "out is a file", "cache on a read-only disk", "cache is a file"])
def test_each_environment_problem_has_its_exit_code_a_location_and_a_fix(tmp_path, small_disk, case):
    out, cache, report = tmp_path / "out", tmp_path / "cache", tmp_path / "report.json"
    if case == "report is a folder":
        report.mkdir()
        expected = "report.json: error: the report file is a folder"
    elif case == "report folder missing":
        report = tmp_path / "nowhere" / "report.json"
        expected = "report.json: error: the report's folder does not exist"
    elif case == "report on a read-only disk":
        report = small_disk / "report.json"
        _read_only(small_disk)
        expected = "report.json: error: the report file cannot be written here"
    elif case == "out is a file":
        out.write_text("")
        expected = "out: error: the output folder is a file, not a folder"
    elif case == "cache on a read-only disk":
        cache = small_disk / "cache"
        _read_only(small_disk)
        expected = "cache: error: cannot write in the cache folder (Read-only file system)"
    else:
        cache.write_text("")
        expected = "cache: error: the cache folder is a file, not a folder"
    result = run_publish("build", str(B12), "--format", "html", "--out", str(out), "--cache", str(cache),
                         "--report", str(report))
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert expected in result.stderr and "how to fix:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert not (out / B12.stem).exists() if out.is_dir() else True


def test_a_full_output_disk_is_a_clear_error_and_keeps_the_previous_build(tmp_path, small_disk):
    out = small_disk / "output"
    first = run_publish("build", str(B12), "--format", "html", "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert first.returncode == 0, first.stderr
    before = contents(out / B12.stem)
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True)    # until the disk is full
    source = tmp_path / B12.name
    source.write_text(B12.read_text().replace("Eggs", "Hen eggs"))
    result = run_publish("build", str(source), "--format", "html", "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert result.returncode == EXIT_ENVIRONMENT, result.stderr
    assert "No space left on device" in result.stderr and "free some disk space" in result.stderr
    assert "Traceback" not in result.stderr
    assert contents(out / B12.stem) == before and manifest_matches(out / B12.stem)
    assert not list(out.glob(".*staging*")), "a staging folder was left on the full disk"


def test_a_full_cache_disk_ends_the_build_with_an_error_naming_the_cache(narrated, tmp_path):
    """The speech is all there, on a disk with no room left for the chapters' encodings."""
    speech = sum(-(-p.stat().st_size // 4096) * 4096 for p in (narrated["cache"] / "speech").iterdir())   # in pages
    with small_filesystem(tmp_path / "disk", speech + 256 * 1024) as mount:
        shutil.copytree(narrated["cache"] / "speech", mount / "cache" / "speech")
        result = narrate(narrated["source"], tmp_path / "out", mount / "cache", timeout=120)   # not a hang
        assert result.returncode == EXIT_ENVIRONMENT, result.stderr
        assert "the audio stage cannot write in the cache folder (No space left on device)" in result.stderr
        assert "free some disk space, or choose another cache folder with --cache" in result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "out" / B12.stem).exists()


def test_a_build_with_nothing_to_do_needs_neither_ffmpeg_nor_espeak(narrated, tmp_path):
    """Outputs made before stay current when the programs that made them are gone (or not on the PATH)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    # First a build with the programs there: it stamps the outputs anew if anything was installed since
    # (another package in site-packages, say), as the last build before the programs went would have.
    assert run_publish("build", str(narrated["source"]), "--format", "audio", "--out", str(narrated["folder"].parent),
                       "--cache", str(narrated["cache"])).returncode == 0
    result = run_publish("build", str(narrated["source"]), "--format", "audio", "--out",
                         str(narrated["folder"].parent), "--cache", str(narrated["cache"]),
                         "--report", str(tmp_path / "report.json"), env={"PATH": str(empty)})
    assert result.returncode == 0, result.stderr
    stages = json.loads((tmp_path / "report.json").read_text())["articles"][0]["stages"]
    assert [stage["status"] for stage in stages] == ["cached"]
