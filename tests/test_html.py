"""The large-print page, judged in a real browser: axe-core in headless Chromium, and measurements."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import B12, ROOT, assert_in_order, require_tool, run_publish, seed_sentences, web_server

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag2aaa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# Chromium as root, headless, with no background traffic (this machine has no network).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
THEMES = ["light", "dark", "contrast"]

# The WCAG 1.4.12 text-spacing overrides.
TEXT_SPACING = """* { line-height: 1.5 !important; letter-spacing: 0.12em !important; word-spacing: 0.16em !important; }
p { margin-bottom: 2em !important; }"""

LONGEST_LINE = """() => {
  // characters on each rendered line of every text block: group characters by their line's top
  let longest = 0;
  for (const block of document.querySelectorAll("main p, main li, main td, main th, main h1, main h2, main h3")) {
    const lines = new Map();
    const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (let i = 0; i < node.length; i++) {
        range.setStart(node, i); range.setEnd(node, i + 1);
        const rect = range.getBoundingClientRect();
        if (rect.width === 0) continue;
        const top = Math.round(rect.top);
        lines.set(top, (lines.get(top) || 0) + 1);
      }
    }
    for (const count of lines.values()) longest = Math.max(longest, count);
  }
  return longest;
}"""

CLIPPED = """() => {
  const clipped = [];
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el);
    if (style.display === "none" || el.closest("[hidden]")) continue;
    const hides = /(hidden|clip)/.test(style.overflowX + style.overflowY);
    const screenReaderOnly = el.getBoundingClientRect().width <= 1 && el.getBoundingClientRect().height <= 1;
    if (hides && !screenReaderOnly && el.getClientRects().length &&
        (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1)) clipped.push(el.outerHTML.slice(0, 80));
  }
  return clipped;
}"""


@pytest.fixture(scope="module")
def page_file(build_b12) -> Path:
    return build_b12("html") / f"{B12.stem}.html"


@pytest.fixture(scope="module")
def browser():
    chromium = require_tool("chromium", "apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, path: Path, width: int, theme: str | None = None, javascript: bool = True):
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=javascript)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    if theme:
        page.evaluate(f"document.documentElement.setAttribute('data-theme', '{theme}')")
    page.requests = requests
    return page


@pytest.mark.parametrize("width", [320, 1280])
@pytest.mark.parametrize("theme", THEMES)
def test_axe_finds_no_violation(browser, page_file, theme, width):
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    page = open_page(browser, page_file, width, theme)
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    page.context.close()
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert violations == [], violations
    assert len(result["passes"]) > 20           # axe really ran its rules


def test_large_print_measurements(browser, page_file):
    page = open_page(browser, page_file, 1280)
    body_px = page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p[id]')).fontSize)")
    assert body_px >= 24
    pitch = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('main p[id]')); "
                          "return parseFloat(s.lineHeight) / parseFloat(s.fontSize); })()")
    assert pitch >= 1.5
    gap = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('main p[id]')); "
                        "return parseFloat(s.marginBottom) / parseFloat(s.lineHeight); })()")
    assert gap >= 1.5, "paragraph spacing must be at least 1.5 times the line spacing (WCAG 1.4.8)"
    longest = page.evaluate(LONGEST_LINE)
    assert 40 < longest <= 70, f"longest line has {longest} characters"
    assert page.evaluate("getComputedStyle(document.querySelector('main p[id]')).textAlign") in ("left", "start")
    assert page.evaluate("getComputedStyle(document.querySelector('main p[id]')).fontFamily").startswith('"Atkinson Hyperlegible"')
    assert page.evaluate("document.fonts.check('24px \"Atkinson Hyperlegible\"')")
    page.context.close()


def test_body_text_follows_the_browser_text_size(browser, page_file):
    page = open_page(browser, page_file, 1280)
    # the reader sets the browser's default text size to 32 px (Chromium's settings, through DevTools)
    page.context.new_cdp_session(page).send("Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 26}})
    page.reload()
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p[id]')).fontSize)") == 48
    page.context.close()


@pytest.mark.parametrize("theme", THEMES)
def test_no_horizontal_scrolling_at_320_and_nothing_clipped_with_text_spacing(browser, page_file, theme):
    page = open_page(browser, page_file, 320, theme)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.add_style_tag(content=TEXT_SPACING)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate(CLIPPED) == []
    # the table became stacked cards, each cell labelled by its column header
    assert page.evaluate("getComputedStyle(document.querySelector('td')).display") == "block"
    assert page.evaluate("getComputedStyle(document.querySelector('td'), '::before').content") == '"Oral B12 Supplementation: "'
    page.context.close()


def test_the_title_is_on_the_first_screen_at_320_px_and_read_before_the_contents(browser, page_file):
    """A reader with a magnifier or a screen reader meets the article's title first, not 13 contents entries."""
    page = open_page(browser, page_file, 320)
    top = page.evaluate("document.querySelector('h1').getBoundingClientRect().top")
    assert top < 450, f"the title starts {top:.0f} px down, below half of the first screen"
    order = page.evaluate("document.querySelector('h1').compareDocumentPosition(document.querySelector('nav.contents'))")
    assert order & 4, "the contents come before the title"          # 4: DOCUMENT_POSITION_FOLLOWING
    assert page.evaluate("document.querySelector('nav.contents').closest('main') !== null")
    page.context.close()


