"""Braille page layout: lines of Braille ASCII cut at word boundaries, pages with braille page numbers.

The rules are those of BANA's Braille Formats where a handout needs them:
a word is never divided between lines except after a hyphen of the text
(or after a slash of a web address too long for a line), headings stay with
the line that follows them, blank lines never open a page, and each page
carries its braille page number at the right of its top or bottom line,
separated from any text by at least three blank cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Cells after which a line may end inside a braille word: the hyphen (dots 36)
# of a hyphenated word, and UEB's slash (dots 456, 34) in a web address.
HYPHEN = "-"
SLASH = "_/"
# Cells that start a two-cell braille sign ending in dots 36 (the dash ",-", minus "\"-" …):
# a line never ends between the two.
SIGN_PREFIXES = set(",\"@^_.;")
NUMBER_SIGN = "#"
DIGITS_AS_LETTERS = "JABCDEFGHI"        # braille digits are the letters a–j after the number sign
BOX_TOP = "7"                           # a full line of dots 2356 opens a box
BOX_BOTTOM = "G"                        # and dots 1245 closes it


def braille_number(number: int) -> str:
    return NUMBER_SIGN + "".join(DIGITS_AS_LETTERS[int(d)] for d in str(number))


@dataclass(frozen=True)
class Line:
    text: str
    keep_with_next: bool = False        # a heading, or the opening line of a box: never the last of a page


@dataclass
class PageSize:
    cells: int = 40
    lines: int = 25
    number_at: str = "bottom"           # the line that carries the braille page number: "top" or "bottom"


def _break_points(word: str) -> list[int]:
    """Positions inside *word* after which a line may end."""
    points = []
    for i, ch in enumerate(word[:-1]):
        if ch == HYPHEN and i > 0 and word[i - 1] not in SIGN_PREFIXES and word[i + 1] != HYPHEN:
            points.append(i + 1)
        elif word[i:i + 2] == SLASH:
            points.append(i + 2)
    return points


def wrap(braille: str, width: int, first: int, runover: int) -> list[str]:
    """Lines of at most *width* cells: the first indented *first* cells, the rest *runover* cells."""
    lines: list[str] = []
    line = " " * first
    has_text = False
    words = braille.split()
    while words:
        word = words.pop(0)
        room = width - len(line) - (1 if has_text else 0)
        if len(word) <= room:
            line += (" " if has_text else "") + word
            has_text = True
            continue
        # the word does not fit: end the line at the last break point that fits, if any
        fitting = [p for p in _break_points(word) if p <= room]
        if not has_text and not fitting and len(word) > width - len(line):
            fitting = [width - len(line)]   # longer than a whole line, with nowhere to break: cut it
        if fitting:
            head, tail = word[:fitting[-1]], word[fitting[-1]:]
            line += (" " if has_text else "") + head
            words.insert(0, tail)
        else:
            words.insert(0, word)
        lines.append(line)
        line, has_text = " " * runover, False
    if has_text:
        lines.append(line)
    return lines


def centre(braille: str, width: int) -> list[str]:
    """Centred lines, with at least three blank cells either side (BANA centred headings)."""
    return [" " * ((width - len(text)) // 2) + text
            for text in (line.strip() for line in wrap(braille, width - 6, 0, 0))]


@dataclass
class Pages:
    """Lines gathered in reading order, then cut into pages."""

    size: PageSize
    lines: list[Line] = field(default_factory=list)

    def add(self, texts: list[str], keep_with_next: bool = False) -> None:
        # a heading's lines stay together and with the line that follows them
        self.lines.extend(Line(text, keep_with_next) for text in texts)

    def blank(self) -> None:
        if self.lines and self.lines[-1].text:
            self.lines.append(Line(""))

    def paginate(self) -> list[list[str]]:
        """The text lines of each page (without page numbers)."""
        room = self.size.lines - 1            # one line carries the page number
        pages: list[list[str]] = [[]]
        i = 0
        while i < len(self.lines):
            # a group: lines kept with the next one, and that next line
            j = i
            while j < len(self.lines) - 1 and self.lines[j].keep_with_next:
                j += 1
            group = [line.text for line in self.lines[i:j + 1]]
            page = pages[-1]
            if not page:
                while group and not group[0]:  # no blank line at the top of a page
                    group.pop(0)
            if len(page) + len(group) > room and page and len(group) <= room:
                pages.append([])
                page = pages[-1]
                while group and not group[0]:
                    group.pop(0)
            for text in group:
                if len(page) == room:
                    pages.append([])
                    page = pages[-1]
                    if not text:
                        continue
                page.append(text)
            i = j + 1
        while pages and not any(pages[-1]):
            pages.pop()
        return pages


def number_page(lines: list[str], number: int, size: PageSize) -> list[str]:
    """The page's lines with its braille page number at the right of the top or bottom line."""
    label = braille_number(number)
    numbered = " " * (size.cells - len(label)) + label
    padded = lines + [""] * (size.lines - 1 - len(lines))
    return [numbered, *padded] if size.number_at == "top" else [*padded, numbered]


def brf(pages: list[list[str]]) -> bytes:
    """The pages as a BRF file: lines ended CR LF, each page ended by a form feed."""
    text = "".join("".join(line.rstrip() + "\r\n" for line in page) + "\f" for page in pages)
    return text.encode("ascii")
