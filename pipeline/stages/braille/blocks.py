"""The article in braille, block by block: one small function per kind of block, chosen by its type.

Each function writes its block through a `Transcriber`, which knows the
braille table, the page width and the few things remembered across the
article (which abbreviations have been expanded already). A new kind of
block is one more function and one more line in `RENDERERS`; a block with
no function stops the build with a clear message rather than leaving its
text out of the braille.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from ...errors import InternalError, Problem
from ...i18n import Messages, untranslated
from ...model import (Article, Callout, Disclaimer, Faq, Glossary, Heading, Image, KeyPoints, ListBlock, ListItem,
                      Paragraph, Quote, Related, References, Section, Sentence, Span, Summary, Table, plain)
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
    words: Messages = field(default_factory=untranslated)      # the generated words of the article's language
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

    def item(self, braille: str, level: int, levels: int = 1) -> None:
        """A list item at cell 1, a sub-point two cells further in per level. Runovers start two cells
        right of the deepest level of the list (BANA's nested lists: 1-3 for a flat list, 1-5 and 3-5 for
        two levels), so that a runover never starts where an item of another level starts."""
        self.lines(braille, 2 * level, 2 * levels)

    def note(self, braille: str) -> None:
        """A transcriber's note (already in braille): at cell 7, runovers at cell 5, between the note indicators."""
        self.lines(f"{NOTE_OPEN}{braille}{NOTE_CLOSE}", 6, 4)

    def box(self, opening: bool) -> None:
        if opening:
            self.pages.blank()
            self.pages.add([BOX_TOP * self.size.cells], keep_with_next=True)
        else:
            if self.pages.lines and not self.pages.lines[-1].text:
                self.pages.lines.pop()             # a list or quote ending the box: its box line closes it
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


def labelled(label: tuple[Span, ...], text: str, out: Transcriber) -> str:
    """"label: text", the label without its print emphasis (its place at cell 1 sets it apart), or the
    text alone when there is no label."""
    return f"{out.inline(label, marks=False)}{out.plain(':')} {text}" if label else text


def list_depth(items: tuple[ListItem, ...]) -> int:
    """How many levels a list has, its sub-lists' included."""
    return 1 + max((list_depth(item.sublist.items) for item in items if item.sublist), default=0)


def list_items(items: tuple[ListItem, ...], ordered: bool, out: Transcriber, level: int = 0,
               levels: int | None = None) -> None:
    """Each item, then its sub-points one level further in. Numbers are kept as print shows them
    (each numbered list, a sub-list too, counts from 1); print's bullets are left out, as BANA allows."""
    levels = levels or list_depth(items)
    for number, item in enumerate(items, 1):
        prefix = out.plain(f"{number}.") + " " if ordered else ""
        out.item(prefix + labelled(item.label, out.sentences(item.sentences), out), level, levels)
        if item.sublist:
            list_items(item.sublist.items, item.sublist.ordered, out, level + 1, levels)


# -- one function per kind of block -------------------------------------------------------------------

def paragraph(block: Paragraph, out: Transcriber) -> None:
    out.paragraph(out.sentences(block.sentences))


def list_block(block: ListBlock, out: Transcriber) -> None:
    out.pages.blank()
    list_items(block.items, block.ordered, out)
    out.pages.blank()


def table(block: Table, out: Transcriber) -> None:
    """BANA's listed form: each row's header at cell 1, then "column: entry" at cell 3, runovers at cell 5."""
    out.pages.blank()
    if block.caption:
        out.pages.add(wrap(out.inline(block.caption, marks=False), out.size.cells, 4, 4), keep_with_next=True)
    out.note(out.plain(out.words.gettext("The table is listed: each %(row)s is followed by its entry in each "
                                         "column.") % {"row": block.corner.text.lower() or out.words.gettext("row")}))
    for row in block.rows:
        out.pages.add(wrap(out.sentences(row.header.sentences), out.size.cells, 0, 4), keep_with_next=True)
        for column, cell in zip(block.columns, row.cells):
            entry = f"{out.sentences(column.sentences)}{out.plain(':')} {out.sentences(cell.sentences)}"
            out.lines(entry, 2, 4)
    out.pages.blank()


def image(block: Image, out: Transcriber) -> None:
    """The alt text in a transcriber's note, the caption, then the long description in a note of its own:
    the order in which every other format gives them."""
    if not block.decorative:
        out.note(out.plain(out.words.gettext("Image: %(alt)s") % {"alt": block.alt}))
    if block.caption:
        out.paragraph(out.sentences(block.caption))
    if block.long_description:
        out.note(out.plain(out.words.gettext("Description of the picture:") + " ")
                 + out.sentences(block.long_description))


def section(block: Section, out: Transcriber) -> None:
    out.heading(block.heading)
    out.blocks(block.blocks)


def summary(block: Summary, out: Transcriber) -> None:
    boxed(block.heading, out, lambda: out.blocks(block.blocks))


def key_points(block: KeyPoints, out: Transcriber) -> None:
    boxed(block.heading, out, lambda: list_items(block.items, False, out))


def callout(block: Callout, out: Transcriber) -> None:
    """A warning, caution, note or tip: boxed like the summary, its kind in words before its title
    ("Warning: Get medical help today"), since braille has no colour or icon to say it."""
    label = out.words.gettext(block.label)
    kind = Span(f"{label}: " if block.title.spans else label)
    boxed(replace(block.title, spans=(kind, *block.title.spans)), out, lambda: out.blocks(block.blocks))


def quote(block: Quote, out: Transcriber) -> None:
    """BANA's displayed material: a blank line before and after, the text at cell 3 with runovers at
    cell 1; the attribution after it at cell 5, with print's dash."""
    out.pages.blank()
    out.paragraph(out.sentences(block.sentences))
    if block.attribution:
        out.lines(out.plain("— ") + out.inline(block.attribution), 4, 4)
    out.pages.blank()


def glossary(block: Glossary, out: Transcriber) -> None:
    """Headed like the other headed blocks; each entry "term: definition" at cell 1 with runovers at
    cell 3, as labelled list items are."""
    out.heading(block.heading)
    out.pages.blank()
    for term in block.terms:
        out.item(labelled(term.term, out.sentences(term.definition), out), 0)
    out.pages.blank()


def disclaimer(block: Disclaimer, out: Transcriber) -> None:
    boxed(block.heading, out, lambda: out.blocks(block.blocks))


def boxed(heading: Heading, out: Transcriber, body: Callable[[], None]) -> None:
    """Material set apart in print (a summary, key points, a callout, the disclaimer) between box lines."""
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
    Callout: callout,
    Quote: quote,
    Glossary: glossary,
}
