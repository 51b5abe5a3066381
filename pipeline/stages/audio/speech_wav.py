"""The speech cache's files: WAV files that carry their own checksum.

Each utterance's speech is one file, ``<key>.wav``: a WAV whose chunks are,
in this order, ``fmt ``, ``seal`` and ``data``. The ``seal`` chunk holds a
CRC-32 of the whole file less those four bytes, so that a file cut short,
zero-filled or with a sample changed is told from a whole one without a
second file beside it (creating two files for each utterance cost more than
speaking some of them). WAV readers skip a chunk they do not know, so the
file plays and decodes like any other WAV. A CRC-32 detects every burst of
changed bits up to 32 long and any other change but one in four thousand
million: enough for what goes wrong in a cache on disk, at half the cost of
a SHA-256.

The system engine's helper process writes these files itself (it computes
the checksum and the length of the speech from the samples it holds, so the
build never reads them back to check them), and imports this module by
itself, not through the package: it uses nothing but the standard library
(numpy only inside the functions the build alone calls).

The length of the speech in a file, from its first to its last sample
louder than SILENCE, is what the length guard checks (synth.py). The build
measures a file with numpy (speech_seconds); the helper measures the
samples it has just made in plain Python (speech_span), where skipping
espeak-ng's pauses, which are digital silence, is done in C by `rstrip`.
Both find the same samples (a test compares them).
"""
from __future__ import annotations

import struct
import zlib

SEAL = b"seal"
NO_SEAL = "it has no checksum"            # written by an earlier version (with a sidecar), or by a bare engine
SILENCE = 0.004                           # as in assemble: quieter samples at the edges are not speech
QUIET = int(SILENCE * 32768)              # the same, as a 16-bit sample: compared as integers, never converted


def pcm_format(rate: int) -> bytes:
    """The body of the ``fmt `` chunk for 16-bit mono samples at *rate* per second."""
    return struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)


def sealed_header(fmt: bytes, sound: bytes) -> bytes:
    """What goes before *sound* (the samples) in a sealed WAV file whose ``fmt `` chunk body is *fmt*."""
    before = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 12 + 8 + len(sound)) + b"WAVE"
              + b"fmt " + struct.pack("<I", len(fmt)) + fmt + SEAL + struct.pack("<I", 4))
    after = b"data" + struct.pack("<I", len(sound))
    return before + struct.pack("<I", zlib.crc32(sound, zlib.crc32(after, zlib.crc32(before)))) + after


def seal(wav: bytes) -> bytes:
    """A WAV file of one format chunk and one data chunk (as Piper writes them), sealed."""
    fmt = data = None
    position = 12
    while position + 8 <= len(wav) and (fmt is None or data is None):
        name, size = wav[position:position + 4], int.from_bytes(wav[position + 4:position + 8], "little")
        if name == b"fmt ":
            fmt = wav[position + 8:position + 8 + size]
        elif name == b"data":
            data = wav[position + 8:position + 8 + size]
        position += 8 + size + (size & 1)
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE" or fmt is None or data is None or len(fmt) % 2:
        raise ValueError("not a WAV file of sound")
    return sealed_header(fmt, data) + data


def seal_at(wav: bytes) -> int | None:
    """Where the checksum is in a sealed WAV file: the ``seal`` chunk follows the ``fmt `` chunk. None if it
    has no seal there."""
    if len(wav) < 20:
        return None
    at = 20 + int.from_bytes(wav[16:20], "little") + 8
    return at if wav[12:16] == b"fmt " and wav[at - 8:at] == SEAL + b"\4\0\0\0" and len(wav) >= at + 4 else None


def seal_problem(wav: bytes) -> str | None:
    """None if the file's checksum matches its bytes; NO_SEAL if it has none; else what is wrong."""
    at = seal_at(wav)
    if at is None:
        return NO_SEAL
    view = memoryview(wav)
    if zlib.crc32(view[at + 4:], zlib.crc32(view[:at])) != int.from_bytes(wav[at:at + 4], "little"):
        return "it does not match its checksum"
    return None


def speech_span(pcm: bytes | bytearray) -> tuple[int, int] | None:
    """The first and the last of the 16-bit little-endian samples *pcm* that are louder than SILENCE (None if none
    is). Zero bytes at either end are skipped a block at a time by `lstrip`/`rstrip`; from there the samples
    are looked at one by one, a few for espeak-ng's sound (its pauses are zeros), many for a sound with a
    noise floor, for which speech_seconds is the faster measure."""
    size, block = len(pcm) // 2 * 2, 8192
    start = 0                   # the first block with a byte that is not zero, and its first such byte
    while start < size and not (kept := len(bytes(pcm[start:min(start + block, size)]).lstrip(b"\0"))):
        start += block
    if start >= size:
        return None
    first = (min(start + block, size) - kept) // 2
    end = size                  # the last such block (there is one), and its last such byte
    while not (kept := len(bytes(pcm[max(0, end - block):end]).rstrip(b"\0"))):
        end -= block
    last = (max(0, end - block) + kept - 1) // 2
    sample = struct.Struct("<h").unpack_from
    while first <= last and -QUIET <= sample(pcm, 2 * first)[0] <= QUIET:
        first += 1
    while last >= first and -QUIET <= sample(pcm, 2 * last)[0] <= QUIET:
        last -= 1
    return (first, last) if first <= last else None


def speech_seconds(wav) -> float:
    """The length of the speech in a WAV file (its path or its bytes), from the first to the last sample louder
    than SILENCE."""
    import io
    import wave
    from pathlib import Path

    import numpy as np
    data = wav.read_bytes() if isinstance(wav, Path) else wav
    at = seal_at(data)
    if at is not None and seal_is_last(data, at):      # the speech cache's own file: its layout is known
        rate, samples = int.from_bytes(data[24:28], "little"), np.frombuffer(data, dtype="<i2", offset=at + 12)
    else:
        with wave.open(io.BytesIO(data)) as w:
            rate, samples = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    first = _first_loud(samples)
    if first is None:
        return 0.0
    return (samples.size - 1 - _first_loud(samples[::-1]) - first) / rate


def seal_is_last(wav: bytes, at: int) -> bool:
    """Whether the data chunk that follows the seal at *at* holds whole samples and ends the file."""
    size = int.from_bytes(wav[at + 8:at + 12], "little")
    return wav[at + 4:at + 8] == b"data" and size == len(wav) - at - 12 and size % 2 == 0


def _first_loud(samples, block: int = 4096) -> int | None:
    """The index of the first sample louder than SILENCE, looked for a block at a time from the start: speech
    begins and ends within a fraction of a second of the edges, so the middle of the sound is rarely read."""
    for start in range(0, samples.size, block):
        part = samples[start:start + block]
        loud = (part > QUIET) | (part < -QUIET)
        if loud.any():
            return start + int(loud.argmax())
    return None
