"""The system programs the narration runs, found on the PATH: espeak-ng (through pyttsx3) and ffmpeg.

Their versions are part of the audio stage's fingerprint, so every build
that is not answered by the stamp asks for them. Asking ffmpeg costs some
60 ms (it loads about 200 shared libraries), so each answer is also kept in
the build's cache folder, under the program's size and time: a reinstalled
or upgraded program is asked again. This module stays light (no numpy).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import MissingTool

ESPEAK_INSTALL = "apt-get install espeak-ng"


def espeak_ng() -> str:
    binary = shutil.which("espeak-ng")
    if not binary:
        raise MissingTool("espeak-ng", ESPEAK_INSTALL, "the audio narration")
    return binary


def ffmpeg() -> str:
    binary = shutil.which("ffmpeg")
    if not binary:
        raise MissingTool("ffmpeg", "apt-get install ffmpeg", "the audio narration (MP3 and M4B encoding)")
    return binary


def engine_version(cache_dir: Path | None = None) -> str:
    """espeak-ng's version (its first words); a missing engine is a MissingTool error (exit 3)."""
    return " ".join(_version(espeak_ng(), "--version", cache_dir).split()[:4]) or "espeak-ng"


def ffmpeg_version(cache_dir: Path | None = None) -> str:
    return _version(ffmpeg(), "-version", cache_dir) or "ffmpeg"


@functools.lru_cache(maxsize=None)      # asked by the fingerprint and again by the stage: once per process
def _version(binary: str, flag: str, cache_dir: Path | None) -> str:
    """The first line of what `binary flag` prints, remembered in *cache_dir* for as long as the program's file is the same."""
    real = os.path.realpath(binary)
    info = os.stat(real)
    key, seen = f"{real} {info.st_size} {info.st_mtime_ns}", {}
    memo = cache_dir / "versions.json" if cache_dir else None
    if memo:
        try:
            seen = json.loads(memo.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        seen = seen if isinstance(seen, dict) else {}
        if isinstance(seen.get(key), str):
            return seen[key]
    out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30).stdout
    version = out.splitlines()[0].strip() if out.strip() else ""
    if memo and version:
        _remember(memo, {**seen, key: version})
    return version


def _remember(memo: Path, versions: dict[str, str]) -> None:
    """Write the memo whole or not at all (builds may run side by side); a cache that cannot be written only
    costs the question again next time."""
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(versions, f, indent=1, sort_keys=True)
        os.replace(tmp, memo)
    except OSError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)
