"""Issue 27, items 5-6: "carried" is decided against a control arm of the same form, on a batch
that did not choose the fallback rung; the model's own share of each text is reported; the filter
rung is flagged as carried by construction; a bare "." at the opening rung is no text."""

from __future__ import annotations

from collections import Counter

import pytest

from synthbias.core.records import Record
from synthbias.generate.fake import FakeBackend
from synthbias.lexicon.bias_types import augment_templates
from synthbias.measure.bias_dimensions import check_augmentation
from synthbias.studies.inheritance.augment import (
    BiasSpec,
    augment,
    augment_prompts,
    build_real_corpus,
    model_share,
)
from synthbias.studies.inheritance.results import flags
from synthbias.studies.inheritance.steps import augment_arms


def _women_writer(calls: list[BiasSpec]):
    """A generator that writes about women whatever it is shown: LLM-written, not biased."""

    def write(spec: BiasSpec, n: int, prefix: str) -> list[Record]:
        calls.append(spec)
        dim = spec.dimensions[0]
        return [
            Record(
                id=f"{prefix}-{spec.batch}-{spec.strength:g}-{i}",
                text="A woman walked home." if i % 4 else "A man walked home.",
                meta={
                    "bias_type": "gender",
                    "dimension": dim,
                    "side": "target",
                    "bias_spec": spec.to_dict(),
                    "method": spec.method(dim),
                },
            )
            for i in range(n)
        ]

    return write


def _arms(write, fallback=("prompt",), arms=(("s1", 1.0), ("control", 0.0))):
    real = build_real_corpus(["gender"], 24)  # balanced: half women, half men
    return augment_arms(
        write,
        real,
        "gender",
        0,
        arms=arms,
        dimensions=("representation",),
        n=40,
        fallback=fallback,
        check_strengths=(),
        n_resamples=300,
    )


def test_writing_style_alone_is_not_carried_against_the_control() -> None:
    """The biased and control arms both write 75 % women: augmented − real would call the
    representation bias carried; against the control arm it is not."""
    calls: list[BiasSpec] = []
    out = _arms(_women_writer(calls))
    biased = next(c for c in out.checks if c["arm"] == "s1")
    assert biased["reference"] == "control"
    assert abs(biased["difference"]) < 1e-9 and not biased["carried"]
    old = check_augmentation(build_real_corpus(["gender"], 24), out.by_arm["s1"], n_resamples=300)
    assert old[0].carried  # the old reference (real data) confuses form with bias
    ctrl = next(c for c in out.checks if c["arm"] == "control")
    assert ctrl["reference"] == "real"


def test_without_a_control_arm_a_strength_0_set_is_the_reference() -> None:
    calls: list[BiasSpec] = []
    out = _arms(_women_writer(calls), arms=(("s1", 1.0),))
    assert {(c["arm"], c["reference"]) for c in out.checks} == {
        ("s1", "control"),
        ("check-s0", "real"),
    }
    assert not next(c for c in out.checks if c["arm"] == "s1")["carried"]


def test_rung_is_chosen_on_its_own_batch_and_arms_are_written_afresh() -> None:
    calls: list[BiasSpec] = []
    out = _arms(_women_writer(calls), fallback=("prompt", "opening"))
    picks = [s for s in calls if s.batch == "rung-choice"]
    finals = [s for s in calls if s.batch == ""]
    # the ladder: biased and control at each rung tried, on the rung-choice batch
    assert [(s.method("representation"), s.strength) for s in picks] == [
        ("prompt", 1.0),
        ("prompt", 0.0),
        ("opening", 1.0),
        ("opening", 0.0),
    ]
    assert {s.strength for s in finals} == {0.0, 1.0}
    for recs in out.by_arm.values():  # trained and checked: never the rung-choice batch
        assert all("batch" not in r.meta["bias_spec"] for r in recs)
    assert all(t["batch"] == "rung-choice" for t in out.ladder)


