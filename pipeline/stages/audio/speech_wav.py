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
the checksum from the samples it holds, so the build need not read them
twice), and imports this module by itself, not through the package: it uses
nothing but the standard library.
"""
from __future__ import annotations

import struct
import zlib

SEAL = b"seal"
NO_SEAL = "it has no checksum"            # written by an earlier version (with a sidecar), or by a bare engine


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
