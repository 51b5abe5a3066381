"""Themes: settings, templates, CSS, fonts and lexicons in one folder.

A theme is ``themes/<name>/`` with a ``theme.yaml`` validated like an
article. Templates are loaded only from the theme's ``templates/`` folder,
with autoescaping always on, so source text can never become markup.
"""
from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from .errors import Problem, PublishError, display_path
from .i18n import Messages, format_problem, incomplete, messages_for, no_catalogue
from .schema import Boolean, Errors, Field, Integer, ListOf, Record, Spec, Text, validate
from .stages import AUDIO_CONTAINERS
from .yamlfile import LDict, read_yaml

HEX_COLOUR = Text(pattern=r"#[0-9a-fA-F]{6}", description="a colour written #rrggbb",
                  pattern_hint="write the colour as # and six hex digits, for example #1b1b1b")
COLOUR_ROLES = ("text", "background", "muted", "link", "accent", "border", "focus", "box", "highlight")
PALETTES = ("light", "dark", "contrast")

# (foreground, background, minimum ratio): text 7:1 (WCAG 1.4.6 AAA);
# borders and focus rings are non-text UI, 4.5:1 here, above the 3:1 of 1.4.11.
# `highlight` is the ground of the sentence the narration is reading on the large-print page: its text,
# links and headings (accent) keep 7:1 on it, and a link focused inside it keeps a visible ring.
CONTRAST_PAIRS = (
    ("text", "background", 7.0), ("muted", "background", 7.0), ("link", "background", 7.0),
    ("accent", "background", 7.0), ("text", "box", 7.0), ("link", "box", 7.0), ("accent", "box", 7.0),
    ("border", "background", 4.5), ("focus", "background", 4.5),
    ("text", "highlight", 7.0), ("link", "highlight", 7.0), ("accent", "highlight", 7.0), ("focus", "highlight", 4.5),
)


def _check_palette(palette: LDict, errors: Errors, where: str) -> None:
    for fg, bg, minimum in CONTRAST_PAIRS:
        ratio = contrast_ratio(palette[fg], palette[bg])
        if ratio < minimum:
            errors.add(palette[fg], f"{where}: `{fg}` {palette[fg]} on `{bg}` {palette[bg]} has a contrast "
                       f"ratio of {ratio:.2f}:1, below the minimum of {minimum}:1",
                       f"make `{fg}` darker or `{bg}` lighter (or the reverse for a dark theme)")


class VoiceMap(Spec):
    """Language tag → voice: an espeak-ng voice (`en-us`), a Piper voice (`en_US-joe-medium`) or a Piper model
    file relative to the theme folder (`voices/my-voice.onnx`); any language may be listed."""

    description = "a mapping of language to voice"

    def check(self, value, errors, where):
        if not isinstance(value, LDict):
            errors.add(value, f"`{where}` must be a mapping of language to voice, e.g. `en: en-us`",
                       "write one `language: voice` line per language")
            return None
        return {str(k): Text(min_length=1, max_length=300).check(v, errors, f"{where}.{k}") for k, v in value.items()}


class MessageOverrides(Spec):
    """Language tag → {message: the theme's wording}: a theme's own words without a catalogue of its own."""

    description = "a mapping of language to messages"

    def check(self, value, errors, where):
        if not isinstance(value, LDict) or not all(isinstance(v, LDict) for v in value.values()):
            errors.add(value, f"`{where}` must map a language to its messages, e.g. `es: {{\"Contents\": \"Índice\"}}`",
                       "write one `language:` line, and under it one `\"English message\": wording` line per message")
            return None
        checked = {str(lang): {str(k): Text(min_length=1, max_length=2000).check(v, errors, f"{where}.{lang}.{k}")
                               for k, v in messages.items()} for lang, messages in value.items()}
        for messages in value.values():
            for message, wording in messages.items():
                problem = format_problem(str(message), str(wording)) if isinstance(wording, str) else None
                if problem:
                    errors.add(wording, f"`{where}`: {problem}", "keep the placeholders of the message as they are")
        return checked


