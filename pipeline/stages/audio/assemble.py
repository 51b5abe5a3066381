"""Assembly: utterance WAVs → chapters of sound with pauses → MP3 and M4B with tags and chapters, WebVTT.

Each chapter is measured (EBU R128, by libebur128), brought to the target
loudness with a gain and a limiter, and encoded on its own; the encoded
chapters are then joined. Encoding is the costliest step of a build, so
this buys three things: a chapter is encoded while the next ones are still
being spoken, the chapters spread over every core, and an edited sentence
re-encodes only its chapter (encodings are cached by what they are made of).
Leveling each chapter on its own is what a radio station does with each
programme; with one voice throughout, the chapters' gains differ by a few
tenths of a decibel (measured on the B12 article: 0.3 dB).

For the joins to be seamless and the times exact, every chapter is cut or
padded (in its closing pause) so that both encoders turn it into a whole
number of frames: then each encoded chapter decodes to exactly its own
length, and a chapter's place in the file is the sum of the lengths before it.
"""
from __future__ import annotations

import errno
import hashlib
import html
import itertools
import json
import os
import re
import subprocess
import threading
import wave
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from ...cache import read_entry, remembered, store, temp_for, verified, write_entry
from ...errors import Problem, PublishError
from .. import helper_slot, package_version
from .script import PAUSES, Utterance
from .tools import ffmpeg

if TYPE_CHECKING:
    from .synth import Synthesizer

RATE = 22050                 # espeak-ng's sample rate; speech needs no more
TARGET_LUFS = -18.0
LIMIT = 0.6                  # limiter ceiling, linear (−4.4 dBFS): true peak stays below −3 dBTP
SMOOTHING = 441              # samples (20 ms): how gradually the limiter's gain falls before a peak and rises after
SILENCE = 0.004              # samples quieter than this (relative to full scale) count as silence at the edges
GRID = 9216                  # samples: 16 MP3 frames (576 samples at 22.05 kHz) and 9 AAC frames (1024)
BITEXACT = ("-fflags", "+bitexact", "-flags:a", "+bitexact")


@dataclass(frozen=True)
class Codec:
    """One of the two encodings, with the numbers that make its chapters join exactly (measured on LAME 3.100 and
    ffmpeg 5.1's AAC encoder).

    An encoder adds `priming` samples of its own before rounding up to whole
    frames, so `GRID·k − priming` input samples come out as exactly `GRID·k`;
    the first input sample is heard `delay` samples into the decoded chapter.
    """
    name: str
    container: str           # the narration file it goes into
    demuxer: str             # ffmpeg's name for the raw stream when it is read back
    priming: int
    delay: int
    ffmpeg_args: tuple[str, ...] = ()       # the encoder's options, when ffmpeg encodes it


# MP3 is encoded in the process, by LAME through lameenc: an ffmpeg run per chapter spent some 100 ms of CPU
# starting (loading its 200 shared libraries) to encode a few seconds of speech, more than the encoding itself.
# LAME's fast mode (-q 7) halves the encoding time; on this speech it is as faithful to the waveform as the
# default (-q 3): 24 dB signal-to-noise against 22 dB, measured.
MP3 = Codec("mp3", "mp3", "mp3", 1152, 1100)
MP3_KBITS, MP3_QUALITY = 64, 7
AAC = Codec("aac", "m4b", "aac", 1024, 1024, ("-c:a", "aac", "-aac_coder", "fast", "-b:a", "64k", "-f", "adts"))
CODECS = (MP3, AAC)


def codecs_for(containers: Iterable[str]) -> tuple[Codec, ...]:
    """The encodings the named narration files need ("mp3", "m4b")."""
    return tuple(codec for codec in CODECS if codec.container in containers)


@dataclass(frozen=True)
class Cue:
    utterance: Utterance
    start: float             # seconds, in the encoded narration
    end: float


@dataclass(frozen=True)
class ChapterSound:
    """One chapter's place in the narration, its utterances' places within it, and its samples (fitted to the
    frame grid) until they are encoded: a whole narration's samples never need to be in memory at once."""
    spans: list[tuple[Utterance, int, int]]      # utterance, first and last sample (exclusive)
    start: int                                    # where the chapter begins in the narration (samples)
    length: int                                   # samples
    samples: np.ndarray | None = None


