"""Lexical metrics: hand-computed values on tiny corpora, CIs, errors, swap symmetry, speed."""

from __future__ import annotations

import math
import random
import time

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from synthbias.lexicon import UnknownAxisError, swap_gender
from synthbias.measure.lexical import (
    axis_associations,
    cooccurrence_bias,
    group_representation,
    intersection_representation,
    js_divergence,
    kl_divergence,
    measure_lexical,
    resampled_sums,
    stereotype_rate,
)
from synthbias.measure.result import MetricResult

FAST = {"n_resamples": 200, "seed": 0}


# =============================================================================== representation
CORPUS = ["He said she was late.", "She and her sister left.", "The man waved.", "No one here."]


def test_representation_shares_and_divergences_by_hand() -> None:
    res = group_representation(CORPUS, "gender", **FAST)
    assert set(res) == {
        "gender.representation",
        "gender.representation_jsd",
        "gender.representation_kl",
    }
    # male: He, man = 2; female: she, She, her, sister = 4
    p = (1 / 3, 2 / 3)
    tvd = res["gender.representation"]
    assert tvd.per_group == pytest.approx({"male": 1 / 3, "female": 2 / 3})
    assert tvd.value == pytest.approx(0.5 * (abs(p[0] - 0.5) + abs(p[1] - 0.5)))  # 1/6
    assert tvd.per_sample == [2.0, 3.0, 1.0, 0.0]
    assert tvd.meta["counts"] == {"male": 2, "female": 4} and tvd.n == 4
    m = (5 / 12, 7 / 12)  # (p + uniform) / 2
    jsd = 0.5 * (p[0] * math.log2(p[0] / m[0]) + p[1] * math.log2(p[1] / m[1])) + 0.5 * (
        0.5 * math.log2(0.5 / m[0]) + 0.5 * math.log2(0.5 / m[1])
    )
    assert res["gender.representation_jsd"].value == pytest.approx(jsd)
    kl = p[0] * math.log2(p[0] / 0.5) + p[1] * math.log2(p[1] / 0.5)
    assert res["gender.representation_kl"].value == pytest.approx(kl)
    for r in res.values():
        assert r.ci.low <= r.value <= r.ci.high


