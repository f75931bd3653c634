"""Behavioural metrics: counterfactual flips and score gaps, fairlearn group fairness."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthbias.lexicon import UnknownAxisError, swap_gender
from synthbias.measure.behavioural import (
    counterfactual_flip_rate,
    counterfactual_score_gap,
    counterfactual_twins,
    group_fairness,
    measure_behavioural,
    text_groups,
)

FAST = {"n_resamples": 200, "seed": 0}


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def says_she(texts: list[str]) -> np.ndarray:
    """Toy classifier: 1 when the word "she" appears."""
    return np.array([int("she" in _words(t)) for t in texts])


def she_score(texts: list[str]) -> np.ndarray:
    """Toy scorer: 1 per "she", 0.5 per "woman"."""
    return np.array([_words(t).count("she") + 0.5 * _words(t).count("woman") for t in texts])


TEXTS = [
    "She is a doctor.",  # -> "He is a doctor.": 1 -> 0, flip
    "He is a nurse.",  # -> "She is a nurse.": 0 -> 1, flip
    "They left.",  # no gendered term: excluded
    "She and he met.",  # -> "He and she met.": 1 -> 1
    "The man smiled.",  # -> "The woman smiled.": 0 -> 0
]


# =============================================================================== twins
def test_twins_mirror_gender() -> None:
    tw = counterfactual_twins(TEXTS)
    assert tw.mode == "mirror" and tw.axis == "gender"
    assert tw.text_index.tolist() == [0, 1, 3, 4]
    assert tw.twins == [swap_gender(TEXTS[i]) for i in (0, 1, 3, 4)]
    assert tw.twins[0] == "He is a doctor." and tw.twins[3] == "The woman smiled."
    assert tw.keys == ["female", "male", "mixed", "male"]
    assert tw.n_without_group == 1 and tw.n_unchanged == 0


def test_twins_targets_pairs_and_mapping_for_other_axes() -> None:
    texts = ["The Muslim prayed.", "The Christian prayed.", "Nobody prayed."]
    targets = counterfactual_twins(texts, "religion")
    assert targets.mode == "targets" and len(targets) == 14  # 7 other groups each
    assert targets.n_without_group == 1
    assert sorted(targets.keys[:7]) == sorted(
        ["christian", "jewish", "hindu", "buddhist", "sikh", "atheist", "agnostic"]
    )
    assert "The Jewish prayed." in targets.twins
    pairs = counterfactual_twins(texts, "religion", mode="pairs")
    assert len(pairs) == 14 and "muslim->christian" in pairs.keys
    assert "christian->muslim" in pairs.keys
    one = counterfactual_twins(texts, "religion", mapping={"muslim": "christian"})
    assert one.twins == ["The Christian prayed."] and one.text_index.tolist() == [0]
    assert one.n_without_group == 2  # only muslim terms are swapped
    with pytest.raises(KeyError, match="no group"):
        counterfactual_twins(texts, "religion", mapping={"muslim": "jedi"})
    with pytest.raises(ValueError, match="exactly two"):
        counterfactual_twins(texts, "religion", mode="mirror")
    with pytest.raises(UnknownAxisError, match="valid axes"):
        counterfactual_twins(texts, "hair_colour")


# =============================================================================== flip rate
def test_flip_rate_with_a_keyword_classifier() -> None:
    r = counterfactual_flip_rate(TEXTS, says_she, **FAST)
    assert r.name == "gender.flip_rate"
    assert r.value == pytest.approx(2 / 4)
    assert r.per_sample == [1.0, 1.0, 0.0, 0.0]
    assert r.per_group == pytest.approx({"female": 1.0, "male": 0.5, "mixed": 0.0})
    assert r.meta["n_without_group"] == 1 and r.meta["n_pairs"] == 4
    assert r.ci.low <= r.value <= r.ci.high


def test_flip_rate_from_scores_with_threshold_and_2d_outputs() -> None:
    def proba(texts: list[str]) -> np.ndarray:
        p = 0.2 + 0.6 * says_she(texts)
        return np.stack([1 - p, p], 1)

    assert counterfactual_flip_rate(TEXTS, proba, **FAST).value == pytest.approx(0.5)  # argmax
    r = counterfactual_flip_rate(TEXTS, lambda t: proba(t)[:, 1], threshold=0.5, **FAST)
    assert r.value == pytest.approx(0.5)
    never = counterfactual_flip_rate(TEXTS, lambda t: proba(t)[:, 1], threshold=0.9, **FAST)
    assert never.value == 0.0
    with pytest.raises(ValueError, match="outputs"):
        counterfactual_flip_rate(TEXTS, lambda t: [1], **FAST)


def test_flip_rate_per_target_group_on_religion() -> None:
    def says_muslim(texts: list[str]) -> np.ndarray:
        return np.array([int("muslim" in _words(t)) for t in texts])

    texts = ["The Muslim prayed.", "The Christian prayed."]
    r = counterfactual_flip_rate(texts, says_muslim, "religion", **FAST)
    # Muslim text: all 7 twins lose "Muslim"; Christian text: only the muslim twin flips
    assert r.value == pytest.approx(8 / 14)
    assert r.per_group["muslim"] == 1.0 and r.per_group["jewish"] == pytest.approx(0.5)


# =============================================================================== score gap
def test_score_gap_signed_and_absolute() -> None:
    res = counterfactual_score_gap(TEXTS, she_score, **FAST)
    gap, abs_gap = res["gender.score_gap"], res["gender.abs_score_gap"]
    # per pair: 1 - 0, 0 - 1, 1 - 1, 0 - 0.5
    assert gap.per_sample == [1.0, -1.0, 0.0, -0.5]
    assert gap.value == pytest.approx(-0.125)
    assert abs_gap.value == pytest.approx(0.625)
    assert gap.per_group == pytest.approx({"female": 1.0, "male": -0.75, "mixed": 0.0})
    for m in res.values():
        assert m.ci.low <= m.value <= m.ci.high
        assert m.meta["bootstrap_unit"] == "text"


def test_measure_behavioural_names() -> None:
    res = measure_behavioural(TEXTS, predict=says_she, score=she_score, n_resamples=50)
    assert set(res) == {"gender.flip_rate", "gender.score_gap", "gender.abs_score_gap"}
    res = measure_behavioural(TEXTS, score=she_score, axes=("gender", "religion"), n_resamples=50)
    assert "religion.score_gap" in res and "gender.flip_rate" not in res
    assert res["religion.score_gap"].meta["n_pairs"] == 0
    with pytest.raises(ValueError, match="predict"):
        measure_behavioural(TEXTS)


# =============================================================================== symmetry
MALE = ["he", "man", "father", "brother", "son", "boy"]
FEMALE = ["she", "woman", "mother", "sister", "daughter", "girl"]
OTHER = ["nurse", "kind", "the", "was", "and", "left"]
text = st.lists(st.sampled_from(MALE + FEMALE + OTHER), min_size=1, max_size=10).map(
    lambda ws: " ".join(ws) + "."
)


def lopsided_score(texts: list[str]) -> np.ndarray:
    weights = {"she": 1.0, "woman": 0.7, "mother": 0.2, "he": -0.3, "boy": 0.4, "nurse": 0.1}
    return np.array([sum(weights.get(w, 0.0) for w in _words(t)) for t in texts])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(text, min_size=1, max_size=12))
def test_gender_swap_mirrors_behavioural_scores(corpus: list[str]) -> None:
    swapped = [swap_gender(t) for t in corpus]
    assert [swap_gender(t) for t in swapped] == corpus  # the swap is exact here
    kw = {"n_resamples": 20}
    a = counterfactual_score_gap(corpus, lopsided_score, **kw)["gender.score_gap"]
    b = counterfactual_score_gap(swapped, lopsided_score, **kw)["gender.score_gap"]
    assert a.n == b.n
    if a.n:
        assert a.value == pytest.approx(-b.value, abs=1e-12)
        np.testing.assert_allclose(a.per_sample, -np.asarray(b.per_sample), atol=1e-12)
        fa = counterfactual_flip_rate(corpus, lambda t: lopsided_score(t) > 0.5, **kw)
        fb = counterfactual_flip_rate(swapped, lambda t: lopsided_score(t) > 0.5, **kw)
        assert fa.value == pytest.approx(fb.value)


# =============================================================================== group fairness
Y_TRUE = [1, 1, 0, 0, 1, 0, 0, 1]
Y_PRED = [1, 0, 1, 0, 1, 1, 0, 1]
GROUPS = ["a", "a", "a", "a", "b", "b", "b", "b"]


def _manual(y_true: list[int], y_pred: list[int], groups: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {"sel": {}, "tpr": {}, "fpr": {}, "acc": {}}
    for g in sorted(set(groups)):
        idx = [i for i, x in enumerate(groups) if x == g]
        pos = [i for i in idx if y_true[i] == 1]
        neg = [i for i in idx if y_true[i] == 0]
        out["sel"][g] = sum(y_pred[i] for i in idx) / len(idx)
        out["tpr"][g] = sum(y_pred[i] for i in pos) / len(pos)
        out["fpr"][g] = sum(y_pred[i] for i in neg) / len(neg)
        out["acc"][g] = sum(y_pred[i] == y_true[i] for i in idx) / len(idx)
    return out


def test_group_fairness_by_hand_and_cross_checked() -> None:
    res = group_fairness(Y_TRUE, Y_PRED, GROUPS, **FAST)
    man = _manual(Y_TRUE, Y_PRED, GROUPS)
    # by hand: selection a 2/4, b 3/4; TPR a 1/2, b 2/2; FPR a 1/2, b 1/2
    assert man["sel"] == {"a": 0.5, "b": 0.75}
    assert man["tpr"] == {"a": 0.5, "b": 1.0} and man["fpr"] == {"a": 0.5, "b": 0.5}
    dp = res["demographic_parity_difference"]
    assert dp.value == pytest.approx(0.25)
    assert dp.value == pytest.approx(max(man["sel"].values()) - min(man["sel"].values()))
    assert dp.per_group == pytest.approx(man["sel"]) and dp.difference == pytest.approx(0.25)
    eo = res["equalized_odds_difference"]
    assert eo.value == pytest.approx(0.5)
    assert eo.per_group == pytest.approx({"a:tpr": 0.5, "a:fpr": 0.5, "b:tpr": 1.0, "b:fpr": 0.5})
    assert eo.meta["tpr_difference"] == pytest.approx(0.5) and eo.meta["fpr_difference"] == 0
    assert res["accuracy"].per_group == pytest.approx(man["acc"])
    assert res["accuracy"].value == pytest.approx(5 / 8)
    assert res["true_positive_rate"].per_group == pytest.approx(man["tpr"])
    assert res["false_positive_rate"].per_group == pytest.approx(man["fpr"])
    assert res["selection_rate"].value == pytest.approx(5 / 8)
    for m in res.values():
        assert m.ci.low <= m.value <= m.ci.high, m.name


def test_group_fairness_cis_on_a_larger_sample() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    groups = rng.choice(["a", "b", "c"], n)
    y_true = rng.integers(0, 2, n)
    bias = np.where(groups == "a", 0.3, 0.0)
    y_pred = (rng.random(n) < 0.3 + 0.4 * y_true + bias).astype(int)
    res = group_fairness(y_true, y_pred, groups, n_resamples=500, prefix="gender.")
    dp = res["gender.demographic_parity_difference"]
    assert dp.ci.low <= dp.value <= dp.ci.high and dp.ci.high - dp.ci.low < 0.15
    assert 0.2 < dp.value < 0.4
    acc = res["gender.accuracy"]
    for g, (lo, hi) in acc.meta["per_group_ci"].items():
        assert lo <= acc.per_group[g] <= hi


def test_group_fairness_matches_unweighted_fairlearn() -> None:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        true_positive_rate,
    )

    rng = np.random.default_rng(3)
    yt, yp = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    sf = rng.choice(["x", "y", "z"], 300)
    res = group_fairness(yt, yp, sf, n_resamples=50)
    assert res["demographic_parity_difference"].value == pytest.approx(
        demographic_parity_difference(yt, yp, sensitive_features=sf)
    )
    assert res["equalized_odds_difference"].value == pytest.approx(
        equalized_odds_difference(yt, yp, sensitive_features=sf)
    )
    by_group = MetricFrame(
        metrics=true_positive_rate, y_true=yt, y_pred=yp, sensitive_features=sf
    ).by_group
    assert res["true_positive_rate"].per_group == pytest.approx(by_group.to_dict())


def test_group_fairness_labels_and_errors() -> None:
    yt = ["yes" if y else "no" for y in Y_TRUE]
    yp = ["yes" if y else "no" for y in Y_PRED]
    res = group_fairness(yt, yp, GROUPS, pos_label="yes", **FAST)
    assert res["demographic_parity_difference"].value == pytest.approx(0.25)
    # a group without positives: fairlearn reports TPR 0; flagged in meta
    res = group_fairness([1, 0, 0, 0], [1, 0, 1, 0], ["a", "a", "b", "b"], **FAST)
    assert res["true_positive_rate"].per_group["b"] == 0.0
    assert res["true_positive_rate"].meta["undefined"]["true_positive_rate"] == ["b"]
    with pytest.raises(ValueError, match="binary"):
        group_fairness([0, 1, 2], [0, 1, 1], ["a", "b", "c"])
    with pytest.raises(ValueError, match="lengths"):
        group_fairness([0, 1], [0, 1, 1], ["a", "b", "c"])


def test_text_groups_as_sensitive_features() -> None:
    assert text_groups(TEXTS) == ["female", "male", "none", "mixed", "male"]
    assert text_groups(["The Muslim man."], "religion") == ["muslim"]
    res = group_fairness([1, 0, 1, 0, 1], says_she(TEXTS), text_groups(TEXTS), **FAST)
    assert set(res["selection_rate"].per_group) == {"female", "male", "none", "mixed"}
    assert not math.isnan(res["demographic_parity_difference"].value)
