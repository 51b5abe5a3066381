"""The quick answer to "is this article's output still current?", before any YAML is read.

A build with nothing to do is the commonest build of all: an editor runs
`publish build` after every save, most often with nothing changed. The full
check (each stage's fingerprint in ``manifest.json``) parses the article,
loads the theme and asks every engine for its version; this one only hashes
raw bytes and reads file times.

After every successful build a stamp is kept in the cache: a key over the
raw inputs (the source and the files it references, every theme file, the
options, SOURCE_DATE_EPOCH, this package's code, and the installed engines
identified by their files' sizes and times) and the size and time of every
published file. When the key and every file still match, the outputs are
current. When anything differs, even in a way that cannot change an output
(a reinstalled library, a touched program), the build falls back to the
full check, which alone decides what is rebuilt: the stamp can only say
"nothing to do", never "rebuild this".

The programs the stages run are kept beside the key rather than in it: one
that is no longer installed cannot have changed an output made before, so
a build with nothing to do says so without ffmpeg or espeak-ng; one that
was replaced (an upgrade) sends the build to the full check.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import site
import sys
from pathlib import Path

from . import __version__
from .cache import read_entry, write_entry
from .files import sha256

# The programs the stages run. A new stage that runs another program adds it here,
# so that installing a new version of it is noticed before the full check.
PROGRAMS = ("espeak-ng", "ffmpeg")

_CODE_HASH: str | None = None


def code_hash() -> str:
    """A hash of the pipeline's own code: a changed stage must not reuse outputs of the old one."""
    global _CODE_HASH
    if _CODE_HASH is None:
        package = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
        _CODE_HASH = h.hexdigest()
    return _CODE_HASH


class InputHash:
    """A hash of labelled inputs, each prefixed with its length so that no two can run into each other."""

    def __init__(self):
        self._h = hashlib.sha256()

    def add(self, label: str, data: bytes) -> None:
        self._h.update(label.encode() + b"\0" + len(data).to_bytes(8, "big") + data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def file_identity(path: Path) -> str:
    """A file by where it is, its size and its time: a replaced file (an upgraded program) reads differently."""
    try:
        st = path.stat()
        return f"{path} {st.st_size} {st.st_mtime_ns}"
    except OSError:
        return f"{path} missing"


def environment() -> str:
    """The installed engines, by where they are and when they changed.

    Installing, upgrading or removing a Python package changes the time of
    its site-packages folder; a new version of a program replaces its file.
    (Not every folder on sys.path: the current folder's time changes with
    any file written in it.)
    """
    parts = [sys.version, __version__, code_hash()]
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    parts += [file_identity(Path(folder)) for folder in folders if Path(folder).is_dir()]
    return "\n".join(parts)


def programs() -> dict[str, str]:
    """The installed programs the stages run, each by its file's identity (those not installed are left out)."""
    found = {program: shutil.which(program) for program in PROGRAMS}
    return {program: file_identity(Path(path)) for program, path in found.items() if path}


def theme_digest(root: Path, leave_out: tuple[str, ...] = ()) -> str:
    """One hash of every file of a theme (any of them may change an output), by path and content, but the
    top-level folders *leave_out*, which a stage does not read (stages.THEME_FOLDERS_READ_BY); for another
    theme, the default theme's message catalogues too, which give the words it does not override."""
    h = InputHash()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if relative.parts[0] in leave_out:
            continue
        h.add("theme " + relative.as_posix(), path.read_bytes())
    fallback = root.parent / "default" / "locale"
    if root.name != "default" and fallback.is_dir() and "locale" not in leave_out:
        for path in sorted(p for p in fallback.rglob("*") if p.is_file()):
            h.add("default theme " + path.relative_to(fallback).as_posix(), path.read_bytes())
    return h.hexdigest()


def shared_key(theme_root: Path, options: str, epoch: int) -> str:
    """The part of every article's key that a build shares: engines, options, epoch and theme."""
    h = InputHash()
    h.add("environment", environment().encode())
    h.add("options", options.encode())
    h.add("epoch", str(epoch).encode())
    h.add("theme", theme_digest(theme_root).encode())
    return h.hexdigest()


def key(source: Path, shared: str) -> str:
    """A hash of the raw inputs of one article's build, without parsing anything."""
    h = InputHash()
    h.add("shared", shared.encode())
    h.add("source", source.read_bytes())
    return h.hexdigest()


def _stamp_file(cache_dir: Path, folder: Path) -> Path:
    name = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32]
    return cache_dir / "stamps" / f"{name}.json"


def _digest(path: Path) -> str | None:
    try:
        return sha256(path)
    except OSError:
        return None


def _published(folder: Path, manifest: dict) -> dict[str, list[int]]:
    """Size and time of every file the manifest lists: a file rewritten since changes at least its time."""
    published = {}
    for entry in manifest.get("outputs", []):
        st = (folder / entry["path"]).stat()
        published[entry["path"]] = [st.st_size, st.st_mtime_ns]
    return published


def current(cache_dir: Path, folder: Path, wanted: str) -> dict | None:
    """The article's manifest if its stamp says every output is current; None if the full check must decide."""
    try:
        stamp = json.loads(read_entry(_stamp_file(cache_dir, folder), []) or b"null")
        manifest_bytes = (folder / "manifest.json").read_bytes()
        if stamp.get("key") != wanted or stamp.get("manifest") != hashlib.sha256(manifest_bytes).hexdigest():
            return None
        recorded = stamp.get("programs", {})
        if any(recorded.get(name) != identity for name, identity in programs().items()):
            return None                   # installed since, or replaced: the full check decides
        if any(_digest(Path(path)) != digest for path, digest in stamp.get("referenced", {}).items()):
            return None
        manifest = json.loads(manifest_bytes)
        return manifest if _published(folder, manifest) == stamp.get("published") else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def digests(paths: list[Path]) -> dict[str, str | None]:
    """The referenced files' hashes, taken when the article is read (a file changed during the build
    must not be recorded as built)."""
    return {str(p.resolve()): _digest(p) for p in paths}


def save(cache_dir: Path, folder: Path, wanted: str, referenced: dict[str, str | None]) -> None:
    """Remember that the outputs in *folder* are current for the inputs hashed into *wanted* and *referenced*."""
    try:
        manifest_bytes = (folder / "manifest.json").read_bytes()
        stamp = {"key": wanted, "manifest": hashlib.sha256(manifest_bytes).hexdigest(), "programs": programs(),
                 "referenced": referenced, "published": _published(folder, json.loads(manifest_bytes))}
        target = _stamp_file(cache_dir, folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_entry(target, json.dumps(stamp, indent=1).encode())
    except (OSError, ValueError, KeyError, TypeError):
        pass            # without a stamp the next build does the full check: slower, never wrong
