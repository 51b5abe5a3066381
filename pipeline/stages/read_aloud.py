"""The read-aloud EPUB: the EPUB with its narration inside, the text and the voice in step (EPUB 3 Media Overlays).

A reader with low vision, dyslexia or aphasia, or one learning English,
hears each sentence while the reading system highlights it. The book is
the text-only EPUB's content documents (epub.py makes both, with each
sentence in an element of its own here) plus:

* the narration the audio stage made (its MP3, or its M4B when the theme
  makes no MP3: both are core media types), stored uncompressed;
* one SMIL file per content document, with one `par` per sentence or
  heading read, in reading order, pointing at the element's id, with
  `clipBegin`/`clipEnd` taken from the audio stage's timings.json: the
  same numbers the captions (the VTT) are written from, never recomputed;
* the overlay metadata (`media-overlay` on each content document,
  `media:duration` per overlay and in total, `media:narrator`,
  `media:active-class`) and the accessibility metadata for a book that
  can be read, heard, or both.

The stage needs the audio stage (stages.NEEDS): the build runs it after
the narration is made or found current, hands it those files and puts
their SHA-256 in its fingerprint.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem, PublishError, display_path
from ..i18n import N_
from ..model import Article
from ..theme import Theme
from . import BuildContext
from .epub import EpubStage

# The class reading systems give the element being read (media:active-class): css/read-aloud.css draws it.
ACTIVE_CLASS = "read-aloud-active"
STYLESHEET = "read-aloud.css"
# added to the accessibility summary of the text-only EPUB (the article's or the theme's)
SUMMARY = N_("Every sentence and heading is also narrated by a synthetic voice, synchronized with the text: "
              "a reading system that plays media overlays highlights each sentence as it is heard.")
# A headed block's id names the block (a section, a callout, a question); its heading's text is the element
# with this suffix (blocks.html's heading macro). The narration points at the block; the overlay at its heading.
HEADING_SUFFIX = "-h"
# The narration's containers a package may carry: EPUB 3 core media types.
AUDIO_TYPES = {".mp3": "audio/mpeg", ".m4b": "audio/mp4", ".m4a": "audio/mp4"}
TIMINGS_VERSION = 1


@dataclass
class Clip:
    """One `par`: an element of a content document and when the narration reads it (ms)."""

    document: str
    element: str
    begin_ms: int
    end_ms: int
    utterances: tuple[str, ...]


def clock(ms: int) -> str:
    """A SMIL full clock value, to the millisecond: 0:01:02.345."""
    return f"{ms // 3_600_000}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def element_ids(xhtml: bytes) -> list[str]:
    """Every id of a content document, in document order."""
    from lxml import etree
    return [element.get("id") for element in etree.fromstring(xhtml).iter() if element.get("id")]


def clips(utterances: list[dict], documents: dict[str, list[str]]) -> list[Clip]:
    """The overlay's clips, in the narration's order, from the timings' utterances and each content
    document's ids (file name → ids in document order).

    An utterance reads the element named by its `target` (a heading through HEADING_SUFFIX). Consecutive
    utterances with the same target are one clip: the words the narration adds before an element
    ("Warning." before a callout's heading, a table row's announcement) already point at that element and
    so belong to its clip, from the first one's start to the last one's end.

    Utterances whose target is no element of the text are left out of the overlay: the opening and closing
    words, a list's count ("Six key points."), "End of warning.", an image's description read from its alt
    text. The reader sees nothing of them on the page, so no element could be highlighted while they are
    heard (highlighting a neighbour would mark the wrong text), and a reading system plays the clips one
    after another, skipping what lies between. Everything is still heard in the narration's own files.
    """
    where = {element: name for name, ids in documents.items() for element in ids}
    found: list[Clip] = []
    previous_target = None
    for utterance in utterances:
        target = utterance["target"]
        element = target + HEADING_SUFFIX if target + HEADING_SUFFIX in where else target
        if element not in where:
            previous_target = None
            continue
        if previous_target == target:
            last = found[-1]
            last.end_ms, last.utterances = utterance["end_ms"], (*last.utterances, utterance["id"])
        else:
            found.append(Clip(where[element], element, utterance["start_ms"], utterance["end_ms"], (utterance["id"],)))
        previous_target = target
    return found


def check_reading_order(found: list[Clip], documents: dict[str, list[str]], source: str) -> None:
    """Each element has one clip, and the clips follow the text: a reading system plays them in document order."""
    order = {(name, element): (d, e) for d, (name, ids) in enumerate(documents.items())
             for e, element in enumerate(ids)}
    seen = set()
    for before, after in zip(found, found[1:]):
        if order[after.document, after.element] <= order[before.document, before.element]:
            raise PublishError(Problem(source, 0, 0, f"the narration reads `{after.element}` after `{before.element}`, "
                                       "which the text has the other way round; the read-aloud EPUB would jump back",
                                       "this is a bug in the narration's script; please report it"))
    for clip in found:
        if clip.element in seen:
            raise PublishError(Problem(source, 0, 0, f"the narration reads `{clip.element}` twice, apart",
                                       "this is a bug in the narration's script; please report it"))
        seen.add(clip.element)


def smil(document: str, audio_href: str, found: list[Clip]) -> bytes:
    """The media overlay of one content document (SMIL 3.0 as EPUB 3 profiles it)."""
    from lxml import etree
    ns, epub = "http://www.w3.org/ns/SMIL", "http://www.idpf.org/2007/ops"
    root = etree.Element(f"{{{ns}}}smil", nsmap={None: ns, "epub": epub}, version="3.0")
    # (no epub:textref on the body: it is optional, and EPUBCheck 4.2.6 wants a fragment in it, which a whole
    # document has not)
    body = etree.SubElement(root, f"{{{ns}}}body")
    for clip in found:
        par = etree.SubElement(body, f"{{{ns}}}par", id=f"par-{clip.element}")
        etree.SubElement(par, f"{{{ns}}}text", src=f"{document}#{clip.element}")
        etree.SubElement(par, f"{{{ns}}}audio", src=audio_href, clipBegin=clock(clip.begin_ms), clipEnd=clock(clip.end_ms))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


def read_timings(path: Path, source: str) -> dict:
    try:
        timings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PublishError(Problem(path.name, 0, 0, f"the narration's timings cannot be read ({exc})",
                                   "build the narration again: --format read-aloud makes it too")) from None
    if not isinstance(timings, dict) or timings.get("version") != TIMINGS_VERSION:
        raise PublishError(Problem(path.name, 0, 0, f"the narration's timings are not version {TIMINGS_VERSION}, "
                                   "which this version reads", "build the narration again: --format read-aloud "
                                   "makes it too"))
    return timings


class ReadAloudStage(EpubStage):
    name = "read-aloud"

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.read-aloud.epub"]

    def uses(self, article: Article, products: dict[str, Path]) -> list[str]:
        """The timings and the narration file they were measured on."""
        timings = f"{article.slug}.timings.json"
        if timings not in products:
            raise PublishError(Problem(article.source.name, 0, 0,
                                       "the read-aloud EPUB is made from the narration, which this output folder "
                                       f"does not have ({timings})", "build with --format read-aloud, which makes "
                                       "the narration too, or build every format"))
        audio = str(read_timings(products[timings], article.source.name).get("audio", ""))
        if audio not in products or Path(audio).suffix not in AUDIO_TYPES:
            raise PublishError(Problem(article.source.name, 0, 0, f"the narration's timings were measured on "
                                       f"`{audio}`, which this output folder does not have as an MP3 or M4B",
                                       "build with --format read-aloud, which makes the narration too"))
        return [timings, audio]

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        from ebooklib import epub

        timings_name, audio_name = self.uses(article, ctx.products)
        timings = read_timings(ctx.products[timings_name], article.source.name)
        self.check_theme(theme)
        book = self.compose(article, theme, sentence_ids=True, stylesheets=(STYLESHEET,))
        if not all(f'href="css/{STYLESHEET}"'.encode() in item.content for item in book.documents):
            raise PublishError(Problem(display_path(theme.root / "templates" / "epub" / "content.xhtml"), 0, 0,
                                       "the template does not link the style sheets it is given, so the read-aloud "
                                       "EPUB could not show which sentence is being read",
                                       "link each of `stylesheets` after epub.css, as themes/default does"))
        package = book.package
        # another publication than the text-only EPUB (twice the size, another file): its own identifier, derived
        # from the article's, so that a library does not take one for the other
        package.set_identifier(f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, article.metadata.identifier + '#read-aloud')}")

        documents = {item.file_name: element_ids(item.content) for item in book.documents}
        found = clips(timings["utterances"], documents)
        check_reading_order(found, documents, article.source.name)
        audio_href = f"audio/{audio_name}"
        # a placeholder: the file is copied into the package as it is written (see epub.repack)
        package.add_item(epub.EpubItem(uid="narration", file_name=audio_href,
                                       media_type=AUDIO_TYPES[Path(audio_name).suffix], content=b""))
        total = 0
        for n, item in enumerate(book.documents):
            own = [clip for clip in found if clip.document == item.file_name]
            if not own:
                continue
            overlay = f"overlay-{item.id}"
            package.add_item(epub.EpubSMIL(uid=overlay, file_name=Path(item.file_name).with_suffix(".smil").as_posix(),
                                           content=smil(item.file_name, audio_href, own)))
            item.media_overlay = overlay
            duration = sum(clip.end_ms - clip.begin_ms for clip in own)
            total += duration
            package.add_metadata(None, "meta", clock(duration), {"property": "media:duration", "refines": f"#{overlay}"})
        package.add_metadata(None, "meta", clock(total), {"property": "media:duration"})
        narrator = timings.get("narrator") or {}
        if narrator.get("voice"):
            package.add_metadata(None, "meta", f"{narrator['voice']} ({narrator.get('engine', 'synthetic')} speech "
                                 "engine, a synthetic voice)", {"property": "media:narrator"})
        package.add_metadata(None, "meta", ACTIVE_CLASS, {"property": "media:active-class"})

        # for the build report: how much of the narration the text follows (the rest is its own opening, counts…)
        ctx.report[self.name] = {"clips": len(found), "overlays": sum(1 for item in book.documents
                                                                      if getattr(item, "media_overlay", None)),
                                 "utterances_left_out": len(timings["utterances"]) - sum(len(c.utterances)
                                                                                          for c in found)}
        target = workdir / f"{article.slug}.read-aloud.epub"
        self.write(book, target, workdir, ctx, stored={f"EPUB/{audio_href}": ctx.products[audio_name]})
        return [target]

    @staticmethod
    def check_theme(theme: Theme) -> None:
        if not theme.file(f"css/{STYLESHEET}").is_file():
            raise PublishError(Problem(display_path(theme.root / "theme.yaml"), 0, 0,
                                       f"the theme has no css/{STYLESHEET}, which draws the sentence being read in "
                                       "the read-aloud EPUB", f"copy it from themes/default/css/{STYLESHEET}"))

    @staticmethod
    def accessibility(article: Article, theme: Theme, publisher: str, words) -> list[tuple[str, str]]:
        """The text-only EPUB's claims, and the narration's: it can be heard, read, or both at once."""
        claims = []
        for prop, value in EpubStage.accessibility(article, theme, publisher, words):
            if prop == "schema:accessMode":
                claims += [(prop, value), (prop, "auditory")]
            elif prop == "schema:accessModeSufficient":
                # the narration reads every sentence, heading, table cell and picture description
                claims += [(prop, "textual"), (prop, "auditory"), (prop, "textual,auditory")]
            elif prop == "schema:accessibilityHazard":
                claims += [("schema:accessibilityFeature", "synchronizedAudioText"), (prop, value)]
            elif prop == "schema:accessibilitySummary":
                claims.append((prop, f"{value} {words.gettext(SUMMARY)}"))
            else:
                claims.append((prop, value))
        return claims


STAGE = ReadAloudStage()