FONT_FAMILY = Text(pattern=r"[A-Za-z0-9][A-Za-z0-9 _-]{0,99}", description="a font family name",
                  pattern_hint="write the family name as fontconfig lists it (`fc-list : family`), "
                               "for example Noto Naskh Arabic")


class FontMap(Spec):
    """Language tag → font family, or a list of them tried in order (`ar: Noto Naskh Arabic`)."""

    description = "a mapping of language to fonts"

    def check(self, value, errors, where):
        if not isinstance(value, LDict):
            errors.add(value, f"`{where}` must be a mapping of language to font, e.g. `ar: Noto Naskh Arabic`",
                       "write one `language: font` line per language")
            return None
        fonts = {}
        for key, families in value.items():
            if not re.fullmatch(r"[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*", str(key)):
                errors.add(families, f"`{where}` has `{key}`, which is not a language tag",
                           "use a BCP 47 tag such as ar, fa, zh or zh-Hant")
                continue
            names = families if isinstance(families, list) else [families]
            fonts[str(key)] = [FONT_FAMILY.check(name, errors, f"{where}.{key}") for name in names]
        return fonts


PALETTE = Record({role: Field(HEX_COLOUR, required=True) for role in COLOUR_ROLES},
                 description="a colour palette", check_record=_check_palette)

THEME = Record({
    "name": Field(Text(min_length=1, max_length=100), required=True),
    "organisation": Field(Record({
        "name": Field(Text(min_length=1, max_length=200), required=True),
        "contact": Field(Text(max_length=300), default=""),
        "logo": Field(Record({
            "src": Field(Text(max_length=200), default=""),
            "alt": Field(Text(max_length=300), default=""),
            "decorative": Field(Boolean(), default=False),
        }, description="a logo with `src` and `alt`")),
    }, description="the organisation"), required=True),
    "accessibility_summary": Field(Text(min_length=1, max_length=2000), required=True),
    "paper": Field(Text(choices=("a4", "letter")), default="a4"),
    "audio_formats": Field(ListOf(Text(choices=AUDIO_CONTAINERS), min_items=1, max_items=len(AUDIO_CONTAINERS),
                                  description="a list of narration files (mp3, m4b)"), default=None),
    "colours": Field(Record({name: Field(PALETTE, required=True) for name in PALETTES},
                            description="the colour palettes light, dark and contrast"), required=True),
    "braille": Field(Record({
        # 40 × 25 is the common embosser page (11 × 11.5 in paper); smaller embossers and
        # braille note-takers want fewer cells or more lines.
        "cells_per_line": Field(Integer(minimum=20, maximum=60), default=40),
        "lines_per_page": Field(Integer(minimum=10, maximum=60), default=25),
        "page_number": Field(Text(choices=("bottom", "top")), default="bottom"),
    }, description="braille page settings"), default=None),
    "fonts": Field(Record({
        "text": Field(ListOf(FONT_FAMILY, min_items=1), default=None),
        "emoji": Field(ListOf(FONT_FAMILY), default=None),
        "languages": Field(FontMap(), default={}),
    }, description="font settings"), default=None),
    "voice": Field(Record({
        "engine": Field(Text(choices=("system", "piper")), default="system"),
        "rate": Field(Integer(minimum=80, maximum=400), default=165),
        "voices": Field(VoiceMap(), default={}),
    }, description="voice settings"), default=None),
    "messages": Field(MessageOverrides(), default={}),
}, description="theme settings")




# A theme without `fonts:` sets every language in the bundled body font, and emoji in Noto Color Emoji.
DEFAULT_FONTS = {"text": ["Atkinson Hyperlegible"], "emoji": ["Noto Color Emoji"], "languages": {}}


def relative_luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@dataclass(frozen=True)
class Logo:
    path: Path | None
    alt: str
    decorative: bool


