"""Tests for synthbias.measure.weat: effect size and permutation p-value on hand-made 2-D vectors,
properties on random vectors, SEAT template handling with a fake encoder, and the Caliskan et al.
(2017) tests from WEFE's WEAT.json on the real (bundled, offline) all-MiniLM-L6-v2.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEncoder

from synthbias.measure.weat import (
    CALISKAN_TESTS,
    WeatTest,
    fill_template,
    load_seat_templates,
    load_word_sets,
    seat,
    weat,
    weat_effect_size,
    weat_from_embeddings,
    weat_permutation_pvalue,
)

# --------------------------------------------------------------------------------------------
# (a) Hand-computed case
# --------------------------------------------------------------------------------------------
# A = {e1}, B = {e2}; for unit w = (c, s), s(w, A, B) = c - s.
# X = {(1, 0), (0.8, 0.6)} -> s = 1, 0.2;  Y = {(0, 1), (0.6, 0.8)} -> s = -1, -0.2.
# mean_X - mean_Y = 0.6 - (-0.6) = 1.2; the four s have mean 0 and sum of squares 2.08, so the
# sample std is sqrt(2.08 / 3) and d = 1.2 / sqrt(2.08 / 3) = 1.441153...
# Partitions of {1, .2, -1, -.2} into 2 + 2 have X-sums 1.2 (observed), .8, 0, 0, -.8, -1.2:
# only the observed one reaches 1.2, so the exact one-sided p is 1/6.
HX = np.array([[1.0, 0.0], [0.8, 0.6]])
HY = np.array([[0.0, 1.0], [0.6, 0.8]])
HA = np.array([[1.0, 0.0]])
HB = np.array([[0.0, 1.0]])


def test_hand_computed_effect_size_and_p_value() -> None:
    res = weat_from_embeddings(HX, HY, HA, HB, n_resamples=200)
    assert res.value == pytest.approx(1.2 / math.sqrt(2.08 / 3), abs=1e-12)
    assert res.value == pytest.approx(1.4411533842457842, abs=1e-12)
    assert res.meta["p_value"] == pytest.approx(1 / 6)
    assert res.meta["exact"] is True and res.meta["n_permutations"] == 6
    assert res.per_sample == pytest.approx([1.0, 0.2, -1.0, -0.2])
    assert res.per_group == pytest.approx({"X": 0.6, "Y": -0.6})
    assert res.meta["target_set"] == ["X", "X", "Y", "Y"]
    assert res.n == 4


def test_hand_computed_population_std_and_scale_invariance() -> None:
    # ddof=0: std = sqrt(2.08 / 4); vectors rescaled (cosine ignores length), A given twice.
    res = weat_from_embeddings(
        HX * [[3.0], [0.5]], HY * 7.0, np.vstack([HA, 2 * HA]), HB, ddof=0, n_resamples=50
    )
    assert res.value == pytest.approx(1.2 / math.sqrt(2.08 / 4), abs=1e-12)
    assert weat_effect_size([1, 0.2], [-1, -0.2], ddof=0) == pytest.approx(res.value)


def test_p_value_alternatives_on_hand_case() -> None:
    sx, sy = [1.0, 0.2], [-1.0, -0.2]
    assert weat_permutation_pvalue(sx, sy, alternative="less")[0] == pytest.approx(1.0)
    # two-sided: |stat| >= 1.2 for the observed partition and its mirror image
    assert weat_permutation_pvalue(sx, sy, alternative="two-sided")[0] == pytest.approx(2 / 6)
    with pytest.raises(ValueError):
        weat_permutation_pvalue(sx, sy, alternative="bigger")  # type: ignore[arg-type]


def test_degenerate_inputs() -> None:
    assert math.isnan(weat_effect_size([0.5, 0.5], [0.5, 0.5]))  # zero spread
    with pytest.raises(ValueError):
        weat_from_embeddings(HX, HY, HA, np.zeros((1, 2)))  # zero vector: no cosine
    with pytest.raises(ValueError):
        weat_from_embeddings(HX[:1], HY[:1], HA, HB)  # two targets, ddof=1: no spread


# --------------------------------------------------------------------------------------------
# Properties on random vectors
# --------------------------------------------------------------------------------------------


def _random_sets(seed: int, nx: int = 6, ny: int = 6, na: int = 5, nb: int = 4, dim: int = 10):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(nx, dim)) + 0.4
    return (
        x,
        rng.normal(size=(ny, dim)),
        rng.normal(size=(na, dim)) + 0.4,
        rng.normal(size=(nb, dim)),
    )


def _brute_force_p(s_x: Sequence[float], s_y: Sequence[float]) -> float:
    """Caliskan's test by enumeration in plain Python (>= so the observed partition counts)."""
    s = list(s_x) + list(s_y)
    nx, ny = len(s_x), len(s_y)
    observed = sum(s_x) / nx - sum(s_y) / ny
    hits = total = 0
    for chosen in itertools.combinations(range(len(s)), nx):
        xs = [s[i] for i in chosen]
        ys = [s[i] for i in range(len(s)) if i not in chosen]
        total += 1
        hits += sum(xs) / nx - sum(ys) / ny >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_p_matches_brute_force_and_sampled_p(seed: int) -> None:
    x, y, a, b = _random_sets(seed, nx=6, ny=5)
    res = weat_from_embeddings(x, y, a, b, n_resamples=50)
    s = res.per_sample
    assert res.meta["exact"] and res.meta["n_permutations"] == math.comb(11, 6)
    assert res.meta["p_value"] == pytest.approx(_brute_force_p(s[:6], s[6:]), abs=1e-12)
    p_mc, n_mc, exact = weat_permutation_pvalue(s[:6], s[6:], n_permutations=20_000, exact_max=0)
    assert not exact and n_mc == 20_000
    assert p_mc == pytest.approx(res.meta["p_value"], abs=0.012)
    # seeded: the same seed gives the same sampled p
    assert weat_permutation_pvalue(s[:6], s[6:], n_permutations=500, exact_max=0, seed=3) == (
        weat_permutation_pvalue(s[:6], s[6:], n_permutations=500, exact_max=0, seed=3)
    )


