"""The programs the narration runs: espeak-ng (through pyttsx3), found on the PATH, and ffmpeg.

ffmpeg is the build that the imageio-ffmpeg package brings: one program
file, linked only to the C and maths libraries. Pinned with the package, it
is the same encoder on every machine, so the M4B's bytes do not follow the
system's ffmpeg (the speech still follows the system's espeak-ng). Debian's
ffmpeg loads some 200 shared libraries in every run, which cost 0.08 s of
CPU to start against 0.01 s; a narration runs ffmpeg once per chapter and
twice more. Where the package has no program for the platform, the ffmpeg
on the PATH is used; IMAGEIO_FFMPEG_EXE (the package's own setting) names
another.

Their versions are part of the audio stage's fingerprint, so every build
that is not answered by the stamp asks for them. Asking costs a run of the
program (Debian's ffmpeg took 60 ms), so each answer is also kept in
the build's cache folder, under the program's size and time: a reinstalled
or upgraded program is asked again. This module stays light (no numpy).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from ...cache import remembered
from ...errors import MissingTool

ESPEAK_INSTALL = "apt-get install espeak-ng"


def _program(name: str, install: str, purpose: str) -> str:
    binary = shutil.which(name)
    if not binary:
        raise MissingTool(name, install, purpose)
    return binary


def espeak_ng() -> str:
    return _program("espeak-ng", ESPEAK_INSTALL, "the audio narration")


FFMPEG_PURPOSE = "the audio narration (the M4B's encoding, both files' tags and chapters)"


def ffmpeg() -> str:
    chosen = os.environ.get("IMAGEIO_FFMPEG_EXE")
    if chosen:
        if not (os.path.isfile(chosen) and os.access(chosen, os.X_OK)):
            raise MissingTool(f"ffmpeg (IMAGEIO_FFMPEG_EXE={chosen})", "pip install imageio-ffmpeg, and unset "
                              "IMAGEIO_FFMPEG_EXE or set it to an ffmpeg program", FFMPEG_PURPOSE)
        return chosen
    return _bundled_ffmpeg() or _program("ffmpeg", "pip install imageio-ffmpeg (or apt-get install ffmpeg)",
                                         FFMPEG_PURPOSE)


@functools.lru_cache(maxsize=1)
def _bundled_ffmpeg() -> str | None:
    """The program in imageio-ffmpeg's wheel, found without importing the package: its import takes 25 ms
    and its own lookup runs the program once per process, and every build's fingerprint asks for it."""
    spec = importlib.util.find_spec("imageio_ffmpeg")
    if spec is None or not spec.origin:
        return None
    found = [path for path in sorted(Path(spec.origin).parent.glob("binaries/ffmpeg-*"))
             if os.access(path, os.X_OK)]
    return str(found[0]) if found else None


def engine_version(cache_dir: Path | None = None) -> str:
    """espeak-ng's version (its first words); a missing engine is a MissingTool error (exit 3)."""
    return " ".join(_version(espeak_ng(), "--version", cache_dir).split()[:4]) or "espeak-ng"


def ffmpeg_version(cache_dir: Path | None = None) -> str:
    return _version(ffmpeg(), "-version", cache_dir) or "ffmpeg"


@functools.lru_cache(maxsize=None)      # asked by the fingerprint and again by the stage: once per process
def _version(binary: str, flag: str, cache_dir: Path | None) -> str:
    """The first line of what `binary flag` prints, remembered in *cache_dir* for as long as the program's file is the same."""
    from ...stamp import file_identity

    def ask() -> str:
        out = subprocess.run([binary, flag], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out.strip() else ""
    return remembered(cache_dir, "versions.json", file_identity(Path(os.path.realpath(binary))), ask)


@functools.lru_cache(maxsize=1)
def espeak_voices() -> tuple[tuple[str, int, tuple[tuple[str, int], ...]], ...]:
    """The voices espeak-ng reports (`espeak-ng --voices`): each voice's language (its name, e.g. `cmn`), its
    priority, and every language it speaks with its priority (`cmn` speaks `zh-cmn` and `zh` at 5; `yue`
    speaks `zh` at 8: a lower number is preferred). pyttsx3 reports the first language only."""
    out = subprocess.run([espeak_ng(), "--voices"], capture_output=True, text=True, timeout=30).stdout
    voices = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or not fields[0].isdigit():
            continue
        name, priority = fields[1].lower(), int(fields[0])
        others = tuple((code.lower(), int(rank)) for code, rank in re.findall(r"\(([^ )]+) (\d+)\)", line))
        voices.append((name, priority, ((name, priority),) + others))
    return tuple(voices)


def espeak_voice_for(language: str) -> str | None:
    """The espeak-ng voice for a BCP 47 tag, from the voices the engine reports: the tag itself, then its CLDR
    parent (es-MX → es-419), then ever shorter tags (zh-Hant-TW → zh-Hant → zh); at each step the voice that
    lists the tag with the best priority (zh → cmn, Mandarin, before yue, Cantonese). None if none speaks it."""
    for candidate in language_candidates(language):
        ranked = [(rank, n, name) for n, (name, _, codes) in enumerate(espeak_voices())
                  for code, rank in codes if code == candidate]
        if ranked:
            return min(ranked)[2]
    return None


def language_candidates(language: str) -> list[str]:
    """A tag and its fallbacks, most specific first, in lower case: es-MX → es-mx, es-419, es."""
    from babel.core import get_global
    parents = get_global("parent_exceptions")
    subtags = language.split("-")
    found: list[str] = []
    for n in range(len(subtags), 0, -1):
        tag = "-".join(subtags[:n])
        for candidate in (tag, parents.get(tag.replace("-", "_"), "").replace("_", "-")):
            if candidate and candidate.lower() not in found:
                found.append(candidate.lower())
    return found
