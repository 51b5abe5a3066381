"""The words the pipeline adds to an article, in the article's language: gettext catalogues read with Babel.

Every word an output carries that the author did not write ("Contents",
"Page 1 of 4", "Section 2:", "Warning.", the EPUB's landmarks) is a message
of a gettext catalogue, one per language, kept by the theme:

    themes/<theme>/locale/messages.pot                      the messages, extracted (see babel.cfg)
    themes/<theme>/locale/<lang>/LC_MESSAGES/messages.po    their translation into one language

A string is looked up, first match wins, in the theme's settings
(``messages: {es: {"Contents": "Índice"}}`` in theme.yaml), the theme's own
catalogue, and then the default theme's catalogue, so a clinic's theme
overrides only the strings it wants to and still gets every new one. The
.po files are read directly (no compiled .mo, so no build step to forget)
and kept per process, keyed by the files' sizes and times; the catalogues
are theme files, so a changed translation changes every fingerprint and is
rebuilt.

Dates, numbers and lists ("A, B and C") come from Babel's CLDR data for
the language; quotation marks, which Babel does not carry, are a message.
An article whose language has no catalogue is refused before anything is
built: a Spanish article must not come out with English furniture.
"""
from __future__ import annotations

import datetime
import functools
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.lists import format_list
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.numbers import format_decimal
from babel.support import Translations

from .errors import Problem, PublishError, display_path

DOMAIN = "messages"
DEFAULT_THEME = "default"


def N_(message: str) -> str:
    """Mark a message for extraction where it is defined (a table of labels) and translate it where it is used."""
    return message


def catalogue_path(theme_root: Path, locale_name: str) -> Path:
    return theme_root / "locale" / locale_name / "LC_MESSAGES" / f"{DOMAIN}.po"


def template_path(theme_root: Path) -> Path:
    return theme_root / "locale" / f"{DOMAIN}.pot"


def locale_names(tag: str) -> list[str]:
    """The catalogue folders that can serve a BCP 47 tag, most specific first: `es-MX` → es_MX, es."""
    parts = str(tag).replace("_", "-").split("-")
    names = []
    for n in range(len(parts), 0, -1):
        subtags = [parts[0].lower()] + [p.upper() if len(p) == 2 else p.title() for p in parts[1:n]]
        names.append("_".join(subtags))
    return names


def babel_locale(tag: str) -> Locale:
    """Babel's locale for a tag; a language CLDR does not know gets the root formats (ISO dates, plain digits)."""
    for name in locale_names(tag):
        try:
            return Locale.parse(name)
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse("en_US_POSIX")


PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class _Placeholders(dict):
    """A mapping that answers only the placeholders a message has: formatting a translation with it finds a
    misspelt placeholder or a lone % before a reader meets a traceback."""

    def __missing__(self, key):
        raise KeyError(key)


def format_problem(message_id, translation: str) -> str | None:
    """What is wrong with *translation* as a %-format of the message, or None."""
    ids = message_id if isinstance(message_id, (tuple, list)) else (message_id,)
    allowed = _Placeholders({name: "" for text in ids for name in PLACEHOLDER.findall(text)})
    try:
        translation % allowed
    except KeyError as exc:
        return f"the translation has the placeholder %({exc.args[0]})s, which the message does not give"
    except (ValueError, TypeError):
        return "the translation has a lone `%` (write `%%` for a percent sign)"
    return None


def _check(catalogue: Catalog, path: Path) -> list:
    """The catalogue's untranslated messages (empty or fuzzy); a translation that cannot be used is an error."""
    problems, untranslated = [], []
    for message in catalogue:
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.id and (message.fuzzy or not all(forms)):
            untranslated.append(message.id)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for form in (f for f in forms if f) if message.id else ():
            problem = format_problem(message.id, form)
            if problem:
                problems.append(Problem(display_path(path), message.lineno or 0, 1, problem,
                                        "keep the msgid's placeholders, such as %(date)s, as they are, and write %% "
                                        "for a percent sign"))
                break
    if problems:
        raise PublishError(problems)
    return untranslated


@functools.lru_cache(maxsize=64)
def _read_catalogue(path: Path, size: int, mtime: int) -> Translations:
    """A .po file as gettext translations (compiled in memory), its placeholders checked; cached by the
    file's size and time."""
    try:
        with path.open("rb") as f:
            catalogue = read_po(f, locale=path.parent.parent.name)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PublishError(Problem(display_path(path), getattr(exc, "lineno", 0) or 0, 1,
                                   f"the message catalogue cannot be read ({exc})",
                                   "save it as UTF-8 gettext PO, or restore it from the default theme")) from None
    untranslated = _check(catalogue, path)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    translations = Translations(compiled, domain=DOMAIN)
    # what it translates, by msgid (a plural's by its singular): write_mo fills an empty plural form with English
    left = set(untranslated)
    translations.translated = frozenset(
        (m.id[0] if isinstance(m.id, tuple) else m.id) for m in catalogue if m.id and m.id not in left)
    translations.untranslated = tuple(untranslated)
    return translations


