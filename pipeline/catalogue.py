"""The catalogue of everything published: output/index.html for readers, output/opds.xml for e-reader apps.

It is made from the ``manifest.json`` of every article folder in the output
root, never from the sources: a build of some articles, or shards built on
several machines and merged later, give the same catalogue as one build of
them all. So what the catalogue says of an article (title, dates, page
count, narration length) is put into its manifest when the article is
published: `article_facts` for the article, `file_facts` for each file (or what
its stage states, see build.described).

The page is a large-print page like the articles' own (the same stylesheet,
palettes and reading settings); the feed is an OPDS 1.2 acquisition feed
(an Atom feed), so that reading apps such as Thorium Reader can list the
handouts and download their EPUBs. Both are written atomically and depend on
nothing but the manifests, the theme and SOURCE_DATE_EPOCH.
"""
from __future__ import annotations

import re
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import Problem, PublishError, cannot_use, display_path
from .i18n import N_, Messages, untranslated

if TYPE_CHECKING:
    from .model import Article
    from .theme import Theme

INDEX = "index.html"
FEED = "opds.xml"
# The page's own stylesheet, script and fonts are written beside the catalogue (as the html stage writes them
# beside each article), plus the few rules only the catalogue needs.
SHARED_ASSETS = {"large-print.css": "css/html.css", "reader.js": "js/reader.js",
                 "catalogue.css": "css/catalogue.css",
                 "AtkinsonHyperlegible-Regular.ttf": "fonts/AtkinsonHyperlegible-Regular.ttf",
                 "AtkinsonHyperlegible-Bold.ttf": "fonts/AtkinsonHyperlegible-Bold.ttf"}
WORDS_PER_MINUTE = 200           # a reading-time estimate when the article gives none

ATOM = "http://www.w3.org/2005/Atom"
DCTERMS = "http://purl.org/dc/terms/"
OPDS = "http://opds-spec.org/2010/catalog"
ACQUISITION = "http://opds-spec.org/acquisition"
FEED_TYPE = "application/atom+xml;profile=opds-catalog;kind=acquisition"


@dataclass(frozen=True)
class Kind:
    """How a published file is named to a reader, and the media type it is served and listed with."""

    name: str                   # "PDF handout"
    label: str                  # the file type in words: "PDF"
    media_type: str
    acquisition: bool = False   # offered for download in the OPDS feed


# The read-aloud stage's EPUB (<slug>.read-aloud.epub), or any EPUB found to carry Media Overlays.
READ_ALOUD = Kind(N_("Read-aloud e-book, text and narration together"), N_("EPUB 3 with narration"),
                  "application/epub+zip", acquisition=True)

# By the file name's ending, in the order a reader meets them. Files not listed here (the page's stylesheet,
# fonts, images) belong to another output and are not offered on their own.
KINDS = {
    ".html": Kind(N_("Large-print web page"), "HTML", "text/html"),
    ".pdf": Kind(N_("PDF handout"), "PDF", "application/pdf", acquisition=True),
    ".large-print.pdf": Kind(N_("Large-print PDF handout"), "PDF", "application/pdf", acquisition=True),
    ".epub": Kind(N_("E-book"), "EPUB 3", "application/epub+zip", acquisition=True),
    ".read-aloud.epub": READ_ALOUD,
    ".m4b": Kind(N_("Audiobook with chapters"), "M4B", "audio/mp4", acquisition=True),
    ".mp3": Kind(N_("Narration"), "MP3", "audio/mpeg", acquisition=True),
    ".brf": Kind(N_("Braille"), "BRF", "text/plain"),
    ".transcript.txt": Kind(N_("Transcript of the narration"), N_("plain text"), "text/plain"),
    ".vtt": Kind(N_("Captions of the narration"), "WebVTT", "text/vtt"),
}


def kind_of(name: str, facts: dict | None = None) -> Kind | None:
    if (facts or {}).get("read_aloud"):
        return READ_ALOUD
    for ending in sorted(KINDS, key=len, reverse=True):          # ".transcript.txt" before any ".txt"
        if name.endswith(ending):
            return KINDS[ending]
    return None


