"""Hostile and broken sources through the real `publish check` command.

Each file in tests/hostile/ starts with a line `# expect: LINE:COL message | hint`
(or `# expect: ok`): the command must exit 1 with exactly that location, the
message and the fix hint on stderr, and no traceback; or succeed.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_publish

HOSTILE = ROOT / "tests" / "hostile"
CASES = sorted(p for p in HOSTILE.glob("*.yaml"))


def expectation(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    m = re.match(r"# expect: (.*)", first)
    assert m, f"{path.name} has no `# expect:` line"
    return m.group(1).strip()


def assert_clean_error(result, name: str, line: int | None, col: int | None, *fragments: str) -> None:
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    if line is not None:
        assert f"{name}:{line}:{col if col is not None else ''}" in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"
    assert "how to fix:" in result.stderr


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_hostile_source_gets_a_located_error(case: Path):
    expected = expectation(case)
    started = time.monotonic()
    result = run_publish("check", str(case.relative_to(ROOT)), timeout=30)
    assert time.monotonic() - started < 10
    if expected == "ok":
        assert result.returncode == 0, result.stderr
        return
    where, _, text = expected.partition(" ")
    line, col = (int(n) for n in where.split(":"))
    message, _, hint = text.partition(" | ")
    assert_clean_error(result, str(case.relative_to(ROOT)), line, col, message.strip(), hint.strip())


def test_fifty_megabyte_file_is_refused_quickly(tmp_path):
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("title: Big\nlanguage: en\nbody:\n")
        line = "  - p: " + "word " * 40 + "\n"
        while f.tell() < 50 * 1024 * 1024:
            f.write(line * 1000)
    started = time.monotonic()
    result = run_publish("check", str(big), timeout=30)
    assert time.monotonic() - started < 5
    assert_clean_error(result, str(big), None, None, "more than the limit", "split the article")


def test_ten_thousand_deep_nesting_is_refused_quickly(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("title: Deep\nlanguage: en\nbody: " + "[" * 10_000 + "]" * 10_000 + "\n")
    started = time.monotonic()
    result = run_publish("check", str(deep), timeout=30)
    assert time.monotonic() - started < 5
    assert_clean_error(result, str(deep), 3, None, "nested more than", "flatten")


def test_symlinked_image_pointing_outside_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    article_dir = tmp_path / "article"
    article_dir.mkdir()
    (article_dir / "picture.png").symlink_to(outside / "secret.png")
    source = article_dir / "linked.yaml"
    source.write_text("title: A title\nlanguage: en\nbody:\n  - image:\n      src: picture.png\n      alt: A picture\n")
    result = run_publish("check", str(source))
    assert_clean_error(result, str(source), 5, 12, "is outside the article's folder")


def test_every_problem_is_reported_at_once(tmp_path):
    source = tmp_path / "many.yaml"
    source.write_text("titel: A\nlanguage: english!\nreading_time_minutes: -3\nbody:\n  - p: ok\n")
    result = run_publish("check", str(source))
    for where in (":1:1:", ":2:11:", ":3:23:", ":1:1: error: the file is missing the required key `title`"):
        assert where in result.stderr, result.stderr


def test_a_hostile_source_never_touches_the_output_folder(tmp_path):
    """Building each broken file next to a good build leaves output/ exactly as the good build left it."""
    from conftest import B12
    out = tmp_path / "output"
    good = run_publish("build", str(B12), "--format", "html", "--out", str(out))
    assert good.returncode == 0, good.stderr

    def state():
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    before = state()
    for case in CASES:
        if expectation(case) == "ok":
            continue
        result = run_publish("build", str(case.relative_to(ROOT)), "--format", "html", "--out", str(out), timeout=30)
        assert result.returncode == 1, (case.name, result.stderr)
        assert "Traceback" not in result.stderr and "how to fix:" in result.stderr, case.name
        assert state() == before, f"{case.name} changed the output folder"
