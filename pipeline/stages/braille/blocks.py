"""The article in braille, block by block: one small function per kind of block, chosen by its type.

Each function writes its block through a `Transcriber`, which knows the
braille table, the page width and the few things remembered across the
article (which abbreviations have been expanded already). A new kind of
block is one more function and one more line in `RENDERERS`; a block with
no function stops the build with a clear message rather than leaving its
text out of the braille.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ...errors import InternalError, Problem
from ...model import (Article, Disclaimer, Faq, Heading, Image, KeyPoints, ListBlock, ListItem, Paragraph,
                      Related, References, Section, Sentence, Span, Summary, Table, plain)
from . import louis
from .layout import BOX_BOTTOM, BOX_TOP, Pages, PageSize, centre, wrap

# UEB's transcriber's note indicators (dots 4, 46, 126 and 4, 46, 345), which open and close a note
# that the transcriber, not the author, wrote.
NOTE_OPEN, NOTE_CLOSE = "@.<", "@.>"


@dataclass
class Transcriber:
    """Writes braille lines in reading order: translation, indentation and the article's memory."""

    article: Article
    table: str
    size: PageSize
    expanded: set[str] = field(default_factory=set)     # abbreviations already given with their expansion
    pages: Pages = field(init=False)                   # the lines written so far

    def __post_init__(self):
        self.pages = Pages(self.size)

    # -- translation ------------------------------------------------------------------------------

    def plain(self, text: str) -> str:
        return louis.translate(text, self.table)

    def inline(self, spans: tuple[Span, ...], marks: bool = True) -> str:
        """Spans in braille: emphasis where the author marked it, abbreviations expanded on first use,
        links followed by their address (uncontracted, as it must be typed)."""
        text: list[str] = []
        forms: list[int] = []

        def put(chunk: str, form: int = 0) -> None:
            text.append(chunk)
            forms.extend([form] * len(chunk))

        for n, span in enumerate(spans):
            form = (louis.BOLD if span.strong else 0) | (louis.ITALIC if span.emphasis else 0) if marks else 0
            link_text = plain(tuple(s for s in spans if s.href == span.href)).strip() if span.href else ""
            address = link_address(span.href) if span.href and not span.href.startswith("#") else ""
            if address and link_text == address:       # the address is the link's text: write it as typed
                form |= louis.NO_CONTRACT
            put(span.text, form)
            if span.abbr and span.abbr.text not in self.expanded:
                self.expanded.add(span.abbr.text)
                before = "".join(text[:-1])
                if span.abbr.expansion.lower() not in before.lower():   # "methylmalonic acid (MMA)" says it already
                    inside = before.rstrip().endswith("(")
                    put(f", {span.abbr.expansion}" if inside else f" ({span.abbr.expansion})")
            last_of_link = n + 1 == len(spans) or spans[n + 1].href != span.href
            if address and last_of_link and link_text != address:
                put(" (")
                put(address, louis.NO_CONTRACT)
                put(")")
        return louis.translate("".join(text), self.table, forms)

    def address(self, href: str) -> str:
        """A web address standing alone, in brackets, uncontracted."""
        address = link_address(href)
        return louis.translate(f"({address})", self.table, [0] + [louis.NO_CONTRACT] * len(address) + [0])

    def sentences(self, sentences: tuple[Sentence, ...]) -> str:
        return " ".join(self.inline(s.spans) for s in sentences)

    # -- layout -----------------------------------------------------------------------------------

    def lines(self, braille: str, first: int, runover: int) -> None:
        self.pages.add(wrap(braille, self.size.cells, first, runover))

    def centred(self, braille: str, keep_with_next: bool = False) -> None:
        self.pages.add(centre(braille, self.size.cells), keep_with_next)

    def heading(self, heading: Heading) -> None:
        """Centred for the article's top sections, at cell 5 below them, cell 7 deeper; a blank line before."""
        braille = self.inline(heading.spans, marks=False)
        if not self.pages.lines or self.pages.lines[-1].text != BOX_TOP * self.size.cells:
            self.pages.blank()                     # a box's first heading follows its box line directly
        if heading.level <= 2:
            self.centred(braille, keep_with_next=True)
        else:
            indent = 4 if heading.level == 3 else 6
            self.pages.add(wrap(braille, self.size.cells, indent, indent), keep_with_next=True)

    def paragraph(self, braille: str) -> None:
        self.lines(braille, 2, 0)                  # cell 3, runovers at cell 1

    def item(self, braille: str, level: int) -> None:
        self.lines(braille, 2 * level, 2 * level + 2)    # cell 1, runovers at cell 3; nested two cells in

    def note(self, text: str) -> None:
        """A transcriber's note: at cell 7, runovers at cell 5, between the note indicators."""
        self.lines(f"{NOTE_OPEN}{self.plain(text)}{NOTE_CLOSE}", 6, 4)

    def box(self, opening: bool) -> None:
        if opening:
            self.pages.blank()
            self.pages.add([BOX_TOP * self.size.cells], keep_with_next=True)
        else:
            self.pages.add([BOX_BOTTOM * self.size.cells])

    def blocks(self, blocks) -> None:
        for block in blocks:
            render = RENDERERS.get(type(block))
            if render is None:
                raise InternalError(Problem(self.article.source.name, 0, 0,
                                            f"the braille edition has no layout for `{getattr(block, 'kind', type(block).__name__)}` blocks",
                                            "this version cannot transcribe that block; build the other formats with "
                                            "--format, and report it"))
            render(block, self)


