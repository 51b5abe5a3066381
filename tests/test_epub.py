"""The EPUB, judged by EPUBCheck 4.2.6 and 5.x and by Ace by DAISY in headless Chromium."""
from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from conftest import B12, ROOT, assert_in_order, require_tool, run_publish, seed_sentences
from pipeline.source import load_article

EPUBCHECK_4 = Path("/usr/share/java/epubcheck.jar")       # Debian's epubcheck package
ACE = ROOT / "node_modules" / ".bin" / "ace-cli"
CHROMIUM_WRAPPER = ROOT / "tests" / "tools" / "chromium-headless"
XHTML = {"x": "http://www.w3.org/1999/xhtml", "epub": "http://www.idpf.org/2007/ops"}
A11Y_PROPERTIES = ["schema:accessMode", "schema:accessModeSufficient", "schema:accessibilityFeature",
                   "schema:accessibilityHazard", "schema:accessibilitySummary"]


@pytest.fixture(scope="module")
def epub_file(build_b12) -> Path:
    return build_b12("epub") / f"{B12.stem}.epub"


def epubcheck_messages(jar: Path, epub: Path, tmp_path: Path) -> tuple[str, list]:
    require_tool("java", "apt-get install default-jre-headless")
    report = tmp_path / f"{jar.parent.name}.json"
    subprocess.run(["java", "-jar", str(jar), str(epub), "--json", str(report)], capture_output=True, timeout=300)
    data = json.loads(report.read_text())
    return data["checker"]["checkerVersion"], [(m["severity"], m["ID"], m["message"]) for m in data["messages"]]


def test_epubcheck_4_finds_nothing(epub_file, tmp_path):
    if not EPUBCHECK_4.is_file():
        pytest.fail("EPUBCheck 4.2.6 is not installed: apt-get install epubcheck")
    version, messages = epubcheck_messages(EPUBCHECK_4, epub_file, tmp_path)
    assert version.startswith("4.2")
    assert messages == []


def test_epubcheck_5_finds_nothing(epub_file, tmp_path):
    try:
        import epubcheck
    except ImportError:
        pytest.fail("EPUBCheck 5 is not installed: pip install -e '.[test]'")
    version, messages = epubcheck_messages(Path(epubcheck.__file__).parent / "epubcheck.jar", epub_file, tmp_path)
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


@pytest.fixture(scope="module")
def ace_report(epub_file, tmp_path_factory) -> dict:
    if not ACE.is_file():
        pytest.fail("Ace by DAISY is not installed: run `npm ci` (see setup.sh)")
    require_tool("chromium", "apt-get install chromium")
    out = tmp_path_factory.mktemp("ace")
    env = {**os.environ, "PUPPETEER_EXECUTABLE_PATH": str(CHROMIUM_WRAPPER), "HOME": str(out)}
    result = subprocess.run([str(ACE), "-f", "-s", "-o", str(out / "report"), str(epub_file)],
                            capture_output=True, text=True, env=env, timeout=300)
    report = out / "report" / "report.json"
    assert report.is_file(), f"Ace did not run:\n{result.stdout}\n{result.stderr}"
    return json.loads(report.read_text())


def test_ace_finds_no_violation(ace_report):
    failures = [(test["earl:test"]["dct:title"], test["earl:test"]["earl:impact"], doc["earl:testSubject"]["url"])
                for doc in ace_report["assertions"] for test in doc.get("assertions", [])
                if test["earl:result"]["earl:outcome"] == "fail"]
    assert failures == []
    assert len(ace_report["assertions"]) >= 10, "Ace checked fewer documents than the book has"


def test_ace_sees_complete_accessibility_metadata(ace_report):
    metadata = ace_report["a11y-metadata"]
    for prop in A11Y_PROPERTIES + ["dcterms:conformsTo", "a11y:certifiedBy"]:
        assert prop in metadata["present"], prop
    assert metadata["empty"] == []


def read_book(epub: Path) -> tuple[etree._Element, dict[str, etree._Element], list[str]]:
    with zipfile.ZipFile(epub) as book:
        opf = etree.fromstring(book.read("EPUB/content.opf"))
        ns = {"opf": "http://www.idpf.org/2007/opf"}
        manifest = {i.get("id"): i.get("href") for i in opf.findall(".//opf:manifest/opf:item", ns)}
        spine = [manifest[i.get("idref")] for i in opf.findall(".//opf:spine/opf:itemref", ns)]
        docs = {href: etree.fromstring(book.read(f"EPUB/{href}")) for href in manifest.values() if href.endswith(".xhtml")}
    return opf, docs, spine


