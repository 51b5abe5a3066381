"""The EPUB 3: document model + theme → XHTML content documents (Jinja2) → ebooklib → a reproducible zip.

One content document per top-level part: the title with the introduction,
summary and key points first, then one per section (and the FAQ, further
reading and disclaimer). A text cover page, a navigation document with the
contents to level 3 and landmarks, an NCX for old readers, and the full
accessibility metadata of EPUB Accessibility 1.1.
"""
from __future__ import annotations

import datetime
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..model import Article, HEADED
from ..theme import Theme
from . import BuildContext

CONFORMS_TO = "EPUB Accessibility 1.1 - WCAG 2.2 Level AA"
FONTS = ("AtkinsonHyperlegible-Regular.ttf", "AtkinsonHyperlegible-Bold.ttf")
INTRO_KINDS = ("paragraph", "summary", "key_points", "list", "table", "image")


@dataclass
class Part:
    """One content document."""

    file_name: str
    title: str
    blocks: tuple
    first: bool = False


@dataclass
class NavEntry:
    href: str
    text: str
    children: list = field(default_factory=list)


def split_parts(article: Article) -> list[Part]:
    """The introduction (everything before the first section), then one document per top-level headed block."""
    parts: list[Part] = [Part("intro.xhtml", article.metadata.title, (), first=True)]
    for block in article.blocks:
        starts_part = isinstance(block, HEADED) and not (len(parts) == 1 and block.kind in INTRO_KINDS)
        if starts_part:
            parts.append(Part(f"part-{len(parts):02d}.xhtml", block.heading.text, (block,)))
        else:
            parts[-1].blocks += (block,)
    return parts


def nav_tree(article: Article, parts: list[Part]) -> list[NavEntry]:
    """The table of contents to heading level 3, each entry linking into its document."""
    where = {}
    for part in parts:
        for block in part.blocks:
            for entry in _headings(block):
                where[entry] = part.file_name
    tree: list[NavEntry] = [NavEntry(f"intro.xhtml#{article.title.id}", article.title.text)]
    for entry in article.outline(max_level=3):
        node = NavEntry(f"{where[entry.id]}#{entry.id}", entry.text)
        if entry.level == 2 or not tree[1:]:
            tree.append(node)
        else:
            tree[-1].children.append(node)
    return tree


def _headings(block):
    if isinstance(block, HEADED):
        yield block.heading.id
    for child in getattr(block, "blocks", ()):
        yield from _headings(child)
    for item in getattr(block, "items", ()):
        if hasattr(item, "question"):
            yield item.question.id


