"""The braille edition: document model → liblouis → a BRF file for embossers and braille displays.

`<slug>.brf` is North American Braille ASCII: contracted Unified English
Braille for English (other languages: their contracted liblouis table where
there is one, else uncontracted), laid out after BANA's Braille Formats:
a title page, then the article with braille page numbers, centred and
cell-5 headings, paragraphs at cell 3, lists (nested ones too) with hanging
indents, the table in listed form, boxed summaries, callouts and disclaimer,
displayed quotations, glossaries, images in transcriber's notes. The page size comes from the
theme (40 cells × 25 lines unless it says otherwise).
"""
from __future__ import annotations

from pathlib import Path

from ...i18n import Messages
from ...model import Article
from ...theme import Theme
from .. import BuildContext
from . import louis
from .blocks import Transcriber
from .layout import PageSize, brf, number_page


def page_size(theme: Theme) -> PageSize:
    settings = theme.braille
    return PageSize(cells=settings["cells_per_line"], lines=settings["lines_per_page"],
                    number_at=settings["page_number"])


def braille_system(table: str, contracted: bool, words: Messages) -> str:
    """How the title page names the braille code."""
    if table.startswith("en-ueb"):
        return words.gettext("Unified English Braille") if contracted else \
            words.gettext("Unified English Braille, uncontracted")
    return (words.gettext("braille (contracted, liblouis table %(table)s)") if contracted else
            words.gettext("braille (uncontracted, liblouis table %(table)s)")) % {"table": table}


def title_page(article: Article, theme: Theme, table: str, size: PageSize, epoch: int,
               total_pages: int, words: Messages) -> list[list[str]]:
    """BANA's title page: title, subtitle, organisation, dates, the braille code and the number of pages,
    in the article's language (a date in words: in braille an ISO date is a run of number signs and hyphens)."""
    m = article.metadata
    out = Transcriber(article, table, size, words)
    out.centred(out.inline(article.title.spans, marks=False))
    if article.subtitle:
        out.pages.blank()
        out.centred(out.inline(article.subtitle, marks=False))
    out.pages.blank()
    out.centred(out.plain(theme.organisation))
    if theme.contact:
        out.centred(out.plain(theme.contact))
    if m.date_published:
        out.centred(out.plain(words.gettext("Published %(date)s") % {"date": words.date(m.date_published)}))
    if m.date_reviewed:
        out.centred(out.plain(words.gettext("Reviewed %(date)s") % {"date": words.date(m.date_reviewed)}))
    out.pages.blank()
    system = braille_system(table, louis.table_for(m.language)[1], words)
    out.centred(out.plain(words.gettext("Transcribed in %(system)s, %(month)s")
                          % {"system": system, "month": words.month_year(epoch)}))
    out.pages.blank()
    out.centred(out.plain(words.ngettext("%(num)s braille page", "%(num)s braille pages", total_pages)
                          % {"num": words.number(total_pages)}))
    return out.pages.paginate()


def transcribe(article: Article, theme: Theme, epoch: int) -> tuple[bytes, dict]:
    """The article as BRF bytes, and what the build report says about it."""
    table, contracted = louis.table_for(article.metadata.language)
    louis.check_table(table)
    size = page_size(theme)
    words = theme.messages(article.metadata.language)
    out = Transcriber(article, table, size, words)
    out.centred(out.inline(article.title.spans, marks=False))     # the text opens with its title, as in print
    out.pages.blank()
    out.blocks(article.blocks)
    body = out.pages.paginate()
    # the title page states the number of pages, its own included: count it first
    title_pages = len(title_page(article, theme, table, size, epoch, 0, words))
    title = title_page(article, theme, table, size, epoch, title_pages + len(body), words)
    pages = title + [number_page(page, n, size) for n, page in enumerate(body, 1)]
    return brf(pages), {"table": table, "contracted": contracted, "pages": len(pages),
                        "cells": size.cells, "lines": size.lines}


class BrailleStage:
    name = "braille"

    def preload(self) -> None:
        if louis.installed():
            louis.check_table("en-ueb-g2.ctb")          # compiling the UEB table takes a moment: do it early

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.brf"]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        size = page_size(theme)
        return f"{louis.version()}; {louis.table_for(article.metadata.language)}; {size}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        data, report = transcribe(article, theme, ctx.epoch)
        target = workdir / f"{article.slug}.brf"
        target.write_bytes(data)
        ctx.report.setdefault(self.name, {}).update(report)
        return [target]


STAGE = BrailleStage()
