"""The audio narration: spoken script → speech (pyttsx3/espeak-ng, cached) → MP3 and M4B with chapters, captions, transcript.

Three parts, one module each: script.py (what is said), synth.py (saying
it), assemble.py (pauses, loudness, encoding, chapters, captions).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

from ...model import Article
from ...theme import Theme
from .. import BuildContext, package_version
from .lexicon import load_lexicon
from .script import transcript, write_script
from .synth import Synthesizer
from .tools import engine_version, ffmpeg_version


class AudioStage:
    name = "audio"

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}{suffix}" for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt")]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        return f"{engine_version()}; {ffmpeg_version()}; {package_version('pyttsx3')}; " \
               f"rate {theme.voice_rate}; voices {sorted(theme.voices.items())}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        from . import assemble              # numpy: loaded only when there is sound to assemble
        from .assemble import RATE, TARGET_LUFS, LoudnessMeter, chapter_times, encode, ffmetadata, join, webvtt, write_wav
        m = article.metadata
        publisher = m.publisher or theme.organisation
        lexicon = load_lexicon(theme.root, m.language).with_article(article)
        utterances, chapters = write_script(article, lexicon, publisher)
        cache = ctx.cache_dir or workdir / "cache"
        synth = Synthesizer(m.language, theme.voices, theme.voice_rate, cache)
        files = {suffix: workdir / f"{article.slug}{suffix}" for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt")}
        meter = LoudnessMeter()      # measures the narration while it is being spoken
        try:
            samples, cues = join(utterances, (synth.wav(u.spoken) for u in utterances), meter.feed)
            ctx.report["audio"] = {"utterances": len(utterances), "synthesized": synth.synthesized,
                                   "cached": synth.reused, "encoded": 0}
            total = samples.size / RATE
            times = chapter_times(chapters, cues, total)
            date = m.date_reviewed or m.date_published or time.strftime("%Y-%m-%d", time.gmtime(ctx.epoch))
            tags = {"title": m.title, "artist": publisher, "album": publisher, "date": date, "language": m.language}
            files[".vtt"].write_text(webvtt(cues), encoding="utf-8")
            files[".transcript.txt"].write_text(transcript(article, utterances, chapters), encoding="utf-8")

            # Encoding is the expensive part: reuse the last encoding if what is heard did not change.
            recipe = hashlib.sha256(Path(assemble.__file__).read_bytes()).hexdigest() + ffmpeg_version()
            heard = hashlib.sha256(json.dumps([[u.spoken, u.pause] for u in utterances]
                                              + [tags, times, synth.key(""), recipe]).encode()).hexdigest()
            encoded = cache / "encoded" / heard
            if not (encoded / "narration.mp3").is_file():
                staging = Path(str(encoded) + ".tmp")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                wav = staging / "narration.wav"
                write_wav(samples, wav)
                gain = TARGET_LUFS - meter.integrated()
                (staging / "chapters.txt").write_text(ffmetadata(tags | {"genre": "Speech"}, times), encoding="utf-8")
                encode(wav, gain, staging / "narration.mp3", staging / "narration.m4b", staging / "chapters.txt")
                wav.unlink()
                shutil.rmtree(encoded, ignore_errors=True)
                staging.rename(encoded)
                ctx.report["audio"]["encoded"] = 1
        finally:
            meter.close()
        shutil.copyfile(encoded / "narration.mp3", files[".mp3"])
        shutil.copyfile(encoded / "narration.m4b", files[".m4b"])
        return list(files.values())


STAGE = AudioStage()