def catalogue_files(theme_root: Path, tag: str) -> list[Path]:
    """The catalogues that serve *tag*, in lookup order: the theme's own, then the default theme's."""
    roots = [theme_root]
    default = theme_root.parent / DEFAULT_THEME
    if theme_root.name != DEFAULT_THEME and (default / "locale").is_dir():
        roots.append(default)
    return [p for root in roots for name in locale_names(tag) if (p := catalogue_path(root, name)).is_file()]


@dataclass(frozen=True)
class Messages:
    """The generated words and formats of one language: what templates get as `_`, `ngettext` and filters.

    The catalogues are read on first use, once per process; two Messages are equal while their files are
    unchanged, so a template environment can be kept per language.
    """

    language: str                       # the article's tag, as written (`es`, `es-MX`)
    files: tuple[tuple[Path, int, int], ...] = ()   # the catalogues, looked up in order, with size and time
    overrides: tuple[tuple[str, str], ...] = ()     # the theme settings' own wording (msgid, msgstr)

    @functools.cached_property
    def chain(self) -> tuple[Translations, ...]:
        return tuple(_read_catalogue(*file) for file in self.files)

    def untranslated(self) -> list:
        """The messages that no catalogue of the chain translates, though one of them lists it."""
        listed = [m for translations in self.chain for m in translations.untranslated]
        done = dict(self.overrides)
        return [m for m in dict.fromkeys(listed, None) if m not in done and not any(
            (m if isinstance(m, str) else m[0]) in t.translated for t in self.chain)]

    @functools.cached_property
    def locale(self) -> Locale:
        return babel_locale(self.language)

    def gettext(self, message: str) -> str:
        override = dict(self.overrides).get(message)
        if override is not None:
            return override
        for translations in self.chain:
            if message in translations.translated:
                return translations.gettext(message)
        return message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        for translations in self.chain:
            if singular in translations.translated:
                return translations.ngettext(singular, plural, n)
        return singular if n == 1 else plural

    def pgettext(self, context: str, message: str) -> str:
        for translations in self.chain:
            if translations._catalog.get(f"{context}\x04{message}"):        # (no message has a context yet)
                return translations.pgettext(context, message)
        return message

    def npgettext(self, context: str, singular: str, plural: str, n: int) -> str:
        for translations in self.chain:
            if translations._catalog.get((f"{context}\x04{singular}", 0)):
                return translations.npgettext(context, singular, plural, n)
        return singular if n == 1 else plural

    # -- formats (CLDR, through Babel) ---------------------------------------
    def number(self, value: float, pattern: str | None = None) -> str:
        """A number as the language writes it ("6.8", "6,8"); *pattern* as CLDR's ("0.0": one decimal)."""
        return format_decimal(value, format=pattern, locale=self.locale)

    def date(self, iso: str) -> str:
        """2026-03-16 → "16 March 2026", "16 de marzo de 2026": a date as the language writes it out."""
        # Translators: how a date is written out, as a CLDR date pattern (d: day, MMMM: the month's name, y: year;
        # words in single quotes: "d 'de' MMMM 'de' y"); a reader and the narration meet it in full.
        pattern = self.gettext("d MMMM y")
        return format_date(datetime.date.fromisoformat(iso), format=pattern, locale=self.locale)

    def month_year(self, epoch: int) -> str:
        day = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).date()
        # Translators: how a month of a year is written (CLDR pattern: LLLL the month's name, y the year).
        return format_date(day, format=self.gettext("LLLL y"), locale=self.locale)

    def join(self, items: list[str]) -> str:
        """"A, B and C" in the language's own words and punctuation."""
        return format_list(list(items), locale=self.locale) if items else ""

    def quote(self, text: str) -> str:
        # Translators: the quotation marks of the language around a quoted text (English “…”, Spanish «…»).
        return self.gettext("“%(text)s”") % {"text": text}

    def language_name(self, tag: str) -> str:
        """A language's name in this language ("inglés" for `en` in Spanish); the tag when CLDR has none."""
        try:
            name = Locale.parse(locale_names(tag)[-1]).get_display_name(self.locale)
        except (UnknownLocaleError, ValueError):
            return str(tag)
        return name[:1].upper() + name[1:] if name else str(tag)


def untranslated() -> Messages:
    """The messages as written in the code and templates (English), for what has no article language."""
    return Messages("en")


def messages_for(theme_root: Path, tag: str, overrides: dict | None = None) -> Messages | None:
    """The messages of language *tag* from a theme, or None when no catalogue serves it."""
    files = catalogue_files(theme_root, tag)
    if not files:
        return None
    wanted = {}
    for name in reversed(locale_names(tag)):        # `es` settings, then the more specific `es-MX` over them
        for key in (name, name.replace("_", "-")):
            wanted.update((overrides or {}).get(key, {}))
    stamps = tuple((p, st.st_size, st.st_mtime_ns) for p in files for st in (p.stat(),))
    return Messages(str(tag), stamps, tuple(sorted(wanted.items())))


