"""A small declarative schema for located YAML values.

Each setting declares its type, whether it is required, and its checks in one
place (in the spirit of MkDocs' config options). Validation collects every
problem it finds, each at the line and column of the offending value, worded
for the person who wrote the file, with a fix; unknown keys get a
"did you mean".
"""
from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable

from .errors import Problem
from .yamlfile import LDict, LList, LStr, Located

# Characters that make text look different from what it says, or that hide
# text. They often arrive when text is pasted from web pages or word processors.
_BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_INVISIBLE = set("\u200b\u200c\u200d\u2060\ufeff\u00ad")
_JOINERS = {"\u200c", "\u200d"}      # ZERO WIDTH NON-JOINER and JOINER: spelling in some scripts, see joiner_needed


def joiner_needed(text: str, i: int) -> bool:
    """Whether the ZWNJ or ZWJ at text[i] is part of the spelling rather than hidden junk.

    Persian, Kurdish, Urdu and the other languages written in cursive scripts
    (Arabic, Syriac, N'Ko, Mongolian…) use ZWNJ to keep two letters of one
    word apart ("می‌خواهم"); the Indic scripts use ZWNJ and ZWJ after a virama
    to choose a conjunct's form; emoji ZWJ sequences join pictographs into one
    (👩‍⚕️). Between letters of other scripts (Latin, Cyrillic, CJK…) a joiner
    does nothing visible and is refused, as it can hide text. The judgement
    rests on the Unicode Character Database (joining type, Indic syllabic
    category, Extended_Pictographic), through the regex module's properties.
    """
    from .scripts import JOINING_LETTER, PICTOGRAPH, PICTOGRAPH_TAIL
    before, after = text[i - 1:i], text[i + 1:i + 2]
    if not before or not after:
        return False
    if JOINING_LETTER.fullmatch(before) and JOINING_LETTER.fullmatch(after):
        return True
    return text[i] == "\u200d" and bool(PICTOGRAPH_TAIL.fullmatch(before)) and bool(PICTOGRAPH.fullmatch(after))


