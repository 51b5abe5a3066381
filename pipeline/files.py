"""File utilities of the build: hashing, atomic writes, the manifest, and swapping a whole folder into place.

Everything here is about leaving no file half-written, whatever stops the
build (an error, Ctrl-C, `kill`, a power cut): a file is written beside
its place and renamed over it, and what must survive a power cut is
flushed to the disk (fsync) before the rename that makes it visible.
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(path: Path) -> None:
    """Flush a folder's entries (the names of the files in it) to the disk: a rename is durable only then."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass                      # some file systems cannot sync a folder; nothing more can be done there
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write *path* whole or not at all: beside it under a temporary name, flushed, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)          # mkstemp makes it private; outputs are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def link_or_copy(source: Path, target: Path) -> None:
    """A second name for a published file (published files are never changed in place), or a copy where the
    file system refuses links."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
        return manifest if isinstance(manifest, dict) else {}
    except (OSError, ValueError):
        return {}


def manifest_bytes(source: str, outputs: list[dict], stage_prints: dict, article: dict | None = None) -> bytes:
    """The manifest: the article's facts (for the catalogue), every output with its format, size and SHA-256,
    and each stage's fingerprint."""
    manifest = {"source": source, **({"article": article} if article is not None else {}),
                "outputs": sorted(outputs, key=lambda o: (o["format"], o["path"])),
                "stages": dict(sorted(stage_prints.items()))}
    return (json.dumps(manifest, indent=2) + "\n").encode()


_RENAME_EXCHANGE = 2            # renameat2's flag (Linux 3.15): swap two names in one step
_AT_FDCWD = -100


def _exchange(first: Path, second: Path) -> bool:
    """Swap two folders' names in one atomic step; False where the system cannot (then nothing happened)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)     # the C library the process runs on
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False                 # this file system cannot swap
    raise OSError(code, os.strerror(code), str(second))


def swap_in(new: Path, target: Path) -> Path | None:
    """Make the complete folder *new* appear as *target* in one step; returns where the previous *target*
    now is (to be removed once nothing needs it), or None if there was none.

    Readers see the previous folder or the new one, never a mix: the swap
    is one rename (renameat2 RENAME_EXCHANGE on Linux), after which the
    previous folder is at *new*'s old name. Where a file system cannot swap,
    the previous folder is moved aside first and the new one moved in: two
    renames, between which *target* is briefly absent (still never a mix).
    *new* and *target* must be on one file system.
    """
    if target.is_dir():                  # the folder keeps the permissions it was given (e.g. for a web server)
        os.chmod(new, target.stat().st_mode & 0o7777)
    fsync_folder(new)
    previous: Path | None = new
    if not target.exists():
        os.rename(new, target)
        previous = None
    elif not _exchange(new, target):
        previous = new.with_name(new.name + ".previous")
        os.rename(target, previous)
        os.rename(new, target)
    fsync_folder(target.parent)
    return previous
