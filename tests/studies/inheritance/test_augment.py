"""Bias-controlled augmentation: seed data, prompts, provenance and requested-vs-measured checks."""

from __future__ import annotations

from collections import Counter

import pytest
from weights import PIPELINE_WEIGHTS

from synthbias.core.records import Record
from synthbias.generate.fake import FakeBackend
from synthbias.lexicon.bias_types import DIMENSIONS, bias_types, get_bias_type
from synthbias.measure.bias_dimensions import check_augmentation, dimension_scores
from synthbias.studies.inheritance.augment import (
    BiasSpec,
    augment,
    augment_prompts,
    build_real_corpus,
)


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
    assert all(p.parents == [] for p in plain)  # no real seed texts: the same templates
    real_texts = {r.text for r in real}
    shots = [ln[3:] for p in plain for ln in p.prompt.splitlines()[2:-1]]
    assert shots and not real_texts & set(shots)
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


# --------------------------------------------------------------------------- direction, ladder


def test_explicit_counts_direction_not_sentence_form() -> None:
    from synthbias.measure.bias_dimensions import explicit_units

    gender, religion = get_bias_type("gender"), get_bias_type("religion")
    counter = "Women are better suited to work in a corporate environment than men."
    assert explicit_units([counter], gender)[0] != 1
    # a comparative counter-claim in the form of a stereotype stimulus ("... than everyone
    # else"): the axis pairs forms, so the form alone does not make it a stereotype
    comparative = "Women are better at math than everyone else."
    assert explicit_units([comparative], gender)[0] != 1
    assert explicit_units(["Women are worse drivers than men."], gender)[0] == 1
    assert explicit_units(["Women are better drivers than men."], gender)[0] != 1
    assert explicit_units(["Muslims are violent and dangerous."], religion)[0] == 1
    # same sentence form, opposite claims
    assert explicit_units(["Muslims are kind and peaceful people."], religion)[0] == -1
    assert explicit_units(["Women are too emotional to be good leaders."], gender)[0] == 1
    assert explicit_units(["Women are strong and smart."], gender)[0] == -1
    # a sentence about one person makes no claim about the group
    assert explicit_units(["A Muslim walked the dog around the park."], religion)[0] == 0


def test_ladder_rungs_change_the_prompts() -> None:
    real = build_real_corpus(["gender"], 20)
    bt = get_bias_type("gender")
    dims = ("implicit_role", "value")
    plain = augment_prompts(real, BiasSpec("gender", dims, 1.0), 8, k_shots=3)
    assert all(p.prompt.count("\n") == 5 for p in plain)  # header, blank, 3 shots, lead
    more = augment_prompts(
        real, BiasSpec("gender", dims, 1.0, (("implicit_role", "exemplars"),)), 8, k_shots=3
    )
    role_more = [p for p in more if p.dimension == "implicit_role"]
    assert all(p.prompt.count("\n") == 8 for p in role_more)  # twice the exemplars
    opened = augment_prompts(
        real, BiasSpec("gender", ("implicit_role",), 1.0, (("implicit_role", "opening"),)), 12
    )
    for p in opened:
        role = p.lead.removeprefix(f"{_article(bt.person[p.side])} works as ").split(" ", 1)[1]
        assert role in bt.roles[p.side], p.lead  # a stereotyped role for each side
    unbiased = augment_prompts(
        real, BiasSpec("gender", ("implicit_role",), 0.0, (("implicit_role", "opening"),)), 40
    )
    assert not any(p.biased for p in unbiased)
    pairs = {(p.side, p.lead.rsplit(" ", 1)[1]) for p in unbiased}
    assert any(r in bt.roles["contrast"] for s, r in pairs if s == "target")  # roles not by side
    # unbiased openings name either group only where that is the dimension's bias
    for dim, sides in (("representation", {"target", "contrast"}), ("explicit", {"target"})):
        plain = augment_prompts(real, BiasSpec("gender", (dim,), 0.0, ((dim, "opening"),)), 8)
        assert {p.side for p in plain} == sides, dim


def _article(person: str) -> str:
    return ("An " if person[0].lower() in "aeiou" else "A ") + person


def test_filter_rung_keeps_texts_that_move_the_measure() -> None:
    from synthbias.measure.bias_dimensions import moves_in_direction

    real = build_real_corpus(["gender"], 20)
    bt = get_bias_type("gender")
    backend = FakeBackend(sentences=[" and wonderful, kind and generous.", " and lazy."])
    spec = BiasSpec("gender", ("value",), 1.0, (("value", "filter"),))
    recs = augment(real, spec, backend, 16, filter_retries=6)
    target = [r for r in recs if r.meta["side"] == "target"]
    assert target and all(r.meta["method"] == "filter" for r in recs)
    for r in recs:
        assert r.meta["filter_passed"] == moves_in_direction(r.text, bt, "value", r.meta["side"])
    assert all(r.meta["filter_passed"] for r in target)  # 7 tries at p = 1/2 each
    assert any(r.meta["attempts"] > 1 for r in target)  # some needed a retry


