"""The B12 source and the document model built from it."""
from __future__ import annotations

import json
import re

from conftest import B12, ROOT, assert_in_order, run_publish, seed_sentences
from pipeline.model import Faq, Table
from pipeline.source import load_article


def load():
    return load_article(B12, publisher="A Clinic")


def test_every_seed_sentence_is_in_the_model_in_order():
    article = load()
    assert_in_order(seed_sentences(), "\n".join(article.reading_text()))


def test_the_model_holds_only_seed_text_and_marked_editorial_text():
    """Nothing is invented: every heading, label and sentence is from the seed, or marked editorial."""
    seed = re.sub(r"\s+", " ", (ROOT / "tests" / "fixtures" / "b12-seed.txt").read_text())
    article = load()
    editorial = {e.text for e in article.outline() if e.block.heading.editorial}
    editorial |= {item.question.text for b in article.blocks if isinstance(b, Faq) for item in b.items
                  if item.question.editorial}
    editorial |= {"Further Reading", "Oral and injectable B12 compared"}   # marked editorial in the source
    for text in article.reading_text():
        assert text in seed or text in editorial, f"not in the article and not marked editorial: {text!r}"


def test_faq_questions_are_marked_editorial():
    faq = next(b for b in load().blocks if isinstance(b, Faq))
    assert len(faq.items) == 7
    assert all(item.question.editorial for item in faq.items)


def test_ids_are_unique_and_stable():
    first, second = load(), load()
    ids = [s.id for s in first.sentences()] + [e.id for e in first.outline()]
    assert len(ids) == len(set(ids))
    assert ids == [s.id for s in second.sentences()] + [e.id for e in second.outline()]
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", i) for i in ids)
    assert first.outline()[2].id == "the-role-of-vitamin-b12-in-nerve-health"


def test_structure_of_the_b12_article():
    article = load()
    top = [e.text for e in article.outline() if e.level == 2]
    assert top[:3] == ["Quick Summary", "Key Points", "The Role of Vitamin B12 in Nerve Health"]
    assert top[-1] == "Medical Disclaimer"
    assert [e.text for e in article.outline() if e.level == 3][0] == "High-B12 Foods"
    key_points = next(b for b in article.blocks if b.kind == "key_points")
    assert [i.label_text for i in key_points.items][0] == "Nerve Health Support"
    assert len(key_points.items) == 6
    table = next(b for b in _walk(article.blocks) if isinstance(b, Table))
    assert [c.text for c in table.columns] == ["Oral B12 Supplementation", "Injectable B12 Supplementation"]
    assert [r.header.text for r in table.rows] == ["Absorption", "Effectiveness", "Primary Use", "Convenience"]
    # the source keeps no references: the article's list was empty
    assert not any(b.kind == "references" for b in _walk(article.blocks))


def test_inline_marks_and_abbreviations():
    article = load()
    spans = [span for s in article.sentences() for span in s.spans]
    abbreviations = {span.text: span.abbr.expansion for span in spans if span.abbr}
    assert abbreviations["mcg"] == "micrograms"
    assert abbreviations["COX-2"] == "cyclooxygenase-2"
    assert "e.g.," in next(s.text for s in article.sentences() if "1000-2000" in s.text)


def test_sentence_splitting_keeps_abbreviations_whole():
    texts = [s.text for s in load().sentences()]
    assert ("High-dose oral supplementation (e.g., 1000-2000 mcg daily) is effective for many "
            "but may be slower acting.") in texts
    assert "Easy to take at home." in texts and "Sublingual forms offer better absorption for some." in texts


def test_check_command_accepts_the_b12_article():
    result = run_publish("check", "source/b12-lower-back-pain.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and result.stderr == ""


def test_build_writes_a_manifest_of_what_it_built(tmp_path):
    result = run_publish("build", str(B12), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "b12-lower-back-pain"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"].endswith("b12-lower-back-pain.yaml")
    import hashlib
    for entry in manifest["outputs"]:
        data = (folder / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["manifest.json"] + [e["path"] for e in manifest["outputs"]])
    # (the article's lock file stays, for every build to lock the same file)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.suffix != ".lock"], "temporary files left"


def test_cli_usage_errors_exit_2():
    assert run_publish("build", "--format", "pfd").returncode == 2
    assert "did you mean `pdf`" in run_publish("build", "--format", "pfd").stderr
    assert run_publish("build", "no-such-file.yaml").returncode == 2
    assert run_publish("frobnicate").returncode == 2
    assert run_publish("build", "--theme", "nope").returncode == 2
    version = run_publish("--version")
    assert version.returncode == 0 and re.match(r"publish \d+\.\d+", version.stdout)
    for args in (["--help"], ["build", "--help"], ["check", "--help"]):
        result = run_publish(*args)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_a_broken_copy_of_the_article_gets_one_located_error_per_problem(tmp_path):
    text = B12.read_text()
    cases = {
        "unknown key": (text.replace("subtitle:", "subtitel:"), "unknown key `subtitel`", "did you mean `subtitle`?"),
        "wrong type": (text.replace("reading_time_minutes: 4", "reading_time_minutes: [4]"), "must be a whole number", ""),
        "duplicate key": (text.replace("language: en\n", "language: en\nlanguage: fr\n"), "duplicate key `language`", ""),
        "bad indentation": (text.replace("  - p: >-\n      Research", "   - p: >-\n      Research"), "YAML syntax error", ""),
        "python tag": (text.replace("subject: Health", "subject: !!python/object:os.system x"), "YAML tag", ""),
    }
    for name, (broken, message, hint) in cases.items():
        copy = tmp_path / "b12-lower-back-pain.yaml"
        copy.write_text(broken)
        result = run_publish("check", str(copy))
        assert result.returncode == 1, name
        errors = [l for l in result.stderr.splitlines() if ": error: " in l]
        assert len(errors) == 1, (name, result.stderr)
        assert re.match(rf"{re.escape(str(copy))}:\d+:\d+: error: ", errors[0]), (name, errors[0])
        assert message in errors[0] and hint in result.stderr and "how to fix:" in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr


def _walk(blocks):
    for b in blocks:
        yield b
        if hasattr(b, "blocks"):
            yield from _walk(b.blocks)
