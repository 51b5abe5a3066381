"""The `publish` command: parse arguments, run check or build, print errors, set the exit code."""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

from . import __version__, cache, stages, stamp
from .build import Job, StageResult, build, source_date_epoch, start_workers, stop_workers
from .errors import (EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EnvironmentProblem, Problem, PublishError,
                     cannot_use, display_path)
from .progress import Lines, Live_, Quiet, summary

# The article parser, the theme and rich are imported only when needed: a build with nothing to do
# answers from the stamps (stamp.py) without them.


def project_root() -> Path:
    """The folder holding source/ and themes/: the current folder if it has them, else this checkout."""
    cwd = Path.cwd()
    if (cwd / "themes").is_dir():
        return cwd
    return Path(__file__).resolve().parent.parent


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):      # argparse exits 2 itself; keep its message, add how to get help
        self.print_usage(sys.stderr)
        print(f"publish: error: {message}\n  run `publish --help` for the options", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="publish", description=(
        "Turn YAML articles into an accessible print PDF, EPUB 3, large-print HTML page and audio narration."))
    parser.add_argument("--version", action="version", version=f"publish {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    build = sub.add_parser("build", help="build articles into output/<slug>/",
                           description="Build articles into output/<slug>/ (every article under source/ when none is named).")
    build.add_argument("sources", nargs="*", metavar="SOURCE", help="article YAML files (default: source/*.yaml)")
    build.add_argument("--format", default="", metavar="LIST",
                       help="comma-separated formats to build: " + ", ".join(stages.STAGE_MODULES) + " (default: all available)")
    build.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/ (default: default)")
    build.add_argument("--out", default=None, metavar="DIR", help="output folder (default: output/)")
    build.add_argument("--paper", choices=("a4", "letter"), help="paper size of the PDF (default: the theme's)")
    build.add_argument("--cache", default=None, metavar="DIR", help="folder for caches such as synthesized speech (default: .cache/)")
    build.add_argument("--cache-limit", default=cache.DEFAULT_LIMIT, type=_size, metavar="SIZE",
                       help="keep the cache within SIZE, removing what was used longest ago (default: 2G)")
    build.add_argument("--report", default=None, metavar="FILE", help="also write a JSON report of what was built")
    build.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                       help="run at most N stages at once (default: the number of CPU cores)")
    build.add_argument("--wait", type=_seconds, default=None, metavar="SECONDS",
                       help="wait at most SECONDS for another build of the same article to finish "
                            "(default: as long as it takes)")
    noise = build.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    noise.add_argument("--verbose", "-v", action="store_true", help="print every step")

    check = sub.add_parser("check", help="validate articles without building",
                           description="Validate articles and the theme; print every problem found.")
    check.add_argument("sources", nargs="+", metavar="SOURCE", help="article YAML files")
    check.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/")
    return parser


def _size(text: str) -> int:
    try:
        return cache.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"`{text}` is not a number of seconds (0 or more)")
    return value


def parse_formats(value: str) -> list[str]:
    available = stages.available()
    if not value:
        return available
    wanted = [f.strip().lower() for f in value.split(",") if f.strip()]
    for name in wanted:
        if name not in stages.STAGE_MODULES:
            close = difflib.get_close_matches(name, stages.STAGE_MODULES, n=1)
            raise UsageError(f"unknown format `{name}`" + (f"; did you mean `{close[0]}`?" if close else "")
                             + f" (formats: {', '.join(stages.STAGE_MODULES)})")
        if name not in available:
            raise UsageError(f"the `{name}` format is not available in this version")
    return sorted(set(wanted), key=list(stages.STAGE_MODULES).index)


def find_sources(names: list[str], root: Path) -> list[Path]:
    if names:
        paths = [Path(n) for n in names]
        for p in paths:
            if not p.is_file():
                raise UsageError(f"no such article file: {p}")
        return paths
    found = sorted((root / "source").glob("*.yaml"))
    if not found:
        raise UsageError(f"no articles found in {root / 'source'}; name a SOURCE file")
    return found