@dataclass(frozen=True)
class Theme:
    name: str
    root: Path
    settings: dict
    organisation: str
    contact: str
    logo: Logo | None
    accessibility_summary: str
    paper: str
    colours: dict
    voice_rate: int
    voices: dict
    braille: dict                    # cells_per_line, lines_per_page, page_number ("bottom" or "top")
    audio_formats: tuple[str, ...] = AUDIO_CONTAINERS     # the narration files a build makes (mp3, m4b)
    voice_engine: str = "system"        # "system" (pyttsx3) or "piper" (neural); --voice-engine overrides it
    message_overrides: dict = None      # language → {message: wording}, from the settings' `messages:`

    def messages(self, language, where: str = "") -> Messages:
        """The generated words of *language*; a language without a catalogue is an error at *where*
        (the article's `language:` line when *language* carries its position)."""
        found = messages_for(self.root, str(language), self.message_overrides)
        if found is None:
            raise no_catalogue(language, where or display_path(self.root / "theme.yaml"), self.root)
        if found.untranslated():        # read (once per process) and checked: `publish check` finds it
            raise incomplete(found, language, where or display_path(self.root / "theme.yaml"))
        return found
    # {"text": [families every language falls back to], "emoji": [families], "languages": {tag: [families]}}
    fonts: dict = field(default_factory=lambda: dict(DEFAULT_FONTS))

    def font_css(self) -> Markup:
        """`:lang()` rules that set each language listed in `fonts` in its fonts (for a <style> element)."""
        from .scripts import font_css
        return Markup(font_css(self.fonts))      # family names are checked by FONT_FAMILY: no quote can get in

    def file(self, relative: str) -> Path:
        """A file inside the theme folder (refusing anything that resolves outside it)."""
        target = (self.root / relative).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise PublishError(Problem(str(self.root / "theme.yaml"), 0, 0,
                                       f"`{relative}` is outside the theme folder",
                                       "keep every theme file inside the theme's own folder"))
        return target

    def render(self, folder: str, template: str, words: Messages | None = None, **context) -> str:
        """Render templates/<folder>/<template> with the generated *words* of the output's language (English
        when none are given); a broken template is a located error, not a traceback."""
        env = _environment(self.root / "templates", (folder,), words or self.messages("en"))
        try:
            return env.get_template(template).render(**context)
        except jinja2.TemplateSyntaxError as exc:
            where = Path(exc.filename or self.root / "templates" / folder / template)
            raise PublishError(Problem(display_path(where), exc.lineno or 0, 1,
                                       f"template syntax error: {exc.message}",
                                       "fix the template (Jinja2 syntax), or restore it from the default theme")) from None
        except jinja2.TemplateNotFound as exc:
            raise PublishError(Problem(display_path(self.root / "templates" / folder), 0, 0,
                                       f"the theme has no template `{exc.name}`",
                                       "copy it from themes/default/templates/")) from None
        except jinja2.UndefinedError as exc:
            raise PublishError(Problem(display_path(self.root / "templates" / folder / template), 0, 0,
                                       f"template error: {exc.message}",
                                       "the template uses a value the pipeline does not provide; "
                                       "compare it with the default theme's template")) from None


