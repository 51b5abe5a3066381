"""The print handout: document model + theme → HTML and print CSS → WeasyPrint → tagged PDF/UA-1."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree as ET

from ..errors import Problem, PublishError
from ..model import Article
from ..theme import Theme
from . import BuildContext

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
PAPER = {"a4": "A4", "letter": "letter"}


def iso_date(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def reviewed_text(article: Article) -> str:
    return article.metadata.date_reviewed or "not yet recorded"


def _fetcher_class():
    from weasyprint.urls import FatalURLFetchingError, URLFetcher

    class Refused(FatalURLFetchingError):
        def __init__(self, url: str):
            super().__init__(url)
            self.url = url

    class FolderFetcher(URLFetcher):
        """Fetches only files inside the allowed folders: no network, no other files."""

        def __init__(self, allowed: list[Path]):
            super().__init__(allowed_protocols={"file"}, fail_on_errors=True)
            self.allowed = [p.resolve() for p in allowed]

        def fetch(self, url, headers=None):
            parts = urlsplit(url)
            if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
                raise Refused(url)
            path = Path(unquote(parts.path)).resolve()      # resolves symlinks and ".."
            if not any(path.is_relative_to(folder) for folder in self.allowed) or not path.is_file():
                raise Refused(url)
            return super().fetch(url, headers)

    return FolderFetcher, Refused


class PdfStage:
    name = "pdf"

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.pdf"]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        import weasyprint
        return f"weasyprint {weasyprint.__version__}; paper {theme.paper}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        import weasyprint
        from weasyprint.text.fonts import FontConfiguration

        FolderFetcher, Refused = _fetcher_class()
        css_file = theme.file("css/pdf.css")
        opts = {"epub": False, "sentence_ids": False, "print_urls": True, "listen": False,
                "image_url": lambda image: image.path.as_uri()}
        html = theme.render("pdf", "handout.html", article=article, theme=theme, opts=opts,
                            stylesheet=css_file.as_uri(),
                            logo_url=theme.logo.path.as_uri() if theme.logo else "",
                            reviewed=reviewed_text(article), created=iso_date(ctx.epoch))
        paper = PAPER[theme.paper]
        fetcher = FolderFetcher([article.source.parent, theme.root])
        target = workdir / f"{article.slug}.pdf"
        # WeasyPrint logs layout warnings on its own logger; they are not the user's business.
        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        try:
            document = weasyprint.HTML(string=html, base_url=article.source.parent.as_uri() + "/",
                                       url_fetcher=fetcher).render(
                stylesheets=[weasyprint.CSS(string=f"@page {{ size: {paper}; }}")],
                font_config=FontConfiguration(), pdf_variant="pdf/ua-1")
            _add_to_xmp(document.metadata, article)
            document.write_pdf(target, pdf_variant="pdf/ua-1", pdf_identifier=True,
                               uncompressed_pdf=False)
        except Refused as exc:
            raise PublishError(Problem(str(article.source), 0, 0,
                                       f"the PDF refers to `{exc.url}`, outside the article's and the theme's folders",
                                       "keep images, fonts and stylesheets inside the article's folder or the theme folder")) from None
        return [target]


def _add_to_xmp(metadata, article: Article) -> None:
    """Add publisher, subject and language to the XMP packet WeasyPrint writes (title, description, keywords).

    They go into WeasyPrint's own rdf:RDF element: an XMP packet holds one.
    """
    generate = metadata.generate_rdf_metadata

    def generate_with_ours(*args, **kwargs) -> bytes:
        ET.register_namespace("rdf", RDF)
        ET.register_namespace("dc", DC)
        rdf = ET.fromstring(generate(*args, **kwargs))
        description = ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})

        def bag(name: str, values: list[str]) -> None:
            if values:
                items = ET.SubElement(ET.SubElement(description, f"{{{DC}}}{name}"), f"{{{RDF}}}Bag")
                for value in values:
                    ET.SubElement(items, f"{{{RDF}}}li").text = value
        m = article.metadata
        bag("publisher", [m.publisher] if m.publisher else [])
        bag("subject", [s for s in (m.subject, *m.keywords) if s])
        bag("language", [m.language])
        ET.SubElement(description, f"{{{DC}}}identifier").text = m.identifier
        return ET.tostring(rdf, encoding="utf-8")

    metadata.generate_rdf_metadata = generate_with_ours


STAGE = PdfStage()