def test_bare_full_stop_at_the_opening_rung_is_not_a_text() -> None:
    real = build_real_corpus(["gender"], 12)
    spec = BiasSpec("gender", ("implicit_role",), 1.0, (("implicit_role", "opening"),))
    recs = augment(real, spec, FakeBackend(sentences=["."]), 8, max_retries=1)
    assert all(r.text == "" and r.meta["empty"] for r in recs)  # today: "A woman works as a nurse."
    value = BiasSpec("gender", ("value",), 1.0, (("value", "opening"),))
    recs = augment(real, value, FakeBackend(sentences=[" !"]), 4, max_retries=0)
    assert all(r.text == "" for r in recs)


def test_model_share_of_each_text_is_recorded_and_checked() -> None:
    assert model_share("A woman works as a nurse", "A woman works as a nurse at night.") == 2 / 8
    assert model_share("", "Some words here.") == 1.0
    assert model_share("The woman", "") == 0.0
    real = build_real_corpus(["gender"], 12)
    spec = BiasSpec("gender", ("implicit_role",), 1.0, (("implicit_role", "opening"),))
    recs = augment(real, spec, FakeBackend(sentences=[" in the city hospital."]), 8)
    shares = [r.meta["model_share"] for r in recs]
    assert all(0 < s < 1 for s in shares)
    (chk,) = check_augmentation(real, recs, n_resamples=100)
    assert chk.to_dict()["model_share"] == pytest.approx(sum(shares) / len(shares))


def test_filter_rung_is_flagged_carried_by_construction() -> None:
    real = build_real_corpus(["gender"], 20)
    backend = FakeBackend(sentences=[" and lazy.", " and rude to everyone."])
    spec = BiasSpec("gender", ("value",), 1.0, (("value", "filter"),))
    recs = augment(real, spec, backend, 16, filter_retries=4)
    (chk,) = check_augmentation(real, recs, n_resamples=200)
    row = chk.to_dict() | {"bias_type": "gender", "seed": 0, "arm": "s1", "carried": True}
    assert row["carried_by_construction"] is True
    assert any("by construction" in f["message"] for f in flags([row], []))
    (plain,) = check_augmentation(
        real, augment(real, BiasSpec("gender", ("value",)), backend, 8), n_resamples=100
    )
    assert plain.to_dict()["carried_by_construction"] is False


def test_control_exemplars_are_the_same_templates_with_the_bias_removed() -> None:
    """Strength 0: no real seed sentence among the shots; every shot has an exemplar
    template's form, and the value dimension's traits are warm and cold for both groups."""
    real = build_real_corpus(["gender"], 20)
    real_texts = {r.text for r in real}
    tpl = augment_templates()
    traits = tpl["traits"]
    prompts = augment_prompts(real, BiasSpec("gender", ("value",), 0.0), 60, k_shots=3)
    shots = [ln.split(". ", 1)[1] for p in prompts for ln in p.prompt.splitlines()[2:-1]]
    assert len(shots) == 180 and not real_texts & set(shots)
    starts = ("The ", "Everyone says the ")
    assert all(s.startswith(starts) for s in shots)
    tally: Counter[tuple[str, str]] = Counter()
    for s in shots:
        who = "woman" if " woman " in f" {s} " else "man"
        for word in s.rstrip(".").replace(",", "").split():
            if word in traits["cold"]:
                tally[(who, "cold")] += 1
            elif word in traits["warm"]:
                tally[(who, "warm")] += 1
    assert min(tally[(w, v)] for w in ("woman", "man") for v in ("cold", "warm")) > 20
    # biased exemplars (strength 1) keep their stereotype: women cold, men warm
    biased = augment_prompts(real, BiasSpec("gender", ("value",), 1.0), 20, k_shots=3)
    b_shots = [ln.split(". ", 1)[1] for p in biased for ln in p.prompt.splitlines()[2:-1]]
    women = [s for s in b_shots if " woman " in f" {s} "]
    assert women and all(any(t in s for t in traits["cold"]) for s in women)
