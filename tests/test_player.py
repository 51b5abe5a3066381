"""The large-print page's audio player, in real Chromium with the real narration of a short article: its
buttons and keys, the highlight of the sentence being read, starting from a sentence or a heading, over
HTTP and from a file:// URL, target sizes, axe-core in every palette, and the page without JavaScript."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ROOT, run_publish, web_server
from pipeline.theme import contrast_ratio
from test_html import AXE, CLIPPED, TAGS, TEXT_SPACING, THEMES, browser  # noqa: F401  (browser: Chromium, per module)

ARTICLE = ROOT / "tests" / "fixtures" / "player" / "drinking-water.yaml"
AUDIO = "document.querySelector('#narration audio')"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The page and its narration, built once for the module (about 50 seconds of speech)."""
    out = tmp_path_factory.mktemp("player")
    result = run_publish("build", str(ARTICLE), "--format", "html,mp3", "--out", str(out / "out"),
                         "--cache", str(out / "cache"))
    assert result.returncode == 0, result.stderr
    return out / "out" / ARTICLE.stem


@pytest.fixture(scope="module")
def timings(folder) -> dict:
    return json.loads((folder / f"{ARTICLE.stem}.timings.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def http(folder):
    with web_server(folder) as address:
        yield address + f"{ARTICLE.stem}.html"


@pytest.fixture(params=["http", "file"])
def address(request, folder, http) -> str:
    """The page over HTTP, and opened from the disk, where browsers load no caption track and fetch no JSON."""
    return http if request.param == "http" else (folder / f"{ARTICLE.stem}.html").as_uri()


def open_player(browser, address: str, width: int = 1280, theme: str | None = None, context=None):
    """The page with its player ready and the narration muted (nothing is heard, time still runs)."""
    context = context or browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors
    page.goto(address)
    if theme:
        page.evaluate(f"document.documentElement.setAttribute('data-theme', '{theme}')")
    page.wait_for_function(f"{AUDIO}.readyState >= 1 && !document.querySelector('.player').hidden", timeout=20000)
    page.evaluate(f"{AUDIO}.muted = true")
    return page


def current_time(page) -> float:
    return page.evaluate(f"{AUDIO}.currentTime")


def seek(page, seconds: float) -> None:
    page.evaluate(f"{AUDIO}.currentTime = {seconds}")
    page.wait_for_function(f"!{AUDIO}.seeking")


def highlighted(page) -> list[str]:
    return page.evaluate("[...document.querySelectorAll('.now-reading')].map(e => e.id)")


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


def test_the_player_replaces_the_browsers_control_and_its_buttons_work(browser, address, timings):
    page = open_player(browser, address)
    assert page.is_visible(".player") and not page.is_visible("#narration audio")
    duration = page.evaluate(f"{AUDIO}.duration")
    assert abs(duration - timings["duration_ms"] / 1000) < 0.5
    assert page.inner_text(".player-total") == clock(duration)
    size = "parseFloat(getComputedStyle(document.querySelector('{}')).fontSize)"
    assert page.evaluate(size.format(".player-time")) >= page.evaluate(size.format("main p[id]")) >= 24
    play = page.locator("[data-command=play]")
    assert play.inner_text().strip() == "Play"

    play.click()
    page.wait_for_function(f"!{AUDIO}.paused && {AUDIO}.currentTime > 0.3")
    assert play.inner_text().strip() == "Pause"
    assert page.get_attribute(".player", "data-state") == "playing"
    play.click()
    page.wait_for_function(f"{AUDIO}.paused")
    # the label follows the media element's `pause` event, which is queued after `paused` turns true
    page.wait_for_function("document.querySelector('[data-command=play]').innerText.trim() === 'Play'",
                           timeout=5000)

    seek(page, 15)
    page.click("[data-command=forward]")
    assert abs(current_time(page) - 25) < 0.3
    assert page.inner_text(".player-elapsed") == "0:25"
    page.click("[data-command=back]")
    page.click("[data-command=back]")
    assert abs(current_time(page) - 5) < 0.3
    page.click("[data-command=back]")
    assert current_time(page) == 0                      # not before the start

    chapters = [c["start_ms"] / 1000 for c in timings["chapters"]]
    titles = [c["title"] for c in timings["chapters"]]
    assert len(chapters) == 3
    page.click("[data-command=next]")
    assert abs(current_time(page) - chapters[1]) < 0.05
    assert page.inner_text(".player-section") == titles[1]
    page.click("[data-command=next]")
    assert abs(current_time(page) - chapters[2]) < 0.05
    page.click("[data-command=next]")                   # the last section: nothing after it
    assert abs(current_time(page) - chapters[2]) < 0.05
    page.click("[data-command=previous]")               # at a section's start: the one before
    assert abs(current_time(page) - chapters[1]) < 0.05
    seek(page, chapters[1] + 6)
    page.click("[data-command=previous]")               # well into a section: back to its start
    assert abs(current_time(page) - chapters[1]) < 0.05
    assert page.errors == []
    page.context.close()


def test_speed_is_remembered_across_a_reload(browser, http):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = open_player(browser, http, context=context)
    assert page.evaluate(f"{AUDIO}.playbackRate") == 1
    page.select_option("#player-speed", "1.5")
    assert page.evaluate(f"{AUDIO}.playbackRate") == 1.5
    page.reload()
    page.wait_for_function(f"{AUDIO}.readyState >= 1")
    assert page.input_value("#player-speed") == "1.5"
    assert page.evaluate(f"{AUDIO}.playbackRate") == 1.5
    page.focus("[data-command=play]")
    page.keyboard.press(">")
    assert page.evaluate(f"{AUDIO}.playbackRate") == 1.75 and page.input_value("#player-speed") == "1.75"
    for _ in range(8):
        page.keyboard.press("<")
    assert page.evaluate(f"{AUDIO}.playbackRate") == 0.75          # the slowest offered
    # a browser that refuses storage (private mode, a policy) still plays, at normal speed
    page.add_init_script("Object.defineProperty(window, 'localStorage', {get() { throw new Error('denied'); }})")
    page.reload()
    page.wait_for_function(f"{AUDIO}.readyState >= 1 && !document.querySelector('.player').hidden")
    assert page.input_value("#player-speed") == "1"
    page.select_option("#player-speed", "2")
    assert page.evaluate(f"{AUDIO}.playbackRate") == 2
    context.close()


def utterance_elements(page, timings) -> list[tuple[dict, str | None]]:
    """Each utterance with the id of the element the page should highlight while it is heard."""
    def expected(target: str) -> str | None:
        return page.evaluate("""id => {
            const e = document.getElementById(id);
            if (e && (e.classList.contains('s') || /^H[1-6]$/.test(e.tagName))) return e.id;
            return document.getElementById(id + '-h') ? id + '-h' : null; }""", target)
    return [(u, expected(u["target"])) for u in timings["utterances"]]


def test_seeking_into_a_sentence_highlights_that_sentence(browser, address, timings):
    page = open_player(browser, address)
    pairs = utterance_elements(page, timings)
    sentences = [(u, e) for u, e in pairs if e and page.evaluate(f"document.getElementById('{e}').classList.contains('s')")]
    headings = [(u, e) for u, e in pairs if e and e.endswith("-h")]
    unplaced = [u for u, e in pairs if e is None]
    assert len(sentences) >= 8 and len(headings) >= 3 and unplaced     # the fixture has all three kinds
    page.click("[data-command=play]")
    page.wait_for_function(f"!{AUDIO}.paused")
    for utterance, element in pairs:
        seek(page, (utterance["start_ms"] + utterance["end_ms"]) / 2000)
        page.wait_for_timeout(50)
        assert highlighted(page) == ([element] if element else []), utterance["id"]
    page.click("[data-command=play]")
    # paused, the highlight still follows a seek
    utterance, element = sentences[2]
    seek(page, (utterance["start_ms"] + utterance["end_ms"]) / 2000)
    page.wait_for_timeout(50)
    assert highlighted(page) == [element]
    assert page.errors == []
    page.context.close()


def test_activating_a_sentence_or_listen_from_here_starts_the_narration_there(browser, address, timings):
    page = open_player(browser, address)
    starts = {u["target"]: u["start_ms"] / 1000 for u in reversed(timings["utterances"])}   # first utterance of each
    sentence = "signs-you-need-more-p1-s2"
    page.click(f"[id='{sentence}']")
    page.wait_for_function(f"!{AUDIO}.paused")
    assert abs(current_time(page) - starts[sentence]) < 0.3
    assert highlighted(page) == [sentence]
    page.click("[data-command=play]")                   # pause

    # a heading: the narration starts where the heading is read
    page.click("[id='easy-ways-to-drink-more-h']")
    page.wait_for_function(f"Math.abs({AUDIO}.currentTime - {starts['easy-ways-to-drink-more']}) < 0.3")

    # with the keyboard: Enter on the "Listen from here" link under a heading
    page.click("[data-command=play]")
    page.focus("a[data-cue='signs-you-need-more']")
    page.keyboard.press("Enter")
    page.wait_for_function(f"!{AUDIO}.paused")
    assert abs(current_time(page) - starts["signs-you-need-more"]) < 0.3
    assert page.evaluate("document.activeElement.dataset.cue") == "signs-you-need-more"   # focus stays put
    assert page.evaluate("location.hash") == ""         # the link did not jump to the player

    # a link inside a sentence is followed as a link, and selecting text does not start anything
    page.click("[data-command=play]")
    before = current_time(page)
    page.evaluate("document.querySelector('main a[href^=\"https\"]').addEventListener('click', e => e.preventDefault())")
    page.click("main a[href^='https']")
    page.dblclick("[id='intro-p1-s1']")                  # a double click selects a word
    assert page.evaluate("getSelection().toString().trim().length") > 0
    page.wait_for_timeout(600)                          # longer than the wait for a second click
    assert page.evaluate(f"{AUDIO}.paused") and abs(current_time(page) - before) < 0.05
    assert page.errors == []
    page.context.close()


def test_keyboard_shortcuts_work_in_the_player_and_nowhere_else(browser, http, timings):
    page = open_player(browser, http)
    page.keyboard.press("k")                            # focus on the page, not in the player: nothing
    assert page.evaluate(f"{AUDIO}.paused")
    page.focus("[data-command=play]")
    page.keyboard.press("k")
    page.wait_for_function(f"!{AUDIO}.paused")
    page.keyboard.press("k")
    page.wait_for_function(f"{AUDIO}.paused")
    seek(page, 12)
    page.keyboard.press("ArrowRight")
    assert abs(current_time(page) - 22) < 0.3
    page.keyboard.press("ArrowLeft")
    assert abs(current_time(page) - 12) < 0.3
    page.keyboard.press("PageDown")
    assert abs(current_time(page) - timings["chapters"][1]["start_ms"] / 1000) < 0.05
    page.keyboard.press("PageUp")
    assert current_time(page) == 0
    page.keyboard.press("Enter")                        # the focused button is pressed as usual
    page.wait_for_function(f"!{AUDIO}.paused")
    page.focus("#player-position")
    page.keyboard.press("Space")
    page.wait_for_function(f"{AUDIO}.paused")
    page.keyboard.press("End")
    assert abs(current_time(page) - page.evaluate(f"{AUDIO}.duration")) < 0.3
    page.keyboard.press("Home")
    assert current_time(page) == 0
    assert page.get_attribute("#player-position", "aria-valuetext") == page.inner_text(".player-time")
    # the shortcuts are written on the page, and each button names its own
    assert "Page Down" in page.text_content(".player-keys")
    assert page.get_attribute("[data-command=next]", "aria-keyshortcuts") == "PageDown"
    page.context.close()


def test_the_page_follows_the_narration_unless_the_reader_scrolls(browser, http, timings):
    page = open_player(browser, http, width=320)
    page.click("[data-command=play]")
    page.wait_for_function(f"!{AUDIO}.paused")
    last = timings["utterances"][-2]                    # a sentence far down the page
    seek(page, (last["start_ms"] + last["end_ms"]) / 2000)
    page.wait_for_function("(() => { const r = document.querySelector('.now-reading').getBoundingClientRect();"
                           " return r.top >= 0 && r.bottom <= innerHeight; })()", timeout=5000)
    # the bar with the buttons stays at hand, fixed at the bottom, and nothing is wider than the window
    assert page.evaluate("getComputedStyle(document.querySelector('.player-bar')).position") == "fixed"
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    # the reader scrolls back to the top: the next sentence does not pull them down again
    page.mouse.move(160, 300)
    for _ in range(10):
        page.mouse.wheel(0, -2000)
        page.wait_for_timeout(50)
    page.wait_for_function("new Promise(done => { const y = scrollY; setTimeout(() => done(scrollY === y), 300); })")
    top = page.evaluate("scrollY")
    assert top < 200
    seek(page, timings["utterances"][-3]["start_ms"] / 1000 + 0.2)
    page.wait_for_timeout(1200)
    assert page.evaluate("scrollY") == top
    # a command of the player is the reader's choice again: the page follows to the section it starts
    page.click("[data-command=previous]")
    page.wait_for_function("(() => { const e = document.querySelector('.now-reading');"
                           " const r = e && e.getBoundingClientRect(); return r && e.tagName === 'H2' &&"
                           " r.top >= 0 && r.bottom <= innerHeight; })()", timeout=5000)
    page.context.close()


def test_with_reduced_motion_the_page_moves_to_the_sentence_at_once(browser, http, timings):
    context = browser.new_context(viewport={"width": 320, "height": 900}, reduced_motion="reduce")
    page = open_player(browser, http, context=context)
    page.click("[data-command=play]")
    page.wait_for_function(f"!{AUDIO}.paused")
    sentence = next(u for u in timings["utterances"] if u["target"] == "signs-you-need-more-p1-s2")
    page.evaluate("window.scrolls = 0; addEventListener('scroll', () => scrolls++)")
    seek(page, (sentence["start_ms"] + sentence["end_ms"]) / 2000)
    page.wait_for_function("document.querySelector('.now-reading')")
    page.wait_for_timeout(300)
    box = page.evaluate("document.querySelector('.now-reading').getBoundingClientRect().toJSON()")
    bar = page.evaluate("document.querySelector('.player-bar').getBoundingClientRect().top")
    assert 0 <= box["top"] and box["bottom"] <= bar
    assert page.evaluate("scrolls") == 1, "one jump, not a smooth scroll of many steps"
    context.close()


def test_announcements_are_polite_and_only_at_a_section_change(browser, http, timings):
    page = open_player(browser, http)
    regions = page.evaluate("[...document.querySelectorAll('[aria-live], [role=alert], [role=status]')]"
                            ".filter(e => !e.closest('[hidden]')).map(e => e.getAttribute('aria-live'))")
    assert regions == ["polite"]
    page.evaluate("""window.spoken = [];
        new MutationObserver(() => spoken.push(document.querySelector('[aria-live]').textContent))
          .observe(document.querySelector('[aria-live]'), {subtree: true, childList: true, characterData: true})""")
    for utterance in timings["utterances"]:              # every sentence, in order
        seek(page, utterance["start_ms"] / 1000 + 0.1)
    page.wait_for_timeout(100)
    spoken = page.evaluate("spoken")
    assert [s.split(":", 1)[1].strip() for s in spoken] == [c["title"] for c in timings["chapters"][1:]]
    page.context.close()


@pytest.mark.parametrize("width", [320, 1280])
def test_every_control_is_at_least_44_px(browser, http, width):
    page = open_player(browser, http, width=width)
    controls = ".player button, .player input, .player select, .player summary, a.listen-from-here"
    sizes = page.evaluate(f"[...document.querySelectorAll('{controls}')].map(e => {{"
                          " const r = e.getBoundingClientRect(); return [e.outerHTML.slice(0, 60), r.width, r.height]; })")
    assert len(sizes) >= 10
    small = [s for s in sizes if s[1] < 44 or s[2] < 44]
    assert small == []
    # the floating bar too, once playing and scrolled away from the player
    page.click("[data-command=play]")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("document.querySelector('.player').classList.contains('is-floating')")
    sizes = page.evaluate("[...document.querySelectorAll('.player-bar button')].map(e => {"
                          " const r = e.getBoundingClientRect(); return [r.width, r.height, r.right]; })")
    assert all(w >= 44 and h >= 44 and right <= width for w, h, right in sizes), sizes
    page.context.close()



def test_on_a_right_to_left_page_back_is_left_of_forward_and_the_slider_starts_on_the_left(browser, tmp_path):
    """The playback controls keep the recording's direction on an Arabic page: where their symbols point, as
    the left arrow key goes back; not laid out right to left with symbols pointing the other way."""
    arabic = ROOT / "tests" / "fixtures" / "scripts" / "b12-arabic.yaml"
    result = run_publish("build", str(arabic), "--format", "html,mp3", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    page = open_player(browser, (tmp_path / "out" / arabic.stem / f"{arabic.stem}.html").as_uri())
    assert page.evaluate("document.documentElement.dir") == "rtl"

    def lefts():
        return page.evaluate("Object.fromEntries([...document.querySelectorAll('.player [data-command]')]"
                             ".map(e => [e.dataset.command, e.getBoundingClientRect().left]))")
    where = lefts()
    assert where["play"] < where["back"] < where["forward"], where
    assert where["previous"] < where["next"], where
    assert page.evaluate("getComputedStyle(document.querySelector('#player-position')).direction") == "ltr"
    assert page.evaluate("getComputedStyle(document.querySelector('.player-label')).direction") == "rtl"
    page.click("[data-command=play]")                      # the bar at the bottom of the window too
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("document.querySelector('.player').classList.contains('is-floating')")
    where = lefts()
    assert where["play"] < where["back"] < where["forward"] < where["previous"] < where["next"], where
    page.context.close()

# the page's own text size with the WCAG 1.4.12 text spacing, and the largest text the reading settings offer
@pytest.mark.parametrize("scale, spacing", [("2", True), ("6", False)])
def test_the_player_reflows_at_320_px_with_text_spacing_and_the_largest_text(browser, http, scale, spacing):
    """WCAG 1.4.10 and 1.4.12: no sideways scrolling and nothing cut off, the bar floating or not."""
    context = browser.new_context(viewport={"width": 320, "height": 900})
    context.add_init_script(f"localStorage.setItem('reader.scale', '{scale}')")
    page = open_player(browser, http, context=context)
    if spacing:
        page.add_style_tag(content=TEXT_SPACING)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate(CLIPPED) == []
    page.click("[data-command=play]")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("document.querySelector('.player').classList.contains('is-floating')")
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    assert page.evaluate("Math.max(...[...document.querySelectorAll('.player-bar *')]"
                         ".map(e => e.getBoundingClientRect().right))") <= 320
    context.close()


@pytest.mark.parametrize("width", [320, 1280])
@pytest.mark.parametrize("theme", THEMES)
def test_axe_finds_no_violation_mid_playback(browser, http, theme, width, tmp_path):
    if not AXE.is_file():
        pytest.fail("axe-core is not installed: run `npm ci` (see setup.sh)")
    page = open_player(browser, http, width=width, theme=theme)
    page.click("[id='signs-you-need-more-p1-s1']")         # playing, a sentence highlighted
    page.wait_for_function(f"!{AUDIO}.paused && document.querySelector('.now-reading')")
    page.evaluate("document.querySelector('.player-keys').open = true")     # the shortcuts' list too
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert violations == [], violations
    assert len(result["passes"]) > 20
    # the highlight, measured as drawn: AAA contrast, and an underline besides the colour
    style = page.evaluate("(() => { const s = getComputedStyle(document.querySelector('.now-reading'));"
                          " return [s.color, s.backgroundColor, s.textDecorationLine]; })()")
    hexes = ["#" + "".join(f"{int(v):02x}" for v in c[c.index("(") + 1:-1].split(",")[:3]) for c in style[:2]]
    assert contrast_ratio(*hexes) >= 7, (theme, hexes)
    assert "underline" in style[2]
    page.context.close()


def test_without_javascript_the_browsers_player_and_the_transcript_remain(browser, folder):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto((folder / f"{ARTICLE.stem}.html").as_uri())
    assert page.is_visible("#narration audio[controls]")
    assert not page.is_visible(".player")
    box = page.locator("#narration audio").bounding_box()
    assert box["width"] > 200 and box["height"] > 20
    # the browser loads the narration: its length is known to the native player
    page.wait_for_function(f"{AUDIO}.readyState >= 1 && {AUDIO}.duration > 40", timeout=20000)
    transcript = page.locator("a[href$='.transcript.txt']")
    assert transcript.is_visible()
    assert (folder / transcript.get_attribute("href")).read_text("utf-8").startswith("Drinking enough water")
    context.close()


def test_without_the_timings_the_page_keeps_the_browsers_player_and_seeks_by_the_captions(browser, folder, timings,
                                                                                           tmp_path):
    """A narration published by a build older than the timings: nothing breaks, "Listen from here" still
    works over HTTP, by the caption track."""
    import shutil
    copy = tmp_path / "page"
    shutil.copytree(folder, copy)
    (copy / f"{ARTICLE.stem}.timings.js").unlink()
    with web_server(copy) as address:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(address + f"{ARTICLE.stem}.html")
        page.wait_for_function(f"{AUDIO}.readyState >= 1 && document.querySelector('#narration track').track.cues"
                               " && document.querySelector('#narration track').track.cues.length > 5", timeout=20000)
        assert page.is_visible("#narration audio") and not page.is_visible(".player")
        page.evaluate(f"{AUDIO}.muted = true")
        page.click("a[data-cue='easy-ways-to-drink-more']")
        start = next(u["start_ms"] for u in timings["utterances"] if u["target"] == "easy-ways-to-drink-more") / 1000
        assert abs(current_time(page) - start) < 0.3
        assert errors == []
        context.close()


def test_a_page_without_narration_has_no_player(tmp_path):
    result = run_publish("build", str(ARTICLE), "--format", "html", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / ARTICLE.stem
    page = (folder / f"{ARTICLE.stem}.html").read_text("utf-8")
    assert "timings.js" not in page and "player.js" not in page and 'class="player"' not in page
    assert not (folder / "player.js").exists()
