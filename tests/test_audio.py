"""The narration, through real espeak-ng (pyttsx3) and real ffmpeg: chapters, loudness, captions, cache."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import B12, ROOT, assert_in_order, narrate, require_tool, run_publish
from pipeline.source import load_article
from pipeline.stages.audio.lexicon import load_lexicon
from pipeline.theme import load_theme


@pytest.fixture(scope="module")
def folder(build_b12) -> Path:
    return build_b12("audio")


def ffprobe_chapters(path: Path) -> list[tuple[float, str]]:
    require_tool("ffprobe", "apt-get install ffmpeg")
    out = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [(float(c["start_time"]), c["tags"]["title"]) for c in json.loads(out)["chapters"]]


def vtt_cues(path: Path) -> list[tuple[str, float, float, str]]:
    def seconds(stamp):
        h, m, s = stamp.split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    blocks = path.read_text().split("\n\n")
    assert blocks[0] == "WEBVTT"
    cues = []
    for block in blocks[1:]:
        ident, timing, text = block.strip().split("\n", 2)
        start, end = timing.split(" --> ")
        cues.append((ident, seconds(start), seconds(end), text))
    return cues


def test_chapters_match_the_sections_in_both_files(folder):
    article = load_article(B12)
    titles = ["Opening"] + [e.text for e in article.outline() if e.level == 2]
    cues = {ident: start for ident, start, _, _ in vtt_cues(folder / f"{B12.stem}.vtt")}
    openers = ["title"] + [e.id for e in article.outline() if e.level == 2]
    for suffix in (".mp3", ".m4b"):
        chapters = ffprobe_chapters(folder / f"{B12.stem}{suffix}")
        assert [title for _, title in chapters] == titles, suffix
        for (start, _), opener in zip(chapters, openers):
            assert abs(start - cues[opener]) < 0.06, (suffix, opener)


def test_mp3_tags(folder):
    from mutagen.id3 import ID3
    tags = ID3(folder / f"{B12.stem}.mp3")
    assert str(tags["TIT2"]) == "Is B12 Good for Lower Back Pain?"
    assert str(tags["TPE1"]) == "Your Clinic Name" and str(tags["TALB"])
    assert str(tags["TDRC"]).startswith("2026")              # from SOURCE_DATE_EPOCH: the article has no review date
    assert str(tags["TLAN"]) == "eng"                         # ISO 639-2, as ID3 asks; the article says "en"
    toc = tags.getall("CTOC")[0]
    assert len(toc.child_element_ids) == len(tags.getall("CHAP"))


def test_the_m4b_audio_track_names_its_language(folder):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "stream_tags=language",
                          "-of", "csv=p=0", str(folder / f"{B12.stem}.m4b")], capture_output=True, text=True).stdout
    assert out.strip() == "eng"                                # not "und": players name the track by it


@pytest.mark.parametrize("suffix", [".mp3", ".m4b"])
def test_loudness_and_true_peak(folder, suffix):
    require_tool("ffmpeg", "apt-get install ffmpeg")
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(folder / f"{B12.stem}{suffix}"),
                          "-af", "ebur128=peak=true", "-f", "null", "-"], capture_output=True, text=True).stderr
    summary = out.split("Summary:")[-1]
    integrated = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))
    assert -20 <= integrated <= -16
    assert peak <= -3.0


def test_the_chapter_meter_agrees_with_ffmpegs(folder):
    """The chapters' gains come from libebur128 in the process; ffmpeg's own EBU R128 meter is the judge."""
    import numpy as np

    from pipeline.stages.audio.assemble import RATE, gain_for, loudness
    require_tool("ffmpeg", "apt-get install ffmpeg")
    speech = np.frombuffer(subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(folder / f"{B12.stem}.mp3"), "-t", "90", "-f", "s16le", "-ac", "1",
         "-ar", str(RATE), "-"], capture_output=True, check=True).stdout, dtype="<i2")
    for samples in (speech, (speech // 8).astype("<i2"), speech[:RATE * 5]):    # a chapter, a quiet one, a short one
        judged = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-f", "s16le", "-ar", str(RATE), "-ac", "1",
                                 "-i", "pipe:0", "-af", "ebur128", "-f", "null", "-"],
                                input=samples.tobytes(), capture_output=True).stderr.decode()
        expected = float(re.findall(r"I:\s+(-?[\d.]+) LUFS", judged)[-1])      # ffmpeg prints one decimal
        assert abs(loudness(samples) - expected) <= 0.06, (loudness(samples), expected)
    assert gain_for(loudness(speech[:RATE // 4])) == 0.0          # too short to measure (one block is 0.4 s)
    assert gain_for(loudness(np.zeros(RATE * 2, dtype="<i2"))) == 0.0


def test_the_limiter_made_piece_by_piece_matches_its_gain_worked_out_over_the_whole_chapter():
    """The limiter works out its smoothed gain 10 s at a time: at every piece's edge, and across runs that
    cross one, the sound must be what the mean of the blocks' least gains over the whole chapter gives."""
    import numpy as np
    from pipeline.stages.audio import assemble
    rate, seconds = assemble.RATE, 35                  # four pieces, the last one short
    t = np.arange(rate * seconds) / rate
    loud = (np.sin(2 * np.pi * 220 * t) * (0.3 + 0.7 * (np.sin(2 * np.pi * 0.05 * t) > 0)) * 30000)
    samples = loud.astype("<i2")                       # loud for 10 s, quiet for 10 s, in turn: long runs
    gain_db = 6.0
    out = assemble.limited(samples, gain_db)

    scale = np.float32(10 ** (gain_db / 20) / 32768)
    least, runs = assemble._lowered(samples, scale)
    assert any(start // assemble.PIECE != (end - 1) // assemble.PIECE for start, end in runs)   # a run crosses
    half = assemble.SMOOTHING // 2
    every = np.repeat(least, assemble.LIMITER_BLOCK)[:samples.size].astype(np.float64)     # 1 outside the runs
    total = np.cumsum(np.concatenate([np.ones(half + 1), every, np.ones(half)]))
    gain = ((total[2 * half + 1:] - total[:-2 * half - 1]) / (2 * half + 1)).astype(np.float32)
    sound = samples.astype(np.float32) * scale * gain
    expected = np.round(np.clip(sound, -assemble.LIMIT, assemble.LIMIT) * 32768).astype("<i2")
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1      # (the float sums' last bit)
    assert np.abs(out.astype(int)).max() <= round(assemble.LIMIT * 32768)
    assert (gain < 0.99).sum() > rate                  # the limiter did lower the loud parts


def test_mono_speech_encoding_and_duration_fits_the_words(folder):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=channels,sample_rate:format=duration",
                          "-of", "json", str(folder / f"{B12.stem}.mp3")], capture_output=True, text=True).stdout
    info = json.loads(out)
    assert info["streams"][0]["channels"] == 1
    duration = float(info["format"]["duration"])
    words = len((folder / f"{B12.stem}.transcript.txt").read_text().split())
    rate = load_theme(ROOT / "themes" / "default").voice_rate
    speaking = words / rate * 60
    assert speaking * 0.8 < duration < speaking * 1.6, (duration, speaking)


