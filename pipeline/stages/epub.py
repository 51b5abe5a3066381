"""The EPUB 3: document model + theme → XHTML content documents (Jinja2) → ebooklib → a reproducible zip.

One content document per top-level part: the title with the introduction,
summary and key points first, then one per section (and the further
reading, FAQ and disclaimer). A cover page in real text, a navigation
document with the contents to heading level 3 and the landmarks, an NCX for
old reading systems (ebooklib writes it for free), and the accessibility
metadata of EPUB Accessibility 1.1.

ebooklib stamps its zip entries with the clock, so its file is rewritten
entry by entry with the build's own date (SOURCE_DATE_EPOCH), in a fixed
order, with `mimetype` first and stored.
"""
from __future__ import annotations

import datetime
import importlib
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import Problem, PublishError, display_path
from ..model import HEADED, Article, ContentsEntry, Section
from ..scripts import direction
from ..theme import Theme
from . import BuildContext, package_version

CONFORMS_TO = "EPUB Accessibility 1.1 - WCAG 2.2 Level AA"
# Emphasis is bold (see epub.css), so the italic faces are not needed.
FONTS = ("AtkinsonHyperlegible-Regular.ttf", "AtkinsonHyperlegible-Bold.ttf")
FONT_LICENCE = "OFL.txt"
# Blocks that stay in the first document with the title when they come before the first section.
INTRO_KINDS = ("paragraph", "summary", "key_points", "list", "table", "image")
# The image types every EPUB 3 reading system must display (core media types): no fallback needed.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".svg": "image/svg+xml", ".webp": "image/webp"}
# Back matter that reading systems offer as a shortcut of its own (the landmarks' epub:type).
LANDMARK_KINDS = {"references": "bibliography", "glossary": "glossary"}
ZIP_EARLIEST = 315532800          # 1980-01-01T00:00:00Z: a zip entry cannot carry an earlier date
OPF = "EPUB/content.opf"
NCX = "EPUB/toc.ncx"


@dataclass
class Book:
    """An EPUB put together but not yet written: ebooklib's book and what it was made of."""

    package: object                  # ebooklib.epub.EpubBook (imported only when a book is made)
    parts: list[Part]
    documents: list                  # the parts' content documents (ebooklib items), in the same order
    toc: list[ContentsEntry]
    lang: str


@dataclass
class Part:
    """One content document of the spine."""

    file_name: str
    title: str
    blocks: tuple
    first: bool = False

    @property
    def back_matter(self) -> bool:
        """Further reading, FAQ, disclaimer, references: headed blocks that are not sections of the article."""
        return not self.first and not isinstance(self.blocks[0], Section)


def split_parts(article: Article) -> list[Part]:
    """The title and introduction (with the summary and key points), then one document per top-level headed block."""
    parts: list[Part] = [Part("intro.xhtml", article.metadata.title, (), first=True)]
    for block in article.blocks:
        still_intro = len(parts) == 1 and block.kind in INTRO_KINDS
        if isinstance(block, HEADED) and not still_intro:
            parts.append(Part(f"part-{len(parts):02d}.xhtml", block.heading.text, (block,)))
        else:
            parts[-1].blocks += (block,)
    return parts


def nav_tree(article: Article, parts: list[Part]) -> list[ContentsEntry]:
    """The table of contents to heading level 3, each entry linking to its block in its document."""
    document_of = {heading_id: part.file_name for part in parts for block in part.blocks
                   for heading_id in _heading_ids(block)}
    tree = [ContentsEntry(f"{parts[0].file_name}#{article.title.id}", article.title.text)]
    for entry in article.outline(max_level=3):
        node = ContentsEntry(f"{document_of[entry.id]}#{entry.id}", entry.text)
        if entry.level > 2 and len(tree) > 1:
            tree[-1].children.append(node)
        else:
            tree.append(node)
    return tree


def landmarks(parts: list[Part], words) -> list[dict]:
    """The landmarks reading systems offer as shortcuts: cover, contents, the article, and what applies after it."""
    marks = [{"type": "cover", "href": "cover.xhtml", "text": words.gettext("Cover")},
             {"type": "toc", "href": "nav.xhtml#toc", "text": words.gettext("Contents")},
             {"type": "bodymatter", "href": parts[0].file_name, "text": words.gettext("Start of the article")}]
    trailing = []
    for part in reversed(parts):            # the back matter is what follows the article's last section
        if not part.back_matter:
            break
        trailing.insert(0, part)
    if trailing:
        marks.append({"type": "backmatter", "href": trailing[0].file_name, "text": trailing[0].title})
    for part in parts:
        kind = part.blocks[0].kind if part.blocks else ""
        if kind in LANDMARK_KINDS:
            marks.append({"type": LANDMARK_KINDS[kind], "href": f"{part.file_name}#{part.blocks[0].id}",
                          "text": part.title})
    return marks


def _heading_ids(block):
    if isinstance(block, HEADED):
        yield block.heading.id
    for child in getattr(block, "blocks", ()):
        yield from _heading_ids(child)
    if block.kind == "faq":
        yield from (item.question.id for item in block.items)


