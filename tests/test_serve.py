"""`publish serve`, run as an editor runs it: on a free port, with real saves of the source."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from conftest import EPOCH, ROOT, folder_bytes, run_publish
from test_faults import manifest_matches
from test_html import browser  # noqa: F401 (a fixture)

PAGE = "/notes/notes.html"
BOUND = 240            # seconds: a bound on waiting, not a speed target (bench/ measures speed)


class Served:
    """A running `publish serve`, its output as it goes, and the port it chose."""

    def __init__(self, project: Path, *extra: str, sources: tuple[str, ...] = ("source/notes.yaml",)):
        self.log_out, self.log_err = project / "serve.out", project / "serve.err"
        self.scratch = project / "scratch"              # its temporary files, to see that none is left
        self.scratch.mkdir(exist_ok=True)
        env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PYTHONPATH": str(ROOT), "TMPDIR": str(self.scratch)}
        with self.log_out.open("wb") as out, self.log_err.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "serve", *sources, "--port", "0",
                 "--out", "output", "--cache", "cache", *extra], cwd=project, env=env, stdout=out, stderr=err)
        found = self.wait_for(lambda: re.search(r"at http://([\d.]+):(\d+)/", self.stdout()))
        self.host, self.port = found.group(1), int(found.group(2))

    def stdout(self) -> str:
        return self.log_out.read_text("utf-8", errors="replace")

    def stderr(self) -> str:
        return self.log_err.read_text("utf-8", errors="replace")

    def wait_for(self, condition, what: str = "the server"):
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            found = condition()
            if found:
                return found
            assert self.process.poll() is None, f"serve ended early:\n{self.stdout()}\n{self.stderr()}"
            time.sleep(0.2)
        pytest.fail(f"{what}: nothing after {BOUND} s\n{self.stdout()}\n{self.stderr()}")

    def get(self, path: str) -> tuple[int, str]:
        """GET with the path sent exactly as written (no client-side normalising of `..`)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read().decode("utf-8", errors="replace")
        connection.close()
        return response.status, body

    def events(self) -> list[tuple[str, dict]]:
        """Listen to the server-sent events in the background; the list fills as they come."""
        received: list[tuple[str, dict]] = []
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=BOUND)
        connection.request("GET", "/__publish__/events")
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"

        def listen():
            event = None
            try:
                for raw in response:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        received.append((event, json.loads(line[6:])))
            except (OSError, ValueError):
                pass
        threading.Thread(target=listen, daemon=True).start()
        return received

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.fixture
def project(tmp_path) -> Path:
    made = run_publish("new", "notes", "--dir", str(tmp_path / "source"))
    assert made.returncode == 0, made.stderr
    return tmp_path


def test_a_save_rebuilds_and_reloads_and_a_broken_save_keeps_the_last_good_page(project):
    source = project / "source" / "notes.yaml"
    served = Served(project, "--format", "html,pdf")
    try:
        assert served.host == "127.0.0.1"
        status, page = served.get(PAGE)
        assert status == 200 and "<h1" in page and "Title of the handout" in page
        assert '<script src="/__publish__/live-reload.js" defer></script></body>' in page
        built = (project / "output" / "notes" / "notes.html").read_text("utf-8")
        assert "live-reload" not in built and "__publish__" not in built       # only in the served copy
        status, catalogue = served.get("/")
        assert status == 200 and 'href="notes/notes.html"' in catalogue
        status, preview = served.get("/__publish__/preview/notes")
        assert status == 200 and 'src="notes/notes.pdf"' in preview and re.search(r"PDF handout, \d+ pages?, \d+ kB", preview)

        events = served.events()
        source.write_text(source.read_text("utf-8").replace("title: Title of the handout",
                                                            "title: Caring for your knees"), "utf-8")
        served.wait_for(lambda: ("reload", {"slugs": ["notes"], "formats": ["html"]}) in events, "the page's reload")
        served.wait_for(lambda: ("reload", {"slugs": ["notes"], "formats": ["pdf"]}) in events, "the PDF's reload")
        status, page = served.get(PAGE)
        assert "Caring for your knees" in page and "Title of the handout" not in page
        assert "Caring for your knees" in served.get("/")[1]                   # the catalogue too

        # a mistake: reported with its place, in the terminal and to the open pages; the page stays
        text = source.read_text("utf-8")
        line = text.splitlines().index("  - key_points:") + 1
        source.write_text(text.replace("  - key_points:", "  - key_pionts:"), "utf-8")
        expected = f"source/notes.yaml:{line}:5: error: unknown block kind `key_pionts`"
        problems = served.wait_for(lambda: [data for event, data in events if event == "problems"], "the problems event")
        assert expected in problems[0]["text"] and "did you mean `key_points`?" in problems[0]["text"]
        served.wait_for(lambda: expected in served.stderr(), "the error in the terminal")
        status, page = served.get(PAGE)
        assert status == 200 and "Caring for your knees" in page
        assert (project / "output" / "notes" / "notes.pdf").is_file()
    finally:
        code = served.stop()
    assert code == 0, served.stderr()
    assert "stopped" in served.stderr()
    assert "Traceback" not in served.stderr()