def test_representation_given_and_corpus_reference() -> None:
    given = group_representation(CORPUS, "gender", {"male": 1, "female": 3}, **FAST)
    assert given["gender.representation"].value == pytest.approx(1 / 12)
    assert given["gender.representation"].meta["reference"] == {"male": 0.25, "female": 0.75}
    corpus = group_representation(CORPUS, "gender", ["He left.", "She left."], **FAST)
    assert corpus["gender.representation_jsd"].value == pytest.approx(
        group_representation(CORPUS, "gender", **FAST)["gender.representation_jsd"].value
    )
    assert corpus["gender.representation"].meta["reference_kind"] == "corpus"
    inf = group_representation(CORPUS, "gender", {"male": 1}, **FAST)
    assert inf["gender.representation_kl"].value == math.inf
    with pytest.raises(KeyError, match="not compared"):
        group_representation(CORPUS, "gender", {"neutral": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        group_representation(CORPUS, "gender", {"male": -1.0, "female": 1.0})


def test_representation_many_groups_matches_scipy() -> None:
    texts = ["A Muslim and a Christian met.", "The Muslims prayed.", "Nothing."]
    res = group_representation(texts, "religion", **FAST)
    r = res["religion.representation_jsd"]
    assert len(r.per_group) == 8 and r.per_group["muslim"] == pytest.approx(2 / 3)
    p = np.array([r.per_group[g] for g in r.meta["groups"]])
    assert r.value == pytest.approx(jensenshannon(p, np.full(8, 1 / 8), base=2) ** 2)
    assert r.difference == pytest.approx(2 / 3)


def test_representation_without_mentions_is_nan() -> None:
    res = group_representation(["Nothing here.", "Still nothing."], "gender", **FAST)
    assert math.isnan(res["gender.representation_jsd"].value)
    assert res["gender.representation"].meta["n_mentions"] == 0


def test_divergence_helpers() -> None:
    p, q = np.array([0.2, 0.8, 0.0]), np.array([0.5, 0.25, 0.25])
    assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert js_divergence(np.array([1.0, 0]), np.array([0, 1.0])) == pytest.approx(1.0)
    assert kl_divergence(p, q) == pytest.approx(0.2 * math.log2(0.4) + 0.8 * math.log2(3.2))
    assert js_divergence(np.array([0.0, 0.0]), q[:2]) != js_divergence(q[:2], q[:2])  # nan


def test_ci_contains_value_on_a_larger_corpus() -> None:
    rng = random.Random(1)
    words = ["he", "she", "her", "man", "woman", "the", "nurse", "left", "engineer", "and"]
    texts = [" ".join(rng.choices(words, k=8)) + "." for _ in range(400)]
    res = measure_lexical(texts, axes=["gender"], n_resamples=300)
    for r in res.values():
        assert isinstance(r, MetricResult)
        assert r.ci.low <= r.value <= r.ci.high, r.name
        assert r.ci.high - r.ci.low < 0.5


# =============================================================================== co-occurrence
COOC = [
    "He is a nurse.",
    "She is a nurse. He is an engineer.",
    "She is kind.",
    "He is an engineer.",
]


def test_cooccurrence_bias_add_one_by_hand() -> None:
    res = cooccurrence_bias(COOC, "gender", ["nurse", "engineer", "kind"], **FAST)
    # sentence windows: nurse m1 f1, engineer m2, kind f1 -> N_m = 3, N_f = 2, V = 3, k = 1
    expected = {
        "nurse": math.log((2 / 6) / (2 / 5)),
        "engineer": math.log((3 / 6) / (1 / 5)),
        "kind": math.log((1 / 6) / (2 / 5)),
    }
    r = res["gender.cooccurrence_bias"]
    assert r.meta["counts"] == {
        "nurse": {"male": 1, "female": 1},
        "engineer": {"male": 2},
        "kind": {"female": 1},
    }
    assert r.meta["per_attribute"]["male_vs_female"] == pytest.approx(expected)
    assert r.value == pytest.approx(np.mean(np.abs(list(expected.values()))))
    signed = res["gender.cooccurrence_bias_signed"]
    assert signed.value == pytest.approx(np.mean(list(expected.values())))
    assert signed.per_group == pytest.approx({"male_vs_female": signed.value})
    assert r.per_sample == [1.0, 2.0, 1.0, 1.0]
    for m in res.values():
        assert m.ci.low <= m.value <= m.ci.high


def test_cooccurrence_smoothing_min_count_and_sign_convention() -> None:
    k = 0.5
    res = cooccurrence_bias(COOC, "gender", ["nurse", "engineer", "kind"], smoothing=k, **FAST)
    got = res["gender.cooccurrence_bias"].meta["per_attribute"]["male_vs_female"]["engineer"]
    assert got == pytest.approx(math.log(((2 + k) / (3 + 3 * k)) / ((0 + k) / (2 + 3 * k))))
    res = cooccurrence_bias(COOC, "gender", ["nurse", "engineer", "kind"], min_count=2, **FAST)
    per = res["gender.cooccurrence_bias"].meta["per_attribute"]["male_vs_female"]
    assert per["kind"] is None and per["nurse"] is not None
    assert res["gender.cooccurrence_bias"].meta["n_attributes_used"] == {"male_vs_female": 2}
    attrs = ["engineer", "kind"]
    mf = cooccurrence_bias(COOC, "gender", attrs, **FAST)["gender.cooccurrence_bias_signed"]
    fm = cooccurrence_bias(COOC, "gender", attrs, groups=["female", "male"], **FAST)
    fm = fm["gender.cooccurrence_bias_signed"]  # B&B's sign: positive = leans female
    assert fm.meta["per_attribute"]["female_vs_male"]["engineer"] < 0
    assert fm.value == pytest.approx(-mf.value)
    one = cooccurrence_bias(COOC, "gender", ["engineer"], **FAST)  # relative: V = 1 -> 0
    assert one["gender.cooccurrence_bias"].value == 0
    with pytest.raises(ValueError, match="smoothing"):
        cooccurrence_bias(COOC, "gender", ["nurse"], smoothing=0)


def test_cooccurrence_windows() -> None:
    text = ["She is a nurse. He is an engineer."]
    by_text = cooccurrence_bias(text, "gender", ["nurse", "engineer"], window="text", **FAST)
    assert by_text["gender.cooccurrence_bias"].meta["counts"] == {
        "nurse": {"male": 1, "female": 1},
        "engineer": {"male": 1, "female": 1},
    }
    # token positions: She 0, nurse 3, He 4, engineer 7
    near = cooccurrence_bias(text, "gender", ["nurse", "engineer"], window=1, **FAST)
    assert near["gender.cooccurrence_bias"].meta["counts"] == {"nurse": {"male": 1}}
    far = cooccurrence_bias(text, "gender", ["nurse", "engineer"], window=3, **FAST)
    assert far["gender.cooccurrence_bias"].meta["counts"] == {
        "nurse": {"male": 1, "female": 1},
        "engineer": {"male": 1},
    }
    # a title abbreviation does not end the sentence; a newline does
    mr = cooccurrence_bias(["Mr. Lee is a nurse.\nShe left."], "gender", ["nurse"], **FAST)
    assert mr["gender.cooccurrence_bias"].meta["counts"] == {"nurse": {"male": 1}}
    with pytest.raises(ValueError, match="window"):
        cooccurrence_bias(text, "gender", ["nurse"], window=0)


def test_cooccurrence_many_groups_rest_and_reference() -> None:
    texts = ["The Christian was kind.", "The Muslim was kind.", "The Jewish family was rich."]
    groups = ["christian", "muslim", "jewish"]
    rest = cooccurrence_bias(texts, "religion", ["kind", "rich"], groups=groups, **FAST)
    r = rest["religion.cooccurrence_bias"]
    assert set(r.per_group) == set(groups)
    # christian vs rest: a = (kind 1, rich 0), b = (kind 1, rich 1); V = 2, k = 1
    assert r.meta["per_attribute"]["christian"] == pytest.approx(
        {"kind": math.log((2 / 3) / (2 / 4)), "rich": math.log((1 / 3) / (2 / 4))}
    )
    ref = cooccurrence_bias(
        texts, "religion", ["kind", "rich"], groups=groups, contrast="reference",
        reference_group="christian", **FAST,
    )  # fmt: skip
    per = ref["religion.cooccurrence_bias"].meta["per_attribute"]
    assert set(per) == {"muslim", "jewish"}
    assert per["muslim"]["kind"] == pytest.approx(0.0)
    assert per["muslim"]["rich"] is None  # never seen with muslim or christian: left out
    assert per["jewish"] == pytest.approx({"kind": math.log(0.5), "rich": math.log(2)})
    with pytest.raises(ValueError, match="exactly two"):
        cooccurrence_bias(texts, "religion", ["kind"], groups=groups, contrast="pair")


def test_cooccurrence_attribute_spec_and_errors() -> None:
    res = cooccurrence_bias(
        ["The nurses said he left.", "A nurse said she left."],
        "gender",
        {"nurse": ["nurse", "nurses"]},
        **FAST,
    )
    assert res["gender.cooccurrence_bias"].meta["counts"] == {"nurse": {"male": 1, "female": 1}}
    with pytest.raises(ValueError, match="also a term"):
        cooccurrence_bias(COOC, "gender", ["nurse", "mother"])
    with pytest.raises(ValueError, match="attributes="):
        cooccurrence_bias(COOC, "religion")  # no associations for religion
    default = cooccurrence_bias(COOC, "gender", **FAST)  # occupations
    assert default["gender.cooccurrence_bias"].meta["n_attributes"] > 50


# =============================================================================== stereotype rate
ASSOC = {"christian": ["bakery"], "muslim": ["library"]}  # hand-made test table
STEREO = [
    "The Christian opened a bakery.",  # stereotypical
    "The Muslim opened a bakery.",  # anti
    "The Muslim visited the library.",  # stereotypical
    "The library was closed.",  # no group: not eligible
    "A Christian and a Muslim ran the library.",  # both: stereotypical and anti
]


def test_stereotype_rate_with_a_hand_made_association_table() -> None:
    r = stereotype_rate(STEREO, "religion", ASSOC, **FAST)
    assert r.name == "religion.stereotype_rate"
    assert r.value == pytest.approx(3 / 4)
    assert r.meta["n_eligible"] == 4 and r.meta["n_mixed"] == 1
    assert r.meta["anti_rate"] == pytest.approx(2 / 4)
    assert r.per_group == pytest.approx({"christian": 1 / 2, "muslim": 1.0})
    assert r.per_sample[:3] == [1.0, 0.0, 1.0] and math.isnan(r.per_sample[3])
    assert r.ci.low <= r.value <= r.ci.high
    with pytest.raises(ValueError, match="associations"):
        stereotype_rate(STEREO, "religion")
    with pytest.raises(KeyError, match="no group"):
        stereotype_rate(STEREO, "religion", {"pastafarian": ["pasta"]})


def test_stereotype_rate_gender_defaults_to_occupation_codes() -> None:
    attrs, assoc = axis_associations("gender")
    assert "nurse" in assoc["female"] and "engineer" in assoc["male"]
    texts = ["The nurse said she was tired.", "The engineer said she was tired.", "He left."]
    r = stereotype_rate(texts, "gender", **FAST)
    assert r.value == pytest.approx(0.5)
    assert r.per_group == pytest.approx({"male": 0.0, "female": 1.0})


# =============================================================================== intersections
def test_intersection_counts_shares_and_min_count() -> None:
    texts = [
        "A Muslim woman.",
        "A Muslim woman.",
        "A Christian man.",
        "A Muslim man and a Christian woman.",
        "A man.",
    ]
    r = intersection_representation(texts, "gender", "religion", min_count=2, **FAST)
    assert r.name == "gender+religion.intersection"
    assert r.meta["counts"] == {
        "male+christian": 1 + 1,
        "male+muslim": 1,
        "female+christian": 1,
        "female+muslim": 3,
    }
    assert r.per_group["female+muslim"] == pytest.approx(3 / 7)
    assert r.per_group["male+christian"] == pytest.approx(2 / 7)
    assert math.isnan(r.per_group["male+muslim"]) and math.isnan(r.per_group["male+jewish"])
    joint = np.array([[2, 1], [1, 3]]) / 7  # rows male, female; cols christian, muslim
    expected = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    jsd = jensenshannon(joint.ravel(), expected.ravel(), base=2) ** 2
    assert r.value == pytest.approx(jsd)
    assert r.per_sample == [1.0, 1.0, 1.0, 4.0, 0.0]
    with pytest.raises(ValueError, match="different axes"):
        intersection_representation(texts, "gender", "gender")


# =============================================================================== all at once
def test_measure_lexical_names_and_errors() -> None:
    texts = CORPUS + ["The nurse said she was a Muslim.", "An old man and a young Christian."]
    res = measure_lexical(
        texts,
        axes=["gender", "religion"],
        reference={"gender": {"male": 1, "female": 1}},
        associations={"religion": ASSOC},
        intersections=[("gender", "religion")],
        n_resamples=100,
    )
    for name in (
        "gender.representation",
        "gender.representation_jsd",
        "gender.representation_kl",
        "gender.cooccurrence_bias",
        "gender.cooccurrence_bias_signed",
        "gender.stereotype_rate",
        "religion.representation_jsd",
        "religion.cooccurrence_bias",
        "religion.stereotype_rate",
        "gender+religion.intersection",
    ):
        assert name in res and res[name].name == name
    assert "age.representation" not in res
    all_axes = measure_lexical(texts, n_resamples=50)
    assert "socioeconomic.representation_jsd" in all_axes
    assert "religion.cooccurrence_bias" not in all_axes  # no associations or attributes
    with pytest.raises(UnknownAxisError, match="valid axes"):
        measure_lexical(texts, axes=["gender", "hair_colour"])
    with pytest.raises(UnknownAxisError, match="valid axes"):
        group_representation(texts, "hair_colour")
    with pytest.raises(KeyError, match="not axes"):
        measure_lexical(texts, axes=["gender"], reference={"male": 1.0, "female": 1.0})


# =============================================================================== bootstrap helper
def test_resampled_sums_matches_naive_bootstrap_distribution() -> None:
    rng = np.random.default_rng(0)
    X = rng.poisson(0.3, size=(1000, 3)).astype(float)  # few distinct rows: multinomial
    Y = rng.random((500, 2))  # all distinct: index path
    for M in (X, sp.csr_matrix(X), Y):
        S = resampled_sums(M, 3000, seed=1)
        M = M.toarray() if sp.issparse(M) else M
        naive = M[rng.integers(0, len(M), (3000, len(M)))].sum(1)
        assert S.shape == (3000, M.shape[1])
        np.testing.assert_allclose(S.mean(0), naive.mean(0), rtol=0.01)
        np.testing.assert_allclose(S.std(0), naive.std(0), rtol=0.1)
    assert (resampled_sums(np.zeros((5, 2)), 10) == 0).all()


# =============================================================================== symmetry
MALE = ["he", "man", "father", "brother", "son", "boy"]
FEMALE = ["she", "woman", "mother", "sister", "daughter", "girl"]
ATTRS = ["nurse", "engineer", "kind", "strong"]
FILL = ["the", "a", "was", "and", "today"]
MIRROR = dict(zip(MALE, FEMALE, strict=True)) | dict(zip(FEMALE, MALE, strict=True))


def _mirror_word(w: str) -> str:
    stem, dot = (w[:-1], ".") if w.endswith(".") else (w, "")
    return MIRROR.get(stem, stem) + dot


sentence = st.lists(st.sampled_from(MALE + FEMALE + ATTRS + FILL), min_size=1, max_size=8)
text = st.lists(sentence, min_size=1, max_size=3).map(
    lambda ss: " ".join(" ".join(s) + "." for s in ss)
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(text, min_size=1, max_size=12))
def test_gender_swap_mirrors_lexical_scores(corpus: list[str]) -> None:
    swapped = [swap_gender(t) for t in corpus]
    by_hand = [" ".join(_mirror_word(w) for w in t.split(" ")) for t in corpus]
    assert swapped == by_hand  # the swap is exact on this vocabulary
    kw = {"n_resamples": 20}
    a = group_representation(corpus, "gender", **kw)["gender.representation_jsd"]
    b = group_representation(swapped, "gender", **kw)["gender.representation_jsd"]
    if a.meta["n_mentions"]:
        assert a.per_group["male"] == pytest.approx(b.per_group["female"])
        assert a.per_group["female"] == pytest.approx(b.per_group["male"])
        assert a.value == pytest.approx(b.value)
    ca = cooccurrence_bias(corpus, "gender", ATTRS, **kw)
    cb = cooccurrence_bias(swapped, "gender", ATTRS, **kw)
    sa, sb = ca["gender.cooccurrence_bias_signed"], cb["gender.cooccurrence_bias_signed"]
    if not math.isnan(sa.value):
        assert sa.value == pytest.approx(-sb.value, abs=1e-12)
        pa = sa.meta["per_attribute"]["male_vs_female"]
        pb = sb.meta["per_attribute"]["male_vs_female"]
        for w in ATTRS:
            assert (pa[w] is None) == (pb[w] is None)
            if pa[w] is not None:
                assert pa[w] == pytest.approx(-pb[w], abs=1e-12)
        assert ca["gender.cooccurrence_bias"].value == pytest.approx(
            cb["gender.cooccurrence_bias"].value
        )


# =============================================================================== speed
def test_representation_speed_smoke() -> None:
    rng = random.Random(0)
    words = (
        "the a nurse engineer said that he she they went to market with his her friend Mary "
        "John today and people old".split()
    )
    texts = [" ".join(rng.choices(words, k=rng.randint(8, 20))) + "." for _ in range(50_000)]
    group_representation(texts[:100], "gender")  # compile the matcher
    start = time.perf_counter()
    res = group_representation(texts, "gender", n_resamples=1000)
    rate = len(texts) / (time.perf_counter() - start)
    assert res["gender.representation_jsd"].n == 50_000
    assert rate > 8_000, f"{rate:,.0f} texts/s"  # target is >= 50k/s on an idle core