def _depth(entries: list[ContentsEntry]) -> int:
    return 1 + max((_depth(e.children) for e in entries if e.children), default=0)


def image_type(path: Path, where: str) -> str:
    try:
        return IMAGE_TYPES[path.suffix.lower()]
    except KeyError:
        raise PublishError(Problem(where, 0, 0, f"`{path.name}` is not an image type every EPUB reader can show",
                                   "convert it to PNG, JPEG, GIF, SVG or WebP")) from None


class EpubStage:
    name = "epub"

    def preload(self) -> None:
        for module in ("ebooklib.epub", "lxml.etree"):
            importlib.import_module(module)

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.epub"]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        # the deflated bytes depend on the zlib build as well as on the content
        return f"{package_version('ebooklib')} zlib {zlib.ZLIB_RUNTIME_VERSION}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        book = self.compose(article, theme)
        target = workdir / f"{article.slug}.epub"
        self.write(book, target, workdir, ctx)
        return [target]

    def compose(self, article: Article, theme: Theme, sentence_ids: bool = False,
                stylesheets: tuple[str, ...] = ()) -> Book:
        """The package in ebooklib's terms, before it is written: what the text-only and the read-aloud EPUB share.

        *sentence_ids* wraps each sentence in an element of its own (what a media overlay points at);
        *stylesheets* are further style sheets of the theme's css/ folder, linked after epub.css.
        """
        from ebooklib import epub

        m = article.metadata
        lang = m.language
        words = theme.messages(lang)
        publisher = m.publisher or theme.organisation
        book = epub.EpubBook()
        book.set_identifier(m.identifier)
        book.set_title(m.title)
        book.set_language(lang)
        if direction(lang) == "rtl":          # the spine's page-progression-direction: pages turn right to left
            book.set_direction("rtl")
        book.add_metadata("DC", "publisher", publisher)
        for name, value in (("description", m.description), ("rights", m.licence), ("date", m.date_published)):
            if value:
                book.add_metadata("DC", name, value)
        for subject in (m.subject, *m.keywords):
            if subject:
                book.add_metadata("DC", "subject", subject)
        book.add_metadata(None, "meta", "reflowable", {"property": "rendition:layout"})
        for prop, value in self.accessibility(article, theme, publisher, words):
            book.add_metadata(None, "meta", value, {"property": prop})

        images = {image.id: (f"images/{image.id}{image.path.suffix.lower()}", image) for image in article.images()}
        opts = {"epub": True, "sentence_ids": sentence_ids, "print_urls": False, "listen": False,
                "image_url": lambda image: images[image.id][0]}
        logo = None
        if theme.logo:
            logo = {"href": f"images/logo{theme.logo.path.suffix.lower()}",
                    "alt": "" if theme.logo.decorative else theme.logo.alt}
        parts = split_parts(article)
        toc = nav_tree(article, parts)

        cover = self.document("cover", "cover.xhtml", theme.render(
            "epub", "cover.xhtml", words, article=article, lang=lang, publisher=publisher, contact=theme.contact,
            logo=logo, font_css=theme.font_css()))
        nav = self.document("nav", "nav.xhtml", theme.render(
            "epub", "nav.xhtml", words, toc=toc, landmarks=landmarks(parts, words), lang=lang,
            font_css=theme.font_css()))
        nav.properties = ["nav"]
        documents = [self.document(f"part{n:02d}", part.file_name, theme.render(
            "epub", "content.xhtml", words, article=article, blocks=part.blocks, first=part.first,
            title=part.title, lang=lang, opts=opts, stylesheets=stylesheets, font_css=theme.font_css()))
            for n, part in enumerate(parts)]
        for item in (cover, nav, *documents):
            book.add_item(item)

        book.add_item(self.resource("css", "css/epub.css", "text/css", theme.file("css/epub.css")))
        for n, sheet in enumerate(stylesheets):
            book.add_item(self.resource(f"css{n + 1}", f"css/{sheet}", "text/css", theme.file(f"css/{sheet}")))
        for n, font in enumerate(FONTS):
            book.add_item(self.resource(f"font{n}", f"fonts/{font}", "font/ttf", theme.file(f"fonts/{font}")))
        # the SIL Open Font License asks for the licence to travel with the fonts
        book.add_item(self.resource("font-licence", f"fonts/{FONT_LICENCE}", "text/plain",
                                    theme.file(f"fonts/{FONT_LICENCE}")))
        if logo:
            book.add_item(self.resource("logo", logo["href"], image_type(theme.logo.path, display_path(
                theme.root / "theme.yaml")), theme.logo.path))
        for href, image in images.values():
            book.add_item(self.resource(f"image-{image.id}", href, image_type(image.path, article.source.name),
                                        image.path))

        book.toc = [self.ncx_entry(entry) for entry in toc]
        book.add_item(epub.EpubNcx())
        book.spine = [cover, nav, *documents]
        return Book(book, parts, documents, toc, lang)

    @staticmethod
    def write(book: Book, target: Path, workdir: Path, ctx: BuildContext, stored: dict[str, Path] | None = None) -> None:
        """Write the package reproducibly (see `repack`); *stored* maps entries to the files they are copied from,
        uncompressed (their items in the book are empty placeholders)."""
        from ebooklib import epub
        raw = workdir / "ebooklib.epub"
        modified = datetime.datetime.fromtimestamp(ctx.epoch, datetime.timezone.utc)
        epub.write_epub(str(raw), book.package, {"mtime": modified, "epub3_landmark": False, "epub2_guide": False,
                                                 "play_order": {"enabled": True, "start_from": 1},
                                                 "raise_exceptions": True})  # a full disk is an error, not a warning
        repack(raw, target, ctx.epoch, {OPF: lambda opf: package_language(opf, book.lang),
                                        NCX: lambda ncx: ncx_depth(ncx, _depth(book.toc))}, stored or {})
        raw.unlink()

    @staticmethod
    def document(uid: str, file_name: str, xhtml: str):
        from ebooklib import epub
        item = epub.EpubItem(uid=uid, file_name=file_name, media_type="application/xhtml+xml",
                             content=xhtml.encode("utf-8"))
        item.properties = []
        return item

    @staticmethod
    def resource(uid: str, file_name: str, media_type: str, source: Path):
        from ebooklib import epub
        return epub.EpubItem(uid=uid, file_name=file_name, media_type=media_type, content=source.read_bytes())

    @staticmethod
    def ncx_entry(entry: ContentsEntry):
        from ebooklib import epub
        if entry.children:
            return (epub.Section(entry.text, entry.target), [EpubStage.ncx_entry(c) for c in entry.children])
        return epub.Link(entry.target, entry.text, entry.target.replace("#", "-").replace(".", "-"))

    @staticmethod
    def accessibility(article: Article, theme: Theme, publisher: str, words) -> list[tuple[str, str]]:
        """The schema.org accessibility metadata of EPUB Accessibility 1.1, and the conformance claim.

        The vocabulary's values and the conformance claim are identifiers, never translated; the summary
        is prose: the article's own, else the theme's, in the article's language through the catalogue."""
        features = ["structuralNavigation", "tableOfContents", "readingOrder", "displayTransformability",
                    "ARIA",        # DPUB-ARIA roles beside every epub:type, sections labelled by their headings
                    "unlocked"]    # no DRM: any reading system and assistive technology can open it
        if any(not image.decorative for image in article.images()) or (theme.logo and not theme.logo.decorative):
            features.append("alternativeText")
        return [
            ("schema:accessMode", "textual"),
            ("schema:accessModeSufficient", "textual"),
            *(("schema:accessibilityFeature", feature) for feature in features),
            ("schema:accessibilityHazard", "none"),
            ("schema:accessibilitySummary",
             article.metadata.accessibility_summary or words.gettext(theme.accessibility_summary)),
            ("dcterms:conformsTo", CONFORMS_TO),
            ("a11y:certifiedBy", publisher),
        ]


