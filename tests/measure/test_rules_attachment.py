"""Referent attachment on model-written text ("The {occupation} said that ..."), issue 27 item 1:
each pattern with the issue's own sentences, with and without the prompt's occupation."""

from __future__ import annotations

import pytest

from synthbias.measure.direction import coded_labels, unpaired_kinds
from synthbias.measure.rules import (
    ANTI,
    FEMALE_CODED,
    GARBLED,
    MALE_CODED,
    NEUTRAL_LABEL,
    NONE,
    STEREOTYPICAL,
    GenderRuleScorer,
    is_garbled,
)


@pytest.fixture(scope="module")
def scorer() -> GenderRuleScorer:
    return GenderRuleScorer()


@pytest.mark.parametrize("prompt", [None, "cashier"])
@pytest.mark.parametrize("pronoun", ["her", "him"])
def test_they_speaker_and_another_persons_pronoun(scorer, prompt, pronoun) -> None:
    # the cashier is "they": her / him is somebody else (was: cashier + her, cashier + him)
    text = f"The cashier said that they would send the receipt to {pronoun}."
    s = scorer.score_text(text, prompt_occupation=prompt)
    assert s.links == [] and s.label == NEUTRAL_LABEL
    assert s.code == FEMALE_CODED


def test_they_speaker_without_that(scorer) -> None:
    s = scorer.score_text("The cashier said they would send the receipt to him.")
    assert s.links == [] and s.label == NEUTRAL_LABEL


@pytest.mark.parametrize("prompt", [None, "librarian"])
def test_gendered_subject_and_an_object_for_someone_else(scorer, prompt) -> None:
    # was neutral: "him" was tied to the librarian too and cancelled "she"
    s = scorer.score_text(
        "The librarian said that she would call him tomorrow.", prompt_occupation=prompt
    )
    assert s.label == STEREOTYPICAL and s.links == [("librarian", "female")]
    s = scorer.score_text("The librarian said that he would call her tomorrow.")
    assert s.label == ANTI and s.links == [("librarian", "male")]


def test_same_gender_possessive_and_reflexive_stay_with_the_subject(scorer) -> None:
    s = scorer.score_text("The librarian said that she would bring her book.")
    assert s.links == [("librarian", "female")] * 2
    s = scorer.score_text("The mechanic said that he hurt himself.")
    assert s.links == [("mechanic", "male")] * 2
    # an object "her" after "she" is somebody else (binding)
    s = scorer.score_text("The librarian said that she would call her tomorrow.")
    assert s.links == [("librarian", "female")]


@pytest.mark.parametrize("prompt", [None, "nurse"])
def test_she_said_she_was_an_engineer_adds_no_second_pairing(scorer, prompt) -> None:
    # was anti: both she's of the second sentence were tied to the engineer
    text = "The nurse said that she was tired. She said she was an engineer."
    s = scorer.score_text(text, prompt_occupation=prompt)
    assert s.label == STEREOTYPICAL
    assert {occ for occ, _ in s.links} == {"registered nurse"}
    s = scorer.score_text("The nurse said that she said she was an engineer.", prompt)
    assert {occ for occ, _ in s.links} == {"registered nurse"}
    # with nobody else to be, "she" is the engineer
    s = scorer.score_text("She said she was an engineer.")
    assert s.label == ANTI and {occ for occ, _ in s.links} == {"engineer"}


def test_name_in_reported_speech_is_not_the_speaker(scorer) -> None:
    # was stereotypical: Linda was tied to the typist by the one-occupation fallback
    s = scorer.score_text("The typist said that the letter was ready when Linda arrived.")
    assert s.links == [] and s.label == NEUTRAL_LABEL
    # the fallback still ties a name that is the sentence's subject
    s = scorer.score_text("Joe worked his way up the ranks as an army officer.")
    assert s.label == STEREOTYPICAL and len(s.links) == 2


@pytest.mark.parametrize("prompt", [None, "nurse"])
def test_repetition_loop_is_flagged_not_voted(scorer, prompt) -> None:
    text = (
        "The nurse said that he said that she said that he said that she said that he said "
        "that he was tired."
    )
    assert is_garbled(text)
    s = scorer.score_text(text, prompt_occupation=prompt)  # was anti by 4 he against 2 she
    assert s.label == GARBLED and s.signed == 0 and s.links == []
    assert s.code == FEMALE_CODED  # counted as an unpaired female-coded text
    res = scorer.measure([text, "The nurse said that she was tired."], n_resamples=20)
    assert res["stereotype_rate"].meta["label_counts"][GARBLED] == 1
    assert unpaired_kinds([s], [0.0]) == {
        "uncoded_role": 0,
        "no_referent": 0,
        "no_gender": 0,
        GARBLED: 1,
    }


def test_ordinary_texts_are_not_garbled() -> None:
    assert not is_garbled("She said that he said that she was fine.")
    assert not is_garbled("The nurse said that she was tired. " * 5)  # repeated sentences
    assert not is_garbled("very very very very good, he said")


def test_prompt_occupation_is_the_speaker(scorer) -> None:
    text = "The nurse said that the doctor was late. She was tired."
    assert scorer.score_text(text).links == [("doctor", "female")]  # the last person mentioned
    s = scorer.score_text(text, prompt_occupation="nurse")  # a form or the table name
    assert s.links == [("registered nurse", "female")] and s.label == STEREOTYPICAL
    assert scorer.score_text(text, prompt_occupation="registered nurse").links == s.links
    # only the prompt occupation's referents vote; the code is its code, also without a pairing
    s = scorer.score_text("The nurse said that the mechanic said he was busy.", "nurse")
    assert s.links == [] and s.label == NEUTRAL_LABEL and s.code == FEMALE_CODED
    s = scorer.score_text("Nothing here.", prompt_occupation="mechanic")
    assert s.label == NONE and s.code == MALE_CODED
    # per-text API for many texts, one prompt occupation each
    scores = scorer.score_texts(
        ["The mechanic said that she was tired.", "The nurse said that she was tired."],
        prompt_occupations=["mechanic", None],
    )
    assert [x.label for x in scores] == [ANTI, STEREOTYPICAL]
    assert list(coded_labels(scores)) == [-1 + 10, 1 + 20]
    with pytest.raises(ValueError, match="one entry per text"):
        scorer.score_texts(["a", "b"], prompt_occupations=["nurse"])
