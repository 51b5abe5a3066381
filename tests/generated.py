"""Small generated articles, for tests about many articles or about the build rather than about the B12 text."""
from __future__ import annotations

from pathlib import Path


def small_article(folder: Path, slug: str, n: int = 0) -> Path:
    """A short valid article of its own (two sections, a few sentences that name *slug* and *n*)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.yaml"
    path.write_text(f"""title: Handout {n} on sleep and back pain
language: en
body:
  - p: This handout, number {n}, explains why rest helps. Its code is {slug}.
  - section:
      heading: What you can do
      body:
        - p: Keep moving gently during the day. Ask the clinic if pain lasts more than {n + 2} weeks.
""", encoding="utf-8")
    return path
