"""The large-print web page: document model + theme → Jinja2 → <slug>.html with its assets beside it.

The page's stylesheet, scripts and fonts are written next to it (no request
to any other origin); the palettes are written into the page from the
theme's validated, contrast-checked settings.

With a narration, the page also loads `<slug>.timings.js`, which the audio
stage writes beside it (when each sentence is heard), and `player.js`, the
large-print player that reads along with it. The timings travel as a script,
not as JSON, because a browser runs a script from the page's own folder even
when the page is opened as a file, but refuses to fetch JSON there.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..model import Article, ContentsEntry
from ..theme import Theme
from . import BuildContext

FONTS = ("AtkinsonHyperlegible-Regular.ttf", "AtkinsonHyperlegible-Bold.ttf")


def table_of_contents(article: Article) -> list[ContentsEntry]:
    """Top-level sections with their subsections (FAQ questions are left out: the FAQ heading leads there)."""
    entries: list[ContentsEntry] = []
    for entry in article.outline(max_level=3):
        if entry.level == 2:
            entries.append(ContentsEntry(entry.id, entry.text))
        elif entry.block.kind == "section" and entries:
            entries[-1].children.append(ContentsEntry(entry.id, entry.text))
    return entries


class HtmlStage:
    name = "html"

    def preload(self) -> None:
        pass                                # Jinja2 only, which the theme has loaded

    def outputs(self, article: Article) -> list[str]:
        return [f"{article.slug}.html", "large-print.css", "reader.js", "player.js", *FONTS]

    def inputs(self, article: Article, theme: Theme, ctx: BuildContext) -> bytes:
        # the page links the narration only when there is one, and plays the MP3 if the theme makes one
        return f"audio {ctx.has('audio')} {player(article, theme)}".encode()

    def render(self, article: Article, theme: Theme, workdir: Path, ctx: BuildContext) -> list[Path]:
        written = []
        for source, name in [(theme.file("css/html.css"), "large-print.css"), (theme.file("js/reader.js"), "reader.js"),
                             *((theme.file(f"fonts/{font}"), font) for font in FONTS)]:
            shutil.copyfile(source, workdir / name)
            written.append(workdir / name)
        assets = {"css": "large-print.css", "js": "reader.js", "player": "player.js", "logo": ""}
        if theme.logo:
            logo = f"logo{theme.logo.path.suffix.lower()}"
            shutil.copyfile(theme.logo.path, workdir / logo)
            written.append(workdir / logo)
            assets["logo"] = logo
        audio = None
        if ctx.has("audio"):
            file = player(article, theme)
            words = theme.messages(article.metadata.language)
            audio = {"file": file, "kind": "MP3" if file.endswith(".mp3") else words.gettext("M4B audiobook"),
                     "vtt": f"{article.slug}.vtt", "transcript": f"{article.slug}.transcript.txt",
                     # written by the audio stage, not copied here: the page only refers to it
                     "timings": f"{article.slug}.timings.js"}
            shutil.copyfile(theme.file("js/player.js"), workdir / "player.js")
            written.append(workdir / "player.js")
        opts = {"epub": False, "sentence_ids": True, "print_urls": False, "listen": audio is not None,
                "image_url": lambda image: image.path.name}
        page = theme.render("html", "page.html", theme.messages(article.metadata.language), article=article, theme=theme, opts=opts, assets=assets,
                            audio=audio, toc=table_of_contents(article))
        target = workdir / f"{article.slug}.html"
        target.write_text(page, encoding="utf-8")
        for path in dict.fromkeys(image.path for image in article.images()):   # a picture used twice is copied once
            shutil.copyfile(path, workdir / path.name)
            written.append(workdir / path.name)
        return [target, *written]


def player(article: Article, theme: Theme) -> str:
    """The narration file the page plays and offers: the MP3, which every browser plays; else the M4B
    (AAC in MP4, which every current browser plays too)."""
    return f"{article.slug}.{'mp3' if 'mp3' in theme.audio_formats else 'm4b'}"


STAGE = HtmlStage()
