"""The build cache's size: synthesized speech and encoded chapters are kept within a limit.

Speech and encodings are found by what they are made of, so they pile up:
every edit leaves the old sentence's speech and its chapter's old encodings
behind, and every article adds its own (the B12 article: 45 MB). After each
build that ran a stage, the entries used longest ago are removed until the
cache is within its limit (`--cache-limit`, 2 GiB unless given). A build
marks an entry as used (its file time) whenever it finds it, so what the
articles still need stays. The speech of a chapter whose encoding is found
is not read, so it ages and goes before the encodings: it is needed again
only when that chapter is edited (and then spoken again). An entry used
within the last hour is never removed, whatever the size: another build may
be about to read it.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

DEFAULT_LIMIT = 2 * 2**30
KEPT_FOLDERS = ("speech", "encoded")     # the stamps and the version memo are a few kB: never pruned
ENTRY = re.compile(r"[0-9a-f]{64}\.(?:wav|mp3|aac|json)")    # only files the stages wrote are ever removed
RECENT = 3600                            # seconds


def mark_used(*paths: Path) -> None:
    """Note that a build has just found these entries (a read-only cache stays as it is)."""
    for path in paths:
        try:
            os.utime(path)
        except OSError:
            pass


def parse_size(text: str) -> int:
    """A size such as `500M`, `2G` or `1.5GiB` (powers of 1024), in bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not found:
        raise ValueError(f"`{text}` is not a size: write it like 500M or 2G")
    number, unit = found.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))


def prune(cache_dir: Path, limit: int, now: float | None = None) -> tuple[int, int]:
    """Remove the entries used longest ago until the cache holds at most *limit* bytes, sparing those used in
    the last hour; returns how many files and bytes were removed. Only files named as the stages name their
    entries count: a --cache pointed at the wrong folder loses nothing of anyone else's."""
    now = time.time() if now is None else now
    entries = []
    for folder in KEPT_FOLDERS:
        try:
            with os.scandir(cache_dir / folder) as found:
                for entry in found:
                    if ENTRY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        entries.append((info.st_mtime, info.st_size, entry.path))
        except FileNotFoundError:
            continue
    total = sum(size for _, size, _ in entries)
    removed = freed = 0
    for used, size, path in sorted(entries):
        if total <= limit or used > now - RECENT:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:                  # another build removed it first
            pass
        total -= size
        removed, freed = removed + 1, freed + size
    return removed, freed