def test_swapping_targets_or_attributes_flips_the_sign() -> None:
    x, y, a, b = _random_sets(5)
    d = weat_from_embeddings(x, y, a, b, n_resamples=50).value
    assert weat_from_embeddings(y, x, a, b, n_resamples=50).value == pytest.approx(-d)
    assert weat_from_embeddings(x, y, b, a, n_resamples=50).value == pytest.approx(-d)
    p_greater = weat_from_embeddings(x, y, a, b, n_resamples=50).meta["p_value"]
    p_swapped = weat_from_embeddings(y, x, a, b, n_resamples=50, alternative="less").meta["p_value"]
    assert p_swapped == pytest.approx(p_greater)


@pytest.mark.parametrize("resample_attributes", [False, True])
def test_bootstrap_ci_contains_value_and_is_seeded(resample_attributes: bool) -> None:
    x, y, a, b = _random_sets(7, nx=10, ny=10)
    kw = {"n_resamples": 500, "resample_attributes": resample_attributes, "seed": 11}
    res = weat_from_embeddings(x, y, a, b, **kw)
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    assert res.ci == weat_from_embeddings(x, y, a, b, **kw).ci


def test_large_sets_use_seeded_random_partitions() -> None:
    x, y, a, b = _random_sets(8, nx=15, ny=15)
    res = weat_from_embeddings(x, y, a, b, n_permutations=2000, n_resamples=50, seed=4)
    assert res.meta["exact"] is False and res.meta["n_permutations"] == 2000
    assert 1 / 2001 <= res.meta["p_value"] <= 1


# --------------------------------------------------------------------------------------------
# WEAT / SEAT through an encoder (fake: no model)
# --------------------------------------------------------------------------------------------


def test_weat_with_encoder_matches_weat_on_its_vectors() -> None:
    enc = HashEncoder()
    words = (["rose", "tulip", "lily"], ["ant", "wasp", "flea"], ["joy", "love"], ["war", "pain"])
    res = weat(*words, encoder=enc, names=("flowers", "insects", "pleasant", "unpleasant"))
    vecs = [enc.encode(ws) for ws in words]
    ref = weat_from_embeddings(*vecs, n_resamples=10)
    assert res.value == pytest.approx(ref.value, abs=1e-12)
    assert res.meta["p_value"] == pytest.approx(ref.meta["p_value"])
    assert res.meta["targets"] == ["rose", "tulip", "lily", "ant", "wasp", "flea"]
    assert res.meta["model_id"] == "hash-encoder" and res.meta["method"] == "WEAT"
    assert res.name == "weat.flowers_vs_insects.pleasant_vs_unpleasant"
    assert set(res.per_group) == {"flowers", "insects"}


