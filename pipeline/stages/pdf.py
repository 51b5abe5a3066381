"""The print handout: document model + theme → HTML and print CSS → WeasyPrint → tagged PDF/UA-1.

WeasyPrint writes the structure tree, bookmarks, /Lang, DisplayDocTitle and
the PDF/UA identification. One finishing pass with pikepdf adds what it
leaves out: the /Scope of each table header cell and the XMP publisher,
subject, language and identifier.

Every file WeasyPrint loads (stylesheet, fonts, logo, images) goes through
a fetcher that serves only files inside the article's folder and the
theme's folder: no network, nothing else on the machine.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import Problem, PublishError, display_path
from ..model import Article
from ..theme import Theme
from . import BuildContext, package_version


def w3c_datetime(epoch: int) -> str:
    """The build's instant as WeasyPrint reads it from <meta name=dcterms.created> (→ /CreationDate)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# The widest and tallest an image may be drawn, in pt: the text column of
# either paper, and a third of a page, so a picture never pushes its caption
# or the next heading far away.
MAX_IMAGE_PT = (480.0, 260.0)


def image_size_pt(path: Path) -> tuple[float, float]:
    """An image's size on paper: its pixels at the CSS 96 dpi, shrunk to fit MAX_IMAGE_PT."""
    from PIL import Image as Picture        # Pillow comes with WeasyPrint

    try:
        if path.suffix.lower() == ".svg":
            width, height = (px * 0.75 for px in svg_size_px(path))
        else:
            with Picture.open(path) as picture:
                width, height = (px * 0.75 for px in picture.size)
    except (OSError, ValueError) as exc:     # also Pillow's "cannot identify image file", and XML errors
        raise PublishError(Problem(display_path(path), 0, 0, f"the image cannot be read ({exc})",
                                   "save it again as PNG, JPEG or SVG")) from None
    scale = min(1.0, MAX_IMAGE_PT[0] / width, MAX_IMAGE_PT[1] / height)
    return round(width * scale, 2), round(height * scale, 2)


def svg_size_px(path: Path) -> tuple[float, float]:
    """A drawing's size in CSS px: its width and height, else its viewBox (as WeasyPrint sizes it)."""
    from lxml import etree
    from weasyprint.svg.utils import size       # WeasyPrint's own reading of SVG lengths (mm, pt, em…)

    root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    width, height = root.get("width", ""), root.get("height", "")
    if width and height and "%" not in width + height:
        return size(width, 16), size(height, 16)
    box = root.get("viewBox", "").replace(",", " ").split()
    if len(box) == 4 and float(box[2]) > 0 and float(box[3]) > 0:
        return float(box[2]), float(box[3])
    raise ValueError("the drawing has neither a width and height nor a viewBox")


def _fetcher(allowed: list[Path], article: Article):
    """A WeasyPrint URL fetcher confined to *allowed* folders; anything else stops the build.

    The error raised is a FatalURLFetchingError, the one kind WeasyPrint lets
    through instead of turning it into a warning and a missing image or font.
    """
    from weasyprint.urls import FatalURLFetchingError, URLFetcher

    folders = [folder.resolve() for folder in allowed]
    both = " and ".join(f"`{display_path(folder)}/`" for folder in folders)
    either = " or ".join(f"`{display_path(folder)}/`" for folder in folders)

    class Refused(FatalURLFetchingError):
        def __init__(self, problem: Problem):
            super().__init__(problem.message)
            self.problem = problem

    def refuse(url: str, why: str, hint: str) -> Refused:
        # The fetcher cannot tell which file asked for the URL: name both candidates.
        return Refused(Problem(display_path(article.source), 0, 0, f"the PDF needs `{url}`, {why}", hint))

    class FolderFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            parts = urlsplit(url)
            if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
                raise refuse(url, "which is not a local file: the PDF is built without the network",
                             f"copy the file into {either} and refer to it by a relative path "
                             f"(in the article, or in the theme's CSS and templates)")
            path = Path(unquote(parts.path)).resolve()        # resolves symbolic links and ".."
            if not any(path.is_relative_to(folder) for folder in folders):
                raise refuse(url, f"which is outside {both}",
                             f"copy the file into {either} and refer to it there "
                             f"(check the theme's CSS and templates, and the article's image paths)")
            if not path.is_file():
                raise refuse(f"{display_path(path)}", "which does not exist",
                             "check the file name in the theme's CSS and templates or in the article")
            return super().fetch(path.as_uri(), headers)

    return FolderFetcher(allowed_protocols={"file"}, fail_on_errors=True), Refused


