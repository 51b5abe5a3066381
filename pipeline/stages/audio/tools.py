"""The system programs the narration runs, found on the PATH: espeak-ng (through pyttsx3) and ffmpeg.

Their versions are part of the audio stage's fingerprint. This module stays
light (no numpy): a build with nothing to do reads the versions and stops.
"""
from __future__ import annotations

import functools
import shutil
import subprocess

from ...errors import MissingTool

ESPEAK_INSTALL = "apt-get install espeak-ng"


@functools.lru_cache(maxsize=None)      # asked by the fingerprint and again by the stage: run it once
def engine_version() -> str:
    """espeak-ng's version line; a missing engine is a MissingTool error (exit 3)."""
    binary = shutil.which("espeak-ng")
    if not binary:
        raise MissingTool("espeak-ng", ESPEAK_INSTALL, "the audio narration")
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    return " ".join(out.split()[:4]) or "espeak-ng"


def ffmpeg() -> str:
    binary = shutil.which("ffmpeg")
    if not binary:
        raise MissingTool("ffmpeg", "apt-get install ffmpeg", "the audio narration (MP3 and M4B encoding)")
    return binary


@functools.lru_cache(maxsize=None)
def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0] if out else "ffmpeg"
