"""How the build's processes keep their memory to what they use (glibc's allocator and Python's collector).

A worker process lives for many stages of many articles. glibc's malloc
keeps what a stage frees for its next allocations rather than return it to
the system, and by default in ways that let a long-lived process hold far
more than it uses:

* every thread that allocates gets an arena of its own, up to eight per
  core, and each arena keeps its own freed memory: the narration's worker
  runs speech, encoding and muxing threads;
* a freed block that had been mapped on its own (a chapter's samples, some
  megabytes) raises the size below which blocks are carved from the arenas
  instead, up to 32 MiB: from then on every chapter's samples are, and
  what they leave free in the arenas stays with the process.

So a worker allows two arenas and keeps that size at glibc's default
(128 KiB: larger blocks are mapped, and unmapped when freed), and after each
stage hands back the free pages its arenas still hold (`malloc_trim`).
Measured on two cores: the narration's worker of the B12 article repeated
16 times held 117 to 154 MiB, now 66 to 131; over a batch of small
articles it stayed at 110 to 156 MiB, now 50 to 100; the peak of the whole
build of ×16 fell from 425 to 344 MiB. Neither costs measurable time (the
mapped blocks are a few per chapter).

The processes are forked: a worker shares the pages of everything its
parent held, until either writes to them. Python's garbage collector
writes into every object it examines, so a worker's first full collection
copied every page of its parent's objects: with the 1,000 articles of a
batch loaded (some 25 MiB), each renewed worker gained 23 MiB of copies.
So a worker freezes what it inherited (`gc.freeze`): its collections never
examine those objects. The batch's own process freezes what it holds (what
the runs so far have reported) before each run's workers are forked, for
the same reason: its collections would copy those pages, and each worker
and the speech helpers forked from it would be left holding the originals.
It reads a run's articles only once that run's workers are forked: each
stage sends its article to the worker anyway.
"""
from __future__ import annotations

import ctypes
import functools
import gc

# mallopt(3)'s parameters
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024     # glibc's default, kept from moving up


@functools.lru_cache(maxsize=1)
def _glibc():
    """The C library if it is glibc (which has mallopt and malloc_trim), else None (musl, macOS)."""
    try:
        libc = ctypes.CDLL(None)     # the C library the process runs on (find_library would run ldconfig)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def settle_worker() -> None:
    """In a worker process, as it starts: what it inherited is left out of its garbage collections (shared
    with its parent, it stays shared), and its allocator keeps few arenas and gives large blocks back."""
    gc.freeze()
    libc = _glibc()
    if libc:
        libc.mallopt(M_ARENA_MAX, ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_freed_memory() -> None:
    """Give the system back the free pages the allocator holds (after a stage: the next may be far smaller)."""
    libc = _glibc()
    if libc:
        libc.malloc_trim(0)


def share_with_workers() -> None:
    """In a batch's process, before each run's workers are forked: what it holds now (the results so far) is
    left out of its garbage collections from then on, so that the workers keep sharing its pages.
    (What is frozen is still freed when nothing refers to it; only cycles among it would stay.)"""
    # What it has finished with is collected first. The catalogue written after each run leaves its entries in
    # a cycle (the template's macros and its context); frozen, they were never collected, a whole catalogue
    # more after each run: over four more runs of 30 small articles this process came to hold 28,000 more of
    # Python's blocks than after the first, and now holds as many.
    gc.collect()
    gc.freeze()