def test_plain_callable_is_accepted_as_encoder() -> None:
    enc = HashEncoder()
    res = weat(["a1", "a2"], ["b1", "b2"], ["c"], ["d"], encoder=enc.encode, n_resamples=10)
    assert math.isfinite(res.value)


def test_seat_templates_and_aggregation() -> None:
    enc = HashEncoder()
    tmpl = ["This is {w}.", "{w} is here."]
    test = WeatTest(("rose", "lily"), ("ant", "flea"), ("joy",), ("war",), "F", "I", "P", "U")
    per_sentence = seat(test, encoder=enc, templates=tmpl, aggregate="none", n_resamples=10)
    assert per_sentence.n == 8 and len(per_sentence.per_sample) == 8
    assert per_sentence.meta["targets"][:2] == ["This is rose.", "Rose is here."]
    assert per_sentence.meta["units"] == "sentences"
    assert per_sentence.name.startswith("seat.F_vs_I")
    per_word = seat(test, encoder=enc, templates=tmpl, aggregate="mean", n_resamples=10)
    assert per_word.n == 4 and per_word.meta["targets"] == ["rose", "lily", "ant", "flea"]
    # mean aggregation: each word's vector is the mean of its unit template embeddings
    rows = {
        w: enc.encode([fill_template(t, w) for t in tmpl]).mean(axis=0)
        for w in ["rose", "lily", "ant", "flea", "joy", "war"]
    }
    ref = weat_from_embeddings(
        np.stack([rows["rose"], rows["lily"]]),
        np.stack([rows["ant"], rows["flea"]]),
        rows["joy"][None],
        rows["war"][None],
        n_resamples=10,
    )
    assert per_word.value == pytest.approx(ref.value, abs=1e-12)


def test_packaged_templates_and_validation() -> None:
    tmpl = load_seat_templates()
    assert len(tmpl) >= 5 and all("{w}" in t for t in tmpl)
    assert fill_template("{w} is here.", "aster") == "Aster is here."
    assert fill_template("This is {w}.", "aster") == "This is aster."
    enc = HashEncoder()
    with pytest.raises(ValueError):
        weat(["a", "b"], ["c", "d"], ["e"], ["f"], encoder=enc, templates=["no placeholder"])
    with pytest.raises(ValueError):
        weat(["a", "b"], ["c", "d"], [], ["f"], encoder=enc)
    with pytest.raises(TypeError):
        weat("ab", ["c", "d"], ["e"], ["f"], encoder=enc)


# --------------------------------------------------------------------------------------------
# (b), (c) The real encoder on WEFE's copy of the Caliskan et al. word sets
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weat_sets(benchmarks: Path) -> dict[str, list[str]]:
    return load_word_sets(benchmarks / "weat_wefe" / "WEAT.json")


def test_caliskan_test_names_exist_in_weat_json(weat_sets: dict[str, list[str]]) -> None:
    """Each named test resolves to the stimulus sets of Caliskan et al. (2017, supplement):
    their sizes (|X|, |Y|, |A|, |B|) and first words, and X, Y disjoint."""
    expected = {
        "weat1_flowers_insects": ((25, 25, 25, 25), "aster", "caress"),
        "weat2_instruments_weapons": ((25, 25, 25, 25), "bagpipe", "caress"),
        "weat3_ea_aa_names": ((32, 32, 25, 25), "Adam", "caress"),
        "weat4_ea_aa_names_bertrand": ((18, 18, 25, 25), "Brad", "caress"),
        "weat5_ea_aa_names_nosek": ((18, 18, 8, 8), "Brad", "joy"),
        "weat6_career_family": ((8, 8, 8, 8), "John", "executive"),
        "weat7_math_arts": ((8, 8, 8, 8), "math", "male"),
        "weat8_science_arts": ((8, 8, 8, 8), "science", "brother"),
        "weat9_mental_physical_disease": ((6, 6, 7, 7), "sad", "impermanent"),
        "weat10_young_old_names": ((8, 8, 8, 8), "Tiffany", "joy"),
    }
    assert set(CALISKAN_TESTS) == set(expected)
    for name, keys in CALISKAN_TESTS.items():
        t = WeatTest.from_sets(weat_sets, *keys)
        sizes, first_x, first_a = expected[name]
        assert (len(t.x), len(t.y), len(t.a), len(t.b)) == sizes, name
        assert (t.x[0], t.a[0]) == (first_x, first_a), name
        assert not set(t.x) & set(t.y), name
    with pytest.raises(KeyError, match="not found"):
        WeatTest.from_sets(weat_sets, "flowers", "no_such_set", "pleasant_5", "unpleasant_5a")