@pytest.mark.parametrize("theme, scheme", [("light", "light"), ("dark", "dark"), ("contrast", "dark")])
def test_the_browsers_own_controls_follow_the_chosen_palette(browser, page_file, theme, scheme):
    """The audio player and the menus are drawn by the browser: on a page made dark by the reader's choice,
    they must be dark too, whatever the device's own setting (here: light)."""
    page = open_page(browser, page_file, 1280, theme)
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == scheme
    page.context.close()


def test_reader_controls_change_the_page_and_survive_a_reload(browser, page_file):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(page_file.as_uri())
    size = lambda: page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p[id]')).fontSize)")
    background = lambda: page.evaluate("getComputedStyle(document.body).backgroundColor")
    before, light = size(), background()
    page.click("summary")
    page.click("button[data-action=larger]")
    assert size() > before
    page.select_option("#colour-choice", "contrast")
    assert background() == "rgb(0, 0, 0)" != light
    page.select_option("#spacing-choice", "wider")
    leading = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('main p[id]')); "
                            "return parseFloat(s.lineHeight) / parseFloat(s.fontSize); })()")
    assert leading >= 2.1
    larger = size()
    page.reload()
    assert size() == larger and background() == "rgb(0, 0, 0)"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.click("summary")
    page.focus("button[data-action=reset]")
    page.keyboard.press("Enter")
    assert size() == before
    context.close()


def test_page_is_complete_without_javascript(browser, page_file):
    page = open_page(browser, page_file, 1280, javascript=False)
    assert not page.is_visible(".reader-controls")
    assert_in_order(seed_sentences(), page.inner_text("main"))
    assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('main p[id]')).fontSize)") >= 24
    page.context.close()


def test_every_sentence_is_in_the_page_in_order_and_nothing_is_fetched_from_elsewhere(browser, page_file):
    page = open_page(browser, page_file, 1280)
    assert_in_order(seed_sentences(), page.inner_text("main"))
    folder = page_file.parent.as_uri()
    assert page.requests and all(url.startswith(folder + "/") for url in page.requests), page.requests
    assert page.evaluate("document.querySelectorAll('h1').length") == 1
    levels = page.evaluate("[...document.querySelectorAll('main h1, main h2, main h3, main h4')].map(h => +h.tagName[1])")
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:])), "heading levels skip"
    assert page.evaluate("document.querySelectorAll('abbr[title]').length") >= 5
    assert page.evaluate("[...document.querySelectorAll('th[scope=col]')].length") == 3
    assert page.evaluate("[...document.querySelectorAll('th[scope=row]')].length") == 4
    assert page.evaluate("document.querySelector('audio')") is None, "a player without a narration"
    page.context.close()


