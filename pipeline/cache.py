"""The build cache's size: synthesized speech and encoded chapters are kept within a limit.

Speech and encodings are found by what they are made of, so they pile up:
every edit leaves the old sentence's speech and its chapter's old encodings
behind, and every article adds its own (the B12 article: 45 MB). The cache
is kept within its limit (`--cache-limit`, 2 GiB unless given) by removing
the entries used longest ago: after each build that ran a stage (in the
live preview, after each narration), and in a batch as its narrations
finish, once what they add could take it past the limit (`KeptWithin`), so
that a long batch keeps within it as it goes. Everything in the cache
counts towards the limit (the stamps, compiled templates and memos too),
but only entries are removed. A build marks an entry as used (its file
time) whenever it finds it, so what the articles still need stays. The
speech of a chapter whose encoding is found is not read, so it ages and
goes before the encodings: it is needed again only when that chapter is
edited (and then spoken again).

An entry that a narration being made may be about to read is never
removed. Whatever reads entries registers while it does (`reading`: each
narration as its stage runs, `publish say`), as
``builds/<pid>-<token>.build`` with the time it started, and the pruning
spares every entry used since the oldest of them started. What a batch's
finished narrations used can go as soon as the cache needs the room.

Every entry checks itself. Beside it a small sidecar (``<entry>.sha256``)
holds its length and SHA-256, written before the entry is moved into place,
and a WAV's header must also agree with its data. (The speech cache's WAVs
carry their checksum inside instead, and are verified by the audio stage:
see stages/audio/speech_wav.py.) An entry is verified
whenever a build reads it; one that does not match (cut short, emptied,
zero-filled, half-written by a power cut) is moved aside as
``<entry>.damaged``, named in a warning, counted in the build report, and
made again. Entries are written under temporary names that say which
process writes them (``<entry>.<pid>-<token>.tmp``): the pruning after the
next build removes those whose process has ended (a killed build's).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Callable

from .errors import EnvironmentProblem, Problem, cannot_use, display_path

DEFAULT_LIMIT = 2 * 2**30
KEPT_FOLDERS = ("speech", "encoded")     # the stamps and the memos are a few kB each: never pruned
BUILDS = "builds"                        # one file per reader at work (see `reading`)
TEMPLATES = "templates"                   # the themes' compiled templates (Jinja2's; theme.keep_compiled_templates)
FOLDERS = (*KEPT_FOLDERS, "stamps", BUILDS, TEMPLATES)     # made by the stages and the build; checked before a build
_NAME = r"[0-9a-f]{64}\.(?:wav|mp3|aac|json)"
ENTRY = re.compile(_NAME + r"(?:\.sha256)?")           # only files the stages wrote are ever removed
# the memos beside the folders (`remembered`: the tools' versions, the languages' ISO 639-2 codes;
# engines.RESTORING_CHECKED): counted, never pruned
_MEMO = r"(?:versions|languages|espeak-restore)\.json"
MEMOS = re.compile(_MEMO + r"(?:\.sha256)?")
DAMAGED = re.compile(_NAME + r"\.damaged")              # moved aside when found damaged
# being written by the process numbered (entries, their sidecars, stamps, the memos, write probes)
TEMP = re.compile(r"(?:(?:[0-9a-f]{64}\.(?:wav|mp3|aac|json)|[0-9a-f]{32}\.json|" + _MEMO + r")(?:\.sha256)?|probe)"
                  r"\.(\d+)(?:-[0-9a-f]{8})?\.tmp")
LEGACY_TEMP = re.compile(r"tmp\w{8}\.wav")               # written by earlier versions, without their process
RECENT = 3600                            # seconds
BUILD_FILE = re.compile(r"(\d+)-[0-9a-f]{8}\.build")
STALE = 86400                            # seconds: a temporary file this old is left over, whoever wrote it
SIDECAR = ".sha256"
FIX = "choose another cache folder with --cache DIR, or delete this one (it only saves time; builds make it again)"


def check_folder(cache_dir: Path) -> None:
    """Make sure the cache and its folders can be written, before any work starts (an EnvironmentProblem if not)."""
    for folder in (cache_dir, *(cache_dir / name for name in FOLDERS)):
        if folder.exists() and not folder.is_dir():
            raise EnvironmentProblem(Problem(
                display_path(folder), 0, 0, "the cache folder is a file, not a folder",
                "delete that file (the cache only saves time; builds make it again), "
                "or choose another cache folder with --cache DIR"))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=f"probe.{os.getpid()}-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise cannot_use(folder, "cannot write in the cache folder", exc, FIX) from None


def temp_for(target: Path) -> Path:
    """A temporary name beside *target* that the pruning recognises, and whose writer it can tell has ended."""
    return target.with_name(f"{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def wav_problem(data: bytes) -> str | None:
    """What is wrong with a WAV file's header against its data (None if nothing): the RIFF and data chunk
    sizes must agree with the file's length, and the sound must be whole 16-bit samples."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return "not a WAV file"
    if int.from_bytes(data[4:8], "little") != len(data) - 8:
        return "its RIFF size does not match its length"
    position, block = 12, 0
    while position + 8 <= len(data):
        chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        body = position + 8
        if chunk == b"fmt ":
            block = int.from_bytes(data[body + 12:body + 14], "little")
        elif chunk == b"data":
            if size != len(data) - body:
                return "its data size does not match its length"
            if not block or size % block or size == 0:
                return "its data is not a whole number of samples"
            return None
        position = body + size + (size & 1)
    return "it has no sound"


