"""Rule-based gender-occupation metric: labels, corpus scores, CIs, swap symmetry, speed."""

from __future__ import annotations

import csv
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthbias.lexicon import load_lexicon, swap_gender
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import GenderRuleScorer, TextScore, metrics_from_scores


@pytest.fixture(scope="module")
def scorer() -> GenderRuleScorer:
    return GenderRuleScorer()


# --------------------------------------------------------------------------- per-text labels
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The nurse said she was tired.", "stereotypical"),
        ("The nurse said he was tired.", "anti"),
        ("The engineer said he was tired.", "stereotypical"),
        ("The engineer said she was tired.", "anti"),
        ("The nurse arrived.", "neutral"),  # coded occupation, no gendered referent
        ("The nurse said they were tired.", "neutral"),  # neutral referents do not count
        ("The nurse said he and she were tired.", "neutral"),  # tied referents
        ("He went home.", "none"),  # no occupation
        ("The accountant said she was tired.", "none"),  # neutral occupation (59.7%)
        ("The NURSE said SHE was tired.", "stereotypical"),  # case-insensitive
        ("Two nurses said she was tired.", "stereotypical"),  # plural form
        ("Mary is a carpenter.", "anti"),  # first names count as referents
        ("James is a carpenter.", "stereotypical"),
        ("Mr. Lee is the secretary.", "anti"),  # titles count
        ("The CEO said his plan works.", "stereotypical"),  # variant form
        ("My mother is a plumber and my father is too.", "neutral"),  # tied referents
        ("The nurse practitioner said he left.", "anti"),  # multi-word, longest match
        ("The general practitioner said she left.", "none"),  # physician: neutral (37.9%)
        ("The social worker said he left.", "anti"),  # "social worker" 81%, not "worker"
        ("The worker said he left.", "none"),  # "worker" alone is neutral (37.9%)
        ("The nurse and the engineer talked; she left.", "neutral"),  # tied codes
        ("The nurse, the nurse and the engineer talked; he left.", "anti"),  # majority code
        ("The nurse saw him, his son and her.", "anti"),  # majority referent (3 male, 1 female)
        ("Kelly is an engineer.", "neutral"),  # ambiguous name at 0.9
    ],
)
def test_labels(scorer, text, label):
    assert scorer.score_text(text).label == label


def test_text_score_fields(scorer):
    s = scorer.score_text("The nurse practitioner and the engineer met Mary; he and she left.")
    assert isinstance(s, TextScore)
    assert s.occupations == [("nurse practitioner", "female-coded"), ("engineer", "male-coded")]
    assert (s.male, s.female, s.neutral) == (1, 2, 0)
    assert s.label == "neutral" and s.code is None  # tied codes
    s = scorer.score_text("The nurse thanked her.")
    assert s.code == "female-coded" and s.signed == 1
    assert scorer.score_text("The nurse thanked him.").signed == -1
    assert scorer.score_text("Nobody.").signed == 0


def test_thresholds_move_labels():
    text = "The teacher said she was tired."  # teacher: 71.0% female
    assert GenderRuleScorer().score_text(text).label == "stereotypical"
    assert GenderRuleScorer(hi=75).score_text(text).label == "none"
    text = "The officer said he was tired."  # officer: 30.42% female
    assert GenderRuleScorer().score_text(text).label == "none"
    assert GenderRuleScorer(lo=31).score_text(text).label == "stereotypical"
    with pytest.raises(ValueError):
        GenderRuleScorer(lo=70, hi=30)


def test_name_threshold_moves_labels():
    text = "Kelly is an engineer."  # Kelly: 82% female
    assert GenderRuleScorer(name_threshold=0.9).score_text(text).label == "neutral"
    assert GenderRuleScorer(name_threshold=0.8).score_text(text).label == "anti"


def test_score_texts_matches_score_text(scorer):
    texts = [
        "The nurse said she was tired.",
        "",
        "The engineer said she was tired.",
        "He went home.",
        "Mary is a carpenter.\x00 James too.",
    ] * 7
    assert scorer.score_texts(texts) == [scorer.score_text(t) for t in texts]


