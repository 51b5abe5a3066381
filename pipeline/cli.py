"""The `publish` command: parse arguments, run check or build, print errors, set the exit code."""
from __future__ import annotations

import argparse
import difflib
import importlib
import json
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, cache, catalogue, stages, stamp
from .build import Job, StageResult, build, source_date_epoch, start_workers, stop_workers
from .errors import (EXIT_BUG, EXIT_CONTENT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, EnvironmentProblem, Problem,
                     PublishError, cannot_use, display_path)
from .progress import Lines, Live_, Quiet, summary

if TYPE_CHECKING:
    from .theme import Theme

ARTICLES_PER_WORKER = 100        # articles a worker process builds before a fresh one takes over (see below)

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
    _add_build_options(build)
    build.add_argument("--report", default=None, metavar="FILE", help="also write a JSON report of what was built")
    build.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                       help="run at most N stages at once (default: the number of CPU cores)")
    build.add_argument("--shard", default=None, type=_shard, metavar="K/N",
                       help="build only shard K of N (K from 1): a stable share of the articles, chosen by their "
                            "names; combine the shards' output folders with `publish merge`")
    build.add_argument("--wait", type=_seconds, default=None, metavar="SECONDS",
                       help="wait at most SECONDS for another build of the same article to finish "
                            "(default: as long as it takes)")
    noise = build.add_mutually_exclusive_group()
    noise.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    noise.add_argument("--verbose", "-v", action="store_true", help="print every step")

    merge = sub.add_parser("merge", help="combine the output folders of sharded builds into one",
                           description="Combine the output folders of `publish build --shard K/N` into one tree, "
                                       "checking every file against its manifest's SHA-256 first.")
    merge.add_argument("folders", nargs="+", metavar="DIR", help="the output folders the shards built into")
    merge.add_argument("--out", default=None, metavar="DIR", help="the merged output folder (default: output/)")
    merge.add_argument("--theme", default="default", metavar="NAME",
                       help="theme of the catalogue written over the merged tree (default: default)")

    check = sub.add_parser("check", help="validate articles without building",
                           description="Validate articles and the theme; print every problem found.")
    check.add_argument("sources", nargs="+", metavar="SOURCE", help="article YAML files")
    check.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/")

    say = sub.add_parser("say", help="speak a word or sentence, to hear how the narration will say it",
                         description="Speak TEXT through the theme's lexicon and voice into an MP3 file.")
    say.add_argument("text", metavar="TEXT", help="what to say, e.g. a drug name")
    say.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/")
    say.add_argument("--language", default="en", metavar="TAG", help="language of the text (default: en)")
    say.add_argument("--voice-engine", choices=("system", "piper"), default=None,
                     help="speech engine: system or piper (default: the theme's)")
    say.add_argument("--out", default="say.mp3", metavar="FILE", help="the MP3 file to write (default: say.mp3)")

    serve = sub.add_parser("serve", help="build, serve output/ and rebuild on every save (live preview)",
                           description="Build the articles, serve output/ over HTTP, and rebuild and reload the "
                                       "open pages whenever a source or the theme is saved. Ctrl-C stops it.")
    _add_build_options(serve)
    serve.add_argument("--port", type=int, default=8000, metavar="N", help="port to listen on (default: 8000; 0: any free port)")
    serve.add_argument("--host", default="127.0.0.1", metavar="HOST",
                       help="address to listen on (default: 127.0.0.1, this computer only)")

    new = sub.add_parser("new", help="start a new article from the theme's commented template",
                         description="Write source/SLUG.yaml from the theme's template, which shows every kind of block.")
    new.add_argument("slug", metavar="SLUG", help="the article's file name without .yaml, e.g. knee-pain")
    new.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/ (default: default)")
    new.add_argument("--dir", default=None, metavar="DIR", help="folder to write it in (default: source/)")

    language = sub.add_parser("init-language", help="start the theme's message catalogue for a new language",
                              description="Write themes/NAME/locale/LANG/LC_MESSAGES/messages.po from the theme's "
                                          "messages.pot, with the language's plural rule, for a translator to fill in.")
    language.add_argument("language", metavar="LANG", help="the language's tag, e.g. fr, de or pt-BR")
    language.add_argument("--theme", default="default", metavar="NAME",
                          help="theme folder under themes/ (default: default)")
    return parser


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    """The options `build` and `serve` share: what to build, with which theme, and where."""
    parser.add_argument("sources", nargs="*", metavar="SOURCE", help="article YAML files (default: source/*.yaml)")
    parser.add_argument("--format", default="", metavar="LIST",
                        help="comma-separated formats to build: " + ", ".join(FORMAT_NAMES)
                        + " (audio is mp3 and m4b; read-aloud also makes the narration it is made from; default: every "
                        "available one, the narration files the theme names)")
    parser.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/ (default: default)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: output/)")
    parser.add_argument("--paper", choices=("a4", "letter"), help="paper size of the PDF (default: the theme's)")
    parser.add_argument("--voice-engine", choices=("system", "piper"), default=None,
                        help="speech engine of the narration: system (pyttsx3) or piper (neural) (default: the theme's)")
    parser.add_argument("--cache", default=None, metavar="DIR", help="folder for caches such as synthesized speech (default: .cache/)")
    parser.add_argument("--cache-limit", default=cache.DEFAULT_LIMIT, type=_size, metavar="SIZE",
                        help="keep the cache within SIZE, removing what was used longest ago (default: 2G)")


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


