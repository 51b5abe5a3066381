"""`publish serve`: build, serve output/ over HTTP, and rebuild and reload the open pages on every save.

The parts, each a well-kept library doing what it is made for:

* HTTP is aiohttp's server. Its file responses answer range requests, which
  the audio player needs to seek ("Listen from here" starts the narration
  in the middle); the standard library's server does not.
* Saves are noticed by watchfiles (inotify on Linux), which also waits for a
  burst of writes from an editor to settle before reporting it.
* Rebuilds run in one builder process started once, which keeps the
  pipeline, WeasyPrint and the speech libraries loaded; the worker processes
  each build forks from it inherit them. The server process itself stays
  small and answers requests while a build runs.
* Open pages learn of a rebuild through server-sent events. The small script
  that listens is added to HTML pages as they are served, never to the
  files in output/.

After a save, the large-print page is rebuilt and reloaded first, then the
other documents (PDF, EPUB), then the narration: the page follows the text
at once, the PDF and the player a little later. A source with a mistake is reported in the terminal
and on the open pages (file:line:column, as `publish check` says it), and
output/ keeps the last good build, which is what is served meanwhile.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import EXIT_OK, EXIT_USAGE, PublishError, display_path

PREFIX = "/__publish__/"                 # the server's own pages; no article folder can have this name
LIVE_SCRIPT = "js/live-reload.js"        # in the theme
# What a save rebuilds, in turn, each published (and its pages reloaded) as soon as it is done: the page first,
# which takes a fraction of a second, then the other documents (the PDF takes a second or two), then the
# narration. The formats of no phase here (a new one) go with the documents.
FIRST, LAST = ("html",), ("audio",)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HEARTBEAT = 15.0                         # seconds between keep-alive comments on the event stream


# -- the builder process ---------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A build for the builder process: which articles, which formats, and where."""

    sources: tuple[str, ...]
    formats: tuple[str, ...]
    theme_dir: str
    out_root: str
    cache_dir: str
    paper: str | None


def _builder_start(formats: tuple[str, ...]) -> None:
    """Set the builder process up: Ctrl-C is the server's, and the libraries are loaded once, now."""
    from . import build, stages
    build._worker_start()
    for module in ("model", "theme", "source"):
        __import__(f"pipeline.{module}")
    for name in formats:
        stages.get(name).preload()


def run_build(request: Request) -> dict:
    """Load the theme and the articles, build them (in the builder process); say what happened.

    Returns the slugs published, the sources that could not be read (their other formats are not tried),
    and every problem as `publish build` prints it, with what it is about: [source, stage or "read", text]
    (the source is "" for the theme and the output folder).
    """
    from dataclasses import replace
    from .build import Job, build
    from .source import load_article
    from .theme import load_theme
    started = time.perf_counter()
    problems: list[list[str]] = []
    unreadable, jobs = [], []
    try:
        theme = load_theme(Path(request.theme_dir))
        if request.paper:
            theme = replace(theme, paper=request.paper)
    except PublishError as exc:
        return {"published": [], "unreadable": list(request.sources), "problems": [["", "read", exc.format()]],
                "seconds": 0.0}
    for source in request.sources:
        try:
            article = load_article(Path(source), source, publisher=theme.organisation, theme=theme)
        except PublishError as exc:
            problems.append([source, "read", exc.format()])
            unreadable.append(source)
            continue
        jobs.append(Job(article, theme, list(request.formats), source))
    if jobs:
        try:
            build(jobs, Path(request.out_root), Path(request.cache_dir))
        except PublishError as exc:
            problems.append(["", "read", exc.format()])
    for job in jobs:
        for name, result in job.stages.items():
            if result.error:
                problems.append([job.source_label, name, f"{job.source_label}: the {name} stage failed:\n"
                                                         f"{result.error.format()}"])
        if job.error:
            problems.append([job.source_label, "read", job.error.format()])
    published = [job.slug for job in jobs if job.ok and any(r.status == "built" for r in job.stages.values())]
    return {"published": published, "unreadable": unreadable, "problems": problems,
            "seconds": round(time.perf_counter() - started, 2)}


class Builder:
    """The builder process, started again should it ever die."""

    def __init__(self, formats: tuple[str, ...]):
        self.formats = formats
        self.pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawned, not forked: the server process runs threads (the file watcher), which a fork would copy mid-step
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_builder_start, initargs=(self.formats,))

    async def run(self, request: Request) -> dict:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, run_build, request)
        except BrokenProcessPool:
            self.pool = self._start()
            return {"published": [], "unreadable": [], "seconds": 0.0,
                    "problems": [["", "read", "publish serve: the builder process ended unexpectedly; save again "
                                                "to rebuild"]]}

    def stop(self) -> None:
        from .build import stop_workers
        stop_workers({"builder": self.pool})


# -- what the open pages are told ---------------------------------------------------------

