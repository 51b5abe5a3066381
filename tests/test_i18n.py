"""The words the pipeline adds, per language: the catalogues are complete and current, a Spanish article
comes out in Spanish in every format, a language without a catalogue is refused, a new one can be started."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from lxml import etree, html as lxml_html
from playwright.sync_api import sync_playwright

from conftest import EPOCH, ROOT, require_tool, run_publish
from test_epub import ace_failures, epubcheck_jar_5, epubcheck_messages, run_ace
from test_html import AXE, CHROMIUM_ARGS, TAGS, open_page

from pipeline.i18n import catalogue_path, extract, messages_for, template_path

THEME = ROOT / "themes" / "default"
SHIPPED = ("en", "es", "ar", "zh")
SPANISH = ROOT / "tests" / "fixtures" / "es" / "dolor-lumbar-autocuidado.yaml"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def read_catalogue(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def untranslated(path: Path) -> list[str]:
    """Every message of the template that *path* leaves untranslated, fuzzy, or with a placeholder of its own."""
    template = read_catalogue(template_path(THEME))
    catalogue = read_catalogue(path)
    problems = []
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id, message.context)
        if found is None:
            problems.append(f"missing: {message.id!r}")
            continue
        forms = found.string if isinstance(found.string, tuple) else (found.string,)
        if found.fuzzy or not all(form.strip() for form in forms):
            problems.append(f"untranslated: {message.id!r}")
        allowed = set(PLACEHOLDER.findall(" ".join(message.id if isinstance(message.id, tuple) else (message.id,))))
        if any(set(PLACEHOLDER.findall(form)) - allowed for form in forms):
            problems.append(f"unknown placeholder: {message.id!r}")
    return problems


@pytest.mark.parametrize("language", SHIPPED)
def test_every_message_has_a_translation_in_every_shipped_catalogue(language):
    assert untranslated(catalogue_path(THEME, language)) == []


def test_a_missing_translation_is_caught(tmp_path):
    spanish = catalogue_path(THEME, "es").read_text(encoding="utf-8")
    broken = tmp_path / "messages.po"
    broken.write_text(spanish.replace('msgstr "Índice"', 'msgstr ""'), encoding="utf-8")
    assert untranslated(broken) == ["untranslated: 'Contents'"]


def test_the_committed_template_holds_every_message_of_the_code_and_templates():
    """Re-extracted with Babel (babel.cfg), the messages equal the committed messages.pot: a new string
    in a template or in the code cannot be forgotten by the catalogues."""
    def messages(catalogue):
        return {(m.id, m.context): sorted({file for file, _ in m.locations}) for m in catalogue if m.id}
    fresh, committed = messages(extract(ROOT)), messages(read_catalogue(template_path(THEME)))
    assert fresh.keys() - committed.keys() == set(), "run the extraction in README (Languages) and translate"
    assert committed.keys() - fresh.keys() == set(), "messages no longer used: extract again"
    assert fresh == committed
    for language in SHIPPED:
        ids = {(m.id, m.context) for m in read_catalogue(catalogue_path(THEME, language)) if m.id}
        assert ids == set(committed), language


def test_a_theme_setting_overrides_one_message():
    words = messages_for(THEME, "es-MX", {"es": {"Contents": "Contenido"}, "es-MX": {"Cover": "Carátula"}})
    assert (words.gettext("Contents"), words.gettext("Cover"), words.gettext("Glossary")) == \
        ("Contenido", "Carátula", "Glosario")
    assert words.ngettext("%(num)s page", "%(num)s pages", 3) == "%(num)s páginas"
    assert words.date("2026-03-16") == "16 de marzo de 2026" and words.number(6.5) == "6.5"     # Mexico's CLDR
    assert messages_for(THEME, "es").number(6.5) == "6,5"
    assert words.quote("hola") == "«hola»"


def test_an_article_in_a_language_without_a_catalogue_is_refused_at_its_language_line(tmp_path):
    source = tmp_path / "article.yaml"
    source.write_text("title: Bonjour\nlanguage: fr\nbody:\n  - p: Une phrase.\n", encoding="utf-8")
    result = run_publish("check", str(source))
    assert result.returncode == 1, result.stderr
    assert f"{source}:2:11: error: the theme has no message catalogue for the language `fr`" in result.stderr
    assert "publish init-language fr" in result.stderr and "Traceback" not in result.stderr
    built = run_publish("build", str(source), "--format", "html", "--out", str(tmp_path / "out"))
    assert built.returncode == 1 and not (tmp_path / "out" / "article").exists()


def test_init_language_writes_the_catalogue_template_with_the_plural_rule(tmp_path):
    shutil.copytree(THEME, tmp_path / "themes" / "default")
    result = run_publish("init-language", "fr", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = catalogue_path(tmp_path / "themes" / "default", "fr")
    catalogue = read_catalogue(written)
    assert catalogue.plural_forms == "nplurals=2; plural=(n > 1);"          # French: 0 and 1 are singular
    assert len([m for m in catalogue if m.id]) == len([m for m in read_catalogue(template_path(THEME)) if m.id])
    assert untranslated(written)                    # left for a translator: the completeness test refuses it
    assert "native speaker" in written.read_text(encoding="utf-8")
    # until it is translated, an article in the language is refused: its outputs would mix two languages
    source = tmp_path / "article.yaml"
    source.write_text("title: Bonjour\nlanguage: fr\nbody:\n  - p: Une phrase.\n", encoding="utf-8")
    refused = run_publish("check", str(source), cwd=tmp_path)
    count = len([m for m in catalogue if m.id])
    assert refused.returncode == 1 and "article.yaml:2:11: error: the message catalogue for the language `fr` leaves " \
        f"{count} messages untranslated" in refused.stderr, refused.stderr
    again = run_publish("init-language", "fr", cwd=tmp_path)
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = run_publish("init-language", "not a tag", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


# -- the Spanish article, built in every format ------------------------------------------------------------

@pytest.fixture(scope="module")
def spanish(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("es")
    report = out / "report.json"
    result = run_publish("build", str(SPANISH), "--out", str(out / "output"), "--cache", str(out / "cache"),
                         "--report", str(report))
    assert result.returncode == 0, result.stderr
    stages = {s["format"]: s for s in json.loads(report.read_text())["articles"][0]["stages"]}
    return out / "output" / SPANISH.stem, stages


def english_phrases() -> list[str]:
    """The literal text of every English message (placeholders taken out) that the Spanish catalogue does not
    share word for word ("PDF", "Normal", "Braille" are Spanish too)."""
    def fragments(catalogue) -> set[str]:
        found = set()
        for message in catalogue:
            forms = message.string if isinstance(message.string, tuple) else (message.string,)
            for form in forms if message.id else ():
                found |= {part.strip(" ,.:;()“”") for part in PLACEHOLDER.split(form)[::2]}
        return {f for f in found if len(re.sub(r"\W", "", f)) >= 3}
    english = fragments(read_catalogue(catalogue_path(THEME, "en")))
    spanish = fragments(read_catalogue(catalogue_path(THEME, "es")))
    return sorted(english - spanish - {"M4B", "EPUB 3", "OPDS", "WebVTT", "BRF"})


def visible_text(document) -> str:
    """Text nodes and the attributes a reader hears or sees (labels, titles, alt text)."""
    texts = list(document.itertext())
    for element in document.iter():
        if isinstance(element.tag, str):
            texts += [element.get(a) for a in ("aria-label", "title", "alt", "label", "content", "data-label",
                                                "data-running-title", "data-reviewed") if element.get(a)]
    return "\n".join(texts)


def all_text(folder: Path) -> dict[str, str]:
    from pipeline.stages.braille import louis
    require_tool("pdftotext", "apt-get install poppler-utils")
    texts = {}
    for pdf in sorted(folder.glob("*.pdf")):
        texts[pdf.name] = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                         check=True).stdout
    texts["html"] = visible_text(lxml_html.parse(str(folder / f"{SPANISH.stem}.html")).getroot())
    with zipfile.ZipFile(folder / f"{SPANISH.stem}.epub") as book:
        for name in book.namelist():
            if name.endswith((".xhtml", ".opf", ".ncx")):
                texts[name] = visible_text(etree.fromstring(book.read(name)))
    from mutagen.id3 import ID3
    texts["mp3 tags"] = "\n".join(str(frame) for frame in ID3(folder / f"{SPANISH.stem}.mp3").values()
                                  if not frame.FrameID.startswith(("APIC", "PRIV")))
    for suffix in (".transcript.txt", ".vtt"):
        texts[suffix] = (folder / f"{SPANISH.stem}{suffix}").read_text(encoding="utf-8")
    brf = (folder / f"{SPANISH.stem}.brf").read_text(encoding="ascii")
    lines = [line.strip() for page in brf.split("\f") for line in page.splitlines()[:-1] if line.strip()]
    texts["brf"] = louis.back_translate(" ".join(lines), "es-g2.ctb")      # (the last line: the page number)
    return texts


def test_no_english_word_of_the_pipeline_in_any_output(spanish):
    folder, _ = spanish
    texts = all_text(folder)
    phrases = english_phrases()
    assert {"Contents", "Listen from here", "Page", "Last reviewed", "Section", "End quote"} <= set(phrases)
    # the clinic's own name and contact line are the theme's (the default theme's are English placeholders)
    from pipeline.theme import load_theme
    theme = load_theme(THEME)
    texts = {name: text.replace(theme.organisation, "").replace(theme.contact, "") for name, text in texts.items()}
    from pipeline.stages.braille import louis
    for line in (theme.organisation, theme.contact):        # as braille reads back: without capitals
        texts["brf"] = texts["brf"].replace(louis.back_translate(louis.translate(line, "es-g2.ctb"), "es-g2.ctb"), "")
    found = [(name, phrase) for name, text in texts.items() for phrase in phrases
             if re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text)]
    assert found == []
    assert "Página 1 de 2" in texts[f"{SPANISH.stem}.pdf"] and "Índice" in texts["html"]
    assert "Sección 1: Resumen." in texts[".transcript.txt"]
    # the Spanish lexicon: percentages, ranges and units said in Spanish
    assert "un 32 por ciento" in texts[".transcript.txt"] and "de 1000 a 2000 microgramos" in texts[".transcript.txt"]


def test_the_language_is_spanish_throughout(spanish):
    import pikepdf
    folder, _ = spanish
    page = lxml_html.parse(str(folder / f"{SPANISH.stem}.html")).getroot()
    assert page.get("lang") == "es" and page.find(".//track").get("srclang") == "es"
    with zipfile.ZipFile(folder / f"{SPANISH.stem}.epub") as book:
        for name in book.namelist():
            if name.endswith(".xhtml"):
                root = etree.fromstring(book.read(name))
                assert root.get("lang") == "es" == root.get("{http://www.w3.org/XML/1998/namespace}lang"), name
        opf = etree.fromstring(book.read("EPUB/content.opf"))
        assert opf.findtext(".//{http://purl.org/dc/elements/1.1/}language") == "es"
    for pdf in folder.glob("*.pdf"):
        with pikepdf.open(pdf) as document:
            assert str(document.Root.Lang) == "es", pdf.name
    from mutagen.id3 import ID3
    assert str(ID3(folder / f"{SPANISH.stem}.mp3")["TLAN"]) == "spa"


def test_the_spanish_epub_passes_epubcheck_and_ace(spanish, tmp_path):
    folder, _ = spanish
    epub = folder / f"{SPANISH.stem}.epub"
    _, messages = epubcheck_messages(epubcheck_jar_5(), epub, tmp_path)
    assert messages == []
    report = run_ace(epub, tmp_path)
    assert ace_failures(report) == [] and report["earl:result"]["earl:outcome"] == "pass"


def test_the_spanish_page_passes_axe(spanish):
    folder, _ = spanish
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    chromium = require_tool("chromium", "apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for width in (320, 1280):
            page = open_page(browser, folder / f"{SPANISH.stem}.html", width)
            page.add_script_tag(path=str(AXE))
            result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
            page.context.close()
            assert [v["id"] for v in result["violations"]] == [], width
            assert len(result["passes"]) > 20
        browser.close()


def test_the_narration_is_spoken_by_a_spanish_voice_with_spanish_chapters(spanish):
    folder, stages = spanish
    assert stages["audio"]["voice"] == {"engine": "system", "name": "es"} and stages["audio"]["warnings"] == []
    require_tool("ffmpeg", "apt-get install ffmpeg")
    for suffix in (".mp3", ".m4b"):
        out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(folder / f"{SPANISH.stem}{suffix}"),
                              "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True).stderr
        summary = out.split("Summary:")[-1]
        assert -20 <= float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1)) <= -16, suffix
        assert float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1)) <= -3.0, suffix
        chapters = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json",
                                              str(folder / f"{SPANISH.stem}{suffix}")],
                                             capture_output=True, text=True, check=True).stdout)["chapters"]
        assert [c["tags"]["title"] for c in chapters][:3] == ["Presentación", "Resumen", "Puntos clave"], suffix
    assert stages["braille"]["table"].startswith("es")


def test_the_spanish_build_is_reproducible(spanish, tmp_path):
    folder, _ = spanish
    result = run_publish("build", str(SPANISH), "--format", "pdf,epub,html,braille", "--out", str(tmp_path),
                         "--cache", str(tmp_path / "cache"), env={"SOURCE_DATE_EPOCH": EPOCH})
    assert result.returncode == 0, result.stderr
    for suffix in (".pdf", ".epub", ".brf"):         # (the page differs: without the narration it has no player)
        name = f"{SPANISH.stem}{suffix}"
        assert (tmp_path / SPANISH.stem / name).read_bytes() == (folder / name).read_bytes(), suffix


def test_a_theme_catalogue_overrides_some_messages_and_a_changed_translation_rebuilds(tmp_path):
    """A theme of its own holds only the messages it changes (the rest come from the default theme's
    catalogue); editing a translation, in either, rebuilds the outputs that show it."""
    shutil.copytree(THEME, tmp_path / "themes" / "default")
    mine = tmp_path / "themes" / "mine"
    shutil.copytree(THEME, mine, ignore=shutil.ignore_patterns("locale"))
    own = catalogue_path(mine, "es")
    own.parent.mkdir(parents=True)
    own.write_text('msgid ""\nmsgstr ""\n"Language: es\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
                   'msgid "Contents"\nmsgstr "Sumario"\n', encoding="utf-8")
    page = tmp_path / "out" / SPANISH.stem / f"{SPANISH.stem}.html"

    def build() -> str:
        result = run_publish("build", str(SPANISH), "--theme", "mine", "--format", "html", "--out",
                             str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return page.read_text(encoding="utf-8")

    first = build()
    assert ">Sumario</h2>" in first and ">Ajustes de lectura<" in first
    default = catalogue_path(tmp_path / "themes" / "default", "es")
    default.write_text(default.read_text(encoding="utf-8").replace('msgstr "Ajustes de lectura"',
                                                                    'msgstr "Opciones de lectura"'), encoding="utf-8")
    assert ">Opciones de lectura<" in build()
    own.write_text(own.read_text(encoding="utf-8").replace("Sumario", "Contenido"), encoding="utf-8")
    assert ">Contenido</h2>" in build()


def test_a_translation_with_a_misspelt_placeholder_or_a_lone_percent_is_a_located_error(tmp_path):
    shutil.copytree(THEME, tmp_path / "themes" / "default")
    spanish = catalogue_path(tmp_path / "themes" / "default", "es")
    text = spanish.read_text(encoding="utf-8")
    line = text.splitlines().index('msgstr "Página %(page)s de %(pages)s"') + 1
    spanish.write_text(text.replace('msgstr "Página %(page)s de %(pages)s"', 'msgstr "Página %(pagina)s de %(pages)s"')
                       .replace('msgstr "Índice"', 'msgstr "Índice 100%"'), encoding="utf-8")
    result = run_publish("check", str(SPANISH), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    # at the message's msgid line
    assert f"messages.po:{line - 1}:1: error: the translation has the placeholder %(pagina)s" in result.stderr
    assert "a lone `%`" in result.stderr
    settings = tmp_path / "themes" / "default" / "theme.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + 'messages:\n  es:\n    "Section %(number)s: %(title)s": '
                        '"Parte %(numero)s"\n', encoding="utf-8")
    result = run_publish("check", str(SPANISH), cwd=tmp_path)
    assert result.returncode == 1 and "theme.yaml:" in result.stderr and "%(numero)s" in result.stderr, result.stderr


@pytest.mark.parametrize("setting", ["messages: 5", "messages:\n  es: [Contents]", "messages:\n  es:\n    Contents: [a]"])
def test_a_malformed_messages_setting_is_a_located_error(tmp_path, setting):
    shutil.copytree(THEME, tmp_path / "themes" / "default")
    settings = tmp_path / "themes" / "default" / "theme.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + setting + "\n", encoding="utf-8")
    result = run_publish("check", str(SPANISH), cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"theme\.yaml:\d+:\d+: error: .*messages", result.stderr), result.stderr
