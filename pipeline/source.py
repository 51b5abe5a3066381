"""Load an article: YAML file → validated, located data → the document model.

The schema below is the reference for the source format: every key, its
type, and whether it is required. ``load_article`` raises ``PublishError``
with every problem found, each at file:line:column with a fix.
"""
from __future__ import annotations

import datetime
import uuid
from pathlib import Path

from .errors import Problem, PublishError
from .i18n import Messages, untranslated
from .model import (
    CALLOUT_KINDS, Abbreviation, Article, Callout, Cell, Disclaimer, Faq, FaqItem, Glossary, GlossaryTerm,
    Heading, Image, KeyPoints, ListBlock, ListItem, Metadata, Paragraph, Quote, Reference, References,
    Related, RelatedLink, Row, Section, Summary, Table,
)
from .schema import (
    Boolean, Either, Errors, Field, Integer, ListOf, OneOf, Record, Text, validate,
)
from .text import InlineError, check_url, parse_inline, slugify, split_sentences
from .yamlfile import LDict, Located, LStr, read_yaml

MAX_SECTION_DEPTH = 3
MAX_LIST_DEPTH = 3          # a list, its sub-points, and theirs: deeper is hard to follow by ear or in large print

DATE = Text(pattern=r"\d{4}-\d{2}-\d{2}", description="a date written YYYY-MM-DD (or empty)",
            pattern_hint="write the date as YYYY-MM-DD, for example 2026-03-31, or leave it empty")
LANGUAGE = Text(pattern=r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", min_length=2,
                description="a BCP 47 language tag such as `en` or `en-GB`",
                pattern_hint="write a language tag such as `en`, `en-GB` or `fr`")
PROSE = Text(min_length=1, description="text")
TITLE = Text(min_length=1, max_length=300, description="a title")
URL = Text(min_length=1, max_length=2000, description="a web address")

BLOCK = OneOf({}, description="block")     # filled below: blocks nest inside sections


def _check_list_item(item: LDict, errors: Errors, where: str) -> None:
    if item["ordered"] is not None and item["items"] is None:
        errors.add(item.key_nodes["ordered"], f"{where} has `ordered` but no `items` for it to number",
                   "add the sub-points under `items:`, or remove `ordered`")


LIST_ITEM = Either(PROSE, Record({
    "label": Field(Text(min_length=1, max_length=200, description="a short bold label")),
    "text": Field(PROSE, required=True),
    "items": Field(None),       # the sub-points: a list of LIST_ITEM, set below (it refers to itself)
    "ordered": Field(Boolean()),
}, description="a list item with `text` (and `label`, or sub-points under `items`)", check_record=_check_list_item))
LIST_ITEM.record.fields["items"].spec = ListOf(LIST_ITEM, min_items=1)


def _check_table(table: LDict, errors: Errors, where: str) -> None:
    width = len(table["header"])
    for n, row in enumerate(table["rows"], 1):
        if len(row) != width:
            errors.add(row, f"row {n} of the table has {len(row)} cells but the header has {width}",
                       "give every row one cell per header column (use an empty \"\" for a blank cell)")


def _check_image(image: LDict, errors: Errors, where: str) -> None:
    if image["decorative"] and image["alt"]:
        errors.add(image, f"{where} is marked decorative but also has alt text",
                   "remove `decorative: true` if the image carries information, or remove `alt`")
    elif not image["decorative"] and not (image["alt"] or "").strip():
        errors.add(image, f"{where} has no alt text",
                   "add `alt:` describing what the image shows, or `decorative: true` if it adds nothing")


def _headed(body: dict, description: str) -> Record:
    fields = {"title": Field(TITLE, required=True)}
    fields.update(body)
    return Record(fields, description=description)


