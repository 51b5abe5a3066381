"""Every block kind of the source format, through every output.

The fixture handout in tests/fixtures/back-pain/ uses every block kind and
every nesting level (callouts of the four kinds, lists three levels deep,
a quotation, glossaries with and without a title, an SVG drawing with a long
description). It is built once through the real `publish` command with all
four formats, and each output is judged as its users' tools judge it:
EPUBCheck and Ace for the EPUB, axe-core in Chromium for the page, the
tagged structure (pikepdf, poppler) for the PDF, and the narration script
and transcript for the listener.
"""
from __future__ import annotations

import re
from pathlib import Path

import pikepdf
import pytest

from conftest import ROOT, assert_in_order, normalise, run_publish
from pipeline.model import Callout, Glossary, Image, ListBlock, Quote, Section, iter_item_sentences
from pipeline.source import BLOCK, load_article
from pipeline.stages.audio.lexicon import load_lexicon
from pipeline.stages.audio.script import write_script
from test_epub import (
    EPUB_TYPE, EPUBCHECK_4, NS, ace_failures, epubcheck_jar_5, epubcheck_messages, read_book, run_ace, x,
)
from test_html import AXE, TAGS, THEMES, browser, open_page  # noqa: F401  (browser is a fixture)
from test_pdf import elements, poppler, printed_text, structure_tree, tag

FIXTURE = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
SLUG = FIXTURE.stem


@pytest.fixture(scope="module")
def article():
    return load_article(FIXTURE)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("content-model")
    result = run_publish("build", str(FIXTURE), "--format", "pdf,epub,html,audio", "--out", str(out / "out"),
                         "--cache", str(out / "cache"))
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return out / "out" / SLUG


def walk(blocks):
    for block in blocks:
        yield block
        yield from walk(getattr(block, "blocks", ()))


def list_depth(items) -> int:
    return 1 + max((list_depth(item.sublist.items) for item in items if item.sublist), default=0)


def reading_sentences(article) -> list[str]:
    return [s.text for s in article.sentences()]


# -- the fixture itself ---------------------------------------------------------------

def test_the_fixture_uses_every_block_kind_and_nesting_level(article):
    blocks = list(walk(article.blocks))
    kinds = {block.kind for block in blocks}
    source_kinds = set(BLOCK.kinds) - {"p", "bullets", "numbered"} | {"paragraph", "list"}
    assert source_kinds - {"section"} <= kinds - {"section"} and "section" in kinds
    callouts = [b for b in blocks if isinstance(b, Callout)]
    assert {c.callout_kind for c in callouts} == {"warning", "caution", "note", "tip"}
    assert any(c.title.spans for c in callouts) and any(not c.title.spans for c in callouts)
    lists = [b for b in blocks if isinstance(b, ListBlock)]
    assert max(list_depth(b.items) for b in lists) == 3
    sublists = [item.sublist for b in lists for item in b.items if item.sublist]
    sublists += [item.sublist for s in sublists for item in s.items if item.sublist]
    assert {s.ordered for s in sublists} == {True, False}
    images = [b for b in blocks if isinstance(b, Image)]
    assert any(i.long_description and i.path.suffix == ".svg" for i in images) and any(i.decorative for i in images)
    assert any(isinstance(b, Quote) and b.attribution for b in blocks)
    glossaries = [b for b in blocks if isinstance(b, Glossary)]
    assert [g.heading.text for g in glossaries] == ["Words used in this guide", "Glossary"]
    assert any(isinstance(b, Section) and b.heading.level == 3 for b in blocks)


def test_the_model_reads_sub_points_after_their_item_and_new_kinds_in_place(article):
    steps = next(b for b in walk(article.blocks) if isinstance(b, ListBlock) and b.ordered and
                 any(item.sublist for item in b.items))
    assert [s.text for s in iter_item_sentences(steps.items)] == [
        "Start moving gently within a day or two.", "Use heat or cold for 15 to 20 minutes:",
        "a warm (not hot) water bottle wrapped in a towel, or", "a bag of frozen peas wrapped in a damp cloth.",
        "Check your skin every 5 minutes.", "Stop if your skin becomes numb or very red.",
        "Short walks several times a day keep the back moving."]
    text = article.reading_text()
    assert text.index("Warning: Get medical help today if you have back pain with any of these:") < \
        text.index("numbness around your bottom or genitals") < text.index("In short")
    assert text.index("It is built to move, and it heals best when it does.") + 1 == text.index("a physiotherapist")
    assert text[text.index("Physiotherapist") + 1] == "a health professional who helps people move well."
    assert "Breathe normally for 10 seconds, then lower your feet." in reading_sentences(article)


