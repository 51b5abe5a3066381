"""The spoken script: the document model read aloud as a person would read it to a listener.

Every utterance knows the ids of the sentences (or heading) it comes from,
its chapter, and the pause that follows it. Announcements ("Section 3: …",
"Six key points.") are added; lists are counted, sub-points read after their
item ("First, …"), the table is read row by row with its headers, the FAQ as
questions and answers. A callout is announced by its kind ("Warning.") and
closed ("End of warning."), a quotation is framed ("Quote: … End quote, from
…"), a glossary entry is read as "term: definition".
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

import regex

from ...model import (
    Article, Callout, Disclaimer, Faq, Glossary, Image, KeyPoints, ListBlock, Paragraph, Quote, References,
    Related, Section, Summary, Table,
)
from ...i18n import N_, Messages, untranslated
from .lexicon import Lexicon

SENTENCE_END = regex.compile(r"\p{Sentence_Terminal}")

# pauses after an utterance, in seconds
PAUSES = {"sentence": 0.35, "paragraph": 0.8, "heading": 0.6, "section": 1.5, "end": 0.0}

# How a callout is closed, by kind: a message each, since a language may inflect the kind ("Fin de la nota").
CALLOUT_ENDS = {"warning": N_("End of warning."), "caution": N_("End of caution."), "note": N_("End of note."),
                "tip": N_("End of tip.")}


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def count_words(n: int, words: Messages) -> str:
    """A count as the listener hears it best: "six" (the catalogue's words up to twenty), else its digits,
    which the voice of the article's language reads in that language."""
    # Translators: the numbers zero to twenty in words, separated by spaces, as they count things ("two items");
    # leave the translation as digits ("0 1 2 …") where the language reads digits better.
    names = words.gettext("zero one two three four five six seven eight nine ten eleven twelve thirteen "
                          "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()
    return names[n] if n < len(names) else words.number(n)


def sub_point_lead(n: int, words: Messages) -> str:
    """How the n-th sub-point of an item begins: "First, ", "Second, " … ("Point 21: " past twenty)."""
    # Translators: the ordinal words first to twentieth, separated by spaces, as sub-points of a list begin.
    ordinals = words.gettext("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
                             "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth "
                             "twentieth").split()
    if n <= len(ordinals):
        # Translators: how the n-th sub-point begins, before its text: "First, check …".
        return words.gettext("%(ordinal)s, ") % {"ordinal": sentence_case(ordinals[n - 1])}
    return words.gettext("Point %(number)s: ") % {"number": words.number(n)}


@dataclass(frozen=True)
class Utterance:
    id: str                      # unique; a section announcement's id is the section's heading id
    written: str                 # the text as written (for the transcript's readers and the tests)
    spoken: str                  # what the voice says
    chapter: int                 # 0 is the opening
    pause: str                   # one of PAUSES
    sources: tuple[str, ...]     # ids of the model's sentences or headings
    # With a phrase in another language: the utterance as SSML, each phrase in a <voice> of its language
    # (espeak-ng switches voice there), and those languages; else empty.
    ssml: str = ""
    languages: tuple[str, ...] = ()

    @property
    def said(self) -> str:
        """What the engine is given (and what the speech cache's key is made of)."""
        return self.ssml or self.spoken


@dataclass(frozen=True)
class Chapter:
    index: int
    title: str
    heading_id: str              # the id of the utterance that opens it


class ScriptWriter:
    def __init__(self, article: Article, lexicon: Lexicon, publisher: str, words: Messages | None = None,
                 phrase_voices: dict[str, str] | None = None):
        self.article, self.lexicon, self.publisher = article, lexicon, publisher
        self.words = words or untranslated()
        self._ = self.words.gettext
        # the engine's voice for each language of a phrase it can switch to; None: an engine that cannot switch
        self.phrase_voices = phrase_voices
        self.utterances: list[Utterance] = []
        self.chapters: list[Chapter] = []
        self.chapter = 0

    def say(self, uid: str, written: str, pause: str = "sentence", sources: tuple[str, ...] = ()) -> None:
        spoken = self.lexicon.speak(written)
        if spoken and not SENTENCE_END.match(spoken[-1]):      # (also 。 ؟ । : any script's full stop)
            # a heading that ends in a colon ("… any of these:") ends its utterance with a full stop alone
            # Translators: an utterance that has no full stop of its own (a heading) ends with the language's.
            spoken = self._("%(text)s.") % {"text": spoken.rstrip(":;, ：，")}
        self.utterances.append(Utterance(uid, written, spoken, self.chapter, pause, sources or (uid,)))

    def sentences(self, sentences, last_pause: str = "paragraph", lead: str = "") -> None:
        for n, sentence in enumerate(sentences):
            text = sentence.text
            if n == 0 and lead:
                if lead.endswith(", ") and text[:2].istitle():     # "First, check …", not "First, Check …"
                    text = text[0].lower() + text[1:]
                text = lead + text
            self.say(sentence.id, text, last_pause if n == len(sentences) - 1 else "sentence", (sentence.id,))
            self.voice_phrases(sentence.spans, text[:len(text) - len(sentence.text)])

    def voice_phrases(self, spans, lead: str) -> None:
        """Give the utterance just said its SSML if it holds a phrase in another language that a voice speaks:
        the article's parts go through the lexicon as usual, each phrase is left as written, in a <voice>."""
        language = self.article.metadata.language
        parts = [(s.lang, s.text) for s in spans if s.lang and s.lang != language]
        if not parts or self.phrase_voices is None:
            return
        def said(run: str) -> str:       # the lexicon's reading; a comma after a phrase is kept (it is a pause)
            comma = re.match(r"\s*([,;:])", run)
            return (comma.group(1) + " " if comma else "") + escape(self.lexicon.speak(run)) if run.strip() else ""

        pieces, run, languages = [], lead, []
        for span in spans:
            voice = self.phrase_voices.get(span.lang) if span.lang and span.lang != language else None
            if voice is None:
                run += span.text
                continue
            pieces.append(said(run))
            pieces.append(f'<voice xml:lang="{voice}">{escape(span.text)}</voice>')
            languages.append(span.lang)
            run = ""
        if not languages:
            return
        tail = said(run)
        if not SENTENCE_END.match(tail[-1:] or "x"):
            tail += "."
        ssml = "<speak>" + " ".join(p.strip() for p in pieces + [tail] if p.strip()) + "</speak>"
        self.utterances[-1] = replace(self.utterances[-1], ssml=ssml, languages=tuple(dict.fromkeys(languages)))

    def end_pause(self, pause: str) -> None:
        if self.utterances:
            last = self.utterances[-1]
            if PAUSES[pause] > PAUSES[last.pause]:
                self.utterances[-1] = replace(last, pause=pause)

    # -- the whole article ---------------------------------------------------
    def write(self) -> tuple[list[Utterance], list[Chapter]]:
        a, m = self.article, self.article.metadata
        _ = self._
        self.chapters.append(Chapter(0, _("Opening"), a.title.id))
        self.say(a.title.id, a.title.text, "heading")
        if a.subtitle:
            self.say(f"{a.title.id}-subtitle", "".join(s.text for s in a.subtitle), "heading")
        self.say("opening-publisher", _("An audio version of the article from %(publisher)s.")
                 % {"publisher": self.publisher})
        if m.date_reviewed:       # read as a date ("16 de marzo de 2026"), not as the numbers of a range
            self.say("opening-reviewed", _("Last reviewed %(date)s.") % {"date": self.words.date(m.date_reviewed)})
        self.end_pause("section")
        number = 0
        for block in a.blocks:
            if hasattr(block, "heading"):
                number += 1
                self.chapter = number
                self.chapters.append(Chapter(number, block.heading.text, block.heading.id))
                self.say(block.heading.id, _("Section %(number)s: %(title)s")
                         % {"number": self.words.number(number), "title": block.heading.text},
                         "heading", (block.heading.id,))
            self.block(block)
            self.end_pause("section" if hasattr(block, "heading") else "paragraph")
        self.say("closing", _("This is the end of the article from %(publisher)s. Thank you for listening.")
                 % {"publisher": self.publisher}, "end")
        return self.utterances, self.chapters

    def label(self, text: str) -> str:
        # Translators: a label before its text, as in "Dose: 1000 mcg" (a table's column, a glossary term).
        return self._("%(label)s: ") % {"label": text}

    def block(self, block) -> None:
        _ = self._
        if isinstance(block, Paragraph):
            self.sentences(block.sentences)
        elif isinstance(block, Callout):
            self.callout(block)
        elif isinstance(block, Quote):
            self.quote(block)
        elif isinstance(block, Glossary):
            for entry in block.terms:
                self.sentences(entry.definition, lead=self.label(entry.term_text))
        elif isinstance(block, (Section, Summary, Disclaimer)):
            for child in block.blocks:
                if isinstance(child, Section):        # a subsection: announced by its heading alone
                    self.say(child.heading.id, child.heading.text, "heading", (child.heading.id,))
                self.block(child)
                self.end_pause("paragraph")
        elif isinstance(block, KeyPoints):
            count = self.words.ngettext("One key point.", "%(num)s key points.", len(block.items))
            self.items(block.items, f"{block.id}-count", count, _("Key point %(number)s: "))
        elif isinstance(block, ListBlock):
            count = self.words.ngettext("A list of one item.", "A list of %(num)s items.", len(block.items))
            self.items(block.items, f"{block.id}-count", count, _("Item %(number)s: ") if block.ordered else "")
        elif isinstance(block, Table):
            self.table(block)
        elif isinstance(block, Faq):
            for item in block.items:
                self.say(item.question.id, _("Question: %(question)s") % {"question": item.question.text},
                         "sentence", (item.question.id,))
                for paragraph in item.answer:
                    self.sentences(paragraph.sentences, lead=_("Answer: "))
        elif isinstance(block, Related):
            for link in block.links:
                self.say(link.id, link.title_text, "sentence")
                self.sentences(link.description)
        elif isinstance(block, References):
            for n, ref in enumerate(block.items, 1):
                self.sentences(ref.sentences, lead=_("Reference %(number)s: ") % {"number": count_words(n, self.words)})
        elif isinstance(block, Image) and not block.decorative:
            self.say(f"{block.id}-alt", _("Picture: %(alt)s") % {"alt": block.alt}, "sentence")
            self.sentences(block.caption)
            self.sentences(block.long_description, lead=_("Description: "))

    def callout(self, callout: Callout) -> None:
        """Announced by its kind, set apart by pauses, and read through: never counted as key points."""
        self.end_pause("paragraph")
        self.say(f"{callout.id}-kind", self._("%(kind)s.") % {"kind": self._(callout.label)}, "heading", (callout.title.id,))
        if callout.title.spans:
            self.say(callout.title.id, callout.title.text, "heading")
        for child in callout.blocks:
            self.block(child)
            self.end_pause("paragraph")
        self.say(f"{callout.id}-end", self._(CALLOUT_ENDS[callout.callout_kind]), "paragraph")

    def quote(self, quote: Quote) -> None:
        self.sentences(quote.sentences, "sentence", lead=self._("Quote: "))
        ending = (self._("End quote, from %(source)s.") % {"source": quote.attribution_text} if quote.attribution
                  else self._("End quote."))
        self.say(f"{quote.id}-end", ending, "paragraph")

    def items(self, items, count_id: str, count: str, lead: str) -> None:
        """Counted ("Six key points."), then each item, led by its number when *lead* has one ("Item 2: ")."""
        self.say(count_id, sentence_case(count % {"num": count_words(len(items), self.words)}), "sentence")
        for n, item in enumerate(items, 1):
            self.item(item, lead % {"number": self.words.number(n)} if lead else "")

    def item(self, item, lead: str) -> None:
        """One list item, then its sub-points, each read as a sub-point of it ("First, …", "Second, …")."""
        if item.label:
            self.say(f"{item.id}-label", f"{lead}{item.label_text}.", "sentence")
            self.sentences(item.sentences)
        else:
            self.sentences(item.sentences, lead=lead)
        if item.sublist:
            points = item.sublist.items
            count = self.words.ngettext("One sub-point.", "%(num)s sub-points.", len(points))
            self.say(f"{item.sublist.id}-count", sentence_case(count % {"num": count_words(len(points), self.words)}),
                     "sentence")
            for n, point in enumerate(points, 1):
                self.item(point, sub_point_lead(n, self.words))
            self.end_pause("paragraph")

    def table(self, table: Table) -> None:
        rows, names = len(table.rows), [c.text for c in table.columns]
        # Translators: the last two of a list of names: "dose, timing and form".
        columns = (self._("%(first)s and %(last)s") % {"first": ", ".join(names[:-1]), "last": names[-1]}
                   if len(names) > 1 else names[0])
        said = self.words.ngettext("A table: %(caption)s. It compares %(columns)s, by %(corner)s, in one row.",
                                   "A table: %(caption)s. It compares %(columns)s, by %(corner)s, in %(num)s rows.",
                                   rows)
        self.say(f"{table.id}-caption", said % {"caption": table.caption_text, "columns": columns,
                                                "corner": table.corner.text.lower(),
                                                "num": count_words(rows, self.words)}, "paragraph")
        for row in table.rows:
            self.say(row.id, row.header.text, "sentence", tuple(s.id for s in row.header.sentences) or (row.id,))
            for column, cell in zip(table.columns, row.cells):
                self.sentences(cell.sentences, "sentence", lead=self.label(column.text))
            self.end_pause("paragraph")


def write_script(article: Article, lexicon: Lexicon, publisher: str,
                 words: Messages | None = None,
                 phrase_voices: dict[str, str] | None = None) -> tuple[list[Utterance], list[Chapter]]:
    """The script in the article's language: *words* are its generated words (English messages when None)."""
    return ScriptWriter(article, lexicon, publisher, words, phrase_voices).write()


def transcript(article: Article, utterances: list[Utterance], chapters: list[Chapter]) -> str:
    """The script as read, with the section headings as plain lines (no markup characters)."""
    lines: list[str] = []
    openers = {c.heading_id: c for c in chapters}
    for u in utterances:
        chapter = openers.get(u.id)
        if chapter is not None and chapter.index > 0:
            lines += ["", "", u.spoken, ""]
            continue
        if u.id == article.title.id:
            lines += [u.spoken, ""]
            continue
        lines.append(u.spoken)
        if u.pause in ("paragraph", "heading", "section"):
            lines.append("")
    return "\n".join(line.rstrip() for line in lines).strip() + "\n"
