"""`publish serve`: build, serve output/ over HTTP, and rebuild and reload the open pages on every save.

The parts, each a well-kept library doing what it is made for:

* HTTP is aiohttp's server. Its file responses answer range requests, which
  the audio player needs to seek ("Listen from here" starts the narration
  in the middle); the standard library's server does not.
* Saves are noticed by watchfiles (inotify on Linux), which also waits for a
  burst of writes from an editor to settle before reporting it.
* Rebuilds run in two builder processes started once, side by side (one
  core each): one for the documents, which keeps WeasyPrint loaded, and
  one for the narration, which keeps the speech libraries loaded; the
  worker processes a build forks from them inherit these. Each stage of an
  article has its own lock (the article's is held only while its folder
  is swapped), so the narration of the article just saved builds while
  its documents do. The server process itself stays small and answers
  requests while they build.
* Open pages learn of a rebuild through server-sent events. The small script
  that listens is added to HTML pages as they are served, never to the
  files in output/.

After a save, the documents' builder publishes the large-print page first,
then the PDF, and the open pages reload after each: the page follows the
text at once, the PDF preview a moment later. Then it publishes the other
documents (braille, EPUB, large-print PDF), without reloading the pages.
Meanwhile the narration's builder makes the MP3 the player uses,
re-encoding only the chapter that changed, and the pages reload once more;
the M4B audiobook is made by `publish build` (or here when `--format` names
it), as its AAC encoding would double the wait for the player. A save that
comes during a build stops it before its next output (or at once, for an
output no page shows), and everything is built again with the new save.
A source with a mistake is reported in the terminal and on the open pages
(file:line:column, as `publish check` says it), and output/ keeps the last
good build, which is what is served meanwhile.
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

from .cache import DEFAULT_LIMIT, keep_within
from .errors import EXIT_OK, EXIT_USAGE, PublishError, display_path

PREFIX = "/__publish__/"                 # the server's own pages; no article folder can have this name
LIVE_SCRIPT = "js/live-reload.js"        # in the theme
# What a save rebuilds, in turn, each published as soon as it is done: the page first, which takes a fraction
# of a second, then the PDF (about half a second), each reloading the open pages; then the other documents
# one by one, the quickest first, without reloading them (they would lose their place in the PDF preview
# for a change in a file size). The narration builds beside them in a builder of its own, and reloads; the
# read-aloud EPUB, made from the narration, follows it in the same builder.
FIRST, SECOND, NARRATION = ("html",), ("pdf",), ("audio", "read-aloud")
QUICKEST_FIRST = ("braille", "epub", "pdf-large")       # processor time for the B12 article: 0.05–0.1, 0.05, 0.8 s
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HEARTBEAT = 15.0                         # seconds between keep-alive comments on the event stream


# -- the builder process ---------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A build for a builder process: which articles, which formats, and where."""

    sources: tuple[str, ...]
    formats: tuple[str, ...]
    theme_dir: str
    out_root: str
    cache_dir: str
    paper: str | None
    audio_formats: tuple[str, ...] | None = None     # the narration files asked for; None: the MP3 (see above)
    voice_engine: str | None = None                  # None: the theme's
    cache_limit: int = DEFAULT_LIMIT                 # the cache is kept within it after each narration


