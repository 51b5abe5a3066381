"""The print handout, judged the way PDF/UA checkers, screen readers and printers meet it.

Real builds through the `publish` command and real WeasyPrint; the PDF is read
with pikepdf (structure attributes, metadata, bookmarks) and poppler
(`pdfinfo -struct-text` for the structure tree with its text, `pdftotext`
for the printed text, `pdffonts` for embedding).
"""
from __future__ import annotations

import collections
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf
import pytest
from PIL import Image as Picture

from conftest import B12, EPOCH, ROOT, assert_in_order, normalise, require_tool, run_publish, seed_sentences
from pipeline.errors import display_path
from pipeline.model import KeyPoints, ListBlock, Related, Section
from pipeline.source import load_article

PDF = f"{B12.stem}.pdf"
ORGANISATION = "Your Clinic Name"       # the default theme's placeholder


@pytest.fixture(scope="module")
def pdf_path(build_b12) -> Path:
    return build_b12("pdf") / PDF


@pytest.fixture(scope="module")
def pdf(pdf_path):
    with pikepdf.open(pdf_path) as document:
        yield document


@pytest.fixture(scope="module")
def article():
    return load_article(B12, publisher=ORGANISATION)


def poppler(tool: str, *args) -> str:
    require_tool(tool, "apt-get install poppler-utils")
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, check=True).stdout


# -- the structure tree, as poppler reads it --------------------------------------

@dataclass
class Node:
    tag: str
    children: list["Node"] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)      # text of its own marked content

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def text(self) -> str:
        """The element's text. poppler lists each run of marked content on its own (a line, or an
        inline element such as <abbr>): a run is joined to the next by a space, except before
        closing punctuation and after an opening bracket, where the source has none."""
        text = join_lines(t for node in self.walk() for t in node.texts)
        return re.sub(r"\(\s+", "(", re.sub(r"\s+(?=[,.;:!?)])", "", text))


def join_lines(lines) -> str:
    """Lines of laid-out text as one string: a line ending in a compound's own hyphen ("nerve-")
    continues the word on the next line; any other line break is a space."""
    return re.sub(r"(?<=\w-)\n(?=\w)", "", "\n".join(lines))


def structure_tree(path: Path) -> Node:
    """`pdfinfo -struct-text`: the structure tree with the text of each element, indented by depth."""
    root = Node("StructTreeRoot")
    stack = [(-1, root)]
    for line in poppler("pdfinfo", "-struct-text", path).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        content = line.strip()
        if not content or content.startswith("/"):          # attributes are read with pikepdf
            continue
        while stack[-1][0] >= depth:
            stack.pop()
        if content.startswith('"') and content.endswith('"'):
            stack[-1][1].texts.append(content[1:-1])
            continue
        node = Node(content.split()[0].rstrip(":"))
        stack[-1][1].children.append(node)
        stack.append((depth, node))
    return root


def elements(pdf) -> list[pikepdf.Dictionary]:
    """Every structure element reachable from the root, depth first (pikepdf: with attributes)."""
    found = []

    def walk(element):
        if not isinstance(element, pikepdf.Dictionary) or element.get("/Type") in ("/MCR", "/OBJR"):
            return
        if "/S" in element:
            found.append(element)
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            walk(kid)
    walk(pdf.Root.StructTreeRoot)
    return found


def page_finder(pdf):
    """A function giving the pages (numbered from 0) that a structure element's content is on."""
    numbers = {page.objgen: n for n, page in enumerate(pdf.pages)}

    def pages_of(element) -> set[int]:
        found = {numbers[element.Pg.objgen]} if "/Pg" in element else set()
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
                found |= pages_of(kid)
        return found
    return pages_of


def tag(element: pikepdf.Dictionary) -> str:
    return str(element.S)[1:]


def list_items_in(blocks) -> int:
    count = 0
    for block in blocks:
        if isinstance(block, (ListBlock, KeyPoints)):
            count += len(block.items)
        elif isinstance(block, Related):
            count += len(block.links)
        elif isinstance(block, Section):
            count += list_items_in(block.blocks)
    return count


# -- PDF/UA identification and metadata ----------------------------------------------

