"""The audio narration: spoken script → speech (cached) → MP3 and M4B with chapters, captions, transcript.

Four parts, one module each: script.py (what is said), engines.py (the
speech engines: pyttsx3/espeak-ng or the neural Piper, each in a process of
its own), synth.py (saying it, cached and checked), assemble.py (pauses,
loudness, encoding, chapters, captions).
"""
from __future__ import annotations

import hashlib
import importlib
import json
import time
from pathlib import Path

from ...cache import reading
from ...model import Article
from ...scripts import texts_with_languages
from ...theme import Theme
from .. import BuildContext, package_version
from .lexicon import load_lexicon
from .script import transcript, write_script
from .engines import choose
from .synth import Synthesizer
from .tools import engine_version, ffmpeg_version


class AudioStage:
    name = "audio"

    def preload(self) -> None:
        assemble = importlib.import_module("pipeline.stages.audio.assemble")      # with numpy
        synth = importlib.import_module("pipeline.stages.audio.synth")   # the engines run as helper processes,
        importlib.import_module("pipeline.stages.audio.system_voice")       # the system one's forked from here,
        synth.engines.load_espeak_binding()                                 # with pyttsx3's binding loaded
        importlib.import_module("pyebur128")
        importlib.import_module("lameenc")

    def outputs(self, article: Article) -> list[str]:
        """Every file the stage can write; which narration files it makes is the theme's `audio_formats`."""
        return [f"{article.slug}{suffix}" for suffix in (".mp3", ".m4b", ".vtt", ".transcript.txt",
                                                                  ".timings.json", ".timings.js")]

    def left_out(self, article: Article, theme: Theme) -> str | None:
        """A language no voice speaks (tlh): the narration is left out, and the other formats still built."""
        voice = choose(theme.voice_engine, theme.voices, article.metadata.language, theme.root)
        return None if voice.voice else voice.warning

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        engines = f"{engine_version(ctx.cache_dir)}; {ffmpeg_version(ctx.cache_dir)}"
        voice = choose(theme.voice_engine, theme.voices, article.metadata.language, theme.root)
        return f"{engines}; {package_version('pyttsx3')}; {package_version('pycountry')}; " \
               f"{package_version('pyebur128')}; {package_version('lameenc')}; " \
               f"{voice.identity(theme.voice_rate, ctx.cache_dir)}; files {theme.audio_formats}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        # registered as a reader of the cache while it runs: the cache's pruning, by this batch as its other
        # articles finish or by another build, spares what this narration finds and is about to read
        with reading(ctx.cache_dir):
            return self._render(article, theme, workdir, ctx)

    def _render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        from concurrent.futures import ThreadPoolExecutor

        from . import assemble              # numpy: loaded only when there is sound to assemble
        from .assemble import (ChapterEncoder, chapter_times, chapters_of, codecs_for, cues, ffmetadata, iso639_2,
                               longest_first, mux, placed, timings, timings_script, webvtt)
        m = article.metadata
        publisher = m.publisher or theme.organisation
        lexicon = load_lexicon(theme.root, m.language).with_article(article)
        words = theme.messages(m.language)
        voice = choose(theme.voice_engine, theme.voices, m.language, theme.root)
        phrase_voices, warnings = voices_of_phrases(article, voice, theme.voices)
        utterances, chapters = write_script(article, lexicon, publisher, words, phrase_voices)
        cache = ctx.cache_dir or workdir / "cache"
        synth = Synthesizer(voice, m.language, theme.voice_rate, cache)
        codecs = codecs_for(theme.audio_formats)
        suffixes = [f".{codec.container}" for codec in codecs] + [".vtt", ".transcript.txt", ".timings.json",
                                                                   ".timings.js"]
        files = {suffix: workdir / f"{article.slug}{suffix}" for suffix in suffixes}

        # Encoding is the expensive part: each chapter is encoded while the next ones are spoken, and
        # its encoding is reused for as long as what it is made of does not change.
        # (the recipe: this code, the encoders, and the loudness meter, from whose reading the chapter's gain follows)
        recipe = (hashlib.sha256(Path(assemble.__file__).read_bytes()).hexdigest() + ffmpeg_version(ctx.cache_dir)
                  + package_version("lameenc") + package_version("pyebur128"))
        sound = []
        spoken = longest_first(utterances)
        try:
            with ChapterEncoder(cache / "encoded", recipe, codecs) as encoder:
                for utterances_of_chapter in chapters_of(spoken):
                    sound.append(encoder.add(utterances_of_chapter, synth))
                encoded, count = encoder.finish()
        finally:
            synth.close()
        sound, encoded = placed(sound, encoded)
        damaged = synth.damaged + encoder.damaged            # found in the cache, moved aside and made again
        ctx.report["audio"] = {"utterances": len(utterances), "synthesized": synth.synthesized,
                               "cached": len(utterances) - synth.synthesized, "refused": synth.refused,
                               "chapters": len(sound), "encoded": count,
                               "containers": list(theme.audio_formats), "encodings": encoder.encoded,
                               "voice": {"engine": voice.engine, "name": voice.voice},
                               # each utterance with a phrase in another language, and the voices that say it
                               "phrases": [{"utterance": u.id, "languages": list(u.languages),
                                            "voices": [phrase_voices[lang] for lang in u.languages]}
                                           for u in utterances if u.languages],
                               "warnings": ([voice.warning] if voice.warning else []) + warnings,
                               "cache_repaired": len(damaged), "damaged_entries": damaged,
                               "cache_bytes_added": synth.stored_bytes + encoder.stored_bytes}
        # the captions follow the file the large-print page plays: the MP3 if there is one (see the html stage)
        heard = cues(sound, codecs[0])
        files[".vtt"].write_text(webvtt(heard), encoding="utf-8")
        files[".transcript.txt"].write_text(transcript(article, utterances, chapters), encoding="utf-8")

        date = m.date_reviewed or m.date_published or time.strftime("%Y-%m-%d", time.gmtime(ctx.epoch))
        language = iso639_2(m.language, ctx.cache_dir)
        tags = {"title": m.title, "artist": publisher, "album": publisher, "date": date, "language": language,
                "genre": "Speech",
                # the narrator: audiobook players (Audiobookshelf among them) read it from the composer tag
                "composer": words.gettext("%(voice)s (%(engine)s speech engine)")
                % {"voice": voice.voice, "engine": voice.engine},
                "comment": words.gettext("Narrated by the voice %(voice)s (%(engine)s speech engine)")
                % {"voice": voice.voice, "engine": voice.engine}}
        titles = [c.title for c in chapters]
        when = timings(heard, chapter_times(sound, titles, codecs[0]), [c.heading_id for c in chapters],
                       files[f".{codecs[0].container}"].name)
        when["narrator"] = {"engine": voice.engine, "voice": voice.voice}     # the read-aloud EPUB names it
        files[".timings.json"].write_text(json.dumps(when, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        files[".timings.js"].write_text(timings_script(when), encoding="utf-8")
        # both files hold exactly the chapters' samples (assemble.py), so each lasts what the timings say
        for codec in codecs:
            ctx.facts[files[f".{codec.container}"].name] = {"seconds": round(when["duration_ms"] / 1000, 1),
                                                           "chapters": len(chapters)}
        metadata = {codec: workdir / f"chapters.{codec.name}.txt" for codec in codecs}
        for codec, path in metadata.items():
            path.write_text(ffmetadata(tags, chapter_times(sound, titles, codec)), encoding="utf-8")
        with ThreadPoolExecutor(max_workers=len(codecs)) as pool:
            runs = [pool.submit(mux, [parts[codec] for parts in encoded], codec, metadata[codec],
                                files[f".{codec.container}"], language) for codec in codecs]
            for run in runs:
                run.result()                        # raises the first failure, if any
        for path in metadata.values():
            path.unlink()
        return list(files.values())


def voices_of_phrases(article: Article, voice, named: dict[str, str]) -> tuple[dict[str, str] | None, list[str]]:
    """The espeak-ng voice for each language of the article's phrases (`[texto](lang:es)`): the theme's, else
    the one espeak-ng reports for the tag (as for an article in that language); and warnings.
    espeak-ng switches voice inside an utterance (SSML <voice>); Piper cannot: it reads them with its voice."""
    languages = sorted({lang for _, lang in texts_with_languages(article)} - {article.metadata.language})
    if not languages:
        return {}, []
    if voice.engine != "system":
        return None, [f"the {voice.engine} voice cannot switch language: the phrases in "
                      f"{', '.join(languages)} are read with the article's voice"]
    found = {lang: choose("system", named, lang, Path()).voice or None for lang in languages}
    warnings = [f"no voice speaks `{lang}`: its phrases are read with the article's voice"
                for lang, name in found.items() if name is None]
    return {lang: name for lang, name in found.items() if name}, warnings


STAGE = AudioStage()