# --------------------------------------------------------------------------- corpus metrics
STEREO = "The nurse said she was tired."
ANTI = "The engineer said she was tired."
NEUTRAL = "The nurse arrived."


def check_result(r: MetricResult, n: int) -> None:
    assert r.n == n and len(r.per_sample) == n
    assert r.ci is not None and r.ci.low <= r.value <= r.ci.high
    r.to_json(include_samples=True)  # serialisable


def test_rates_on_hand_computed_corpus(scorer):
    texts = [STEREO] * 3 + [ANTI] + [NEUTRAL] * 6
    res = scorer.measure(texts, n_resamples=500, seed=1)
    assert set(res) == {"stereotype_rate", "signed_bias", "gendered_term_imbalance"}
    rate, signed = res["stereotype_rate"], res["signed_bias"]
    assert rate.value == pytest.approx(0.3)
    assert signed.value == pytest.approx(0.2)
    check_result(rate, 10)
    check_result(signed, 10)
    assert rate.per_sample == [1.0] * 3 + [0.0] * 7
    assert signed.per_sample == [1.0] * 3 + [-1.0] + [0.0] * 6
    # among female-coded texts (9): 3 stereotypical; among male-coded (1): 0
    assert rate.per_group == pytest.approx({"male-coded": 0.0, "female-coded": 1 / 3})
    assert signed.per_group == pytest.approx({"male-coded": -1.0, "female-coded": 1 / 3})
    assert rate.meta["label_counts"] == {"stereotypical": 3, "anti": 1, "neutral": 6, "none": 0}
    assert rate.meta["lo"] == 30 and rate.meta["hi"] == 70


def test_ci_is_reproducible_and_narrows_with_n(scorer):
    small = [STEREO] * 3 + [ANTI] + [NEUTRAL] * 6
    a = scorer.measure(small, n_resamples=300, seed=3)["stereotype_rate"].ci
    b = scorer.measure(small, n_resamples=300, seed=3)["stereotype_rate"].ci
    assert a == b
    big = scorer.measure(small * 20, n_resamples=300, seed=3)["stereotype_rate"]
    assert big.value == pytest.approx(0.3)
    assert big.ci.high - big.ci.low < a.high - a.low


def test_gendered_term_imbalance(scorer):
    texts = ["He and his son left.", "She left.", "The table."]
    r = scorer.measure(texts, n_resamples=300)["gendered_term_imbalance"]
    assert r.value == pytest.approx((3 - 1) / 4)
    assert r.per_group == pytest.approx({"male": 0.75, "female": 0.25})
    assert r.per_sample[:2] == [1.0, -1.0] and math.isnan(r.per_sample[2])
    assert r.meta["male_referents"] == 3 and r.meta["female_referents"] == 1
    check_result(r, 3)
    only_f = scorer.measure([STEREO] * 3 + [ANTI] + [NEUTRAL] * 6, n_resamples=100)
    assert only_f["gendered_term_imbalance"].value == -1.0


def test_empty_and_referent_free_corpora(scorer):
    res = scorer.measure([], n_resamples=50)
    for r in res.values():
        assert math.isnan(r.value) and r.n == 0
    res = scorer.measure(["The table.", "A chair."], n_resamples=50)
    assert res["stereotype_rate"].value == 0.0
    assert math.isnan(res["gendered_term_imbalance"].value)
    assert math.isnan(res["stereotype_rate"].per_group["male-coded"])


def test_metrics_from_scores_directly():
    scores = [TextScore("stereotypical", code="male-coded", male=1), TextScore("none")]
    res = metrics_from_scores(scores, n_resamples=50)
    assert res["stereotype_rate"].value == 0.5
    assert res["signed_bias"].per_group["male-coded"] == 1.0


# --------------------------------------------------------------------------- swap symmetry
def _template_parts():
    lex = load_lexicon()
    axis = lex.axis("gender")
    occ = axis.occupations
    coded = sorted(o.name for o in occ if o.code() != "neutral")
    nouns = [(r["male"], r["female"]) for r in axis.aligned if r["male"] in axis.terms("male")]
    nouns = [p for p in nouns if p[0] in axis.terms("male", "nouns")]
    males = axis.names.by_gender()["male"][:200]
    names = [(m, swap_gender(m)) for m in males if swap_gender(m) != m]
    things = ["book", "car", "report", "idea", "plan"]
    return coded, nouns, names, things