def test_the_pdf_is_tagged_pdf_ua_1_with_language_title_and_xmp(pdf, article):
    assert pdf.Root.MarkInfo.Marked is True
    assert str(pdf.Root.Lang) == article.metadata.language == "en"
    assert pdf.Root.ViewerPreferences.DisplayDocTitle is True
    assert str(pdf.docinfo.Title) == article.metadata.title
    xmp = pdf.open_metadata(set_pikepdf_as_editor=False)      # read only: no `with`, nothing written back
    assert xmp["pdfuaid:part"] == "1"
    assert xmp["dc:title"] == article.metadata.title
    assert xmp["dc:description"] == article.metadata.description
    assert xmp["dc:publisher"] == {ORGANISATION}                # rdf:Bag values read as sets
    assert xmp["dc:subject"] == {"Health", *article.metadata.keywords}
    assert xmp["dc:language"] == {"en"}
    assert xmp["pdf:Keywords"] == ", ".join(article.metadata.keywords)
    assert xmp["dc:identifier"] == article.metadata.identifier
    # the document info and the XMP packet name the same producer
    assert xmp["pdf:Producer"] == str(pdf.docinfo.Producer)
    # dates come from SOURCE_DATE_EPOCH (conftest: 2026-01-01), not from the clock
    assert str(pdf.docinfo.CreationDate).startswith("D:20260101000000")


# -- the structure tree --------------------------------------------------------------------

def test_headings_tables_lists_and_figures_are_tagged_as_the_article_has_them(pdf, pdf_path, article):
    counts = collections.Counter(tag(e) for e in elements(pdf))
    outline = article.outline()
    assert counts["H1"] == 1
    assert counts["H2"] == sum(1 for entry in outline if entry.level == 2)
    assert counts["H3"] == sum(1 for entry in outline if entry.level == 3)
    assert counts["H4"] == counts["H5"] == counts["H6"] == 0
    # every list item, with its marker (Lbl) and its body (LBody): real lists, not drawn bullets
    items = list_items_in(article.blocks)
    assert counts["LI"] == counts["Lbl"] == counts["LBody"] == items
    # one table (a table split by a page break would be two) with every cell of the model
    table = next(b for entry in outline if isinstance(entry.block, Section)
                 for b in entry.block.blocks if b.kind == "table")
    assert counts["Table"] == 1 and counts["Caption"] == 1
    assert counts["TR"] == 1 + len(table.rows)
    assert counts["TH"] == 1 + len(table.columns) + len(table.rows)
    assert counts["TD"] == len(table.rows) * len(table.columns)

    tree = structure_tree(pdf_path)
    headings = [(int(n.tag[1]), normalise(n.text())) for n in tree.walk() if re.fullmatch(r"H[1-6]", n.tag)]
    assert headings == [(1, article.title.text)] + [(e.level, e.text) for e in outline]


def test_the_key_points_are_one_list_of_six_items(pdf_path, article):
    key_points = next(b for b in article.blocks if isinstance(b, KeyPoints))
    tree = structure_tree(pdf_path)
    box = next(n for n in tree.walk()
               if n.tag == "Sect" and any(c.tag == "H2" and c.text() == key_points.heading.text for c in n.children))
    lists = [c for c in box.children if c.tag == "L"]
    assert len(lists) == 1
    items = [c for c in lists[0].children if c.tag == "LI"]
    assert len(items) == len(key_points.items) == 6
    for item, model in zip(items, key_points.items):
        assert [c.tag for c in item.children] == ["Lbl", "LBody"]
        assert normalise(item.children[1].text()).startswith(model.label_text + ":")


def test_table_header_cells_have_a_scope_and_data_cells_name_their_headers(pdf):
    table = [e for e in elements(pdf) if tag(e) in ("TH", "TD")]
    header_ids = {str(e.ID) for e in table if tag(e) == "TH"}
    scopes = [str(e.A.Scope) for e in table if tag(e) == "TH"]
    assert scopes == ["/Column"] * 3 + ["/Row"] * 4          # the header row, then each row's header
    for cell in (e for e in table if tag(e) == "TD"):
        headers = [str(h) for h in cell.A.Headers]
        assert len(headers) == 2 and set(headers) <= header_ids   # its row header and its column header


def test_faq_is_question_and_answer_pairs(pdf_path, article):
    faq = next(b for b in article.blocks if b.kind == "faq")
    tree = structure_tree(pdf_path)
    pairs = [n for n in tree.walk() if n.tag == "Div" and n.children and n.children[0].tag == "H3"]
    assert [normalise(p.children[0].text()) for p in pairs] == [item.question.text for item in faq.items]
    for pair, item in zip(pairs, faq.items):
        assert {c.tag for c in pair.children[1:]} == {"P"}
        assert normalise(" ".join(c.text() for c in pair.children[1:])) == \
            normalise(" ".join(s.text for p in item.answer for s in p.sentences))


