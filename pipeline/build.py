"""Build articles: decide what is stale, run stages in parallel, publish atomically.

* Incremental: each (article, stage) has a fingerprint of everything its
  output depends on: the source file and the files it references, every file
  of the theme, the stage's own inputs (engine versions, settings), the
  package version and SOURCE_DATE_EPOCH. It is stored in ``manifest.json``;
  a stage whose fingerprint and files are unchanged is not run again.
* Parallel: stale stages of all articles go to worker processes
  (WeasyPrint and the audio assembly are CPU-bound Python; threads would
  share one core through the GIL). The documents (PDF, EPUB, HTML) and the
  narration have workers of their own, so no worker holds both WeasyPrint
  and the speech libraries.
* Along needs: a stage made from another's files (the read-aloud EPUB from
  the narration, see ``stages.NEEDS``) waits for that stage and reads its
  files from the staging folder, or from the published folder when that
  stage was current. Its fingerprint, taken only then, includes the SHA-256
  of the files it uses: an edit that changes the narration rebuilds it, one
  that leaves the narration as it was does not.
* Atomic: stages render into a private staging folder beside
  ``output/<slug>/`` (same file system, so a move is a rename). Only when
  every stage of an article succeeded is the article's new folder put
  together there (the new files, the previous build's files of the formats
  not rebuilt, ``manifest.json``), flushed to the disk, and swapped with
  ``output/<slug>/`` in one rename: at every instant the folder is wholly
  the previous build or wholly the new one, with its manifest. A failure,
  Ctrl-C or a killed build leaves the previous outputs as they were;
  leftover staging folders are removed by the next build of the article.
* One build of an article at a time: a lock file beside its folder
  (``.<slug>.lock``, kept in place so that every build locks the same
  file); a second build waits for the first, as long as it takes unless
  ``--wait`` says otherwise. The live preview locks each stage instead
  (``.<slug>.<stage>.lock``), so that the narration of an article builds
  while its documents do; the article's lock is then held only while its
  folder is put together and swapped, from the manifest as it is then.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, cache, stages
from .catalogue import article_facts, file_facts, write_catalogue
from .dates import article_epoch
from .errors import EnvironmentProblem, InternalError, LockWaitExpired, Problem, PublishError, cannot_use, display_path
from .files import fsync_file, link_or_copy, manifest_bytes, read_manifest, sha256, swap_in, write_atomic
from .memory import release_freed_memory, settle_worker
from .stages import BuildContext
from .stamp import InputHash, code_hash, theme_digest

if TYPE_CHECKING:         # kept out of a build with nothing to do, which must start quickly (see stamp.py)
    from concurrent.futures import ProcessPoolExecutor
    from filelock import FileLock
    from .model import Article
    from .theme import Theme

OUT_FIX = "choose another output folder with --out DIR"
# Seconds to pause between the steps of publishing, for tests that stop a build there (never set otherwise).
PUBLISH_PAUSE = "PUBLISH_TEST_PUBLISH_PAUSE"
# The order an article's stages start in: the slowest first. On two cores the
# narration, started last, would finish long after the rest had.
SLOWEST_FIRST = ("audio", "pdf", "pdf-large", "epub", "html", "braille", "read-aloud")
# Stages that load the same heavy libraries share their worker processes. A worker keeps what it has
# loaded: one that has laid out a PDF holds WeasyPrint, one that has made a narration holds numpy and
# espeak-ng, and over a batch a worker that did both held both (some 100 MiB, measured). The read-aloud
# EPUB only puts files together (ebooklib, as the EPUB does): it goes with the documents, unless a narration
# worker with nothing left to narrate takes it (LENDABLE) or the documents' workers have ended (_done_groups).
WORKER_GROUP = {"audio": "narration", "pdf": "documents", "pdf-large": "documents", "epub": "documents",
                "html": "documents", "braille": "documents", "read-aloud": "documents"}
# Stages that load no heavy library of their own (a few MiB of ebooklib, liblouis, Jinja): a group whose own work
# in the build is done lends its idle workers to these. After a one-sentence edit of B12 the narration ended
# at 1.5 s while the documents' worker still had 0.2 s of them queued behind the large-print PDF (0.7 s).
LENDABLE = frozenset({"epub", "html", "braille", "read-aloud"})


def worker_group(name: str) -> str:
    """The group of workers that runs stage *name* (a stage not listed has workers of its own)."""
    return WORKER_GROUP.get(name, name)


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH, or None when it is not set: then each article has its own date (dates.py)."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise PublishError(Problem("SOURCE_DATE_EPOCH", 0, 0, f"SOURCE_DATE_EPOCH is `{value}`, not a number of seconds",
                                   "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)"))
    return int(value)


@dataclass
class StageResult:
    name: str
    status: str = "pending"                              # built, cached, failed, skipped (see stages.left_out)
    paths: list[Path] = field(default_factory=list)      # in the staging folder until published, then in place
    seconds: float = 0.0
    report: dict = field(default_factory=dict)           # what the stage counted (e.g. utterances synthesized)
    files: dict[str, dict] = field(default_factory=dict)  # file name → its manifest entry (sha256, bytes, facts)
    error: PublishError | None = None
    fingerprint: str = ""
    worker: str = ""                  # the group of workers that ran it (see WORKER_GROUP and LENDABLE)


@dataclass
class Job:
    """One article to build."""

    article: Article | None          # None when its stamp showed it current without reading it
    theme: Theme | None
    formats: list[str]
    source_label: str
    folder: Path = None
    stages: dict[str, StageResult] = field(default_factory=dict)
    error: PublishError | None = None
    ctx: BuildContext | None = None
    staging: Path | None = None
    locks: list[FileLock] = field(default_factory=list)
    previous: dict = field(default_factory=dict)
    theme_prints: dict[str, str] = field(default_factory=dict)     # stage → the hash of the theme files it reads
    products: dict[str, dict[str, Path]] = field(default_factory=dict)   # stage with needs → the files it uses
    lock_per_stage: bool = False     # the stages' locks are held; the article's is taken only to publish
    found_current: bool = False      # its stamp showed it current: it was never read

    @property
    def slug(self) -> str:
        return self.article.slug if self.article else Path(self.source_label).stem    # (the article's is its file's)

    def let_go(self) -> None:
        """Keep only what the build's report and summary say of it (its stages' status, files, times and
        errors), once it is published or has failed. A batch held every article's model and build state to
        its end: over 1,000 small articles its own process grew to 53 MiB between runs and 97 MiB as it
        wrote the catalogue; letting go of each run, 42 and 72 MiB (measured building their HTML alone)."""
        self.article = self.theme = self.ctx = None
        self.previous, self.theme_prints, self.products, self.locks = {}, {}, {}, []
        for result in self.stages.values():
            result.files = {}            # the manifest's entries: in the manifest now

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.status in ("built", "cached", "skipped") for r in self.stages.values())


class Quiet:
    """Progress events are ignored (also the base of the real displays)."""

    def start(self, jobs): pass
    def stage_started(self, job, name): pass
    def stage_finished(self, job, result): pass
    def article_finished(self, job): pass
    def waiting(self, job): pass
    def stop(self): pass


# -- fingerprints -------------------------------------------------------------

def fingerprint(job: Job, name: str, stage, theme_hash: str, products: dict[str, Path] | None = None) -> str:
    """A hash of everything the stage's output depends on (no absolute paths: it must match across checkouts),
    with the SHA-256 of the other stages' files it is made from (*products*, by name)."""
    h = InputHash()
    h.add("package", f"{__version__} {code_hash()}".encode())
    h.add("stage", name.encode())
    h.add("epoch", str(job.ctx.epoch).encode())
    h.add("source", job.article.source.read_bytes())
    for image in job.article.images():
        h.add("file " + image.path.name, image.path.read_bytes())
    h.add("theme", theme_hash.encode())
    h.add("paper", job.theme.paper.encode())
    h.add("inputs", stage.inputs(job.article, job.theme, job.ctx))
    for product in sorted(products or {}):
        h.add("product " + product, sha256(products[product]).encode())
    return h.hexdigest()


