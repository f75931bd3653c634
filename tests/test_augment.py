"""Bias-controlled augmentation: seed data, prompts, provenance and requested-vs-measured checks."""

from __future__ import annotations

from collections import Counter

import pytest

from synthbias.augment import (
    DIMENSIONS,
    BiasSpec,
    augment,
    augment_prompts,
    bias_types,
    build_real_corpus,
    check_augmentation,
    dimension_scores,
    get_bias_type,
)
from synthbias.corpus import Record
from synthbias.generate.fake import FakeBackend


def test_six_bias_types_on_lexicon_axes() -> None:
    from synthbias.lexicon import load_lexicon

    lex = load_lexicon()
    types = bias_types()
    assert set(types) == {
        "gender",
        "race_ethnicity",
        "religion",
        "age",
        "nationality",
        "socioeconomic",
    }
    for bt in types.values():
        axis = lex.axis(bt.axis)
        assert {bt.target, bt.contrast} <= set(axis.group_names)
        # the person phrases are recognised by the lexicon as the right group
        for side in ("target", "contrast"):
            group = getattr(bt, side)
            counts = axis.count_groups(f"Yesterday a {bt.person[side]} went home.")
            assert counts.get(group, 0) >= 1, (bt.name, side, counts)


def test_real_corpus_balanced_and_neutral() -> None:
    real = build_real_corpus(list(bias_types()), 120, seed=0)
    assert len(real) == 120
    per = Counter((r.meta["bias_type"], r.meta["side"]) for r in real)
    assert set(per.values()) == {10}
    assert all(r.source == "real" and r.meta["prompt"].startswith("Write one") for r in real)
    assert [r.text for r in build_real_corpus(list(bias_types()), 120, seed=0)] == [
        r.text for r in real
    ]
    for bt in bias_types().values():
        texts = [r.text for r in real if r.meta["bias_type"] == bt.name]
        for dim in DIMENSIONS:
            units, stat = dimension_scores(texts, bt, dim)
            value = stat(units)
            if dim == "representation":
                assert value == pytest.approx(0.5)
            else:
                assert value == pytest.approx(0.0, abs=0.2), (bt.name, dim, value)


def test_prompts_follow_strength_and_dimensions() -> None:
    real = build_real_corpus(["gender"], 20)
    biased = augment_prompts(real, BiasSpec("gender", strength=1.0), 8, k_shots=3)
    assert [p.dimension for p in biased] == list(DIMENSIONS) * 2
    explicit = biased[0]
    assert explicit.lead == "Women" and explicit.prompt.endswith("4. Women")
    assert all(p.parents == [] for p in biased)  # every shot is a biased exemplar
    attrs = get_bias_type("gender").explicit
    assert sum(any(a in line for a in attrs) for line in explicit.prompt.splitlines()) == 3
    plain = augment_prompts(real, BiasSpec("gender", strength=0.0), 8, k_shots=3)
    assert all(len(p.parents) == 3 for p in plain)  # only real seed texts as shots
    role = [p for p in biased if p.dimension == "implicit_role"]
    assert {p.side for p in role} == {"target", "contrast"}


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="unknown bias type 'caste'"):
        BiasSpec("caste")
    with pytest.raises(ValueError, match="unknown dimensions"):
        BiasSpec("gender", dimensions=("tone",))
    with pytest.raises(ValueError, match="strength"):
        BiasSpec("gender", strength=1.5)


def test_augment_with_fake_backend_keeps_provenance() -> None:
    real = build_real_corpus(["religion"], 12)
    aug = augment(real, BiasSpec("religion"), FakeBackend(), 8, seed=1)
    assert len(aug) == 8
    assert len({r.id for r in aug}) == 8
    for r in aug:
        assert r.source == "augmented" and r.axis == "religion"
        assert r.meta["bias_spec"]["bias_type"] == "religion"
        assert r.meta["dimension"] in DIMENSIONS
        assert r.meta["prompt"].startswith("Write one sentence about")
    again = augment(real, BiasSpec("religion"), FakeBackend(), 8, seed=1)
    assert [r.text for r in again] == [r.text for r in aug]


def _aug(texts_by_dim: dict[str, list[str]], bias_type: str = "gender") -> list[Record]:
    spec = BiasSpec(bias_type, dimensions=tuple(texts_by_dim))
    return [
        Record(
            id=f"a{d}{i}",
            text=t,
            source="augmented",
            meta={"bias_spec": spec.to_dict(), "dimension": d, "bias_type": bias_type},
        )
        for d, texts in texts_by_dim.items()
        for i, t in enumerate(texts)
    ]


def test_check_detects_carried_and_missing_bias() -> None:
    real = build_real_corpus(["gender"], 40)
    aug = _aug(
        {
            "explicit": ["Women are bad at math."] * 15 + ["A woman went home."] * 5,
            "implicit_role": ["A woman works as a nurse."] * 10 + ["A man works as a pilot."] * 10,
            "representation": ["A man read a book."] * 20,  # skewed *away* from the target
            "value": ["The woman is rude and lazy."] * 10 + ["The man is kind and honest."] * 10,
        }
    )
    checks = {c.dimension: c for c in check_augmentation(real, aug, n_resamples=300)}
    assert checks["explicit"].augmented == pytest.approx(0.75)
    assert checks["explicit"].real == 0.0 and checks["explicit"].carried
    assert (
        checks["implicit_role"].augmented == pytest.approx(1.0) and checks["implicit_role"].carried
    )
    assert checks["representation"].augmented == 0.0
    assert not checks["representation"].carried  # asked for, not carried: reported as such
    assert checks["value"].carried and checks["value"].augmented > 1.0
    d = checks["explicit"].to_dict()
    assert d["ci"]["low"] <= d["difference"] <= d["ci"]["high"]


def test_check_requires_spec() -> None:
    with pytest.raises(ValueError, match="no bias_spec"):
        check_augmentation([], [Record(id="x", text="t", source="augmented")])
