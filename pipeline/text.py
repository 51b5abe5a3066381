"""Inline text: parsing the small markup of the source, sentences and slugs.

Source text may use ``**strong**``, ``*emphasis*`` and ``[link text](url)``;
nothing else is markup (raw HTML stays literal text). Parsing is done by
markdown-it-py with every other rule switched off.

A phrase in another language is written as a link to its language tag,
``[buenos días](lang:es)``: it reads naturally in the source, any Markdown
editor keeps it, and it needs no syntax of its own. It is marked with
``lang`` (and ``dir``) in the page and the EPUB, ``/Lang`` in the PDF, and
spoken by that language's voice.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import regex
from markdown_it import MarkdownIt

from .model import Abbreviation, Sentence, Span

_markdown = MarkdownIt("zero").enable(["emphasis", "link", "escape"])
_markdown.validateLink = lambda url: True        # we check URLs ourselves, with a clear error
_markdown.normalizeLink = lambda url: url        # and keep them as written

ALLOWED_SCHEMES = ("https://", "http://", "mailto:", "tel:")


class InlineError(ValueError):
    """A problem in inline markup; the caller knows the position."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def check_url(url: str) -> None:
    if url.startswith("#"):
        return
    if not url.lower().startswith(ALLOWED_SCHEMES):
        scheme = url.split(":", 1)[0] + ":" if ":" in url else "a relative address"
        raise InlineError(f"the link address `{url[:60]}` uses {scheme}, which is not allowed",
                          "use a full https:// address (or http://, mailto:, tel:)")
    if any(ch.isspace() for ch in url):
        raise InlineError(f"the link address `{url[:60]}` contains a space", "remove the space or write it as %20")


LANGUAGE_PREFIX = "lang:"
LANGUAGE_TAG = re.compile(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*")


def check_language(tag: str) -> str:
    """The language tag of a phrase (`[texto](lang:es)`), checked: a well-formed BCP 47 tag of a known language."""
    from .scripts import valid_language
    if not LANGUAGE_TAG.fullmatch(tag):
        raise InlineError(f"`lang:{tag[:40]}` is not a language tag",
                          "write a BCP 47 tag after `lang:`, such as [bonjour](lang:fr) or [谢谢](lang:zh)")
    if not valid_language(tag):
        raise InlineError(f"`lang:{tag}` names no language known to CLDR or ISO 639",
                          "check the code: two or three letters, such as es, fr, ar, zh or yue")
    return tag


def parse_inline(text: str, abbreviations: tuple[Abbreviation, ...] = ()) -> tuple[Span, ...]:
    """Source text with light markup → flat spans."""
    tokens = _markdown.parseInline(text)[0].children or []
    spans: list[Span] = []
    strong = emphasis = 0
    href: str | None = None
    lang: str | None = None
    for tok in tokens:
        if tok.type == "strong_open":
            strong += 1
        elif tok.type == "strong_close":
            strong -= 1
        elif tok.type == "em_open":
            emphasis += 1
        elif tok.type == "em_close":
            emphasis -= 1
        elif tok.type == "link_open":
            href = tok.attrs.get("href", "")
            if href.lower().startswith(LANGUAGE_PREFIX):
                lang, href = check_language(href[len(LANGUAGE_PREFIX):]), None
            else:
                check_url(href)
        elif tok.type == "link_close":
            href = lang = None
        elif tok.type in ("text", "softbreak", "hardbreak"):
            content = tok.content if tok.type == "text" else " "
            spans.append(Span(content, strong=strong > 0, emphasis=emphasis > 0, href=href, lang=lang))
    return _mark_abbreviations(_merge(spans), abbreviations)


def _merge(spans: list[Span]) -> tuple[Span, ...]:
    out: list[Span] = []
    for span in spans:
        if out and replace(out[-1], text="") == replace(span, text=""):
            out[-1] = replace(out[-1], text=out[-1].text + span.text)
        elif span.text:
            out.append(span)
    # runs of white space collapse to one space, as in HTML
    return tuple(replace(s, text=re.sub(r"\s+", " ", s.text)) for s in out)


def _mark_abbreviations(spans: tuple[Span, ...], abbreviations) -> tuple[Span, ...]:
    if not abbreviations:
        return spans
    by_text = {a.text: a for a in abbreviations}
    pattern = re.compile(r"(?<![\w-])(" + "|".join(
        re.escape(a) for a in sorted(by_text, key=len, reverse=True)) + r")(?![\w-])")
    out: list[Span] = []
    for span in spans:
        if span.abbr:
            out.append(span)
            continue
        pos = 0
        for m in pattern.finditer(span.text):
            if m.start() > pos:
                out.append(replace(span, text=span.text[pos:m.start()]))
            out.append(replace(span, text=m.group(1), abbr=by_text[m.group(1)]))
            pos = m.end()
        if pos < len(span.text):
            out.append(replace(span, text=span.text[pos:]))
    return tuple(out)


# Words ending in a full stop that do not end a sentence.
_NOT_SENTENCE_ENDS = {"e.g", "i.e", "vs", "etc", "dr", "mr", "mrs", "ms", "prof", "st", "no", "approx", "fig", "cf"}
# A sentence ends at a full stop (of any script: . ! ? ؟ ۔ । …) followed by white space and a capital, a digit, or
# a letter of a script without capitals (Arabic, Hebrew, Devanagari…); or at a CJK full stop, which takes no
# space after it (。！？).
_CJK_END = "。！？｡"
_END = regex.compile(r"(?V1)[\p{Sentence_Terminal}--[" + _CJK_END + r"]][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[\p{Lu}\p{Lo}\d])"
                     r"|[" + _CJK_END + r"][”’）」』\"']*\s*")


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """Character ranges of the sentences of *text* (white space between them excluded)."""
    bounds = []
    start = 0
    for m in _END.finditer(text):
        word = re.search(r"([\w.]+)[.!?]$", text[start:m.start() + 1])
        if m.group(0)[0] == "." and word and word.group(1).lower().rstrip(".") in _NOT_SENTENCE_ENDS:
            continue
        end = m.start() + len(m.group(0).rstrip())
        bounds.append((start, end))
        start = m.end()
    if start < len(text.rstrip()):
        bounds.append((start, len(text.rstrip())))
    return [(s, e) for s, e in bounds if text[s:e].strip()]


def split_sentences(spans: tuple[Span, ...], id_prefix: str) -> tuple[Sentence, ...]:
    """Cut spans at sentence ends; each sentence gets the id ``<prefix>-s<n>``."""
    # strip leading/trailing space of the whole run
    text = "".join(s.text for s in spans)
    lead = len(text) - len(text.lstrip())
    sentences = []
    for n, (start, end) in enumerate(sentence_bounds(text[lead:]), 1):
        sentences.append(Sentence(f"{id_prefix}-s{n}", _slice(spans, start + lead, end + lead)))
    return tuple(sentences)


def _slice(spans: tuple[Span, ...], start: int, end: int) -> tuple[Span, ...]:
    out, pos = [], 0
    for span in spans:
        a, b = pos, pos + len(span.text)
        pos = b
        lo, hi = max(a, start), min(b, end)
        if lo < hi:
            out.append(replace(span, text=span.text[lo - a:hi - a]))
    return tuple(out)


def slugify(text: str) -> str:
    """A readable id: "Comparison of Oral vs. Injectable B12" → "comparison-of-oral-vs-injectable-b12"."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].rstrip("-") or "section"
