"""The `publish` command: parse arguments, run check or build, print errors, set the exit code."""
from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from . import __version__, stages
from .build import build_article
from .errors import EXIT_CONTENT, EXIT_OK, EXIT_USAGE, Problem, PublishError
from .source import load_article
from .theme import load_theme


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
    build.add_argument("--report", default=None, metavar="FILE", help="also write a JSON report of what was built")

    check = sub.add_parser("check", help="validate articles without building",
                           description="Validate articles and the theme; print every problem found.")
    check.add_argument("sources", nargs="+", metavar="SOURCE", help="article YAML files")
    check.add_argument("--theme", default="default", metavar="NAME", help="theme folder under themes/")
    return parser


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


def display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    root = project_root()
    try:
        theme_dir = root / "themes" / args.theme
        if not theme_dir.is_dir() or "/" in args.theme or args.theme.startswith("."):
            raise UsageError(f"no theme `{args.theme}` in {root / 'themes'}")
        if args.command == "build":
            formats = parse_formats(args.format)
        sources = find_sources(args.sources, root)
    except UsageError as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    try:
        theme = load_theme(theme_dir)
        if getattr(args, "paper", None):
            theme = replace(theme, paper=args.paper)
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code

    status = EXIT_OK
    out_root = Path(args.out) if getattr(args, "out", None) else root / "output"
    cache_dir = Path(args.cache) if getattr(args, "cache", None) else root / ".cache"
    report = {"articles": []}
    for path in sources:
        name = display_name(path)
        try:
            article = load_article(path, name, publisher=theme.organisation)
            if args.command == "check":
                print(f"{name}: ok ({sum(1 for _ in article.sentences())} sentences, "
                      f"{len(article.outline())} headings)")
                continue
            result = build_article(article, theme, formats, out_root, name, cache_dir=cache_dir)
            report["articles"].append({"source": name, "folder": str(result.folder), "stages": [
                {"format": st.name, "files": [p.name for p in st.paths], **st.report} for st in result.stages]})
            for stage in result.stages:
                for p in stage.paths:
                    print(f"{name}: {stage.name}: {display_name(result.folder / p.name)}")
            print(f"{name}: manifest: {display_name(result.folder / 'manifest.json')}")
        except PublishError as exc:
            print(exc.format(), file=sys.stderr)
            status = max(status, exc.exit_code)
        except KeyboardInterrupt:
            print("publish: interrupted; the previous outputs are unchanged", file=sys.stderr)
            return 130
        except Exception as exc:   # a bug: say so plainly, without a traceback
            if os.environ.get("PUBLISH_DEBUG"):
                raise
            print(f"{name}: internal error: {type(exc).__name__}: {exc}\n"
                  "  this is a bug in publish; set PUBLISH_DEBUG=1 to see the details and report them",
                  file=sys.stderr)
            status = max(status, 70)
    if getattr(args, "report", None):
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    return status