def test_running_header_and_footer_are_printed_but_not_in_the_structure_tree(pdf, pdf_path, article):
    tagged = normalise(structure_tree(pdf_path).text())
    printed = normalise(poppler("pdftotext", pdf_path, "-"))
    pages = len(pdf.pages)
    short_title = article.metadata.short_title
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in printed and f"Page {n} of" not in tagged
    assert printed.count(short_title) == pages - 1 and short_title not in tagged   # not on the branded page 1
    assert printed.count("Last reviewed: not yet recorded") == pages + 1            # every footer, and under the title
    assert tagged.count("Last reviewed: not yet recorded") == 1
    assert tagged.count(ORGANISATION) == 1                                          # the branding block only


def test_bookmarks_mirror_the_headings(pdf, article):
    found = []

    def walk(items, level):
        for item in items:
            found.append((level, item.title))
            walk(item.children, level + 1)
    with pdf.open_outline() as outline:
        walk(outline.root, 1)
    assert found == [(1, article.title.text)] + [(e.level, e.text) for e in article.outline()]


# -- text, fonts, pages -----------------------------------------------------------------

def printed_text(path: Path, article) -> str:
    """pdftotext in drawing order (-raw: no guessing of columns, no joining of hyphenated words).

    WeasyPrint draws each page's running header and footer, and its list
    markers, after the page's text: they are taken out, as they would
    otherwise sit inside a sentence that runs from one page to the next.
    """
    furniture = re.compile("|".join([r"Page \d+ of \d+", r"Last reviewed: (not yet recorded|\d{1,2} \w+ \d{4})",
                                     re.escape(article.metadata.short_title), re.escape(ORGANISATION)]))
    lines = []
    for line in poppler("pdftotext", "-raw", path, "-").replace("\f", "\n").splitlines():
        if line.strip() in ("", "•") or not furniture.sub("", line).strip():
            continue
        lines.append(line)
    return join_lines(lines)


def test_every_sentence_is_printed_and_tagged_in_source_order(pdf_path, article):
    sentences = seed_sentences()
    assert len(sentences) > 90
    assert_in_order(sentences, printed_text(pdf_path, article))            # what a sighted reader reads
    assert_in_order(sentences, structure_tree(pdf_path).text())            # what a screen reader reads
    # no automatic hyphenation: no inserted hyphen (U+2010) and no soft hyphen
    everything = poppler("pdftotext", pdf_path, "-")
    assert "\u2010" not in everything and "\u00ad" not in everything


def test_every_font_is_embedded_and_is_the_bundled_atkinson_hyperlegible(pdf_path):
    rows = poppler("pdffonts", pdf_path).splitlines()[2:]
    assert rows, "pdffonts lists no font"
    for row in rows:
        name, *_, emb, sub, uni, _obj, _gen = row.split()
        assert emb == "yes", row
        assert "Atkinson-Hyperlegible" in name, row


def text_sizes(pdf) -> dict[str, set[float]]:
    """Effective font sizes in pt, for text inside the structure tree ("content") and outside it ("furniture")."""
    tagged = set()
    for element in elements(pdf):
        kids = element.get("/K")
        for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
            if isinstance(kid, int):
                tagged.add((element.Pg.objgen, kid))
    sizes = {"content": set(), "furniture": set()}
    for page in pdf.pages:
        ctm, saved, marked, font_size, matrix = pikepdf.Matrix(), [], [], 0.0, pikepdf.Matrix()
        for operands, operator in pikepdf.parse_content_stream(page):
            op = str(operator)
            if op == "q":
                saved.append(ctm)
            elif op == "Q":
                ctm = saved.pop()
            elif op == "cm":
                ctm = pikepdf.Matrix(*map(float, operands)) @ ctm
            elif op in ("BDC", "BMC"):
                properties = operands[1] if len(operands) > 1 else None
                marked.append(int(properties.MCID) if isinstance(properties, pikepdf.Dictionary)
                              and "/MCID" in properties else None)
            elif op == "EMC":
                marked.pop()
            elif op == "Tf":
                font_size = float(operands[1])
            elif op == "Tm":
                matrix = pikepdf.Matrix(*map(float, operands))
            elif op in ("TJ", "Tj"):
                m = matrix @ ctm
                size = round(font_size * abs(m.a * m.d - m.b * m.c) ** 0.5, 1)
                mcid = next((c for c in reversed(marked) if c is not None), None)
                sizes["content" if (page.objgen, mcid) in tagged else "furniture"].add(size)
    return sizes