PARAGRAPHS = ListOf(OneOf({"p": PROSE}, description="paragraph"), min_items=1)
# What a callout may hold: text and lists, not headed blocks (a callout is not a section).
CALLOUT_BODY = ListOf(OneOf({
    "p": PROSE,
    "bullets": ListOf(LIST_ITEM, min_items=1),
    "numbered": ListOf(LIST_ITEM, min_items=1),
}, description="callout block"), min_items=1)

BLOCK.kinds.update({
    "p": PROSE,
    "bullets": ListOf(LIST_ITEM, min_items=1),
    "numbered": ListOf(LIST_ITEM, min_items=1),
    "section": Record({
        "heading": Field(TITLE, required=True),
        "id": Field(Text(pattern=r"[a-z][a-z0-9-]*", description="an id of lowercase letters, digits and dashes",
                         pattern_hint="use lowercase letters, digits and dashes, e.g. `b12-sources`")),
        "body": Field(ListOf(BLOCK, min_items=1), required=True),
    }, description="a section with `heading` and `body`"),
    "summary": _headed({"body": Field(PARAGRAPHS, required=True)}, "a summary callout"),
    "key_points": _headed({"items": Field(ListOf(LIST_ITEM, min_items=1), required=True)}, "a key points box"),
    "table": Record({
        "caption": Field(TITLE, required=True),
        "header": Field(ListOf(Text(max_length=200), min_items=2), required=True),
        "rows": Field(ListOf(ListOf(Text(), min_items=1), min_items=1), required=True),
    }, description="a table with `caption`, `header` and `rows`", check_record=_check_table),
    "faq": _headed({"items": Field(ListOf(Record({
        "question": Field(TITLE, required=True),
        "editorial": Field(Boolean(), default=False),
        "answer": Field(PROSE, required=True),
    }, description="a question with `question` and `answer`"), min_items=1), required=True)}, "a FAQ"),
    "related": _headed({"links": Field(ListOf(Record({
        "title": Field(TITLE, required=True),
        "url": Field(URL),
        "description": Field(Text()),
    }, description="a link with `title` (and `url`, `description`)"), min_items=1), required=True)},
        "related links"),
    "references": _headed({"items": Field(ListOf(Either(PROSE, Record({
        "text": Field(PROSE, required=True),
        "url": Field(URL),
    }, description="a reference with `text` (and `url`)")), min_items=1), required=True)}, "a reference list"),
    "disclaimer": _headed({"text": Field(PROSE, required=True)}, "a disclaimer"),
    "image": Record({
        "src": Field(Text(min_length=1, description="a file name next to the article"), required=True),
        "alt": Field(Text(max_length=1000, description="alt text")),
        "decorative": Field(Boolean(), default=False),
        "caption": Field(Text()),
        "long_description": Field(Text(description="a description in prose")),
    }, description="an image with `src` and `alt` (or `decorative: true`)", check_record=_check_image),
    "callout": Record({
        "kind": Field(Text(choices=tuple(CALLOUT_KINDS), description="the kind of callout"), required=True),
        "title": Field(TITLE),
        "body": Field(CALLOUT_BODY, required=True),
    }, description="a callout with `kind` and `body` (and `title`)"),
    "quote": Record({
        "text": Field(PROSE, required=True),
        "attribution": Field(Text(min_length=1, max_length=300, description="who said or wrote it")),
    }, description="a quotation with `text` (and `attribution`)"),
    "glossary": Record({
        "title": Field(TITLE),
        "terms": Field(ListOf(Record({
            "term": Field(Text(min_length=1, max_length=200, description="the word or phrase explained"),
                          required=True),
            "definition": Field(PROSE, required=True),
        }, description="a glossary entry with `term` and `definition`"), min_items=1), required=True),
    }, description="a glossary with `terms` (and `title`)"),
})


def _check_dates(article: LDict, errors: Errors, where: str) -> None:
    for key in ("date_published", "date_reviewed"):
        if article[key]:
            try:
                datetime.date.fromisoformat(article[key])
            except ValueError:
                errors.add(article[key], f"`{key}` is `{article[key]}`, which is not a day of the calendar",
                           "check the month (01 to 12) and the day of the month")