def test_package_metadata(epub_file):
    opf, _, _ = read_book(epub_file)
    meta = {}
    for element in opf.iter("{http://www.idpf.org/2007/opf}meta"):
        meta.setdefault(element.get("property"), []).append(element.text)
    dc = lambda name: [e.text for e in opf.iter(f"{{http://purl.org/dc/elements/1.1/}}{name}")]
    assert meta["schema:accessMode"] == ["textual"] and meta["schema:accessModeSufficient"] == ["textual"]
    assert {"structuralNavigation", "tableOfContents", "readingOrder", "displayTransformability"} <= set(
        meta["schema:accessibilityFeature"])
    assert meta["schema:accessibilityHazard"] == ["none"]
    assert meta["dcterms:conformsTo"] == ["EPUB Accessibility 1.1 - WCAG 2.2 Level AA"]
    assert meta["a11y:certifiedBy"] == ["Your Clinic Name"]
    assert meta["dcterms:modified"] == ["2026-01-01T00:00:00Z"]                  # from SOURCE_DATE_EPOCH
    assert dc("title") == ["Is B12 Good for Lower Back Pain?"] and dc("language") == ["en"]
    assert dc("identifier") == [load_article(B12).metadata.identifier]
    assert dc("publisher") == ["Your Clinic Name"] and "sciatica" in dc("subject") and dc("description")
    assert opf.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"


def test_every_sentence_is_in_the_spine_in_order_and_every_document_has_a_language(epub_file):
    _, docs, spine = read_book(epub_file)
    text = []
    for href in spine:
        root = docs[href]
        assert root.get("lang") == "en" and root.get("{http://www.w3.org/XML/1998/namespace}lang") == "en", href
        if href not in ("nav.xhtml", "cover.xhtml"):
            text.append("".join(root.find("x:body", XHTML).itertext()))
    assert_in_order(seed_sentences(), " ".join(text))


def test_navigation_matches_the_headings(epub_file):
    _, docs, _ = read_book(epub_file)
    nav = docs["nav.xhtml"]
    toc = nav.find(".//x:nav[@epub:type='toc']", XHTML)
    assert toc.get("role") == "doc-toc"
    links = toc.findall(".//x:a", XHTML)
    article = load_article(B12)
    assert [a.text for a in links] == [article.title.text] + [e.text for e in article.outline(max_level=3)]
    for a in links:                                   # every entry points at an element that exists
        href, _, fragment = a.get("href").partition("#")
        assert docs[href].find(f".//*[@id='{fragment}']") is not None, a.get("href")
    landmarks = [a.get("{http://www.idpf.org/2007/ops}type")
                 for a in nav.find(".//x:nav[@epub:type='landmarks']", XHTML).findall(".//x:a", XHTML)]
    assert {"toc", "bodymatter", "cover"} <= set(landmarks)


def test_semantics_of_the_content(epub_file):
    _, docs, _ = read_book(epub_file)
    every = [element for root in docs.values() for element in root.iter()]
    with_type = [e for e in every if e.get("{http://www.idpf.org/2007/ops}type")
                 and e.tag != "{http://www.w3.org/1999/xhtml}a" and e.tag != "{http://www.w3.org/1999/xhtml}nav"]
    assert with_type and all(e.get("role") for e in with_type), "epub:type without its ARIA role"
    tables = [e for e in every if e.tag == "{http://www.w3.org/1999/xhtml}table"]
    assert len(tables) == 1
    assert tables[0].find("x:caption", XHTML) is not None
    assert len(tables[0].findall(".//x:th[@scope='col']", XHTML)) == 3
    assert len(tables[0].findall(".//x:th[@scope='row']", XHTML)) == 4
    assert sum(1 for e in every if e.tag == "{http://www.w3.org/1999/xhtml}abbr" and e.get("title")) >= 5
    assert any(e.get("role") == "doc-notice" for e in every)     # the disclaimer


def test_zip_layout_and_byte_identical_rebuild(epub_file, tmp_path):
    with zipfile.ZipFile(epub_file) as book:
        first = book.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert book.read("mimetype") == b"application/epub+zip"
        assert len({info.date_time for info in book.infolist()}) == 1
    result = run_publish("build", str(B12), "--format", "epub", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / B12.stem / epub_file.name).read_bytes() == epub_file.read_bytes()