def test_body_text_is_at_least_12_pt_and_the_handout_fits_four_a4_pages(pdf):
    sizes = text_sizes(pdf)
    assert min(sizes["content"]) >= 12.0, sorted(sizes["content"])
    assert sizes["furniture"] and min(sizes["furniture"]) >= 11.0, sorted(sizes["furniture"])
    assert [round(float(v)) for v in pdf.pages[0].MediaBox[2:]] == [595, 842]      # A4
    assert 3 <= len(pdf.pages) <= 4


def test_the_table_is_on_one_page_and_no_heading_ends_a_page(pdf_path, article):
    pages = poppler("pdftotext", "-raw", pdf_path, "-").split("\f")[:-1]
    table = next(b for entry in article.outline() if isinstance(entry.block, Section)
                 for b in entry.block.blocks if b.kind == "table")
    first, last = table.caption_text, table.rows[-1].cells[-1].sentences[-1].text
    on = [n for n, text in enumerate(pages) if first in text]
    assert len(on) == 1 and last in normalise(join_lines(pages[on[0]].splitlines()))
    furniture = re.compile(rf"Page \d+ of \d+|Last reviewed: .*|{re.escape(article.metadata.short_title)}|{ORGANISATION}")
    headings = {entry.text for entry in article.outline()}
    for n, text in enumerate(pages[:-1], 1):
        body = [line.strip() for line in text.splitlines() if line.strip() and not furniture.fullmatch(line.strip())]
        assert body[-1] not in headings, f"page {n} ends with the heading {body[-1]!r}"


# -- builds: deterministic, other paper, logo, images ------------------------------------------

