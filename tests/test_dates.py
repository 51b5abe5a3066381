"""The date the outputs carry: SOURCE_DATE_EPOCH, else the article's review or publication date, else its
source file's last commit, else a fixed instant; never the clock."""
from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pikepdf
import pytest

from conftest import ROOT, require_tool, run_publish
from pipeline.dates import DEFAULT_EPOCH, article_epoch, catalogue_epoch, last_commit_time
from pipeline.source import load_article

FIXTURE = ROOT / "tests" / "fixtures" / "back-pain" / "staying-active-with-back-pain.yaml"
MARCH_16_2026 = 1773619200         # 2026-03-16T00:00:00Z
FEBRUARY_2_2026 = 1769990400       # 2026-02-02T00:00:00Z


@pytest.fixture(scope="module")
def article():
    return load_article(FIXTURE)


def dated(article, reviewed: str, published: str):
    return replace(article, metadata=replace(article.metadata, date_reviewed=reviewed, date_published=published))


def test_review_date_then_publication_date_and_source_date_epoch_overrides_both(article):
    assert article_epoch(article, None) == MARCH_16_2026
    assert article_epoch(dated(article, "", "2026-02-02"), None) == FEBRUARY_2_2026
    assert article_epoch(article, 1767225600) == 1767225600


def git(folder: Path, *args: str, when: str = "") -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Editor", "GIT_AUTHOR_EMAIL": "editor@example.org",
           "GIT_COMMITTER_NAME": "Editor", "GIT_COMMITTER_EMAIL": "editor@example.org"}
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    subprocess.run([require_tool("git", "apt-get install git"), *args], cwd=folder, env=env, check=True,
                   capture_output=True)


def test_without_dates_the_last_commit_of_the_source_and_only_then_the_fixed_date(tmp_path, article):
    undated = dated(article, "", "")
    source = tmp_path / "handout.yaml"
    shutil.copyfile(FIXTURE, source)
    moved = replace(undated, source=source)
    assert article_epoch(moved, None) == DEFAULT_EPOCH                   # not in a repository
    git(tmp_path, "init", "-q")
    assert last_commit_time(source) is None                              # not committed yet
    git(tmp_path, "add", "handout.yaml")
    git(tmp_path, "commit", "-q", "-m", "First draft", when="2026-04-01T09:30:00+00:00")
    (tmp_path / "other.txt").write_text("not the article")
    git(tmp_path, "add", "other.txt")
    git(tmp_path, "commit", "-q", "-m", "Another file", when="2026-05-01T09:30:00+00:00")
    assert article_epoch(moved, None) == 1775035800                      # 2026-04-01T09:30:00Z: its own commit


def test_an_article_with_a_review_date_is_dated_by_it_without_source_date_epoch(tmp_path):
    result = run_publish("build", str(FIXTURE), "--format", "pdf,epub", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"), env={"SOURCE_DATE_EPOCH": ""})
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "out" / FIXTURE.stem
    with pikepdf.open(folder / f"{FIXTURE.stem}.pdf") as pdf:
        assert str(pdf.docinfo.CreationDate).startswith("D:20260316000000")
    with zipfile.ZipFile(folder / f"{FIXTURE.stem}.epub") as book:
        assert {info.date_time for info in book.infolist()} == {(2026, 3, 16, 0, 0, 0)}
        assert b'<meta property="dcterms:modified">2026-03-16T00:00:00Z</meta>' in book.read("EPUB/content.opf")


def test_the_catalogue_is_dated_by_its_newest_article_else_the_fixed_date():
    assert catalogue_epoch(["2024-03-01", "", "2025-11-30", "2023-01-01"]) == 1764460800     # 2025-11-30
    assert catalogue_epoch(["2024-03-01", "not a date", None]) == 1709251200                # 2024-03-01
    assert catalogue_epoch([]) == catalogue_epoch(["", None]) == DEFAULT_EPOCH