def read_samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != RATE:
            raise PublishError(Problem("publish", 0, 0, f"unexpected speech format in {path.name}",
                                       "check that espeak-ng is the speech engine in use"))
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")   # kept as 16-bit: half the memory
    quiet = int(SILENCE * 32768)            # compared as 16-bit integers: no conversion of every sample
    loud = (samples > quiet) | (samples < -quiet)
    if not loud.any():
        return samples[:0]
    first, last = int(loud.argmax()), loud.size - 1 - int(loud[::-1].argmax())
    margin = int(0.02 * RATE)                 # keep 20 ms around the speech
    return samples[max(0, first - margin): last + margin]


def fitted_length(length: int, pause: int) -> int:
    """The chapter's length on the frame grid: the nearest whole grid step, moving its closing pause by at most
    half a step (0.2 s), never into the speech, and always room for the encoders' priming."""
    slack = min(pause, GRID // 2)
    return max(GRID, -(-(length - slack + max(c.priming for c in CODECS)) // GRID) * GRID)


def longest_first(utterances: list[Utterance]) -> list[Utterance]:
    """The utterances, chapter by chapter, the longest chapters first (by what is said in them).

    Chapters are spoken and encoded in this order. In reading order the
    longest chapter of the B12 article (the questions, 147 s) came second to
    last, and one core encoded it alone while the other had nothing left.
    A chapter's sound does not depend on where it is placed, so the order
    changes only when each is made (see `placed`).
    """
    size: dict[int, int] = {}
    for utterance in utterances:
        size[utterance.chapter] = size.get(utterance.chapter, 0) + len(utterance.spoken)
    return sorted(utterances, key=lambda u: (-size[u.chapter], u.chapter))      # stable within a chapter


def chapters_of(utterances: list[Utterance]) -> list[list[Utterance]]:
    """The utterances in runs of one chapter each, in the order given."""
    return [list(run) for _, run in itertools.groupby(utterances, key=lambda u: u.chapter)]


def join(utterances: list[Utterance], wavs: Iterable[Path]) -> ChapterSound:
    """One chapter's sound: its utterances with the pause each one asks for, fitted to the frame grid.
    *wavs* may be a generator that speaks each utterance when asked for it. `start` is left at 0 for `placed`."""
    speech: list[tuple[int, np.ndarray]] = []          # where each utterance's samples go
    spans: list[tuple[Utterance, int, int]] = []
    position = pause = 0
    for utterance, wav in zip(utterances, wavs):
        samples = read_samples(wav)
        pause = int(PAUSES[utterance.pause] * RATE)
        speech.append((position, samples))
        spans.append((utterance, position, position + samples.size))
        position += samples.size + pause
    length = fitted_length(position, pause)
    sound = np.zeros(length, dtype="<i2")                # the pauses are its silence; written once, in place
    for at, samples in speech:
        part = samples[:max(0, length - at)]
        sound[at:at + part.size] = part
    return ChapterSound(spans, 0, length, sound)


def placed(chapters: list[ChapterSound], encoded: list[dict[Codec, Path]]) -> tuple[list[ChapterSound],
                                                                                   list[dict[Codec, Path]]]:
    """The chapters and their encodings in reading order, each chapter at its place in the narration."""
    pairs = sorted(zip(chapters, encoded), key=lambda pair: pair[0].spans[0][0].chapter)
    start, ordered = 0, []
    for chapter, _ in pairs:
        ordered.append(replace(chapter, start=start))
        start += chapter.length
    return ordered, [files for _, files in pairs]


def cues(chapters: list[ChapterSound], codec: Codec = MP3) -> list[Cue]:
    """Each utterance's time in the encoded narration (the captions follow the MP3, which the page plays)."""
    offset = codec.delay
    return [Cue(utterance, (c.start + offset + first) / RATE, (c.start + offset + last) / RATE)
            for c in chapters for utterance, first, last in c.spans]


def chapter_times(chapters: list[ChapterSound], titles: list[str], codec: Codec) -> list[tuple[int, int, str]]:
    """(start, end, title) in ms: a chapter starts where its opening words are heard (the first at 0)."""
    offset = codec.delay
    starts = [0.0] + [(c.start + offset) / RATE for c in chapters[1:]]
    total = sum(c.length for c in chapters) / RATE
    ends = starts[1:] + [total]
    return [(round(s * 1000), round(e * 1000), title) for s, e, title in zip(starts, ends, titles)]


def loudness(samples: np.ndarray) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770 with EBU R128's gating) by libebur128, through pyebur128.

    In the process rather than through ffmpeg's meter: an ffmpeg run costs
    60 to 70 ms of starting before it measures anything, once per chapter
    (14 for the B12 article), and libebur128 measures the longest chapter
    (147 s) in about 35 ms. A test checks that the two meters agree.
    """
    import pyebur128
    meter = pyebur128.R128State(1, RATE, pyebur128.MeasurementMode.MODE_I)
    for piece in pieces(samples):                   # libebur128 reads a stream: 10 s at a time, the same reading
        meter.add_frames(np.ascontiguousarray(piece), piece.size)
    return pyebur128.get_loudness_global(meter)      # −inf if nothing is loud enough to be measured


def gain_for(measured: float) -> float:
    """The gain (dB) to the target; none for a chapter too short or quiet to measure (−inf, or −70 and below)."""
    return 0.0 if measured <= -70 else TARGET_LUFS - measured


def leveled(samples: np.ndarray) -> np.ndarray:
    """The chapter at the target loudness, its peaks held under the ceiling by the limiter (16-bit samples).

    The limiter takes back some of the gain: about 1 LU on espeak-ng's
    speech, about 2 LU on a neural voice's, whose peaks stand further above
    its loudness (Piper scales each sentence to full scale), which left a
    Piper narration below −20 LUFS. So the shortfall is made up for once
    (the limiter then takes back a little of that too: the result lands
    within a few tenths of the target).

    The shortfall is what the limiter took from the sound's energy: the
    limited sound against the sound raised by the gain alone. Measured on
    the B12 article's chapters, it is within 0.05 LU of what the loudness
    meter reads on the limited sound, and costs a fifth of a second reading.

    Limiting and measuring happen here, not in ffmpeg: a measuring run of
    ffmpeg's limiter and meter cost 0.1 s of CPU to start and 0.46 s for
    the longest chapter of the B12 article, and the encoding run limited
    the sound once more; numpy and libebur128 do both in a fraction of that.
    """
    gain = gain_for(loudness(samples))
    if gain == 0.0:
        return samples
    level = limited(samples, gain)
    shortfall = 10 * np.log10(energy(samples) * 10 ** (gain / 10) / max(energy(level), 1))
    if shortfall <= 0.25:
        return level
    del level                               # (not held while the next one is made)
    return limited(samples, gain + shortfall)


def energy(samples: np.ndarray) -> float:
    """The sum of the squares of 16-bit samples, exact (in 64-bit integers)."""
    total = 0
    for piece in pieces(samples):
        wide = piece.astype(np.int64)
        total += int(np.dot(wide, wide))
    return float(total)


PIECE = 10 * RATE           # samples: how much of a chapter is worked on at a time (its wider copies stay small)


def pieces(samples: np.ndarray, size: int = PIECE) -> Iterable[np.ndarray]:
    """*samples* in consecutive views of *size*: what is made of each (a wider copy) stays small, whatever the
    chapter's length."""
    return (samples[start:start + size] for start in range(0, samples.size, size))


LIMITER_BLOCK = 32         # samples: the limiter finds the least gain a block of them allows


def limited(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """*samples* raised by *gain_db*, every peak held under LIMIT by a smooth gain (16-bit samples).

    The gain each sample may have is at most LIMIT over its height; the
    limiter's gain is, around each sample, the least of those within half
    SMOOTHING either side, averaged over SMOOTHING: so it is never more
    than any sample in its reach allows, and it falls and rises over 20 ms
    instead of jumping. Working on the whole chapter at once, the limiter
    needs no look-ahead delay. The least gain is taken by blocks of 32
    samples (which reaches a little further than needed, never less far),
    and the gain is worked out only around the blocks it lowers: elsewhere
    it is 1.

    The sound is made 10 s at a time, and so is the gain, from the least gain
    of each block: a chapter's float copy was what a narration's memory
    peaked with (two encoders at once), and then the gain of every lowered
    run, kept for the whole chapter (4 bytes a sample where the voice is loud
    throughout, twice the sound itself).
    """
    scale = np.float32(10 ** (gain_db / 20) / 32768)
    least, runs = _lowered(samples, scale)
    out = np.empty(samples.size, dtype="<i2")
    for first in range(0, samples.size, PIECE):
        sound = samples[first:first + PIECE].astype(np.float32)
        sound *= scale
        last = first + sound.size
        for start, end in runs:
            if start < last and end > first:
                a, b = max(start, first), min(end, last)
                sound[a - first:b - first] *= _smoothed_gain(least, start, end, a, b)
        np.clip(sound, -LIMIT, LIMIT, out=sound)
        sound *= 32768
        out[first:last] = np.round(sound, out=sound)
    return out


def _lowered(samples: np.ndarray, scale: np.float32) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The least gain of each block (within reach of the smoothing), and the runs of samples around the blocks
    it lowers below 1: (first sample, last sample (exclusive)). Runs closer than 32 blocks are taken together."""
    block, half = LIMITER_BLOCK, SMOOTHING // 2
    reach = -(-half // block) + 1                                       # blocks either side
    whole = samples.size // block * block
    blocks = samples[:whole].reshape(-1, block)
    highest, lowest = blocks.max(axis=1), blocks.min(axis=1)
    if whole < samples.size:                                            # the last, shorter block
        highest = np.append(highest, samples[whole:].max())
        lowest = np.append(lowest, samples[whole:].min())
    peak = np.maximum(highest.astype(np.float32), -lowest.astype(np.float32)) * scale
    allowed = LIMIT / np.maximum(peak, np.float32(LIMIT))             # 1 where a block stays under the ceiling
    if not allowed.size or allowed.min() >= 1:
        return allowed, []
    least = _least_within(allowed, reach)
    near = _least_within(least, reach + 16) < 1
    edges = np.flatnonzero(np.diff(np.concatenate(([0], near.view(np.int8), [0]))))
    return least, [(int(start), int(end)) for start, end in zip(edges[::2] * block,
                                                                np.minimum(edges[1::2] * block, samples.size))]


def _smoothed_gain(least: np.ndarray, start: int, end: int, a: int, b: int) -> np.ndarray:
    """The limiter's gain of samples a to b (exclusive) of the run from *start* to *end*: the mean, over
    SMOOTHING samples centred on each, of the least gain of its block, which is 1 beyond the run."""
    block, half = LIMITER_BLOCK, SMOOTHING // 2
    low, high = a - half - 1, b + half                  # the samples whose gains the means take in, and one more
    part = np.ones(high - low)
    s, e = max(low, start), min(high, end)
    if s < e:
        values = np.repeat(least[s // block:-(-e // block)], block)
        part[s - low:e - low] = values[s % block:s % block + e - s]
    total = np.cumsum(part)
    return ((total[2 * half + 1:] - total[:-2 * half - 1]) / (2 * half + 1)).astype(np.float32)


def _least_within(values: np.ndarray, reach: int) -> np.ndarray:
    """Each value's least neighbour within *reach* places either side (1 beyond the ends)."""
    padded = np.pad(values, reach, constant_values=1)
    least = padded[:values.size].copy()
    for shift in range(1, 2 * reach + 1):
        np.minimum(least, padded[shift:shift + values.size], out=least)
    return least


def iso639_2(language: str, cache_dir: Path | None = None) -> str:
    """The three-letter ISO 639-2 code ("eng") of a BCP 47 language tag ("en", "en-GB"): ID3's language frame
    and MP4's track language take only those (ffmpeg writes an MP4 track given "en" as undetermined).

    pycountry's table of languages takes 20 MiB of the process that reads it, which the narration's worker
    and its speech helpers kept through a batch for one answer per language: the answer is remembered in
    the cache folder, and the table read only for a language (or a pycountry) not seen before.
    """
    primary = language.split("-")[0].lower()

    def ask() -> str:
        import pycountry
        record = (pycountry.languages.get(alpha_2=primary) if len(primary) == 2
                  else pycountry.languages.get(alpha_3=primary))
        return getattr(record, "alpha_3", None) or "und"
    return remembered(cache_dir, "languages.json", f"{primary} ({package_version('pycountry')})", ask)


def ffmetadata(values: dict[str, str], chapters: list[tuple[int, int, str]]) -> str:
    """ffmpeg's metadata file: global tags and chapters (times in ms)."""
    def escape(text: str) -> str:
        return re.sub(r"([=;#\\\n])", r"\\\1", text)
    lines = [";FFMETADATA1", *(f"{k}={escape(v)}" for k, v in values.items())]
    for start, end, title in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={escape(title)}"]
    return "\n".join(lines) + "\n"


def _ffmpeg_failed(what: str, err: bytes) -> PublishError:
    return PublishError(Problem("publish", 0, 0, f"ffmpeg failed to {what}: {err.decode(errors='replace')[-300:]}",
                                f"check the ffmpeg program the narration runs ({ffmpeg()}); "
                                "pip install --force-reinstall imageio-ffmpeg restores the one it comes with"))


class ChapterEncoder:
    """Measures and encodes chapters into MP3 and AAC frames in background threads, one per core (the MP3 by
    LAME in the process, the AAC by an ffmpeg run per chapter).

    A chapter's encoding is cached under what it is made of: each utterance's
    speech (its key in the speech cache) and pause, and the recipe. A chapter
    found there is not spoken, read or measured again: where its utterances
    fall within it is kept beside its encodings. An edited sentence costs its
    own chapter, however long the rest of the narration.

    Speech is made faster than it is encoded, so chapters would pile up, each holding its samples (the B12
    narration is 34 MB of them), while they wait for an encoder: `add` waits instead once every encoder
    is busy and one more chapter is ready to follow.

    Use it as a context manager: leaving it early (a failed synthesis) cancels what has not started.
    """

    def __init__(self, cache: Path, recipe: str, codecs: tuple[Codec, ...] = CODECS):
        self.cache = cache
        self.cache.mkdir(parents=True, exist_ok=True)
        self.recipe = recipe
        self.codecs = codecs
        self.encoded = {codec.name: 0 for codec in CODECS}      # chapters encoded, by codec
        encoders = os.cpu_count() or 1
        self.pool = ThreadPoolExecutor(max_workers=encoders)
        self.room = threading.BoundedSemaphore(encoders + 1)     # chapters being encoded or next in line
        self.jobs: list[tuple[dict[Codec, Path], Future | None]] = []
        self.damaged: list[str] = []         # cache entries found damaged (and made again)
        self.stored_bytes = 0                # what the new encodings add to the cache (its pruning counts on it)

    def __enter__(self) -> ChapterEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def add(self, utterances: list[Utterance], speech: Synthesizer) -> ChapterSound:
        """One chapter, as encoded before or else spoken, joined and queued for encoding; returned without its
        samples, which the encoder holds until it is done with them."""
        made_of = [(speech.key(u.said), PAUSES[u.pause]) for u in utterances]
        key = hashlib.sha256(json.dumps([self.recipe, made_of]).encode()).hexdigest()
        files = {codec: self.cache / f"{key}.{codec.name}" for codec in self.codecs}
        layout = self.cache / f"{key}.json"          # written last: where it is, so are the encodings
        known = self._known(layout, utterances, self.damaged)
        whole = [verified(path, self.damaged) for path in files.values()]     # each checked, to name every one
        if known and all(whole):
            self.jobs.append((files, None))
            return known
        chapter = join(utterances, speech.wavs([u.said for u in utterances]))
        # only the encodings not made yet: an MP3-only build followed by a full one adds the AAC alone
        missing = {codec: path for codec, path in files.items() if not (known and path.is_file())}
        for codec in missing:
            self.encoded[codec.name] += 1
        self.room.acquire()
        job = self.pool.submit(self._encode, chapter, missing, layout)
        job.add_done_callback(lambda _: self.room.release())          # also when it fails or is cancelled
        self.jobs.append((files, job))
        return replace(chapter, samples=None)

    def finish(self) -> tuple[list[dict[Codec, Path]], int]:
        """Every chapter's encoded files, in order, and how many chapters had to be encoded."""
        for _, job in self.jobs:
            if job:
                self.stored_bytes += job.result()   # raises the chapter's PublishError, if any
        return [files for files, _ in self.jobs], sum(job is not None for _, job in self.jobs)

    @staticmethod
    def _known(layout: Path, utterances: list[Utterance], damaged: list[str]) -> ChapterSound | None:
        """The chapter's length and its utterances' places in it, as kept when it was encoded, if they were."""
        try:
            kept = json.loads(read_entry(layout, damaged) or b"null")
            spans = [(u, int(first), int(last)) for u, (first, last) in zip(utterances, kept["spans"], strict=True)]
            return ChapterSound(spans, 0, int(kept["length"]))
        except (OSError, ValueError, KeyError, TypeError):     # not there, or not whole: encode it again
            return None

    def _encode(self, chapter: ChapterSound, files: dict[Codec, Path], layout: Path) -> int:
        """Leveled once, then encoded by each codec at the length that fills its last frame; returns the bytes
        it added to the cache."""
        size = chapter.samples.size
        # every codec's shortest length: the same sound for each, padded with silence to its own length
        samples = leveled(chapter.samples[:size - max(codec.priming for codec in CODECS)])
        tmp = {codec: temp_for(path) for codec, path in files.items()}
        stored = 0
        try:
            for codec, path in files.items():
                missing = size - codec.priming - samples.size
                fitted = np.pad(samples, (0, missing)) if missing else samples
                if codec is MP3:
                    try:
                        tmp[codec].write_bytes(mp3_frames(fitted))
                    except OSError as exc:      # a failed write names no file: this one is in the cache
                        raise OSError(exc.errno, exc.strerror, str(tmp[codec])) from None
                else:
                    _ffmpeg_encode(fitted, codec, tmp[codec], self.cache)
                stored += tmp[codec].stat().st_size
                store(tmp[codec], path)               # atomic, with its checksum: whole or absent
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)
        kept = json.dumps({"length": chapter.length, "spans": [[first, last] for _, first, last in chapter.spans]})
        write_entry(layout, kept.encode())
        return stored + len(kept)


def mp3_frames(samples: np.ndarray) -> bytes:
    """16-bit samples as MP3 frames, nothing else (no tag, no Xing frame): LAME in the process, through lameenc,
    which lets other threads run while it encodes."""
    import lameenc
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_KBITS)
    encoder.set_in_sample_rate(RATE)
    encoder.set_channels(1)
    encoder.set_quality(MP3_QUALITY)
    return bytes(encoder.encode(np.ascontiguousarray(samples)) + encoder.flush())


def _ffmpeg_encode(samples: np.ndarray, codec: Codec, target: Path, cache: Path) -> None:
    command = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(RATE), "-ac", "1",
               "-i", "pipe:0", *codec.ffmpeg_args, *BITEXACT, str(target)]
    with helper_slot():
        done = subprocess.run(command, input=memoryview(samples).cast("B"), capture_output=True, timeout=1800)
    if done.returncode != 0:
        if b"No space left on device" in done.stderr:      # the cache's disk, not ffmpeg, is the problem
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(cache))
        raise _ffmpeg_failed("encode the narration", done.stderr)