def load_weasyprint():
    """Import WeasyPrint without ctypes' library search.

    WeasyPrint tries several names for each of its C libraries, passing each
    to cffi, which asks ctypes.util.find_library about every name it cannot
    open directly. That runs `ldconfig -p` each time, and then gcc and ld:
    22 misses, 0.15 s of a 0.5 s import, and a fork of the worker for each.
    No library needs that search here: each is opened by the dynamic loader
    (which also reads the linker cache and LD_LIBRARY_PATH) under its soname,
    which WeasyPrint tries too ("libpango-1.0.so.0"). Should that ever fail,
    the import is tried again the ordinary way.
    """
    if "weasyprint" in sys.modules:
        return sys.modules["weasyprint"]
    import ctypes.util
    search = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None
    try:
        return importlib.import_module("weasyprint")
    except OSError:                       # a library found only by searching: import as WeasyPrint would
        for name in [name for name in sys.modules if name == "weasyprint" or name.startswith("weasyprint.")]:
            del sys.modules[name]
    finally:
        ctypes.util.find_library = search
    return importlib.import_module("weasyprint")


# The theme's print stylesheets as WeasyPrint has parsed them, with the one font configuration their @font-face
# rules registered the theme's fonts in (the two go together), by theme folder and its content: a process that
# lays out several handouts, or the same one after each save (`publish serve`), parses each once, and the
# large-print handout, whose stylesheet goes on top of the handout's, parses only its own.
# 11 % of the handout's processor time (measured on the B12 article); the PDF is the same, byte for byte.
_PARSED: dict[str, tuple[str, object, dict[str, object]]] = {}    # folder: (its digest, fonts, {stylesheet: CSS})
_CLEARED_AT_EXIT: set[int] = set()          # the processes that will let them go when they end


def _clear_at_exit() -> None:
    """Let the parsed stylesheets go when this process ends, whichever way it ends normally: a
    FontConfiguration removes its temporary font folder when collected. (multiprocessing's finalizers run in
    the main process as it exits and in each worker, which ends without the interpreter's own clean-up; and
    they run while WeasyPrint is still whole, which a FontConfiguration collected later cannot count on.)"""
    if os.getpid() not in _CLEARED_AT_EXIT:
        from multiprocessing.util import Finalize
        Finalize(None, _forget_parsed, exitpriority=0)
        _CLEARED_AT_EXIT.add(os.getpid())


def _forget_parsed() -> None:
    import gc
    _PARSED.clear()
    gc.collect()                 # a stylesheet and its fonts may be held in a cycle: a worker ends without this


def parsed_stylesheets(theme: Theme, relatives: tuple[str, ...], fetcher) -> tuple[list, object]:
    """The theme's stylesheets *relatives* parsed, and the FontConfiguration they share (see _PARSED)."""
    from weasyprint import CSS
    from weasyprint.text.fonts import FontConfiguration

    from ..stamp import theme_digest
    folder, digest = str(theme.root.resolve()), theme_digest(theme.root)
    if folder not in _PARSED or _PARSED[folder][0] != digest:      # first use, or the theme has changed since
        _clear_at_exit()
        _PARSED[folder] = (digest, FontConfiguration(), {})
    _, fonts, parsed = _PARSED[folder]
    for relative in relatives:
        if relative not in parsed:
            parsed[relative] = CSS(filename=str(theme.file(relative)), url_fetcher=fetcher, font_config=fonts)
    return [parsed[relative] for relative in relatives], fonts


# Structure elements that are one HTML element's run on to the next page: a section, box, list, item,
# definition or paragraph. Tables are left as WeasyPrint makes them: their header row is repeated on each page.
JOINED_ACROSS_PAGES = frozenset({"/Sect", "/Part", "/Art", "/Div", "/BlockQuote", "/NonStruct",
                                 "/L", "/LI", "/LBody", "/P"})
_MADE: dict[bytes, tuple[object, object, int]] = {}     # during add_tags: reference → (element, HTML element, page)


