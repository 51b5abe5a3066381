"""The date an article's outputs carry (PDF creation date, EPUB and MP3 dates, zip entry times).

Readers and catalogues show it, so it is the article's own date, and it is
reproducible: the same source gives the same date on every machine.
In order: SOURCE_DATE_EPOCH when it is set (it overrides everything, as
reproducible-builds.org specifies), the article's `date_reviewed`, its
`date_published`, the time of the last git commit of its source file, and
only then a fixed instant.
"""
from __future__ import annotations

import calendar
import datetime
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:        # the build imports this module before it knows whether anything needs building
    from .model import Article

# The last resort, 2000-01-01T00:00:00Z: never the clock, so builds stay reproducible.
DEFAULT_EPOCH = 946684800


def article_epoch(article: Article, source_date_epoch: int | None) -> int:
    """The instant (seconds since 1970, UTC) every timestamp of this article's outputs comes from."""
    if source_date_epoch is not None:
        return source_date_epoch
    for iso in (article.metadata.date_reviewed, article.metadata.date_published):
        if iso:
            return calendar.timegm(datetime.date.fromisoformat(iso).timetuple())    # midnight UTC that day
    committed = last_commit_time(article.source)
    return committed if committed is not None else DEFAULT_EPOCH


def catalogue_epoch(article_dates: Iterable[str]) -> int:
    """The instant the catalogue is dated when SOURCE_DATE_EPOCH is not set: the newest of its articles'
    dates (reviewed or published, YYYY-MM-DD; empty ones skipped), else the fixed instant. It changes only
    when an article's date does, and the same manifests give it on every machine."""
    days = []
    for day in article_dates:
        try:
            days.append(datetime.date.fromisoformat(day))
        except (TypeError, ValueError):     # none, or a manifest edited by hand: the other dates still count
            continue
    return calendar.timegm(max(days).timetuple()) if days else DEFAULT_EPOCH


def last_commit_time(path: Path) -> int | None:
    """The committer time of the last commit that changed *path*; None outside git or for a new file."""
    git = shutil.which("git")
    if not git:
        return None
    try:
        result = subprocess.run([git, "log", "-1", "--format=%ct", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    value = result.stdout.strip()
    return int(value) if result.returncode == 0 and value.isdigit() else None