ARTICLE = Record({
    "title": Field(TITLE, required=True),
    "subtitle": Field(Text(max_length=300), default=""),
    "short_title": Field(Text(max_length=60, description="a short title for running headers"), default=""),
    "description": Field(Text(max_length=1000), default=""),
    "language": Field(LANGUAGE, required=True),
    "subject": Field(Text(max_length=200), default=""),
    "keywords": Field(ListOf(Text(min_length=1, max_length=100)), default=()),
    "publisher": Field(Text(max_length=200), default=""),
    "date_published": Field(DATE, default=""),
    "date_reviewed": Field(DATE, default=""),
    "identifier": Field(Text(max_length=200), default=""),
    "reading_time_minutes": Field(Integer(minimum=1, maximum=600)),
    "licence": Field(Text(max_length=500), default=""),
    "accessibility_summary": Field(Text(max_length=2000), default=""),
    "abbreviations": Field(ListOf(Record({
        "text": Field(Text(min_length=1, max_length=40), required=True),
        "expansion": Field(Text(min_length=1, max_length=200), required=True),
    }, description="an abbreviation with `text` and `expansion`")), default=()),
    "pronunciations": Field(ListOf(Record({
        "text": Field(Text(min_length=1, max_length=100), required=True),
        "say": Field(Text(min_length=1, max_length=200), required=True),
    }, description="a pronunciation with `text` and `say`")), default=()),
    "body": Field(ListOf(BLOCK, min_items=1), required=True),
}, description="an article", check_record=_check_dates)


def load_article(path: Path, display: str | None = None, publisher: str = "", theme=None) -> Article:
    """Read, validate and build the article at *path*; raise PublishError with every problem.

    Given the *theme*, an article in a language the theme has no catalogue for is refused at its
    `language:` line, and the headings the pipeline writes for it (an untitled glossary) are in its language.
    """
    name = display or str(path)
    raw = read_yaml(path, name)
    data, problems = validate(ARTICLE, raw, name)
    if problems:
        raise PublishError(problems)
    words = theme.messages(data["language"], name) if theme is not None else untranslated()
    return _Builder(path.resolve(), name, data, publisher, words).article()


