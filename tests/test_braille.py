"""The braille edition, read back as a braille reader's tools would: the BRF parsed page by page and
back-translated by liblouis."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import B12, ROOT, run_publish
from pipeline import stages
from pipeline.model import Callout, Glossary, Image, KeyPoints, ListBlock, Quote, iter_sentences
from pipeline.source import load_article
from pipeline.stages.braille import louis
from pipeline.stages.braille.blocks import NOTE_CLOSE, NOTE_OPEN
from pipeline.stages.braille.layout import BOX_BOTTOM, BOX_TOP, braille_number, wrap

FIXTURE = ROOT / "tests" / "fixtures" / "braille" / "self-care-sheet.yaml"
# every block kind: callouts of each kind, lists three levels deep, a quotation, glossaries, a long description
BACK_PAIN = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
TABLE = "en-ueb-g2.ctb"
BRAILLE_ASCII = set(louis.BRAILLE_ASCII)
# UEB typeform indicators: italic (dots 46), bold (45) or underline (456), then symbol (23), word (2),
# passage (2356) or terminator (3). liblouis's back-translator does not read them.
TYPEFORM_INDICATOR = re.compile(r"[.^_][21'7]")
# Forms whose back-translation liblouis gets wrong though the braille is right: a letter standing
# alone after a dot or apostrophe comes back as a wordsign ("e.g." → "e.go.", "B12's" → "b12'so").
BACK_TRANSLATION_SLIPS = {"e.go.": "e.g.", "'so ": "'s "}


@pytest.fixture(scope="module")
def brf_of(tmp_path_factory):
    """brf_of(source) → the BRF bytes of a real build of *source* (with the default theme)."""
    built: dict[Path, bytes] = {}

    def build(source: Path) -> bytes:
        if source not in built:
            out = tmp_path_factory.mktemp("braille")
            result = run_publish("build", str(source), "--format", "braille", "--out", str(out))
            assert result.returncode == 0, result.stderr
            built[source] = (out / source.stem / f"{source.stem}.brf").read_bytes()
        return built[source]
    return build


def pages_of(data: bytes) -> list[list[str]]:
    """The lines of each page; every page ends with a form feed, every line with CR LF."""
    text = data.decode("ascii")
    assert text.endswith("\f"), "the last page is not ended by a form feed"
    pages = []
    for page in text[:-1].split("\f"):
        assert page.endswith("\r\n"), "a page's last line is not ended by CR LF"
        lines = page[:-2].split("\r\n")
        for line in lines:
            assert "\r" not in line and "\n" not in line, f"a bare CR or LF in {line!r}"
        pages.append(lines)
    return pages


def body_lines(pages: list[list[str]], number_line: int = -1) -> list[str]:
    """The text lines of the pages after the title page, their page number lines left out."""
    return [line for page in pages[1:] for n, line in enumerate(page) if n != number_line % len(page)]


def read_back(lines: list[str]) -> str:
    """The braille lines as one text: a line ending in a hyphen or an address's slash continues the word."""
    text = ""
    for line in lines:
        line = line.strip()
        if not line or set(line) in ({BOX_TOP}, {BOX_BOTTOM}):
            continue
        text += line if text.endswith(("-", "_/")) else " " + line
    text = printed(louis.back_translate(TYPEFORM_INDICATOR.sub("", text), TABLE))
    for slip, right in BACK_TRANSLATION_SLIPS.items():
        text = text.replace(slip, right)
    return text


def insertions(article) -> list[str]:
    """What the braille adds to the print sentences: abbreviations' expansions, links' addresses."""
    added = [f" ({a.expansion})" for a in article.abbreviations] + [f", {a.expansion}" for a in article.abbreviations]
    return [a.lower() for a in added]