def _seal(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}\n"


def store(tmp: Path, target: Path, data: bytes | None = None) -> None:
    """Move the finished temporary file *tmp* into the cache as *target*, with its sidecar; *data* is what
    *tmp* holds, if the caller has read it already.

    The sidecar goes first: an entry is never seen without what it must be.
    A WAV whose header does not match its data is not kept (a PublishError
    says so: the engine wrote something broken)."""
    data = tmp.read_bytes() if data is None else data
    if target.suffix == ".wav" and (problem := wav_problem(data)):
        raise EnvironmentProblem(Problem(display_path(target), 0, 0, f"the speech engine wrote a broken WAV: {problem}",
                                         "check that the disk is not full, then build again"))
    sidecar = target.with_name(target.name + SIDECAR)
    sidecar_tmp = temp_for(sidecar)
    try:
        sidecar_tmp.write_text(_seal(data))
        os.replace(sidecar_tmp, sidecar)
    finally:
        sidecar_tmp.unlink(missing_ok=True)
    os.replace(tmp, target)


def write_entry(target: Path, data: bytes) -> None:
    """Write a small entry (a layout, a memo, a stamp) into the cache, with its sidecar."""
    tmp = temp_for(target)
    try:
        tmp.write_bytes(data)
        store(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remembered(cache_dir: Path | None, memo: str, key: str, ask: Callable[[], str]) -> str:
    """What `ask()` answers about *key*, kept in the cache folder's memo *memo* (a JSON object of answers), so
    that later builds and the other workers need not ask again; asked every time without a cache folder. A
    damaged memo is moved aside and asked again; an answer that cannot be written only costs the question."""
    path = cache_dir / memo if cache_dir else None
    seen: dict = {}
    if path:
        try:
            seen = json.loads(read_entry(path, []) or b"{}")
        except (OSError, ValueError):
            pass
        seen = seen if isinstance(seen, dict) else {}
        if isinstance(seen.get(key), str):
            return seen[key]
    answer = ask()
    if path and answer:
        try:                                # whole or not at all: builds may run side by side
            path.parent.mkdir(parents=True, exist_ok=True)
            write_entry(path, json.dumps({**seen, key: answer}, indent=1, sort_keys=True).encode())
        except OSError:
            pass
    return answer


def entry_bytes(target: Path, damaged: list[str]) -> bytes | None:
    """What the entry's file holds, not yet checked; None if there is none (a folder in its place is moved aside
    and named in *damaged*)."""
    try:
        return target.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        move_aside(target, "a folder where a file belongs", damaged)
        return None


def read_entry(target: Path, damaged: list[str]) -> bytes | None:
    """The entry's bytes if it is there and whole; None if it must be made (again). A damaged entry is moved
    aside and named in *damaged*."""
    data = entry_bytes(target, damaged)
    if data is None:
        return None
    sidecar = target.with_name(target.name + SIDECAR)
    try:
        seal = sidecar.read_bytes()
    except FileNotFoundError:
        return None            # written by an earlier version, or its sidecar was pruned: made again, silently
    except OSError:
        seal = b""
    problem = None if seal == _seal(data).encode() else "it does not match its length and checksum"
    if problem is None and target.suffix == ".wav":
        problem = wav_problem(data)
    if problem:
        move_aside(target, problem, damaged)
        return None
    return data if mark_used(target, sidecar) else None


def verified(target: Path, damaged: list[str]) -> bool:
    """Whether the entry is there and whole (see read_entry)."""
    return read_entry(target, damaged) is not None


def move_aside(target: Path, problem: str, damaged: list[str]) -> None:
    try:
        os.replace(target, target.with_name(target.name + ".damaged"))
    except IsADirectoryError:
        import shutil
        shutil.rmtree(target, ignore_errors=True)
    except FileNotFoundError:
        return                         # another build moved it first
    damaged.append(f"{display_path(target)} ({problem})")


def mark_used(*paths: Path) -> bool:
    """Note that a build has just found these entries (a read-only cache stays as it is). False if one is gone:
    another build's pruning removed it between its being read and being marked (it was not in use yet, see
    `reading`), so the caller makes it again rather than hand on a path to a file that is no longer there."""
    for path in paths:
        try:
            os.utime(path)
        except FileNotFoundError:
            return False
        except OSError:
            pass
    return True


def parse_size(text: str) -> int:
    """A size such as `500M`, `2G` or `1.5GiB` (powers of 1024), in bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not found:
        raise ValueError(f"`{text}` is not a size: write it like 500M or 2G")
    number, unit = found.groups()
    return int(float(number) * 1024 ** " kmgt".index(unit.lower() or " "))


def _ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False                   # alive, under another user
    return False


def _leftover(name: str, modified: float, now: float) -> bool:
    """Whether a file is a temporary file (or a damaged entry) that no running build will use."""
    if now - modified > STALE:
        return bool(TEMP.fullmatch(name) or LEGACY_TEMP.fullmatch(name) or DAMAGED.fullmatch(name))
    if DAMAGED.fullmatch(name) or LEGACY_TEMP.fullmatch(name):
        return now - modified > RECENT
    found = TEMP.fullmatch(name)
    return bool(found) and _ended(int(found.group(1)))


def prune(cache_dir: Path, limit: int, now: float | None = None, spare_since: float | None = None) -> tuple[int, int]:
    """Remove what killed builds left (temporary files of ended processes, entries moved aside an hour ago and
    more), then the entries used longest ago until the cache holds at most *limit* bytes, sparing those used
    since *spare_since* (by default, in the last hour; see `in_use_since`); returns how many files and bytes
    were removed. The stamps, compiled templates and memos count towards the limit, but only files named as
    the stages name their entries are removed: a --cache pointed at the wrong folder loses nothing of anyone
    else's, and its other files do not count."""
    removed, freed, _ = _pruned(cache_dir, limit, now, spare_since)
    return removed, freed


def keep_within(cache_dir: Path, limit: int) -> tuple[int, int, int]:
    """`prune` to *limit*, sparing what the readers at work on the cache may read (`in_use_since`): the files and
    bytes removed, and the bytes the cache holds after it. What a build, the live preview and a batch call."""
    return _pruned(cache_dir, limit, None, in_use_since(cache_dir))


def _pruned(cache_dir: Path, limit: int, now: float | None, spare_since: float | None) -> tuple[int, int, int]:
    """`prune`, which also returns the bytes the cache holds after it."""
    now = time.time() if now is None else now
    spare_since = now - RECENT if spare_since is None else spare_since
    entries, leftovers, kept = [], [], 0
    for folder in ("", *FOLDERS):            # leftovers anywhere; entries to prune only in KEPT_FOLDERS
        try:
            with os.scandir(cache_dir / folder) as found:
                for entry in found:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if ENTRY.fullmatch(entry.name) and folder in KEPT_FOLDERS:
                        entries.append((info.st_mtime, info.st_size, entry.path))
                    elif _leftover(entry.name, info.st_mtime, now):
                        leftovers.append((info.st_size, entry.path))
                    elif folder not in KEPT_FOLDERS if folder else MEMOS.fullmatch(entry.name):
                        kept += info.st_size           # stamps, templates, memos: the cache's, never removed
        except OSError:                    # not there, not a folder, not readable: nothing of it to prune
            continue
    removed = freed = 0
    for size, path in leftovers:
        try:
            os.unlink(path)
            removed, freed = removed + 1, freed + size
        except OSError:
            pass
    total = kept + sum(size for _, size, _ in entries)
    for used, size, path in sorted(entries):
        if total <= limit or used >= spare_since:
            break
        for name in (path, path.removesuffix(SIDECAR) + SIDECAR):    # an entry goes with its sidecar
            try:
                os.unlink(name)
            except OSError:                        # another build removed it first (or it is the same file)
                pass
        total -= size
        removed, freed = removed + 1, freed + size
    return removed, freed, total


class KeptWithin:
    """A batch's cache kept within *limit* while its narrations add to it, pruned as they finish (`added`).

    Pruning reads the whole cache (0.2 s for 44,000 files, measured), so it is not done after every narration:
    each says what it added (its stage's report), and the cache is pruned only once what it holds could pass
    the limit with the next narrations (two may be made at once per core, none larger than the largest so far),
    and then down to a tenth of the limit below it, or two narrations' room if that is more."""

    def __init__(self, cache_dir: Path, limit: int):
        self.cache_dir, self.limit = cache_dir, limit
        self.holds: int | None = None        # as last measured, and what was added since; None: not measured
        self.largest = 0

    def added(self, size: int) -> None:
        """A narration added *size* bytes: prune if the cache may need it."""
        self.largest = max(self.largest, size)
        if self.holds is not None:
            self.holds += size
            if self.holds <= self.limit - 2 * self.largest:
                return
        room = max(self.limit // 10, 2 * self.largest)
        _, _, self.holds = keep_within(self.cache_dir, max(0, self.limit - room))


@contextlib.contextmanager
def reading(cache_dir: Path | None):
    """Register, while it lasts, something that finds and reads entries (a narration being made): the pruning
    spares every entry used since it began (see `in_use_since`)."""
    if cache_dir is None:
        yield
        return
    path = cache_dir / BUILDS / f"{os.getpid()}-{secrets.token_hex(4)}.build"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:                      # a read-only cache: nothing will be pruned from it by this build either
        path = None
    try:
        yield
    finally:
        if path is not None:
            path.unlink(missing_ok=True)


def in_use_since(cache_dir: Path, now: float | None = None) -> float:
    """Since when entries may be in use: the start of the oldest reader still at work on this cache (`reading`),
    else *now* (a registration left by a process that has ended is removed)."""
    now = time.time() if now is None else now
    since = now
    try:
        with os.scandir(cache_dir / BUILDS) as found:
            for entry in found:
                registered = BUILD_FILE.fullmatch(entry.name)
                if not registered:
                    continue
                if _ended(int(registered.group(1))):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                    continue
                with contextlib.suppress(OSError):
                    since = min(since, entry.stat().st_mtime)
    except OSError:
        pass
    return since