# Measured with all-MiniLM-L6-v2 (word-level WEAT, ddof=1; Caliskan et al.'s GloVe d in
# brackets): weat1 flowers/insects d=+1.24, p<1e-4 (1.50); weat2 instruments/weapons d=+1.51,
# p<1e-4 (1.53); weat6 career/family d=+1.02, exact p=0.016 (1.81); weat7 math/arts d=+0.94,
# exact p=0.027 (1.06). The assertions keep a margin below those numbers.
@pytest.mark.parametrize(
    ("test_name", "min_d", "max_p"),
    [
        ("weat1_flowers_insects", 0.8, 0.01),
        ("weat2_instruments_weapons", 1.0, 0.01),
        ("weat6_career_family", 0.5, 0.05),
        ("weat7_math_arts", 0.5, 0.05),
    ],
)
def test_real_encoder_reproduces_caliskan_directions(
    weat_sets: dict[str, list[str]], encoder, test_name: str, min_d: float, max_p: float
) -> None:
    test = WeatTest.from_sets(weat_sets, *CALISKAN_TESTS[test_name])
    res = weat(test, encoder=encoder, n_permutations=5000, n_resamples=500)
    assert min_d < res.value < 2.0  # |d| is bounded near 2 for these set sizes
    assert res.meta["p_value"] < max_p
    assert res.ci is not None and res.ci.low <= res.value <= res.ci.high
    assert res.ci.low > 0
    assert len(res.per_sample) == len(test.x) + len(test.y)


def test_real_encoder_seat_career_family(weat_sets: dict[str, list[str]], encoder) -> None:
    # Measured: SEAT (7 packaged templates, per-word mean) d=+1.22, exact p=0.004.
    test = WeatTest.from_sets(weat_sets, *CALISKAN_TESTS["weat6_career_family"])
    res = seat(test, encoder=encoder, n_resamples=300)
    assert res.meta["method"] == "SEAT" and res.meta["exact"]
    assert 0.5 < res.value < 2.0
    assert res.meta["p_value"] < 0.05


def test_effect_size_matches_independent_loop_implementation(
    weat_sets: dict[str, list[str]], encoder
) -> None:
    """(c) Caliskan's formula written out with Python loops on the encoder's raw vectors."""
    x_name, y_name, a_name, b_name = CALISKAN_TESTS["weat6_career_family"]
    vec = {}
    words = weat_sets[x_name] + weat_sets[y_name] + weat_sets[a_name] + weat_sets[b_name]
    for w, v in zip(words, encoder.encode(words), strict=True):
        vec[w] = [float(c) for c in v]

    def cos(u: list[float], v: list[float]) -> float:
        dot = sum(p * q for p, q in zip(u, v, strict=True))
        return dot / (math.sqrt(sum(p * p for p in u)) * math.sqrt(sum(q * q for q in v)))

    def s(w: str) -> float:
        a = [cos(vec[w], vec[t]) for t in weat_sets[a_name]]
        b = [cos(vec[w], vec[t]) for t in weat_sets[b_name]]
        return sum(a) / len(a) - sum(b) / len(b)

    sx = [s(w) for w in weat_sets[x_name]]
    sy = [s(w) for w in weat_sets[y_name]]
    allv = sx + sy
    mean = sum(allv) / len(allv)
    std = math.sqrt(sum((v - mean) ** 2 for v in allv) / (len(allv) - 1))
    d_loop = (sum(sx) / len(sx) - sum(sy) / len(sy)) / std

    res = weat(
        weat_sets[x_name],
        weat_sets[y_name],
        weat_sets[a_name],
        weat_sets[b_name],
        encoder=encoder,
        n_resamples=10,
    )
    assert res.value == pytest.approx(d_loop, abs=1e-6)
    assert res.per_sample == pytest.approx(allv, abs=1e-6)