display_name = display_path


_MAIN_PID = os.getpid()


def _stop(signum, frame):
    if os.getpid() != _MAIN_PID:      # a build worker that has not yet replaced this handler: just end
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    # Ctrl-C and `kill` both stop the build cleanly (temporary files removed, outputs untouched), even
    # when the shell that started us in the background told it to ignore Ctrl-C.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("publish: interrupted; the previous outputs are unchanged", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:   # a bug, not the user's mistake: say so plainly, without a traceback
        if os.environ.get("PUBLISH_DEBUG"):
            raise
        print(f"publish: internal error: {type(exc).__name__}: {exc}\n"
              "  this is a bug in publish; run again with PUBLISH_DEBUG=1 to see the details, and report them",
              file=sys.stderr)
        return EXIT_BUG


def run(args: argparse.Namespace) -> int:
    root = project_root()
    formats: list[str] = []
    try:
        theme_dir = root / "themes" / args.theme
        if not theme_dir.is_dir() or "/" in args.theme or args.theme.startswith("."):
            raise UsageError(f"no theme `{args.theme}` in {root / 'themes'}")
        if args.command == "build":
            formats = parse_formats(args.format)
            if args.jobs is not None and args.jobs < 1:
                raise UsageError("--jobs must be at least 1")
        sources = find_sources(args.sources, root)
    except UsageError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    keys, out_root, cache_dir = {}, Path(), Path()
    if args.command == "build":
        out_root = Path(args.out) if args.out else Path(display_name(root / "output"))
        cache_dir = Path(args.cache) if args.cache else root / ".cache"
        try:
            epoch = source_date_epoch()
            _check_report_path(args.report)
        except PublishError as exc:
            print(exc.format(), file=sys.stderr)
            return exc.exit_code
        options = f"formats {','.join(formats)}; theme {args.theme}; paper {args.paper or 'theme'}"
        try:
            shared = stamp.shared_key(theme_dir, options, epoch)
            keys = {display_name(path): stamp.key(path, shared) for path in sources}
        except OSError:
            pass                          # an unreadable file: the full check reports it
        current = _current_jobs(sources, formats, keys, out_root, cache_dir)
        if current is not None:
            return _report(args, current, EXIT_OK, _progress(args))

    # Something may have to be built: the workers start now and load their libraries while the articles
    # are read (the build ends them; stopping them again is harmless). The document model and the themes
    # are imported first, so that every worker inherits them rather than importing them again.
    for module in ("pipeline.model", "pipeline.theme"):
        importlib.import_module(module)
    pools = start_workers(formats, len(sources), args.jobs) if args.command == "build" else {}
    try:
        return _load_and_build(args, theme_dir, sources, formats, keys, out_root, cache_dir, pools)
    finally:
        stop_workers(pools)


def _load_and_build(args: argparse.Namespace, theme_dir: Path, sources: list[Path], formats: list[str],
                    keys: dict[str, str], out_root: Path, cache_dir: Path, pools: dict) -> int:
    """Read the theme and the articles (`check` stops there), then build them."""
    from .source import load_article
    from .theme import load_theme
    try:
        theme = load_theme(theme_dir)
        if getattr(args, "paper", None):
            theme = replace(theme, paper=args.paper)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code

    status = EXIT_OK
    articles = []
    for path in sources:
        name = display_name(path)
        try:
            article = load_article(path, name, publisher=theme.organisation)
        except PublishError as exc:
            print(exc.format(), file=sys.stderr)
            status = max(status, exc.exit_code)
            continue
        if args.command == "check":
            print(f"{name}: ok ({sum(1 for _ in article.sentences())} sentences, {len(article.outline())} headings)")
        articles.append((name, article))
    if args.command == "check" or not articles:
        return status

    jobs = [Job(article, theme, formats, name) for name, article in articles]
    referenced = {job.source_label: stamp.digests([image.path for image in job.article.images()]) for job in jobs}
    progress = _progress(args)
    try:
        build(jobs, out_root, cache_dir, workers=args.jobs, progress=progress, pools=pools, lock_wait=args.wait)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    for job in jobs:
        if job.ok and job.source_label in keys:
            stamp.save(cache_dir, job.folder, keys[job.source_label], referenced[job.source_label])
    removed, freed = cache.prune(cache_dir, args.cache_limit)
    if removed and args.verbose:
        print(f"cache: removed {removed} files ({freed / 2**20:.1f} MB) used longest ago, to keep it within "
              f"{args.cache_limit / 2**20:.0f} MB", file=sys.stderr)
    return _report(args, jobs, status, progress)


