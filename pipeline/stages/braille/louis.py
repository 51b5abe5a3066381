"""liblouis, the braille translator, through its C library (ctypes on liblouis.so.20).

ctypes works from any Python, a virtual environment included, where Debian's
own binding (python3-louis) is only importable from the system Python.
Text goes in as Unicode, braille comes out as dot patterns (the dotsIO mode),
which this module writes as North American Braille ASCII itself: the BRF's
characters then never depend on which display table liblouis picks.
"""
from __future__ import annotations

import ctypes
import functools

from ...errors import MissingTool
from .. import SYSTEM_LIBRARIES, missing_library

LIBRARY, INSTALL, PURPOSE = SYSTEM_LIBRARIES["braille"]

# North American Braille ASCII: the character for each 6-dot cell, indexed by
# its dots as bits (dot 1 = 1, dot 2 = 2, … dot 6 = 32). The 64 characters
# from space to underscore; a BRF holds only these, form feed, CR and LF.
BRAILLE_ASCII = " A1B'K2L@CIF/MSP\"E3H9O6R^DJG>NTQ,*5<-U8V.%[$+X!&;:4\\0Z7(_?W]#Y)="

# liblouis.h: typeforms (emphasis classes of the UEB tables, in their order) and translation modes
ITALIC, BOLD, NO_CONTRACT = 0x0001, 0x0004, 0x1000
_DOTS_IO, _NO_UNDEFINED = 0x0004, 0x0080
_DOTS_FLAG = 0x8000            # a cell in dotsIO mode: this bit plus the dots
_LOG_OFF = 0x7FFFFFFF          # LOU_LOG_OFF: liblouis logs table searches on stderr otherwise


@functools.lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded liblouis; missing, a MissingTool error (exit 3) naming the install command."""
    missing = missing_library("braille")
    if missing:
        raise missing
    lib = ctypes.CDLL(LIBRARY)
    lib.lou_version.restype = ctypes.c_char_p
    lib.lou_findTable.restype = ctypes.c_char_p
    lib.lou_getTable.restype = ctypes.c_void_p
    lib.lou_setLogLevel(_LOG_OFF)
    if lib.lou_charSize() != 4:           # Debian builds it with 32-bit characters; other builds differ
        raise MissingTool("liblouis built with 32-bit characters", INSTALL, PURPOSE)
    return lib


def installed() -> bool:
    try:
        library()
    except MissingTool:
        return False
    return True


def version() -> str:
    return f"liblouis {library().lou_version().decode()}"


def check_table(table: str) -> None:
    """Compile *table* once (liblouis keeps it); a missing table file is a missing package."""
    if not library().lou_getTable(table.encode()):
        raise MissingTool(f"the liblouis braille table `{table}`", INSTALL, PURPOSE)


# liblouis's tables name some languages by another code than BCP 47 articles use
TABLE_LANGUAGE = {"zh": "cmn"}


@functools.lru_cache(maxsize=32)
def table_for(language: str) -> tuple[str, bool]:
    """The literary braille table for a BCP 47 language, and whether it is contracted.

    English is Unified English Braille, contracted (grade 2). Other languages
    get their contracted table where liblouis has one, else an uncontracted
    one; a language liblouis has no table for gets uncontracted UEB.
    """
    primary = language.split("-")[0].lower()
    if primary == "en":
        return "en-ueb-g2.ctb", True
    primary = TABLE_LANGUAGE.get(primary, primary)
    lib = library()
    for contracted, query in ((True, "dots:6 contraction:full"), (False, "dots:6 contraction:no"), (False, "")):
        found = lib.lou_findTable(f"language:{primary} type:literary {query}".strip().encode())
        if not found:
            continue
        # the best match may fit the query only in part: another language, or the other grade
        metadata = _metadata(found.decode())
        if metadata.get("language") == primary and (metadata.get("contraction") == "full") == contracted:
            return found.decode().rsplit("/", 1)[-1], contracted
    return "en-ueb-g1.ctb", False


def _metadata(path: str) -> dict[str, str]:
    """A table's `#+key: value` lines."""
    try:
        with open(path, encoding="utf-8", errors="replace") as table:
            pairs = [line[2:].split(":", 1) for line in table if line.startswith("#+") and ":" in line]
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, value in pairs}


def _cells(count: int):
    return (ctypes.c_uint32 * count)()


def translate(text: str, table: str, typeform: list[int] | None = None) -> str:
    """*text* in braille, as Braille ASCII. Characters the table does not know are left out."""
    if not text:
        return ""
    lib = library()
    source = (ctypes.c_uint32 * len(text))(*map(ord, text))
    size = len(text) * 3 + 16
    while True:
        out, in_length, out_length = _cells(size), ctypes.c_int(len(text)), ctypes.c_int(size)
        forms = (ctypes.c_uint16 * size)(*typeform) if typeform else None
        if not lib.lou_translateString(table.encode(), source, ctypes.byref(in_length), out,
                                       ctypes.byref(out_length), forms, None, _DOTS_IO | _NO_UNDEFINED):
            raise RuntimeError(f"liblouis could not translate with `{table}`")
        if in_length.value >= len(text):
            return "".join(BRAILLE_ASCII[cell & 0x3F] for cell in out[:out_length.value])
        size *= 2                          # the braille did not fit: try again with more room


def back_translate(braille: str, table: str) -> str:
    """Braille ASCII back to print (used by the tests and for checking: it loses capitals and spacing)."""
    if not braille:
        return ""
    lib = library()
    cells = [_DOTS_FLAG | BRAILLE_ASCII.index(ch) for ch in braille.upper()]
    source = (ctypes.c_uint32 * len(cells))(*cells)
    size = len(cells) * 8 + 16
    out, in_length, out_length = _cells(size), ctypes.c_int(len(cells)), ctypes.c_int(size)
    if not lib.lou_backTranslateString(table.encode(), source, ctypes.byref(in_length), out,
                                       ctypes.byref(out_length), None, None, _DOTS_IO):
        raise RuntimeError(f"liblouis could not back-translate with `{table}`")
    return "".join(map(chr, out[:out_length.value]))
