"""Pronunciation: turn written text into what the voice should say.

The lexicon is data (themes/<theme>/lexicon/<language>.yaml), validated like
every other file, and an article may override entries (`pronunciations:`).
Order of precedence for a word: the article's pronunciations, then the
theme's lexicon, then the article's abbreviation expansions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import PublishError
from ...model import Article
from ...schema import Field, ListOf, Record, Spec, Text, validate
from ...yamlfile import LDict, read_yaml


class WordMap(Spec):
    """A mapping of written word → spoken text."""

    description = "a mapping of words to what is said"

    def check(self, value, errors, where):
        if not isinstance(value, LDict):
            errors.add(value, f"`{where}` must be a mapping of `word: what to say`", "write one `word: spoken text` per line")
            return None
        say = Text(min_length=1, max_length=200, description="what to say")
        return {str(k): say.check(v, errors, f"{where}.{k}") for k, v in value.items()}


class Pattern(Text):
    """A regular expression that must compile."""

    def check(self, value, errors, where):
        text = super().check(value, errors, where)
        if text is not None:
            try:
                re.compile(text)
            except re.error as exc:
                errors.add(value, f"`{where}` is not a valid regular expression ({exc})", "fix the pattern")
                return None
        return text


LEXICON = Record({
    "words": Field(WordMap(), default={}),
    "patterns": Field(ListOf(Record({
        "match": Field(Pattern(min_length=1, max_length=200, description="a regular expression"), required=True),
        "say": Field(Text(max_length=200, description="what to say"), required=True),
    }, description="a pattern with `match` and `say`")), default=()),
}, description="a pronunciation lexicon")


@dataclass(frozen=True)
class Lexicon:
    words: dict[str, str]
    patterns: tuple[tuple[re.Pattern, str], ...]

    def with_article(self, article: Article) -> "Lexicon":
        words = {a.text: a.expansion for a in article.abbreviations}
        words.update(self.words)
        words.update(dict(article.pronunciations))
        return Lexicon(words, self.patterns)

    def speak(self, text: str) -> str:
        """Written text → the text the voice reads."""
        if self.words:
            # a word may follow a hyphen ("High-B12") but not run on into one ("COX-2" is not "COX")
            pattern = re.compile(r"(?<!\w)(" + "|".join(
                re.escape(w) for w in sorted(self.words, key=len, reverse=True)) + r")(?![\w-])")
            text = pattern.sub(lambda m: self.words[m.group(1)], text)
        for regex, replacement in self.patterns:
            text = regex.sub(replacement, text)
        return tidy(text)


def tidy(text: str) -> str:
    """Take out what a voice must not read aloud, and give brackets and dashes the pauses a reader gives them."""
    text = re.sub(r"\s*[—–]\s*", ", ", text)                # dashes between clauses
    text = re.sub(r"\s*\(\s*", ", ", text)                   # (B1, B6, and B12) → , B1, B6, and B12,
    text = re.sub(r"\s*\)\s*", ", ", text)
    text = re.sub(r"[*_|<>#{}\[\]\\^~`]", " ", text)          # markup characters are never spoken
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,\s*(,\s*)+", ", ", text)             # collapse repeated commas
    text = re.sub(r",\s*([.?!;:])", r"\1", text)             # no comma before a full stop
    text = re.sub(r"\s+([,.?!;:])", r"\1", text)
    return text.strip(" ,")


def load_lexicon(theme_root: Path, language: str) -> Lexicon:
    """The theme's lexicon for *language* (en-GB falls back to en); an empty one if there is none."""
    folder = theme_root / "lexicon"
    for name in (language, language.split("-")[0]):
        path = folder / f"{name}.yaml"
        if path.is_file():
            data, problems = validate(LEXICON, read_yaml(path), str(path))
            if problems:
                raise PublishError(problems)
            patterns = tuple((re.compile(p["match"]), _replacement(p["say"])) for p in data["patterns"])
            return Lexicon(dict(data["words"]), patterns)
    return Lexicon({}, ())


def _replacement(say: str) -> str:
    """`\\1` in the YAML is a group reference; anything else backslashed is literal."""
    return re.sub(r"\\(?!\d)", r"\\\\", say)