def test_captions_are_timed_from_the_audio(folder):
    cues = vtt_cues(folder / f"{B12.stem}.vtt")
    assert all(start < end for _, start, end, _ in cues)
    assert all(a[2] <= b[1] for a, b in zip(cues, cues[1:])), "overlapping cues"
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                     str(folder / f"{B12.stem}.mp3")], capture_output=True, text=True).stdout)
    assert abs(cues[-1][2] - duration) < 2.0
    assert len({ident for ident, *_ in cues}) == len(cues)
    # every sentence of the article (the model holds every seed sentence: see test_source)
    assert_in_order([s.text for s in load_article(B12).sentences()], " ".join(text for *_, text in cues))


@pytest.mark.parametrize("suffix", [".mp3", ".m4b"])
def test_captions_and_chapters_land_where_the_words_are_heard(folder, suffix):
    """Decoded, every caption starts within 60 ms of its words being heard: the chapters are encoded
    separately and joined, and a join that lost or added frames would move everything after it."""
    import numpy as np
    require_tool("ffmpeg", "apt-get install ffmpeg")
    rate = 22050
    pcm = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(folder / f"{B12.stem}{suffix}"),
                          "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1"], capture_output=True, check=True).stdout
    loud = np.abs(np.frombuffer(pcm, "<i2").astype(np.int32)) > 1000      # −30 dBFS: speech, not codec noise
    cues = vtt_cues(folder / f"{B12.stem}.vtt")
    late = []
    for ident, start, _, _ in cues:
        # every utterance follows a pause of at least 0.35 s: look from just inside it
        first = max(0, int((start - 0.25) * rate))
        heard = (first + np.flatnonzero(loud[first: int((start + 0.5) * rate)])[0]) / rate
        if abs(heard - start) > 0.06:
            late.append((ident, round(heard - start, 3)))
    assert not late, late
    assert abs(len(loud) / rate - cues[-1][2]) < 1.0