def no_catalogue(tag, where: str, theme_root: Path) -> PublishError:
    """The error for an article in a language the theme has no words for, at its `language:` line."""
    line, column = getattr(tag, "line", 0), getattr(tag, "column", 0)
    return PublishError(Problem(
        where, line, column,
        f"the theme has no message catalogue for the language `{tag}`: the words the outputs add "
        f"(\"Contents\", \"Page 1 of 4\", the narration's announcements) would be in another language",
        f"run `publish init-language {locale_names(str(tag))[-1]}`, translate "
        f"{display_path(catalogue_path(theme_root, locale_names(str(tag))[-1]))}, and build again "
        f"(or correct `language:` if `{tag}` is a mistake)"))


# The theme settings that are prose the outputs carry: translated through the catalogue like any message.
TRANSLATED_SETTINGS = ("accessibility_summary",)


def extract_theme_settings(fileobj, keywords, comment_tags, options):
    """Babel extractor for theme.yaml: the settings in TRANSLATED_SETTINGS as messages (see babel.cfg)."""
    import tempfile

    from .yamlfile import read_yaml
    with tempfile.TemporaryDirectory() as folder:       # read_yaml reads a file, with positions
        copy = Path(folder) / "theme.yaml"
        copy.write_bytes(fileobj.read())
        settings = read_yaml(copy)
    for key in TRANSLATED_SETTINGS:
        value = settings.get(key)
        if value:
            yield getattr(value, "line", 0), None, str(value), [f"The theme setting `{key}`."]


EXTRACTED = ("pipeline", "themes/default")      # the folders messages are extracted from


def extract(root: Path) -> Catalog:
    """The messages of the code, the default theme's templates and settings, as `pybabel extract -F babel.cfg`
    finds them (the tests compare it with the committed messages.pot)."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    with (root / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    def searched(folder: str) -> bool:        # the code and the theme (with its _blocks/), nothing else
        relative = Path(os.path.relpath(folder, root)).as_posix()
        return any(relative == "." or relative == top or relative.startswith(top + "/") or top.startswith(relative + "/")
                   for top in EXTRACTED)

    catalogue = Catalog(project="accessible-publish", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
            str(root), method_map, options_map, comment_tags=("Translators:",), strip_comment_tags=True,
            directory_filter=searched):
        catalogue.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalogue


def incomplete(words: Messages, tag, where: str) -> PublishError:
    """The error for a catalogue that leaves messages untranslated: the outputs would mix two languages."""
    missing = words.untranslated()
    first = missing[0] if isinstance(missing[0], str) else missing[0][0]
    return PublishError(Problem(
        where, getattr(tag, "line", 0), getattr(tag, "column", 0),
        f"the message catalogue for the language `{tag}` leaves {len(missing)} message"
        f"{'' if len(missing) == 1 else 's'} untranslated (the first: \"{first}\"): the outputs would mix languages",
        f"translate every msgstr of {display_path(words.files[0][0])} (a fuzzy one counts as untranslated "
        f"until its `#, fuzzy` line is removed)"))


def new_catalogue(theme_root: Path, tag: str) -> Path:
    """Write the catalogue of a new language from the theme's messages.pot, with the language's plural rule.

    Every message is left untranslated for a translator to fill in; until every one is, an article in the
    language is refused (its outputs would mix two languages).
    """
    name = locale_names(tag)[-1] if "-" not in str(tag) else locale_names(tag)[0]
    try:
        locale = Locale.parse(name)
    except (UnknownLocaleError, ValueError):
        raise PublishError(Problem(str(tag), 0, 0, f"`{tag}` is not a language Babel (CLDR) knows",
                                   "give an ISO 639 language code such as `fr`, `de` or `pt-BR`")) from None
    target = catalogue_path(theme_root, name)
    if target.exists():
        raise PublishError(Problem(display_path(target), 0, 0, "the catalogue already exists",
                                   "edit it, or delete it first to start again from the template"))
    pot = template_path(theme_root)
    if not pot.is_file():
        pot = template_path(theme_root.parent / DEFAULT_THEME)
    with pot.open("rb") as f:
        template = read_po(f)
    catalogue = Catalog(locale=locale, domain=DOMAIN, project=template.project, version=template.version,
                        header_comment=f"# {locale.english_name} words of the publishing pipeline: to be "
                                       f"translated.\n# A native speaker should review them before a clinic relies "
                                       f"on them.\n#", fuzzy=False,
                        creation_date=template.creation_date, revision_date=template.creation_date)
    catalogue.update(template)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as f:
        write_po(f, catalogue, width=100)
    return target