# What --format accepts: the stages, and the narration's files one by one (made by the audio stage).
FORMAT_NAMES = (*stages.STAGE_MODULES, *stages.AUDIO_CONTAINERS)


def _shard(text: str) -> tuple[int, int]:
    from .shard import parse_shard
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_formats(value: str) -> tuple[list[str], tuple[str, ...] | None]:
    """The stages to run, and the narration files asked for (None: the theme's choice)."""
    available = stages.available()
    if not value:
        return available, None
    wanted = [f.strip().lower() for f in value.split(",") if f.strip()]
    containers = set()
    for name in wanted:
        if name not in FORMAT_NAMES:
            close = difflib.get_close_matches(name, FORMAT_NAMES, n=1)
            raise UsageError(f"unknown format `{name}`" + (f"; did you mean `{close[0]}`?" if close else "")
                             + f" (formats: {', '.join(FORMAT_NAMES)})")
        if name in stages.AUDIO_CONTAINERS:
            containers.add(name)
        elif name == "audio":
            containers.update(stages.AUDIO_CONTAINERS)
        if _stage_of(name) not in available and stages.missing_library(name) is None:
            raise UsageError(f"the `{name}` format is not available in this version")
    # with what they need: `--format read-aloud` makes the narration too (or finds it current and keeps it)
    chosen = stages.with_needs([_stage_of(name) for name in wanted])
    return chosen, tuple(c for c in stages.AUDIO_CONTAINERS if c in containers) or None


def _stage_of(name: str) -> str:
    return "audio" if name in stages.AUDIO_CONTAINERS else name


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
    if args.command == "merge":
        return _merge(args, root)
    formats: list[str] = []
    try:
        theme_dir = root / "themes" / args.theme
        if not theme_dir.is_dir() or "/" in args.theme or args.theme.startswith("."):
            raise UsageError(f"no theme `{args.theme}` in {root / 'themes'}")
        if args.command == "new":
            return new_article(args.slug, theme_dir, Path(args.dir) if args.dir else root / "source")
        if args.command == "init-language":
            return init_language(args.language, theme_dir)
        if args.command in ("build", "serve"):
            formats, args.audio_formats = parse_formats(args.format)
            # A format asked for by name whose system library is missing: the others still build, and the
            # command ends with the missing tool's message and exit code.
            args.missing = [error for error in map(stages.missing_library, formats) if error]
            formats = [name for name in formats if stages.missing_library(name) is None]
            if not formats:
                print("\n".join(error.format() for error in args.missing), file=sys.stderr)
                return max(error.exit_code for error in args.missing)
        if args.command == "build" and args.jobs is not None and args.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if args.command == "serve" and not 0 <= args.port <= 65535:
            raise UsageError("--port must be between 0 and 65535")
        if args.command == "say":
            from .pronounce import say
            return say(args, theme_dir)
        sources = find_sources(args.sources, root)
    except UsageError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "shard", None):
        from .shard import select
        sources = select(sources, *args.shard)
        if not sources:                  # a shard may draw no article: that is a success, with nothing to merge
            _out_root(args, root).mkdir(parents=True, exist_ok=True)
            if not args.quiet:
                print(f"shard {args.shard[0]}/{args.shard[1]}: none of the articles falls to this shard",
                      file=sys.stderr)
            return _report(args, [], EXIT_OK, Quiet())
    if args.command == "serve":
        from .serve import serve
        return serve(sources, theme_dir, formats, _out_root(args, root), _cache_dir(args, root),
                     host=args.host, port=args.port, paper=args.paper,
                     discover=None if args.sources else root / "source",
                     audio_formats=args.audio_formats, voice_engine=args.voice_engine, cache_limit=args.cache_limit)

    keys, out_root, cache_dir = {}, Path(), Path()
    if args.command == "build":
        out_root, cache_dir = _out_root(args, root), _cache_dir(args, root)
        try:
            epoch = source_date_epoch()
            _check_report_path(args.report)
        except PublishError as exc:
            print(exc.format(), file=sys.stderr)
            return exc.exit_code
        options = (f"formats {','.join(formats)}; audio {','.join(args.audio_formats or ['theme'])}; "
                   f"theme {args.theme}; paper {args.paper or 'theme'}; voice engine {args.voice_engine or 'theme'}")
        try:
            shared = stamp.shared_key(theme_dir, options, epoch)
            keys = {display_name(path): stamp.key(path, shared) for path in sources}
        except OSError:
            pass                          # an unreadable file: the full check reports it
        current = _current_jobs(sources, formats, keys, out_root, cache_dir)
        if current is not None and catalogue.is_written(out_root):
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