def phases(formats: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The formats of a builder, in the groups it publishes them in, one after the other."""
    first = tuple(f for f in formats if f in FIRST)
    second = tuple(f for f in formats if f in SECOND)
    rest = sorted((f for f in formats if f not in first + second),
                  key=lambda f: QUICKEST_FIRST.index(f) if f in QUICKEST_FIRST else len(QUICKEST_FIRST))
    return [group for group in (first, second, *((f,) for f in rest)) if group]


def reloads(group: tuple[str, ...], formats: tuple[str, ...]) -> bool:
    """Whether publishing *group* reloads the open pages: the page, the PDF and the narration do; the other
    documents only when the builder makes none of those (else the next reload shows them)."""
    shown = FIRST + SECOND + NARRATION[:1]
    return any(f in shown for f in group) or not any(f in shown for f in formats)


def builder_formats(formats: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The formats of each builder process: the documents, and the narration."""
    narration = tuple(f for f in NARRATION if f in formats)          # the narration before what is made from it
    return [lane for lane in (tuple(f for f in formats if f not in narration), narration) if lane]


def serving_theme(theme, request: Request):
    """The theme as `publish serve` builds with it: the command line's choices, and the narration as the MP3
    the player uses (if the theme makes one), unless the command line named the narration's files."""
    from dataclasses import replace
    if request.paper:
        theme = replace(theme, paper=request.paper)
    if request.voice_engine:
        theme = replace(theme, voice_engine=request.voice_engine)
    if request.audio_formats:
        return replace(theme, audio_formats=request.audio_formats)
    return replace(theme, audio_formats=("mp3",)) if "mp3" in theme.audio_formats else theme


# In a builder process: where it tells the server of each group of formats published, and the server's sign
# that a save came since this build began (which builds every group again).
_REPORTS = _SUPERSEDED = None


def _builder_start(formats: tuple[str, ...], reports=None, superseded=None) -> None:
    """Set a builder process up: Ctrl-C is the server's, and the libraries are loaded once, now."""
    global _REPORTS, _SUPERSEDED
    from . import build, stages
    _REPORTS, _SUPERSEDED = reports, superseded
    build._worker_start("preview")
    for module in ("model", "theme", "source"):
        __import__(f"pipeline.{module}")
    for name in formats:
        stages.get(name).preload()


def run_build(request: Request) -> list[dict]:
    """Load the theme and the articles, and build them group by group (`phases`), in a builder process.

    After each group it tells the server (and returns, in the end, all it told): the sources and formats
    the group was about, the slugs published, whether the open pages reload (`reloads`), the sources
    that could not be read (told with the first group; their other formats are not tried), and every
    problem as `publish build` prints it, with what it is about: [source, stage or "read", text] (the
    source is "" for the theme and the output folder). When a save came meanwhile, it stops between two
    groups, or ends a group that reloads no page at once (`stoppable`), and says so ("superseded"): the
    server builds them all again, with the new save.
    """
    from .source import load_article
    from .theme import load_theme
    told: list[dict] = []

    def tell(sources, formats, published, unreadable, problems, started, superseded=False) -> None:
        outcome = {"sources": list(sources), "formats": list(formats), "published": published,
                   "reload": reloads(tuple(formats), request.formats),
                   "unreadable": unreadable, "problems": problems, "seconds": round(time.perf_counter() - started[0], 2),
                   "processor_seconds": round(processor_seconds() - started[1], 2), "superseded": superseded}
        told.append(outcome)
        if _REPORTS is not None:
            _REPORTS.send(outcome)

    started = time.perf_counter(), processor_seconds()
    problems: list[list[str]] = []
    unreadable, articles = [], []
    try:
        theme = serving_theme(load_theme(Path(request.theme_dir)), request)
    except PublishError as exc:
        tell(request.sources, request.formats, [], list(request.sources), [["", "read", exc.format()]], started)
        return told
    for source in request.sources:
        try:
            articles.append((source, load_article(Path(source), source, publisher=theme.organisation,
                                                  theme=theme)))
        except PublishError as exc:
            problems.append([source, "read", exc.format()])
            unreadable.append(source)
    if not articles:
        tell(request.sources, request.formats, [], unreadable, problems, started)
        return told
    for formats in phases(request.formats):
        group = (build_group, request, theme, articles, formats)
        built = None
        if not (_SUPERSEDED is not None and _SUPERSEDED.value):
            built = stoppable(*group) if _SUPERSEDED is not None and not reloads(formats, request.formats) \
                else build_group(*group[1:])
        if built is None:
            tell([source for source, _ in articles], (), [], [], [], started, superseded=True)
            break
        published, more = built
        tell([*unreadable, *(source for source, _ in articles)], formats, published, unreadable, problems + more,
             started)
        if "audio" in formats:          # what adds to the cache; pruned once the page has been told to reload
            keep_within(Path(request.cache_dir), request.cache_limit)
        problems, unreadable, started = [], [], (time.perf_counter(), processor_seconds())
    return told


def processor_seconds() -> float:
    """The builder's processor time so far, with its helper programs' (speech, encoders) and forks' once ended:
    on a busy machine the time a build takes says little, this says what it would take on an idle one."""
    import resource
    own, helpers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + helpers.ru_utime + helpers.ru_stime


def build_group(request: Request, theme, articles: list, formats: tuple[str, ...]) -> tuple[list[str], list]:
    """Build one group of formats of the articles: the slugs published, and the problems."""
    from .build import Job, build
    problems: list[list[str]] = []
    jobs = [Job(article, theme, list(formats), source) for source, article in articles]
    try:
        build(jobs, Path(request.out_root), Path(request.cache_dir), lock_per_stage=True)
    except PublishError as exc:
        problems.append(["", "read", exc.format()])
    for job in jobs:
        for name, result in job.stages.items():
            if result.error:
                problems.append([job.source_label, name, f"{job.source_label}: the {name} stage failed:\n"
                                                         f"{result.error.format()}"])
        if job.error:
            problems.append([job.source_label, "read", job.error.format()])
    return [job.slug for job in jobs if job.ok and any(r.status == "built" for r in job.stages.values())], problems


def stoppable(build_group, *args) -> tuple[list[str], list] | None:
    """build_group(*args) in a process forked for it, ended at once when a save comes (then None).

    Ending it is ending a build anywhere, which the build is made to survive (its tests kill it at random
    points): the article's folder is wholly the old one or wholly the new one, the locks go with the
    process, and its staging folder is removed by the next build of the article. The page and the PDF are
    never built so: a save that comes while they build waits for them, a fraction of a second.
    """
    import shutil
    import tempfile
    context = multiprocessing.get_context("fork")      # the builder runs no thread; the child inherits it warm
    receiver, sender = context.Pipe(duplex=False)
    # Its libraries' temporary files (WeasyPrint's fonts) go in a folder removed however it ends.
    scratch = tempfile.mkdtemp(prefix="publish-serve-")

    def child() -> None:
        from .build import _worker_start
        _worker_start("preview")                        # and it ends with the builder
        tempfile.tempdir = scratch
        sender.send(build_group(*args))

    process = context.Process(target=child)
    process.start()
    sender.close()
    try:
        while not receiver.poll(0.02):
            if _SUPERSEDED.value:
                process.kill()
                return None
            if not process.is_alive() and not receiver.poll():
                return [], [["", "read", "publish serve: a build process ended unexpectedly; save again to rebuild"]]
        return receiver.recv()
    finally:
        process.join()
        receiver.close()
        shutil.rmtree(scratch, ignore_errors=True)


class Builder:
    """A builder process, started again should it ever die. It tells of each group of formats as soon as
    it is published, through a pipe, while the build goes on."""

    def __init__(self, formats: tuple[str, ...]):
        self.formats = formats
        self.busy = False
        self.pool, self.reports = self._start()

    def _start(self):
        # spawned, not forked: the server process runs threads (the file watcher), which a fork would copy mid-step
        context = multiprocessing.get_context("spawn")
        reports, sender = context.Pipe(duplex=False)
        # a byte of shared memory: an Event's semaphores would be reported as leaked when the server stops
        self.superseded = context.RawValue("b", 0)
        pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_builder_start,
                                   initargs=(self.formats, sender, self.superseded))
        return pool, reports

    def supersede(self) -> None:
        """A save came: a build under way stops after the group it is building."""
        self.superseded.value = 1

    async def run(self, request: Request, report) -> bool:
        """Build, and call report(request, outcome) for each group of formats as soon as it is published.
        Returns whether the build stopped for a newer save before its last group."""
        loop = asyncio.get_running_loop()
        reports, told, superseded = self.reports, 0, False
        self.busy = True
        self.superseded.value = 0           # the save being built now is in the request

        def read() -> None:
            nonlocal told
            try:
                while reports.poll():
                    outcome = reports.recv()
                    told += 1
                    tell(outcome)
            except (EOFError, OSError):        # the builder ended: the pool says so below
                loop.remove_reader(reports.fileno())

        def tell(outcome: dict) -> None:
            nonlocal superseded
            if outcome.get("superseded"):
                superseded = True
            else:
                report(_about(request, outcome), outcome)

        loop.add_reader(reports.fileno(), read)
        try:
            outcomes = await loop.run_in_executor(self.pool, run_build, request)
            read()                          # what was sent just before the build returned
            for outcome in outcomes[told:]:         # (none, unless the pipe failed)
                tell(outcome)
        except BrokenProcessPool:
            loop.remove_reader(reports.fileno())
            reports.close()
            self.pool, self.reports = self._start()
            report(request, {"published": [], "unreadable": [], "seconds": 0.0,
                             "problems": [["", "read", "publish serve: the builder process ended unexpectedly; "
                                                        "save again to rebuild"]]})
        finally:
            self.busy = False
            if not reports.closed:
                loop.remove_reader(reports.fileno())
        return superseded

    def stop(self) -> None:
        """End the builder: an idle one as a process ends normally (it removes the semaphores its builds made
        for their workers, which would otherwise be reported as leaked), a busy one at once."""
        from .build import stop_workers
        if not self.busy:
            self.pool.shutdown(wait=True)
        stop_workers({"builder": self.pool})


