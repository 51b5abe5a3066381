"""The cache stays within its limit, losing what was used longest ago and never what a build just used."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import B12, narrate, run_publish
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

    assert prune(tmp_path, 5000, now) == (0, 0)                   # within the limit: nothing goes
    assert prune(tmp_path, 2500, now) == (3, 3000)                # the oldest three, down to 2000 bytes
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
