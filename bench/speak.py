"""Speak an article's narration through publish's synthesizer, as a build's narration worker does; for
`run.py --voices --instructions`, which counts the instructions of this process and of the helpers it
starts with valgrind's callgrind.

    python3 bench/speak.py prepare|speak ARTICLE.yaml ENGINE CACHE

`prepare` does everything but the speaking (the worker's imports, the article's script, the engine's version
remembered in the cache, as the build's fingerprint leaves it); `speak` then speaks every utterance with one
engine. Both end at once, without the interpreter's clean-up, so that the difference of their counts is
the speaking alone (run.py has callgrind count each forked helper's own instructions from its fork).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.source import load_article  # noqa: E402
from pipeline.stages.audio import STAGE as narration  # noqa: E402
from pipeline.stages.audio.engines import choose  # noqa: E402
from pipeline.stages.audio.lexicon import load_lexicon  # noqa: E402
from pipeline.stages.audio.script import write_script  # noqa: E402
from pipeline.stages.audio.synth import Synthesizer  # noqa: E402
from pipeline.theme import load_theme  # noqa: E402


def spoken_texts(article_path: Path, theme) -> list[str]:
    """What a build's narration speaks of the article, utterance by utterance (its script)."""
    article = load_article(article_path)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    return [u.spoken for u in utterances]


def write_lines(texts: list[str], path: Path) -> Path:
    """The texts for an engine's own program: one utterance a line."""
    path.write_text("\n".join(" ".join(text.split()) for text in texts) + "\n")
    return path


def main(mode: str, article_path: str, engine: str, cache: str) -> None:
    narration.preload()
    theme = load_theme(ROOT / "themes" / "default")
    texts = spoken_texts(Path(article_path), theme)
    choice = choose(engine, theme.voices, "en", theme.root)
    choice.identity(theme.voice_rate, Path(cache))
    if mode == "speak":
        # one engine: a build on two cores forks a second from the first's helper, which adds a fork and
        # shares the same sentences out, speaking nothing the first would not
        synth = Synthesizer(choice, "en", theme.voice_rate, Path(cache), parallel=1)
        synth.wavs(texts)
        synth.close()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(*sys.argv[1:5])
