"""The document model: what every stage reads, and all it reads.

Immutable dataclasses. Text is kept as flat runs of inline spans (text plus
marks: strong, emphasis, link, abbreviation), grouped into sentences with
stable ids, so that the PDF, EPUB and HTML can mark it up, and the audio can
speak it and time its captions sentence by sentence.

Every block has a stable ``id``; headings get readable slugs. A block that
carries its own heading (key points, summary, FAQ, related links,
disclaimer, references, glossary) is a section of the outline like any
``Section``. A callout has a heading too, but is not part of the outline: it
is a box within the text, not a chapter. List items may hold a sub-list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

from .i18n import N_


@dataclass(frozen=True)
class Abbreviation:
    text: str            # as written: "mcg"
    expansion: str       # "micrograms": HTML <abbr title>, and speech when no lexicon entry says otherwise


@dataclass(frozen=True)
class Span:
    """A run of text with the same marks."""

    text: str
    strong: bool = False
    emphasis: bool = False
    href: str | None = None
    abbr: Abbreviation | None = None
    lang: str | None = None          # a phrase in another language than the article's: its BCP 47 tag


def plain(spans: tuple[Span, ...]) -> str:
    return "".join(s.text for s in spans)


@dataclass(frozen=True)
class Sentence:
    id: str
    spans: tuple[Span, ...]

    @property
    def text(self) -> str:
        return plain(self.spans)


def sentences_text(sentences: tuple[Sentence, ...]) -> str:
    return " ".join(s.text for s in sentences)


@dataclass(frozen=True)
class Heading:
    id: str
    level: int                      # 1 is the article title; sections start at 2
    spans: tuple[Span, ...]
    editorial: bool = False         # written by the editors, not by the article's author

    @property
    def text(self) -> str:
        return plain(self.spans)


@dataclass(frozen=True)
class Paragraph:
    id: str
    sentences: tuple[Sentence, ...]
    kind = "paragraph"


@dataclass(frozen=True)
class ListItem:
    id: str
    label: tuple[Span, ...]         # empty when the item has no bold label
    sentences: tuple[Sentence, ...]
    sublist: "ListBlock | None" = None   # the points under this one (lists nest up to three levels)

    @property
    def label_text(self) -> str:
        return plain(self.label)


@dataclass(frozen=True)
class ListBlock:
    id: str
    ordered: bool
    items: tuple[ListItem, ...]
    kind = "list"


@dataclass(frozen=True)
class Cell:
    id: str
    sentences: tuple[Sentence, ...]

    @property
    def text(self) -> str:
        return sentences_text(self.sentences)


@dataclass(frozen=True)
class Row:
    id: str
    header: Cell                    # the row header (first column)
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    id: str
    caption: tuple[Span, ...]
    corner: Cell                    # the header above the row headers ("Feature")
    columns: tuple[Cell, ...]       # the other column headers
    rows: tuple[Row, ...]
    kind = "table"

    @property
    def caption_text(self) -> str:
        return plain(self.caption)


@dataclass(frozen=True)
class Image:
    id: str
    path: Path                      # resolved, checked to be inside the article's folder
    alt: str                        # empty only when decorative
    decorative: bool
    caption: tuple[Sentence, ...]
    long_description: tuple[Sentence, ...] = ()   # prose for what the alt text cannot hold (a chart, a diagram)
    kind = "image"


# What a callout's kind is called where it is shown and spoken: always in words, never by colour alone.
# Messages of the theme's catalogue: each format shows them in the article's language.
CALLOUT_KINDS = {"warning": N_("Warning"), "caution": N_("Caution"), "note": N_("Note"), "tip": N_("Tip")}


@dataclass(frozen=True)
class Callout:
    """A box that stands apart from the text: a warning, a caution, a note or a tip.

    Not a section of the outline (no chapter, no bookmark): its heading is its
    kind in words, followed by its title when it has one.
    """

    id: str
    callout_kind: str               # one of CALLOUT_KINDS
    title: Heading                  # the title as written (no spans when there is none); heading_text adds the kind
    blocks: tuple["Block", ...]     # paragraphs and lists
    kind = "callout"

    @property
    def label(self) -> str:
        return CALLOUT_KINDS[self.callout_kind]

    @property
    def heading_text(self) -> str:
        """The heading as every format shows it: "Warning: Get medical help today", or "Warning"."""
        return f"{self.label}: {self.title.text}" if self.title.spans else self.label


@dataclass(frozen=True)
class Quote:
    id: str
    sentences: tuple[Sentence, ...]
    attribution: tuple[Span, ...]   # who said or wrote it; may be empty
    kind = "quote"

    @property
    def attribution_text(self) -> str:
        return plain(self.attribution)


@dataclass(frozen=True)
class GlossaryTerm:
    id: str
    term: tuple[Span, ...]
    definition: tuple[Sentence, ...]

    @property
    def term_text(self) -> str:
        return plain(self.term)


@dataclass(frozen=True)
class Section:
    id: str
    heading: Heading
    blocks: tuple["Block", ...]
    kind = "section"


@dataclass(frozen=True)
class KeyPoints:
    id: str
    heading: Heading
    items: tuple[ListItem, ...]
    kind = "key_points"


@dataclass(frozen=True)
class Summary:
    id: str
    heading: Heading
    blocks: tuple[Paragraph, ...]
    kind = "summary"


@dataclass(frozen=True)
class FaqItem:
    id: str
    question: Heading
    answer: tuple[Paragraph, ...]


@dataclass(frozen=True)
class Faq:
    id: str
    heading: Heading
    items: tuple[FaqItem, ...]
    kind = "faq"


@dataclass(frozen=True)
class RelatedLink:
    id: str
    title: tuple[Span, ...]
    url: str | None
    description: tuple[Sentence, ...]

    @property
    def title_text(self) -> str:
        return plain(self.title)


@dataclass(frozen=True)
class Related:
    id: str
    heading: Heading
    links: tuple[RelatedLink, ...]
    kind = "related"


@dataclass(frozen=True)
class Reference:
    id: str
    sentences: tuple[Sentence, ...]
    url: str | None


@dataclass(frozen=True)
class References:
    id: str
    heading: Heading
    items: tuple[Reference, ...]
    kind = "references"


@dataclass(frozen=True)
class Glossary:
    id: str
    heading: Heading                # the title given, or "Glossary"
    terms: tuple[GlossaryTerm, ...]
    kind = "glossary"


@dataclass(frozen=True)
class Disclaimer:
    id: str
    heading: Heading
    blocks: tuple[Paragraph, ...]
    kind = "disclaimer"


Block = Union[Paragraph, ListBlock, Table, Image, Section, KeyPoints, Summary, Faq,
              Related, References, Disclaimer, Callout, Quote, Glossary]
HEADED = (Section, KeyPoints, Summary, Faq, Related, References, Disclaimer, Glossary)


@dataclass(frozen=True)
class Metadata:
    title: str
    subtitle: str
    short_title: str
    description: str
    language: str                   # BCP 47
    subject: str
    keywords: tuple[str, ...]
    publisher: str                  # the organisation that hands it out
    date_published: str             # ISO date or ""
    date_reviewed: str              # ISO date or ""
    identifier: str                 # stable: given, or derived from the slug
    reading_time_minutes: int | None
    licence: str
    accessibility_summary: str


@dataclass(frozen=True)
class OutlineEntry:
    id: str
    level: int
    text: str
    block: Block                    # the headed block this entry opens


@dataclass
class ContentsEntry:
    """One line of a table of contents: where it leads (an id or a link), its text, the lines under it."""

    target: str
    text: str
    children: list[ContentsEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Article:
    slug: str                       # the source file's stem; names the output folder
    source: Path
    metadata: Metadata
    title: Heading
    subtitle: tuple[Span, ...]
    blocks: tuple[Block, ...]
    abbreviations: tuple[Abbreviation, ...]
    pronunciations: tuple[tuple[str, str], ...] = ()   # per-article lexicon overrides

    def outline(self, max_level: int = 6) -> list[OutlineEntry]:
        """Headed blocks in reading order (the table of contents, the bookmarks, the chapters)."""
        entries: list[OutlineEntry] = []

        def walk(blocks):
            for block in blocks:
                if isinstance(block, HEADED) and block.heading.level <= max_level:
                    entries.append(OutlineEntry(block.heading.id, block.heading.level, block.heading.text, block))
                if isinstance(block, Section):
                    walk(block.blocks)
                if isinstance(block, Faq) and max_level >= block.heading.level + 1:
                    for item in block.items:
                        entries.append(OutlineEntry(item.question.id, item.question.level, item.question.text, block))
        walk(self.blocks)
        return entries

    def images(self) -> list[Image]:
        """Every image, in reading order, wherever it is nested."""
        found: list[Image] = []

        def walk(blocks):
            for block in blocks:
                if isinstance(block, Image):
                    found.append(block)
                walk(getattr(block, "blocks", ()))
        walk(self.blocks)
        return found

    def sentences(self) -> Iterator[Sentence]:
        """Every sentence of the body in reading order (titles and headings excluded)."""
        yield from iter_sentences(self.blocks)

    def reading_text(self) -> list[str]:
        """The article as a reader meets it: title, subtitle, then every heading, label and sentence."""
        return list(iter_reading_text(self))


def iter_item_sentences(items: tuple[ListItem, ...]) -> Iterator[Sentence]:
    """The sentences of list items, each item's sub-points after its own text."""
    for item in items:
        yield from item.sentences
        if item.sublist:
            yield from iter_item_sentences(item.sublist.items)