def test_the_server_refuses_every_path_outside_the_output_folder(project):
    secret = project / "source" / "notes.yaml"
    (project / "outside.txt").write_text("private notes of the clinic", "utf-8")
    served = Served(project, "--format", "html")
    try:
        (project / "output" / "escape").symlink_to(project)                  # a link leading out
        (project / "output" / "notes" / "also").symlink_to(project / "source")
        for path in ["/../outside.txt", "/notes/../../outside.txt", "/%2e%2e/outside.txt", "/%2E%2E%2Foutside.txt",
                     "/notes/..%2f..%2foutside.txt", "/notes/%2e%2e/%2e%2e/source/notes.yaml", "/..%5coutside.txt",
                     "/escape/outside.txt", "/notes/also/notes.yaml", "/.notes.lock", "//etc/passwd"]:
            status, body = served.get(path)
            assert status in (400, 403, 404), (path, status)
            assert "private notes" not in body and "Title of the handout" not in body and "root:" not in body, path
        assert secret.read_text("utf-8") not in served.get("/escape/source/notes.yaml")[1]
        assert served.get(PAGE)[0] == 200                                   # the real page is still served
    finally:
        assert served.stop() == 0


def test_listening_beyond_this_computer_is_warned_about(project):
    served = Served(project, "--format", "html", "--host", "0.0.0.0")
    try:
        assert "warning: listening on 0.0.0.0" in served.stderr() and "no password" in served.stderr()
        assert served.get(PAGE)[0] == 200
    finally:
        assert served.stop() == 0


def test_the_open_page_reloads_itself_and_shows_why_a_save_failed(project, browser):  # noqa: F811
    """In Chromium: the page follows the source, and a mistake appears on it without losing the page."""
    source = project / "source" / "notes.yaml"
    served = Served(project, "--format", "html")
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"http://127.0.0.1:{served.port}{PAGE}")
        page.wait_for_selector("html[data-live-reload=on]")        # listening to the server
        page.evaluate("window.notReloadedYet = true")
        source.write_text(source.read_text("utf-8").replace("title: Title of the handout",
                                                            "title: Caring for your knees"), "utf-8")
        page.wait_for_function("document.querySelector('h1').textContent.includes('Caring for your knees')",
                               timeout=BOUND * 1000)
        assert page.evaluate("window.notReloadedYet === undefined")              # reloaded, not patched
        page.wait_for_selector("html[data-live-reload=on]")

        text = source.read_text("utf-8")
        line = text.splitlines().index("  - faq:") + 1
        source.write_text(text.replace("  - faq:", "  - fac:"), "utf-8")
        alert = page.wait_for_selector("[role=alert]", timeout=BOUND * 1000)
        shown = alert.inner_text()
        assert f"source/notes.yaml:{line}:5: error: unknown block kind `fac`" in shown
        assert "shows the last good version" in shown
        assert page.inner_text("h1") == "Caring for your knees"

        source.write_text(text, "utf-8")                                           # fixed: the alert goes
        page.wait_for_function("document.querySelector('[role=alert]') === null", timeout=BOUND * 1000)
        page.context.close()
    finally:
        assert served.stop() == 0


