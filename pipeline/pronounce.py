"""Pronunciation tools for editors.

`publish say` speaks a word or sentence as the narration would, so an
editor can hear a drug name before a build: the text goes through the
theme's lexicon and speech engine (or --voice-engine), exactly as in a
narration, into an MP3 at the narration's loudness. Its speech is cached
with the narration's.

`publish check` warns about what no engine says sensibly on its own:
all-capitals abbreviations of three or more letters ("NSAID", "MRI") that
neither the lexicon nor the article's `abbreviations` expand; espeak-ng
spells some and reads others as a word, Piper guesses.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from .errors import EXIT_OK, Problem, PublishError


def say(args: argparse.Namespace, theme_dir: Path) -> int:
    from .cache import reading
    from .stages.audio.assemble import RATE, leveled, mp3_frames, read_samples
    from .stages.audio.engines import choose
    from .stages.audio.lexicon import load_lexicon
    from .stages.audio.synth import Synthesizer
    from .theme import load_theme
    try:
        theme = load_theme(theme_dir)
        if args.voice_engine:
            theme = replace(theme, voice_engine=args.voice_engine)
        if not args.text.strip():
            raise PublishError(Problem("publish say", 0, 0, "there is nothing to say", 'give a word or sentence: publish say "cobalamin"'))
        spoken = load_lexicon(theme.root, args.language).speak(args.text)
        voice = choose(theme.voice_engine, theme.voices, args.language, theme.root)
        if voice.warning:
            print(f"publish say: warning: {voice.warning}", file=sys.stderr)
        cache_dir = theme_dir.parent.parent / ".cache"
        with reading(cache_dir):                 # a build's pruning spares the speech it finds
            synth = Synthesizer(voice, args.language, theme.voice_rate, cache_dir)
            try:
                samples = read_samples(synth.wav(spoken))
            finally:
                synth.close()
        try:
            Path(args.out).write_bytes(mp3_frames(leveled(samples)))
        except OSError as exc:
            raise PublishError(Problem(args.out, 0, 0, f"cannot write the MP3 ({exc.strerror})",
                                       "check that the folder exists and is writable")) from None
    except PublishError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code
    print(f"{args.out}: “{spoken}” ({voice.voice}, {voice.engine} engine, {samples.size / RATE:.1f} s)")
    return EXIT_OK


ALL_CAPITALS = re.compile(r"(?<![\w-])[A-Z]{3,}s?(?![\w-])")      # "MRI", and "NSAIDs" as a whole


def unexpanded_abbreviations(article, theme) -> list[str]:
    """All-capitals words of three or more letters in the article with no lexicon entry or expansion."""
    from .stages.audio.lexicon import load_lexicon
    known = load_lexicon(theme.root, article.metadata.language).with_article(article).words
    found: dict[str, None] = {}
    for sentence in article.sentences():
        for word in ALL_CAPITALS.findall(sentence.text):
            if word not in known and word.rstrip("s") not in known:
                found.setdefault(word)
    return list(found)