def test_two_builds_are_byte_identical(pdf_path, tmp_path):
    result = run_publish("build", str(B12), "--format", "pdf", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    again = (tmp_path / B12.stem / PDF).read_bytes()
    assert again == pdf_path.read_bytes()
    with pikepdf.open(pdf_path) as pdf:
        assert len(pdf.trailer.ID) == 2           # a file identifier, derived from the content


def project_with_theme(tmp_path: Path, edit_theme=None) -> Path:
    """A copy of the B12 article and the default theme that a test may change."""
    project = tmp_path / "project"
    (project / "source").mkdir(parents=True)
    shutil.copy(B12, project / "source" / B12.name)
    shutil.copytree(ROOT / "themes" / "default", project / "themes" / "default")
    if edit_theme:
        edit_theme(project / "themes" / "default")
    return project


def build_project(project: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_publish("build", f"source/{B12.name}", "--format", "pdf", "--out", str(project / "output"),
                       *extra, cwd=project)


def with_logo(decorative: bool):
    def edit(theme: Path) -> None:
        picture = Picture.new("RGB", (240, 80), "white")
        picture.paste((0, 0, 0), (20, 20, 60, 60))
        picture.save(theme / "logo.png")
        settings = theme / "theme.yaml"
        settings.write_text(settings.read_text()
                            .replace('src: ""', "src: logo.png", 1)
                            .replace('alt: ""', 'alt: "Riverside Clinic"', 1)
                            .replace("decorative: false", f"decorative: {str(decorative).lower()}", 1))
    return edit


def test_letter_paper_and_a_logo_with_alt_text(tmp_path):
    project = project_with_theme(tmp_path, with_logo(decorative=False))
    result = build_project(project, "--paper", "letter")
    assert result.returncode == 0, result.stderr
    with pikepdf.open(project / "output" / B12.stem / PDF) as pdf:
        assert all([round(float(v)) for v in page.MediaBox[2:]] == [612, 792] for page in pdf.pages)
        figures = [e for e in elements(pdf) if tag(e) == "Figure"]
        assert [str(f.Alt) for f in figures] == ["Riverside Clinic"]
        assert len(pdf.pages) <= 5


def test_a_decorative_logo_is_drawn_but_not_announced(tmp_path):
    project = project_with_theme(tmp_path, with_logo(decorative=True))
    result = build_project(project)
    assert result.returncode == 0, result.stderr
    path = project / "output" / B12.stem / PDF
    with pikepdf.open(path) as pdf:
        assert not [e for e in elements(pdf) if tag(e) == "Figure"]
    drawn = poppler("pdfimages", "-list", path).splitlines()[2:]
    assert len(drawn) == 1 and drawn[0].split()[0] == "1"          # the logo, on page 1


def test_article_images_long_words_and_printed_addresses(tmp_path):
    folder = tmp_path / "article"
    folder.mkdir()
    Picture.new("RGB", (120, 80), (180, 30, 30)).save(folder / "red.png")
    address = "https://example.org/a/very/long/path/" + "x" * 120
    long_word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 4
    (folder / "pictures.yaml").write_text(
        "title: Pictures\nlanguage: en\nbody:\n"
        f'  - p: "See [the clinic page]({address}) and {long_word}."\n'
        "  - image:\n      src: red.png\n      alt: A red rectangle\n"
        "  - image:\n      src: red.png\n      decorative: true\n")
    result = run_publish("build", str(folder / "pictures.yaml"), "--format", "pdf", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "pictures" / "pictures.pdf"
    with pikepdf.open(path) as pdf:
        figures = [e for e in elements(pdf) if tag(e) == "Figure"]
        assert [str(f.Alt) for f in figures] == ["A red rectangle"]       # the decorative one is an artifact
        page_width = float(pdf.pages[0].MediaBox[2])
    assert len(poppler("pdfimages", "-list", path).splitlines()[2:]) == 2    # both are drawn
    # the link's address is printed after it; it and the long word wrap inside the right margin
    assert f"(https://example.org/a/very/long/path/{'x' * 120})" in \
        re.sub(r"\s", "", poppler("pdftotext", path, "-"))
    right_edges = [float(x) for x in re.findall(r'xMax="([\d.]+)"', poppler("pdftotext", "-bbox", path, "-"))]
    assert max(right_edges) <= page_width - 28


def test_a_table_longer_than_a_page_repeats_its_header_row_and_never_splits_a_row(tmp_path):
    rows = "\n".join(f'        - [Row {n}, "Oral cell {n} is long enough to wrap over two lines of this narrow column.",'
                     f' "Injected cell {n}."]' for n in range(1, 41))
    source = tmp_path / "long-table.yaml"
    source.write_text("title: A long table\nlanguage: en\nbody:\n  - table:\n      caption: Forty rows\n"
                      f"      header: [Feature, Oral, Injected]\n      rows:\n{rows}\n")
    result = run_publish("build", str(source), "--format", "pdf", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "out" / "long-table" / "long-table.pdf"
    pages = [normalise(join_lines(page.splitlines()))
             for page in poppler("pdftotext", "-raw", path, "-").split("\f")[:-1]]
    assert len(pages) >= 2
    assert "Forty rows Feature Oral Injected Row 1 " in pages[0]        # caption, header and rows start on page 1
    for n in range(1, 41):
        row = (f"Row {n} Oral cell {n} is long enough to wrap over two lines of this narrow column. "
               f"Injected cell {n}.")
        holding = [page for page in pages if row in page]
        assert len(holding) == 1, f"row {n} is split across pages or missing"
        assert holding[0].count("Feature Oral Injected") == 1          # the header row, repeated on its page


def test_a_section_list_and_paragraph_that_run_on_to_the_next_page_are_each_one_structure_element(tmp_path):
    """WeasyPrint makes a structure element per page of an HTML element: the build joins them, so that a screen
    reader meets one list of 24 items, not a list of some items and then another of the rest."""
    sentence = "Walking a little further each day helps the back to heal and keeps the joints moving. "
    items = "\n".join(f"          - Item {n}. Take a short walk." for n in range(1, 25))
    source = tmp_path / "long-list.yaml"
    source.write_text("title: A long list\nlanguage: en\nbody:\n  - section:\n      heading: Moving again\n"
                      f"      body:\n        - p: {sentence * 40}\n        - bullets:\n{items}\n"
                      f"        - p: {sentence * 30}\n")
    result = run_publish("build", str(source), "--format", "pdf", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    with pikepdf.open(tmp_path / "out" / "long-list" / "long-list.pdf") as pdf:
        assert len(pdf.pages) >= 3
        pages_of = page_finder(pdf)
        found = collections.defaultdict(list)
        for element in elements(pdf):
            found[tag(element)].append(element)
            for kid in element.get("/K") if isinstance(element.get("/K"), pikepdf.Array) else []:
                if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
                    assert kid.P.objgen == element.objgen, "a child names another parent"
        section, = found["Sect"]
        assert [tag(kid) for kid in section.K] == ["H2", "P", "L", "P"]
        assert [len(pages_of(kid)) for kid in section.K] == [1, 1, 2, 2]   # the list and the last paragraph run on
        assert len(pages_of(section)) == 3
        assert len(found["L"]) == 1 and len([kid for kid in found["L"][0].K if tag(kid) == "LI"]) == 24
    tree = structure_tree(tmp_path / "out" / "long-list" / "long-list.pdf")
    items = [node for node in tree.walk() if node.tag == "LI"]
    assert [normalise(item.text()).split(".")[0] for item in items] == [f"• Item {n}" for n in range(1, 25)]


# -- the URL fetcher ---------------------------------------------------------------------------

def add_css(rule: str):
    def edit(theme: Path) -> None:
        css = theme / "css" / "pdf.css"
        css.write_text(css.read_text() + "\n" + rule + "\n")
    return edit


def add_to_template(markup: str):
    def edit(theme: Path) -> None:
        template = theme / "templates" / "pdf" / "handout.html"
        template.write_text(template.read_text().replace("<main", markup + "\n<main", 1))
    return edit


@pytest.mark.parametrize("edit, url, says", [
    (add_css(".branding { background: url(../../../../../../../../etc/hostname) }"),
     "file:///etc/hostname", "which is outside `source/` and `themes/default/`"),
    (add_css("@font-face { font-family: Remote; src: url(https://example.org/remote.woff2) }"
             " body { font-family: Remote }"),
     "https://example.org/remote.woff2", "which is not a local file"),
    (add_to_template('<img src="file:///etc/passwd" alt="x"/>'),
     "file:///etc/passwd", "which is outside `source/` and `themes/default/`"),
    (add_css(".branding { background: url(../missing.png) }"),
     "themes/default/missing.png", "which does not exist"),
], ids=["css-outside", "css-network", "template-absolute-file", "css-missing"])
def test_the_fetcher_refuses_files_outside_the_article_and_theme_folders(tmp_path, edit, url, says):
    project = project_with_theme(tmp_path, edit)
    result = build_project(project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"source/{B12.name}: error: the PDF needs `{url}`, {says}" in result.stderr
    assert "how to fix:" in result.stderr and "Traceback" not in result.stderr
    assert not (project / "output" / B12.stem / PDF).exists()


def test_a_warm_process_makes_the_pdfs_a_fresh_build_makes(tmp_path):
    """The parsed stylesheets and their fonts are kept from one handout to the next (`publish serve`'s builder
    keeps them between saves): laying out another article first changes nothing in the next one's files."""
    from pipeline.stages import BuildContext, get
    from pipeline.theme import load_theme
    fresh = tmp_path / "fresh"
    built = run_publish("build", str(B12), "--format", "pdf,pdf-large", "--out", str(fresh),
                        "--cache", str(tmp_path / "cache"))
    assert built.returncode == 0, built.stderr
    theme = load_theme(ROOT / "themes" / "default")
    other = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
    epoch = int(EPOCH)
    for n, (source, stage) in enumerate([(other, "pdf"), (other, "pdf-large"), (B12, "pdf"), (B12, "pdf-large")]):
        article = load_article(source, display_path(source), publisher=theme.organisation)
        workdir = tmp_path / f"warm-{n}"
        workdir.mkdir()
        [made] = get(stage).render(article, theme, workdir, BuildContext(formats=(stage,), epoch=epoch))
        if source == B12:
            assert made.read_bytes() == (fresh / B12.stem / made.name).read_bytes(), made.name


@pytest.mark.parametrize("formats", ["pdf,pdf-large", "pdf,mp3"])
def test_a_build_with_workers_leaves_no_temporary_font_folder(tmp_path, formats):
    """WeasyPrint copies the theme's fonts into a temporary folder, removed only when its font configuration
    is collected: a worker process ends without that unless it is let go (and collected) first. Also when the
    documents' worker is ended early, its PDF done while the narration is still being made."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    other = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
    sources = [str(B12), str(other)] if formats == "pdf,pdf-large" else [str(other)]
    built = run_publish("build", *sources, "--format", formats, "--jobs", "2",
                        "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
                        env={"TMPDIR": str(scratch)})
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / Path(sources[0]).stem / f"{Path(sources[0]).stem}.pdf").is_file()
    assert not list(scratch.iterdir()), "temporary files were left"