def printed(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')).lower()


def print_text(article, lines: list[str]) -> str:
    """Braille lines read back, with what the braille adds to the print taken out again."""
    text = read_back(lines)
    # addresses are written uncontracted (as typed), which the contracted back-translation misreads:
    # take out every bracketed stretch holding one, and check the addresses themselves below
    text = re.sub(r" \([^()]*(//|@)[^()]*\)", "", text)
    for added in insertions(article):
        text = text.replace(added, "")
    return text


def assert_read_in_order(expected: list[str], text: str) -> None:
    position = 0
    for wanted in expected:
        found = text.find(printed(wanted), position)
        assert found >= 0, f"not found in order: {wanted!r}\nafter: {text[position:position + 300]!r}"
        position = found + len(printed(wanted))


@pytest.mark.parametrize("source", [B12, FIXTURE, BACK_PAIN], ids=["b12", "fixture", "back-pain"])
def test_back_translation_recovers_every_sentence_in_reading_order(brf_of, source):
    article = load_article(source, source.name)
    text = print_text(article, body_lines(pages_of(brf_of(source))))
    assert_read_in_order([sentence.text for sentence in article.sentences()], text)


def walk(blocks):
    for block in blocks:
        yield block
        yield from walk(getattr(block, "blocks", ()))


def test_the_new_kinds_say_what_print_shows_around_their_sentences(brf_of):
    """A callout's kind and title, a glossary's heading and "term: definition", a quotation's source and an
    image's described picture, read back in reading order."""
    article = load_article(BACK_PAIN, BACK_PAIN.name)
    expected = []
    for block in walk(article.blocks):
        if isinstance(block, Callout):
            expected.append(block.heading_text)
        elif isinstance(block, Quote):
            expected.append(f"{block.sentences[-1].text} — {block.attribution_text}")
        elif isinstance(block, Glossary):
            expected.append(block.heading.text)
            expected += [f"{t.term_text}: {' '.join(s.text for s in t.definition)}" for t in block.terms]
        elif isinstance(block, Image) and block.long_description:
            expected.append(f"{block.caption[-1].text} description of the picture: {block.long_description[0].text}")
    assert len(expected) == 11
    assert_read_in_order(expected, print_text(article, body_lines(pages_of(brf_of(BACK_PAIN)))))


def test_links_are_followed_by_their_address_uncontracted(brf_of):
    lines = body_lines(pages_of(brf_of(FIXTURE)))
    joined = "".join(line.strip() if prev.rstrip().endswith(("-", "_/")) else " " + line.strip()
                     for prev, line in zip([""] + lines, lines))
    uncontracted = louis.back_translate(joined, "en-ueb-g1.ctb").lower()
    for address in ("https://www.diabetes.org.uk/guide-to-diabetes/complications/feet", "feet@clinic.example.org",
                    "https://www.nice.org.uk/guidance/ng19", "https://clinic.example.org/feet"):
        assert f"({address})" in uncontracted, f"{address} is not written out after its link"
    assert "mailto" not in uncontracted


def test_abbreviations_are_expanded_once_and_emphasis_marked(brf_of):
    text = read_back(body_lines(pages_of(brf_of(FIXTURE))))
    assert text.count("gp (general practitioner)") == 1
    assert text.count("general practitioner") == 1, "expanded more than once"
    braille = "".join(body_lines(pages_of(brf_of(FIXTURE))))
    assert ".1E .1\"D" in braille, "the italic *every day* has no italic word indicators"
    assert "^1EV5" in braille, "the bold **even at home** has no bold indicator"
    b12 = read_back(body_lines(pages_of(brf_of(B12))))
    assert "methylmalonic acid (mma)" in b12 and "mma (methylmalonic" not in b12, "expanded where the text does"


@pytest.mark.parametrize("source", [B12, FIXTURE], ids=["b12", "fixture"])
def test_character_set_and_page_size(brf_of, source):
    data = brf_of(source)
    assert set(data.decode("ascii")) <= BRAILLE_ASCII | {"\f", "\r", "\n"}, \
        f"characters outside Braille ASCII: {set(data.decode('ascii')) - BRAILLE_ASCII - set(chr(12) + chr(13) + chr(10))}"
    pages = pages_of(data)
    for number, page in enumerate(pages, 1):
        assert len(page) <= 25, f"page {number} has {len(page)} lines"
        for line in page:
            assert len(line) <= 40, f"page {number}: a line of {len(line)} cells: {line!r}"
            assert line == line.rstrip(), "trailing blank cells"
        assert page[0].strip() or number == 1, f"page {number} opens with a blank line"


def test_page_numbers_and_title_page(brf_of):
    pages = pages_of(brf_of(B12))
    title = pages[0]
    for n, page in enumerate(pages[1:], 1):
        assert len(page) == 25, "the page number is not on the 25th line"
        number = braille_number(n)
        assert page[-1] == " " * (40 - len(number)) + number, f"page {n} ends {page[-1]!r}"
    title_text = read_back(title)
    for expected in ("is b12 good for lower back pain?", "exploring the nerve-health connection",
                     "your clinic name", "transcribed in unified english braille, january 2026",
                     f"{len(pages)} braille pages"):
        assert expected in title_text, f"the title page lacks {expected!r}: {title_text!r}"
    for line in title:                                        # centred, with three blank cells each side
        if line.strip():
            left = len(line) - len(line.lstrip())
            assert left >= 3 and abs(left - (40 - len(line))) <= 1, f"not centred: {line!r}"


def line_starting(back: list[str], text: str, start: int = 0) -> int:
    """The index of the first line from *start* whose back-translation starts with *text*."""
    return next(i for i in range(start, len(back)) if back[i].startswith(printed(text)))


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def test_headings_paragraphs_and_lists_follow_braille_formats(brf_of):
    lines = body_lines(pages_of(brf_of(B12)))
    back = [read_back([line]).strip() for line in lines]

    def at(text: str) -> int:
        return line_starting(back, text)
    # a top-level section heading: centred, a blank line before it, text on the next line
    i = at("the role of vitamin b12")
    assert lines[i - 1] == "" and abs((len(lines[i]) - len(lines[i].lstrip())) - (40 - len(lines[i]))) <= 1
    # a subsection heading at cell 5
    i = at("high-b12 foods")
    assert lines[i].startswith("    ,") and lines[i - 1] == ""
    # a paragraph at cell 3, its runovers at cell 1
    i = at("vitamin b12, also known as cobalamin")
    assert lines[i].startswith("  ,") and lines[i + 1][0] != " " and lines[i + 2][0] != " "
    # a labelled list item at cell 1 with runovers at cell 3
    i = at("mechanical back pain:")
    assert lines[i][0] != " " and lines[i + 1].startswith("  ") and lines[i + 1][2] != " "
    # the summary, key points and disclaimer between box lines
    assert sum(1 for line in lines if line == BOX_TOP * 40) == 3
    assert sum(1 for line in lines if line == BOX_BOTTOM * 40) == 3


def test_nested_and_numbered_lists(brf_of):
    lines = body_lines(pages_of(brf_of(FIXTURE)))
    back = [read_back([line]).strip() for line in lines]
    numbered = [i for i, line in enumerate(back) if re.match(r"[123]\. ", line)]
    assert [back[i][:2] for i in numbered[:3]] == ["1.", "2.", "3."]
    assert all(lines[i][0] != " " and lines[i + 1].startswith("  ") for i in numbered[:2])
    i = back.index("choosing shoes and socks")        # a heading below a subsection: cell 5
    assert lines[i].startswith("    ,")


def entries(lines: list[str], start: int, runover: int) -> list[tuple[int, str]]:
    """The entries from line *start* to the next blank or box line: each is its first line's indentation
    and its text read back, its runover lines (those indented *runover* cells) joined to it."""
    found: list[tuple[int, list[str]]] = []
    for line in lines[start:]:
        if not line.strip() or set(line) in ({BOX_TOP}, {BOX_BOTTOM}):
            break
        if indent(line) == runover and found:
            found[-1][1].append(line)
        else:
            found.append((indent(line), [line]))
    return [(cells, read_back(group).strip()) for cells, group in found]


def item_texts(items, ordered: bool, level: int = 0) -> list[tuple[int, str]]:
    """What each item of a list should read, with its level: "2. Label: text" or just "text"."""
    expected = []
    for number, item in enumerate(items, 1):
        text = " ".join(s.text for s in item.sentences)
        text = f"{item.label_text}: {text}" if item.label else text
        expected.append((level, f"{number}. {text}" if ordered else text))
        if item.sublist:
            expected += item_texts(item.sublist.items, item.sublist.ordered, level + 1)
    return expected


def test_callouts_are_boxed_with_their_kind_first(brf_of):
    article = load_article(BACK_PAIN, BACK_PAIN.name)
    lines = body_lines(pages_of(brf_of(BACK_PAIN)))
    back = [read_back([line]).strip() for line in lines]
    callouts = [block for block in walk(article.blocks) if isinstance(block, Callout)]
    assert [c.label for c in callouts] == ["Warning", "Tip", "Caution", "Note"]
    for block in callouts:
        top = line_starting(back, block.heading_text.split(":")[0] + (":" if block.title.spans else ""))
        assert lines[top - 1] == BOX_TOP * 40, f"the {block.label} box does not open right above its heading"
        bottom = next(i for i in range(top, len(lines)) if lines[i] == BOX_BOTTOM * 40)
        assert BOX_TOP * 40 not in lines[top:bottom], "a box opens inside the callout's box"
        inside = print_text(article, lines[top:bottom]).strip()
        assert inside.startswith(printed(block.heading_text)), inside
        assert_read_in_order([s.text for s in iter_sentences(block.blocks)], inside)
        assert lines[bottom - 1].strip(), "a blank line before the box's closing line"
        assert lines[bottom + 1] == "", "no blank line after the box"


def test_nested_list_items_are_indented_per_level_with_runovers_right_of_the_deepest(brf_of):
    article = load_article(BACK_PAIN, BACK_PAIN.name)
    lines = body_lines(pages_of(brf_of(BACK_PAIN)))
    back = [read_back([line]).strip() for line in lines]
    nested = next(b for b in walk(article.blocks) if isinstance(b, ListBlock) and any(i.sublist for i in b.items))
    expected = item_texts(nested.items, nested.ordered)
    assert [level for level, _ in expected] == [0, 0, 1, 1, 2, 2, 0], "the fixture no longer nests three levels"
    start = line_starting(back, expected[0][1])
    found = entries(lines, start, runover=6)          # three levels: runovers at cell 7 for every level
    assert [cells for cells, _ in found] == [2 * level for level, _ in expected], found
    for (_, text), (_, wanted) in zip(found, expected):
        assert text == printed(wanted), f"{text!r} is not {wanted!r}"
    assert sum(len(line) > 0 and indent(line) == 6 for line in lines[start:start + 14]) >= 3, \
        "the runovers were not exercised: the fixture's items all fit on one line"
    # a flat list's items keep runovers at cell 3; the key points' item without a label starts with its text
    key_points = next(b for b in article.blocks if isinstance(b, KeyPoints))
    start = line_starting(back, key_points.heading.text) + 1
    assert entries(lines, start, runover=2) == [(0, printed(text)) for _, text in item_texts(key_points.items, False)]


def test_glossary_terms_at_cell_1_with_runovers_at_cell_3(brf_of):
    article = load_article(BACK_PAIN, BACK_PAIN.name)
    lines = body_lines(pages_of(brf_of(BACK_PAIN)))
    back = [read_back([line]).strip() for line in lines]
    glossaries = [b for b in article.blocks if isinstance(b, Glossary)]
    assert len(glossaries) == 2
    for block in glossaries:
        heading = line_starting(back, block.heading.text)
        assert lines[heading - 1] == "" and lines[heading + 1] == "" and indent(lines[heading]) >= 3
        found = entries(lines, heading + 2, runover=2)
        wanted = [(0, printed(f"{t.term_text}: {' '.join(s.text for s in t.definition)}")) for t in block.terms]
        assert found == wanted
    runovers = [line for line in lines if line.startswith("  ") and not line.startswith("   ")]
    assert any(back[lines.index(line) - 1].startswith("physiotherapist:") for line in runovers), \
        "no glossary entry ran over: the check of cell 3 did not happen"


def test_quotation_displayed_and_long_description_in_a_note(brf_of):
    article = load_article(BACK_PAIN, BACK_PAIN.name)
    lines = body_lines(pages_of(brf_of(BACK_PAIN)))
    back = [read_back([line]).strip() for line in lines]
    block = next(b for b in walk(article.blocks) if isinstance(b, Quote))
    first = line_starting(back, block.sentences[0].text)
    source = line_starting(back, "— " + block.attribution_text, first)
    assert lines[first - 1] == "" and lines[source + 1] == "", "the quotation is not set off by blank lines"
    assert indent(lines[first]) == 2 and indent(lines[source]) == 4
    assert read_back(lines[first:source]).strip() == printed(" ".join(s.text for s in block.sentences))
    picture = next(b for b in walk(article.blocks) if isinstance(b, Image) and b.long_description)
    note = line_starting(back, "description of the picture:")
    end = next(i for i in range(note, len(lines)) if lines[i].endswith(NOTE_CLOSE))
    assert lines[note].startswith(" " * 6 + NOTE_OPEN) and all(indent(line) == 4 for line in lines[note + 1:end + 1])
    assert read_back(lines[note:end + 1]).strip().endswith(printed(picture.long_description[-1].text)), \
        "the description does not end the transcriber's note"


def test_words_are_divided_only_at_hyphens_and_address_slashes():
    braille = louis.translate("a well-known self-management-and-education programme at "
                              "https://www.example.org/a/long/path/to/a/page and "
                              "pneumonoultramicroscopicsilicovolcanoconiosis", TABLE)
    lines = wrap(braille, 20, 2, 0)
    assert all(len(line) <= 20 for line in lines)
    # joined again, with no space after a line that ends inside a word, the lines give the braille back:
    # so a word was divided nowhere but after a hyphen, after an address's slash, or (longer than a
    # line) at the line's end
    words = set(braille.split())
    joined = ""
    for line in lines:
        inside_word = joined.endswith(("-", "_/")) or (joined and len(previous) == 20 and previous.split()[-1] not in words)
        joined += line.strip() if inside_word else (" " if joined else "") + line.strip()
        previous = line
    assert joined == braille
    assert len(lines[-2]) == 20 and len(lines[-3]) == 20 and len(lines[-1]) < 20, "a word longer than a line is cut at its end"
    assert wrap(braille, 40, 2, 0)[0].startswith("  A WELL-") and all(len(line) <= 40 for line in wrap(braille, 40, 2, 0))


def test_listed_table(brf_of):
    article = load_article(B12, B12.name)
    table = next(block for section in article.blocks for block in getattr(section, "blocks", ())
                 if getattr(block, "kind", "") == "table")
    lines = body_lines(pages_of(brf_of(B12)))
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("@.<"))
    assert read_back([lines[start - 1]]).strip() == printed(table.caption_text)
    rows: list[tuple[str, list[str]]] = []
    for line in lines[start:]:
        if not line.strip() or set(line.strip()) == {BOX_TOP}:
            break
        if line.startswith("@") or line.startswith("      @") or line.lstrip().endswith("@.>"):
            continue
        if line[0] != " ":                                   # a row header at cell 1
            rows.append((line, []))
        elif line.startswith("  ") and line[2] != " " and not line.startswith("    "):
            rows[-1][1].append(line)                          # an entry at cell 3
        else:
            rows[-1][1][-1] += " " + line.strip()              # its runover at cell 5
    assert [read_back([header]).strip() for header, _ in rows] == [printed(r.header.text) for r in table.rows]
    for (header, entries), row in zip(rows, table.rows):
        assert len(entries) == len(table.columns)
        for entry, column, cell in zip(entries, table.columns, row.cells):
            back = read_back([entry]).strip()
            assert back.startswith(printed(column.text) + ":"), back
            assert printed(cell.text)[:40] in back.replace(" (micrograms)", "")