def mux(parts: list[Path], codec: Codec, metadata: Path, target: Path, language: str) -> None:
    """Join encoded chapters (frames follow frames) and add tags and chapters without re-encoding.

    Both files take their tags and chapters from a metadata file: ffmpeg
    writes them as ID3v2.4 frames (TIT2, TPE1, TALB, TDRC, TLAN, and CHAP
    frames in time order under one ordered CTOC) and as MP4 chapters. Not
    mutagen, for the MP3: it writes CHAP frames ordered by their size, and
    players that take chapters in frame order (ffmpeg-based ones among them)
    list them mixed up.

    The MP3 that ffmpeg writes is its ID3 tag and then the frames as they
    came, nothing else (no Xing frame, no ID3v1 tag). So ffmpeg is given the
    first chapter only, to write the tag, and the other chapters' frames are
    added after it as they are: passing some 30,000 frames through ffmpeg
    took 0.15 s. What ffmpeg wrote is checked to be exactly the tag and the
    first chapter. The M4B's tables need every frame, so ffmpeg reads them all.

    The two are written side by side, each ffmpeg run holding a helper slot
    of its own (one run for both took 0.1 s longer): neither ever holds a
    slot while it waits for another.
    """
    # (*language* is ISO 639-2: the MP3's TLAN frame comes from the metadata file, the M4B's track needs it here.)
    if codec is MP3:
        first = parts[0].read_bytes()
        written = _with_tags(parts[0], MP3, metadata, ["-id3v2_version", "4", "-write_id3v1", "0",
                                                       "-write_xing", "0", "-f", "mp3"], "pipe:1")
        tag = written[:id3_size(written)]
        if written != tag + first:
            raise _ffmpeg_failed("write the MP3's tags as expected (the tag and the frames as they came)", b"")
        _write_joined(target, parts[1:], head=tag + first)
    else:
        frames = target.with_name(f"{target.name}.frames")
        _write_joined(frames, parts)
        try:
            # The movie's time scale in milliseconds, the chapters' own: in the default one (the sample rate
            # times 1,280), a chapter of over 76 s overflows ffmpeg 9's chapter track, and it drops its time.
            _with_tags(frames, AAC, metadata, ["-metadata:s:a:0", f"language={language}", "-movie_timescale", "1000",
                                               "-f", "mp4"], str(target))
        finally:
            frames.unlink(missing_ok=True)