def _up_to_date(job: Job, name: str, print_: str) -> list[Path] | None:
    """The stage's published files, if its fingerprint and files are unchanged; else None."""
    if job.previous.get("stages", {}).get(name, {}).get("fingerprint") != print_:
        return None
    entries = [o for o in job.previous.get("outputs", []) if o.get("format") == name]
    if not entries:
        return None
    paths = []
    for entry in entries:
        path = job.folder / entry["path"]
        if not path.is_file() or path.stat().st_size != entry.get("bytes") or sha256(path) != entry.get("sha256"):
            return None
        paths.append(path)
    return paths


# -- running stages ---------------------------------------------------------------

def run_stage(name: str, article: Article, theme: Theme, workdir: Path, ctx: BuildContext):
    """Run one stage (in a worker process); returns (paths, report, seconds, files): *files* gives each file's
    manifest entry (see `described`).

    Every failure comes back as a PublishError, so one broken stage is
    reported by name and the other articles of a batch still build.
    """
    from .theme import keep_compiled_templates      # (a stage's worker has it loaded already)
    started = time.perf_counter()
    keep_compiled_templates(ctx.cache_dir / cache.TEMPLATES if ctx.cache_dir else None)
    try:
        paths = list(stages.get(name).render(article, theme, workdir, ctx))
        files = {path.name: described(path, ctx.facts.get(path.name)) for path in paths}
    except PublishError:
        raise
    except OSError as exc:
        raise _stage_os_error(name, exc, workdir, ctx) from None
    except Exception as exc:
        if os.environ.get("PUBLISH_DEBUG"):
            raise
        raise InternalError(Problem(article.source.name, 0, 0, f"internal error in the {name} stage: "
                                    f"{type(exc).__name__}: {exc}",
                                    "this is a bug; run again with PUBLISH_DEBUG=1 for the details and report them")) from None
    finally:
        release_freed_memory()         # a worker builds many articles: what this stage freed goes back now
    return paths, dict(ctx.report.get(name, {})), time.perf_counter() - started, files