def theme_project(tmp_path: Path, settings: str) -> Path:
    project = tmp_path / "project"
    shutil.copytree(ROOT / "themes", project / "themes")
    (project / "source").mkdir()
    shutil.copy(B12, project / "source" / B12.name)
    theme = project / "themes" / "default" / "theme.yaml"
    text = theme.read_text()
    theme.write_text(re.sub(r"braille:\n(  .*\n)+", settings, text))
    return project


def test_a_32_cell_28_line_embosser_setting_is_respected(tmp_path):
    project = theme_project(tmp_path, "braille:\n  cells_per_line: 32\n  lines_per_page: 28\n  page_number: top\n")
    result = run_publish("build", "--format", "braille", "--out", str(project / "output"), cwd=project)
    assert result.returncode == 0, result.stderr
    pages = pages_of((project / "output" / B12.stem / f"{B12.stem}.brf").read_bytes())
    for n, page in enumerate(pages[1:], 1):
        assert len(page) == 28
        assert page[0] == " " * (32 - len(braille_number(n))) + braille_number(n)
        assert all(len(line) <= 32 for line in page)
    assert max(len(line) for page in pages for line in page) == 32
    text = read_back(body_lines(pages, number_line=0))
    assert "it is important to distinguish between mechanical back pain and neuropathic back pain." in text


