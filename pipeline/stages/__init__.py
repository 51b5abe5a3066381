"""The stage registry: one module per output format, one small interface.

A stage turns the document model and a theme into files. It never reads
YAML, never writes into ``output/`` (the build gives it a private folder and
publishes its files only when every stage of the article succeeded), and
never knows that other stages exist beyond the list of formats in the
``BuildContext``, except for what it declares in ``NEEDS``: a stage that is
made from another's files (the read-aloud EPUB from the narration) names
that stage there, the build runs it after that stage, hands it the files
in ``BuildContext.products`` and fingerprints it with their SHA-256, so it
is rebuilt when, and only when, what it is made of changed.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import MissingTool

if TYPE_CHECKING:         # a build with nothing to do imports neither (see stamp.py)
    from ..model import Article
    from ..theme import Theme


@dataclass(frozen=True)
class BuildContext:
    """What a stage may know about the build it is part of."""

    formats: tuple[str, ...]          # the formats of this article's build, e.g. ("pdf", "html")
    epoch: int                        # SOURCE_DATE_EPOCH (or a fixed date): every timestamp comes from it
    published: tuple[str, ...] = ()   # formats already in the article's output folder from earlier builds
    cache_dir: Path | None = None     # a persistent folder a stage may keep caches in
    report: dict = field(default_factory=dict, compare=False)   # counters a stage reports (e.g. utterances synthesized)
    # for a stage with NEEDS: the needed stages' files by name, where they are now (this build's staging
    # folder, or the published folder when the needed stage was current)
    products: dict[str, Path] = field(default_factory=dict, compare=False)
    # what a stage knows of a file it made that the catalogue tells readers (a PDF's pages, a narration's length
    # and chapters), by file name: the build takes it from here rather than reading the file again (catalogue.file_facts)
    facts: dict[str, dict] = field(default_factory=dict, compare=False)

    def has(self, fmt: str) -> bool:
        return fmt in self.formats or fmt in self.published


class Stage(Protocol):
    name: str                                            # "pdf"

    def preload(self) -> None:
        """Import the libraries render() needs: a worker does it while the build is still being planned."""

    def outputs(self, article: Article) -> list[str]:
        """File names the stage writes into the article's output folder."""

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        """Everything besides the article and theme files that its output depends on (versions, settings)."""

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        """Write the outputs into *workdir* and return their paths."""

    # Only stages with NEEDS:
    def uses(self, article: Article, products: dict[str, Path]) -> list[str]:
        """Which of the needed stages' files (*products*, by name) the output is made from: their SHA-256 go
        into the fingerprint. A product it needs and cannot find is a PublishError saying how to make it."""


# name → module that defines `STAGE`. Importing lazily keeps `publish check`
# fast and lets a build of one format run without the others' libraries.
STAGE_MODULES = {
    "pdf": "pipeline.stages.pdf",
    "pdf-large": "pipeline.stages.pdf_large",
    "epub": "pipeline.stages.epub",
    "html": "pipeline.stages.html",
    "audio": "pipeline.stages.audio",
    "braille": "pipeline.stages.braille",
    "read-aloud": "pipeline.stages.read_aloud",      # after "audio", which it needs (see NEEDS)
}

# Stages made from other stages' files: name → the stages whose files it reads. Kept here rather than on
# the stage classes, so that planning a build (the formats asked for, the workers) imports no stage.
# A build with the dependent stage runs the stages it needs first, in the same build: from the files they
# have just made, or from the published ones when those are current (then they are merely "cached").
NEEDS = {
    "read-aloud": ("audio",),
}

# Theme folders that only some stages read: the other stages' fingerprints leave them out, so that a
# pronunciation corrected in the lexicon rebuilds the narration and what is made from it, not the PDF.
THEME_FOLDERS_READ_BY = {
    "lexicon": ("audio",),
}


def with_needs(names: list[str]) -> list[str]:
    """*names* and every stage they need, directly or not, in the registry's order (a stage after its needs)."""
    wanted, queue = set(names), list(names)
    while queue:
        for need in NEEDS.get(queue.pop(), ()):
            if need not in wanted:
                wanted.add(need)
                queue.append(need)
    return sorted(wanted, key=list(STAGE_MODULES).index)


def theme_folders_ignored(name: str) -> tuple[str, ...]:
    """The theme folders stage *name* does not read. (A stage with NEEDS is made from its needs' files, whose
    SHA-256 are in its fingerprint: a folder read by those alone changes it only through them.)"""
    return tuple(sorted(folder for folder, readers in THEME_FOLDERS_READ_BY.items() if name not in readers))


# The narration's files. `--format audio` makes both; `--format mp3` or `m4b` makes one, and a build
# without --format makes those the theme's `audio_formats` names. Both come from the same speech and
# the same chapters; the M4B's AAC encoding costs about three times the MP3's.
AUDIO_CONTAINERS = ("mp3", "m4b")


# Stages that need a system library beyond the Python packages: (shared library, install command, what
# for). Without it the stage is left out of a build of all formats; asked for by name, it is a missing
# tool (exit 3) while the other formats still build.
SYSTEM_LIBRARIES = {
    "braille": ("liblouis.so.20", "apt-get install liblouis-bin liblouis-data", "the braille edition"),
}


def missing_library(name: str) -> MissingTool | None:
    """The error to report if stage *name* cannot run on this machine for want of its system library."""
    if name not in SYSTEM_LIBRARIES:
        return None
    library, install, purpose = SYSTEM_LIBRARIES[name]
    try:
        ctypes.CDLL(library)          # the dynamic loader's own search: a millisecond, no ldconfig run
    except OSError:
        return MissingTool(f"{library.split('.so')[0]} ({library})", install, purpose)
    return None


def left_out(name: str, article: Article, theme: Theme) -> str | None:
    """Why stage *name* can make nothing for this article (the narration of a language no voice speaks), or
    None. Such a stage is left out of the article's build with a warning, like a stage whose system library
    is missing, and the build report and manifest say "skipped" with this reason."""
    check = getattr(get(name), "left_out", None)
    return check(article, theme) if check else None


def available() -> list[str]:
    """Formats whose stage module exists in this version and can run on this machine (with what they need)."""
    names = []
    for name, module in STAGE_MODULES.items():
        if importlib.util.find_spec(module) is not None and missing_library(name) is None \
                and all(need in names for need in NEEDS.get(name, ())):
            names.append(name)
    return names


def package_version(distribution: str) -> str:
    """An installed library's version, read without importing it (a no-change build must stay quick)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"{distribution} {version(distribution)}"
    except PackageNotFoundError:
        return f"{distribution} (not installed)"


# Helper programs (ffmpeg) that stages run from their threads are counted across the whole build, not
# per stage: a batch with two narrations under way on two cores runs two encoders, not four, each of
# which would want a core and some 35 MiB.
_HELPER_SLOTS = None


def share_helper_slots(count: int) -> None:
    """Allow *count* helper programs at once, build-wide. Called before the workers fork, which inherit it."""
    global _HELPER_SLOTS
    import multiprocessing
    _HELPER_SLOTS = multiprocessing.BoundedSemaphore(max(1, count))


@contextlib.contextmanager
def helper_slot():
    """Hold one of the build's helper slots while a helper program runs (no limit outside a build)."""
    if _HELPER_SLOTS is None:
        yield
        return
    with _HELPER_SLOTS:
        yield


def get(name: str) -> Stage:
    return importlib.import_module(STAGE_MODULES[name]).STAGE