class _Builder:
    """Validated data → model objects, giving every block and sentence its id."""

    def __init__(self, path: Path, name: str, data: dict, publisher: str, words: Messages):
        self.path, self.name, self.data, self.words = path, name, data, words
        self.default_publisher = publisher
        self.problems: list[Problem] = []
        self.used_ids: set[str] = set()
        self.abbreviations = tuple(Abbreviation(a["text"], a["expansion"]) for a in data["abbreviations"])

    # -- helpers -------------------------------------------------------------
    def unique(self, wanted: str) -> str:
        slug, n = wanted, 2
        while slug in self.used_ids:
            slug, n = f"{wanted}-{n}", n + 1
        self.used_ids.add(slug)
        return slug

    def spans(self, text: Located):
        try:
            return parse_inline(text, self.abbreviations)
        except InlineError as exc:
            self.problems.append(Problem(self.name, text.line, text.column, str(exc), exc.hint))
            return ()

    def sentences(self, text: Located, id_prefix: str):
        return split_sentences(self.spans(text), id_prefix)

    def heading(self, text: Located, level: int, editorial: bool = False, wanted_id: str | None = None) -> Heading:
        return Heading(self.unique(wanted_id or slugify(text)), level, self.spans(text), editorial)

    def url(self, value: Located | None) -> str | None:
        if not value:
            return None
        try:
            check_url(value)
        except InlineError as exc:
            self.problems.append(Problem(self.name, value.line, value.column, str(exc), exc.hint))
        return str(value)

    # -- blocks --------------------------------------------------------------
    def blocks(self, items, parent: str, depth: int) -> tuple:
        counters: dict[str, int] = {}
        out = []
        for kind, value in items:
            counters[kind] = counters.get(kind, 0) + 1
            block_id = self.unique(f"{parent}-{kind.replace('_', '-')}{counters[kind]}")
            out.append(self.block(kind, value, block_id, depth))
        return tuple(out)

    def items(self, values, block_id: str, depth: int = 1) -> tuple[ListItem, ...]:
        """List items; *depth* is 1 for a list, 2 for its sub-points, and so on."""
        out = []
        for n, value in enumerate(values, 1):
            item_id = f"{block_id}-i{n}"
            if not isinstance(value, dict):
                out.append(ListItem(item_id, (), self.sentences(value, item_id)))
                continue
            label = self.spans(value["label"]) if value["label"] else ()
            sublist = None
            if value["items"]:
                if depth >= MAX_LIST_DEPTH:
                    at = value.key_nodes["items"]
                    self.problems.append(Problem(
                        self.name, at.line, at.column, f"lists nest at most {MAX_LIST_DEPTH} levels deep",
                        "write these sub-points into their parent item's text, or make them a list of their own"))
                else:
                    sublist = ListBlock(f"{item_id}-l", bool(value["ordered"]),
                                        self.items(value["items"], f"{item_id}-l", depth + 1))
            out.append(ListItem(item_id, label, self.sentences(value["text"], item_id), sublist))
        return tuple(out)

    def paragraphs(self, values, parent: str) -> tuple[Paragraph, ...]:
        return tuple(Paragraph(f"{parent}-p{n}", self.sentences(text, f"{parent}-p{n}"))
                     for n, (_, text) in enumerate(values, 1))

    def block(self, kind: str, value, block_id: str, depth: int):
        level = depth + 2       # the article title is level 1
        if kind == "p":
            return Paragraph(block_id, self.sentences(value, block_id))
        if kind in ("bullets", "numbered"):
            return ListBlock(block_id, kind == "numbered", self.items(value, block_id))
        if kind == "section":
            if depth >= MAX_SECTION_DEPTH:
                self.problems.append(Problem(self.name, value.line, value.column,
                                             f"sections nest at most {MAX_SECTION_DEPTH} levels deep",
                                             "move this section up a level"))
            heading = self.heading(value["heading"], level, wanted_id=value["id"])
            return Section(heading.id, heading, self.blocks(value["body"], heading.id, depth + 1))
        if kind == "callout":
            wanted = slugify(value["title"]) if value["title"] else value["kind"]
            title = Heading(self.unique(wanted), level, self.spans(value["title"]) if value["title"] else ())
            return Callout(block_id, str(value["kind"]), title, self.blocks(value["body"], block_id, depth))
        if kind == "quote":
            return Quote(block_id, self.sentences(value["text"], block_id),
                         self.spans(value["attribution"]) if value["attribution"] else ())
        if kind == "glossary":
            heading = self.heading(value["title"] or LStr(self.words.gettext("Glossary")), level, editorial=not value["title"])
            return Glossary(heading.id, heading, tuple(
                GlossaryTerm(f"{heading.id}-t{n}", self.spans(entry["term"]),
                             self.sentences(entry["definition"], f"{heading.id}-t{n}"))
                for n, entry in enumerate(value["terms"], 1)))
        heading = self.heading(value["title"], level) if "title" in value else None
        if kind == "summary":
            return Summary(heading.id, heading, self.paragraphs(value["body"], heading.id))
        if kind == "key_points":
            return KeyPoints(heading.id, heading, self.items(value["items"], heading.id))
        if kind == "disclaimer":
            return Disclaimer(heading.id, heading, (Paragraph(f"{heading.id}-p1",
                                                              self.sentences(value["text"], f"{heading.id}-p1")),))
        if kind == "faq":
            questions = []
            for item in value["items"]:
                q = self.heading(item["question"], level + 1, editorial=item["editorial"])
                questions.append(FaqItem(q.id, q, (Paragraph(f"{q.id}-a", self.sentences(item["answer"], f"{q.id}-a")),)))
            return Faq(heading.id, heading, tuple(questions))
        if kind == "related":
            return Related(heading.id, heading, tuple(
                RelatedLink(f"{heading.id}-l{n}", self.spans(link["title"]), self.url(link["url"]),
                            self.sentences(link["description"], f"{heading.id}-l{n}") if link["description"] else ())
                for n, link in enumerate(value["links"], 1)))
        if kind == "references":
            refs = []
            for n, ref in enumerate(value["items"], 1):
                text, url = (ref["text"], self.url(ref["url"])) if isinstance(ref, dict) else (ref, None)
                refs.append(Reference(f"{heading.id}-r{n}", self.sentences(text, f"{heading.id}-r{n}"), url))
            return References(heading.id, heading, tuple(refs))
        if kind == "table":
            def cell(text, cell_id):
                return Cell(cell_id, self.sentences(text, cell_id))
            header = value["header"]
            rows = tuple(Row(f"{block_id}-r{r}", cell(row[0], f"{block_id}-r{r}-c1"),
                             tuple(cell(text, f"{block_id}-r{r}-c{c}") for c, text in enumerate(row[1:], 2)))
                         for r, row in enumerate(value["rows"], 1))
            return Table(block_id, self.spans(value["caption"]), cell(header[0], f"{block_id}-h1"),
                         tuple(cell(text, f"{block_id}-h{c}") for c, text in enumerate(header[1:], 2)), rows)
        if kind == "image":
            return Image(block_id, self.image_path(value["src"]), value["alt"] or "", value["decorative"],
                         self.sentences(value["caption"], f"{block_id}-cap") if value["caption"] else (),
                         self.sentences(value["long_description"], f"{block_id}-desc")
                         if value["long_description"] else ())
        raise AssertionError(f"no builder for block kind {kind}")   # the schema and this list disagree

    def image_path(self, src: Located) -> Path:
        folder = self.path.parent.resolve()
        if "://" in src or src.startswith(("/", "\\")) or ":" in src:
            self.problems.append(Problem(self.name, src.line, src.column,
                                         f"image `{src}` must be a file name next to the article, not an address or absolute path",
                                         "copy the image into the article's folder and give its file name"))
            return folder
        target = (folder / src).resolve()
        if not target.is_relative_to(folder):
            self.problems.append(Problem(self.name, src.line, src.column,
                                         f"image `{src}` is outside the article's folder",
                                         "copy the image into the article's folder and give its file name"))
        elif not target.is_file():
            self.problems.append(Problem(self.name, src.line, src.column, f"image `{src}` does not exist",
                                         "check the file name (it is case-sensitive) and that the file is in the article's folder"))
        return target

    # -- the whole article ---------------------------------------------------
    def article(self) -> Article:
        d = self.data
        slug = self.path.stem
        title = self.heading(d["title"], 1, wanted_id="title")
        subtitle = self.spans(d["subtitle"]) if d["subtitle"] else ()
        blocks = self.blocks(d["body"], "intro", 0)
        metadata = Metadata(
            title=str(d["title"]),
            subtitle=str(d["subtitle"]),
            short_title=str(d["short_title"] or d["title"]),
            description=str(d["description"]),
            language=str(d["language"]),
            subject=str(d["subject"]),
            keywords=tuple(str(k) for k in d["keywords"]),
            publisher=str(d["publisher"] or self.default_publisher),
            date_published=str(d["date_published"]),
            date_reviewed=str(d["date_reviewed"]),
            identifier=str(d["identifier"] or f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'article:' + slug)}"),
            reading_time_minutes=d["reading_time_minutes"],
            licence=str(d["licence"]),
            accessibility_summary=str(d["accessibility_summary"]),
        )
        if self.problems:
            raise PublishError(self.problems)
        return Article(slug, self.path, metadata, title, subtitle, blocks, self.abbreviations,
                       tuple((str(p["text"]), str(p["say"])) for p in d["pronunciations"]))
