"""Assembly: utterance WAVs → one narration with pauses, normalized loudness, MP3 and M4B with tags and chapters, WebVTT.

Loudness is measured once on the assembled samples (ffmpeg's EBU R128
meter) and corrected with a gain plus a limiter in the same pass that
encodes, which is far cheaper than ffmpeg's two-pass `loudnorm`. The MP3
and M4B encoders run side by side.
"""
from __future__ import annotations

import html
import re
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import MissingTool, Problem, PublishError
from .script import PAUSES, Chapter, Utterance

RATE = 22050                 # espeak-ng's sample rate; speech needs no more
TARGET_LUFS = -18.0
LIMIT = 0.6                  # limiter ceiling, linear (−4.4 dBFS): true peak stays below −3 dBTP
SILENCE = 0.004              # samples quieter than this (relative to full scale) count as silence at the edges


@dataclass(frozen=True)
class Cue:
    utterance: Utterance
    start: float
    end: float


def ffmpeg() -> str:
    binary = shutil.which("ffmpeg")
    if not binary:
        raise MissingTool("ffmpeg", "apt-get install ffmpeg", "the audio narration (MP3 and M4B encoding)")
    return binary


def ffmpeg_version() -> str:
    out = subprocess.run([ffmpeg(), "-version"], capture_output=True, text=True, timeout=30).stdout
    return out.splitlines()[0] if out else "ffmpeg"


def read_samples(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != RATE:
            raise PublishError(Problem("publish", 0, 0, f"unexpected speech format in {path.name}",
                                       "check that espeak-ng is the speech engine in use"))
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")   # kept as 16-bit: half the memory
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > SILENCE * 32768)
    if loud.size == 0:
        return samples[:0]
    margin = int(0.02 * RATE)                 # keep 20 ms around the speech
    return samples[max(0, loud[0] - margin): loud[-1] + margin]


def join(utterances: list[Utterance], wavs: list[Path]) -> tuple[np.ndarray, list[Cue]]:
    """Concatenate the utterances with the pause each one asks for; cues are timed from the real samples."""
    pieces, cues, position = [], [], 0
    for utterance, wav in zip(utterances, wavs):
        samples = read_samples(wav)
        start = position
        pieces.append(samples)
        position += samples.size
        cues.append(Cue(utterance, start / RATE, position / RATE))
        pause = int(PAUSES[utterance.pause] * RATE)
        pieces.append(np.zeros(pause, dtype="<i2"))
        position += pause
    return np.concatenate(pieces) if pieces else np.zeros(0, "<i2"), cues


def write_wav(samples: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())


def limiter(gain_db: float) -> str:
    return f"volume={gain_db:.2f}dB,alimiter=limit={LIMIT}:level=false:attack=5:release=60"


def integrated_loudness(path: Path, filters: str = "") -> float:
    """EBU R128 integrated loudness (LUFS) of a file, after *filters*, measured by ffmpeg."""
    chain = f"{filters},ebur128" if filters else "ebur128"
    result = subprocess.run([ffmpeg(), "-hide_banner", "-nostats", "-i", str(path), "-af", chain, "-f", "null", "-"],
                            capture_output=True, text=True, timeout=600)
    found = re.findall(r"I:\s+(-?[\d.]+) LUFS", result.stderr)
    if not found:
        raise PublishError(Problem("publish", 0, 0, "ffmpeg could not measure the narration's loudness",
                                   "check the ffmpeg installation (apt-get install ffmpeg)"))
    return float(found[-1])


def normalizing_gain(wav: Path) -> float:
    """The gain (dB) that brings the narration to TARGET_LUFS once the limiter has done its part.

    The limiter lowers the loudness a little, so the gain is measured once
    more through it and corrected.
    """
    gain = TARGET_LUFS - integrated_loudness(wav)
    return gain + (TARGET_LUFS - integrated_loudness(wav, limiter(gain)))


def ffmetadata(values: dict[str, str], chapters: list[tuple[int, int, str]]) -> str:
    """ffmpeg's metadata file: global tags and chapters (times in ms)."""
    def escape(text: str) -> str:
        return re.sub(r"([=;#\\\n])", r"\\\1", text)
    lines = [";FFMETADATA1", *(f"{k}={escape(v)}" for k, v in values.items())]
    for start, end, title in chapters:
        lines += ["[CHAPTER]", "TIMEBASE=1/1000", f"START={start}", f"END={end}", f"title={escape(title)}"]
    return "\n".join(lines) + "\n"


def encode(wav: Path, gain_db: float, mp3: Path, m4b: Path, metadata: Path) -> None:
    """Gain and limiter, then MP3 and M4B side by side; bit-exact flags keep the bytes reproducible."""
    filters = limiter(gain_db)
    common = [ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav)]
    exact = ["-fflags", "+bitexact", "-flags:a", "+bitexact"]
    # Both files take their tags and chapters from the same metadata file: ffmpeg writes them as
    # ID3v2.4 frames (TIT2, TPE1, TALB, TDRC, and CHAP under one ordered CTOC) and as MP4 chapters.
    tagged = ["-i", str(metadata), "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1"]
    jobs = [
        common + tagged + ["-af", filters, "-ac", "1", "-ar", str(RATE), "-c:a", "libmp3lame", "-b:a", "64k",
                           "-id3v2_version", "4", "-write_id3v1", "0", "-write_xing", "0", *exact, str(mp3)],
        common + tagged + ["-af", filters, "-ac", "1", "-ar", str(RATE), "-c:a", "aac", "-aac_coder", "fast",
                           "-b:a", "64k", *exact, "-f", "mp4", str(m4b)],
    ]
    processes = [subprocess.Popen(job, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for job in jobs]
    for process in processes:
        _, err = process.communicate(timeout=1800)
        if process.returncode != 0:
            raise PublishError(Problem("publish", 0, 0, f"ffmpeg failed to encode the narration: {err.decode()[-300:]}",
                                       "check the ffmpeg installation (apt-get install ffmpeg)"))


def chapter_times(chapters: list[Chapter], cues: list[Cue], total: float) -> list[tuple[int, int, str]]:
    starts = {cue.utterance.id: cue.start for cue in cues}
    times = []
    for n, chapter in enumerate(chapters):
        start = 0.0 if n == 0 else starts[chapter.heading_id]
        end = starts[chapters[n + 1].heading_id] if n + 1 < len(chapters) else total
        times.append((round(start * 1000), round(end * 1000), chapter.title))
    return times


def webvtt(cues: list[Cue]) -> str:
    """One cue per utterance, identified by the id of what it reads, showing the text as written."""
    def stamp(seconds: float) -> str:
        ms = round(seconds * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
    blocks = ["WEBVTT"]
    for cue in cues:
        text = html.escape(" ".join(cue.utterance.written.split()), quote=False)
        blocks.append(f"{cue.utterance.id}\n{stamp(cue.start)} --> {stamp(cue.end)}\n{text}")
    return "\n\n".join(blocks) + "\n"
