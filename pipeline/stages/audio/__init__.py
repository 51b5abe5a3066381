"""The audio narration: spoken script → speech (pyttsx3/espeak-ng, cached) → MP3 and M4B with chapters, captions, transcript.

Three parts, one module each: script.py (what is said), synth.py (saying
it), assemble.py (pauses, loudness, encoding, chapters, captions).
"""
from __future__ import annotations

import hashlib
import importlib
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

    def preload(self) -> None:
        assemble = importlib.import_module("pipeline.stages.audio.assemble")      # with numpy
        importlib.import_module("pyttsx3")
        importlib.import_module("pyebur128")
        assemble.iso639_2("en")             # pycountry reads its table of languages on first use (26 ms)

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}{suffix}" for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt")]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        engines = f"{engine_version(ctx.cache_dir)}; {ffmpeg_version(ctx.cache_dir)}"
        return f"{engines}; {package_version('pyttsx3')}; {package_version('pycountry')}; " \
               f"{package_version('pyebur128')}; rate {theme.voice_rate}; " \
               f"voices {sorted(theme.voices.items())}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        from concurrent.futures import ThreadPoolExecutor

        from . import assemble              # numpy: loaded only when there is sound to assemble
        from .assemble import (AAC, CODECS, MP3, ChapterEncoder, chapter_times, chapters_of, cues, ffmetadata,
                               iso639_2, longest_first, mux, placed, webvtt)
        m = article.metadata
        publisher = m.publisher or theme.organisation
        lexicon = load_lexicon(theme.root, m.language).with_article(article)
        utterances, chapters = write_script(article, lexicon, publisher)
        cache = ctx.cache_dir or workdir / "cache"
        synth = Synthesizer(m.language, theme.voices, theme.voice_rate, cache)
        files = {suffix: workdir / f"{article.slug}{suffix}" for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt")}

        # Encoding is the expensive part: each chapter is encoded while the next ones are spoken, and
        # its encoding is reused for as long as what it is made of does not change.
        # (the recipe: this code, ffmpeg, and the loudness meter, from whose reading the chapter's gain follows)
        recipe = (hashlib.sha256(Path(assemble.__file__).read_bytes()).hexdigest() + ffmpeg_version(ctx.cache_dir)
                  + package_version("pyebur128"))
        sound = []
        spoken = longest_first(utterances)
        with ChapterEncoder(cache / "encoded", recipe) as encoder:
            for utterances_of_chapter in chapters_of(spoken):
                sound.append(encoder.add(utterances_of_chapter, synth))
            encoded, count = encoder.finish()
        sound, encoded = placed(sound, encoded)
        damaged = synth.damaged + encoder.damaged            # found in the cache, moved aside and made again
        ctx.report["audio"] = {"utterances": len(utterances), "synthesized": synth.synthesized,
                               "cached": len(utterances) - synth.synthesized, "chapters": len(sound), "encoded": count,
                               "cache_repaired": len(damaged), "damaged_entries": damaged}
        files[".vtt"].write_text(webvtt(cues(sound)), encoding="utf-8")
        files[".transcript.txt"].write_text(transcript(article, utterances, chapters), encoding="utf-8")

        date = m.date_reviewed or m.date_published or time.strftime("%Y-%m-%d", time.gmtime(ctx.epoch))
        language = iso639_2(m.language)
        tags = {"title": m.title, "artist": publisher, "album": publisher, "date": date, "language": language,
                "genre": "Speech"}
        titles = [c.title for c in chapters]
        metadata = {codec: workdir / f"chapters.{codec.name}.txt" for codec in CODECS}
        for codec, path in metadata.items():
            path.write_text(ffmetadata(tags, chapter_times(sound, titles, codec)), encoding="utf-8")
        targets = {MP3: files[".mp3"], AAC: files[".m4b"]}
        with ThreadPoolExecutor(max_workers=len(CODECS)) as pool:
            runs = [pool.submit(mux, [parts[codec] for parts in encoded], codec, metadata[codec], targets[codec],
                                language) for codec in CODECS]
            for run in runs:
                run.result()                        # raises the first failure, if any
        for path in metadata.values():
            path.unlink()
        return list(files.values())


STAGE = AudioStage()