def mend_weasyprint_tagging() -> None:
    """Two mends to the structure tree WeasyPrint 70 writes, made once per process.

    Each HTML element's structure element is made by
    weasyprint.pdf.tags._build_box_tree, which calls itself for the children:
    wrapping it sees every structure element with the box and HTML element it
    came from, which the finished tree no longer names.

    * Languages: every <span lang> gets its /Lang (PDF/UA 7.2: a screen reader
      switches voice on it, as it does on the page's `lang`). WeasyPrint writes
      /Lang on the catalog only.
    * Pages: an HTML element that runs on to the next page is one structure
      element, not one per page. WeasyPrint builds the tree page by page, each
      from the boxes laid out on it, so a list that runs on was two lists to a
      screen reader ("list of 4 items", then "list of 2 items"), a paragraph
      two paragraphs, and the section holding them two sections. Each element
      is recorded with its HTML element and page as it is made; once the tree
      is whole (add_tags, wrapped too), an element made from the same HTML
      element as the one before it, on the next page, is joined to it: its
      children move to the end of the first one's, which is then looked into
      the same way (joining two sections makes their two lists neighbours).
    """
    import weasyprint.pdf
    from weasyprint.pdf import tags
    if getattr(tags, "mended_by_publish", False):
        return
    import pydyf
    build, add_tags = tags._build_box_tree, weasyprint.pdf.add_tags

    def building(box, parent, pdf, page_number, *rest):
        for element in build(box, parent, pdf, page_number, *rest):
            source = getattr(getattr(box, "_box", box), "element", None)
            if source is not None:
                if (getattr(box, "element_tag", None) == "span" and source.get("lang")
                        and element.get("S") == "/Span"):
                    element["Lang"] = pydyf.String(source.get("lang"))
                _MADE[element.reference] = (element, source, page_number)
            yield element

    def adding_joined(pdf, *args, **kwargs):
        _MADE.clear()
        try:
            add_tags(pdf, *args, **kwargs)
            tree = _resolved(pdf, pdf.catalog["StructTreeRoot"])
            for document in tree["K"]:
                _join_fragments(_resolved(pdf, document), pdf)
        finally:
            _MADE.clear()

    tags._build_box_tree = building
    weasyprint.pdf.add_tags = adding_joined       # (weasyprint.pdf calls it by the name it imported)
    tags.mended_by_publish = True


def _join_fragments(element, pdf) -> None:
    """Join each of *element*'s children to the one before it where it continues it on the next page, then do
    the same within each child."""
    import pydyf
    kept, previous = pydyf.Array(), None          # previous: (element, HTML element, last page) of the last kept
    for kid in element["K"]:
        made = _MADE.get(kid) if isinstance(kid, bytes) else None
        if made and previous and _continues(previous, made):
            first = previous[0]
            for grandchild in made[0]["K"]:
                _resolved(pdf, grandchild)["P"] = first.reference
                first["K"].append(grandchild)
            previous = (first, previous[1], made[2])
            continue
        kept.append(kid)
        previous = made
    element["K"] = kept
    for kid in kept:
        if isinstance(kid, bytes) and kid in _MADE:
            _join_fragments(_MADE[kid][0], pdf)


def _continues(previous: tuple, made: tuple) -> bool:
    """Whether *made* is the rest, on the next page, of the HTML element *previous* was made from: the same
    element and kind, and children that are all structure elements (a marked-content number would need its
    page named to move)."""
    before, after = previous[0], made[0]
    return (made[1] is previous[1] and made[2] == previous[2] + 1 and after["S"] == before["S"]
            and after["S"] in JOINED_ACROSS_PAGES and all(isinstance(kid, bytes) for kid in after["K"]))


def _resolved(pdf, reference: bytes):
    """The object a pydyf reference ("12 0 R") names: pydyf numbers each object by its place in the file."""
    return pdf.objects[int(reference.split()[0])]


