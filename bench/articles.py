"""Articles generated for the benchmark from the B12 article: longer ones (g) and many small ones (e, h)."""
from __future__ import annotations

import copy
from pathlib import Path

import ruamel.yaml

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "b12-lower-back-pain.yaml"


def _load() -> dict:
    return ruamel.yaml.YAML(typ="safe").load(SOURCE.read_text("utf-8"))


def _dump(article: dict, path: Path) -> Path:
    yaml = ruamel.yaml.YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 100
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(article, f)
    return path


def _renamed(block, suffix: str):
    """A copy of *block* with every heading and box title ending in *suffix* (so that headings, ids and chapter
    titles stay distinct, as in a real long article)."""
    block = copy.deepcopy(block)
    stack = [block]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in ("heading", "title"):
                if isinstance(item.get(key), str):
                    item[key] += suffix
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return block


def repeated(times: int, path: Path) -> Path:
    """The B12 article's body *times* over, each copy's headings renamed "(part k)"; one title and metadata."""
    article = _load()
    body = article["body"]
    article["body"] = [_renamed(block, f" (part {k})") if times > 1 else block
                       for k in range(1, times + 1) for block in body]
    article["title"] = f"{article['title']} ({times} parts)" if times > 1 else article["title"]
    return _dump(article, path)


def variant(n: int, path: Path) -> Path:
    """The whole B12 article with a title and one sentence of its own (the batch (e): near-identical articles)."""
    text = SOURCE.read_text("utf-8")
    text = text.replace("title: Is B12 Good for Lower Back Pain?", f"title: Is B12 Good for Lower Back Pain? (variant {n})")
    text = text.replace("Easy to take at home.", f"Easy to take at home (variant {n}).")
    path.write_text(text, "utf-8")
    return path


def small(n: int, path: Path) -> Path:
    """A short handout: the B12 article's opening and two of its sections, taken in turn, with headings of its own.

    Every chapter starts with its heading, spoken, so every chapter is new and is encoded; the sentences
    under the headings recur across handouts and come from the speech cache, as a clinic's boilerplate would.
    """
    article = _load()
    body = article["body"]
    sections = [block for block in body if "section" in block]
    chosen = [sections[n % len(sections)], sections[(n + 3) % len(sections)]]
    article["title"] = f"Handout {n}: vitamin B12 and back pain"
    article.pop("short_title", None)
    article["body"] = [body[0], *(_renamed(block, f" (handout {n})") for block in chosen)]
    return _dump(article, path)