def test_transcript_holds_every_sentence_as_spoken_and_no_markup(folder):
    article = load_article(B12)
    lexicon = load_lexicon(ROOT / "themes" / "default", "en").with_article(article)
    text = (folder / f"{B12.stem}.transcript.txt").read_text()
    assert not set("*|<#") & set(text)
    # every sentence of the article (the model holds every seed sentence: see test_source), as spoken
    spoken = [lexicon.speak(s.text).rstrip(".?!") for s in article.sentences()]
    assert_in_order(spoken, text.replace("\n", " "))


def test_cache_second_build_synthesizes_nothing_and_one_edit_synthesizes_one(tmp_path):
    source = tmp_path / B12.name
    shutil.copy(B12, source)
    out = tmp_path / "out"

    first, _ = narrate(source)
    assert first["synthesized"] == first["utterances"] > 100
    shutil.rmtree(out)                                 # force the stage to run again, with the cache kept
    second, _ = narrate(source)
    assert second["status"] == "built" and second["synthesized"] == 0 and second["encoded"] == 0
    source.write_text(source.read_text().replace("Another accessible source of dietary B12.",
                                                 "Another good source of dietary B12."))
    third, _ = narrate(source)
    assert third["synthesized"] == 1 and third["encoded"] == 1


def test_an_edit_needs_the_speech_of_its_own_chapter_only(tmp_path):
    """Unchanged chapters are found in the cache by what they are made of, and their speech is not read:
    here it is not there at all. A chapter whose kept layout is damaged is made again, not trusted."""
    from pipeline.stages.audio.script import write_script
    source = tmp_path / B12.name
    shutil.copy(B12, source)
    cache, out = tmp_path / "cache", tmp_path / "out"

    narrate(source)
    shutil.rmtree(cache / "speech")
    kept = {path: len(json.loads(path.read_text())["spans"]) for path in (cache / "encoded").glob("*.json")}
    source.write_text(source.read_text().replace("Another accessible source of dietary B12.",
                                                 "Another good source of dietary B12."))
    article = load_article(source)
    theme = load_theme(ROOT / "themes" / "default")
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    edited = next(u.chapter for u in utterances if "Another good source" in u.written)
    in_edited = sum(u.chapter == edited for u in utterances)
    after_edit, _ = narrate(source)
    assert (after_edit["synthesized"], after_edit["encoded"]) == (in_edited, 1)

    damaged, spoken = next((path, n) for path, n in kept.items() if n != in_edited)    # a chapter still in use
    damaged.write_text('{"length": ')                  # as if the disk had filled up while it was written
    shutil.rmtree(out)                                 # force the stage to run again
    after_damage, _ = narrate(source)
    assert (after_damage["synthesized"], after_damage["encoded"]) == (spoken, 1)


def test_engine_output_stays_off_the_command_output(tmp_path):
    result = run_publish("build", str(B12), "--format", "audio", "--out", str(tmp_path), "--cache", str(tmp_path / "c"))
    assert result.returncode == 0
    assert "Audio saved" not in result.stdout + result.stderr


def test_missing_ffmpeg_and_espeak_are_exit_3_with_the_install_command(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    espeak = shutil.which("espeak-ng")
    (bin_dir / "espeak-ng").symlink_to(espeak)         # espeak-ng there; the ffmpeg chosen is not
    result = run_publish("build", str(B12), "--format", "audio", "--out", str(tmp_path / "out"),
                         env={"PATH": str(bin_dir), "IMAGEIO_FFMPEG_EXE": str(bin_dir / "ffmpeg")})
    assert result.returncode == 3, result.stderr
    assert f"ffmpeg (IMAGEIO_FFMPEG_EXE={bin_dir / 'ffmpeg'}) is not installed" in result.stderr
    assert "pip install imageio-ffmpeg" in result.stderr
    (bin_dir / "espeak-ng").unlink()
    result = run_publish("build", str(B12), "--format", "audio", "--out", str(tmp_path / "out"),
                         env={"PATH": str(bin_dir)})
    assert result.returncode == 3
    assert "espeak-ng is not installed" in result.stderr and "apt-get install espeak-ng" in result.stderr
    assert "ffmpeg" not in result.stderr               # the package's own ffmpeg needs no PATH
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / B12.stem / f"{B12.stem}.mp3").exists()


def test_a_failing_ffmpeg_is_reported_with_its_words_and_the_program_it_was(tmp_path):
    broken = tmp_path / "ffmpeg"
    broken.write_text("#!/bin/sh\necho 'Unknown encoder aac' >&2\nexit 1\n")
    broken.chmod(0o755)
    result = run_publish("build", str(B12), "--format", "m4b", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "cache"), env={"IMAGEIO_FFMPEG_EXE": str(broken)})
    assert result.returncode == 1, result.stderr
    assert "ffmpeg failed to encode the narration: Unknown encoder aac" in result.stderr
    assert f"check the ffmpeg program the narration runs ({broken})" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / B12.stem).exists()


