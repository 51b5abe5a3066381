"""The catalogue: output/index.html judged by axe-core in Chromium, output/opds.xml by the OPDS 1.2 RELAX NG
schema, and both checked against the files the manifests list."""
from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import mutagen
import pytest
from lxml import etree, html
from pikepdf import Pdf

from conftest import B12, EPOCH, ROOT, require_tool, run_publish
from pipeline import catalogue, stages
from pipeline.errors import PublishError
from pipeline.theme import load_theme
from test_html import AXE, TAGS, THEMES, browser, open_page  # noqa: F401 (browser is a fixture)

SCHEMA = ROOT / "tests" / "schemas" / "opds" / "opds.rng"
NS = {"atom": "http://www.w3.org/2005/Atom", "dcterms": "http://purl.org/dc/terms/"}
ACQUISITION = "http://opds-spec.org/acquisition"
NEW = "knee-pain"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """An output root with two articles built separately: B12 in every format, then a second one in two."""
    out = tmp_path_factory.mktemp("catalogue") / "output"
    cache = out.parent / "cache"
    built = run_publish("build", str(B12), "--format", ",".join(stages.available()), "--out", str(out),
                        "--cache", str(cache))
    assert built.returncode == 0, built.stderr
    made = run_publish("new", NEW, "--dir", str(out.parent / "source"))
    assert made.returncode == 0, made.stderr
    built = run_publish("build", str(out.parent / "source" / f"{NEW}.yaml"), "--format", "html,pdf",
                        "--out", str(out), "--cache", str(cache))
    assert built.returncode == 0, built.stderr
    return out


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text("utf-8"))


def listed_files(root: Path) -> set[Path]:
    return {(folder / entry["path"]).resolve() for folder in root.iterdir() if (folder / "manifest.json").is_file()
            for entry in manifest(folder)["outputs"]}


def handouts(root: Path) -> list:
    return html.parse(str(root / "index.html")).getroot().xpath("//li[@class='handout']")


def test_each_article_is_listed_with_its_facts_and_its_formats_in_words(root):
    items = handouts(root)
    titles = [item.find(".//h2").text_content() for item in items]
    assert titles == ["Is B12 Good for Lower Back Pain?", "Title of the handout"]      # by title
    b12 = items[0]
    facts = {dt.text_content(): dd.text_content() for dt, dd in zip(b12.iterfind(".//dt"), b12.iterfind(".//dd"))}
    narration = mutagen.File(root / B12.stem / f"{B12.stem}.mp3").info.length
    assert facts == {"Last reviewed": "not yet recorded", "Language": "English", "Reading time": "about 4 minutes",
                     "Narration": f"{round(narration / 60)} minutes"}
    links = {a.text_content(): a.get("href") for a in b12.xpath(".//ul[@class='formats']//a")}
    folder = root / B12.stem
    with Pdf.open(folder / f"{B12.stem}.pdf") as pdf:
        pages = len(pdf.pages)
    pdf_size = round((folder / f"{B12.stem}.pdf").stat().st_size / 1000)
    assert links[f"PDF handout, {pages} pages, {pdf_size} kB"] == f"{B12.stem}/{B12.stem}.pdf"
    m4b = next(text for text in links if text.startswith("Audiobook with chapters, M4B, "))
    assert m4b.startswith(f"Audiobook with chapters, M4B, {round(narration / 60)} minutes, ") and m4b.endswith(" MB")
    assert any(text.startswith("E-book, EPUB 3, ") for text in links)
    assert any(text.startswith("Large-print web page, HTML, ") for text in links)
    # the second article was built without narration or EPUB: only what it has is offered
    second = [a.text_content() for a in items[1].xpath(".//ul[@class='formats']//a")]
    assert [text.split(",")[0] for text in second] == ["Large-print web page", "PDF handout"]
    assert "Narration" not in items[1].text_content()