def _with_tags(source: Path, codec: Codec, metadata: Path, container: list[str], output: str) -> bytes:
    """One ffmpeg run: *source*'s frames copied as they are, with the tags and chapters of *metadata*, into
    *output*; returns what ffmpeg wrote on its standard output."""
    command = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-f", codec.demuxer, "-i", str(source),
               "-i", str(metadata), "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1",
               "-c", "copy", *BITEXACT, *container, output]
    with helper_slot():
        done = subprocess.run(command, capture_output=True, timeout=1800)
    if done.returncode != 0:
        raise _ffmpeg_failed("join the narration's chapters", done.stderr)
    return done.stdout


def _write_joined(path: Path, parts: list[Path], head: bytes = b"") -> None:
    """*head*, then every part's bytes: encoded chapters join frame to frame."""
    with path.open("wb") as out:
        out.write(head)
        for part in parts:
            out.write(part.read_bytes())


def id3_size(data: bytes) -> int:
    """The length of the ID3v2 tag that *data* starts with, header and footer included (0 if none).
    Its size is kept in four bytes of seven bits each."""
    if len(data) < 10 or data[:3] != b"ID3":
        return 0
    size = 0
    for byte in data[6:10]:
        size = size << 7 | byte & 0x7F
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


def milliseconds(seconds: float) -> int:
    """A time as every consumer of the timings states it: whole milliseconds (WebVTT, SMIL and the page agree)."""
    return round(seconds * 1000)


