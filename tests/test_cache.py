"""The cache stays within its limit, losing what was used longest ago and never what a running build may read."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import B12, folder_bytes, narrate, run_publish
from pipeline.cache import parse_size, prune

DAY = 86400


def cache_bytes(cache: Path) -> int:
    return sum(p.stat().st_size for folder in ("speech", "encoded") for p in (cache / folder).iterdir())


def test_the_entries_used_longest_ago_go_first_and_recent_ones_stay(tmp_path):
    now = time.time()

    def entry(folder: str, letter: str, suffix: str) -> str:      # the stages name entries by a SHA-256 digest
        return f"{folder}/{letter * 64}.{suffix}"

    ages = {entry("speech", "a", "wav"): 9, entry("speech", "b", "wav"): 3, entry("encoded", "c", "mp3"): 5,
            entry("encoded", "c", "json"): 5, entry("speech", "e", "wav"): 0}
    for name, days in ages.items():
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - days * DAY, now - days * DAY))
    others = [tmp_path / "stamps" / "old.json", tmp_path / "speech" / "notes.wav"]    # not entries: never removed
    (tmp_path / "stamps").mkdir()
    for path in others:
        path.write_bytes(b"x" * 5000)
        os.utime(path, (now - 30 * DAY, now - 30 * DAY))

    # the stamp counts towards the limit (5000 bytes), though only entries are removed; the other file does not
    assert prune(tmp_path, 10000, now) == (0, 0)                  # within the limit: nothing goes
    assert prune(tmp_path, 7500, now) == (3, 3000)                # the oldest three, down to 7000 bytes
    left = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert left == {entry("speech", "b", "wav"), entry("speech", "e", "wav"), "stamps/old.json", "speech/notes.wav"}
    assert prune(tmp_path, 0, now) == (1, 1000)                   # used within the hour: kept, whatever the size
    assert (tmp_path / entry("speech", "e", "wav")).is_file() and all(path.is_file() for path in others)


@pytest.mark.parametrize("text, size", [("500M", 500 * 2**20), ("2G", 2 * 2**30), ("1.5GiB", 3 * 2**29),
                                        ("64kb", 65536), ("1000", 1000)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_a_wrong_size_is_a_usage_error(tmp_path):
    result = run_publish("build", str(B12), "--cache-limit", "lots", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "`lots` is not a size: write it like 500M or 2G" in result.stderr and "Traceback" not in result.stderr


def test_a_build_keeps_the_cache_within_its_limit_and_what_it_used(tmp_path):
    source = tmp_path / B12.name
    shutil.copy(B12, source)
    cache, out = tmp_path / "cache", tmp_path / "out"

    narrate(source)
    before = cache_bytes(cache)
    assert before > 30 * 2**20                                     # speech and encodings of 14 chapters
    for path in cache.rglob("*"):                                 # as if it had been built two days ago
        os.utime(path, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    source.write_text(source.read_text().replace("Another accessible source of dietary B12.",
                                                 "Another good source of dietary B12."))
    _, said = narrate(source, "--cache-limit", "20M", "--verbose")
    assert cache_bytes(cache) <= 20 * 2**20 < before
    assert "cache: removed" in said
    shutil.rmtree(out)
    again, _ = narrate(source, "--cache-limit", "20M")            # what the last build used is all still there
    assert again["synthesized"] == 0 and again["encoded"] == 0


def _wav(path: Path, samples: int = 2000) -> bytes:
    """A real 16-bit mono WAV, as espeak-ng writes them."""
    import wave
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(bytes(range(256)) * (samples * 2 // 256))
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["cut to its header", "cut short", "one byte more", "zero-filled", "emptied",
                                    "a sample changed", "sidecar changed"])
def test_a_damaged_entry_is_moved_aside_and_named(tmp_path, damage):
    from pipeline.cache import read_entry, store, verified
    made = tmp_path / "made.wav"
    data = _wav(made)
    target = tmp_path / f"{'c' * 64}.wav"
    store(made, target)
    found: list[str] = []
    assert read_entry(target, found) == data and found == []     # whole: read, nothing to report
    sidecar = target.with_name(target.name + ".sha256")
    damaged = {"cut to its header": data[:44], "cut short": data[:-100], "one byte more": data + b"\0",
               "zero-filled": bytes(len(data)), "emptied": b"",
               "a sample changed": data[:500] + bytes([data[500] ^ 1]) + data[501:], "sidecar changed": data}[damage]
    target.write_bytes(damaged)
    if damage == "sidecar changed":
        sidecar.write_text("0" * 64 + f" {len(data)}\n")
    assert not verified(target, found)
    assert len(found) == 1 and target.name in found[0] and "checksum" in found[0]
    assert not target.exists() and target.with_name(target.name + ".damaged").read_bytes() == damaged


def test_a_broken_wav_is_never_stored(tmp_path):
    from pipeline.cache import store, wav_problem
    from pipeline.errors import EnvironmentProblem
    made = tmp_path / "made.wav"
    data = _wav(made)
    assert wav_problem(data) is None
    assert wav_problem(data[:44]) == "its RIFF size does not match its length"
    header_only = data[:4] + (36).to_bytes(4, "little") + data[8:44]          # the header says so, the data does not
    assert wav_problem(header_only) == "its data size does not match its length"
    odd = data[:4] + (len(data) - 8 - 1).to_bytes(4, "little") + data[8:40] + (len(data) - 45).to_bytes(4, "little") \
        + data[44:-1]
    assert wav_problem(odd) == "its data is not a whole number of samples"
    assert wav_problem(data[:-1]) == "its RIFF size does not match its length"
    assert wav_problem(bytes(len(data))) == "not a WAV file"
    made.write_bytes(data[:-1])
    target = tmp_path / f"{'d' * 64}.wav"
    with pytest.raises(EnvironmentProblem, match="broken WAV"):
        store(made, target)
    assert not target.exists()


def test_pruning_a_cache_with_a_file_in_place_of_a_folder_is_harmless(tmp_path):
    (tmp_path / "encoded").write_text("not a folder")
    assert prune(tmp_path, 0) == (0, 0)


def test_pruning_spares_only_what_narrations_at_work_may_read(tmp_path):
    """Entries are spared since the oldest reader at work (a narration being made) started, not for an hour: a
    batch that makes more than the limit keeps within it, and a build running beside it keeps what it may read."""
    from pipeline.cache import in_use_since, reading
    now = time.time()
    for name, hours in (("a", 3), ("b", 2), ("c", 0.2)):
        path = tmp_path / "speech" / f"{name * 64}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1000)
        os.utime(path, (now - hours * 3600, now - hours * 3600))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left_behind = tmp_path / "builds" / f"{ended.stdout.strip()}-0badf00d.build"      # a killed build's
    left_behind.parent.mkdir()
    left_behind.touch()
    os.utime(left_behind, (now - 5 * 3600, now - 5 * 3600))
    with reading(tmp_path):
        (registered,) = [p for p in (tmp_path / "builds").iterdir() if p != left_behind]
        os.utime(registered, (now - 2.5 * 3600, now - 2.5 * 3600))       # began two and a half hours ago
        assert in_use_since(tmp_path, now) == pytest.approx(now - 2.5 * 3600)
        assert not left_behind.exists()                                   # its process has ended
        assert prune(tmp_path, 0, now, spare_since=in_use_since(tmp_path, now)) == (1, 1000)   # a alone
    assert not registered.exists() and in_use_since(tmp_path, now) == now
    assert prune(tmp_path, 0, now, spare_since=in_use_since(tmp_path, now)) == (2, 2000)       # b and c too


def test_a_batch_keeps_the_cache_within_its_limit_as_it_goes(tmp_path):
    """A batch whose narrations together hold far more than the limit never holds more than the limit: what a
    finished narration used makes room for the next ones, not only once the batch ends."""
    sources = [_handout(tmp_path / f"handout-{n}.yaml", n) for n in range(6)]
    alone = tmp_path / "alone"
    assert run_publish("build", str(sources[0]), "--format", "mp3", "--out", str(alone / "out"),
                       "--cache", str(alone / "cache")).returncode == 0
    one = folder_bytes(alone / "cache")           # what one narration leaves in the cache (with the stamps)
    limit = 3 * one                               # two narrations are made at once on two cores: room for them
    cache, most, done = tmp_path / "cache", [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], folder_bytes(cache))
            time.sleep(0.01)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_publish("build", *map(str, sources), "--format", "mp3", "--out", str(tmp_path / "out"),
                             "--cache", str(cache), "--cache-limit", str(limit), "--jobs", "2")
    finally:
        done.set()
        watcher.join()
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("handout-*/handout-*.mp3"))) == 6
    assert most[0] <= limit < 6 * one, (most[0], limit, one)      # at the end of the batch alone: 6 narrations


def _handout(path: Path, n: int) -> Path:
    """A short article whose every sentence is its own (no speech shared with the others)."""
    word = ("apple", "birch", "cedar", "daisy", "elder", "fern")[n]
    path.write_text(f"title: Handout about the {word}\nlanguage: en\nbody:\n" + "".join(
        f"  - p: The {word} note number {k} says to drink water with each {word} meal.\n" for k in range(6)),
        encoding="utf-8")
    return path


def test_an_entry_pruned_between_being_read_and_being_marked_is_made_again(tmp_path):
    """Another build's pruning may remove an entry a narration has just read but not yet marked as used (it was
    not in use yet): the entry then counts as missing, so the narration makes it again instead of handing on a
    path to a file that is gone (seen once as "cannot write in the cache folder" on a batch's shared sentence)."""
    from pipeline.cache import mark_used, read_entry, write_entry
    entry = tmp_path / ("ab" * 32 + ".json")
    write_entry(entry, b"{}")
    assert mark_used(entry) is True and read_entry(entry, []) == b"{}"
    entry.unlink()
    assert mark_used(entry) is False                     # what the narration is told when it happens