def test_the_narration_length_and_chapters_in_the_manifest_are_what_a_player_reads(root):
    """The audio stage states each narration file's length and chapter count (the catalogue gives them); ffprobe
    reading the files finds the same."""
    ffprobe = require_tool("ffprobe", "apt-get install ffmpeg")
    entries = {entry["path"]: entry for entry in manifest(root / B12.stem)["outputs"]}
    for suffix in (".mp3", ".m4b"):
        path = root / B12.stem / f"{B12.stem}{suffix}"
        found = json.loads(subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration:chapter=id",
                                           "-of", "json", str(path)], capture_output=True, check=True).stdout)
        assert abs(entries[path.name]["seconds"] - float(found["format"]["duration"])) <= 0.06, path.name
        assert entries[path.name]["chapters"] == len(found["chapters"]) > 5, path.name


def test_every_link_resolves_to_a_file_a_manifest_lists(root):
    page = html.parse(str(root / "index.html")).getroot()
    listed = listed_files(root)
    hrefs = [a.get("href") for a in page.xpath("//a[@href]") if not a.get("href").startswith("#")]
    assert len(hrefs) > 8
    for href in hrefs:
        target = (root / href).resolve()
        assert target in listed or href == catalogue.FEED, f"{href} is not a published file"
    for asset in page.xpath("//link[@href] | //script[@src]"):
        assert (root / (asset.get("href") or asset.get("src"))).is_file()


def test_the_catalogue_is_made_from_the_manifests_alone_and_is_deterministic(root, tmp_path):
    """Article folders built elsewhere (shards) and put side by side give the same catalogue."""
    merged = tmp_path / "merged"
    merged.mkdir()
    for folder in (B12.stem, NEW):
        shutil.copytree(root / folder, merged / folder)
    catalogue.write_catalogue(merged, load_theme(ROOT / "themes" / "default"), int(EPOCH))
    for name in (catalogue.INDEX, catalogue.FEED, "large-print.css", "catalogue.css"):
        assert (merged / name).read_bytes() == (root / name).read_bytes(), name


def test_without_source_date_epoch_the_feed_is_dated_by_its_newest_article(root, tmp_path):
    """Not the clock: the newest review or publication date in the manifests, else the fixed date."""
    theme = load_theme(ROOT / "themes" / "default")
    merged = tmp_path / "merged"
    merged.mkdir()
    for folder in (B12.stem, NEW):
        shutil.copytree(root / folder, merged / folder)
    catalogue.write_catalogue(merged, theme)
    updated = lambda: etree.parse(str(merged / catalogue.FEED)).findtext("atom:updated", namespaces=NS)  # noqa: E731
    assert updated() == "2000-01-01T00:00:00Z"                  # neither article is dated
    for folder, dates in ((B12.stem, {"date_reviewed": "2025-06-01", "date_published": "2024-02-10"}),
                          (NEW, {"date_published": "2025-09-15"})):
        data = manifest(merged / folder)
        data["article"].update(dates)
        (merged / folder / "manifest.json").write_text(json.dumps(data), "utf-8")
    catalogue.write_catalogue(merged, theme)
    assert updated() == "2025-09-15T00:00:00Z"
    first = (merged / catalogue.FEED).read_bytes()
    catalogue.write_catalogue(merged, theme)
    assert (merged / catalogue.FEED).read_bytes() == first