def package_language(opf: bytes, lang: str) -> bytes:
    """Give the package document its own xml:lang (ebooklib writes dc:language only; Ace wants both)."""
    from lxml import etree
    root = etree.fromstring(opf)
    root.set("{http://www.w3.org/XML/1998/namespace}lang", lang)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def ncx_depth(ncx: bytes, depth: int) -> bytes:
    """ebooklib writes dtb:depth 0; old reading systems read the depth of the contents from it."""
    from lxml import etree
    root = etree.fromstring(ncx)
    for meta in root.iter("{http://www.daisy.org/z3986/2005/ncx/}meta"):
        if meta.get("name") == "dtb:depth":
            meta.set("content", str(depth))
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def repack(source: Path, target: Path, epoch: int, rewrite: dict, stored: dict[str, Path]) -> None:
    """Rewrite the zip reproducibly: one date from *epoch*, fixed modes, mimetype first and stored.

    *rewrite* maps entry names to functions that amend their bytes on the way; the entries named in
    *stored* are copied from their files, uncompressed like mimetype (compressed audio gains nothing from
    deflate but time), in pieces: a narration of several hours is never held in memory.
    """
    stamp = time.gmtime(max(epoch, ZIP_EARLIEST))[:6]
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as out:
        names = original.namelist()
        for name in ["mimetype"] + [n for n in names if n != "mimetype"]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.create_system = 3                    # Unix, whatever system builds it
            info.external_attr = 0o100644 << 16       # a regular file, rw-r--r--
            if name in stored:
                info.compress_type = zipfile.ZIP_STORED
                info.file_size = stored[name].stat().st_size      # (whether it needs zip64 is decided from it)
                with stored[name].open("rb") as data, out.open(info, "w") as entry:
                    shutil.copyfileobj(data, entry, 2**20)
                continue
            data = original.read(name)
            if name in rewrite:
                data = rewrite[name](data)
            if name == "mimetype":
                info.compress_type = zipfile.ZIP_STORED   # OCF: mimetype first, uncompressed, no extra field
            else:
                info.compress_type = zipfile.ZIP_DEFLATED
            out.writestr(info, data, compresslevel=None if info.compress_type == zipfile.ZIP_STORED else 9)


STAGE = EpubStage()