class _CompiledTemplates(jinja2.FileSystemBytecodeCache):
    """Jinja2's own store of compiled templates (keyed by the template's source, written atomically); one that
    cannot be written is compiled again next time, not an error."""

    def dump_bytecode(self, bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


_compiled: _CompiledTemplates | None = None


def keep_compiled_templates(folder: Path | None) -> None:
    """Keep compiled templates in *folder* (the build cache's `templates/`), for every process to reuse.
    Compiling the handout's templates and the macros they import took a stage 0.14 s, several times what
    rendering them takes, and an edit's build compiles them once per worker and output."""
    global _compiled
    if (_compiled.directory if _compiled else None) == (str(folder) if folder else None):
        return
    _compiled = _CompiledTemplates(str(folder)) if folder else None
    _environment.cache_clear()


@functools.lru_cache(maxsize=32)
def _environment(base: Path, folders: tuple[str, ...], words: Messages) -> jinja2.Environment:
    """One environment per language: its words are globals, which the macros imported from _blocks/ see too.
    Cached per process: it keeps the compiled templates, which cost more than rendering them (the EPUB's
    documents share their macros); a template edited meanwhile is still reloaded (Jinja2 checks its time)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(base / f) for f in folders] + [str(base / "_blocks")]),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        extensions=["jinja2.ext.i18n"], bytecode_cache=_compiled,
    )
    env.install_gettext_translations(words, newstyle=True)     # placeholders by name, escaped: _("… %(n)s", n=…)
    env.globals.update(number=words.number, long_date=words.date, quote=words.quote, join_list=words.join,
                       language_name=words.language_name)
    from .scripts import direction          # (the regex module, which it loads, takes 40 ms to import)
    env.filters["direction"] = direction     # `{{ language | direction }}`: rtl or ltr
    return env


def load_theme(root: Path) -> Theme:
    settings_file = root / "theme.yaml"
    if not settings_file.is_file():
        raise PublishError(Problem(str(settings_file), 0, 0, "the theme has no theme.yaml",
                                   "check the --theme name; themes live in themes/<name>/theme.yaml"))
    raw = read_yaml(settings_file)
    data, problems = validate(THEME, raw, str(settings_file))
    if problems:
        raise PublishError(problems)
    org = data["organisation"]
    logo = None
    if org["logo"] and org["logo"]["src"]:
        src = org["logo"]["src"]
        target = (root / src).resolve()
        if "://" in src or not target.is_relative_to(root.resolve()):
            raise PublishError(Problem(str(settings_file), src.line, src.column,
                                       f"the logo `{src}` is outside the theme folder",
                                       "copy the logo into the theme folder and give its file name"))
        if not target.is_file():
            raise PublishError(Problem(str(settings_file), src.line, src.column, f"the logo `{src}` does not exist",
                                       "check the file name; it is relative to the theme folder"))
        if not org["logo"]["decorative"] and not org["logo"]["alt"]:
            raise PublishError(Problem(str(settings_file), src.line, src.column, "the logo has no alt text",
                                       "add `alt:` (e.g. the clinic's name) or `decorative: true`"))
        logo = Logo(target, str(org["logo"]["alt"]), org["logo"]["decorative"])
    voice = data["voice"] or {"rate": 165, "voices": {}, "engine": "system"}
    braille = data["braille"] or {"cells_per_line": 40, "lines_per_page": 25, "page_number": "bottom"}
    return Theme(
        name=str(data["name"]), root=root, settings=data,
        organisation=str(org["name"]), contact=str(org["contact"]), logo=logo,
        accessibility_summary=str(data["accessibility_summary"]), paper=str(data["paper"]),
        colours={name: {role: str(v) for role, v in palette.items()} for name, palette in data["colours"].items()},
        voice_rate=voice["rate"] or 165, voices=dict(voice["voices"] or {}), voice_engine=voice["engine"] or "system",
        braille={"cells_per_line": int(braille["cells_per_line"]), "lines_per_page": int(braille["lines_per_page"]),
                 "page_number": str(braille["page_number"])},
        audio_formats=audio_containers(data["audio_formats"] or AUDIO_CONTAINERS),
        message_overrides=data["messages"] or {},
        fonts={"text": [str(f) for f in (data["fonts"] or {}).get("text") or DEFAULT_FONTS["text"]],
               "emoji": [str(f) for f in (data["fonts"] or {}).get("emoji") or DEFAULT_FONTS["emoji"]],
               "languages": {k: [str(f) for f in v] for k, v in ((data["fonts"] or {}).get("languages") or {}).items()}},
    )


def audio_containers(names) -> tuple[str, ...]:
    """The narration files named, each once, in a fixed order (so that "m4b, mp3" builds as "mp3, m4b" does)."""
    return tuple(name for name in AUDIO_CONTAINERS if name in {str(n) for n in names})