# -- EPUB ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [4, 5])
def test_epubcheck_finds_nothing(built, tmp_path, version):
    jar = EPUBCHECK_4 if version == 4 else epubcheck_jar_5()
    checker, messages = epubcheck_messages(jar, built / f"{SLUG}.epub", tmp_path)
    assert checker.startswith("4.2.6" if version == 4 else "5.")
    assert messages == []


def test_ace_finds_no_violation(built, tmp_path):
    report = run_ace(built / f"{SLUG}.epub", tmp_path)
    assert ace_failures(report) == []
    assert report["earl:result"]["earl:outcome"] == "pass"


def test_epub_semantics_of_the_new_kinds(built, article):
    _, docs, spine = read_book(built / f"{SLUG}.epub")
    every = [e for href in spine for e in docs[href].iter()]
    typed = [e for e in every if e.get(EPUB_TYPE) and e.tag not in (x("a"), x("nav"))]
    assert all(e.get("role") == "doc-" + e.get(EPUB_TYPE) for e in typed), "epub:type without its ARIA role"
    callouts = [e for e in every if "callout" in (e.get("class") or "").split()]
    assert [(c.get("role"), c.get(EPUB_TYPE)) for c in callouts] == [
        ("doc-notice", "notice"), ("note", None), ("doc-notice", "notice"), ("note", None)]
    for callout in callouts:                  # a region named by its heading, whose first word is its kind
        heading = next(e for e in callout.iter() if e.get("id") == callout.get("aria-labelledby"))
        assert re.match(r"(Warning|Caution|Note|Tip)\b", "".join(heading.itertext()))
    # the steps: real nested lists, each sub-list inside its item
    assert len([e for e in every if e.tag == x("li") and e.find("x:ul/x:li/x:ol/x:li", NS) is not None]) == 1
    quote = next(e for e in every if e.tag == x("figure") and e.get("class") == "quote")
    assert quote.find("x:blockquote/x:p", NS) is not None
    assert "".join(quote.find("x:figcaption", NS).itertext()) == "— a physiotherapist"
    glossaries = [e for e in every if e.get(EPUB_TYPE) == "glossary" and e.tag == x("section")]
    assert [g.get("role") for g in glossaries] == ["doc-glossary", "doc-glossary"]
    terms = [("".join(dt.find("x:dfn", NS).itertext()), "".join(dt.getnext().itertext()))
             for g in glossaries for dt in g.iterfind(".//x:dl/x:dt", NS)]
    assert terms == [("GP", "general practitioner, your family doctor."),
                     ("Physiotherapist", "a health professional who helps people move well. They can suggest exercises."),
                     ("Sciatica", "pain that travels from the back down one leg.")]
    # the glossaries are landmarks, as the references are
    nav = docs["nav.xhtml"].find(".//x:nav[@epub:type='landmarks']", NS)
    marks = [(a.get(EPUB_TYPE), a.text) for a in nav.iterfind(".//x:a", NS)]
    assert ("glossary", "Words used in this guide") in marks and ("bibliography", "Sources") in marks
    details = next(e for e in every if e.tag == x("details"))
    assert details.getprevious().tag == x("figure")
    assert "".join(details.find("x:summary", NS).itertext()) == "Description of the picture"
    text = " ".join("".join(docs[href].find("x:body", NS).itertext()) for href in spine
                    if href not in ("cover.xhtml", "nav.xhtml"))
    assert_in_order(article.reading_text(), text)


# -- the large-print page ------------------------------------------------------------------