def timings(cues: list[Cue], chapters: list[tuple[int, int, str]], heading_ids: list[str], audio: str) -> dict:
    """When each utterance is heard, in one structure for every consumer: the captions, the read-aloud
    EPUB's SMIL files and the large-print page's player are all made from it (times in whole ms).

    `target` is the id of the element the utterance reads (a sentence's or a heading's); the words the
    narration adds around a block ("Warning.", a table's row announcement) point at the element they
    introduce, so a consumer that wants one entry per element merges runs with the same target."""
    return {
        "version": 1,
        "audio": audio,
        "duration_ms": chapters[-1][1] if chapters else 0,
        "chapters": [{"index": index, "title": title, "target": heading, "start_ms": start, "end_ms": end}
                     for index, ((start, end, title), heading) in enumerate(zip(chapters, heading_ids))],
        "utterances": [{"id": cue.utterance.id,
                        "target": cue.utterance.sources[0] if cue.utterance.sources else cue.utterance.id,
                        "chapter": cue.utterance.chapter,
                        "start_ms": milliseconds(cue.start), "end_ms": milliseconds(cue.end)} for cue in cues],
    }


def timings_script(data: dict) -> str:
    """The timings as a script the page loads beside it: browsers refuse to fetch JSON from a file://
    page but run a script from the same folder, so the player works on a page opened from the disk."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f"window.narrationTimings = {text};\n"


def webvtt(cues: list[Cue]) -> str:
    """One cue per utterance, identified by the id of what it reads, showing the text as written."""
    def stamp(seconds: float) -> str:
        ms = milliseconds(seconds)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
    blocks = ["WEBVTT"]
    for cue in cues:
        text = html.escape(" ".join(cue.utterance.written.split()), quote=False)
        blocks.append(f"{cue.utterance.id}\n{stamp(cue.start)} --> {stamp(cue.end)}\n{text}")
    return "\n\n".join(blocks) + "\n"