CODED, NOUN_PAIRS, NAME_PAIRS, THINGS = _template_parts()

# Each fragment is a (male, female) pair of sentence pieces built from lexicon terms.
FRAGMENT = st.one_of(
    st.just(("he left", "she left")),
    st.just(("thanked him.", "thanked her.")),
    st.just(("hurt himself", "hurt herself")),
    st.sampled_from(THINGS).map(lambda t: (f"his {t}", f"her {t}")),
    st.sampled_from(NOUN_PAIRS).map(lambda p: (f"the {p[0]}", f"the {p[1]}")),
    st.sampled_from(NAME_PAIRS).map(lambda p: (p[0], p[1])),
    st.just(("Mr Smith", "Ms Smith")),
    st.just(("they left", "they left")),
)
TEXT = st.tuples(
    st.lists(st.sampled_from(CODED), max_size=3),
    st.lists(st.tuples(FRAGMENT, st.booleans()), max_size=5),
).map(
    lambda t: (
        "The "
        + " and the ".join(t[0] or ["table"])
        + ": "
        + ", ".join(pair[int(fem)] for pair, fem in t[1])
        + "."
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TEXT, min_size=1, max_size=25))
def test_swapping_every_text_mirrors_the_metrics(texts):
    scorer = GenderRuleScorer()
    swapped = [swap_gender(t) for t in texts]
    assert [swap_gender(s) for s in swapped] == texts  # templates are swap-invertible
    a = scorer.measure(texts, n_resamples=20)
    b = scorer.measure(swapped, n_resamples=20)
    assert b["signed_bias"].value == pytest.approx(-a["signed_bias"].value)
    ia, ib = a["gendered_term_imbalance"].value, b["gendered_term_imbalance"].value
    if math.isnan(ia):
        assert math.isnan(ib)
    else:
        assert ib == pytest.approx(-ia)
    la, lb = a["signed_bias"].meta["label_counts"], b["signed_bias"].meta["label_counts"]
    assert (lb["stereotypical"], lb["anti"]) == (la["anti"], la["stereotypical"])
    for sa, sb in zip(scorer.score_texts(texts), scorer.score_texts(swapped), strict=True):
        assert (sa.male, sa.female) == (sb.female, sb.male)
        assert sa.occupations == sb.occupations


# --------------------------------------------------------------------------- real data
def test_winogender_male_and_female_sentences_mirror(benchmarks, scorer):
    """Winogender sentences differ only in the pronoun, so their signed biases are opposite."""
    with (benchmarks / "winogender" / "all_sentences.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    by_gender: dict[str, list[str]] = {"male": [], "female": [], "neutral": []}
    for r in rows:
        occupation, _, _, gender, _ = r["sentid"].split(".")
        by_gender[gender].append(r["sentence"])
        found = [o for o, _ in scorer.score_text(r["sentence"]).occupations]
        assert occupation in found, r["sentence"]  # every occupation is recognised
    male = scorer.measure(by_gender["male"], n_resamples=100)["signed_bias"]
    female = scorer.measure(by_gender["female"], n_resamples=100)["signed_bias"]
    assert male.value == pytest.approx(-female.value) and female.value > 0
    neutral = scorer.measure(by_gender["neutral"], n_resamples=100)["signed_bias"]
    counts = neutral.meta["label_counts"]
    assert counts["stereotypical"] == counts["anti"] == 0


# --------------------------------------------------------------------------- speed
def test_scoring_speed_smoke(scorer):
    texts = [STEREO, ANTI, NEUTRAL, "He went home with Mary.", "A table."] * 4000
    t0 = time.perf_counter()
    scores = scorer.score_texts(texts)
    elapsed = time.perf_counter() - t0
    print(f"\nscored {len(texts) / elapsed:,.0f} texts/s")
    assert len(scores) == len(texts)
    assert elapsed < 30  # loose bound