@dataclass
class Hub:
    """The open pages' event streams, and the problems not yet fixed (told to a page as soon as it connects)."""

    queues: set = field(default_factory=set)
    problems: dict[tuple[str, str], list[str]] = field(default_factory=dict)    # (source, stage or "read") → texts

    def problems_text(self) -> str:
        return "\n\n".join(text for key in sorted(self.problems) for text in self.problems[key])

    def send(self, event: str, data: dict) -> None:
        for queue in self.queues:
            queue.put_nowait((event, data))

    def close(self) -> None:
        """End every event stream, so that stopping the server does not wait for the pages to go."""
        self.send("", {})


def resolve_inside(root: Path, url_path: str) -> Path | None:
    """The file under *root* that a (percent-decoded) URL path names, or None if it would lead outside.

    Refused: `..` and `.` segments, hidden names (the build's lock and staging folders), backslashes, NUL,
    and any path whose real location (after symbolic links) is not inside *root*.
    """
    parts = PurePosixPath("/" + url_path).parts[1:]
    if any(part in ("..", ".") or part.startswith(".") or "\\" in part or "\0" in part for part in parts):
        return None
    target = root.joinpath(*parts)
    try:
        real = target.resolve(strict=False)
    except (OSError, RuntimeError):            # a symlink loop
        return None
    return target if real.is_relative_to(root.resolve()) else None


# -- the server --------------------------------------------------------------------------------