def _progress(args: argparse.Namespace):
    if args.quiet:
        return Quiet()
    if sys.stderr.isatty():
        from rich.console import Console
        return Live_(Console(stderr=True))
    return Lines(verbose=args.verbose)


def _current_jobs(sources: list[Path], formats: list[str], keys: dict[str, str], out_root: Path,
                  cache_dir: Path) -> list[Job] | None:
    """Every article as an up-to-date job, if every one's stamp says so; else None (the full check decides)."""
    jobs = []
    for path in sources:
        name = display_name(path)
        folder = out_root / path.stem
        manifest = stamp.current(cache_dir, folder, keys[name]) if name in keys else None
        if manifest is None:
            return None
        job = Job(None, None, formats, name, folder=folder)
        for fmt in formats:
            paths = [folder / o["path"] for o in manifest.get("outputs", []) if o.get("format") == fmt]
            if not paths:
                return None
            job.stages[fmt] = StageResult(fmt, status="cached", paths=paths)
        jobs.append(job)
    return jobs


def _report(args: argparse.Namespace, jobs: list[Job], status: int, progress) -> int:
    """Say what went wrong and what was built: errors, the summary table, the JSON report."""
    for job in jobs:
        if job.article is None:            # found current by its stamp: the build had nothing to say yet
            progress.article_finished(job)
        for result in job.stages.values():
            for entry in result.report.get("damaged_entries", []):
                print(f"{job.source_label}: warning: damaged cache entry {entry}: moved aside and made again",
                      file=sys.stderr)
        errors = [job.error] if job.error else []
        errors += [r.error for r in job.stages.values() if r.error]
        for error in errors:
            failed = [n for n, r in job.stages.items() if r.error is error]
            prefix = f"{job.source_label}: the {failed[0]} stage failed:\n" if failed else ""
            print(prefix + error.format(), file=sys.stderr)
            status = max(status, error.exit_code)
    if not args.quiet:
        summary(jobs, getattr(progress, "console", None))
    report = {"articles": [{
        "source": job.source_label, "folder": str(job.folder) if job.folder else None, "published": job.ok,
        "stages": [{"format": name, "status": r.status, "seconds": round(r.seconds, 3),
                    "files": [p.name for p in r.paths], **r.report} for name, r in job.stages.items()],
    } for job in jobs]}
    if getattr(args, "report", None):
        try:
            Path(args.report).write_text(json.dumps(report, indent=2) + "\n", "utf-8")
        except OSError as exc:
            error = cannot_use(args.report, "cannot write the report", exc, REPORT_FIX)
            print(error.format(), file=sys.stderr)
            status = max(status, error.exit_code)
    return status


REPORT_FIX = "choose another file with --report FILE"


def _check_report_path(report: str | None) -> None:
    """A --report that cannot be written is said before the build, not after it."""
    if not report:
        return
    path, folder = Path(report), Path(report).parent
    if path.is_dir():
        raise EnvironmentProblem(Problem(display_path(path), 0, 0, "the report file is a folder", REPORT_FIX))
    if not folder.is_dir():
        raise EnvironmentProblem(Problem(display_path(path), 0, 0, "the report's folder does not exist",
                                         f"create {display_path(folder)}/ first, or {REPORT_FIX}"))
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise EnvironmentProblem(Problem(display_path(path), 0, 0, "the report file cannot be written here "
                                         "(no permission, or a read-only disk)",
                                         f"make it writable for this user, or {REPORT_FIX}"))
