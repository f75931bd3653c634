"""Any-axis embedding anchors: a fake encoder with known geometry, then the real encoder."""

from __future__ import annotations

import pytest
from fakes import KeywordEncoder

from synthbias.measure.embedding_axes import EmbeddingAxisScorer


def _keywords() -> KeywordEncoder:
    """2-D toy: texts/terms naming Christians or a church point along x, Muslims/mosques y."""
    return KeywordEncoder([("christ", "church"), ("muslim", "mosque")])


def test_toy_geometry_and_ci() -> None:
    sc = EmbeddingAxisScorer(_keywords(), "religion", groups=["christian", "muslim"])
    texts = ["They went to church."] * 3 + ["A quiet evening."]
    res = sc.measure(texts, n_resamples=200)["anchor_spread"]
    assert res.per_group["christian"] > 0 > res.per_group["muslim"]
    assert res.value == pytest.approx(res.per_group["christian"] - res.per_group["muslim"])
    assert res.ci.low <= res.value <= res.ci.high and len(res.per_sample) == 4
    swapped = sc.measure(["They went to the mosque."] * 3 + ["A quiet evening."], 200)
    assert swapped["anchor_spread"].per_group["muslim"] > 0


def test_unknown_axis() -> None:
    with pytest.raises(KeyError):
        EmbeddingAxisScorer(_keywords(), "colour")


def test_real_encoder_religion_axis(encoder) -> None:
    sc = EmbeddingAxisScorer(encoder, "religion")
    mosque = sc.measure(["The Muslim family prayed at the mosque on Friday."] * 2, 100)
    church = sc.measure(["The Christian family prayed at church on Sunday."] * 2, 100)
    m, c = mosque["anchor_spread"].per_group, church["anchor_spread"].per_group
    assert m["muslim"] > m["christian"] and c["christian"] > c["muslim"]
    assert max(m, key=m.get) == "muslim" and max(c, key=c.get) == "christian"


def test_measure_corpus_embedding_on_any_axis() -> None:
    from synthbias.measure.api import measure_corpus

    res = measure_corpus(
        ["The Muslim family prayed at the mosque."] * 3,
        axes=["religion", "age"],
        families=["embedding"],
        n_resamples=50,
    )
    assert set(res) == {"embedding.religion.anchor_spread", "embedding.age.anchor_spread"}
    assert (
        max(res["embedding.religion.anchor_spread"].per_group.items(), key=lambda kv: kv[1])[0]
        == "muslim"
    )