def _about(request: Request, outcome: dict) -> Request:
    from dataclasses import replace
    return replace(request, sources=tuple(outcome["sources"]), formats=tuple(outcome["formats"]))


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
class Lane:
    """A builder process and the sources saved since its last build began."""

    builder: Builder
    pending: set = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Server:
    sources: list[Path]
    discover: Path | None                  # source/ when no article was named: new articles are picked up
    theme_dir: Path
    formats: tuple[str, ...]
    out_root: Path
    cache_dir: Path
    paper: str | None
    audio_formats: tuple[str, ...] | None = None
    voice_engine: str | None = None
    cache_limit: int = DEFAULT_LIMIT
    hub: Hub = field(default_factory=Hub)
    lanes: list[Lane] = field(default_factory=list)

    def request(self, sources, formats) -> Request:
        return Request(tuple(display_path(s) for s in sources), tuple(formats), str(self.theme_dir),
                       str(self.out_root), str(self.cache_dir), self.paper, self.audio_formats, self.voice_engine,
                       self.cache_limit)

    # -- building ---------------------------------------------------------------------------
    def start_builders(self) -> None:
        self.lanes = [Lane(Builder(formats)) for formats in builder_formats(self.formats)]

    def stop_builders(self) -> None:
        for lane in self.lanes:
            lane.builder.stop()

    async def rebuild(self, lane: Lane, sources: list[Path]) -> None:
        """Build the lane's formats of *sources*, each group reloaded as soon as it is published."""
        if sources and await lane.builder.run(self.request(sources, lane.builder.formats), self.report):
            lane.pending.update(sources)        # stopped for a newer save: its groups not yet built come next

    async def rebuild_all(self, sources: list[Path]) -> None:
        """The documents and the narration side by side."""
        await asyncio.gather(*(self.rebuild(lane, sources) for lane in self.lanes))

    def report(self, request: Request, outcome: dict) -> None:
        """Tell the terminal and the open pages: the problems of the sources just built replace their earlier
        ones (another article's problems stay until it is fixed), and the rebuilt pages reload."""
        for _, _, text in outcome["problems"]:
            print(text, file=sys.stderr, flush=True)
        if outcome["published"]:
            print(f"rebuilt {', '.join(outcome['published'])} ({', '.join(request.formats)}) in "
                  f"{outcome['seconds']:.2f} s ({outcome.get('processor_seconds', 0):.2f} s of processor time)",
                  file=sys.stderr, flush=True)
        for source, about in list(self.hub.problems):
            if source in ("", *request.sources) and about in ("read", *request.formats):
                del self.hub.problems[source, about]
        for source, about, text in outcome["problems"]:
            self.hub.problems.setdefault((source, about), []).append(text)
        if self.hub.problems:
            self.hub.send("problems", {"text": self.hub.problems_text()})
        else:
            self.hub.send("clear", {})
        if outcome["published"] and outcome.get("reload", True):
            self.hub.send("reload", {"slugs": outcome["published"], "formats": list(request.formats)})

    async def rebuild_loop(self, lane: Lane) -> None:
        """Build what changed; changes saved during a build are built together right after it."""
        while True:
            await lane.wake.wait()
            lane.wake.clear()
            changed, lane.pending = sorted(lane.pending), set()
            await self.rebuild(lane, [s for s in changed if s.is_file()])

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
            affected = {source for _, name in changes for source in self.affected(Path(name))}
            if affected:
                for lane in self.lanes:
                    lane.pending.update(affected)
                    lane.wake.set()
                    lane.builder.supersede()

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
          host: str = "127.0.0.1", port: int = 8000, paper: str | None = None, discover: Path | None = None,
          audio_formats: tuple[str, ...] | None = None, voice_engine: str | None = None,
          cache_limit: int = DEFAULT_LIMIT) -> int:
    server = Server(list(sources), discover, theme_dir, tuple(formats), out_root, cache_dir, paper, audio_formats,
                    voice_engine, cache_limit)
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
    server.start_builders()
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None, shutdown_timeout=2.0)
    tasks = []
    try:
        print("publish serve: building…", file=sys.stderr, flush=True)
        first = asyncio.ensure_future(server.rebuild_all([s for s in server.sources if s.is_file()]))
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
        tasks = [asyncio.ensure_future(server.watch(stop)),
                 *(asyncio.ensure_future(server.rebuild_loop(lane)) for lane in server.lanes)]
        await stop.wait()
        return _stopped()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.hub.close()
        await runner.cleanup()
        server.stop_builders()


def _stopped() -> int:
    print("publish serve: stopped", file=sys.stderr, flush=True)
    return EXIT_OK
