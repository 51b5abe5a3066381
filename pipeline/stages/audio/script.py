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

import calendar
import re
from dataclasses import dataclass, replace
from xml.sax.saxutils import escape

import regex

from ...model import (
    Article, Callout, Disclaimer, Faq, Glossary, Image, KeyPoints, ListBlock, Paragraph, Quote, References,
    Related, Section, Summary, Table,
)
from .lexicon import Lexicon

SENTENCE_END = regex.compile(r"\p{Sentence_Terminal}")

# pauses after an utterance, in seconds
PAUSES = {"sentence": 0.35, "paragraph": 0.8, "heading": 0.6, "section": 1.5, "end": 0.0}

NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
                "fifteen sixteen seventeen eighteen nineteen twenty").split()


ORDINAL_WORDS = ("first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
                 "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth").split()


def count_words(n: int) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def long_date(iso: str) -> str:
    """2026-03-16 → "16 March 2026": read as a date, not as the numbers of a range."""
    year, month, day = (int(part) for part in iso.split("-"))
    return f"{day} {calendar.month_name[month]} {year}"


def sub_point_lead(n: int) -> str:
    """How the n-th sub-point of an item begins: "First, ", "Second, " … ("Point 21: " past twenty)."""
    return f"{ORDINAL_WORDS[n - 1].capitalize()}, " if n <= len(ORDINAL_WORDS) else f"Point {n}: "


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
    def __init__(self, article: Article, lexicon: Lexicon, publisher: str, phrase_voices: dict[str, str] | None = None):
        self.article, self.lexicon, self.publisher = article, lexicon, publisher
        # the engine's voice for each language of a phrase it can switch to; None: an engine that cannot switch
        self.phrase_voices = phrase_voices
        self.utterances: list[Utterance] = []
        self.chapters: list[Chapter] = []
        self.chapter = 0

    def say(self, uid: str, written: str, pause: str = "sentence", sources: tuple[str, ...] = ()) -> None:
        spoken = self.lexicon.speak(written)
        if spoken and not SENTENCE_END.match(spoken[-1]):      # (also 。 ؟ । : any script's full stop)
            # a heading that ends in a colon ("… any of these:") ends its utterance with a full stop alone
            spoken = spoken.rstrip(":;, ") + "."
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
        self.chapters.append(Chapter(0, "Opening", a.title.id))
        self.say(a.title.id, a.title.text, "heading")
        if a.subtitle:
            self.say(f"{a.title.id}-subtitle", "".join(s.text for s in a.subtitle), "heading")
        self.say("opening-publisher", f"An audio version of the article from {self.publisher}.")
        if m.date_reviewed:
            self.say("opening-reviewed", f"Last reviewed {long_date(m.date_reviewed)}.")
        self.end_pause("section")
        number = 0
        for block in a.blocks:
            if hasattr(block, "heading"):
                number += 1
                self.chapter = number
                self.chapters.append(Chapter(number, block.heading.text, block.heading.id))
                self.say(block.heading.id, f"Section {number}: {block.heading.text}", "heading", (block.heading.id,))
            self.block(block)
            self.end_pause("section" if hasattr(block, "heading") else "paragraph")
        self.say("closing", f"This is the end of the article from {self.publisher}. Thank you for listening.", "end")
        return self.utterances, self.chapters

    def block(self, block) -> None:
        if isinstance(block, Paragraph):
            self.sentences(block.sentences)
        elif isinstance(block, Callout):
            self.callout(block)
        elif isinstance(block, Quote):
            self.quote(block)
        elif isinstance(block, Glossary):
            for entry in block.terms:
                self.sentences(entry.definition, lead=f"{entry.term_text}: ")
        elif isinstance(block, (Section, Summary, Disclaimer)):
            for child in block.blocks:
                if isinstance(child, Section):        # a subsection: announced by its heading alone
                    self.say(child.heading.id, child.heading.text, "heading", (child.heading.id,))
                self.block(child)
                self.end_pause("paragraph")
        elif isinstance(block, KeyPoints):
            self.items(block.items, f"{block.id}-count", "key point", "key points")
        elif isinstance(block, ListBlock):
            self.items(block.items, f"{block.id}-count", "item", "items", numbered=block.ordered, prefix="A list of ")
        elif isinstance(block, Table):
            self.table(block)
        elif isinstance(block, Faq):
            for item in block.items:
                self.say(item.question.id, f"Question: {item.question.text}", "sentence", (item.question.id,))
                for paragraph in item.answer:
                    self.sentences(paragraph.sentences, lead="Answer: ")
        elif isinstance(block, Related):
            for link in block.links:
                self.say(link.id, link.title_text, "sentence")
                self.sentences(link.description)
        elif isinstance(block, References):
            for n, ref in enumerate(block.items, 1):
                self.sentences(ref.sentences, lead=f"Reference {count_words(n)}: ")
        elif isinstance(block, Image) and not block.decorative:
            self.say(f"{block.id}-alt", f"Picture: {block.alt}", "sentence")
            self.sentences(block.caption)
            self.sentences(block.long_description, lead="Description: ")

    def callout(self, callout: Callout) -> None:
        """Announced by its kind, set apart by pauses, and read through: never counted as key points."""
        self.end_pause("paragraph")
        self.say(f"{callout.id}-kind", f"{callout.label}.", "heading", (callout.title.id,))
        if callout.title.spans:
            self.say(callout.title.id, callout.title.text, "heading")
        for child in callout.blocks:
            self.block(child)
            self.end_pause("paragraph")
        self.say(f"{callout.id}-end", f"End of {callout.label.lower()}.", "paragraph")

    def quote(self, quote: Quote) -> None:
        self.sentences(quote.sentences, "sentence", lead="Quote: ")
        ending = f"End quote, from {quote.attribution_text}." if quote.attribution else "End quote."
        self.say(f"{quote.id}-end", ending, "paragraph")

    def items(self, items, count_id: str, singular: str, plural: str, numbered: bool = True, prefix: str = "") -> None:
        counted = f"{count_words(len(items))} {plural if len(items) != 1 else singular}"
        self.say(count_id, f"{prefix}{counted}." if prefix else f"{counted.capitalize()}.", "sentence")
        for n, item in enumerate(items, 1):
            lead = f"{singular.capitalize()} {n}: " if numbered or singular == "key point" else ""
            self.item(item, lead)

    def item(self, item, lead: str) -> None:
        """One list item, then its sub-points, each read as a sub-point of it ("First, …", "Second, …")."""
        if item.label:
            self.say(f"{item.id}-label", f"{lead}{item.label_text}.", "sentence")
            self.sentences(item.sentences)
        else:
            self.sentences(item.sentences, lead=lead)
        if item.sublist:
            points = item.sublist.items
            self.say(f"{item.sublist.id}-count", f"{count_words(len(points)).capitalize()} "
                     f"{'sub-points' if len(points) != 1 else 'sub-point'}.", "sentence")
            for n, point in enumerate(points, 1):
                self.item(point, sub_point_lead(n))
            self.end_pause("paragraph")

    def table(self, table: Table) -> None:
        rows = len(table.rows)
        self.say(f"{table.id}-caption", f"A table: {table.caption_text}. It compares "
                 f"{', '.join(c.text for c in table.columns[:-1])} and {table.columns[-1].text}, "
                 f"by {table.corner.text.lower()}, in {count_words(rows)} rows.", "paragraph")
        for row in table.rows:
            self.say(row.id, row.header.text, "sentence", tuple(s.id for s in row.header.sentences) or (row.id,))
            for column, cell in zip(table.columns, row.cells):
                self.sentences(cell.sentences, "sentence", lead=f"{column.text}: ")
            self.end_pause("paragraph")


def write_script(article: Article, lexicon: Lexicon, publisher: str,
                 phrase_voices: dict[str, str] | None = None) -> tuple[list[Utterance], list[Chapter]]:
    return ScriptWriter(article, lexicon, publisher, phrase_voices).write()


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