class PdfStage:
    """The handout. A variant (the large-print handout) is the same document under more stylesheets."""

    def __init__(self, name: str = "pdf", stylesheets: tuple[str, ...] = ("css/pdf.css",), suffix: str = ".pdf"):
        self.name = name
        self.stylesheets = stylesheets        # in the theme folder, applied in this order
        self.suffix = suffix                  # the file is <slug><suffix>

    def preload(self) -> None:
        load_weasyprint()
        importlib.import_module("pikepdf")

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}{self.suffix}"]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        # the installed fonts the article is set in: installing or updating one changes the PDF
        from ..scripts import font_files_of
        return (f"{package_version('weasyprint')}; {package_version('pikepdf')}; paper {theme.paper}; "
                f"fonts {font_files_of(article, theme.fonts)}").encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        check_glyphs(article, theme)
        weasyprint = load_weasyprint()
        mend_weasyprint_tagging()

        source_folder = article.source.parent.resolve()
        fetcher, Refused = _fetcher([source_folder, theme.root], article)
        opts = {"epub": False, "sentence_ids": False, "print_urls": True, "listen": False, "print": True,
                "image_url": lambda image: image.path.resolve().as_uri(),
                # decorative images are drawn as backgrounds of this size: artifacts, not figures
                "image_size": lambda image: image_size_pt(image.path)}
        words = theme.messages(article.metadata.language)
        html = theme.render(
            "pdf", "handout.html", words, article=article, theme=theme, opts=opts,
            paper=theme.paper,
            stylesheet="",                  # given to WeasyPrint parsed (parsed_stylesheets), not linked
            logo_url=theme.logo.path.resolve().as_uri() if theme.logo else "",
            reviewed=article.metadata.date_reviewed,
            created=w3c_datetime(ctx.epoch))

        # WeasyPrint reports unsupported CSS and the like on its logger; the
        # person running the build cannot act on those, and real problems
        # (a refused or missing file) stop the build below.
        logging.getLogger("weasyprint").setLevel(logging.CRITICAL)
        rendered = workdir / "weasyprint.pdf"
        try:
            stylesheets, fonts = parsed_stylesheets(theme, self.stylesheets, fetcher)
            document = weasyprint.HTML(string=html, base_url=source_folder.as_uri() + "/",
                                       url_fetcher=fetcher).render(
                stylesheets=[*stylesheets, weasyprint.CSS(string=page_number_css(words))], font_config=fonts,
                pdf_variant="pdf/ua-1")
            # pdf_identifier=True: the file ID is a hash of the content, not random.
            document.write_pdf(rendered, pdf_variant="pdf/ua-1", pdf_identifier=True)
        except Refused as exc:
            raise PublishError(exc.problem) from None
        target = workdir / f"{article.slug}{self.suffix}"
        finish(rendered, target, article)
        rendered.unlink()
        ctx.report.setdefault(self.name, {})["pages"] = len(document.pages)
        ctx.facts[target.name] = {"pages": len(document.pages)}         # what the catalogue says of it
        return [target]


