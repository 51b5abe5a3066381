"""Synthesis: one utterance → one WAV file, through pyttsx3 and espeak-ng, with a persistent cache.

The cache key covers the spoken text, the voice, the rate and the engine
with its version, so an unchanged utterance is never synthesized twice,
and a new engine or voice never reuses old sound.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from ...cache import store, temp_for, verified
from ...errors import MissingTool, Problem, PublishError
from .tools import ESPEAK_INSTALL as INSTALL, engine_version

ATTEMPTS = 3
WAV_HEADER = 44          # bytes: a WAV file no longer than its header holds no sound


@contextlib.contextmanager
def quiet_stdout():
    """pyttsx3 prints "Audio saved to …" on standard output: keep it off the command's output."""
    import sys
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class Synthesizer:
    def __init__(self, language: str, voices: dict[str, str], rate: int, cache_dir: Path):
        self.version = engine_version(cache_dir)
        try:
            import pyttsx3
            with quiet_stdout():
                self.engine = pyttsx3.init("espeak")
        except Exception as exc:          # the library is there but the engine cannot load
            raise MissingTool(f"the espeak-ng speech engine ({type(exc).__name__}: {exc})", INSTALL,
                              "the audio narration") from None
        self.voice = self._voice(language, voices)
        self.rate = rate
        self.engine.setProperty("voice", self.voice)
        self.engine.setProperty("rate", rate)
        self.cache = cache_dir / "speech"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.synthesized = 0
        self.damaged: list[str] = []      # cache entries found damaged (and made again)

    def _voice(self, language: str, voices: dict[str, str]) -> str:
        wanted = (voices.get(language) or voices.get(language.split("-")[0]) or language).lower()
        available = self.engine.getProperty("voices")
        for voice in available:
            if voice.id.lower() == wanted or voice.id.lower().endswith("/" + wanted):
                return voice.id
        for voice in available:
            if wanted.split("-")[0] in [str(l).lower() for l in voice.languages]:
                return voice.id
        raise PublishError(Problem("theme.yaml", 0, 0, f"espeak-ng has no voice for `{wanted}`",
                                   "set voice.voices in the theme to a voice that `espeak-ng --voices` lists"))

    def key(self, text: str) -> str:
        return hashlib.sha256("\0".join((text, self.voice, str(self.rate), "pyttsx3/espeak", self.version))
                              .encode()).hexdigest()

    def wav(self, text: str) -> Path:
        """The cached WAV of *text*, synthesizing it only if it is not cached yet."""
        target = self.cache / f"{self.key(text)}.wav"
        if verified(target, self.damaged):
            return target
        tmp = temp_for(target)
        try:
            # Seen under load: now and then runAndWait() returns before the driver has written any
            # sound, leaving only a WAV header. Such a file is never cached; the utterance is tried again.
            for _ in range(ATTEMPTS):
                with quiet_stdout():
                    self.engine.save_to_file(text, str(tmp))
                    self.engine.runAndWait()      # once per file: queued saves write only the last one
                if tmp.is_file() and tmp.stat().st_size > WAV_HEADER:
                    break
            else:
                raise PublishError(Problem("publish", 0, 0, f"espeak-ng produced no sound for: {text[:60]}",
                                           f"check the espeak-ng installation ({INSTALL})"))
            store(tmp, target)                   # atomic, with its checksum: a cache entry is whole or absent
        finally:
            tmp.unlink(missing_ok=True)
        self.synthesized += 1
        return target