def test_a_problem_stays_on_the_pages_until_its_own_article_is_fixed(tmp_path):
    """Two articles: fixing one, or rebuilding another format, does not hide the other's problem."""
    import asyncio
    from pipeline.serve import Request, Server

    server = Server([tmp_path / "a.yaml", tmp_path / "b.yaml"], None, tmp_path, ("html", "pdf"), tmp_path, tmp_path,
                    None)
    queue: asyncio.Queue = asyncio.Queue()
    server.hub.queues.add(queue)

    def built(sources, formats, problems=(), published=()):
        request = Request(tuple(sources), tuple(formats), "", "", "", None)
        server.report(request, {"published": list(published), "unreadable": [], "seconds": 0.1,
                                "problems": [list(p) for p in problems]})
        return [queue.get_nowait() for _ in range(queue.qsize())]

    broken_a = ("a.yaml", "read", "a.yaml:3:5: error: unknown block kind `sumary`")
    assert built(["a.yaml"], ["html"], [broken_a]) == [("problems", {"text": broken_a[2]})]
    failed_b = ("b.yaml", "pdf", "b.yaml: the pdf stage failed:\nb.yaml: error: no room")
    events = built(["b.yaml"], ["pdf"], [failed_b])
    assert events == [("problems", {"text": broken_a[2] + "\n\n" + failed_b[2]})]
    events = built(["b.yaml"], ["html"], published=["b"])           # b's page is fine; its PDF still is not
    assert events[0] == ("problems", {"text": broken_a[2] + "\n\n" + failed_b[2]})
    assert events[1] == ("reload", {"slugs": ["b"], "formats": ["html"]})
    assert built(["a.yaml"], ["html"], published=["a"])[0] == ("problems", {"text": failed_b[2]})
    assert built(["b.yaml"], ["pdf"], published=["b"])[0] == ("clear", {})


def _edit(source: Path, old: str, new: str) -> None:
    text = source.read_text("utf-8")
    assert old in text, f"the template no longer says {old!r}"
    source.write_text(text.replace(old, new), "utf-8")


def _reloaded(events, fmt: str, count: int = 1) -> bool:
    return sum(1 for event, data in events if event == "reload" and fmt in data["formats"]) >= count


def test_the_narration_builds_beside_the_documents_and_nothing_published_is_lost(project, tmp_path):
    """The page, the PDF and the narration of one article are built side by side and published one by one:
    the folder ends with every output of the last save, each as a build from scratch makes it."""
    source = project / "source" / "notes.yaml"
    # The length guard refuses the template's one-word sentence "Journal." as spoken by espeak-ng (0.36 s
    # against at least 0.6 s expected); that is the guard's matter, not the preview's.
    _edit(source, "Journal. 2025.", "Journal of Examples. 2025.")
    served = Served(project, "--format", "html,pdf,mp3")
    try:
        folder = project / "output" / "notes"
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        assert manifest["stages"]["audio"]["containers"] == ["mp3"]          # the container asked for, alone
        assert (folder / "notes.mp3").is_file() and not (folder / "notes.m4b").exists()
        events = served.events()
        _edit(source, "title: Title of the handout", "title: Caring for your knees")
        for fmt in ("html", "pdf", "audio"):
            served.wait_for(lambda: _reloaded(events, fmt), f"the {fmt} reload")
        assert [data["formats"] for event, data in events if event == "reload"][0] == ["html"]    # the page first
        assert not [data for event, data in events if event == "problems"]
        assert manifest_matches(folder), "a stage's publication lost another's files"
        assert "Caring for your knees" in (folder / "notes.transcript.txt").read_text("utf-8")
        assert "Caring for your knees" in served.get(PAGE)[1]
    finally:
        assert served.stop() == 0, served.stderr()
    # the warm builders make what a build from scratch makes, byte for byte
    built = run_publish("build", str(source), "--format", "html,pdf,mp3", "--out", str(tmp_path / "fresh"),
                        "--cache", str(project / "cache"), env={"SOURCE_DATE_EPOCH": EPOCH})
    assert built.returncode == 0, built.stderr
    for name in ("notes.html", "notes.pdf", "notes.mp3", "notes.vtt", "notes.timings.json"):
        assert (tmp_path / "fresh" / "notes" / name).read_bytes() == (folder / name).read_bytes(), name


