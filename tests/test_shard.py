"""Builds split across machines: `publish build --shard K/N` and `publish merge`, with N = 3 on this machine."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_publish
from generated import small_article
from pipeline.shard import shard_of

SHARDS = 3
FORMATS = "epub,html"       # the sharding is what is tested, not the stages: no narration, no PDF


def _articles(folder: Path, count: int) -> list[Path]:
    return [small_article(folder, f"handout-{n:02d}", n) for n in range(count)]


def _build(sources: list[Path], out: Path, cache: Path, *extra: str) -> list[str]:
    """Build with the real command; the slugs it built (from its report)."""
    report = out.with_name(out.name + ".report.json")
    result = run_publish("build", *map(str, sources), "--format", FORMATS, "--out", str(out), "--cache", str(cache),
                         "--report", str(report), "--quiet", *extra)
    assert result.returncode == 0, result.stderr
    return sorted(Path(a["source"]).stem for a in json.loads(report.read_text())["articles"])


def _tree(root: Path) -> dict[str, bytes]:
    """Every published file (not the builds' lock files, which stay in the output folder)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def _shards(tmp_path: Path, sources: list[Path]) -> tuple[list[Path], list[list[str]]]:
    """Each shard built into a folder and a cache of its own, as on separate machines."""
    outs, built = [], []
    for k in range(1, SHARDS + 1):
        out = tmp_path / f"shard-{k}"
        built.append(_build(sources, out, tmp_path / f"cache-{k}", "--shard", f"{k}/{SHARDS}"))
        outs.append(out)
    return outs, built


def test_every_article_is_built_by_exactly_one_shard_and_the_merge_equals_one_build(tmp_path):
    sources = _articles(tmp_path / "source", 12)
    outs, built = _shards(tmp_path, sources)
    everything = sorted(p.stem for p in sources)
    assert sorted(sum(built, [])) == everything                  # each exactly once
    assert all(built), f"a shard drew no article: {built}"
    for k, slugs in enumerate(built, start=1):                   # the command's choice is the documented one
        assert slugs == [s for s in everything if shard_of(s, SHARDS) == k]

    result = run_publish("merge", *map(str, outs), "--out", str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr
    assert f"merged {len(sources)} articles" in result.stderr
    single = tmp_path / "single"
    assert _build(sources, single, tmp_path / "cache-single") == everything
    assert _tree(tmp_path / "merged") == _tree(single)

    # merging again (say, after one shard was rebuilt) replaces the articles in place
    result = run_publish("merge", *map(str, outs), "--out", str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr
    assert _tree(tmp_path / "merged") == _tree(single)
    # nothing left of the merging; the catalogue's lock file stays, as the builds' do
    assert not [p for p in (tmp_path / "merged").iterdir() if p.name.startswith(".") and p.suffix != ".lock"]


def test_adding_an_article_moves_no_other_and_more_shards_move_few():
    slugs = [f"handout-{n:04d}" for n in range(600)]
    before = {s: shard_of(s, SHARDS) for s in slugs}
    assert {s: shard_of(s, SHARDS) for s in [*slugs, "a-new-handout"]} == {**before, "a-new-handout":
                                                                            shard_of("a-new-handout", SHARDS)}
    counts = [list(before.values()).count(k) for k in range(1, SHARDS + 1)]
    assert min(counts) > 600 / SHARDS * 0.8, counts              # a fair share each
    moved = sum(shard_of(s, SHARDS + 1) != before[s] for s in slugs)
    assert moved < 600 * 0.35, moved                             # about a quarter move to the new fourth shard


def test_a_new_article_is_built_by_one_shard_and_the_others_rebuild_nothing(tmp_path):
    sources = _articles(tmp_path / "source", 6)
    outs, built = _shards(tmp_path, sources)
    added = small_article(tmp_path / "source", "a-new-handout", 99)
    for k, out in enumerate(outs, start=1):
        report = out.with_name(out.name + ".report.json")
        after = _build([*sources, added], out, tmp_path / f"cache-{k}", "--shard", f"{k}/{SHARDS}")
        new_owner = shard_of(added.stem, SHARDS) == k
        assert after == sorted(built[k - 1] + ["a-new-handout"] * new_owner)
        statuses = {a["source"]: {s["status"] for s in a["stages"]} for a in json.loads(report.read_text())["articles"]}
        assert all(status == {"cached"} for source, status in statuses.items() if "a-new-handout" not in source), statuses


def test_merge_refuses_a_damaged_or_missing_file_and_writes_nothing(tmp_path):
    sources = _articles(tmp_path / "source", 5)
    outs, built = _shards(tmp_path, sources)
    shard = next(out for out, slugs in zip(outs, built) if slugs)
    page = next(shard.glob("*/*.html"))
    data = bytearray(page.read_bytes())
    data[len(data) // 2] ^= 0x20                                  # one letter's case: same size, other bytes
    page.write_bytes(bytes(data))
    merged = tmp_path / "merged"

    result = run_publish("merge", *map(str, outs), "--out", str(merged))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{page.parent.name}/{page.name}" in result.stderr and "SHA-256" in result.stderr
    assert "nothing was merged" in result.stderr and not merged.exists()

    page.unlink()
    result = run_publish("merge", *map(str, outs), "--out", str(merged))
    assert result.returncode == 1 and "the file is missing" in result.stderr and not merged.exists()


def test_merge_refuses_an_article_from_two_shards_and_a_missing_folder(tmp_path):
    sources = _articles(tmp_path / "source", 2)
    out = tmp_path / "all"
    _build(sources, out, tmp_path / "cache")
    result = run_publish("merge", str(out), str(out), str(tmp_path / "nowhere"), "--out", str(tmp_path / "merged"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is also in" in result.stderr and "nowhere: error: no such folder" in result.stderr
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("shard, says", [("4/3", "K must be from 1 to 3"), ("0/3", "JOB_COMPLETION_INDEX counts from 0"),
                                         ("two of three", "is not K/N")])
def test_a_wrong_shard_is_a_usage_error(tmp_path, shard, says):
    source = small_article(tmp_path / "source", "handout", 1)
    result = run_publish("build", str(source), "--shard", shard, "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
