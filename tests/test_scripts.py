"""Every script set correctly: right to left (Arabic), CJK (Chinese), emoji, joiners, voices per language tag,
and phrases in another language, each checked in the real outputs (WeasyPrint, pikepdf, Poppler, Chromium with
axe-core, Ace, espeak-ng)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pikepdf
import pytest

from conftest import ROOT, require_tool, run_publish
from test_epub import epubcheck_jar_5, epubcheck_messages, run_ace
from test_html import AXE, TAGS, browser, open_page  # noqa: F401 (browser: the module's Chromium)

FIXTURES = ROOT / "tests" / "fixtures" / "scripts"
ARABIC = FIXTURES / "b12-arabic.yaml"
CHINESE = FIXTURES / "b12-chinese.yaml"
PHRASES = FIXTURES / "greeting-phrases.yaml"


def build(source: Path, out: Path, formats: str, cwd: Path = ROOT) -> tuple[Path, dict, str]:
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    result = run_publish("build", str(source), "--format", formats, "--out", str(out / "out"),
                         "--cache", str(out / "cache"), "--report", str(report), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return out / "out" / source.stem, json.loads(report.read_text())["articles"][0], result.stderr


@pytest.fixture(scope="module")
def arabic(tmp_path_factory) -> Path:
    folder, _, _ = build(ARABIC, tmp_path_factory.mktemp("arabic"), "pdf,pdf-large,epub,html")
    return folder


@pytest.fixture(scope="module")
def chinese(tmp_path_factory) -> tuple[Path, dict]:
    folder, report, _ = build(CHINESE, tmp_path_factory.mktemp("chinese"), "pdf,html,mp3")
    return folder, report


@pytest.fixture(scope="module")
def phrases(tmp_path_factory) -> tuple[Path, dict]:
    folder, report, _ = build(PHRASES, tmp_path_factory.mktemp("phrases"), "pdf,epub,html,mp3")
    return folder, report


def structure_elements(pdf):
    def walk(element):
        if isinstance(element, pikepdf.Array):
            for kid in element:
                yield from walk(kid)
        elif isinstance(element, pikepdf.Dictionary) and "/S" in element:
            yield element
            yield from walk(element.get("/K"))
    yield from walk(pdf.Root.StructTreeRoot.K)


def boxes_drawn(pdf_path: Path) -> dict[str, int]:
    """How many missing glyphs (boxes) each font draws, read from the content streams. WeasyPrint writes its
    fonts as Type 0 fonts with Identity-H encoding, two bytes a glyph id; a character no font has is drawn
    as glyph 0 (.notdef) or, from Pango, as a glyph id past the end of the font: both show as boxes."""
    import io
    from fontTools.ttLib import TTFont
    boxes: dict[str, int] = {}
    with pikepdf.open(pdf_path) as pdf:
        for page in pdf.pages:
            fonts, glyph_count, current = page.Resources.Font, {}, None
            for name, font in fonts.items():
                descriptor = font.DescendantFonts[0].FontDescriptor
                program = descriptor.get("/FontFile2") or descriptor.get("/FontFile3")
                glyph_count[name] = len(TTFont(io.BytesIO(program.read_bytes())).getGlyphOrder())
            for operands, operator in pikepdf.parse_content_stream(page):
                if operator == pikepdf.Operator("Tf"):
                    current = str(operands[0])
                elif operator in (pikepdf.Operator("Tj"), pikepdf.Operator("TJ")):
                    strings = operands[0] if operator == pikepdf.Operator("TJ") else [operands[0]]
                    for item in strings:
                        if isinstance(item, pikepdf.String):
                            data = bytes(item)
                            ids = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
                            font = str(fonts[current].BaseFont)
                            boxes[font] = boxes.get(font, 0) + sum(1 for g in ids if not 0 < g < glyph_count[current])
    return boxes


def test_the_box_count_sees_a_missing_glyph(tmp_path):
    """The check the Arabic and Chinese PDFs pass can fail: an unassigned character drawn by WeasyPrint."""
    import weasyprint
    weasyprint.HTML(string='<html lang="en"><p>a\u0378b</p>').write_pdf(tmp_path / "box.pdf")
    assert sum(boxes_drawn(tmp_path / "box.pdf").values()) == 1


# -- right to left: Arabic -------------------------------------------------------------------------------

def test_arabic_html_and_epub_documents_are_right_to_left(arabic):
    page = (arabic / "b12-arabic.html").read_text(encoding="utf-8")
    assert re.search(r'<html lang="ar" dir="rtl"', page)
    assert '<span lang="en" dir="ltr">vitamin B12</span>' in page        # the English phrase, isolated
    with zipfile.ZipFile(arabic / "b12-arabic.epub") as epub:
        documents = [n for n in epub.namelist() if n.endswith(".xhtml")]
        assert documents
        for name in documents:
            assert re.search(r'<html [^>]*lang="ar" xml:lang="ar" dir="rtl"', epub.read(name).decode()), name
        opf = next(n for n in epub.namelist() if n.endswith(".opf"))
        assert re.search(r'<spine [^>]*page-progression-direction="rtl"', epub.read(opf).decode())


def word_boxes(pdf: Path) -> list[tuple[float, float, float, str]]:
    """(xMin, xMax, yMin, word) of every word on page 1, from pdftotext -bbox."""
    html = subprocess.run(["pdftotext", "-f", "1", "-l", "1", "-bbox", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    return [(float(a), float(c), float(b), w) for a, b, c, _, w in
            re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', html)]


@pytest.mark.parametrize("name", ["b12-arabic.pdf", "b12-arabic.large-print.pdf"])
def test_arabic_pdf_lines_end_at_the_right_margin(arabic, name):
    require_tool("pdftotext", "apt-get install poppler-utils")
    words = word_boxes(arabic / name)
    with pikepdf.open(arabic / name) as pdf:
        width = float(pdf.pages[0].MediaBox[2])
    right_margin = max(x_max for _, x_max, _, _ in words)
    assert right_margin > width * 0.85
    # each Arabic line (grouped by its baseline) starts at the right margin: ragged on the left
    lines: dict[int, list] = {}
    for x_min, x_max, y, word in words:
        if re.search(r"[\u0600-\u06ff]", word):
            lines.setdefault(round(y), []).append((x_min, x_max))
    assert len(lines) >= 8
    # the title, subtitle, paragraph, heading and caption lines start at the right margin (list items and table
    # cells start further in, after their markers and padding); their left ends are ragged
    at_margin = [line for line in lines.values() if abs(max(x for _, x in line) - right_margin) < 2]
    assert len(at_margin) >= 6, sorted(max(x for _, x in line) for line in lines.values())
    left_ends = sorted(min(x for x, _ in line) for line in at_margin)
    assert left_ends[-1] - left_ends[0] > width * 0.3


def test_arabic_pdf_list_markers_and_table_columns_are_mirrored(arabic):
    # (pdftotext -bbox gives each word's letters in visual order: an Arabic word comes out reversed)
    words = word_boxes(arabic / "b12-arabic.pdf")
    markers = [(x_min, y) for x_min, _, y, word in words if re.fullmatch(r"\.[123]|[123]\.", word) and y < 500]
    assert len(markers) == 3
    for x_min, y in markers:                                        # each number stands right of its item
        item = [x_max for _, x_max, y_word, word in words if abs(y_word - y) < 1 and re.search("[\u0600-\u06ff]", word)]
        assert item and max(item) < x_min
    source = next(x for x, _, _, w in words if w[::-1] == "المصدر")    # the first column's header
    examples = next(x for x, _, _, w in words if w[::-1] == "أمثلة")   # the second column's
    assert source > examples                                       # columns run from right to left


@pytest.mark.parametrize("name", ["b12-arabic.pdf", "b12-arabic.large-print.pdf"])
def test_arabic_pdf_draws_no_missing_glyph(arabic, name):
    boxes = boxes_drawn(arabic / name)
    assert any("Noto-Naskh-Arabic" in font for font in boxes) and sum(boxes.values()) == 0, boxes


def test_arabic_pdf_structure_tree_is_in_logical_order(arabic):
    """The structure tree reads title, paragraph, heading, list, table: the source's order, whatever the
    direction of the lines on the page."""
    with pikepdf.open(arabic / "b12-arabic.pdf") as pdf:
        tags = [str(e.S) for e in structure_elements(pdf) if str(e.S) in ("/H1", "/H2", "/P", "/L", "/Table")]
        assert pdf.Root.Lang == "ar"
    assert tags.index("/H1") < tags.index("/H2") < tags.index("/L") < tags.index("/Table")
    assert "/P" in tags[tags.index("/H1"):tags.index("/H2")]           # the paragraph before the section


def test_arabic_and_chinese_pdfs_are_the_same_bytes_on_every_build(arabic, chinese, tmp_path):
    again, _, _ = build(ARABIC, tmp_path / "arabic", "pdf")
    assert (again / "b12-arabic.pdf").read_bytes() == (arabic / "b12-arabic.pdf").read_bytes()
    again, _, _ = build(CHINESE, tmp_path / "chinese", "pdf")
    assert (again / "b12-chinese.pdf").read_bytes() == (chinese[0] / "b12-chinese.pdf").read_bytes()


def axe_violations(browser, page_file: Path) -> list:
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    page = open_page(browser, page_file, 1280)
    direction = page.evaluate("getComputedStyle(document.querySelector('main p')).direction")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    page.context.close()
    assert len(result["passes"]) > 20                      # axe really ran its rules
    return direction, [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]


def test_arabic_page_has_no_axe_violation(browser, arabic):
    assert axe_violations(browser, arabic / "b12-arabic.html") == ("rtl", [])


def test_chinese_page_has_no_axe_violation(browser, chinese):
    assert axe_violations(browser, chinese[0] / "b12-chinese.html") == ("ltr", [])


def test_arabic_epub_passes_epubcheck_and_ace(arabic, tmp_path):
    from test_epub import ace_failures
    _, messages = epubcheck_messages(epubcheck_jar_5(), arabic / "b12-arabic.epub", tmp_path)
    assert [m for m in messages if m[0] in ("ERROR", "FATAL", "WARNING")] == []
    report = run_ace(arabic / "b12-arabic.epub", tmp_path)
    assert ace_failures(report) == []


# -- CJK and emoji: Chinese -----------------------------------------------------------------------------------

def test_chinese_pdf_embeds_a_cjk_font_and_every_glyph(chinese, tmp_path):
    folder, _ = chinese
    pdf_path = folder / "b12-chinese.pdf"
    with pikepdf.open(pdf_path) as pdf:
        fonts = {str(font.BaseFont) for page in pdf.pages for font in page.Resources.Font.values()}
    assert any("Noto-Sans-CJK-SC" in font for font in fonts), fonts
    assert any("Noto-Color-Emoji" in font for font in fonts), fonts         # the heading's emoji
    # the text comes back out whole: every character was drawn with a glyph that maps back to it
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
    source = CHINESE.read_text(encoding="utf-8")
    for sentence in ("维生素B12帮助神经正常工作。", "鱼、鸡蛋和牛奶含有维生素B12。", "食物来源"):
        assert sentence in text.replace("\n", "") and sentence in source
    assert "\ufffd" not in text
    boxes = boxes_drawn(pdf_path)
    assert any("Noto-Sans-CJK-SC" in font for font in boxes) and sum(boxes.values()) == 0, boxes
    require_tool("pdftoppm", "apt-get install poppler-utils")
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(pdf_path), str(tmp_path / "page")],
                   check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 5000


def test_chinese_narration_speaks_with_the_mandarin_voice(chinese):
    _, report = chinese
    audio = next(stage for stage in report["stages"] if stage["format"] == "audio")
    assert audio["status"] == "built"
    assert audio["voice"] == {"engine": "system", "name": "cmn"}


def test_a_character_no_font_has_is_a_located_build_error(tmp_path):
    source = tmp_path / "tifinagh.yaml"
    source.write_text('title: A title\nlanguage: en\nbody:\n  - p: "The flag shows the letter \u2d63 in red."\n',
                      encoding="utf-8")
    result = run_publish("build", str(source), "--format", "pdf,html", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == 1
    column = source.read_text(encoding="utf-8").splitlines()[3].index("\u2d63") + 1
    assert f"{source}:4:{column}: error: the PDF has no glyph for U+2D63 TIFINAGH LETTER YAZ" in result.stderr
    assert "Atkinson Hyperlegible" in result.stderr and "how to fix:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "tifinagh").exists()                 # nothing published, not even the page


# -- joiners -----------------------------------------------------------------------------------------------

def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    source = tmp_path / "joiners.yaml"
    source.write_text(f'title: A title\nlanguage: en\nbody:\n  - p: "{text}"\n', encoding="utf-8")
    return run_publish("check", str(source))


@pytest.mark.parametrize("text", [
    "Persian: [\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645](lang:fa).",       # می‌خواهم, ZWNJ
    "Hindi: [\u0915\u094d\u200d\u0937](lang:hi).",                                  # क्‍ष, ZWJ after virama
    "A health worker: \U0001F469\u200d\u2695\ufe0f.",                               # 👩‍⚕️
    "A family: \U0001F468\u200d\U0001F469\u200d\U0001F467.",                        # 👨‍👩‍👧
])
def test_joiners_a_script_or_emoji_sequence_needs_are_kept(tmp_path, text):
    result = check(tmp_path, text)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("text, joiner", [("pass\u200cword", "200C"), ("pass\u200dword", "200D"),
                                          ("\u043f\u0440\u0438\u200d\u0432\u0435\u0442", "200D")])
def test_joiners_between_letters_that_do_not_join_are_refused(tmp_path, text, joiner):
    result = check(tmp_path, text)
    assert result.returncode == 1
    assert f"joiners.yaml:4:8: error: `body[1].p` contains an invisible character between" in result.stderr
    assert f"(U+{joiner} " in result.stderr and "how to fix: delete it" in result.stderr


# -- voices -----------------------------------------------------------------------------------------------------

def test_a_language_no_voice_speaks_builds_the_rest_and_reports_the_narration_skipped(tmp_path):
    # Yoruba: CLDR knows it, espeak-ng has no voice for it. Its words come from a catalogue the clinic's theme
    # would have; here the English one stands in for it (an article needs its language's catalogue).
    project = tmp_path / "project"
    shutil.copytree(ROOT / "themes", project / "themes")
    catalogue = project / "themes" / "default" / "locale" / "yo" / "LC_MESSAGES" / "messages.po"
    catalogue.parent.mkdir(parents=True)
    english = (ROOT / "themes" / "default" / "locale" / "en" / "LC_MESSAGES" / "messages.po").read_text("utf-8")
    catalogue.write_text(english.replace('"Language: en\\n"', '"Language: yo\\n"'), encoding="utf-8")
    source = tmp_path / "yoruba.yaml"
    source.write_text("title: \"E kaaro\"\nlanguage: yo\nbody:\n  - p: \"E kaaro. Se daadaa ni?\"\n", encoding="utf-8")
    folder, report, stderr = build(source, tmp_path, "pdf,epub,html,audio", cwd=project)
    assert report["published"] is True
    status = {stage["format"]: stage["status"] for stage in report["stages"]}
    assert status == {"pdf": "built", "epub": "built", "html": "built", "audio": "skipped"}
    audio = next(stage for stage in report["stages"] if stage["format"] == "audio")
    assert "no voice speaks the language `yo`" in audio["reason"]
    assert "warning: no voice speaks the language `yo`" in stderr
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["audio"]["status"] == "skipped"
    assert {o["format"] for o in manifest["outputs"]} == {"pdf", "epub", "html"}
    assert "<audio" not in (folder / "yoruba.html").read_text()            # no player for a missing file
    catalogue = (folder.parent / "index.html").read_text()
    assert "yoruba.mp3" not in catalogue and "yoruba.m4b" not in catalogue


def test_language_tags_map_to_the_voices_espeak_ng_reports():
    from pipeline.stages.audio.tools import espeak_voice_for
    assert espeak_voice_for("zh") == "cmn"                 # Mandarin (zh 5) before Cantonese (zh 8)
    assert espeak_voice_for("zh-Hant-TW") == "cmn"         # shorter tags
    assert espeak_voice_for("es-MX") == "es-419"           # CLDR's parent locale, Latin American Spanish
    assert espeak_voice_for("yue") == "yue"
    assert espeak_voice_for("tlh") is None


# -- phrases in another language -----------------------------------------------------------------------------

def test_a_phrase_is_marked_with_its_language_in_html_epub_and_pdf(phrases):
    folder, _ = phrases
    page = (folder / "greeting-phrases.html").read_text(encoding="utf-8")
    assert '<span lang="es" dir="ltr">buenos días</span>' in page
    assert '<span lang="fa" dir="rtl">\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645</span>' in page
    with zipfile.ZipFile(folder / "greeting-phrases.epub") as epub:
        content = "".join(epub.read(n).decode() for n in epub.namelist() if n.endswith(".xhtml"))
    assert '<span lang="es" xml:lang="es" dir="ltr">buenos días</span>' in content
    with pikepdf.open(folder / "greeting-phrases.pdf") as pdf:
        languages = [str(e.Lang) for e in structure_elements(pdf) if "/Lang" in e]
        assert pdf.Root.Lang == "en"
    assert languages == ["es", "fa"]
    boxes = boxes_drawn(folder / "greeting-phrases.pdf")     # the emoji heading and the Persian word are drawn
    assert any("Noto-Color-Emoji" in f for f in boxes) and any("Naskh" in f for f in boxes)
    assert sum(boxes.values()) == 0, boxes


def test_a_phrase_is_spoken_with_its_languages_voice(phrases, tmp_path):
    folder, report = phrases
    audio = next(stage for stage in report["stages"] if stage["format"] == "audio")
    assert audio["phrases"] == [{"utterance": "intro-p1-s1", "languages": ["es"], "voices": ["es"]},
                                {"utterance": "intro-p1-s2", "languages": ["fa"], "voices": ["fa"]}]
    # The voice switch is real: the same sentence without the marking is different speech.
    plain = tmp_path / "plain.yaml"
    plain.write_text(PHRASES.read_text(encoding="utf-8").replace("[buenos días](lang:es)", "buenos días"),
                     encoding="utf-8")
    from pipeline.stages.audio.speech_wav import speech_seconds
    marked_wav, plain_wav = tmp_path / "marked.wav", tmp_path / "plain.wav"
    for text, wav in (("<speak>Greet Spanish speakers with <voice xml:lang=\"es\">buenos días</voice>, "
                       "then ask how they are.</speak>", marked_wav),
                      ("Greet Spanish speakers with buenos días, then ask how they are.", plain_wav)):
        subprocess.run(["espeak-ng", "-m", "-s", "165", "-w", str(wav), text], check=True)
    assert marked_wav.read_bytes() != plain_wav.read_bytes()
    assert speech_seconds(marked_wav) > 2


def test_a_phrase_with_an_unknown_language_is_a_located_error(tmp_path):
    source = tmp_path / "bad-phrase.yaml"
    source.write_text("title: A title\nlanguage: en\nbody:\n  - p: Say [hello](lang:qqq) to them.\n",
                      encoding="utf-8")
    result = run_publish("check", str(source))
    assert result.returncode == 1
    assert "bad-phrase.yaml:4:8: error: `lang:qqq` names no language known to CLDR or ISO 639" in result.stderr
    source.write_text("title: A title\nlanguage: en\nbody:\n  - p: Say [hello](lang:e_s) to them.\n",
                      encoding="utf-8")
    result = run_publish("check", str(source))
    assert result.returncode == 1 and "is not a language tag" in result.stderr
