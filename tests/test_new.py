"""`publish new`: a new article from the theme's commented template, ready to check and build."""
from __future__ import annotations

import re

from pikepdf import Pdf
from PIL import Image

from conftest import ROOT, run_publish
from pipeline.source import BLOCK

TEMPLATE = ROOT / "themes" / "default" / "templates" / "new-article.yaml"


def test_the_new_article_passes_check_and_builds(tmp_path):
    result = run_publish("new", "knee-pain", "--dir", str(tmp_path / "source"))
    assert result.returncode == 0, result.stderr
    article = tmp_path / "source" / "knee-pain.yaml"
    assert "publish check" in result.stdout and "knee-pain.yaml" in result.stdout
    assert article.read_bytes() == TEMPLATE.read_bytes()

    check = run_publish("check", str(article))
    assert check.returncode == 0, check.stderr
    assert "ok (" in check.stdout

    out = tmp_path / "out"
    built = run_publish("build", str(article), "--format", "pdf,html", "--out", str(out), "--cache", str(tmp_path / "cache"))
    assert built.returncode == 0, built.stderr
    page = (out / "knee-pain" / "knee-pain.html").read_text("utf-8")
    for heading in ("Quick Summary", "Key Points", "A Section Heading", "A Subsection Heading",
                    "Frequently Asked Questions", "Further Reading", "References", "Medical Disclaimer"):
        assert f">{heading}</h" in page, heading
    assert "<table" in page and "<ol" in page and '<abbr title="general practitioner">GP</abbr>' in page
    with Pdf.open(out / "knee-pain" / "knee-pain.pdf") as pdf:
        assert len(pdf.pages) >= 1


def test_the_template_shows_every_block_kind():
    """A block kind added to the schema must be shown in the template too (the image only commented out:
    its file has to be copied beside the article first)."""
    text = TEMPLATE.read_text("utf-8")
    live = set(re.findall(r"^\s*- ([a-z_]+):", text, re.MULTILINE))
    commented = set(re.findall(r"^\s*#\s*- ([a-z_]+):", text, re.MULTILINE))
    missing = [kind for kind in BLOCK.kinds if kind not in live and kind not in commented]
    assert missing == [], f"the template does not show these block kinds: {missing}"
    assert set(BLOCK.kinds) - live <= {"image"}


def test_the_commented_image_example_is_valid_once_uncommented(tmp_path):
    source = tmp_path / "with-image.yaml"
    text = re.sub(r"^  # (- image:|    \w+:)", r"  \1", TEMPLATE.read_text("utf-8"), flags=re.MULTILINE)
    source.write_text(text, "utf-8")
    missing = run_publish("check", str(source))
    assert missing.returncode == 1
    assert re.search(r"with-image\.yaml:\d+:\d+: error: image `example.png` does not exist", missing.stderr), missing.stderr
    Image.new("RGB", (40, 30), "white").save(tmp_path / "example.png")
    assert run_publish("check", str(source)).returncode == 0


def test_new_refuses_a_bad_name_and_an_existing_file(tmp_path):
    bad = run_publish("new", "Knee Pain", "--dir", str(tmp_path))
    assert bad.returncode == 2 and "lowercase letters, digits and dashes" in bad.stderr
    assert not any(tmp_path.iterdir())

    (tmp_path / "knee-pain.yaml").write_text("title: mine\n", "utf-8")
    again = run_publish("new", "knee-pain", "--dir", str(tmp_path))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (tmp_path / "knee-pain.yaml").read_text("utf-8") == "title: mine\n"