def iter_sentences(blocks) -> Iterator[Sentence]:
    for block in blocks:
        if isinstance(block, (Paragraph, Quote)):
            yield from block.sentences
        elif isinstance(block, (ListBlock, KeyPoints)):
            yield from iter_item_sentences(block.items)
        elif isinstance(block, Table):
            for row in block.rows:
                yield from row.header.sentences
                for cell in row.cells:
                    yield from cell.sentences
        elif isinstance(block, Image):
            yield from block.caption
            yield from block.long_description
        elif isinstance(block, (Section, Summary, Disclaimer, Callout)):
            yield from iter_sentences(block.blocks)
        elif isinstance(block, Glossary):
            for term in block.terms:
                yield from term.definition
        elif isinstance(block, Faq):
            for item in block.items:
                yield from iter_sentences(item.answer)
        elif isinstance(block, Related):
            for link in block.links:
                yield from link.description
        elif isinstance(block, References):
            for ref in block.items:
                yield from ref.sentences


def iter_reading_text(article: Article) -> Iterator[str]:
    yield article.title.text
    if article.subtitle:
        yield plain(article.subtitle)

    def items(list_items):
        for item in list_items:
            if item.label:
                yield item.label_text + ":"      # every format shows the label followed by a colon
            for s in item.sentences:
                yield s.text
            if item.sublist:
                yield from items(item.sublist.items)

    def walk(blocks):
        for block in blocks:
            if isinstance(block, HEADED):
                yield block.heading.text
            if isinstance(block, Paragraph):
                yield from (s.text for s in block.sentences)
            elif isinstance(block, (ListBlock, KeyPoints)):
                yield from items(block.items)
            elif isinstance(block, Table):
                yield block.corner.text
                yield from (c.text for c in block.columns)
                for row in block.rows:
                    yield row.header.text
                    for cell in row.cells:
                        yield from (s.text for s in cell.sentences)
            elif isinstance(block, Image):
                yield from (s.text for s in block.caption)
                yield from (s.text for s in block.long_description)
            elif isinstance(block, Callout):
                yield block.heading_text
                yield from walk(block.blocks)
            elif isinstance(block, Quote):
                yield from (s.text for s in block.sentences)
                if block.attribution:
                    yield block.attribution_text
            elif isinstance(block, Glossary):
                for term in block.terms:
                    yield term.term_text
                    yield from (s.text for s in term.definition)
            elif isinstance(block, (Section, Summary, Disclaimer)):
                yield from walk(block.blocks)
            elif isinstance(block, Faq):
                for item in block.items:
                    yield item.question.text
                    yield from walk(item.answer)
            elif isinstance(block, Related):
                for link in block.links:
                    yield link.title_text
                    yield from (s.text for s in link.description)
            elif isinstance(block, References):
                for ref in block.items:
                    yield from (s.text for s in ref.sentences)
    yield from walk(article.blocks)
