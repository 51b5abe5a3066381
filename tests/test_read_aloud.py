"""The read-aloud EPUB (EPUB 3 Media Overlays): validators, every SMIL clip against the text and the captions,
reproducibility, and the build's dependency of the read-aloud stage on the narration."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from lxml import etree

from conftest import B12, ROOT, run_publish
from test_epub import EPUBCHECK_4, NS, ace_failures, epubcheck_jar_5, epubcheck_messages, package_meta, run_ace
from test_build import make_project

BACK_PAIN = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
SMIL = "{http://www.w3.org/ns/SMIL}"
XHTML = "{http://www.w3.org/1999/xhtml}"
CLOCK = re.compile(r"(\d+):(\d\d):(\d\d)\.(\d\d\d)")
VTT_TIME = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)")


def build(source: Path, out: Path, formats: str, *extra: str, cwd: Path = ROOT) -> dict:
    """Build for real and return the --report's stages of the article by format (with their status)."""
    report = out.parent / f"{out.name}-report.json"
    result = run_publish("build", str(source), "--format", formats, "--out", str(out), "--report", str(report),
                         *extra, cwd=cwd)
    assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
    return {stage["format"]: stage for stage in json.loads(report.read_text())["articles"][0]["stages"]}


@pytest.fixture(scope="module", params=[B12, BACK_PAIN], ids=["b12", "back-pain"])
def book(request, tmp_path_factory) -> Path:
    """The output folder of `--format read-aloud` alone: the narration is made with it."""
    out = tmp_path_factory.mktemp("read-aloud")
    stages = build(request.param, out, "read-aloud")
    assert {name: stage["status"] for name, stage in stages.items()} == {"audio": "built", "read-aloud": "built"}
    return out / request.param.stem


def epub_of(folder: Path) -> Path:
    return folder / f"{folder.name}.read-aloud.epub"


def ms(match: tuple[str, ...]) -> int:
    h, m, s, milli = (int(part) for part in match)
    return ((h * 60 + m) * 60 + s) * 1000 + milli


class Package:
    """The read-aloud EPUB read back: package document, content documents, overlays, in spine order."""

    def __init__(self, path: Path):
        with zipfile.ZipFile(path) as z:
            self.zip_names = z.namelist()
            self.opf = etree.fromstring(z.read("EPUB/content.opf"))
            items = {i.get("id"): i for i in self.opf.findall(".//opf:manifest/opf:item", NS)}
            self.items = items
            self.spine = [items[ref.get("idref")] for ref in self.opf.findall(".//opf:spine/opf:itemref", NS)]
            self.documents = {i.get("href"): etree.fromstring(z.read(f"EPUB/{i.get('href')}")) for i in self.spine}
            self.overlays = {i.get("href"): etree.fromstring(z.read(f"EPUB/{items[i.get('media-overlay')].get('href')}"))
                             for i in self.spine if i.get("media-overlay")}
            self.files = {name: z.read(name) for name in z.namelist()}

    def pars(self) -> list[tuple[str, str, int, int, str]]:
        """(document, element id, clipBegin ms, clipEnd ms, audio src) of every par, in spine order."""
        found = []
        for document, smil in self.overlays.items():
            for par in smil.iter(f"{SMIL}par"):
                text, audio = par.find(f"{SMIL}text"), par.find(f"{SMIL}audio")
                href, _, element = text.get("src").partition("#")
                assert href == document, f"a par of {document}'s overlay points into {href}"
                found.append((document, element, ms(CLOCK.fullmatch(audio.get("clipBegin")).groups()),
                              ms(CLOCK.fullmatch(audio.get("clipEnd")).groups()), audio.get("src")))
        return found

    def elements(self) -> dict[str, tuple[str, int, etree._Element]]:
        """Every element with an id: its document, its position in reading order, the element."""
        found, n = {}, 0
        for document, root in self.documents.items():
            for element in root.iter():
                if element.get("id"):
                    assert element.get("id") not in found, f"id {element.get('id')} twice"
                    found[element.get("id")] = (document, n, element)
                    n += 1
        return found


def vtt_cues(path: Path) -> dict[str, tuple[int, int]]:
    cues = {}
    for block in path.read_text(encoding="utf-8").split("\n\n")[1:]:
        lines = block.splitlines()
        times = VTT_TIME.fullmatch(lines[1]).groups()
        cues[lines[0]] = (ms(times[:4]), ms(times[4:]))
    return cues


def test_epubcheck_4_finds_nothing(book, tmp_path):
    version, messages = epubcheck_messages(EPUBCHECK_4, epub_of(book), tmp_path)
    assert version.startswith("4.2.6")
    assert messages == []


