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
from pathlib import Path

from ...cache import read_entry, write_entry
from ...errors import MissingTool

ESPEAK_INSTALL = "apt-get install espeak-ng"


def _program(name: str, install: str, purpose: str) -> str:
    binary = shutil.which(name)
    if not binary:
        raise MissingTool(name, install, purpose)
    return binary


def espeak_ng() -> str:
    return _program("espeak-ng", ESPEAK_INSTALL, "the audio narration")


def ffmpeg() -> str:
    return _program("ffmpeg", "apt-get install ffmpeg", "the audio narration (MP3 and M4B encoding)")


def engine_version(cache_dir: Path | None = None) -> str:
    """espeak-ng's version (its first words); a missing engine is a MissingTool error (exit 3)."""
    return " ".join(_version(espeak_ng(), "--version", cache_dir).split()[:4]) or "espeak-ng"


def ffmpeg_version(cache_dir: Path | None = None) -> str:
    return _version(ffmpeg(), "-version", cache_dir) or "ffmpeg"


@functools.lru_cache(maxsize=None)      # asked by the fingerprint and again by the stage: once per process
def _version(binary: str, flag: str, cache_dir: Path | None) -> str:
    """The first line of what `binary flag` prints, remembered in *cache_dir* for as long as the program's file is the same."""
    from ...stamp import file_identity
    key, seen = file_identity(Path(os.path.realpath(binary))), {}
    memo = cache_dir / "versions.json" if cache_dir else None
    if memo:
        try:
            seen = json.loads(read_entry(memo, []) or b"{}")     # damaged: moved aside, and asked again
        except (OSError, ValueError):
            pass
        seen = seen if isinstance(seen, dict) else {}
        if isinstance(seen.get(key), str):
            return seen[key]
    out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30).stdout
    version = out.splitlines()[0].strip() if out.strip() else ""
    if memo and version:
        try:                                # whole or not at all: builds may run side by side
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_entry(memo, json.dumps({**seen, key: version}, indent=1, sort_keys=True).encode())
        except OSError:
            pass                            # a cache that cannot be written only costs the question next time
    return version
