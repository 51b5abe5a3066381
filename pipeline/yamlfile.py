"""Read a YAML file strictly into plain values that remember where they came from.

We read the parser's event stream ourselves instead of letting a YAML library
build objects, so that nothing in a file can construct objects or expand
into something huge:

* tags (``!!python/object``, ``!custom``) are refused, so no object is built;
* anchors and aliases are refused, so no "billion laughs" expansion;
* nesting deeper than ``MAX_DEPTH`` and files larger than ``MAX_BYTES`` are
  refused before they cost memory or time;
* duplicate keys are refused instead of the last one silently winning;
* every scalar is kept as text: the schema, not YAML's guessing, decides
  whether ``no`` or ``1.10`` is a word, a number or a truth value.

Values come back as ``LStr`` / ``LDict`` / ``LList``: ordinary ``str``,
``dict`` and ``list`` that also carry ``line`` and ``column`` (1-based), so
later checks can point at the exact place of a problem.
"""
from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent,
    ScalarEvent, SequenceEndEvent, SequenceStartEvent,
)

from .errors import Problem, PublishError

MAX_BYTES = 1_000_000      # a long article is ~50 kB; this leaves ample room
MAX_DEPTH = 32             # the deepest real structure (nested sections) is ~12


class Located:
    line: int = 0
    column: int = 0
    plain: bool = False    # an unquoted scalar (only plain scalars may be numbers or booleans)


class LStr(str, Located):
    pass


class LDict(dict, Located):
    key_nodes: dict        # key -> the LStr of the key itself, for "unknown key" errors


class LList(list, Located):
    pass


def _at(value: Located, mark) -> Located:
    value.line = mark.line + 1
    value.column = mark.column + 1
    return value


def read_yaml(path: Path, display: str | None = None) -> object:
    """Parse one YAML document from *path* into located plain values."""
    name = display or str(path)

    def fail(line: int, column: int, message: str, hint: str) -> PublishError:
        return PublishError(Problem(name, line, column, message, hint))

    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise fail(0, 0, f"the file is {size:,} bytes, more than the limit of {MAX_BYTES:,}",
                       "split the article into several files, or check that this is the right file")
        raw = path.read_bytes()
    except OSError as exc:
        raise fail(0, 0, f"cannot read the file ({exc.strerror})",
                   "check the path and that the file is readable") from None

    text = _decode(raw, fail)
    if not text.strip() or all(l.strip().startswith("#") or not l.strip() for l in text.splitlines()):
        raise fail(1, 1, "the file is empty", "write the article's fields, starting with `title:`")

    try:
        return _build(YAML(typ="safe", pure=True).parse(text), fail)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = (exc.problem or exc.context or "invalid YAML").strip()
        message, hint = _explain(what)
        if "end of stream" in what and exc.context_mark:   # point at the opening, not at the end of the file
            mark = exc.context_mark
            opened = "quoted text" if "quoted" in (exc.context or "") else "bracket or block"
            message = f"the {opened} that starts here is never closed"
        raise fail(mark.line + 1 if mark else 0, mark.column + 1 if mark else 0,
                   f"YAML syntax error: {message}", hint) from None
    except YAMLError as exc:   # errors without a position (rare)
        raise fail(0, 0, f"YAML syntax error: {exc}", "check the file's indentation and quoting") from None


def _decode(raw: bytes, fail) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):      # a UTF-8 byte order mark, as Windows editors write
        raw = raw[3:]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise fail(1, 1, "the file is UTF-16 encoded", "save the file as UTF-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise fail(line, column, f"byte 0x{raw[exc.start]:02x} is not valid UTF-8 text",
                   "save the file as UTF-8 (in most editors: Save As, Encoding: UTF-8)") from None


def _explain(what: str) -> tuple[str, str]:
    """The parser's wording, translated for the person who wrote the file."""
    w = what.lower()
    if "tab" in w or "'\\t'" in w:
        return "a tab character is used for indentation", "indent with spaces, not tabs"
    if "expected <block end>" in w or "expected <block mapping start>" in w:
        return ("this line is indented differently from the lines around it",
                "check the indentation: items of one list or mapping must start in the same column")
    if "could not find expected ':'" in w or "mapping values are not allowed" in w:
        return (what, "put text that contains ': ' in double quotes, or check the indentation of this line")
    if "found unexpected end of stream" in w or "found unexpected end" in w:
        return "the file ends inside a quoted text or bracket", "close the quote or bracket that was opened"
    if "found character" in w or "special characters" in w:
        return what, "remove the character or put the text in double quotes"
    return what, "check the indentation and quoting near this place"


def _build(events, fail) -> object:
    """Turn parser events into located values, refusing what we do not allow."""
    stack: list[list] = []      # frames: [container, pending_key]
    root = None
    documents = 0
    for event in events:
        mark = event.start_mark
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise fail(mark.line + 1, mark.column + 1, "the file holds more than one YAML document",
                           "keep one article per file and remove the `---` line")
            continue
        if isinstance(event, AliasEvent):
            raise fail(mark.line + 1, mark.column + 1, f"alias `*{event.anchor}` is not allowed",
                       "write the value out in full; anchors and aliases are not supported")
        if isinstance(event, (ScalarEvent, MappingStartEvent, SequenceStartEvent)):
            if event.anchor is not None:
                raise fail(mark.line + 1, mark.column + 1, f"anchor `&{event.anchor}` is not allowed",
                           "write the value out in full; anchors and aliases are not supported")
            tag = event.tag
            if tag is not None and not isinstance(tag, str):   # ruamel may wrap tags
                tag = getattr(tag, "value", str(tag))
            if tag not in (None, "!"):
                raise fail(mark.line + 1, mark.column + 1, f"YAML tag `{tag}` is not allowed",
                           "remove the tag; values are plain text, lists and mappings only")
        if isinstance(event, ScalarEvent):
            value = _at(LStr(event.value), mark)
            value.plain = event.style is None
            _add(stack, value, fail)
            if not stack:
                root = value
        elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if len(stack) >= MAX_DEPTH:
                raise fail(mark.line + 1, mark.column + 1,
                           f"the structure is nested more than {MAX_DEPTH} levels deep",
                           "flatten the structure; sections nest at most three levels")
            container = _at(LDict() if isinstance(event, MappingStartEvent) else LList(), mark)
            if isinstance(container, LDict):
                container.key_nodes = {}
            _add(stack, container, fail)
            stack.append([container, None])
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            container, _ = stack.pop()
            if not stack:
                root = container
    return root


def _add(stack: list[list], value, fail) -> None:
    if not stack:
        return
    frame = stack[-1]
    container = frame[0]
    if isinstance(container, LList):
        container.append(value)
    elif frame[1] is None:                       # a key
        if not isinstance(value, LStr):
            raise fail(value.line, value.column, "a mapping key must be a plain word",
                       "write keys as `name: value`")
        if value in container.key_nodes:
            first = container.key_nodes[value]
            raise fail(value.line, value.column,
                       f"duplicate key `{value}` (first given on line {first.line})",
                       "keep one of the two and delete the other")
        frame[1] = value
    else:                                        # the value of the pending key
        key = frame[1]
        container[str(key)] = value
        container.key_nodes[str(key)] = key
        frame[1] = None