def test_two_clean_builds_are_byte_identical(tmp_path):
    """Clean builds (empty caches) give the same bytes. (Rebuilds from a partly kept cache do too: each
    utterance is spoken from the same engine state, see test_voice.)"""
    outputs = []
    for n in (1, 2):
        result = run_publish("build", str(B12), "--format", "audio", "--out", str(tmp_path / f"out{n}"),
                             "--cache", str(tmp_path / f"cache{n}"))
        assert result.returncode == 0, result.stderr
        outputs.append(tmp_path / f"out{n}" / B12.stem)
    for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt"):
        name = f"{B12.stem}{suffix}"
        assert (outputs[0] / name).read_bytes() == (outputs[1] / name).read_bytes(), name


def test_the_narration_runs_the_ffmpeg_its_package_brings_before_the_systems(tmp_path, monkeypatch):
    """The M4B's bytes follow the ffmpeg that encodes it: the one pinned with imageio-ffmpeg is used on every
    machine, even where another ffmpeg is first on the PATH; IMAGEIO_FFMPEG_EXE still names another."""
    import imageio_ffmpeg
    from pipeline.stages.audio import tools
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    other = bin_dir / "ffmpeg"
    other.write_text("#!/bin/sh\necho 'ffmpeg version other'\n")
    other.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    packaged = tools.ffmpeg()
    assert Path(packaged).samefile(imageio_ffmpeg.get_ffmpeg_exe())
    assert subprocess.run([packaged, "-version"], capture_output=True, text=True).stdout.startswith("ffmpeg version")
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(other))
    assert tools.ffmpeg() == str(other)


def test_engine_versions_are_remembered_for_as_long_as_the_program_is_the_same(tmp_path, monkeypatch):
    """Every build fingerprints the audio with ffmpeg's version, which costs a run of ffmpeg: the answer is kept
    in the cache, and a program replaced at the same path (an upgrade) is asked again."""
    from pipeline.cache import write_entry
    from pipeline.stages.audio import tools
    require_tool("ffmpeg", "apt-get install ffmpeg")
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    bin_dir.mkdir()
    program = bin_dir / "ffmpeg"
    shutil.copy2(shutil.which("ffmpeg"), program)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(program))
    real = subprocess.run([str(program), "-version"], capture_output=True, text=True).stdout.splitlines()[0]

    tools._version.cache_clear()
    assert tools.ffmpeg_version(cache) == real
    memo = cache / "versions.json"
    (key, answer), = json.loads(memo.read_text()).items()
    assert answer == real and key.startswith(str(program.resolve()))
    write_entry(memo, json.dumps({key: "ffmpeg version remembered"}).encode())     # with its checksum, as the cache writes
    tools._version.cache_clear()
    assert tools.ffmpeg_version(cache) == "ffmpeg version remembered"     # the memo is what answered

    stat = program.stat()
    os.utime(program, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))    # the program is replaced
    tools._version.cache_clear()
    assert tools.ffmpeg_version(cache) == real
    tools._version.cache_clear()


def test_a_languages_code_is_remembered_and_pycountrys_table_read_only_for_a_new_one(tmp_path):
    """The narration's tags need the ISO 639-2 code of the article's language. pycountry's table of every
    language takes 20 MiB of the process that reads it; once a language's code is in the cache's memo, a
    narration's worker answers from there and never loads the table."""
    import sys

    from pipeline.cache import write_entry
    from pipeline.stages.audio.assemble import iso639_2

    cache = tmp_path / "cache"
    assert iso639_2("es-MX", cache) == "spa" and iso639_2("tlh", None) == "tlh" and iso639_2("qqq", None) == "und"
    memo = cache / "languages.json"
    (key, answer), = json.loads(memo.read_text()).items()
    assert key.startswith("es (pycountry ") and answer == "spa"
    write_entry(memo, json.dumps({key: "remembered"}).encode())          # with its checksum, as the cache writes
    probe = ("import sys; from pathlib import Path; from pipeline.stages.audio.assemble import iso639_2; "
             f"print(iso639_2('es', Path({str(cache)!r})), 'pycountry' in sys.modules)")
    answered = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert answered.stdout.split() == ["remembered", "False"], answered.stderr    # the memo answered, no table read
    memo.write_text("{ not json")                                        # damaged: asked again, and mended
    assert iso639_2("es", cache) == "spa" and json.loads(memo.read_text()) == {key: "spa"}