# -- facts kept in each manifest ------------------------------------------------

def article_facts(article: Article) -> dict:
    """What the catalogue says of an article, written into its manifest when it is published."""
    m = article.metadata
    words = sum(len(text.split()) for text in article.reading_text())
    return {
        "title": m.title, "subtitle": m.subtitle, "description": m.description, "language": m.language,
        "subject": m.subject, "publisher": m.publisher, "identifier": m.identifier,
        "date_published": m.date_published, "date_reviewed": m.date_reviewed, "words": words,
        "reading_minutes": m.reading_time_minutes or max(1, round(words / WORDS_PER_MINUTE)),
        "reading_time_given": m.reading_time_minutes is not None,
    }


def file_facts(path: Path) -> dict:
    """What the catalogue says of one published file beyond its size, read from the file: whether an EPUB reads
    aloud. (A PDF's pages and a narration's length and chapters are stated by the stage that made the file,
    which knows them: see BuildContext.facts.)"""
    if path.suffix == ".epub":
        return {"read_aloud": _has_media_overlays(path)}
    return {}


def _has_media_overlays(path: Path) -> bool:
    """Whether the EPUB carries its narration as Media Overlays (a read-aloud EPUB)."""
    from lxml import etree
    try:
        with zipfile.ZipFile(path) as book:
            container = etree.fromstring(book.read("META-INF/container.xml"))
            rootfile = container.find(".//{urn:oasis:names:tc:opendocument:xmlns:container}rootfile")
            package = etree.fromstring(book.read(rootfile.get("full-path")))
    except (OSError, KeyError, AttributeError, zipfile.BadZipFile, etree.XMLSyntaxError):
        return False
    return any(item.get("media-overlay") for item in package.iter("{http://www.idpf.org/2007/opf}item"))


# -- reading the manifests --------------------------------------------------------

@dataclass(frozen=True)
class Download:
    href: str                   # relative to the output root: "b12/b12.pdf"
    kind: Kind
    bytes: int
    facts: dict

    @property
    def words(self) -> str:
        """The file described for a reader: "PDF handout, 4 pages, 35 kB"."""
        return self.describe(untranslated())

    def describe(self, words: Messages) -> str:
        """The file described in a language: "PDF handout, 4 pages, 35 kB"."""
        parts = [words.gettext(self.kind.name)]
        if self.kind.label not in self.kind.name:
            parts.append(words.gettext(self.kind.label))
        if self.facts.get("pages"):
            parts.append(words.ngettext("%(num)s page", "%(num)s pages", self.facts["pages"])
                         % {"num": words.number(self.facts["pages"])})
        if self.facts.get("seconds"):
            parts.append(duration_words(self.facts["seconds"], words))
        parts.append(size_words(self.bytes, words))
        return ", ".join(parts)


@dataclass(frozen=True)
class Entry:
    slug: str
    facts: dict
    downloads: tuple[Download, ...]

    @property
    def title(self) -> str:
        return self.facts.get("title") or self.slug

    def find(self, ending: str) -> Download | None:
        """The article's file whose name ends so (".pdf"), if it has one."""
        return next((d for d in self.downloads if d.href.endswith(ending)), None)

    @property
    def page(self) -> Download | None:
        return self.find(".html")

    @property
    def narration_seconds(self) -> float | None:
        return next((d.facts["seconds"] for d in self.downloads if d.facts.get("seconds")), None)


def read_entries(output_root: Path) -> list[Entry]:
    """Every published article, from its manifest, in the order of their titles."""
    from .files import read_manifest
    entries = []
    for folder in sorted(p for p in output_root.iterdir() if not p.name.startswith(".") and p.is_dir()):
        manifest = read_manifest(folder)
        if not manifest.get("outputs"):
            continue
        downloads = []
        for output in manifest["outputs"]:
            name = str(output.get("path", ""))
            kind = kind_of(name, output)
            if kind is None or "/" in name or not (folder / name).is_file():
                continue
            downloads.append(Download(f"{folder.name}/{name}", kind, int(output.get("bytes", 0)),
                                      {k: output[k] for k in ("pages", "seconds", "chapters") if k in output}))
        if downloads:
            order = list(KINDS.values())
            downloads.sort(key=lambda d: (order.index(d.kind), d.href))
            entries.append(Entry(folder.name, dict(manifest.get("article") or {}), tuple(downloads)))
    return sorted(entries, key=lambda e: (e.title.casefold(), e.slug))