@dataclass
class Server:
    sources: list[Path]
    discover: Path | None                  # source/ when no article was named: new articles are picked up
    theme_dir: Path
    formats: tuple[str, ...]
    out_root: Path
    cache_dir: Path
    paper: str | None
    hub: Hub = field(default_factory=Hub)
    pending: set = field(default_factory=set)
    wake: asyncio.Event | None = None

    def request(self, sources, formats) -> Request:
        return Request(tuple(display_path(s) for s in sources), tuple(formats), str(self.theme_dir),
                       str(self.out_root), str(self.cache_dir), self.paper)

    # -- building ---------------------------------------------------------------------------
    def phases(self) -> list[tuple[str, ...]]:
        first = tuple(f for f in self.formats if f in FIRST)
        last = tuple(f for f in self.formats if f in LAST)
        return [first, tuple(f for f in self.formats if f not in first + last), last]

    async def rebuild(self, builder: Builder, sources: list[Path]) -> None:
        """The page first, then the other documents, then the narration, each reloaded when it is ready."""
        readable = list(sources)
        for formats in self.phases():
            if not formats or not readable:
                continue
            request = self.request(readable, formats)
            outcome = await builder.run(request)
            self.report(request, outcome)
            readable = [s for s in readable if display_path(s) not in outcome["unreadable"]]

    def report(self, request: Request, outcome: dict) -> None:
        """Tell the terminal and the open pages: the problems of the sources just built replace their earlier
        ones (another article's problems stay until it is fixed), and the rebuilt pages reload."""
        for _, _, text in outcome["problems"]:
            print(text, file=sys.stderr, flush=True)
        if outcome["published"]:
            print(f"rebuilt {', '.join(outcome['published'])} ({', '.join(request.formats)}) in "
                  f"{outcome['seconds']:.1f} s", file=sys.stderr, flush=True)
        for source, about in list(self.hub.problems):
            if source in ("", *request.sources) and about in ("read", *request.formats):
                del self.hub.problems[source, about]
        for source, about, text in outcome["problems"]:
            self.hub.problems.setdefault((source, about), []).append(text)
        if self.hub.problems:
            self.hub.send("problems", {"text": self.hub.problems_text()})
        else:
            self.hub.send("clear", {})
        if outcome["published"]:
            self.hub.send("reload", {"slugs": outcome["published"], "formats": list(request.formats)})

    async def rebuild_loop(self, builder: Builder) -> None:
        """Build what changed; changes saved during a build are built together right after it."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            changed, self.pending = sorted(self.pending), set()
            await self.rebuild(builder, [s for s in changed if s.is_file()])

    # -- watching -----------------------------------------------------------------------------
    def watched(self) -> list[Path]:
        folders = {self.theme_dir.resolve()} | {s.resolve().parent for s in self.sources}
        if self.discover:
            folders.add(self.discover.resolve())
        return sorted(folders)

    def affected(self, path: Path) -> list[Path]:
        """The articles a changed file belongs to: all of them for a theme file, else those beside it."""
        if self.discover:
            self.sources = sorted(self.discover.glob("*.yaml"))
        if path.is_relative_to(self.theme_dir.resolve()):
            return list(self.sources)
        if path.suffix == ".yaml":
            return [s for s in self.sources if s.resolve() == path]
        return [s for s in self.sources if s.resolve().parent == path.parent]     # an image beside them

    async def watch(self, stop: asyncio.Event) -> None:
        import watchfiles
        ignored = (self.out_root.resolve(), self.cache_dir.resolve())
        editors_files = watchfiles.DefaultFilter()          # swap and backup files, .git, __pycache__

        def interesting(change, name: str) -> bool:
            return editors_files(change, name) and not any(Path(name).is_relative_to(i) for i in ignored)

        async for changes in watchfiles.awatch(*self.watched(), watch_filter=interesting, stop_event=stop,
                                               debounce=200, step=20):
            for _, name in changes:
                self.pending.update(self.affected(Path(name)))
            if self.pending:
                self.wake.set()

    # -- answering ---------------------------------------------------------------------------
    def app(self):
        from aiohttp import web
        app = web.Application()
        app.router.add_get(PREFIX + "events", self.events)
        app.router.add_get(PREFIX + "live-reload.js", self.live_script)
        app.router.add_get(PREFIX + "preview/{slug}", self.preview)
        app.router.add_get("/{path:.*}", self.file)
        app.on_response_prepare.append(_no_store)
        return app

    async def file(self, request):
        from aiohttp import web
        target = resolve_inside(self.out_root, request.match_info["path"])
        if target is None:
            raise web.HTTPForbidden(text="outside the output folder")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            raise web.HTTPNotFound(text="no such file in the output folder")
        if target.suffix == ".html":
            return web.Response(body=with_live_script(target.read_bytes()), content_type="text/html", charset="utf-8")
        return web.FileResponse(target)

    async def preview(self, request):
        from aiohttp import web
        from .catalogue import CATALOGUE_LANGUAGE, read_entries, template_context
        from .theme import load_theme
        slug = request.match_info["slug"]
        entry = next((e for e in read_entries(self.out_root) if e.slug == slug), None)
        if entry is None:
            raise web.HTTPNotFound(text=f"no published article `{slug}`")
        try:
            theme = load_theme(self.theme_dir)
            context = template_context(theme, entry.facts.get("language") or CATALOGUE_LANGUAGE)
            page = theme.render("catalogue", "preview.html", theme.messages(context["language"]), entry=entry,
                                **context)
        except PublishError as exc:
            raise web.HTTPInternalServerError(text=exc.format())
        return web.Response(body=with_live_script(page.encode("utf-8")), content_type="text/html", charset="utf-8")

    async def live_script(self, request):
        from aiohttp import web
        return web.FileResponse(self.theme_dir / LIVE_SCRIPT)

    async def events(self, request):
        from aiohttp import web
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        self.hub.queues.add(queue)
        if self.hub.problems:
            queue.put_nowait(("problems", {"text": self.hub.problems_text()}))
        try:
            while True:
                try:
                    event, data = await asyncio.wait_for(queue.get(), HEARTBEAT)
                    if not event:
                        break
                    await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                except asyncio.TimeoutError:
                    await response.write(b": still here\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.hub.queues.discard(queue)
        return response


async def _no_store(request, response) -> None:
    """Every answer is fresh: a reloaded page must show the PDF and narration just built, not a cached copy."""
    response.headers["Cache-Control"] = "no-store"


def with_live_script(page: bytes) -> bytes:
    """The page with the live-reload script added before </body> (only as served; the file is unchanged)."""
    tag = f'<script src="{PREFIX}live-reload.js" defer></script>'.encode()
    at = page.rfind(b"</body>")
    return page[:at] + tag + page[at:] if at >= 0 else page + tag


# -- the command ----------------------------------------------------------------------------------

def serve(sources: list[Path], theme_dir: Path, formats: list[str], out_root: Path, cache_dir: Path,
          host: str = "127.0.0.1", port: int = 8000, paper: str | None = None, discover: Path | None = None) -> int:
    server = Server(list(sources), discover, theme_dir, tuple(formats), out_root, cache_dir, paper)
    if host not in LOOPBACK:
        print(f"publish serve: warning: listening on {host}: anyone who can reach this computer can read the "
              "drafts, and there is no password. Leave out --host to keep them on this computer.",
              file=sys.stderr, flush=True)
    try:
        return asyncio.run(_serve(server, host, port))
    except OSError as exc:
        print(f"publish: error: cannot listen on {host}:{port} ({exc.strerror or exc})\n"
              "  how to fix: another program uses that port; choose another with --port", file=sys.stderr)
        return EXIT_USAGE


async def _serve(server: Server, host: str, port: int) -> int:
    from aiohttp import web
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server.wake = asyncio.Event()
    builder = Builder(server.formats)
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None, shutdown_timeout=2.0)
    tasks = []
    try:
        print("publish serve: building…", file=sys.stderr, flush=True)
        first = asyncio.ensure_future(server.rebuild(builder, [s for s in server.sources if s.is_file()]))
        await asyncio.wait([first, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            first.cancel()
            return _stopped()
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        url = f"http://{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}/"
        print(f"publish serve: serving {display_path(server.out_root)} at {url} (Ctrl-C stops)", flush=True)
        for source in server.sources:
            print(f"  preview of {source.stem}: {url}{PREFIX[1:]}preview/{source.stem}", flush=True)
        tasks = [asyncio.ensure_future(server.watch(stop)), asyncio.ensure_future(server.rebuild_loop(builder))]
        await stop.wait()
        return _stopped()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.hub.close()
        await runner.cleanup()
        builder.stop()


def _stopped() -> int:
    print("publish serve: stopped", file=sys.stderr, flush=True)
    return EXIT_OK