class EpubStage:
    name = "epub"

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.epub"]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        import ebooklib
        return f"ebooklib {ebooklib.VERSION}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        from ebooklib import epub

        m = article.metadata
        lang = m.language
        publisher = m.publisher or theme.organisation
        book = epub.EpubBook()
        book.set_identifier(m.identifier)
        book.set_title(m.title)
        book.set_language(lang)
        book.add_metadata("DC", "publisher", publisher)
        if m.description:
            book.add_metadata("DC", "description", m.description)
        for subject in (m.subject, *m.keywords):
            if subject:
                book.add_metadata("DC", "subject", subject)
        if m.licence:
            book.add_metadata("DC", "rights", m.licence)
        if m.date_published:
            book.add_metadata("DC", "date", m.date_published)
        for prop, value in self.accessibility(article, theme, publisher):
            book.add_metadata(None, "meta", value, {"property": prop})

        opts = {"epub": True, "sentence_ids": False, "print_urls": False, "listen": False,
                "image_url": lambda image: f"images/{image.path.name}"}
        parts = split_parts(article)
        documents = []
        cover = self.document("cover", "cover.xhtml", theme.render(
            "epub", "cover.xhtml", article=article, lang=lang, publisher=publisher, contact=theme.contact))
        for n, part in enumerate(parts):
            documents.append(self.document(f"part{n:02d}", part.file_name, theme.render(
                "epub", "content.xhtml", article=article, blocks=part.blocks, first=part.first,
                title=part.title, lang=lang, opts=opts)))
        landmarks = [{"type": "cover", "href": "cover.xhtml", "text": "Cover"},
                     {"type": "toc", "href": "nav.xhtml#toc", "text": "Contents"},
                     {"type": "bodymatter", "href": "intro.xhtml", "text": "Start of the article"}]
        nav = self.document("nav", "nav.xhtml", theme.render(
            "epub", "nav.xhtml", toc=nav_tree(article, parts), landmarks=landmarks, lang=lang))
        nav.properties = ["nav"]
        for item in (cover, nav, *documents):
            book.add_item(item)
        book.add_item(epub.EpubItem(uid="css", file_name="css/epub.css", media_type="text/css",
                                    content=theme.file("css/epub.css").read_bytes()))
        for n, font in enumerate(FONTS):
            book.add_item(epub.EpubItem(uid=f"font{n}", file_name=f"fonts/{font}", media_type="font/ttf",
                                        content=theme.file(f"fonts/{font}").read_bytes()))
        for n, image in enumerate(_images(article.blocks)):
            media = "image/png" if image.path.suffix.lower() == ".png" else "image/jpeg"
            book.add_item(epub.EpubItem(uid=f"image{n}", file_name=f"images/{image.path.name}",
                                        media_type=media, content=image.path.read_bytes()))
        book.toc = [self.ncx_entry(epub, entry) for entry in nav_tree(article, parts)]
        book.add_item(epub.EpubNcx())
        book.spine = [cover, nav, *documents]

        modified = datetime.datetime.fromtimestamp(ctx.epoch, datetime.timezone.utc)
        raw = workdir / "ebooklib.epub"
        epub.write_epub(str(raw), book, {"mtime": modified, "epub3_landmark": False, "epub2_guide": False,
                                         "play_order": {"enabled": True, "start_from": 1}})
        target = workdir / f"{article.slug}.epub"
        repack(raw, target, {"EPUB/content.opf": lambda opf: package_language(opf, lang)})
        raw.unlink()
        return [target]

    @staticmethod
    def document(uid: str, file_name: str, xhtml: str):
        from ebooklib import epub
        item = epub.EpubItem(uid=uid, file_name=file_name, media_type="application/xhtml+xml",
                             content=xhtml.encode("utf-8"))
        item.properties = []
        return item

    @staticmethod
    def ncx_entry(epub, entry: NavEntry):
        link = epub.Link(entry.href, entry.text, entry.href.replace("#", "-").replace(".", "-"))
        return (epub.Section(entry.text, entry.href), [EpubStage.ncx_entry(epub, c) for c in entry.children]) \
            if entry.children else link

    @staticmethod
    def accessibility(article: Article, theme: Theme, publisher: str) -> list[tuple[str, str]]:
        """schema.org accessibility metadata, as the EPUB Accessibility 1.1 specification asks."""
        features = ["structuralNavigation", "tableOfContents", "readingOrder", "displayTransformability"]
        if any(image for image in _images(article.blocks)):
            features.append("alternativeText")
        return [
            ("schema:accessMode", "textual"),
            ("schema:accessModeSufficient", "textual"),
            *(("schema:accessibilityFeature", feature) for feature in features),
            ("schema:accessibilityHazard", "none"),
            ("schema:accessibilitySummary", article.metadata.accessibility_summary or theme.accessibility_summary),
            ("dcterms:conformsTo", CONFORMS_TO),
            ("a11y:certifiedBy", publisher),
        ]


def _walk(blocks):
    for block in blocks:
        yield block
        yield from _walk(getattr(block, "blocks", ()))


def _images(blocks):
    return [block for block in _walk(blocks) if block.kind == "image"]


def package_language(opf: bytes, lang: str) -> bytes:
    """The package document's own xml:lang (ebooklib writes dc:language only; reading systems and Ace want both)."""
    from lxml import etree
    root = etree.fromstring(opf)
    root.set("{http://www.w3.org/XML/1998/namespace}lang", lang)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def repack(source: Path, target: Path, rewrite: dict) -> None:
    """Rewrite the zip reproducibly: fixed timestamps and modes, mimetype first and stored.

    *rewrite* maps entry names to functions that amend their bytes on the way.
    """
    from repro_zipfile import ReproducibleZipFile
    with zipfile.ZipFile(source) as original, ReproducibleZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        names = original.namelist()
        for name in ["mimetype"] + [n for n in names if n != "mimetype"]:
            data = original.read(name)
            if name in rewrite:
                data = rewrite[name](data)
            out.writestr(name, data, compress_type=zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED)


STAGE = EpubStage()
