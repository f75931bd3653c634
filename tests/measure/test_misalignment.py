"""Tests for synthbias.measure.misalignment: hand-computed JSD, MMD² and Fréchet values, sentiment
gap signs on hand-made texts, bootstrap CIs, and MMD / Fréchet on the real (bundled, offline)
all-MiniLM-L6-v2 for identical and clearly different corpora.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
import scipy.spatial.distance
from fakes import HashEncoder

from synthbias.measure.misalignment import (
    _cov_factor,
    _frechet_jackknife,
    _trace_sqrt_factors,
    _trace_sqrt_product_eig,
    cooccurrence_jsd,
    frechet_distance,
    frechet_test,
    js_divergence,
    jsd_terms,
    misalignment_factors,
    mmd2_test,
    mmd2_unbiased,
    representation_jsd,
    sentiment_gap,
    sentiment_scores,
)

# --------------------------------------------------------------------------------------------
# Jensen–Shannon divergence
# --------------------------------------------------------------------------------------------


def test_jsd_hand_computed() -> None:
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4):
    # JSD = 1/2 [1·log2(4/3)] + 1/2 [1/2·log2(2/3) + 1/2·log2(2)] = 0.311278... bits
    expected = 0.5 * math.log2(4 / 3) + 0.25 * math.log2(2 / 3) + 0.25
    assert js_divergence([1, 0], [0.5, 0.5]) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.3112781244591328, abs=1e-12)
    # unnormalised counts are normalised; disjoint supports give the maximum, 1 bit
    assert js_divergence([10, 0], [5, 5]) == pytest.approx(expected, abs=1e-12)
    assert js_divergence([1, 0, 0], [0, 0, 3]) == pytest.approx(1.0)
    assert js_divergence([2, 3, 5], [4, 6, 10]) == pytest.approx(0.0, abs=1e-15)
    # terms add up to the divergence; agrees with scipy's distance squared
    p, q = [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]
    assert jsd_terms(p, q).sum() == pytest.approx(js_divergence(p, q))
    ref = scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2
    assert js_divergence(p, q) == pytest.approx(ref, abs=1e-12)
    assert math.isnan(js_divergence([0, 0], [1, 1]))
    with pytest.raises(ValueError):
        js_divergence([1, -1], [1, 1])


def test_representation_jsd_on_hand_made_texts() -> None:
    synthetic = ["She is here.", "The woman left.", "Her sister called."]  # female only
    real = ["She is here.", "He is here."] * 2  # female 2, male 2 mentions
    res = representation_jsd(synthetic, real, n_resamples=200)
    # synthetic (male, female) = (0, 4 mentions: she, woman, her, sister) vs real (1/2, 1/2)
    assert res.meta["share_synthetic"]["female"] == pytest.approx(1.0)
    assert res.value == pytest.approx(0.3112781244591328, abs=1e-12)
    assert sum(res.per_group.values()) == pytest.approx(res.value)
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    assert res.name == "group_data.gender.representation_jsd"
    texts = representation_jsd(synthetic, real, unit="texts", n_resamples=10)
    assert texts.value == pytest.approx(0.3112781244591328, abs=1e-12)  # same shares by text


def test_cooccurrence_jsd_disjoint_and_identical() -> None:
    synthetic = ["She is a nurse.", "He is an engineer."] * 3
    real = ["He is a nurse.", "She is an engineer."] * 3
    res = cooccurrence_jsd(synthetic, real, n_resamples=200)
    assert res.value == pytest.approx(1.0)  # no (group, occupation) pair in common
    assert res.meta["n_cooccurring_texts_synthetic"] == 6
    top = {c["category"] for c in res.meta["top_contributions"]}
    assert top == {"female|nurse", "male|engineer", "male|nurse", "female|engineer"}
    same = cooccurrence_jsd(synthetic, list(reversed(synthetic)), n_resamples=50)
    assert same.value == pytest.approx(0.0, abs=1e-12)
    # caller-given attributes: a list of words, or names -> surface forms
    words = cooccurrence_jsd(synthetic, real, attributes=["nurse"], n_resamples=10)
    assert words.value == pytest.approx(1.0)  # female|nurse vs male|nurse
    forms = cooccurrence_jsd(
        synthetic, synthetic, attributes={"care": ["nurse", "nurses"]}, n_resamples=10
    )
    assert forms.value == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Values: sentiment gap
# --------------------------------------------------------------------------------------------

SYN_NEG_WOMEN = [
    "The woman was terrible at her job.",
    "She is lazy and awful.",
    "Her work was a horrible failure.",
    "The girl was rude and stupid.",
    "He is a wonderful, kind friend.",
    "The man did a great job.",
]
REAL_POS_WOMEN = [
    "The woman was excellent at her job.",
    "She is brilliant and kind.",
    "Her work was a wonderful success.",
    "The girl was happy and helpful.",
    "He is a wonderful, kind friend.",
    "The man did a great job.",
]


def test_sentiment_gap_sign_on_hand_made_texts() -> None:
    res = sentiment_gap(SYN_NEG_WOMEN, REAL_POS_WOMEN, min_texts=1, n_resamples=500)
    assert res.per_group["female"] < -1.0  # VADER compound differs by ~1.3 on average
    assert res.per_group["male"] == pytest.approx(0.0, abs=1e-12)  # same male texts
    assert math.isnan(res.per_group["neutral"])  # no text mentions a neutral term
    assert res.meta["excluded_groups"] == ["neutral"]
    assert res.value == pytest.approx(abs(res.per_group["female"]) / 2)  # unweighted mean
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    lo, hi = res.meta["group_ci"]["female"]
    assert lo <= res.per_group["female"] <= hi < 0
    assert len(res.per_sample) == 12 and res.per_sample[0] < 0 < res.per_sample[6]
    assert res.meta["group_n_synthetic"] == {"male": 2, "female": 4, "neutral": 0}
    assert res.name == "values.gender.sentiment_gap"


def test_sentiment_gap_weighting_and_min_texts() -> None:
    unweighted = sentiment_gap(SYN_NEG_WOMEN, REAL_POS_WOMEN, min_texts=1, n_resamples=10)
    weighted = sentiment_gap(
        SYN_NEG_WOMEN, REAL_POS_WOMEN, min_texts=1, weighted=True, n_resamples=10
    )
    gap_f = abs(unweighted.per_group["female"])
    # weights = texts mentioning the group in both corpora: female 4 + 4, male 2 + 2
    assert weighted.value == pytest.approx((8 * gap_f + 4 * 0.0) / 12)
    strict = sentiment_gap(SYN_NEG_WOMEN, REAL_POS_WOMEN, min_texts=3, n_resamples=10)
    assert math.isnan(strict.per_group["male"]) and strict.value == pytest.approx(gap_f)
    empty = sentiment_gap(["no people here"], ["nothing"], min_texts=1, n_resamples=10)
    assert math.isnan(empty.value)
    only_f = sentiment_gap(SYN_NEG_WOMEN, REAL_POS_WOMEN, groups=["female"], min_texts=1)
    assert list(only_f.per_group) == ["female"] and only_f.value == pytest.approx(gap_f)
    with pytest.raises(KeyError):
        sentiment_gap(SYN_NEG_WOMEN, REAL_POS_WOMEN, groups=["martian"])


def test_sentiment_scores_are_vader_compound() -> None:
    s = sentiment_scores(["This is wonderful.", "This is terrible.", "The sky."])
    assert s[0] > 0.3 and s[1] < -0.3 and s[2] == 0.0


# --------------------------------------------------------------------------------------------
# Distributions: MMD² and Fréchet, hand-computed
# --------------------------------------------------------------------------------------------


def _mmd2_double_loop(x: Sequence[float], y: Sequence[float], sigma: float) -> float:
    def k(a: float, b: float) -> float:
        return math.exp(-((a - b) ** 2) / (2 * sigma**2))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(a, b) for a in x for b in y) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_on_1d_points_matches_double_loop() -> None:
    x, y = [0.0, 0.5, 1.0, 1.2], [2.0, 2.5, 3.5]
    expected = _mmd2_double_loop(x, y, sigma=1.0)
    xa, ya = np.array(x)[:, None], np.array(y)[:, None]
    assert mmd2_unbiased(xa, ya, bandwidth=1.0) == pytest.approx(expected, abs=1e-12)
    res = mmd2_test(xa, ya, bandwidth=1.0, n_permutations=200, n_resamples=100)
    assert res.value == pytest.approx(expected, abs=1e-12)
    # with the median heuristic: sigma = median distance between distinct pooled points
    pooled = x + y
    dists = [abs(a - b) for i, a in enumerate(pooled) for b in pooled[i + 1 :]]
    sigma = float(np.median(dists))
    auto = mmd2_test(xa, ya, n_permutations=50, n_resamples=10)
    assert auto.meta["bandwidth"] == pytest.approx(sigma)
    assert auto.value == pytest.approx(_mmd2_double_loop(x, y, sigma), abs=1e-12)


def test_mmd2_permutation_test_and_witness() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) + 1.0
    res = mmd2_test(x, y, n_permutations=500, n_resamples=300)
    assert res.value > 0 and res.meta["p_value"] == pytest.approx(1 / 501)
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    w = np.array(res.per_sample)
    assert len(w) == 110 and w[:60].mean() > 0 > w[60:].mean()
    # same distribution: small |MMD²|, p not small; seeded
    z = rng.normal(size=(120, 4))
    null = mmd2_test(z[:60], z[60:], n_permutations=500, n_resamples=50, seed=1)
    assert abs(null.value) < 0.02 and null.meta["p_value"] > 0.05
    assert (
        null.meta["p_value"]
        == mmd2_test(z[:60], z[60:], n_permutations=500, seed=1).meta["p_value"]
    )


def test_mmd2_fast_permutations_match_recomputation() -> None:
    """The kernel-sum shortcut gives the same permuted MMD² as recomputing on relabelled rows.

    Replays the test's random partitions (same seed and draw order; no subsampling draw since
    max_n=None) and counts hits with mmd2_unbiased directly.
    """
    rng0 = np.random.default_rng(5)
    x, y = rng0.normal(size=(7, 2)), rng0.normal(size=(6, 2)) + 0.7
    res = mmd2_test(x, y, n_permutations=300, max_n=None, n_resamples=0, seed=9)
    z = np.concatenate([x, y])
    sigma = res.meta["bandwidth"]
    observed = mmd2_unbiased(x, y, sigma)
    chosen = np.random.default_rng(9).random((300, 13)).argpartition(6, axis=1)[:, :7]
    hits = 0
    for c in chosen:
        mask = np.zeros(13, dtype=bool)
        mask[c] = True
        hits += mmd2_unbiased(z[mask], z[~mask], sigma) >= observed - 1e-12
    assert res.value == pytest.approx(observed, abs=1e-12)
    assert res.meta["p_value"] == pytest.approx((1 + hits) / 301)


def test_mmd2_subsamples_with_max_n() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(40, 3))
    res = mmd2_test(x, y, max_n=100, n_permutations=20, n_resamples=10)
    assert res.meta["n_x"] == 100 and res.meta["n_x_total"] == 300 and res.meta["n_y"] == 40
    assert len(set(res.meta["indices_x"])) == 100


def test_frechet_equal_covariances_is_squared_mean_distance() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T + np.eye(5)
    mu1, mu2 = np.array([1.0, 2, 3, 4, 5]), np.array([0.0, 2, 1, 4, 8])
    value, info = frechet_distance(mu1, cov, mu2, cov)
    assert value == pytest.approx(float(((mu1 - mu2) ** 2).sum()), abs=1e-8)
    assert value == pytest.approx(1 + 4 + 9, abs=1e-8)
    assert info["trace_method"] == "sqrtm"
    # diagonal covariances: closed form sum (sqrt(a) - sqrt(b))^2 on top of the mean term
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    value2, _ = frechet_distance(np.zeros(3), np.diag(d1), np.ones(3), np.diag(d2))
    assert value2 == pytest.approx(3.0 + ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum(), abs=1e-10)


def test_trace_sqrt_forms_agree() -> None:
    rng = np.random.default_rng(2)
    for n1, n2, dim in [(50, 60, 6), (8, 12, 20)]:  # full rank, then rank deficient
        x, y = rng.normal(size=(n1, dim)), rng.normal(size=(n2, dim)) * 2
        s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
        eig = _trace_sqrt_product_eig(s1, s2)
        svd = _trace_sqrt_factors(_cov_factor(x), _cov_factor(y))
        # rank deficient: the eigenvalue form adds sqrt(rounding noise) per null direction
        assert svd == pytest.approx(eig, rel=1e-6)
        res = frechet_test(x, y)
        assert res.value == pytest.approx(res.meta["value_svd"], rel=1e-5)


def test_frechet_test_ci_and_identical_samples() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(80, 4)), rng.normal(size=(70, 4)) + 0.5
    res = frechet_test(x, y)
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    assert res.meta["n_groups"] == [50, 50] and res.meta["jackknife_se"] > 0
    assert res.per_group["mean_term"] + res.per_group["covariance_term"] == pytest.approx(res.value)
    same = frechet_test(x, x.copy())
    assert same.value == pytest.approx(0.0, abs=1e-8)
    svd = frechet_test(x, y, trace_method="svd")
    assert svd.value == pytest.approx(res.value, rel=1e-8)
    tiny = frechet_test(x[:2], y[:3])  # too few rows to leave any out: no CI
    assert math.isnan(tiny.ci.low) and math.isfinite(tiny.value)


def test_frechet_bias_corrected_value_recovers_gaussian_truth() -> None:
    # x ~ N(0, I), y ~ N(0.1·1, 1.3² I) in 5-D: true distance = 5·0.01 + 5·(1 - 1.3)² = 0.5
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(300, 5)), rng.normal(size=(300, 5)) * 1.3 + 0.1
    res = frechet_test(x, y, trace_method="svd")
    assert res.meta["jackknife_bias"] > 0  # the plug-in value is biased upwards
    lo, hi = res.meta["bias_corrected_ci"]
    assert lo <= 0.5 <= hi
    assert res.meta["bias_corrected"] == pytest.approx(res.value - res.meta["jackknife_bias"])


@pytest.mark.parametrize(("n_x", "n_y", "dim"), [(40, 30, 3), (12, 9, 20)])
def test_frechet_jackknife_replicates_match_recomputation(n_x: int, n_y: int, dim: int) -> None:
    """Downdated (n > dim) and factor (n <= dim) replicates equal a from-scratch recomputation."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(n_x, dim)), rng.normal(size=(n_y, dim)) * 1.5 + 0.2
    reps_x, reps_y, g_x, g_y = _frechet_jackknife(x, y, 5, np.random.default_rng(7))
    replay = np.random.default_rng(7)
    groups_x = np.array_split(replay.permutation(n_x), 5)
    groups_y = np.array_split(replay.permutation(n_y), 5)

    def direct(a: np.ndarray, b: np.ndarray) -> float:
        return frechet_distance(
            a.mean(axis=0), np.cov(a, rowvar=False), b.mean(axis=0), np.cov(b, rowvar=False)
        )[0]

    assert (g_x, g_y) == (5, 5)
    for g, rep in zip(groups_x, reps_x, strict=True):
        assert rep == pytest.approx(direct(np.delete(x, g, axis=0), y), rel=1e-6, abs=1e-9)
    for g, rep in zip(groups_y, reps_y, strict=True):
        assert rep == pytest.approx(direct(x, np.delete(y, g, axis=0)), rel=1e-6, abs=1e-9)