# -- words for sizes and lengths ----------------------------------------------------

def size_words(size: int, words: Messages | None = None) -> str:
    """A file size as a reader says it, in decimal units: "35 kB", "6.8 MB" ("6,8 MB" in Spanish)."""
    words = words or untranslated()
    if size < 1000:
        return words.ngettext("%(num)s byte", "%(num)s bytes", size) % {"num": words.number(size)}
    if size < 999_500:
        return f"{words.number(round(size / 1000))} kB"
    megabytes = size / 1_000_000
    return (f"{words.number(megabytes, '0.0')} MB" if megabytes < 9.95
            else f"{words.number(round(megabytes))} MB")


def duration_words(seconds: float, words: Messages | None = None) -> str:
    """"13 minutes"; under a minute, "40 seconds"."""
    words = words or untranslated()
    if seconds < 59.5:
        count = max(1, round(seconds))
        return words.ngettext("%(num)s second", "%(num)s seconds", count) % {"num": words.number(count)}
    count = round(seconds / 60)
    return words.ngettext("%(num)s minute", "%(num)s minutes", count) % {"num": words.number(count)}


# -- writing ---------------------------------------------------------------------------

def is_written(output_root: Path) -> bool:
    return (output_root / INDEX).is_file() and (output_root / FEED).is_file()


def write_catalogue(output_root: Path, theme: Theme, epoch: int | None = None) -> list[Path]:
    """Write output/index.html, output/opds.xml and their assets from the manifests now in *output_root*.

    Called at the end of every build (and by whatever merges outputs built elsewhere). Files whose
    content is unchanged are left alone; the others are replaced atomically. *epoch* is SOURCE_DATE_EPOCH
    (None when it is not set): the feed's date, see `dates.catalogue_epoch`.

    Builds running side by side (the live preview's documents and narration, or two builds of different
    articles into one folder) each write the catalogue: a lock makes each read the manifests and write
    the files in one go, so that the last one written lists every article as it is now.
    """
    from filelock import FileLock
    lock = FileLock(str(output_root / ".catalogue.lock"))
    try:
        lock.acquire()
    except OSError as exc:
        raise cannot_use(output_root, "cannot write the catalogue", exc,
                         "choose another output folder with --out DIR") from None
    try:
        return _write_catalogue(output_root, theme, epoch)
    finally:
        lock.release()


def _write_catalogue(output_root: Path, theme: Theme, epoch: int | None) -> list[Path]:
    from .dates import catalogue_epoch
    from .files import write_atomic
    entries = read_entries(output_root)
    if epoch is None:       # and an entry with no date of its own is dated so too
        epoch = catalogue_epoch(e.facts.get(key) or "" for e in entries for key in ("date_reviewed", "date_published"))
    files = {INDEX: render_index(entries, theme).encode("utf-8"), FEED: render_feed(entries, theme, epoch)}
    for name, relative in SHARED_ASSETS.items():
        try:
            files[name] = theme.file(relative).read_bytes()
        except FileNotFoundError:
            raise PublishError(Problem(display_path(theme.root / relative), 0, 0,
                                       f"the theme has no {relative}, which the catalogue needs",
                                       f"copy it from themes/default/{relative}")) from None
    if theme.logo:
        files[template_context(theme)["assets"]["logo"]] = theme.logo.path.read_bytes()
    written = []
    try:
        for name, data in files.items():
            target = output_root / name
            if not (target.is_file() and target.read_bytes() == data):
                write_atomic(target, data)
            written.append(target)
    except OSError as exc:          # an environment problem (a full or read-only disk), with its own exit code
        raise cannot_use(output_root, "cannot write the catalogue", exc,
                         "choose another output folder with --out DIR") from None
    return written


# The catalogue lists articles of every language; its own words are in this one.
CATALOGUE_LANGUAGE = "en"