def _out_root(args: argparse.Namespace, root: Path) -> Path:
    return Path(args.out) if args.out else Path(display_name(root / "output"))


def _cache_dir(args: argparse.Namespace, root: Path) -> Path:
    return Path(args.cache) if args.cache else root / ".cache"


SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
NEW_ARTICLE_TEMPLATE = "templates/new-article.yaml"


def new_article(slug: str, theme_dir: Path, folder: Path) -> int:
    """Write folder/<slug>.yaml from the theme's commented template (never over an existing file)."""
    from .files import write_atomic
    if not SLUG.fullmatch(slug):
        raise UsageError(f"`{slug}` cannot name an article: use lowercase letters, digits and dashes, e.g. knee-pain "
                         "(it becomes the output folder and file names)")
    template = theme_dir / NEW_ARTICLE_TEMPLATE
    if not template.is_file():
        raise UsageError(f"the theme has no {NEW_ARTICLE_TEMPLATE}; copy it from themes/default/")
    target = folder / f"{slug}.yaml"
    if target.exists():
        raise UsageError(f"{display_name(target)} already exists; choose another name, or edit that file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(target, template.read_bytes())
    except OSError as exc:
        print(f"publish: error: cannot write {display_name(target)} ({exc.strerror})", file=sys.stderr)
        return EXIT_CONTENT
    print(f"wrote {display_name(target)}: replace the example text, then run `publish check {display_name(target)}`")
    return EXIT_OK


def init_language(tag: str, theme_dir: Path) -> int:
    """Write the theme's catalogue template for a new language (never over an existing catalogue)."""
    from .i18n import new_catalogue
    if not re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", tag):
        raise UsageError(f"`{tag}` is not a language tag: give one such as fr, de or pt-BR")
    try:
        target = new_catalogue(theme_dir, tag)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    print(f"wrote {display_name(target)}: translate every msgstr (keep the %(name)s placeholders), then build "
          f"an article with `language: {tag}`")
    return EXIT_OK


def _load_and_build(args: argparse.Namespace, theme_dir: Path, sources: list[Path], formats: list[str],
                    keys: dict[str, str], out_root: Path, cache_dir: Path, pools: dict) -> int:
    """Read the theme and the articles (`check` stops there), then build them."""
    from .theme import load_theme
    try:
        theme = load_theme(theme_dir)
        if getattr(args, "paper", None):
            theme = replace(theme, paper=args.paper)
        if getattr(args, "audio_formats", None):
            theme = replace(theme, audio_formats=args.audio_formats)
        if getattr(args, "voice_engine", None):
            theme = replace(theme, voice_engine=args.voice_engine)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code

    if args.command == "check":
        return _read_articles(args, sources, theme, formats)[1]

    status, jobs, referenced = EXIT_OK, [], {}
    progress = _progress(args)
    from .memory import release_freed_memory, share_with_workers
    try:
        # A long batch is built in runs of ARTICLES_PER_WORKER articles, each read only when its turn comes and
        # built by worker processes of its own, and let go of once published. The documents' workers keep some
        # of every document WeasyPrint lays out (together about half a MiB per article, measured over 150 small
        # ones), and this process held every article it had read: a thousand small articles took 24 MiB and
        # 10 s to read, all of it before the first was built.
        for first in range(0, len(sources), ARTICLES_PER_WORKER):
            if first:
                share_with_workers()    # the workers of each later run are forked with all this process holds
                pools = start_workers(formats, min(ARTICLES_PER_WORKER, len(sources) - first), args.jobs)
            run_of_jobs, status = _read_articles(args, sources[first:first + ARTICLES_PER_WORKER], theme, formats,
                                                 status)
            if not run_of_jobs:
                stop_workers(pools)
                continue
            for job in run_of_jobs:
                referenced[job.source_label] = stamp.digests([image.path for image in job.article.images()])
            build(run_of_jobs, out_root, cache_dir, workers=args.jobs, progress=progress, pools=pools,
                  lock_wait=args.wait, cache_limit=args.cache_limit)
            for job in run_of_jobs:
                job.let_go()            # the next runs' workers are forked without what this run held
            jobs += run_of_jobs
            # Writing the catalogue of 1,000 articles leaves some 15 MiB free but held by the allocator (measured
            # alone: 36 MiB before, 59 MiB after, 44 MiB once handed back), which this process would otherwise
            # keep through every later run, with the next run's workers forked from it.
            release_freed_memory()
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    if not jobs:
        return status
    for job in jobs:
        if job.ok and job.source_label in keys:
            stamp.save(cache_dir, job.folder, keys[job.source_label], referenced[job.source_label])
    _prune(args, cache_dir)
    return _report(args, jobs, status, progress)


def _read_articles(args: argparse.Namespace, sources: list[Path], theme: Theme, formats: list[str],
                   status: int = EXIT_OK) -> tuple[list[Job], int]:
    """Read *sources*: a job for each article that reads without error, each error printed, and the exit status
    so far. `check` says what it found in each article instead."""
    from .source import load_article
    jobs = []
    for path in sources:
        name = display_name(path)
        try:
            article = load_article(path, name, publisher=theme.organisation, theme=theme)
        except PublishError as exc:
            print(exc.format(), file=sys.stderr)
            status = max(status, exc.exit_code)
            continue
        if args.command == "check":
            print(f"{name}: ok ({sum(1 for _ in article.sentences())} sentences, {len(article.outline())} headings)")
            from .pronounce import unexpanded_abbreviations
            for word in unexpanded_abbreviations(article, theme):
                print(f"{name}: warning: the narration may not say `{word}` sensibly\n  how to fix: add it under "
                      f"`abbreviations:` with its expansion, or to the theme's lexicon with how to say it",
                      file=sys.stderr)
            continue
        jobs.append(Job(article, theme, formats, name))
    return jobs, status


def _prune(args: argparse.Namespace, cache_dir: Path) -> None:
    """Keep the cache within its limit, sparing what narrations at work on it may read."""
    removed, freed, _ = cache.keep_within(cache_dir, args.cache_limit)
    if removed and args.verbose:
        print(f"cache: removed {removed} files ({freed / 2**20:.1f} MB) used longest ago, to keep it within "
              f"{args.cache_limit / 2**20:.0f} MB", file=sys.stderr)


def _merge(args: argparse.Namespace, root: Path) -> int:
    from .shard import merge
    folders = [Path(folder) for folder in args.folders]
    out = Path(args.out) if args.out else root / "output"
    if any(folder.resolve() == out.resolve() for folder in folders):
        print("publish: error: --out must be a folder of its own, not one of the shards' folders", file=sys.stderr)
        return EXIT_USAGE
    try:
        merged = merge(folders, out)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    # The catalogue lists the whole merged tree, so it is written here, once every article has landed; it is
    # made from the manifests alone, so it equals the catalogue of a build on one machine.
    from .theme import load_theme
    try:
        catalogue.write_catalogue(out, load_theme(root / "themes" / args.theme), source_date_epoch())
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    print(f"merged {len(merged)} articles from {len(folders)} folders into {display_name(out)}", file=sys.stderr)
    return EXIT_OK


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
        job = Job(None, None, formats, name, folder=folder, found_current=True)
        for fmt in formats:
            paths = [folder / o["path"] for o in manifest.get("outputs", []) if o.get("format") == fmt]
            left_out = manifest.get("stages", {}).get(fmt, {})
            if not paths and left_out.get("status") == "skipped":      # e.g. no voice speaks its language
                job.stages[fmt] = StageResult(fmt, status="skipped",
                                              report={"reason": left_out.get("reason", ""),
                                                      "warnings": [left_out.get("reason", "")]})
                continue
            if not paths:
                return None
            job.stages[fmt] = StageResult(fmt, status="cached", paths=paths)
        jobs.append(job)
    return jobs


def _report(args: argparse.Namespace, jobs: list[Job], status: int, progress) -> int:
    """Say what went wrong and what was built: errors, the summary table, the JSON report."""
    for job in jobs:
        if job.found_current:              # the build had nothing to say of it yet
            progress.article_finished(job)
        for result in job.stages.values():
            for warning in result.report.get("warnings", []):
                print(f"{job.source_label}: warning: {warning}", file=sys.stderr)
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
    for error in getattr(args, "missing", []):
        print(error.format(), file=sys.stderr)
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