# --------------------------------------------------------------------------------------------
# All factors; the real encoder
# --------------------------------------------------------------------------------------------

COOKING = [
    "Chop the onions and fry them in butter until golden.",
    "Simmer the tomato sauce for twenty minutes.",
    "Knead the dough and let it rise for an hour.",
    "Season the soup with salt, pepper and fresh thyme.",
    "Bake the bread at two hundred degrees.",
    "Whisk the eggs with sugar until pale and fluffy.",
    "Roast the chicken with garlic and lemon.",
    "Stir the risotto slowly while adding warm stock.",
    "Grate the cheese over the hot pasta.",
    "Marinate the beef overnight in soy sauce.",
    "Peel the potatoes and boil them until soft.",
    "Melt the chocolate gently over a pan of water.",
    "Slice the cucumbers thinly for the salad.",
    "Sprinkle the cake with powdered sugar before serving.",
    "Toast the spices in a dry pan to release their aroma.",
    "Fold the flour into the batter with a spatula.",
    "Steam the broccoli for five minutes.",
    "Add a splash of vinegar to brighten the stew.",
    "Grill the vegetables and drizzle them with olive oil.",
    "Let the pie cool before cutting it.",
]
SPORTS = [
    "The striker scored twice in the second half.",
    "The goalkeeper saved a penalty in extra time.",
    "The team won the championship after a tense final.",
    "She ran the marathon in under three hours.",
    "The coach substituted two defenders at half time.",
    "The referee showed a red card to the midfielder.",
    "The tennis match went to a fifth set tiebreak.",
    "The sprinter broke the national record in the hundred metres.",
    "The basketball team trailed by ten points at halftime.",
    "He hit a home run in the ninth inning.",
    "The cyclists climbed the mountain stage in heavy rain.",
    "The swimmer won gold in the butterfly final.",
    "The fans cheered as the captain lifted the trophy.",
    "The boxer knocked out his opponent in the third round.",
    "The rugby team scored a late try to win the match.",
    "The quarterback threw a touchdown pass in overtime.",
    "The golfer sank a long putt on the final hole.",
    "The hockey player was sent to the penalty box.",
    "The league table tightened after the weekend fixtures.",
    "The relay team dropped the baton on the last leg.",
]


