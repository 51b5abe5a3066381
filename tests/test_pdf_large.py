"""The large-print handout: the print handout's PDF/UA checks, run again on it, and what large print adds.

The checks imported from test_pdf run here against `<slug>.large-print.pdf`
(pytest gives them this module's `pdf_path`); the ones below are for large
print itself: 18 pt text, larger headings, generous line spacing, the table
stacked, no hyphenation, and the same output from the same source.
"""
from __future__ import annotations

import collections
import re
from pathlib import Path

import pikepdf
import pytest

from conftest import B12, assert_in_order, run_publish
from pipeline.model import KeyPoints, Section
from test_pdf import (article, elements, list_items_in, page_finder, pdf, poppler, printed_text,  # noqa: F401 (fixtures)
                      structure_tree, tag, text_sizes,
                      test_bookmarks_mirror_the_headings, test_every_font_is_embedded_and_is_the_bundled_atkinson_hyperlegible,
                      test_faq_is_question_and_answer_pairs,
                      test_running_header_and_footer_are_printed_but_not_in_the_structure_tree,
                      test_the_key_points_are_one_list_of_six_items, test_the_pdf_is_tagged_pdf_ua_1_with_language_title_and_xmp)

LARGE_PDF = f"{B12.stem}.large-print.pdf"


@pytest.fixture(scope="module")
def pdf_path(build_b12) -> Path:
    return build_b12("pdf-large") / LARGE_PDF


def the_table(article):
    return next(b for entry in article.outline() if isinstance(entry.block, Section)
                for b in entry.block.blocks if b.kind == "table")


def test_every_sentence_is_printed_and_tagged_in_reading_order(pdf_path, article):
    """Every sentence of the model, and the title, headings and labels, in order, printed and tagged. (The
    handout's test reads the original web page's table rows as one sentence each; stacked, each entry is
    introduced by its column's name, so here the model's sentences are the measure.)"""
    reading = article.reading_text()
    assert len(reading) > 100
    assert_in_order(reading, structure_tree(pdf_path).text())               # what a screen reader reads
    # on paper the stacked table has no header row: each entry is introduced by its column's name
    table = the_table(article)
    header_row = [table.corner.text, *(column.text for column in table.columns)]
    at = reading.index(header_row[0])
    assert reading[at:at + len(header_row)] == header_row
    assert_in_order(reading[:at] + reading[at + len(header_row):], printed_text(pdf_path, article))
    everything = poppler("pdftotext", pdf_path, "-")
    assert "\u2010" not in everything and "\u00ad" not in everything       # no automatic hyphenation


def test_body_text_is_18_pt_and_headings_larger(pdf):
    sizes = text_sizes(pdf)
    assert min(sizes["content"]) >= 18.0, sorted(sizes["content"])
    assert min(sizes["furniture"]) >= 14.0, sorted(sizes["furniture"])
    # the sizes of each heading level, read from the text inside H1, H2 and H3
    assert max(sizes["content"]) >= 30.0
    assert [round(float(v)) for v in pdf.pages[0].MediaBox[2:]] == [595, 842]


def test_a_callouts_heading_is_larger_than_its_text(tmp_path):
    """The B12 article has no callout: the back-pain handout has all four kinds, each with a heading
    ("Warning: Get medical help today ...") that must not shrink below the 18 pt text it introduces."""
    source = Path(__file__).parent / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
    result = run_publish("build", str(source), "--format", "pdf-large", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    with pikepdf.open(tmp_path / "out" / source.stem / f"{source.stem}.large-print.pdf") as document:
        assert min(text_sizes(document)["content"]) >= 18.0, sorted(text_sizes(document)["content"])


def test_lines_are_generously_spaced_and_left_aligned(pdf_path, article):
    """Line pitch of the first paragraph at least 1.4 times the text size; every line starts at the margin."""
    layout = poppler("pdftotext", "-bbox-layout", "-f", "1", "-l", "1", pdf_path, "-")
    first_words = article.blocks[0].sentences[0].text.split()[:3]
    blocks = re.findall(r"<block[^>]*>(.*?)</block>", layout, re.S)
    paragraph = next(b for b in blocks if " ".join(re.findall(r">([^<]+)</word>", b)[:3]) == " ".join(first_words))
    lines = [(float(x), float(y)) for x, y in re.findall(r'<line xMin="([\d.]+)" yMin="([\d.]+)"', paragraph)]
    assert len(lines) >= 4
    pitches = [b[1] - a[1] for a, b in zip(lines, lines[1:])]
    assert min(pitches) >= 1.4 * 18 - 0.5, pitches
    assert len({round(x) for x, _ in lines}) == 1, "lines of a paragraph start at different places"


def test_the_table_is_stacked_and_keeps_its_header_cells(pdf, pdf_path, article):
    table = the_table(article)
    printed = poppler("pdftotext", "-raw", pdf_path, "-")
    for column in table.columns:
        # each entry is introduced by its column's name: the columns are not side by side
        assert printed.count(f"{column.text}:") == len(table.rows), column.text
    cells = [e for e in elements(pdf) if tag(e) in ("TH", "TD")]
    column_headers = [e for e in cells if tag(e) == "TH" and str(e.A.Scope) == "/Column"]
    assert len(column_headers) == 1 + len(table.columns)
    row_headers = {str(e.ID) for e in cells if tag(e) == "TH" and str(e.A.Scope) == "/Row"}
    assert len(row_headers) == len(table.rows)
    data = [e for e in cells if tag(e) == "TD"]
    assert len(data) == len(table.rows) * len(table.columns)
    for cell in data:                  # every entry names its row header (the first page also its column's)
        assert set(map(str, cell.A.Headers)) & row_headers


def test_headings_and_lists_are_tagged_as_the_article_has_them(pdf, article):
    counts = collections.Counter(tag(e) for e in elements(pdf))
    outline = article.outline()
    assert counts["H1"] == 1
    assert counts["H2"] == sum(1 for entry in outline if entry.level == 2)
    assert counts["H3"] == sum(1 for entry in outline if entry.level == 3)
    assert counts["LI"] == counts["Lbl"] == counts["LBody"] == list_items_in(article.blocks)


def test_long_key_points_run_on_to_the_next_page_as_one_box_holding_one_list(pdf, article):
    """At 18 pt the six key points take most of a page: the box starts on the page before rather than leave it
    a third empty, and the tagged PDF still has one box (Sect) with one list of six items."""
    key_points = next(b for b in article.blocks if isinstance(b, KeyPoints))
    pages_of = page_finder(pdf)
    boxes = [e for e in elements(pdf) if tag(e) == "Sect" and isinstance(e.K, pikepdf.Array)
             and [tag(kid) for kid in e.K] == ["H2", "L"]]
    box, = [b for b in boxes if len([kid for kid in b.K[1].K if tag(kid) == "LI"]) == len(key_points.items) == 6]
    assert pages_of(box) == {0, 1}
    assert pages_of(box.K[1]) == {0, 1}


def test_two_builds_are_byte_identical(pdf_path, tmp_path):
    result = run_publish("build", str(B12), "--format", "pdf-large", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / B12.stem / LARGE_PDF).read_bytes() == pdf_path.read_bytes()
    with pikepdf.open(pdf_path) as document:
        assert len(document.trailer.ID) == 2