def test_hostile_text_comes_out_as_text(browser, tmp_path):
    source = tmp_path / "hostile.yaml"
    source.write_text(
        "title: '<script>alert(1)</script>'\nlanguage: en\nbody:\n"
        "  - p: 'Markup stays text: <script>alert(2)</script> and <img src=x onerror=alert(3)>.'\n"
        "  - p: 'An attribute breaker \" onload=\"alert(4)\" stays text.'\n")
    result = run_publish("build", str(source), "--format", "html", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    page_file = tmp_path / "out" / "hostile" / "hostile.html"
    page = open_page(browser, page_file, 1280)
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert page.evaluate("document.querySelectorAll('main script, main img, [onload], [onerror]').length") == 0
    text = page.inner_text("main")
    assert "<script>alert(2)</script>" in text and '" onload="alert(4)"' in text
    assert page.title() == "<script>alert(1)</script>"
    assert dialogs == []
    page.context.close()


def test_two_builds_are_identical(page_file, tmp_path):
    result = run_publish("build", str(B12), "--format", "html", "--out", str(tmp_path))
    assert result.returncode == 0
    for path in page_file.parent.iterdir():
        if path.name != "manifest.json" and path.suffix in (".html", ".css", ".js", ".ttf"):
            assert (tmp_path / B12.stem / path.name).read_bytes() == path.read_bytes(), path.name


@pytest.fixture(scope="module")
def page_with_audio(build_b12) -> Path:
    return build_b12("html", "audio") / f"{B12.stem}.html"


@pytest.fixture
def served(page_with_audio):
    """The output folder on a loopback web server: browsers load caption tracks over HTTP, not from file:// pages."""
    with web_server(page_with_audio.parent) as address:
        yield address + page_with_audio.name


def test_with_the_narration_the_page_has_a_player_and_listen_from_here_links(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(served)
    assert page.evaluate("document.querySelector('#narration audio track').getAttribute('kind')") == "captions"
    assert page.is_visible("a[href$='.transcript.txt']")
    links = page.evaluate("[...document.querySelectorAll('a[data-cue]')].map(a => a.dataset.cue)")
    assert "key-points" in links and len(links) >= 13
    # wait for the captions to load, then follow "Listen from here" at Key Points
    page.wait_for_function("(() => { const t = document.querySelector('#narration track'); "
                           "return t.track.cues && t.track.cues.length > 100; })()", timeout=20000)
    cue_start = page.evaluate("document.querySelector('#narration track').track.cues.getCueById('key-points').startTime")
    page.wait_for_function("document.querySelector('#narration audio').readyState >= 1", timeout=20000)
    page.click("a[data-cue='key-points']")
    current = page.evaluate("document.querySelector('#narration audio').currentTime")
    assert cue_start > 10 and abs(current - cue_start) < 1.0
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    assert [v["id"] for v in result["violations"]] == []
    page.context.close()


def test_overlong_words_and_addresses_wrap_at_320_px(browser, tmp_path):
    word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 3
    source = tmp_path / "long.yaml"
    source.write_text("title: Long words\nlanguage: en\nbody:\n"
                      f"  - p: \"A {word} and [a link](https://example.org/{'very-long-path-' * 12}) here.\"\n"
                      f"  - table:\n      caption: Wide\n      header: [Name, Value]\n      rows: [[{word}, {word}]]\n")
    result = run_publish("build", str(source), "--format", "html", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    page = open_page(browser, tmp_path / "out" / "long" / "long.html", 320)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    page.context.close()


def test_no_sideways_scrolling_at_320_px_at_any_text_size_of_the_reading_settings(browser, tmp_path):
    """In Spanish the menus ("Amarillo sobre negro") and the player's words ("Velocidad") are long: at the
    larger text sizes the reading settings offer, on a phone, they pushed the page sideways."""
    source = ROOT / "tests" / "fixtures" / "es" / "dolor-lumbar-autocuidado.yaml"
    result = run_publish("build", str(source), "--format", "html,mp3", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    page = open_page(browser, tmp_path / "out" / source.stem / f"{source.stem}.html", 320)
    widths = {}
    for step in range(7):                                   # reader.js: from the smallest text to the largest
        page.evaluate(f"localStorage.setItem('reader.scale', '{step}')")
        page.reload()
        page.wait_for_function("!document.querySelector('.player').hidden")
        page.evaluate("document.querySelector('.reader-controls').open = true")     # the reading settings
        widths[step] = page.evaluate("document.documentElement.scrollWidth")
    page.context.close()
    assert all(width <= 320 for width in widths.values()), widths


def test_a_list_numbered_inside_a_step_counts_a_b_as_on_the_printed_handout(browser, tmp_path):
    """The back-pain handout's steps 1, 2, 3 hold two numbered sub-steps: numbered 1, 2 again they read as
    steps of their own; the printed handout letters them a, b. The contents keep their numbers."""
    source = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
    result = run_publish("build", str(source), "--format", "html", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    page = open_page(browser, tmp_path / "out" / source.stem / f"{source.stem}.html", 1280)
    style = "s => getComputedStyle(document.querySelector(s)).listStyleType"
    assert page.evaluate(style, "main ol[id]") == "decimal"
    assert page.evaluate(style, "main ol[id] li > ul > li > ol") == "lower-alpha"
    assert page.evaluate(style, ".contents li > ol") == "decimal"
    page.context.close()