@pytest.mark.parametrize("width", [320, 1280])
@pytest.mark.parametrize("theme", THEMES)
def test_axe_finds_no_violation_and_nothing_scrolls_sideways(browser, built, theme, width):  # noqa: F811
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    page = open_page(browser, built / f"{SLUG}.html", width, theme)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # the drawing (640 px wide) shrinks to the text column and keeps its shape
    box = page.evaluate("(() => { const i = document.querySelector('figure img'); const r = i.getBoundingClientRect();"
                        " return [r.width, r.height, i.parentElement.getBoundingClientRect().width]; })()")
    assert 0 < box[0] <= box[2] and abs(box[1] / box[0] - 300 / 640) < 0.05
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    page.context.close()
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert violations == [], violations
    assert len(result["passes"]) > 20


def test_the_page_has_the_new_kinds_as_html_has_them_and_every_sentence_in_order(browser, built, article):  # noqa: F811
    page = open_page(browser, built / f"{SLUG}.html", 1280, javascript=False)
    regions = page.evaluate("[...document.querySelectorAll('.callout')].map(c => [c.getAttribute('role'), "
                            "document.getElementById(c.getAttribute('aria-labelledby')).textContent])")
    assert regions[0] == ["doc-notice", "Warning: Get medical help today if you have back pain with any of these:"]
    assert regions[1] == ["note", "Tip"]
    assert page.evaluate("document.querySelectorAll('li > ul > li > ol > li').length") == 2
    assert page.evaluate("document.querySelectorAll('dl > dt > dfn').length") == 3
    assert page.evaluate("document.querySelector('figure.quote > blockquote + figcaption').textContent") == "— a physiotherapist"
    # the long description is one activation away, right after its figure
    assert page.evaluate("document.querySelector('figure + details.long-description > summary').textContent") == \
        "Description of the picture"
    page.click("details.long-description > summary")
    assert page.is_visible("text=Breathe normally for 10 seconds")
    text = page.evaluate("document.querySelector('main').innerText")
    page.context.close()
    assert_in_order(article.reading_text(), text)


# -- PDF -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pdf(built):
    with pikepdf.open(built / f"{SLUG}.pdf") as document:
        yield document


def test_pdf_tags_callouts_nested_lists_quotes_glossaries_and_figures(built, pdf):
    tree = structure_tree(built / f"{SLUG}.pdf")
    nodes = list(tree.walk())
    # a callout is a grouping (Sect) that starts with its heading, kind first
    callouts = [n for n in nodes if n.tag == "Sect" and n.children and n.children[0].tag.startswith("H")
                and re.match(r"(Warning|Caution|Note|Tip)\b", n.children[0].text())]
    assert [c.children[0].text().split(":")[0] for c in callouts] == ["Warning", "Tip", "Caution", "Note"]
    assert [c.tag for c in callouts[0].children] == ["H2", "L", "P"]
    # sub-lists sit in the body of their item: L > LI > LBody > L > LI > LBody > L
    def depth(node) -> int:
        inner = [depth(k) for body in node.children if body.tag == "LI"
                 for part in body.children if part.tag == "LBody" for k in part.children if k.tag == "L"]
        return 1 + max(inner, default=0)
    assert max(depth(n) for n in nodes if n.tag == "L") == 3
    assert not any(k.tag == "L" for n in nodes if n.tag == "L" for k in n.children), "a sub-list beside its item"
    quote = next(n for n in nodes if n.tag == "BlockQuote")
    assert normalise(quote.text()) == ("The back is strong. It is built to move, and it heals best when it does. "
                                       "— a physiotherapist")
    # a glossary entry is one list item: the term its label, the definition its body
    entries = [(normalise(li.children[0].text()), normalise(li.children[1].text()))
               for n in nodes if n.tag == "L" for li in n.children
               if [k.tag for k in li.children] == ["Lbl", "LBody"] and not li.children[0].text().rstrip().endswith(".")
               and li.children[0].text().strip() not in ("•",)]
    assert ("GP", "general practitioner, your family doctor.") in entries
    assert ("Sciatica", "pain that travels from the back down one leg.") in entries
    # the one informative figure: alternative text and a bounding box inside the text column;
    # the decorative drawing is a background, not a figure
    figures = [e for e in elements(pdf) if tag(e) == "Figure"]
    assert len(figures) == 1
    assert str(figures[0].Alt).startswith("A person lying on their back on a mat")
    # in points from the page's lower left corner: 640 x 300 CSS px drawn at 480 x 225 pt, inside the page
    x1, y1, x2, y2 = (float(v) for v in figures[0].A.BBox)
    _, _, page_width, page_height = (float(v) for v in figures[0].Pg.MediaBox)
    assert 0 < x1 < x2 < page_width and 0 < y1 < y2 < page_height
    assert (round(x2 - x1), round(y2 - y1)) == (480, 225)
    # every structure element's parent points back at it (the moved sub-lists and glossary items too)
    for element in elements(pdf):
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
                assert kid.P.objgen == element.objgen