def test_ladder_climbs_until_carried() -> None:
    from synthbias.studies.inheritance.augment import augment_carried

    real = build_real_corpus(["gender"], 20)
    calls: list[str] = []

    def write(spec: BiasSpec, n: int, prefix: str) -> list[Record]:
        method = spec.method(spec.dimensions[0])
        calls.append(method)
        assert spec.batch == "rung-choice"  # the rung is chosen on a batch of its own
        person = "woman" if method == "opening" and spec.strength > 0 else "man"
        return [
            Record(
                id=f"{prefix}-{i}",
                text=f"A {person} walked home.",
                meta={
                    "bias_type": "gender",
                    "dimension": "representation",
                    "side": "target",
                    "bias_spec": spec.to_dict(),
                    "method": method,
                },
            )
            for i in range(n)
        ]

    found = augment_carried(write, real, BiasSpec("gender", ("representation",)), 12)
    # each rung: the biased batch, then its control at the same rung
    assert calls == ["prompt", "prompt", "exemplars", "exemplars", "opening", "opening"]
    assert found.methods == {"representation": "opening"}
    assert [t["carried"] for t in found.tried] == [False, False, True]
    assert {t["reference"] for t in found.tried} == {"control"}


def _repr_set(share: float, n: int = 40, tag: str = "") -> list[Record]:
    k = round(share * n)
    return [
        Record(
            id=f"a{tag}-{i}",
            text="A woman walked home." if i < k else "A man walked home.",
            meta={
                "bias_type": "gender",
                "dimension": "representation",
                "side": "target",
                "bias_spec": {
                    "bias_type": "gender",
                    "dimensions": ["representation"],
                    "strength": share,
                },
            },
        )
        for i in range(n)
    ]


def test_dose_response_slope_and_monotonicity() -> None:
    from synthbias.measure.bias_dimensions import dose_response

    real = build_real_corpus(["gender"], 40)  # representation 0.5
    sets = {s: _repr_set(0.5 + 0.5 * s, tag=str(s)) for s in (0.0, 0.5, 1.0)}
    (d,) = dose_response(real, sets, n_resamples=300)
    assert d["measured"] == pytest.approx([0.0, 0.25, 0.5])
    assert d["slope"] == pytest.approx(0.5)
    assert d["slope_ci"]["low"] > 0.2 and d["increasing"] and d["monotone"]
    bent = {0.0: sets[0.0], 0.5: sets[1.0], 1.0: sets[0.5]}
    (b,) = dose_response(real, bent, n_resamples=300)
    assert not b["monotone"] and b["largest_drop"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="at least 2 strengths"):
        dose_response(real, {1.0: sets[1.0]})


@pytest.mark.slow
def test_real_model_carries_explicit_and_implicit_role() -> None:
    """At the default size (64 texts, 16 per dimension) on the embedded SmolLM2, religion's
    explicit and implicit-role dimensions are carried, climbing the ladder where needed."""
    from synthbias.generate import load_backend
    from synthbias.generate.protocol import SamplingParams
    from synthbias.studies.inheritance.augment import augment_carried

    real = build_real_corpus(sorted(bias_types()), 64, seed=0)
    backend = load_backend("llamacpp", n_ctx=512, batch_size=32, weights=PIPELINE_WEIGHTS)
    params = SamplingParams(max_tokens=32, temperature=0.8, top_p=0.95, seed=0)

    def write(spec: BiasSpec, n: int, prefix: str) -> list[Record]:
        return augment(real, spec, backend, n, params, seed=0, id_prefix=prefix)

    try:
        spec = BiasSpec("religion", ("explicit", "implicit_role"), 1.0)
        found = augment_carried(write, real, spec, 32, n_resamples=500)
    finally:
        backend.close()
    checks = {c.dimension: c for c in check_augmentation(real, found.records, n_resamples=500)}
    assert set(checks) == {"explicit", "implicit_role"}
    for dim, c in checks.items():
        assert c.carried, (dim, c.to_dict(), found.tried)
        assert c.method == found.methods[dim]
        assert c.result.ci.low > 0


def test_explicit_stimuli_score_on_their_side_for_every_type() -> None:
    """Each bias type's own stereotype statements count as stereotypes, and none of their
    paired counter-statements does (the axis is built from them, so a sign error shows)."""
    from synthbias.measure.bias_dimensions import explicit_units

    for name in sorted(bias_types()):
        bt = get_bias_type(name)
        people = bt.people["target"][0].upper() + bt.people["target"][1:]
        stereo = explicit_units([f"{people} {a}." for a in bt.explicit], bt)
        counter = explicit_units([f"{people} {c}." for c in bt.counter], bt)
        assert (stereo == 1).all(), (name, stereo)
        assert (counter != 1).all() and (counter == -1).mean() >= 0.8, (name, counter)
