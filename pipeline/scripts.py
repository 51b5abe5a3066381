"""Writing systems: text direction from a language tag, joiners, and fonts that cover an article's characters.

What a language needs is taken from libraries that carry the Unicode and
CLDR data, never from lists kept here: Babel (CLDR) knows which languages are
written right to left, the regex module knows each character's Unicode
properties, and fontTools reads which characters a font has.
"""
from __future__ import annotations

import functools
import subprocess
import unicodedata
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import regex

# A letter of a script in which ZERO WIDTH (NON-)JOINER changes the spelling: a cursive script's joining
# letter (Arabic, Syriac, N'Ko, Mongolian…: Joining_Type dual, left, right or join-causing), or a letter or
# mark of an Indic script (any Indic_Syllabic_Category but Other: consonants, vowels, viramas…).
JOINING_LETTER = regex.compile(r"(?V1)[[\p{jt=D}\p{jt=L}\p{jt=R}\p{jt=C}]--\p{Cf}]|[[\p{L}\p{M}]--\p{InSC=Other}]")
# An emoji ZWJ sequence: a pictograph (perhaps with a skin tone or VARIATION SELECTOR-16) ZWJ a pictograph.
PICTOGRAPH = regex.compile(r"\p{Extended_Pictographic}")
PICTOGRAPH_TAIL = regex.compile(r"[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]")
EMOJI = regex.compile(r"[\p{Emoji_Presentation}\p{Emoji_Modifier}\p{Regional_Indicator}]")


@functools.lru_cache(maxsize=256)
def direction(language: str) -> str:
    """`rtl` or `ltr` for a BCP 47 tag, from CLDR's character order (through Babel): ar, he, fa, ur, ps,
    yi, dv… and a script subtag decides where it is given (`az-Arab` is rtl, `ku-Latn` ltr).
    A language CLDR does not know (tlh) is written left to right."""
    from babel import Locale, UnknownLocaleError
    try:
        locale = Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        primary = language.split("-")[0]
        if primary == language:
            return "ltr"
        return direction(primary)
    return "rtl" if locale.character_order == "right-to-left" else "ltr"


def valid_language(tag: str) -> bool:
    """Whether *tag* names a language Babel (CLDR) or ISO 639 knows; `x-…` private tags are refused."""
    from babel import Locale, UnknownLocaleError
    try:
        Locale.parse(tag.replace("-", "_"))
        return True
    except (UnknownLocaleError, ValueError, TypeError):
        pass
    import pycountry
    primary = tag.split("-")[0].lower()
    if len(primary) == 2:
        return pycountry.languages.get(alpha_2=primary) is not None
    return len(primary) == 3 and pycountry.languages.get(alpha_3=primary) is not None


# -- fonts ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FontFile:
    family: str
    path: Path
    number: int = 0                 # the font's index in a collection (.ttc)


def fonts_for(theme_fonts: dict, language: str) -> list[str]:
    """The font families text in *language* is set in, in the order tried: the language's own (by its full tag,
    then shorter ones: zh-Hant-TW, zh-Hant, zh), then the fonts every language falls back to."""
    subtags = language.split("-")
    own: list[str] = []
    by_language = {key.lower(): value for key, value in theme_fonts.get("languages", {}).items()}
    for n in range(len(subtags), 0, -1):
        for family in by_language.get("-".join(subtags[:n]).lower(), []):
            if family not in own:
                own.append(family)
    return own + [family for family in theme_fonts.get("text", []) if family not in own]


def font_css(theme_fonts: dict) -> str:
    """CSS that sets text in each language listed in the theme in its fonts: `:lang(ar) {font-family: …}`, the
    shorter tags first so that `zh-Hant` overrides `zh`. It applies to a whole document and to a phrase in
    another language alike. Family names are checked by the theme's schema (letters, digits, spaces, dashes).

    The emoji font is not named in the CSS: it also has the digits (for keycap sequences), and WeasyPrint
    then drew an Arabic article's digits from it, widely spaced. Pango's fallback finds it for emoji alone."""
    rules = []
    for language in sorted(theme_fonts.get("languages", {}), key=lambda tag: (tag.count("-"), tag)):
        families = ", ".join(f'"{family}"' for family in fonts_for(theme_fonts, language))
        rules.append(f":lang({language}) {{ font-family: {families}, sans-serif; }}")
    return "\n".join(rules)