def test_pdf_has_every_sentence_printed_and_tagged_in_order_and_the_figure_on_one_page(built, article):
    path = built / f"{SLUG}.pdf"
    assert_in_order(reading_sentences(article), printed_text(path, article))
    assert_in_order(reading_sentences(article), structure_tree(path).text())
    pages = poppler("pdftotext", "-layout", path, "-").split("\f")
    (caption_page,) = [n for n, text in enumerate(pages) if "The knee-to-chest stretch." in text]
    assert "A gentle stretch" in pages[caption_page]          # the heading, the drawing and its caption together


# -- narration -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def script(article):
    lexicon = load_lexicon(ROOT / "themes" / "default", "en").with_article(article)
    utterances, chapters = write_script(article, lexicon, "Riverside Clinic")
    return utterances, chapters


def test_a_callout_is_announced_by_its_kind_never_as_key_points(script):
    utterances, chapters = script
    spoken = [u.spoken for u in utterances]
    start = spoken.index("Warning.")
    assert spoken[start + 1] == "Get medical help today if you have back pain with any of these."   # no ":."
    assert utterances[start - 1].pause in ("paragraph", "section") and utterances[start + 1].pause == "heading"
    end = spoken.index("End of warning.")
    assert not any("key point" in s.lower() for s in spoken[start:end])
    assert spoken[start + 2] == "A list of three items."
    assert {"Tip.", "Caution.", "Note."} <= set(spoken)
    assert not any(":." in s or ",." in s for s in spoken)
    assert "Warning" not in [c.title for c in chapters]            # a callout is not a chapter


def test_sub_points_quotes_glossaries_and_pictures_are_read_as_a_listener_needs(script):
    spoken = [u.spoken for u in script[0]]
    step = spoken.index("Item 2: Use heat or cold for 15 to 20 minutes.")
    assert spoken[step + 1:step + 7] == [
        "Two sub-points.", "First, a warm, not hot, water bottle wrapped in a towel, or.",
        "Second, a bag of frozen peas wrapped in a damp cloth.", "Two sub-points.",
        "First, check your skin every 5 minutes.", "Second, stop if your skin becomes numb or very red."]
    quote = spoken.index("Quote: The back is strong.")
    assert spoken[quote + 1:quote + 3] == ["It is built to move, and it heals best when it does.",
                                           "End quote, from a physiotherapist."]
    assert "G P: general practitioner, your family doctor." in spoken
    picture = spoken.index("Picture: A person lying on their back on a mat, hugging both knees towards the chest.")
    assert spoken[picture + 2].startswith("Description: Lie on your back")
    assert sum(s.startswith("Picture:") for s in spoken) == 1           # the decorative drawing is not read
    assert "Last reviewed 16 March 2026." in spoken


def test_the_narration_holds_every_sentence_in_order(built, script, article):
    utterances, _ = script
    # a sub-point's first word loses its capital after "First, ": compare without case
    assert_in_order([s.lower() for s in reading_sentences(article)], " ".join(u.written for u in utterances).lower())
    transcript = (built / f"{SLUG}.transcript.txt").read_text("utf-8")
    assert "Warning." in transcript and "End of warning." in transcript
    assert "key point" not in transcript.split("Section 1")[0].lower()       # before the first section: the warning
    cues = (built / f"{SLUG}.vtt").read_text("utf-8")
    assert "Get medical help today if you have back pain with any of these" in cues