def test_epubcheck_5_finds_nothing(book, tmp_path):
    version, messages = epubcheck_messages(epubcheck_jar_5(), epub_of(book), tmp_path)
    assert version.startswith("5.")
    assert messages == []


def test_epubcheck_judges_the_overlays(book, tmp_path):
    """EPUBCheck reads the SMIL files: a clip pointing at an id the document lacks is an error."""
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(epub_of(book)) as original, zipfile.ZipFile(broken, "w") as out:
        for info in original.infolist():
            data = original.read(info)
            if info.filename.endswith("intro.smil"):
                data = data.replace(b'.xhtml#title"', b'.xhtml#no-such-element"', 1)
                assert b"no-such-element" in data
            out.writestr(info, data)
    _, messages = epubcheck_messages(epubcheck_jar_5(), broken, tmp_path)
    assert any(severity in ("ERROR", "FATAL") for severity, _, _ in messages), messages


def test_ace_finds_no_violation(book, tmp_path):
    report = run_ace(epub_of(book), tmp_path)
    assert ace_failures(report) == []
    assert report["earl:result"]["earl:outcome"] == "pass"


def test_every_clip_points_at_an_element_and_every_sentence_has_one_in_reading_order(book):
    package = Package(epub_of(book))
    elements = package.elements()
    pars = package.pars()
    for document, element, _, _, _ in pars:
        assert element in elements, f"{document}#{element} does not exist"
        assert elements[element][0] == document
    targets = [element for _, element, _, _, _ in pars]
    assert len(targets) == len(set(targets)), "an element has more than one par"
    positions = [elements[element][1] for element in targets]
    assert positions == sorted(positions), "the clips do not follow the reading order"
    sentences = [i for i, (_, _, e) in elements.items() if e.tag == f"{XHTML}span" and e.get("class") == "s"]
    headings = [i for i, (d, _, e) in elements.items() if re.fullmatch(f"{re.escape(XHTML)}h[1-6]", e.tag)
                and d in package.overlays]          # the article's, not the navigation document's own
    assert sentences and headings
    assert set(sentences) <= set(targets), f"sentences no clip reads: {set(sentences) - set(targets)}"
    assert set(headings) <= set(targets), f"headings no clip reads: {set(headings) - set(targets)}"
    # each clip highlights words, never a whole section or paragraph
    assert {elements[t][2].tag for t in targets} <= {f"{XHTML}{tag}" for tag in
                                                        ("span", "h1", "h2", "h3", "h4", "p", "strong", "caption", "li")}
    assert not any(elements[t][2].tag == f"{XHTML}p" and elements[t][2].get("class") != "subtitle" for t in targets)


def test_clip_times_are_the_timings_and_the_captions_to_the_millisecond(book):
    package = Package(epub_of(book))
    timings = json.loads((book / f"{book.name}.timings.json").read_text())
    cues = vtt_cues(book / f"{book.name}.vtt")
    elements = package.elements()
    pars = package.pars()
    assert {src for *_, src in pars} == {f"audio/{timings['audio']}"}
    # the utterances read by each par: consecutive ones with the same target, a heading through its "-h" element
    by_element: dict[str, list[dict]] = {}
    previous = None
    for utterance in timings["utterances"]:
        target = utterance["target"]
        element = f"{target}-h" if f"{target}-h" in elements else target
        if element in elements:
            if previous != target:
                assert element not in by_element, f"{element} is read twice, apart"
                by_element[element] = []
            by_element[element].append(utterance)
        previous = target if element in elements else None
    assert [element for _, element, *_ in pars] == list(by_element)
    for _, element, begin, end, _ in pars:
        first, last = by_element[element][0], by_element[element][-1]
        assert (begin, end) == (first["start_ms"], last["end_ms"]), element
        assert (begin, end) == (cues[first["id"]][0], cues[last["id"]][1]), element
        assert end > begin
    # a clip ends before the next begins: the highlight never jumps back
    for before, after in zip(pars, pars[1:]):
        assert before[3] <= after[2]


