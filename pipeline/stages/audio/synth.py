"""Synthesis: one utterance → one WAV file, through the chosen speech engine, with a persistent cache.

The cache key covers the spoken text and the voice's identity: the engine
with its version, the voice, its model file's hash and the settings (see
engines.VoiceChoice.identity), so an unchanged utterance is never
synthesized twice, and a new engine, voice or rate never reuses old sound.

Speech is a function of its key alone: each engine speaks every utterance
from the same starting state (engines.py), so any mix of cached and fresh
speech gives the same narration as a clean build.

Nothing wrong is cached: every utterance is checked against the length its
letters and the rate lead to expect (the length guard), and the system
engine also reports the rate it spoke at; one that fails either is spoken
again, and a second failure stops the build.

Each entry is one file, ``speech/<key>.wav``, sealed with its checksum
(speech_wav.py), which the engine writes and measures: a fresh utterance is
moved into the cache without being read back; a cached one is read and
checked whenever a build needs it, and spoken again if it is damaged.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import regex

from ...cache import SIDECAR, entry_bytes, mark_used, move_aside, temp_for, wav_problem
from ...errors import Problem, PublishError
from . import engines, speech_wav
from .engines import VoiceChoice, WrongRate

ATTEMPTS = 2
# How long an utterance should last at 165 words a minute: a moment to start, each letter spoken (a number
# counts as the words it is read as, about two letters and three more for each digit), and a pause at each comma,
# colon, bracket, dash or full stop inside it; and the range within which real utterances fall around that
# estimate, measured per engine on four articles (226 utterances of espeak-ng, from one-word headings to
# 40-word sentences; 22 of Piper's). Short utterances and numbers are what a count of letters alone misjudged
# ("Item 3: Walk." took twice its estimate). An utterance more than 15 % outside its engine's range is
# refused: a run at pyttsx3's default 200 words a minute instead of 165 is caught by the rate the engine
# reports, the length guard catches gross errors such as truncated or runaway speech at any rate.
SECONDS_PER_LETTER = {"system": 0.065, "piper": 0.065}
START_SECONDS = 0.15
PAUSE_SECONDS = 0.25
PAUSE_MARK = re.compile(r"[,;:()\u2013\u2014]|[.!?](?=\s)")
NATURAL_RANGE = {"system": (0.75, 1.30), "piper": (0.70, 1.35)}
GUARD = 0.15


class WrongLength(Exception):
    pass


# A letter of these scripts takes longer to say than a Latin one (measured with espeak-ng at 165 words a
# minute, on the Chinese and Arabic fixtures): a Chinese, Japanese or Korean character is a whole syllable
# (5.1 to 6.1 Latin letters' time), and the abjads leave most vowels unwritten (Arabic: 1.4 to 2.2).
SYLLABIC = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}\p{Yi}]")
ABJAD = regex.compile(r"[\p{Arabic}\p{Hebrew}\p{Syriac}\p{Thaana}]")
LETTER_WEIGHTS = ((SYLLABIC, 5.5), (ABJAD, 1.8))
SSML_TAG = re.compile(r"<[^>]*>")
NOT_LETTER = re.compile(r"[\W\d_]")


def letter_count(text: str) -> float:
    """The utterance's letters, each weighed by how long its script takes to say it (see LETTER_WEIGHTS).
    (Counted a script at a time over the letters alone: matching each letter against each script took more
    processor time than the rest of the check.)"""
    letters = NOT_LETTER.sub("", text)
    return len(letters) + sum((weight - 1) * len(script.findall(letters)) for script, weight in LETTER_WEIGHTS)


def expected_seconds(text: str, rate: int, engine: str) -> float:
    """The speech an utterance should last at *rate* words a minute (see SECONDS_PER_LETTER)."""
    text = SSML_TAG.sub("", text)           # a phrase's voice markup is not said
    letters = letter_count(text) + sum(2 + 3 * len(number) for number in re.findall(r"\d+", text))
    pauses = len(PAUSE_MARK.findall(text.rstrip(" .!?\"'\u201d")))     # the closing pause is after the last sound
    seconds = START_SECONDS + max(letters, 4) * SECONDS_PER_LETTER[engine] + pauses * PAUSE_SECONDS
    return seconds * 165 / rate


def length_is_plausible(text: str, seconds: float, rate: int, engine: str) -> bool:
    low, high = NATURAL_RANGE[engine]
    ratio = seconds / expected_seconds(text, rate, engine)
    return low * (1 - GUARD) <= ratio <= high * (1 + GUARD)


class Synthesizer:
    """Speech for texts, from the cache or spoken by up to *parallel* threads at once (one per core by default),
    with as many engines as the engine's kind runs on that many cores (engines.at_once).
    Engines start when the first text must be spoken: a one-sentence edit starts one. The first engine starts
    on its own (the system engine's helper is forked as the first texts are asked for, see wavs); the others
    are made from it where the engine can (engines.start_another)."""

    def __init__(self, choice: VoiceChoice, language: str, rate: int, cache_dir: Path, parallel: int | None = None):
        self.choice, self.language, self.rate = choice, language, rate
        self.identity = choice.identity(rate, cache_dir)
        self.cache = cache_dir / "speech"
        try:
            self.cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cache_error(self.cache, exc) from None
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        self.most_engines = engines.at_once(choice, self.parallel)
        self.engines: list = []                          # every engine started, idle or not
        self.first: Future = Future()                    # the first engine, once started (or why it could not)
        self.idle: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.forked: engines.SystemEngine | None = None      # the first engine, forked early (see wavs)
        self.fork_tried = self.known_pure = False
        self.pool = ThreadPoolExecutor(max_workers=self.parallel)
        self.synthesized = 0
        self.stored_bytes = 0               # what the new speech adds to the cache (its pruning counts on it)
        self.refused = 0                    # utterances spoken again after failing the checks
        self.damaged: list[str] = []        # cache entries found damaged (and made again)

    def key(self, text: str) -> str:
        return hashlib.sha256("\0".join((text, self.identity)).encode()).hexdigest()

    def wavs(self, texts: list[str]) -> list[Path]:
        """The WAV of each text, those not cached spoken side by side; the first failure, once all have ended.
        Up to *parallel* threads take the texts in turn (a task per thread, not per text: a narration has some
        hundred texts a minute of speech, and a task of its own cost each one more than its cache look-up)."""
        if not self.fork_tried:
            # The first system engine's helper is forked as the first texts are asked for, while this process
            # still has one thread (see engines.SystemEngine): it sets itself up while the cache is looked in,
            # and is closed unused if every text turns out to be cached.
            self.fork_tried = True
            self.known_pure = engines.restoring_known_pure(self.cache.parent)
            self.forked = engines.start_forked(self.choice, self.language, self.rate, siblings=self.most_engines - 1,
                                               known_pure=self.known_pure)
        made: list[Path | BaseException | None] = [None] * len(texts)
        numbers = iter(range(len(texts)))

        def take_turns() -> None:
            while (n := next(numbers, None)) is not None:      # (an iterator of a range hands out each number once)
                try:
                    made[n] = self.wav(texts[n])
                except BaseException as exc:                   # kept for its turn: the first in order is raised
                    made[n] = exc
        wait([self.pool.submit(take_turns) for _ in range(min(self.parallel, len(texts)))])
        for result in made:
            if isinstance(result, BaseException):
                raise result
        return made

    def wav(self, text: str) -> Path:
        """The cached WAV of *text*, synthesizing it only if it is not cached yet."""
        target = self.cache / f"{self.key(text)}.wav"
        if cached_speech(target, self.damaged):
            return target
        engine = self._engine()
        tmp = temp_for(target)                   # a name the cache's pruning recognises, should this build be killed
        try:
            self._speak(engine, text, tmp)
            size = tmp.stat().st_size
            os.replace(tmp, target)              # atomic, sealed with its checksum: a cache entry is whole or absent
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise cache_error(self.cache, exc) from None
            raise
        finally:
            self.idle.put(engine)                # (one that failed fails the next text at once: none waits for ever)
        with self.lock:
            self.synthesized += 1
            self.stored_bytes += size
        return target

    def _speak(self, engine, text: str, tmp: Path) -> None:
        """Speak *text* into *tmp* (a sealed WAV, see speech_wav), checked: a wrong rate or length (as the engine
        measured the samples it wrote) is spoken again, a second time is an error."""
        for attempt in range(ATTEMPTS):
            try:
                seconds = engine.speak(text, tmp)
                if not length_is_plausible(text, seconds, self.rate, self.choice.engine):
                    raise WrongLength(f"{seconds:.2f} s of speech where about "
                                      f"{expected_seconds(text, self.rate, self.choice.engine):.2f} s were expected")
                return
            except (WrongRate, WrongLength) as exc:
                with self.lock:
                    self.refused += 1
                if attempt + 1 == ATTEMPTS:
                    raise PublishError(Problem("publish", 0, 0, f"the {self.choice.engine} speech engine spoke "
                                               f"“{text[:60]}” wrongly twice ({describe(exc, self.rate)})",
                                               "run the build again; if it fails again, report it with the "
                                               "sentence")) from None

    def _engine(self):
        """An idle engine, or a new one while fewer than *most_engines* run."""
        with self.lock:
            if self.idle.empty() and len(self.engines) < self.most_engines:
                number = len(self.engines)
                self.engines.append(None)        # its place, taken before it starts (which takes a moment)
            else:
                number = None
        if number is None:
            engine = self.idle.get()
            if isinstance(engine, Exception):    # no engine could start: every text fails alike
                self.idle.put(engine)
                raise engine
            return engine
        scratch = self.cache / f"piper.{os.getpid()}.{number}.tmp"
        try:
            if number == 0:
                try:
                    engine = (self.forked.ready() if self.forked else
                              engines.start(self.choice, self.language, self.rate, scratch,
                                            siblings=self.most_engines - 1))
                    if self.forked and engine.reset == "restored" and not self.known_pure:
                        engines.remember_restoring_pure(self.cache.parent)     # checked once per library
                except Exception as exc:
                    self.first.set_exception(exc)
                    raise
                self.first.set_result(engine)
            else:
                engine = engines.start_another(self.first.result(), self.choice, self.language, self.rate, scratch)
        except Exception as exc:
            self.idle.put(exc)
            raise
        self.engines[number] = engine
        return engine

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for engine in self.engines:
            if engine is not None:
                engine.close()
        if self.forked and self.forked not in self.engines:      # never needed (or failed as it started)
            self.forked.close()
        self.engines, self.forked = [], None


def cached_speech(target: Path, damaged: list[str]) -> bytes | None:
    """The speech cached as *target* if it is there and whole; None if it must be spoken (again). An entry that is
    not a WAV of its own length or does not match its checksum is moved aside and named in *damaged*; one with no
    checksum inside, written by an earlier version (beside a sidecar), is spoken again silently."""
    data = entry_bytes(target, damaged)
    if data is None:
        return None
    problem = wav_problem(data) or speech_wav.seal_problem(data)
    if problem == speech_wav.NO_SEAL:
        with contextlib.suppress(OSError):          # its sidecar, which the seal replaces (a read-only cache keeps it)
            target.with_name(target.name + SIDECAR).unlink(missing_ok=True)
        return None
    if problem:
        move_aside(target, problem, damaged)
        return None
    return data if mark_used(target) else None       # pruned just now by another build: spoken again


def describe(exc: Exception, rate: int) -> str:
    if isinstance(exc, WrongRate):
        return f"at {exc.args[0]} words a minute instead of {rate}"
    return str(exc)


def cache_error(folder: Path, exc: OSError) -> PublishError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk holding the cache is full: free some space, or give another cache folder with --cache"
    else:
        hint = "give a writable cache folder with --cache, or delete this one"
    return PublishError(Problem(str(folder), 0, 0, f"cannot write the speech cache ({exc.strerror})", hint))
