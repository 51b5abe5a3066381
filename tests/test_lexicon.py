"""Pronunciation and the spoken script (real lexicon file, real B12 article; no engine needed)."""
from __future__ import annotations

import pytest

from conftest import B12, ROOT
from pipeline.source import load_article
from pipeline.stages.audio.lexicon import load_lexicon
from pipeline.stages.audio.script import transcript, write_script


@pytest.fixture(scope="module")
def article():
    return load_article(B12)


@pytest.fixture(scope="module")
def lexicon(article):
    return load_lexicon(ROOT / "themes" / "default", article.metadata.language).with_article(article)


@pytest.mark.parametrize("written, spoken", [
    ("B12 is essential.", "B twelve is essential."),
    ("High-B12 Foods", "High-B twelve Foods"),
    ("(e.g., 1000-2000 mcg daily)", "for example, 1000 to 2000 micrograms daily"),
    ("enzymes, like COX-2, in check", "enzymes, like cox two, in check"),
    ("Supplementation vs. Injections", "Supplementation versus Injections"),
    ("a combination of B vitamins (B1, B6, and B12) is more beneficial",
     "a combination of B vitamins, B one, B six, and B twelve, is more beneficial"),
    ("a 32% decrease", "a 32 percent decrease"),
    ("a neuropathic component—meaning it's caused", "a neuropathic component, meaning it's caused"),
    ("B12's primary benefit", "B twelve's primary benefit"),
    ("acid (MMA).", "acid, M M A."),
    ("Markup *is* never | read <aloud> # here", "Markup is never read aloud here"),
])
def test_lexicon_says_it_as_a_person_would(lexicon, written, spoken):
    assert lexicon.speak(written) == spoken


@pytest.mark.parametrize("written, spoken", [
    ("See your GP or go to A&E.", "See your G P or go to A and E."),
    ("An NSAID such as ibuprofen", "An en-sayd such as ibuprofen"),
    ("Go to the ER", "Go to the E R"),
    ("a fever of 38°C or more", "a fever of 38 degrees Celsius or more"),
    ("take 500 mg, 2-3 times a day", "take 500 milligrams, 2 to 3 times a day"),
    ("25% of people", "25 percent of people"),
])
def test_the_themes_lexicon_holds_general_clinical_rules(written, spoken):
    assert load_lexicon(ROOT / "themes" / "default", "en").speak(written) == spoken


def test_words_of_one_article_are_in_that_articles_pronunciations_not_the_theme(article):
    theme = load_lexicon(ROOT / "themes" / "default", "en")
    assert not {"B12", "B1", "B6", "COX-2", "MMA", "PPIs"} & set(theme.words)
    assert dict(article.pronunciations)["B12"] == "B twelve"


def test_abbreviation_expansions_from_the_source_are_used_when_the_lexicon_has_no_entry(article):
    empty_theme = load_lexicon(ROOT / "tests", "en")          # no lexicon there: only the source's expansions
    assert empty_theme.with_article(article).speak("1000 mcg") == "1000 micrograms"


def test_an_article_can_override_the_lexicon(article, lexicon):
    from dataclasses import replace
    custom = replace(article, pronunciations=(("B12", "vitamin bee twelve"),))
    assert load_lexicon(ROOT / "themes" / "default", "en").with_article(custom).speak("B12") == "vitamin bee twelve"


@pytest.fixture(scope="module")
def script(article, lexicon):
    return write_script(article, lexicon, "Your Clinic Name")


def test_opening_sections_and_closing(script, article):
    utterances, chapters = script
    spoken = [u.spoken for u in utterances]
    assert spoken[0] == "Is B twelve Good for Lower Back Pain?"
    assert "An audio version of the article from Your Clinic Name." in spoken[:4]
    assert "Section 3: The Role of Vitamin B twelve in Nerve Health." in spoken
    assert spoken[-1] == "This is the end of the article from Your Clinic Name. Thank you for listening."
    assert [c.title for c in chapters] == ["Opening"] + [e.text for e in article.outline() if e.level == 2]
    assert len({u.id for u in utterances}) == len(utterances)


def test_key_points_are_counted_and_numbered(script):
    spoken = [u.spoken for u in script[0]]
    start = spoken.index("Six key points.")
    assert spoken[start + 1] == "Key point 1: Nerve Health Support."
    assert spoken[start + 2].startswith("B twelve is essential for nerve health")


def test_table_is_read_row_by_row_with_its_headers(script):
    spoken = [u.spoken for u in script[0]]
    start = next(i for i, s in enumerate(spoken) if s.startswith("A table:"))
    assert spoken[start + 1] == "Absorption."
    assert spoken[start + 2].startswith("Oral B twelve Supplementation: Can be low")
    assert spoken[start + 3].startswith("Injectable B twelve Supplementation: Delivers the vitamin")
    assert spoken[start + 4] == "Effectiveness."


def test_faq_is_read_as_questions_and_answers(script):
    spoken = [u.spoken for u in script[0]]
    first = spoken.index("Question: Can vitamin B twelve cure a herniated disc?")
    assert spoken[first + 1] == "Answer: No, vitamin B twelve cannot cure a herniated disc."


def test_disclaimer_comes_last_before_the_closing(script):
    spoken = [u.spoken for u in script[0]]
    assert spoken[-3] == "Section 13: Medical Disclaimer."
    assert spoken[-2].startswith("This content is for informational purposes only")


def test_transcript_has_headings_and_no_markup(script, article):
    text = transcript(article, *script)
    assert "Section 2: Key Points." in text.splitlines()
    assert not set("*|<#") & set(text)