def test_package_metadata_of_a_read_aloud_book(book):
    package = Package(epub_of(book))
    meta = package_meta(package.opf)
    timings = json.loads((book / f"{book.name}.timings.json").read_text())
    # every content document has an overlay, with its duration the sum of its clips, and the total their sum
    contents = [item for item in package.spine if item.get("href") not in ("cover.xhtml", "nav.xhtml")]
    assert all(item.get("media-overlay") for item in contents)
    durations = {}
    for element in package.opf.iter(f"{{{NS['opf']}}}meta"):
        if element.get("property") == "media:duration":
            durations[element.get("refines")] = ms(CLOCK.fullmatch(element.text).groups())
    pars = package.pars()
    for item in contents:
        own = sum(end - begin for document, _, begin, end, _ in pars if document == item.get("href"))
        assert durations[f"#{item.get('media-overlay')}"] == own
    assert durations[None] == sum(v for k, v in durations.items() if k is not None)
    assert meta["media:narrator"][0].startswith(timings["narrator"]["voice"])
    assert meta["schema:accessMode"] == ["textual", "auditory"]
    assert {"textual", "auditory"} <= set(meta["schema:accessModeSufficient"])
    assert "synchronizedAudioText" in meta["schema:accessibilityFeature"]
    assert "narrated by a synthetic voice, synchronized with the text" in meta["schema:accessibilitySummary"][0]
    # its own identifier: another publication than the text-only EPUB, which has the article's
    from pipeline.source import load_article
    source = B12 if book.name == B12.stem else BACK_PAIN
    identifier = package.opf.find(".//{http://purl.org/dc/elements/1.1/}identifier").text
    assert identifier.startswith("urn:uuid:") and identifier != load_article(source, source.name).metadata.identifier
    # the narration itself, as published beside it, uncompressed, a core media type
    audio = package.items["narration"]
    assert audio.get("media-type") == {".mp3": "audio/mpeg", ".m4b": "audio/mp4"}[Path(timings["audio"]).suffix]
    assert package.files[f"EPUB/{audio.get('href')}"] == (book / timings["audio"]).read_bytes()
    with zipfile.ZipFile(epub_of(book)) as z:
        assert z.getinfo(f"EPUB/{audio.get('href')}").compress_type == zipfile.ZIP_STORED


def test_the_active_sentence_is_marked_by_more_than_colour_with_aaa_contrast(book):
    package = Package(epub_of(book))
    active = package_meta(package.opf)["media:active-class"][0]
    css = b"".join(data for name, data in package.files.items() if name.endswith(".css")).decode()
    rule = re.search(r"\." + re.escape(active) + r"\s*\{([^}]*)\}", css)
    assert rule, f"no style sheet of the book draws .{active}"
    declarations = dict(d.strip().split(":", 1) for d in rule.group(1).split(";") if d.strip())
    declarations = {k.strip(): v.strip() for k, v in declarations.items()}
    assert "outline" in declarations and "underline" in declarations["text-decoration"]

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    fore, back = luminance(declarations["color"]), luminance(declarations["background-color"])
    assert (max(fore, back) + 0.05) / (min(fore, back) + 0.05) >= 7
    for document in package.overlays:        # every document with an overlay links the sheet that draws it
        sheets = [link.get("href") for link in package.documents[document].iter(f"{XHTML}link")]
        assert "css/read-aloud.css" in sheets


def test_rebuilt_byte_for_byte_with_the_date_from_source_date_epoch(book, tmp_path):
    source = B12 if book.name == B12.stem else BACK_PAIN
    # in this process, one stage after the other (the first build ran them in worker processes)
    stages = build(source, tmp_path, "read-aloud", "--jobs", "1")
    assert statuses(stages) == {"audio": "built", "read-aloud": "built"}
    assert (tmp_path / book.name / epub_of(book).name).read_bytes() == epub_of(book).read_bytes()
    with zipfile.ZipFile(epub_of(book)) as z:
        infos = z.infolist()
        assert infos[0].filename == "mimetype" and infos[0].compress_type == zipfile.ZIP_STORED
        assert {info.date_time for info in infos} == {(2026, 1, 1, 0, 0, 0)}


def test_the_text_only_epub_has_no_narration_and_builds_without_it(tmp_path):
    stages = build(B12, tmp_path / "text", "epub")
    assert list(stages) == ["epub"]
    folder = tmp_path / "text" / B12.stem
    assert sorted(p.name for p in folder.iterdir()) == [f"{B12.stem}.epub", "manifest.json"]
    # the same bytes as the one a build with the read-aloud EPUB makes beside it
    build(B12, tmp_path / "both", "epub,read-aloud")
    both = tmp_path / "both" / B12.stem
    assert (both / f"{B12.stem}.epub").read_bytes() == (folder / f"{B12.stem}.epub").read_bytes()
    with zipfile.ZipFile(folder / f"{B12.stem}.epub") as z:
        assert not [n for n in z.namelist() if n.endswith((".smil", ".mp3", ".m4b", "read-aloud.css"))]
        assert b'class="s"' not in b"".join(z.read(n) for n in z.namelist() if n.endswith(".xhtml"))


def statuses(stages: dict) -> dict[str, str]:
    return {name: stage["status"] for name, stage in stages.items()}