def test_a_wrong_braille_setting_is_a_located_error(tmp_path):
    project = theme_project(tmp_path, "braille:\n  cells_per_line: 12\n  lines_per_page: 25\n")
    result = run_publish("build", "--format", "braille", "--out", str(project / "output"), cwd=project)
    assert result.returncode == 1
    assert re.search(r"theme\.yaml:\d+:\d+: error: .*cells_per_line.*", result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "output" / B12.stem).exists()


def test_missing_liblouis_is_exit_3_and_the_other_formats_still_build(tmp_path):
    # the dynamic loader really fails to find the library, as on a machine without liblouis
    without_liblouis = ("import sys; from pipeline import stages, cli; "
                        "stages.SYSTEM_LIBRARIES['braille'] = ('liblouis-absent.so.20', "
                        "*stages.SYSTEM_LIBRARIES['braille'][1:]); ")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOURCE_DATE_EPOCH": "1767225600"}
    run = lambda program, *args: subprocess.run([sys.executable, "-c", without_liblouis + program, *args],
                                                capture_output=True, text=True, cwd=ROOT, env=env)
    asked = run("sys.exit(cli.main(sys.argv[1:]))", "build", str(B12), "--out", str(tmp_path / "out"),
                "--format", "braille,html")
    assert asked.returncode == 3, asked.stderr
    assert "liblouis" in asked.stderr and "install it with: apt-get install liblouis-bin liblouis-data" in asked.stderr
    assert "Traceback" not in asked.stderr
    assert (tmp_path / "out" / B12.stem / f"{B12.stem}.html").is_file()
    assert not (tmp_path / "out" / B12.stem / f"{B12.stem}.brf").exists()
    # a build of every format (no --format) leaves the braille out rather than failing
    every = run("print(','.join(cli.parse_formats('')[0]))")
    assert every.returncode == 0 and every.stdout.strip().split(",") == \
        [name for name in stages.STAGE_MODULES if name != "braille"]