@pytest.mark.parametrize("formats", ["html,pdf,epub", "html,pdf-large"])
def test_a_save_during_a_build_is_built_and_the_interrupted_build_is_finished(project, formats):
    """Article a is saved, then b while a's documents are still being built: a's build stops after the
    output it is making (or, for an output no open page shows, such as the large-print PDF, at once), and
    a's remaining outputs are still built, with a's edit."""
    from test_pdf import poppler
    made = run_publish("new", "other", "--dir", str(project / "source"))
    assert made.returncode == 0, made.stderr
    notes, other = project / "source" / "notes.yaml", project / "source" / "other.yaml"
    served = Served(project, "--format", formats, sources=("source/notes.yaml", "source/other.yaml"))
    try:
        events = served.events()
        _edit(notes, "title: Title of the handout", "title: Caring for your knees")
        served.wait_for(lambda: _reloaded(events, "html"), "the page's reload")
        _edit(other, "title: Title of the handout", "title: Caring for your hips")     # a's documents under way
        served.wait_for(lambda: _reloaded(events, "html", 2), "the second page's reload")
        folder = project / "output" / "notes"

        def has_the_edit() -> bool:
            if formats.endswith("pdf-large"):
                return "Caring for your knees" in poppler("pdftotext", folder / "notes.large-print.pdf", "-")
            with zipfile.ZipFile(folder / "notes.epub") as book:
                return any("Caring for your knees" in book.read(name).decode("utf-8", "replace")
                           for name in book.namelist() if name.endswith(".xhtml"))
        served.wait_for(has_the_edit, "a's last output with a's edit")
        assert "Caring for your hips" in served.get("/other/other.html")[1]
        served.wait_for(lambda: manifest_matches(folder) and manifest_matches(project / "output" / "other")
                        and not list((project / "output").glob(".*.staging-*")), "the folders settled")
    finally:
        assert served.stop() == 0, served.stderr()
    assert "Traceback" not in served.stderr() and "leaked" not in served.stderr(), served.stderr()
    assert not list(served.scratch.iterdir()), "temporary files were left (WeasyPrint's fonts?)"


def test_voice_engine_reaches_the_narration_and_its_failure_leaves_the_page_served(project):
    """--voice-engine as for `publish build`: here Piper with a voice model that is missing, which the
    system engine would never look for. The narration fails with the theme's file named; the page builds."""
    import shutil
    shutil.copytree(ROOT / "themes", project / "themes")        # serve uses the folder's own themes
    theme = project / "themes" / "default" / "theme.yaml"
    _edit(theme, "    en: en-us ", "    en: voices/missing.onnx ")
    served = Served(project, "--format", "html,mp3", "--voice-engine", "piper")
    try:
        served.wait_for(lambda: "the voice model `voices/missing.onnx` does not exist" in served.stderr(),
                        "the narration's error")
        status, page = served.get(PAGE)
        assert status == 200 and "Title of the handout" in page
        assert not (project / "output" / "notes" / "notes.mp3").exists()
    finally:
        assert served.stop() == 0, served.stderr()


def test_serve_makes_the_narration_as_the_players_mp3_unless_told_otherwise():
    from dataclasses import replace
    from pipeline.serve import Request, serving_theme
    from pipeline.theme import load_theme

    theme = load_theme(ROOT / "themes" / "default")
    assert theme.audio_formats == ("mp3", "m4b")
    asked = lambda **kw: Request(("a.yaml",), ("audio",), "", "", "", None, **kw)      # noqa: E731
    assert serving_theme(theme, asked()).audio_formats == ("mp3",)
    assert serving_theme(theme, asked(audio_formats=("mp3", "m4b"))).audio_formats == ("mp3", "m4b")
    assert serving_theme(replace(theme, audio_formats=("m4b",)), asked()).audio_formats == ("m4b",)
    assert serving_theme(theme, asked(voice_engine="piper")).voice_engine == "piper"
    assert serving_theme(theme, Request(("a.yaml",), ("pdf",), "", "", "", "letter")).paper == "letter"


def test_the_preview_keeps_the_cache_within_its_limit_after_each_narration(tmp_path):
    """As `publish build` does: what was used longest ago goes once a narration has been built and shown."""
    import shutil
    from pipeline.serve import Request, run_build
    source = tmp_path / "folate.yaml"
    shutil.copy(ROOT / "tests" / "fixtures" / "voice" / "folate.yaml", source)
    cache = tmp_path / "cache"
    old = cache / "speech" / f"{'a' * 64}.wav"               # a sentence spoken for an article long since edited
    old.parent.mkdir(parents=True)
    old.write_bytes(b"\0" * 3 * 2**20)
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    limit = 3 * 2**20
    told = run_build(Request((str(source),), ("audio",), str(ROOT / "themes" / "default"), str(tmp_path / "out"),
                             str(cache), None, cache_limit=limit))
    assert [outcome["published"] for outcome in told] == [["folate"]], told
    assert not old.exists()
    held = folder_bytes(cache)
    spoken = list((cache / "speech").glob("*.wav"))
    assert 0 < held <= limit and len(spoken) == 13           # this narration's speech stays