def link_address(href: str) -> str:
    """A link's address as the reader would use it: e-mail and telephone without their scheme."""
    for scheme in ("mailto:", "tel:"):
        if href.lower().startswith(scheme):
            return href[len(scheme):]
    return href


def list_item_braille(item: ListItem, out: Transcriber) -> str:
    label = f"{out.inline(item.label, marks=False)}{out.plain(':')} " if item.label else ""
    return label + out.sentences(item.sentences)


# -- one function per kind of block -------------------------------------------------------------------

def paragraph(block: Paragraph, out: Transcriber) -> None:
    out.paragraph(out.sentences(block.sentences))


def list_block(block: ListBlock, out: Transcriber, level: int = 0) -> None:
    out.pages.blank()
    for number, item in enumerate(block.items, 1):
        prefix = out.plain(f"{number}.") + " " if block.ordered else ""
        out.item(prefix + list_item_braille(item, out), level)
    out.pages.blank()


def table(block: Table, out: Transcriber) -> None:
    """BANA's listed form: each row's header at cell 1, then "column: entry" at cell 3, runovers at cell 5."""
    out.pages.blank()
    if block.caption:
        out.pages.add(wrap(out.inline(block.caption, marks=False), out.size.cells, 4, 4), keep_with_next=True)
    out.note(f"The table is listed: each {block.corner.text.lower() or 'row'} is followed by "
             f"its entry in each column.")
    for row in block.rows:
        out.pages.add(wrap(out.sentences(row.header.sentences), out.size.cells, 0, 4), keep_with_next=True)
        for column, cell in zip(block.columns, row.cells):
            entry = f"{out.sentences(column.sentences)}{out.plain(':')} {out.sentences(cell.sentences)}"
            out.lines(entry, 2, 4)
    out.pages.blank()


def image(block: Image, out: Transcriber) -> None:
    if not block.decorative:
        out.note(f"Image: {block.alt}")
    if block.caption:
        out.paragraph(out.sentences(block.caption))


def section(block: Section, out: Transcriber) -> None:
    out.heading(block.heading)
    out.blocks(block.blocks)


def summary(block: Summary, out: Transcriber) -> None:
    boxed(block.heading, out, lambda: out.blocks(block.blocks))


def key_points(block: KeyPoints, out: Transcriber) -> None:
    def items():
        for item in block.items:
            out.item(list_item_braille(item, out), 0)
    boxed(block.heading, out, items)


def disclaimer(block: Disclaimer, out: Transcriber) -> None:
    boxed(block.heading, out, lambda: out.blocks(block.blocks))


def boxed(heading: Heading, out: Transcriber, body: Callable[[], None]) -> None:
    """Material set apart in print (a summary, key points, the disclaimer) between box lines."""
    out.box(opening=True)
    out.heading(heading)
    body()
    out.box(opening=False)
    out.pages.blank()


def faq(block: Faq, out: Transcriber) -> None:
    out.heading(block.heading)
    for item in block.items:
        out.heading(item.question)
        out.blocks(item.answer)


def related(block: Related, out: Transcriber) -> None:
    out.heading(block.heading)
    out.pages.blank()
    for link in block.links:
        title = out.inline(link.title, marks=False)
        if link.url:
            title += " " + out.address(link.url)
        out.item(" ".join(filter(None, (title, out.sentences(link.description)))), 0)


def references(block: References, out: Transcriber) -> None:
    out.heading(block.heading)
    out.pages.blank()
    for number, ref in enumerate(block.items, 1):
        text = out.plain(f"{number}.") + " " + out.sentences(ref.sentences)
        if ref.url:
            text += " " + out.address(ref.url)
        out.item(text, 0)


RENDERERS: dict[type, Callable] = {
    Paragraph: paragraph,
    ListBlock: list_block,
    Table: table,
    Image: image,
    Section: section,
    Summary: summary,
    KeyPoints: key_points,
    Faq: faq,
    Related: related,
    References: references,
    Disclaimer: disclaimer,
}
