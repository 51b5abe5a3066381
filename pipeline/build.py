"""Build articles: run the selected stages, publish their files atomically, write the manifest.

Each stage renders into a private staging folder next to ``output/<slug>/``
(the same file system, so moving a file is an atomic rename). Only when every
selected stage of the article succeeded are the files moved into place, one
``os.replace`` each, and ``manifest.json`` last: a failed or interrupted build
leaves the last good outputs as they were.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from . import stages
from .errors import Problem, PublishError
from .model import Article
from .stages import BuildContext
from .theme import Theme

# When SOURCE_DATE_EPOCH is not set, timestamps come from this fixed instant
# (2000-01-01T00:00:00Z), never from the clock, so builds stay reproducible.
DEFAULT_EPOCH = 946684800


def source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return DEFAULT_EPOCH
    if not value.isdigit():
        raise PublishError(Problem("SOURCE_DATE_EPOCH", 0, 0, f"SOURCE_DATE_EPOCH is `{value}`, not a number of seconds",
                                   "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)"))
    return int(value)


@dataclass
class StageResult:
    name: str
    paths: list[Path] = field(default_factory=list)     # in the staging folder until published
    report: dict = field(default_factory=dict)          # what the stage counted (e.g. utterances synthesized)


@dataclass
class ArticleResult:
    slug: str
    folder: Path
    stages: list[StageResult]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {"outputs": []}


def build_article(article: Article, theme: Theme, formats: list[str], out_root: Path,
                  source_label: str, cache_dir: Path | None = None) -> ArticleResult:
    """Render *formats* of one article and publish them into ``out_root/<slug>/``."""
    folder = out_root / article.slug
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PublishError(Problem(str(out_root), 0, 0, f"cannot create the output folder ({exc.strerror})",
                                   "check that the folder is writable, or choose another with --out")) from None
    lock = FileLock(str(out_root / f".{article.slug}.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PublishError(Problem(str(folder), 0, 0, "another build of this article is running",
                                   "wait for it to finish, then build again")) from None
    except OSError as exc:
        raise PublishError(Problem(str(out_root), 0, 0, f"cannot write in the output folder ({exc.strerror})",
                                   "check that the folder is writable and the disk is not full, or use --out")) from None
    try:
        previous = read_manifest(folder)
        published = tuple(sorted({o["format"] for o in previous.get("outputs", [])}))
        ctx = BuildContext(formats=tuple(formats), epoch=source_date_epoch(), published=published,
                           cache_dir=cache_dir)
        staging = Path(tempfile.mkdtemp(dir=out_root, prefix=f".{article.slug}.staging-"))
        try:
            results = []
            for name in formats:
                stage = stages.get(name)
                workdir = staging / name
                workdir.mkdir()
                files = stage.render(article, theme, workdir, ctx)
                results.append(StageResult(name, list(files), dict(ctx.report.get(name, {}))))
            _publish(folder, results, previous, source_label)
        except OSError as exc:
            raise PublishError(Problem(str(folder), 0, 0, f"cannot write the outputs ({exc.strerror})",
                                       "check that the output folder is writable and the disk is not full")) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ArticleResult(article.slug, folder, results)
    finally:
        lock.release()
        Path(lock.lock_file).unlink(missing_ok=True)


def _publish(folder: Path, results: list[StageResult], previous: dict, source_label: str) -> None:
    folder.mkdir(exist_ok=True)
    rebuilt = {r.name for r in results}
    entries = [o for o in previous.get("outputs", [])
               if o.get("format") not in rebuilt and (folder / o.get("path", "")).is_file()]
    for result in results:
        for path in result.paths:
            entries.append({"format": result.name, "path": path.name,
                            "sha256": sha256(path), "bytes": path.stat().st_size})
    for result in results:
        for path in result.paths:
            os.replace(path, folder / path.name)
    entries.sort(key=lambda o: (o["format"], o["path"]))
    manifest = {"source": source_label, "outputs": entries}
    write_atomic(folder / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