def test_the_read_aloud_epub_is_rebuilt_when_the_narration_changes_and_only_then(tmp_path):
    project = make_project(tmp_path)
    source, out = project / "source" / B12.name, project / "output"
    lexicon = project / "themes" / "default" / "lexicon" / "en.yaml"
    folder = out / B12.stem

    def run(formats: str) -> dict[str, str]:
        return statuses(build(source, out, formats, "--cache", str(project / ".cache"), cwd=project))

    assert run("pdf,epub,read-aloud") == {"pdf": "built", "epub": "built", "audio": "built", "read-aloud": "built"}
    first = epub_of(folder).read_bytes()

    # a lexicon entry for a word the article does not use: the narration runs again (its inputs changed) and
    # makes the same files, so the read-aloud EPUB, fingerprinted with their SHA-256, is current
    text = lexicon.read_text(encoding="utf-8")
    assert "\nwords:\n" in text
    lexicon.write_text(text.replace("\nwords:\n", "\nwords:\n  zzyzx: zizzix\n"), encoding="utf-8")
    assert run("pdf,epub,read-aloud") == {"pdf": "cached", "epub": "cached", "audio": "built", "read-aloud": "cached"}

    # a pronunciation the article uses ("e.g."): the narration of one sentence changes; the read-aloud EPUB is
    # rebuilt with it, and neither the PDF nor the EPUB, whose text did not change
    assert "e.g.: for example" in text and "e.g.," in source.read_text(encoding="utf-8")
    lexicon.write_text(lexicon.read_text(encoding="utf-8").replace("e.g.: for example", "e.g.: for instance"),
                       encoding="utf-8")
    mp3_before = (folder / f"{B12.stem}.mp3").read_bytes()
    assert run("pdf,epub,read-aloud") == {"pdf": "cached", "epub": "cached", "audio": "built", "read-aloud": "built"}
    assert (folder / f"{B12.stem}.mp3").read_bytes() != mp3_before
    second = epub_of(folder).read_bytes()
    assert second != first
    with zipfile.ZipFile(epub_of(folder)) as z:
        assert z.read(f"EPUB/audio/{B12.stem}.mp3") == (folder / f"{B12.stem}.mp3").read_bytes()

    # a build of the narration alone takes the published read-aloud EPUB along: never an EPUB of an older narration
    lexicon.write_text(lexicon.read_text(encoding="utf-8").replace("e.g.: for instance", "e.g.: for example"),
                       encoding="utf-8")
    assert run("audio") == {"audio": "built", "read-aloud": "built"}
    assert epub_of(folder).read_bytes() == first          # the first narration again, hence the first book

    # a build of another format leaves it alone
    assert run("pdf") == {"pdf": "cached"}
    assert epub_of(folder).read_bytes() == first
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {o["format"] for o in manifest["outputs"]} == {"pdf", "epub", "audio", "read-aloud"}


def test_a_read_aloud_epub_without_its_narration_is_a_clear_error(tmp_path):
    """Asked for through the build's interface without the audio stage, in a folder without a narration."""
    from pipeline.build import Job, build as run_build
    from pipeline.source import load_article
    from pipeline.theme import load_theme
    theme = load_theme(ROOT / "themes" / "default")
    job = Job(load_article(B12, B12.name, publisher=theme.organisation), theme, ["read-aloud"], B12.name)
    run_build([job], tmp_path)
    assert not job.ok
    error = job.error or job.stages["read-aloud"].error
    assert error is not None
    message = error.format()
    assert "narration" in message and "--format read-aloud" in message
    assert not (tmp_path / B12.stem / f"{B12.stem}.read-aloud.epub").exists()


def test_the_catalogue_offers_the_read_aloud_epub(book):
    feed = etree.parse(str(book.parent / "opds.xml"))
    links = [link for link in feed.iter("{http://www.w3.org/2005/Atom}link")
             if link.get("href", "").endswith(".read-aloud.epub")]
    assert len(links) == 1
    assert links[0].get("rel") == "http://opds-spec.org/acquisition"
    assert links[0].get("type") == "application/epub+zip"
    assert int(links[0].get("length")) == epub_of(book).stat().st_size
    assert "Read-aloud" in links[0].get("title")


def test_a_theme_without_the_highlight_style_is_a_clear_error_and_publishes_nothing(tmp_path):
    project = make_project(tmp_path)
    (project / "themes" / "default" / "css" / "read-aloud.css").unlink()
    out = project / "output"
    result = run_publish("build", str(project / "source" / B12.name), "--format", "epub,read-aloud",
                         "--out", str(out), "--cache", str(project / ".cache"), cwd=project)
    assert result.returncode == 1, result.stderr
    assert "the theme has no css/read-aloud.css" in result.stderr
    assert "copy it from themes/default/css/read-aloud.css" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / B12.stem).exists()          # nothing of the article is published, not even its EPUB