def test_the_feed_is_a_valid_opds_acquisition_feed(root):
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    feed = etree.parse(str(root / catalogue.FEED))
    assert schema.validate(feed), schema.error_log
    # the validator can fail: an entry without its id is refused
    broken = etree.parse(str(root / catalogue.FEED))
    entry_id = broken.find("atom:entry/atom:id", NS)
    entry_id.getparent().remove(entry_id)
    assert not schema.validate(broken)

    entries = feed.findall("atom:entry", NS)
    assert [e.findtext("atom:title", namespaces=NS) for e in entries] == ["Is B12 Good for Lower Back Pain?",
                                                                           "Title of the handout"]
    b12 = entries[0]
    assert b12.findtext("dcterms:language", namespaces=NS) == "en"
    assert b12.findtext("atom:summary", namespaces=NS).startswith("Vitamin B12 supports nerve regeneration")
    assert b12.findtext("atom:id", namespaces=NS) == manifest(root / B12.stem)["article"]["identifier"]
    assert b12.findtext("atom:updated", namespaces=NS) == "2026-01-01T00:00:00Z"      # SOURCE_DATE_EPOCH
    types = {link.get("type") for link in b12.findall("atom:link", NS) if link.get("rel") == ACQUISITION}
    assert types == {"application/epub+zip", "application/pdf", "audio/mp4", "audio/mpeg"}


def media_type(path: Path) -> str:
    """A file's type from its first bytes, as a reading app would sniff it."""
    head = path.read_bytes()[:64]
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04") and head[30:38] == b"mimetype":
        return zipfile.ZipFile(path).read("mimetype").decode()
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg"
    return "unknown"


def test_every_acquisition_link_is_typed_as_its_file_is(root):
    feed = etree.parse(str(root / catalogue.FEED))
    listed = listed_files(root)
    links = [link for link in feed.iterfind("atom:entry/atom:link", NS) if link.get("rel") == ACQUISITION]
    assert len(links) == 7              # six for B12 (two PDFs, EPUB, read-aloud EPUB, M4B, MP3), the PDF of the second
    for link in links:
        target = (root / link.get("href")).resolve()
        assert target in listed
        assert media_type(target) == link.get("type"), link.get("href")
        assert int(link.get("length")) == target.stat().st_size


def test_a_read_aloud_epub_is_offered_as_one(tmp_path):
    """An EPUB whose package gives its pages Media Overlays is described and offered as a read-aloud book."""
    book = tmp_path / "talking.epub"
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
                   'version="1.0"><rootfiles><rootfile full-path="EPUB/package.opf" '
                   'media-type="application/oebps-package+xml"/></rootfiles></container>')
        z.writestr("EPUB/package.opf", '<package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>'
                   '<item id="c1" href="c1.xhtml" media-type="application/xhtml+xml" media-overlay="s1"/>'
                   '<item id="s1" href="c1.smil" media-type="application/smil+xml"/></manifest></package>')
    facts = catalogue.file_facts(book)
    assert facts == {"read_aloud": True}
    assert catalogue.kind_of(book.name, facts) is catalogue.READ_ALOUD
    plain = catalogue.file_facts(ROOT / "tests" / "fixtures" / "missing.epub")
    assert plain == {"read_aloud": False}


@pytest.mark.parametrize("width", [320, 1280])
@pytest.mark.parametrize("theme", THEMES)
def test_axe_finds_no_violation_in_the_catalogue(browser, root, theme, width):  # noqa: F811
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    page = open_page(browser, root / "index.html", width, theme)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    assert page.evaluate("document.documentElement.scrollWidth") <= width      # no sideways scrolling
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p')).fontSize)") >= 24
    page.context.close()
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert violations == [], violations
    assert len(result["passes"]) > 15


def test_a_theme_without_the_catalogue_files_is_told_which_to_copy(root, tmp_path):
    theme_dir = tmp_path / "clinic"
    shutil.copytree(ROOT / "themes" / "default", theme_dir)
    (theme_dir / "css" / "catalogue.css").unlink()
    with pytest.raises(PublishError) as raised:
        catalogue.write_catalogue(root, load_theme(theme_dir), int(EPOCH))
    assert "the theme has no css/catalogue.css" in raised.value.format()
    assert "copy it from themes/default/css/catalogue.css" in raised.value.format()
    (theme_dir / "templates" / "catalogue" / "index.html").unlink()
    with pytest.raises(PublishError) as raised:
        catalogue.write_catalogue(root, load_theme(theme_dir), int(EPOCH))
    assert "the theme has no template `index.html`" in raised.value.format()