def page_number_css(words) -> str:
    """The footer's "Page 1 of 4" in the article's language: the catalogue's message as CSS generated content,
    its text as CSS strings around the page counters (CSS cannot call gettext, so the rule is written here)."""
    parts = re.split(r"%\((pages?)\)s", words.gettext("Page %(page)s of %(pages)s"))
    content = []
    for n, part in enumerate(parts):
        if n % 2:
            content.append(f"counter({part})")
        elif part:
            content.append('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "@page { @bottom-right { content: %s; } }" % " ".join(content)
def check_glyphs(article: Article, theme: Theme) -> None:
    """Stop the build, naming each character and where it is, if no font of its language can draw it: WeasyPrint
    would print a box (.notdef) in its place, silently. Fontconfig's other fonts are not counted on: the PDF
    must come out the same on every machine set up alike, so only the theme's fonts for the language are."""
    from ..scripts import describe, missing_glyphs, position_in, texts_with_languages
    missing = missing_glyphs(texts_with_languages(article), theme.fonts, theme.root)
    if not missing:
        return
    problems = []
    for glyph in missing:
        line, column = position_in(article.source, glyph.character)
        tried = ", ".join(glyph.families) or "none"
        if glyph.absent:
            hint = (f"install {', '.join(glyph.absent)} (bash setup.sh installs the Noto fonts the default theme "
                    f"names), or name an installed font for `{glyph.language}` under fonts.languages in theme.yaml")
        else:
            hint = (f"if it belongs to a phrase in another language, mark it: [phrase](lang:xx); else name a font "
                    f"that has it for `{glyph.language}` under fonts.languages in theme.yaml "
                    f"(`fc-list :charset={ord(glyph.character):x} family` lists the installed ones), or remove it")
        problems.append(Problem(display_path(article.source), line, column,
                                f"the PDF has no glyph for {describe(glyph.character)}: the fonts for "
                                f"`{glyph.language}` ({tried}) do not have it", hint))
    raise PublishError(problems)


def finish(rendered: Path, target: Path, article: Article) -> None:
    """Add table header scopes and XMP metadata; save with an ID derived from the content."""
    import pikepdf

    with pikepdf.open(rendered) as pdf:
        add_header_scopes(pdf.Root.StructTreeRoot)
        nest_sublists(pdf.Root.StructTreeRoot)
        figure_boxes_in_points(pdf.Root.StructTreeRoot)
        pair_glossary_entries(pdf.Root.StructTreeRoot)
        m = article.metadata
        # No editor stamp, no MetadataDate: both would carry the clock into the file.
        with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as xmp:
            if m.publisher:
                xmp["dc:publisher"] = [m.publisher]
            xmp["dc:subject"] = [s for s in (m.subject, *m.keywords) if s]
            xmp["dc:language"] = [m.language]
            xmp["dc:identifier"] = m.identifier
            producer = xmp.get("pdf:Producer")
        # Saving would name pikepdf as the producer in the document info; PDF/A
        # and PDF/UA checkers want it to match the XMP packet.
        if producer:
            pdf.docinfo.Producer = producer
        pdf.save(target, deterministic_id=True)


def add_header_scopes(tree) -> None:
    """Give every TH a /Scope: Column in the table's head, Row in its body.

    WeasyPrint links each TD to its headers (/Headers) but gives header cells
    no scope; checkers and screen readers that look for the scope find it.
    """
    import pikepdf

    def walk(element, in_head: bool) -> None:
        if not isinstance(element, pikepdf.Dictionary) or element.get("/Type") in ("/MCR", "/OBJR"):
            return
        tag = element.get("/S")
        if tag == "/TH":
            attributes = element.get("/A")
            if not isinstance(attributes, pikepdf.Dictionary):
                attributes = element.A = pikepdf.Dictionary(O=pikepdf.Name.Table)
            attributes.Scope = pikepdf.Name.Column if in_head else pikepdf.Name.Row
            return
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            walk(kid, in_head or tag == "/THead")

    walk(tree, False)


def _kids(element) -> list:
    """A structure element's children as a list (/K may be one object or an array)."""
    import pikepdf
    kids = element.get("/K")
    return list(kids) if isinstance(kids, pikepdf.Array) else ([kids] if kids is not None else [])


def _structure_elements(tree):
    """Every structure element under *tree*, parents before their children."""
    import pikepdf
    for kid in _kids(tree):
        if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
            yield kid
            yield from _structure_elements(kid)


def nest_sublists(tree) -> None:
    """Put each sub-list inside the LBody of the item it belongs to.

    WeasyPrint makes an HTML sub-list (a <ul> inside an <li>) a sibling L
    that follows its item in the parent L; PDF/UA readers expect it in the
    item's body, as the HTML has it.
    """
    import pikepdf

    for element in list(_structure_elements(tree)):
        if element.get("/S") != "/L":
            continue
        kept, previous = pikepdf.Array(), None
        for kid in _kids(element):
            body = None
            if previous is not None and isinstance(kid, pikepdf.Dictionary) and kid.get("/S") == "/L":
                body = next((k for k in reversed(_kids(previous)) if k.get("/S") == "/LBody"), None)
            if body is not None:
                body.K = pikepdf.Array(_kids(body) + [kid])
                kid.P = body
                continue
            kept.append(kid)
            if isinstance(kid, pikepdf.Dictionary) and kid.get("/S") == "/LI":
                previous = kid
        element.K = kept


def figure_boxes_in_points(tree) -> None:
    """Give each Figure's /BBox in the page's own coordinates.

    WeasyPrint writes the box in CSS pixels measured down from the top of the
    page; PDF/UA wants it in the page's default space (points, measured up
    from the bottom), where a reader that reflows or magnifies finds the figure.
    """
    import pikepdf

    px = 0.75        # points in a CSS pixel
    for element in _structure_elements(tree):
        attributes = element.get("/A")
        if element.get("/S") != "/Figure" or not isinstance(attributes, pikepdf.Dictionary) or "/BBox" not in attributes:
            continue
        height = float(element.Pg.MediaBox[3])
        left, top, right, bottom = (float(v) for v in attributes.BBox)
        attributes.BBox = pikepdf.Array([round(left * px, 3), round(height - bottom * px, 3),
                                         round(right * px, 3), round(height - top * px, 3)])


def pair_glossary_entries(tree) -> None:
    """A glossary (<dl>) as list items whose label (Lbl) is the term and whose body (LBody) its definition.

    WeasyPrint tags each <dt> and each <dd> as an item of its own, both with
    a body and neither with a label, so a reader hears the term and its
    definition as two unrelated items. The handout's lists all have markers,
    so an L whose items have no label is a glossary: its items are paired.
    """
    import pikepdf

    for element in list(_structure_elements(tree)):
        items = _kids(element)
        if element.get("/S") != "/L" or not items or len(items) % 2 or not all(
                item.get("/S") == "/LI" and [k.get("/S") for k in _kids(item)] == ["/LBody"] for item in items):
            continue
        paired = pikepdf.Array()
        for term_item, definition_item in zip(items[::2], items[1::2]):
            label = _kids(term_item)[0]
            label.S = pikepdf.Name.Lbl
            definition = _kids(definition_item)[0]
            term_item.K = pikepdf.Array([label, definition])
            definition.P = term_item
            paired.append(term_item)
        element.K = paired


STAGE = PdfStage()