@functools.lru_cache(maxsize=1)
def installed_fonts() -> dict[str, list[FontFile]]:
    """Fonts fontconfig knows (as WeasyPrint finds them), by family name in lower case."""
    try:
        listing = subprocess.run(["fc-list", "--format", "%{family}\t%{style}\t%{index}\t%{file}\n"],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    found: dict[str, list[FontFile]] = {}
    for line in sorted(listing.splitlines()):          # sorted: the same choice on every run
        try:
            families, style, index, path = line.split("\t")
        except ValueError:
            continue
        regular = any(s.strip() in ("Regular", "Book", "Normal") for s in style.split(","))
        for family in families.split(","):
            found.setdefault(family.strip().lower(), []).append((not regular, FontFile(family.strip(), Path(path),
                                                                                        int(index or 0))))
    # the regular style first: it is the one whose characters are checked
    return {family: [font for _, font in sorted(entries, key=lambda e: e[0])] for family, entries in found.items()}


def theme_font_files(folder: Path) -> dict[str, list[FontFile]]:
    """Fonts bundled in a theme's fonts/ folder (loaded by @font-face), by family name in lower case."""
    from fontTools.ttLib import TTFont
    found: dict[str, list[FontFile]] = {}
    for path in sorted(folder.glob("*.[ot]tf")) if folder.is_dir() else []:
        try:
            with TTFont(path, lazy=True) as font:
                family = font["name"].getBestFamilyName()
        except Exception:               # not a font fontTools can read: WeasyPrint would not use it either
            continue
        if family:
            found.setdefault(family.lower(), []).append(FontFile(family, path))
    return found


@functools.lru_cache(maxsize=64)
def characters_of(font: FontFile) -> frozenset[int]:
    """The code points a font has glyphs for (its cmap), read with fontTools."""
    from fontTools.ttLib import TTFont
    with TTFont(font.path, fontNumber=font.number, lazy=True) as opened:
        return frozenset(opened.getBestCmap() or {})


def needs_no_glyph(ch: str) -> bool:
    """Characters that are never drawn themselves: spaces, controls, format characters (ZWJ, ZWNJ, bidi marks)
    and variation selectors, which choose another character's form."""
    category = unicodedata.category(ch)
    return category.startswith(("Z", "C")) or 0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF


@dataclass(frozen=True)
class MissingGlyph:
    character: str
    language: str
    families: tuple[str, ...]       # the fonts that were tried
    absent: tuple[str, ...]         # those of them that are not installed (nor bundled)


def missing_glyphs(texts: list[tuple[str, str]], theme_fonts: dict, theme_root: Path) -> list[MissingGlyph]:
    """Each character of (text, language) pairs that none of its language's fonts can draw, once each."""
    known = {**installed_fonts(), **theme_font_files(theme_root / "fonts")}
    missing: dict[str, MissingGlyph] = {}
    covered: dict[str, frozenset[int]] = {}
    for text, language in texts:
        if language not in covered:
            chars: set[int] = set()
            for family in fonts_for(theme_fonts, language):
                for font in known.get(family.lower(), [])[:1]:
                    chars |= characters_of(font)
            covered[language] = frozenset(chars)
        for ch in text:
            if ord(ch) in covered[language] or ch in missing or needs_no_glyph(ch):
                continue
            families = tuple(fonts_for(theme_fonts, language))
            if PICTOGRAPH_TAIL.fullmatch(ch) or EMOJI.fullmatch(ch):
                families = tuple(theme_fonts.get("emoji", []))
                if any(ord(ch) in characters_of(font) for family in families for font in known.get(family.lower(), [])[:1]):
                    continue
            missing[ch] = MissingGlyph(ch, language, families,
                                       tuple(family for family in families if family.lower() not in known))
    return list(missing.values())


def font_files_of(article, theme_fonts: dict) -> list[str]:
    """The installed font files an article's languages are set in, with their sizes (for the PDF's fingerprint)."""
    languages = sorted({language for _, language in texts_with_languages(article)})
    families = dict.fromkeys(family for language in languages for family in fonts_for(theme_fonts, language))
    families.update(dict.fromkeys(theme_fonts.get("emoji", [])))
    found = []
    for family in families:
        for font in installed_fonts().get(family.lower(), []):
            try:
                found.append(f"{font.path.name}:{font.number}:{font.path.stat().st_size}")
            except OSError:
                pass
    return found


def texts_with_languages(article) -> list[tuple[str, str]]:
    """Every piece of text of an article with the language it is in: a phrase marked with its own language
    has that language, everything else the article's."""
    from .model import Span
    language = article.metadata.language
    found: list[tuple[str, str]] = []

    def walk(value) -> None:
        if isinstance(value, Span):
            found.append((value.text, value.lang or language))
            if value.abbr:
                found.append((value.abbr.expansion, language))
        elif is_dataclass(value) and not isinstance(value, type):
            for field in fields(value):
                walk(getattr(value, field.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value:
            found.append((value, language))

    walk(article.title)
    walk(article.subtitle)
    walk(article.blocks)
    m = article.metadata
    for value in (m.short_title, m.publisher):
        walk(value)
    return found


def position_in(source: Path, ch: str) -> tuple[int, int]:
    """Line and column (from 1) of the first *ch* in a source file, or (0, 0)."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0, 0
    at = text.find(ch)
    if at < 0:
        return 0, 0
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def describe(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')} ({ch})"