def described(path: Path, facts: dict | None = None) -> dict:
    """A stage's file as the manifest describes it (its SHA-256, size and what the catalogue says of it: pages,
    length, chapters: *facts* if its stage stated them, else read from the file), once it is on the disk.

    Done by the worker that made it, as soon as it is made: publishing an article then only moves its files.
    In the main process, after the last stage, this came after everything else (a one-sentence edit of B12
    spent 0.3 s there, flushing 20 MB and asking ffprobe about both narration files, one after the other).
    """
    fsync_file(path)                                    # on the disk before the swap makes it visible
    return {"sha256": sha256(path), "bytes": path.stat().st_size, **(file_facts(path) if facts is None else facts)}


def _stage_os_error(name: str, exc: OSError, workdir: Path, ctx: BuildContext) -> EnvironmentProblem:
    """A stage's failure to read or write a file, named by where it happened: the cache or the output folder."""
    place = Path(exc.filename) if exc.filename else workdir
    if ctx.cache_dir and ctx.cache_dir.resolve() in (place.resolve(), *place.resolve().parents):
        return cannot_use(place, f"the {name} stage cannot write in the cache folder", exc, cache.FIX)
    return cannot_use(workdir.parent.parent, f"cannot write the {name} output", exc, OUT_FIX)


def _worker_start(group: str) -> None:
    """Set up a worker process of *group*: Ctrl-C is the parent's to handle, and a worker dies with its parent.

    Without this a worker of a killed build would live on and keep the
    terminal's output open. It is also named after its group (`pub-documents`, `pub-narration`), as
    top and ps show it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # the parent's handler cleans up; a worker just ends
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)    # forked while they were held (_signals_held)
    settle_worker()
    try:
        # the C library the process runs on; ctypes.util.find_library would run `ldconfig -p` (a process) first
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)          # PR_SET_PDEATHSIG (Linux)
        libc.prctl(15, f"pub-{group}".encode()[:15])       # PR_SET_NAME
    except (OSError, AttributeError):
        pass                                   # not Linux: workers still end when their queue closes
    if os.getppid() == 1:                      # the parent died before prctl took effect
        os._exit(1)


def article_lock(out_root: Path, slug: str) -> FileLock:
    """The lock of one article's output folder. Its file stays in place for good: were it removed on release,
    a build waiting on the removed file and one creating a new file could both hold "the" lock."""
    from filelock import FileLock
    return FileLock(str(out_root / f".{slug}.lock"))


def stage_lock(out_root: Path, slug: str, stage: str) -> FileLock:
    """The lock of one stage of an article (see the module's docstring); its file stays too."""
    from filelock import FileLock
    return FileLock(str(out_root / f".{slug}.{stage}.lock"))


def _lock(job: Job, out_root: Path, wait: float | None, progress) -> None:
    """Take the article's lock, or each of its stages' locks (in one order), waiting for another build of
    them (for ever, or *wait* seconds) if one holds them."""
    from filelock import Timeout
    locks = ([stage_lock(out_root, job.slug, name) for name in sorted(job.formats)] if job.lock_per_stage
             else [article_lock(out_root, job.slug)])
    for lock in locks:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            progress.waiting(job)
            try:
                lock.acquire(timeout=-1 if wait is None else wait)
            except Timeout:
                raise LockWaitExpired(Problem(
                    job.source_label, 0, 0, f"another build of this article was still running after {wait:g} s (--wait)",
                    "build again once it has finished, or wait longer (without --wait a build waits as long as it takes)"
                )) from None
        job.locks.append(lock)


def _prepare(job: Job, out_root: Path, cache_dir: Path | None, epoch: int | None, theme_hashes: dict[Path, str]) -> None:
    job.folder = out_root / job.slug
    for stale in out_root.glob(f".{job.slug}.staging-*"):      # left by a killed build
        if not _writer_alive(stale.name.removeprefix(f".{job.slug}.staging-")):
            shutil.rmtree(stale, ignore_errors=True)
    job.previous = read_manifest(job.folder)
    # A stage that can make nothing for this article (a narration in a language no voice speaks) is left out:
    # the other stages see a build without it (the page offers no player), and its earlier files go.
    skipped = {name: reason for name in job.formats if (reason := stages.left_out(name, job.article, job.theme))}
    published = tuple(sorted({o.get("format") for o in job.previous.get("outputs", [])} - {None} - set(skipped)))
    for dependent, needs in stages.NEEDS.items():
        # published and made from a stage this build runs: rebuilt with it if need be (see _plan_dependent),
        # else the folder would offer a read-aloud EPUB with the previous narration
        if dependent in published and dependent not in job.formats and set(needs) & set(job.formats):
            job.formats = [*job.formats, dependent]
    job.ctx = BuildContext(formats=tuple(name for name in job.formats if name not in skipped),
                           epoch=article_epoch(job.article, epoch), published=published, cache_dir=cache_dir)
    for name in job.formats:
        leave_out = stages.theme_folders_ignored(name)
        if (job.theme.root, leave_out) not in theme_hashes:          # the articles of a batch share their theme
            theme_hashes[job.theme.root, leave_out] = theme_digest(job.theme.root, leave_out)
        job.theme_prints[name] = theme_hashes[job.theme.root, leave_out]
    # the stages that need others after those, which have their fingerprints (or results) by then
    for name in sorted(job.formats, key=lambda name: name in stages.NEEDS):
        if name in skipped:
            job.stages[name] = StageResult(name, status="skipped",
                                           report={"reason": skipped[name], "warnings": [skipped[name]]})
            continue
        result = job.stages[name] = StageResult(name)
        if name in stages.NEEDS:
            _plan_dependent(job, name)       # now if what it needs is current, else once that is built
            continue
        result.fingerprint = fingerprint(job, name, stages.get(name), job.theme_prints[name])
        cached = _up_to_date(job, name, result.fingerprint)
        if cached is not None:
            result.status, result.paths = "cached", cached
    if any(r.status == "pending" for r in job.stages.values()):
        job.staging = Path(tempfile.mkdtemp(dir=out_root, prefix=f".{job.slug}.staging-{os.getpid()}-"))


def _writer_alive(name: str) -> bool:
    """Whether the build that made a staging folder (named `<pid>-…`) still runs: with stage locks, another
    build of the same article may be rendering into its own. Folders named otherwise are old: not alive."""
    pid = name.split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False                   # this process's own leftovers are not in use (one build at a time)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True                    # alive, and someone else's
    return True


def _waiting(job: Job, name: str) -> bool:
    """Whether stage *name* still waits for a stage it needs to be built in this build."""
    return any(job.stages[need].status in ("pending", "running")
               for need in stages.NEEDS.get(name, ()) if need in job.stages)


def _plan_dependent(job: Job, name: str) -> bool:
    """Settle a stage with needs once those are built or current: its products, its fingerprint, and whether
    it is current (cached), cannot run (skipped: what it needs failed) or must run (True)."""
    result = job.stages[name]
    if _waiting(job, name):
        return False
    products = {}
    for need in stages.NEEDS[name]:
        if need in job.stages:
            if job.stages[need].status not in ("built", "cached"):
                result.status = "skipped"            # the need's failure is reported; this one has nothing to say
                return False
            paths = job.stages[need].paths
        else:                                        # not asked for in this build: its published files, if any
            paths = [job.folder / o["path"] for o in job.previous.get("outputs", []) if o.get("format") == need]
        products.update({path.name: path for path in paths})
    stage = stages.get(name)
    job.products[name] = {product: products[product] for product in stage.uses(job.article, products)}
    result.fingerprint = fingerprint(job, name, stage, job.theme_prints[name], job.products[name])
    cached = _up_to_date(job, name, result.fingerprint)
    if cached is not None:
        result.status, result.paths = "cached", cached
        return False
    return True


def _released(job: Job, finished: str) -> list[str]:
    """The stages of *job* that needed *finished* and must run now (those found current are settled too)."""
    ready = []
    for name, result in job.stages.items():
        if finished in stages.NEEDS.get(name, ()) and result.status == "pending":
            try:
                if _plan_dependent(job, name):
                    ready.append(name)
            except PublishError as exc:
                result.status, result.error = "failed", exc
    return ready


def _stage_context(job: Job, name: str) -> BuildContext:
    return replace(job.ctx, products=job.products[name]) if name in job.products else job.ctx


def _publish(job: Job) -> None:
    """Put the article's new folder together in the staging folder and swap it in (see the module's docstring)."""
    pause = float(os.environ.get(PUBLISH_PAUSE) or 0)
    new = job.staging / "publish"
    new.mkdir()
    built = [r for r in job.stages.values() if r.status == "built"]
    skipped = [r for r in job.stages.values() if r.status == "skipped"]
    rebuilt = {r.name for r in built + skipped}
    entries, prints = [], {k: v for k, v in job.previous.get("stages", {}).items() if k not in rebuilt}
    for entry in job.previous.get("outputs", []):         # the other formats, as the previous build made them
        name = entry.get("path", "")
        if entry.get("format") in rebuilt or Path(name).name != name or not (job.folder / name).is_file():
            continue
        link_or_copy(job.folder / name, new / name)
        entries.append(entry)
    for result in built:
        time.sleep(pause)
        for path in result.paths:
            os.replace(path, new / path.name)              # flushed and described by its worker (`described`)
            entries.append({"format": result.name, "path": path.name, **result.files[path.name]})
        # and what the stage says it was made with: the narration's files (mp3, m4b) and its voice
        prints[result.name] = {"fingerprint": result.fingerprint,
                               **{k: v for k, v in result.report.items() if k in ("containers", "voice")}}
    for result in skipped:
        prints[result.name] = {"status": "skipped", "reason": result.report["reason"]}
    time.sleep(pause)
    write_atomic(new / "manifest.json", manifest_bytes(job.source_label, entries, prints, article_facts(job.article)))
    time.sleep(pause)
    swap_in(new, job.folder)          # the previous folder is now in the staging folder, removed with it
    for result in built:
        result.paths = [job.folder / path.name for path in result.paths]
    time.sleep(pause)


def _finish(job: Job) -> None:
    if job.staging:
        # After Ctrl-C a helper program of an ended worker may still close a file in it for a moment.
        for _ in range(50):
            shutil.rmtree(job.staging, ignore_errors=True)
            if not job.staging.exists():
                break
            time.sleep(0.1)
    for lock in reversed(job.locks):
        lock.release()                 # the lock file stays (see article_lock)


def start_workers(formats: list[str], articles: int, workers: int | None = None) -> dict[str, ProcessPoolExecutor]:
    """Start the worker processes before the articles are even read, sized as if every requested output were
    stale (as after any edit), and have each load its stages' libraries meanwhile: WeasyPrint alone takes
    0.35 s to import, which then overlaps the reading and fingerprinting of the articles. Hand the pools to
    `build`, which replaces them if the work turns out to be different; `stop_workers` ends them otherwise."""
    sizes = _sizes([(None, name) for name in formats] * articles, max(1, workers or os.cpu_count() or 1))
    if not sizes:
        return {}
    with _signals_held():                  # the pools fork their workers on the first submit
        pools = _pools(sizes)
        for group, pool in pools.items():
            names = [name for name in formats if worker_group(name) == group]
            for _ in range(pool._max_workers):
                pool.submit(_preload, names)
    return pools


def _preload(names: list[str]) -> None:
    for name in names:
        stages.get(name).preload()


def stop_workers(pools: dict[str, ProcessPoolExecutor]) -> None:
    """End the workers now, without waiting for what they are doing (also safe on pools already shut down)."""
    for pool in pools.values():
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
        # Tasks not yet taken by a worker may still be on their way into the pipe to the workers, which
        # nobody reads once they are ended: without this the interpreter waited at exit for that pipe
        # for ever (seen with Python 3.11.2 after Ctrl-C during a build of six formats).
        call_queue = getattr(pool, "_call_queue", None)
        if call_queue is not None:
            call_queue.cancel_join_thread()
        pool.shutdown(wait=False, cancel_futures=True)


def build(jobs: list[Job], out_root: Path, cache_dir: Path | None = None, workers: int | None = None,
          progress=None, pools: dict[str, ProcessPoolExecutor] | None = None, lock_wait: float | None = None,
          lock_per_stage: bool = False, cache_limit: int | None = None) -> list[Job]:
    """Build every job; errors are recorded on the jobs (job.error, stage.error), not raised, except those
    that stop every job (an unusable output or cache folder: an EnvironmentProblem).

    *pools* are workers from `start_workers`; the build owns them and ends them. Another build of an
    article is waited for, as long as it takes or *lock_wait* seconds. *lock_per_stage*: lock the
    articles' stages rather than the articles (the live preview; see the module's docstring).
    *cache_limit*: a batch keeps the cache within it as its narrations finish (`cache.KeptWithin`); pruning
    after the build is the caller's.
    """
    progress = progress or Quiet()
    workers = max(1, workers or os.cpu_count() or 1)
    pools = pools or {}
    try:
        _usable_output_folder(out_root)
        if cache_dir is not None:
            cache.check_folder(cache_dir)
        epoch = source_date_epoch()
        ready, theme_hashes = [], {}
        # Locks are taken in one order (by slug), so that two batches naming the same articles in other
        # orders cannot each hold one that the other waits for.
        seen: dict[str, Job] = {}
        for job in sorted(jobs, key=lambda job: job.slug):
            if job.slug in seen:             # one folder, one lock: the second would wait for the first for ever
                job.error = PublishError(Problem(job.source_label, 0, 0, f"{seen[job.slug].source_label} also "
                                                 f"builds into {job.slug}/", "rename one of the two files"))
                continue
            seen[job.slug] = job
            job.lock_per_stage = lock_per_stage
            try:
                _lock(job, out_root, lock_wait, progress)
            except PublishError as exc:
                job.error = exc
            except OSError as exc:
                job.error = cannot_use(out_root, "cannot lock the article in the output folder", exc, OUT_FIX)
        for job in jobs:
            if job.error:
                continue
            try:
                _prepare(job, out_root, cache_dir, epoch, theme_hashes)
                ready.append(job)
            except PublishError as exc:
                job.error = exc
            except OSError as exc:
                job.error = cannot_use(out_root, "cannot write in the output folder", exc, OUT_FIX)
        progress.start(jobs)
        keeper = (cache.KeptWithin(cache_dir, cache_limit) if cache_dir is not None and cache_limit is not None
                  and len(ready) > 1 else None)      # (a single article's build is pruned after it)
        stale = [(job, name) for job in ready
                 for name in sorted((n for n, r in job.stages.items() if r.status == "pending"), key=_start_rank)]
        tasks = [(job, name) for job, name in stale if not _waiting(job, name)]     # the others follow their needs
        wanted = _sizes(stale, workers)
        if {group: pool._max_workers for group, pool in pools.items()} != wanted:
            stop_workers(pools)                    # started for other work (or for none): start the right ones
            pools = _pools(wanted) if wanted else {}
        if pools:
            _run_pool(pools, tasks, ready, progress, keeper)
            for pool in pools.values():
                pool.shutdown()
        else:
            while tasks:
                job, name = tasks.pop(0)
                _run_one(job, name, progress)
                _keep_within(keeper, job.stages[name])
                tasks += [(job, dependent) for dependent in _released(job, name)]
            for job in ready:
                _close_article(job, progress)
        if ready:       # the catalogue lists what is published now, including articles built before
            from .theme import keep_compiled_templates     # (compiling its template took 0.1 s of each build)
            keep_compiled_templates(cache_dir / cache.TEMPLATES if cache_dir else None)
            write_catalogue(out_root, ready[0].theme, epoch)
    finally:
        stop_workers(pools)         # after a failure or Ctrl-C: end them rather than let them finish (else a no-op)
        for job in jobs:
            _finish(job)
        progress.stop()
    return jobs


def _usable_output_folder(out_root: Path) -> None:
    if out_root.exists() and not out_root.is_dir():
        raise EnvironmentProblem(Problem(display_path(out_root), 0, 0, "the output folder is a file, not a folder",
                                         f"remove or rename that file, or {OUT_FIX}"))
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_use(out_root, "cannot create the output folder", exc, OUT_FIX) from None


def _sizes(tasks: list[tuple[Job | None, str]], workers: int) -> dict[str, int]:
    """Workers for each group of stages that has work, *workers* in all: each group gets one, and every
    further worker goes to the group with the most tasks per worker. None at all for a single task or a
    single worker: the build then runs in this process."""
    if len(tasks) < 2 or workers < 2:
        return {}
    counts: dict[str, int] = {}
    for _, name in tasks:
        group = worker_group(name)
        counts[group] = counts.get(group, 0) + 1
    sizes = {group: 1 for group in counts}
    while sum(sizes.values()) < workers:
        wanting = [group for group in counts if sizes[group] < counts[group]]
        if not wanting:
            break
        sizes[max(wanting, key=lambda group: counts[group] / sizes[group])] += 1
    return sizes


def _pools(sizes: dict[str, int]) -> dict[str, ProcessPoolExecutor]:
    """A pool of worker processes for each group, of the size `_sizes` gave it. The build's helper slots are
    set first: the workers, forked later, inherit them."""
    from concurrent.futures import ProcessPoolExecutor
    stages.share_helper_slots(os.cpu_count() or 1)
    return {group: ProcessPoolExecutor(max_workers=size, initializer=_worker_start, initargs=(group,))
            for group, size in sizes.items()}


def _start_rank(name: str) -> int:
    return SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST)