def _type_name(value) -> str:
    if isinstance(value, LDict):
        return "a mapping (`key: value` lines)"
    if isinstance(value, LList):
        return "a list (`- item` lines)"
    return f"the text `{_short(value)}`"


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Errors:
    """Collects problems for one file."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []

    def add(self, at: Located, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, at.line, at.column, message, hint))


class Spec:
    """The expected shape of one value."""

    description = "a value"

    def check(self, value, errors: Errors, where: str):
        raise NotImplementedError


@dataclass
class Text(Spec):
    """A text value; unquoted words are fine, numbers too (kept as text)."""

    max_length: int = 20_000
    min_length: int = 0
    pattern: str | None = None
    pattern_hint: str = ""
    choices: tuple[str, ...] = ()
    description: str = "text"

    def check(self, value, errors, where):
        if not isinstance(value, LStr):
            errors.add(value, f"`{where}` must be {self.description}, not {_type_name(value)}",
                       f"write `{where}` as a single line of text")
            return None
        text = LStr(" ".join(value.split()) if "\n" in value else value)
        text.line, text.column, text.plain = value.line, value.column, value.plain
        if len(text) > self.max_length:
            errors.add(value, f"`{where}` is {len(text):,} characters long, more than {self.max_length:,}",
                       "shorten it or split it into several paragraphs")
            return None
        if len(text.strip()) < self.min_length:
            errors.add(value, f"`{where}` must not be empty", f"write the {self.description}")
            return None
        for i, ch in enumerate(text):
            bad = None
            if ch in _BIDI_CONTROLS:
                bad = "an invisible text-direction control character"
            elif ch in _INVISIBLE and not (ch in _JOINERS and joiner_needed(text, i)):
                bad = "an invisible character"
                if ch in _JOINERS and 0 < i < len(text) - 1:
                    bad += f" between `{text[i - 1]}` and `{text[i + 1]}`"
            elif unicodedata.category(ch) == "Cc" and ch not in "\n\t":
                bad = "a control character"
            if bad:
                errors.add(value, f"`{where}` contains {bad} (U+{ord(ch):04X} "
                           f"{unicodedata.name(ch, 'unnamed')}) at character {i + 1}",
                           "delete it; it is usually left over from text pasted from a web page or word processor"
                           + (" (a joiner is kept only between letters of scripts that use it, such as Arabic, "
                              "Persian or Devanagari, and inside an emoji sequence)" if ch in _JOINERS else "")
                           + ("; the direction comes from the language: mark a phrase in another language as "
                              "[phrase](lang:xx)" if ch in _BIDI_CONTROLS else ""))
                return None
        if self.choices and text not in self.choices:
            close = difflib.get_close_matches(text, self.choices, n=1)
            errors.add(value, f"`{where}` is `{_short(text)}`, which is not one of: {', '.join(self.choices)}",
                       f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(self.choices)}")
            return None
        if self.pattern and text and not re.fullmatch(self.pattern, text):
            errors.add(value, f"`{where}` is `{_short(text)}`, which is not {self.description}",
                       self.pattern_hint or f"write {self.description}")
            return None
        return text


@dataclass
class Integer(Spec):
    minimum: int = 0
    maximum: int = 10**9
    description: str = "a whole number"

    def check(self, value, errors, where):
        if isinstance(value, LStr) and value.plain and re.fullmatch(r"-?\d{1,12}", value):
            number = int(value)
            if self.minimum <= number <= self.maximum:
                return number
        errors.add(value, f"`{where}` must be a whole number from {self.minimum} to {self.maximum}, "
                   f"not {_type_name(value)}", f"write a number such as `{where}: {self.minimum}`, without quotes")
        return None


@dataclass
class Boolean(Spec):
    description: str = "true or false"

    def check(self, value, errors, where):
        if isinstance(value, LStr) and value.plain and value in ("true", "false"):
            return value == "true"
        errors.add(value, f"`{where}` must be true or false, not {_type_name(value)}",
                   f"write `{where}: true` or `{where}: false`")
        return None


@dataclass
class ListOf(Spec):
    item: Spec
    min_items: int = 0
    max_items: int = 10_000
    description: str = "a list"

    def check(self, value, errors, where):
        if not isinstance(value, LList):
            errors.add(value, f"`{where}` must be a list, not {_type_name(value)}",
                       f"write each item of `{where}` on its own line starting with `- `")
            return None
        if not self.min_items <= len(value) <= self.max_items:
            errors.add(value, f"`{where}` has {len(value)} items; it needs "
                       + (f"at least {self.min_items}" if len(value) < self.min_items else f"at most {self.max_items}"),
                       "add or remove items")
            return None
        out = LList(self.item.check(v, errors, f"{where}[{i + 1}]") for i, v in enumerate(value))
        out.line, out.column = value.line, value.column
        return out


@dataclass
class Field:
    spec: Spec
    required: bool = False
    default: object = None


@dataclass
class Record(Spec):
    """A mapping with known keys; unknown keys are errors with a did-you-mean."""

    fields: dict[str, Field]
    description: str = "a mapping"
    check_record: Callable[[LDict, Errors, str], None] | None = None

    def check(self, value, errors, where):
        if not isinstance(value, LDict):
            errors.add(value, f"`{where}` must be {self.description}, not {_type_name(value)}",
                       f"write `{where}` as indented `key: value` lines; its keys are: {', '.join(self.fields)}")
            return None
        out = LDict()
        out.line, out.column, out.key_nodes = value.line, value.column, value.key_nodes
        for key, item in value.items():
            if key not in self.fields:
                close = difflib.get_close_matches(key, self.fields, n=1, cutoff=0.6)
                errors.add(value.key_nodes[key], f"unknown key `{key}` in {where}",
                           f"did you mean `{close[0]}`?" if close
                           else f"remove it; the keys allowed here are: {', '.join(self.fields)}")
                continue
            out[key] = self.fields[key].spec.check(item, errors, f"{where}.{key}" if where else key)
        for key, f in self.fields.items():
            if key not in value:
                if f.required:
                    errors.add(value, f"{where or 'the file'} is missing the required key `{key}`",
                               f"add a line `{key}: ...` ({f.spec.description})")
                out[key] = f.default
        if self.check_record and not errors.problems:
            self.check_record(out, errors, where)
        return out


@dataclass
class OneOf(Spec):
    """A mapping with exactly one key naming its kind, e.g. ``- p: text``."""

    kinds: dict[str, Spec]
    description: str = "a block"

    def check(self, value, errors, where):
        if isinstance(value, LDict) and len(value) == 1:
            (kind, inner), = value.items()
            if kind in self.kinds:
                checked = self.kinds[kind].check(inner, errors, f"{where}.{kind}")
                return (LStr(kind), checked)
            close = difflib.get_close_matches(kind, self.kinds, n=1, cutoff=0.6)
            errors.add(value.key_nodes[kind], f"unknown {self.description} kind `{kind}` in {where}",
                       f"did you mean `{close[0]}`?" if close else f"use one of: {', '.join(self.kinds)}")
            return None
        errors.add(value, f"`{where}` must be {self.description}: a mapping with one key naming its kind, "
                   f"not {_type_name(value) if not isinstance(value, LDict) else 'a mapping with ' + str(len(value)) + ' keys'}",
                   f"write it as `- KIND: ...` where KIND is one of: {', '.join(self.kinds)}")
        return None


@dataclass
class Either(Spec):
    """Text, or a record (for list items that may carry a label)."""

    text: Text
    record: Record
    description: str = "text or a mapping"

    def check(self, value, errors, where):
        if isinstance(value, LDict):
            return self.record.check(value, errors, where)
        return self.text.check(value, errors, where)


def validate(spec: Spec, value, file: str) -> tuple[object, list[Problem]]:
    errors = Errors(file)
    if value is None:
        return None, [Problem(file, 1, 1, "the file is empty", "write the file's fields")]
    result = spec.check(value, errors, "")
    return result, errors.problems[:30]
