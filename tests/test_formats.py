"""Choosing the narration's files: `--format mp3`, `m4b` or `audio`, and the theme's `audio_formats`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import ROOT, run_publish
from pipeline.stages import available
from generated import small_article


def _build(source: Path, folder: Path, *extra: str) -> tuple[dict, dict]:
    """Build into folder/out with the cache in folder/cache; the stages' reports and the article's manifest."""
    report = folder / "report.json"
    result = run_publish("build", str(source), "--out", str(folder / "out"), "--cache", str(folder / "cache"),
                         "--report", str(report), *extra, cwd=folder)
    assert result.returncode == 0, result.stderr
    stages = {s["format"]: s for s in json.loads(report.read_text())["articles"][0]["stages"]}
    manifest = json.loads((folder / "out" / source.stem / "manifest.json").read_text())
    return stages, manifest


def _listed(manifest: dict) -> set[str]:
    return {o["path"] for o in manifest["outputs"]}


def test_format_mp3_makes_no_m4b_and_costs_no_aac_encoding(tmp_path):
    source = small_article(tmp_path / "source", "handout", 1)
    folder = tmp_path / "out" / "handout"

    stages, manifest = _build(source, tmp_path, "--format", "mp3")
    audio = stages["audio"]
    assert audio["containers"] == ["mp3"] and manifest["stages"]["audio"]["containers"] == ["mp3"]
    assert audio["encodings"]["aac"] == 0 and audio["encodings"]["mp3"] == audio["chapters"] > 0
    assert sorted(audio["files"]) == ["handout.mp3", "handout.timings.js", "handout.timings.json",
                                     "handout.transcript.txt", "handout.vtt"]
    assert not (folder / "handout.m4b").exists() and "handout.m4b" not in _listed(manifest)

    # both files: the MP3's chapters come from the cache, only the AAC is encoded
    stages, manifest = _build(source, tmp_path, "--format", "audio")
    audio = stages["audio"]
    assert audio["containers"] == ["mp3", "m4b"] and manifest["stages"]["audio"]["containers"] == ["mp3", "m4b"]
    assert audio["synthesized"] == 0 and audio["encodings"] == {"mp3": 0, "aac": audio["chapters"]}
    assert {"handout.mp3", "handout.m4b"} <= _listed(manifest) and (folder / "handout.m4b").stat().st_size > 1000

    # back to the MP3 alone: the M4B is out of date, so it leaves the folder with its manifest entry
    stages, manifest = _build(source, tmp_path, "--format", "mp3,html")
    assert stages["audio"]["encodings"] == {"mp3": 0, "aac": 0}
    assert not (folder / "handout.m4b").exists() and "handout.m4b" not in _listed(manifest)
    assert 'src="handout.mp3"' in (folder / "handout.html").read_text()


def test_the_theme_chooses_the_narration_files_of_a_default_build(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "themes", project / "themes")
    settings = project / "themes" / "default" / "theme.yaml"
    settings.write_text(settings.read_text().replace("audio_formats: [mp3, m4b]", "audio_formats: [m4b]"))
    source = small_article(project / "source", "handout", 2)
    folder = project / "out" / "handout"

    stages, manifest = _build(source, project)          # no --format: every format, the theme's audio files
    assert set(stages) == set(available()) and "audio" in stages
    assert stages["audio"]["containers"] == ["m4b"] and stages["audio"]["encodings"]["mp3"] == 0
    assert "handout.m4b" in _listed(manifest) and not (folder / "handout.mp3").exists()
    page = (folder / "handout.html").read_text()
    assert 'src="handout.m4b"' in page and "Download the narration (M4B audiobook)" in page
    assert "mp3" not in page

    # --format overrides the theme for one build
    stages, manifest = _build(source, project, "--format", "mp3")
    assert stages["audio"]["containers"] == ["mp3"] and (folder / "handout.mp3").is_file()


def test_an_unknown_format_or_audio_file_is_a_clear_error(tmp_path):
    source = small_article(tmp_path / "source", "handout", 3)
    result = run_publish("build", str(source), "--format", "pdf,mp4", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "unknown format `mp4`; did you mean `mp3`?" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()

    project = tmp_path / "project"
    shutil.copytree(ROOT / "themes", project / "themes")
    settings = project / "themes" / "default" / "theme.yaml"
    text = settings.read_text().replace("audio_formats: [mp3, m4b]", "audio_formats: [mp3, wav]")
    settings.write_text(text)
    line = text[:text.index("wav")].count("\n") + 1
    result = run_publish("build", str(source), "--out", str(project / "out"), cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"theme.yaml:{line}:" in result.stderr and "wav" in result.stderr and "mp3, m4b" in result.stderr
    assert not (project / "out").exists()