def _run_one(job: Job, name: str, progress) -> None:
    progress.stage_started(job, name)
    result = job.stages[name]
    workdir = job.staging / name
    workdir.mkdir()
    try:
        result.paths, result.report, result.seconds, result.files = run_stage(name, job.article, job.theme, workdir,
                                                                              _stage_context(job, name))
        result.status = "built"
    except PublishError as exc:
        result.status, result.error = "failed", exc
    progress.stage_finished(job, result)


@contextlib.contextmanager
def _signals_held():
    """Hold Ctrl-C and `kill` while worker processes are forked, and deliver them after.

    The pools fork their workers on the first submit. A signal that arrives
    during a fork is handled inside Python's after-fork callbacks, which
    swallow exceptions: the build went on as if it had never been stopped.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _keep_within(keeper: cache.KeptWithin | None, result: StageResult) -> None:
    """A stage has ended: if it added to the cache (a narration), a batch's cache may need pruning."""
    if keeper is not None and result.status == "built" and result.report.get("cache_bytes_added"):
        keeper.added(result.report["cache_bytes_added"])


def _run_pool(pools, tasks, ready, progress, keeper: cache.KeptWithin | None = None) -> None:
    """Run *tasks* in the workers, each released stage as its needs end, closing each article once done.

    A pool is handed a task only when it has room for it (one per worker, and one more waiting so that no
    worker idles between tasks); the others wait here, in order, and the stages released by others go
    first, in the order they were released. Handed everything at once, a run of a hundred articles queued
    all its documents stages before the first read-aloud EPUB, which is released only when its narration
    ends: no article of the run could be published until nearly all of them could, and they were published
    in bursts. A group with nothing of its own left lends its idle workers to the others' light stages
    (`_lendable`), one at a time, so that no worker idles while another has a queue; once all that is left of
    a group's work is such stages, its workers are ended (`_done_groups`) and another group makes them its
    own, each as soon as it is released, so the articles are still published one by one.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait
    futures = {}
    released = {group: deque() for group in pools}      # handed out first
    waiting = {group: deque() for group in pools}
    handed = dict.fromkeys(pools, 0)
    home = {group: group for group in pools}           # whose queue a group's released stages join
    ended = []                                          # pools of groups done before the others
    for job, name in tasks:
        waiting[worker_group(name)].append((job, name))

    def submit(group: str, job: Job, name: str):
        workdir = job.staging / name
        workdir.mkdir()
        job.stages[name].worker = group
        progress.stage_started(job, name)
        future = pools[group].submit(run_stage, name, job.article, job.theme, workdir, _stage_context(job, name))
        futures[future] = (job, name)
        handed[group] += 1
        return future

    def hand_out() -> set:
        handed_now = set()
        with _signals_held():           # a submit may fork a worker (see _signals_held)
            for group, pool in pools.items():
                while handed[group] <= pool._max_workers and (released[group] or waiting[group]):
                    handed_now.add(submit(group, *(released[group] or waiting[group]).popleft()))
            for group, pool in pools.items():
                while handed[group] < pool._max_workers:
                    task = _lendable(group, released, waiting)
                    if task is None:
                        break
                    handed_now.add(submit(group, *task))
        return handed_now

    closed = set()
    try:
        pending = hand_out()
        for job in ready:                      # articles with nothing to build are done already
            if all(r.status != "pending" for r in job.stages.values()):
                _close_article(job, progress)
                closed.add(id(job))
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job, name = futures[future]
                handed[job.stages[name].worker] -= 1
                result = job.stages[name]
                try:
                    result.paths, result.report, result.seconds, result.files = future.result()
                    result.status = "built"
                except PublishError as exc:
                    result.status, result.error = "failed", exc
                except Exception as exc:     # the worker process died (killed, out of memory)
                    result.status = "failed"
                    result.error = EnvironmentProblem(Problem(job.source_label, 0, 0,
                                                         f"the {name} stage's worker process failed: {type(exc).__name__}",
                                                         "run the build again; if it fails again, build with --jobs 1"))
                progress.stage_finished(job, result)
                _keep_within(keeper, result)
                for dependent in _released(job, name):
                    released[home[worker_group(dependent)]].append((job, dependent))
                if id(job) not in closed and all(r.status != "pending" for r in job.stages.values()):
                    _close_article(job, progress)
                    closed.add(id(job))
            pending |= hand_out()
            for group in _done_groups(pools, handed, released, waiting, ready):     # (none has a queue)
                # let go, not killed: a worker's last act is to remove WeasyPrint's temporary font folder
                ended.append(pools.pop(group))
                ended[-1].shutdown(wait=False)
                heir = next(iter(pools))           # its stages released from now on are the heir's own
                home.update({g: heir for g, h in home.items() if h == group})
        for pool in ended:
            pool.shutdown()        # long gone by now; so that the build never ends before they have
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _done_groups(pools: dict, handed: dict, released: dict, waiting: dict, ready: list[Job]) -> list[str]:
    """The groups whose workers can be ended before the build's end: idle, with nothing of their own left but
    stages another group's worker will take (LENDABLE; the read-aloud EPUBs still waiting for their narration).

    At the end of each run of a batch the narration lags: its last articles were still being spoken and
    encoded while the documents' worker, done, held its 75 to 85 MiB. That moment was the batch's peak.
    (Were those stages merely lent, they would wait for the last narration of the run: 120 s, measured.)
    """
    idle = [group for group in pools if not (handed[group] or released[group] or waiting[group])]
    if not idle or len(pools) < 2:      # (the last group keeps its workers: someone has to run what is left)
        return []                       # most stages' ends come here, without a look at every article's stages
    left = {worker_group(name) for job in ready for name, result in job.stages.items()
            if result.status == "pending" and not result.worker and name not in LENDABLE}
    return [group for group in idle if group not in left][:len(pools) - 1]


def _lendable(idle: str, released: dict, waiting: dict):
    """A task another group has waiting that the *idle* group's worker may run (a stage in LENDABLE), taken from
    its queue, released ones first; else None. Only a group with no work of its own left lends: a worker that
    took, say, the large-print PDF would load WeasyPrint into the narration's process, which a batch's next
    narrations would carry."""
    if released[idle] or waiting[idle]:
        return None
    for queues in (released, waiting):
        for group, queue in queues.items():
            if group == idle:
                continue
            for task in queue:
                if task[1] in LENDABLE:
                    queue.remove(task)
                    return task
    return None


def _close_article(job: Job, progress) -> None:
    try:
        with _publishing(job):
            if job.ok and any(r.status == "built" for r in job.stages.values()):
                _publish(job)
            elif job.ok and not (job.folder / "manifest.json").is_file():
                job.folder.mkdir(exist_ok=True)
                write_atomic(job.folder / "manifest.json", manifest_bytes(job.source_label, [], {}, article_facts(job.article)))
    except OSError as exc:
        job.error = cannot_use(job.folder, "cannot publish the outputs", exc, OUT_FIX)
    progress.article_finished(job)


@contextlib.contextmanager
def _publishing(job: Job):
    """With stage locks, hold the article's lock while its folder is put together, from the manifest as it
    is now: another stage of the article may have been published since this build began."""
    if not job.lock_per_stage:
        yield                          # the article's lock is held for the whole build
        return
    lock = article_lock(job.folder.parent, job.slug)
    with lock:
        job.previous = read_manifest(job.folder)
        yield