def template_context(theme: Theme, language: str = CATALOGUE_LANGUAGE) -> dict:
    """What the catalogue's templates share: the theme, the assets beside the page, the wording helpers, in
    *language* (the preview of one article is in the article's language, when the theme has its words)."""
    from .i18n import messages_for
    if messages_for(theme.root, language, theme.message_overrides) is None:
        language = CATALOGUE_LANGUAGE
    words = theme.messages(language)
    logo = f"logo{theme.logo.path.suffix.lower()}" if theme.logo else ""
    return {"theme": theme, "assets": {"css": "large-print.css", "catalogue_css": "catalogue.css", "js": "reader.js",
                                       "logo": logo},
            "feed": FEED, "feed_type": FEED_TYPE, "language": language,
            "duration_words": lambda seconds: duration_words(seconds, words),
            "describe": lambda download: download.describe(words)}


def render_index(entries: list[Entry], theme: Theme) -> str:
    context = template_context(theme)
    return theme.render("catalogue", "index.html", theme.messages(context["language"]), entries=entries, **context)


def _iso_date(day: str, epoch: int) -> str:
    """An RFC 3339 date-time: a YYYY-MM-DD date at midnight UTC, or the build's epoch when there is none."""
    if day:
        return f"{day}T00:00:00Z"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry_id(entry: Entry) -> str:
    """The article's identifier if it is a URI (an Atom id must be one), else a UUID URN derived from it."""
    identifier = str(entry.facts.get("identifier") or "")
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+", identifier):
        return identifier
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'article:' + (identifier or entry.slug))}"


def render_feed(entries: list[Entry], theme: Theme, epoch: int) -> bytes:
    """The OPDS 1.2 acquisition feed, built as XML (lxml), never as text."""
    from lxml import etree
    E = lambda tag, text=None, **attrs: _element(etree, tag, text, attrs)     # noqa: E731 (a short builder)
    words = theme.messages(CATALOGUE_LANGUAGE)
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM, "dcterms": DCTERMS, "opds": OPDS})
    updated = max([_iso_date(e.facts.get("date_reviewed") or e.facts.get("date_published") or "", epoch)
                   for e in entries] or [_iso_date("", epoch)])
    feed.extend([
        E("id", f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'catalogue:' + theme.organisation)}"),
        E("title", words.gettext("Handouts from %(organisation)s") % {"organisation": theme.organisation}),
        E("updated", updated),
        _person(E, "author", theme.organisation),
        E("link", rel="self", href=FEED, type=FEED_TYPE),
        E("link", rel="start", href=FEED, type=FEED_TYPE),
        E("link", rel="alternate", href=INDEX, type="text/html"),
    ])
    for entry in entries:
        facts = entry.facts
        item = E("entry")
        item.extend([E("title", entry.title), E("id", _entry_id(entry)),
                     E("updated", _iso_date(facts.get("date_reviewed") or facts.get("date_published") or "", epoch))])
        if facts.get("date_published"):
            item.append(E("published", _iso_date(facts["date_published"], epoch)))
            item.append(_element(etree, f"{{{DCTERMS}}}issued", facts["date_published"], {}))
        item.append(_person(E, "author", facts.get("publisher") or theme.organisation))
        if facts.get("language"):
            item.append(_element(etree, f"{{{DCTERMS}}}language", facts["language"], {}))
        if facts.get("subject"):
            item.append(E("category", term=facts["subject"], label=facts["subject"]))
        if facts.get("description"):
            item.append(E("summary", facts["description"], type="text"))
        for download in entry.downloads:
            if download.kind.acquisition:
                item.append(E("link", rel=ACQUISITION, href=download.href, type=download.kind.media_type,
                              title=download.describe(words), length=str(download.bytes)))
            elif download is entry.page:
                item.append(E("link", rel="alternate", href=download.href, type=download.kind.media_type,
                              title=download.describe(words)))
        feed.append(item)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _element(etree, tag: str, text: str | None, attrs: dict):
    element = etree.Element(tag if tag.startswith("{") else f"{{{ATOM}}}{tag}", {k: v for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _person(E, tag: str, name: str):
    person = E(tag)
    person.append(E("name", name))
    return person