@pytest.mark.parametrize("source", [B12, BACK_PAIN], ids=["b12", "back-pain"])
def test_print_the_first_pages_for_a_look(brf_of, capsys, source):
    """The first pages as an embosser would print them, each line with its back-translation beside it."""
    pages = pages_of(brf_of(source))
    with capsys.disabled():                   # into the test log, not captured away
        for number, page in enumerate(pages[:3]):
            print(f"\n---- braille page {number or 'title'} ----")
            for line in page:
                print(f"{line:<40} | {read_back([line]).strip() if line.strip() else ''}")
    assert len(pages) > 3


def test_another_language_gets_its_own_table_named_in_the_report(tmp_path):
    source = tmp_path / "pies.yaml"
    source.write_text("title: Cuide sus pies\nlanguage: es\nbody:\n"
                      "  - p: Mire sus pies todos los días. Llame a la clínica si una herida no se cura.\n",
                      encoding="utf-8")
    report = tmp_path / "report.json"
    result = run_publish("build", str(source), "--format", "braille", "--out", str(tmp_path / "out"),
                         "--report", str(report))
    assert result.returncode == 0, result.stderr
    stage = json.loads(report.read_text())["articles"][0]["stages"][0]
    assert stage["table"] == "es-g2.ctb" and stage["contracted"] is True
    pages = pages_of((tmp_path / "out" / "pies" / "pies.brf").read_bytes())
    body = " ".join(line.strip() for line in body_lines(pages))
    assert printed(louis.back_translate(body, "es-g2.ctb")).count("mire sus pies todos los días") == 1
    title = printed(louis.back_translate(" ".join(line.strip() for line in pages[0]), "es-g2.ctb"))
    # the title page in the article's language, naming the table (the Spanish table reads some of the
    # words back as contractions: "braille" as "sobreaille")
    assert "contracciones" in title and "liblouis es-" in title and "contracted" not in title