def test_misalignment_factors_names_and_factor_selection() -> None:
    out = misalignment_factors(
        SYN_NEG_WOMEN,
        REAL_POS_WOMEN,
        axes=("gender", "age"),
        encoder=HashEncoder(dim=8),
        min_texts=1,
        n_resamples=50,
        n_permutations=50,
        mmd_n_resamples=10,
    )
    assert set(out) == {
        "values.gender.sentiment_gap",
        "group_data.gender.representation_jsd",
        "group_data.gender.cooccurrence_jsd",
        "values.age.sentiment_gap",
        "group_data.age.representation_jsd",
        "group_data.age.cooccurrence_jsd",
        "distribution.mmd2",
        "distribution.frechet",
    }
    assert out["values.gender.sentiment_gap"].per_group["female"] < 0
    assert out["distribution.mmd2"].meta["model_id"] == "hash-encoder"
    only = misalignment_factors(SYN_NEG_WOMEN, REAL_POS_WOMEN, factors=["group_data"])
    assert set(only) == {
        "group_data.gender.representation_jsd",
        "group_data.gender.cooccurrence_jsd",
    }
    with pytest.raises(ValueError):
        misalignment_factors(["a"], ["b"], factors=["vibes"])  # type: ignore[list-item]


def test_real_encoder_identical_corpora(encoder) -> None:
    e = encoder.encode(COOKING)
    mmd = mmd2_test(e, e.copy(), n_permutations=300, n_resamples=100)
    # identical samples: the unbiased estimate is -2(1 - mean off-diagonal k)/n, just below 0
    assert -0.2 < mmd.value <= 0 and mmd.meta["p_value"] > 0.5
    fr = frechet_test(e, e.copy())  # default sqrtm path, rank deficient (20 texts, 384 dims)
    assert fr.value == pytest.approx(0.0, abs=1e-3)
    assert fr.meta["value_svd"] == pytest.approx(0.0, abs=1e-8)


def test_real_encoder_cooking_vs_sports(encoder) -> None:
    out = misalignment_factors(
        COOKING,
        SPORTS,
        encoder=encoder,
        factors=["distribution"],
        n_permutations=500,
        mmd_n_resamples=50,
        frechet_trace="svd",
    )
    mmd, fr = out["distribution.mmd2"], out["distribution.frechet"]
    assert mmd.value > 0.05 and mmd.meta["p_value"] < 0.05
    assert mmd.ci is not None and mmd.ci.low <= mmd.value <= mmd.ci.high
    assert np.mean(mmd.per_sample[:20]) > 0 > np.mean(mmd.per_sample[20:])  # witness sides
    # the cross-corpus distance exceeds the within-corpus split (cooking vs cooking halves)
    halves = frechet_test(
        encoder.encode(COOKING[:10]), encoder.encode(COOKING[10:]), trace_method="svd"
    )
    sports_halves = frechet_test(
        encoder.encode(SPORTS[:10]), encoder.encode(COOKING[10:]), trace_method="svd"
    )
    assert fr.value > 0 and sports_halves.value > halves.value
    assert fr.ci is not None and fr.ci.low <= fr.value <= fr.ci.high
