"""Builds split across machines: `publish build --shard K/N` and `publish merge DIR…`.

Each of N machines builds a share of the articles, chosen from the article's
slug alone, so no machine needs to know what the others are doing and no
scheduler is needed. The share is decided by rendezvous hashing: every shard
scores the slug, and the highest score wins. Adding or removing an article
moves no other article; changing N moves only the articles that the new
number of shards takes (about 1/N of them), so each shard's cache stays
useful.

`merge` then combines the shards' output folders into one tree. Every file is
checked against the SHA-256 its shard's manifest gives before anything is
written, so a file damaged in transit (an artifact store, a copy) is refused
by name, and the merged tree is never half made.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from .files import read_manifest, sha256
from .errors import Problem, PublishError, display_path


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" → (K, N), K counted from 1. A ValueError says what is wrong."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"`{text}` is not K/N (for example 2/3: the second of three shards)")
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: K must be from 1 to {n}"
                         + (" (Kubernetes' JOB_COMPLETION_INDEX counts from 0: pass it plus one)" if k == 0 else ""))
    return k, n


def shard_of(slug: str, shards: int) -> int:
    """The shard (1 to *shards*) that builds the article *slug*: the one that scores it highest."""
    def score(k: int) -> bytes:
        return hashlib.sha256(f"{k}/{slug}".encode()).digest()
    return max(range(1, shards + 1), key=score)


def select(sources: list[Path], k: int, n: int) -> list[Path]:
    """The sources that shard *k* of *n* builds (a source's slug is its file name without `.yaml`)."""
    return [path for path in sources if shard_of(path.stem, n) == k]


# -- merging ---------------------------------------------------------------------

def merge(folders: list[Path], out: Path) -> list[str]:
    """Copy every article of the shards' output *folders* into *out*, checked; returns the slugs merged.

    Nothing is written unless every manifest is readable, every file it lists
    is present with its size and SHA-256, and no article comes from two
    shards. Each article folder then replaces its earlier copy in *out* in
    one rename, so a reader never sees an article half old and half new.
    """
    articles, problems = _verified(folders)
    if problems:
        raise PublishError(problems)
    out.mkdir(parents=True, exist_ok=True)
    for slug, (folder, manifest) in sorted(articles.items()):
        _place(folder, [entry["path"] for entry in manifest["outputs"]], out / slug)
    return sorted(articles)


def _verified(folders: list[Path]) -> tuple[dict[str, tuple[Path, dict]], list[Problem]]:
    """Every article folder of the shards with its manifest, and every problem found (all of them at once)."""
    articles: dict[str, tuple[Path, dict]] = {}
    problems: list[Problem] = []
    for root in folders:
        if not root.is_dir():
            problems.append(Problem(display_path(root), 0, 0, "no such folder",
                                    "name the output folders the shards built into (their --out)"))
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            where = display_path(folder)
            manifest = read_manifest(folder)
            entries = manifest.get("outputs")
            if not isinstance(entries, list):
                problems.append(Problem(f"{where}/manifest.json", 0, 0, "missing or unreadable manifest: the "
                                        "article's build did not finish", "build this shard again"))
                continue
            if folder.name in articles:
                other = display_path(articles[folder.name][0])
                problems.append(Problem(where, 0, 0, f"the article `{folder.name}` is also in {other}",
                                        "each shard must build its own share: give every shard the same N "
                                        "and a different K, and merge each shard's folder once"))
                continue
            problems += [p for entry in entries for p in _check(folder, entry)]
            articles[folder.name] = (folder, manifest)
    return articles, problems


def _check(folder: Path, entry: dict) -> list[Problem]:
    """Problems with one file the manifest lists: it must be a plain name, present, and as the manifest says."""
    name = entry.get("path") if isinstance(entry, dict) else None
    where = f"{display_path(folder)}/manifest.json"
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        return [Problem(where, 0, 0, f"the manifest lists `{name}`, which is not a file name of this folder",
                        "build this shard again; a manifest only lists files beside it")]
    path = folder / name
    if not path.is_file():
        return [Problem(display_path(path), 0, 0, "the file is missing, though the manifest lists it",
                        "build this shard again, or copy its output folder whole")]
    if path.stat().st_size != entry.get("bytes") or sha256(path) != entry.get("sha256"):
        return [Problem(display_path(path), 0, 0, "the file is damaged: its SHA-256 is not the one in the manifest",
                        "copy the shard's output again, or build this shard again; nothing was merged")]
    return []


def _place(folder: Path, names: list[str], target: Path) -> None:
    """Copy the listed files and the manifest into a new folder beside *target*, then swap it in."""
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.merging-"))
    try:
        for name in [*names, "manifest.json"]:
            shutil.copy2(folder / name, staging / name)
        os.chmod(staging, 0o755)            # mkdtemp makes it private; outputs are for sharing
        previous = None
        if target.exists():
            previous = target.with_name(f".{target.name}.replaced-{os.getpid()}")
            os.replace(target, previous)
        os.replace(staging, target)
        if previous:
            shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
