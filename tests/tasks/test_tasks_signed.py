"""Issue 27, items 7-9: signed task gaps for the trained bias type, the paired stereotype
headline, and occupation clusters for the crossed pronoun items."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthbias.tasks import TaskItem, load_task
from synthbias.tasks.compare import compact_records
from synthbias.tasks.metrics import METRICS, EvalContext
from synthbias.tasks.sweep import for_bias_type, paired_deltas


def _profiles(gap: dict[str, float], n_clusters: int = 30, noise: float = 0.0, seed: int = 0):
    """Counterfactual items over gender (female, male) and religion (four groups), with mean
    P(yes) 0.5 + gap[group] and per-item noise; cluster = profile x axis."""
    rng = np.random.default_rng(seed)
    groups = {"gender": ["female", "male"], "religion": ["muslim", "christian", "jewish", "hindu"]}
    items, p = [], []
    for c in range(n_clusters):
        for axis, gs in groups.items():
            for g in gs:
                label = f"{axis}:{g}"
                items.append(
                    TaskItem(
                        id=f"{c}-{label}", prompt="p", fields={}, group=label, cluster=f"{c}{axis}"
                    )
                )
                p.append(0.5 + gap.get(label, 0.0) + noise * rng.standard_normal())
    p = np.clip(np.array(p), 0.01, 0.99)
    scores = np.column_stack([np.log(p), np.log(1 - p)])
    return items, scores


def _hiring_ctx(items, scores, bias_type=None, n_resamples=300) -> EvalContext:
    task = load_task("hiring_decision")
    if bias_type is not None:
        task = for_bias_type(task, bias_type)
    return EvalContext(
        spec=task.spec, items=items, labels=["yes", "no"], scores=scores, n_resamples=n_resamples
    )


def test_signed_gap_follows_the_trained_pair_and_its_sign() -> None:
    """A model that invites women *more* (anti-stereotype) and spreads religion groups apart:
    the old unsigned spread calls both "bias"; the signed gap for gender is negative and the
    one for religion reads only muslim vs christian."""
    gaps = {"gender:female": 0.1, "religion:jewish": 0.2, "religion:hindu": -0.2}
    items, scores = _profiles(gaps)
    old = METRICS["bias.p_yes_gap"].fn(_hiring_ctx(items, scores))
    assert old.value > 0.2  # unsigned: any difference reads as bias
    g = METRICS["bias.p_yes_signed"].fn(_hiring_ctx(items, scores, "gender"))
    assert g.value == pytest.approx(-0.1, abs=1e-9)  # women invited more: against the stereotype
    assert g.meta["pairs"] == [
        {"bias_type": "gender", "target": "gender:female", "contrast": "gender:male"}
    ]
    r = METRICS["bias.p_yes_signed"].fn(_hiring_ctx(items, scores, "religion"))
    assert r.value == pytest.approx(0.0, abs=1e-9)  # muslim vs christian: no difference
    null = g.meta["null"]  # the permutation null sits beside: centred on 0, one-sided p
    assert abs(null["mean"]) < 0.05 and null["p_value"] > 0.5


def test_signed_gap_is_positive_towards_the_stereotype_and_null_centres_on_zero() -> None:
    items, scores = _profiles({"gender:female": -0.15}, noise=0.05)
    m = METRICS["bias.p_yes_signed"].fn(_hiring_ctx(items, scores, "gender"))
    assert m.value == pytest.approx(0.15, abs=0.03)
    assert m.ci is not None and m.ci.low > 0
    # no bias, only noise: the signed gap sits inside its permutation null; the unsigned spread
    # (mean over two axes of max - min) is biased upwards
    items0, scores0 = _profiles({}, noise=0.1, seed=3)
    s0 = METRICS["bias.p_yes_signed"].fn(_hiring_ctx(items0, scores0, "gender"))
    u0 = METRICS["bias.p_yes_gap"].fn(_hiring_ctx(items0, scores0))
    assert abs(s0.value) < u0.value
    assert s0.ci is not None and s0.ci.low < 0 < s0.ci.high


def test_signed_headlines_packaged_for_the_gap_tasks() -> None:
    want = {
        "hiring_decision": ("bias.p_yes_signed", "bias.p_yes_gap"),
        "salary_recommendation": ("bias.salary_signed_p", "bias.salary_gap_p"),
        "story_generation": ("bias.sentiment_signed_p", "bias.sentiment_gap_p"),
        "toxicity_identity": ("bias.false_toxic_signed", "bias.bpsn_shortfall"),
    }
    for task, (head, spread) in want.items():
        spec = load_task(task).spec
        assert spec.bias_metric == head, task
        assert spread in spec.metrics  # the unsigned spread stays, secondary
        assert METRICS[head].form == "log-probability"


def test_toxicity_signed_reads_harmless_texts_of_target_vs_contrast() -> None:
    items, p = [], []
    for c in range(20):
        for label in ("toxic", "not_toxic"):
            for g in ("gender:female", "gender:male", "religion:muslim", "religion:christian"):
                items.append(
                    TaskItem(f"{c}{label}{g}", "p", {}, label=label, group=g, cluster=f"{c}{label}")
                )
                base = 0.8 if label == "toxic" else 0.2
                p.append(base + (0.1 if g == "religion:muslim" and label == "not_toxic" else 0.0))
    p = np.array(p)
    task = for_bias_type(load_task("toxicity_identity"), "religion")
    ctx = EvalContext(
        spec=task.spec,
        items=items,
        labels=["toxic", "not_toxic"],
        scores=np.column_stack([np.log(p), np.log(1 - p)]),
        n_resamples=200,
    )
    m = METRICS["bias.false_toxic_signed"].fn(ctx)
    assert m.value == pytest.approx(0.1, abs=1e-9)


class _Answers:
    """Stored answers of a hiring model whose P(yes) for women is ``0.5 - lean``."""

    def __init__(self, task, items, lean: float) -> None:
        self.records = []
        for it in items:
            p = 0.5 - (lean if it.group == "gender:female" else 0.0)
            self.records.append(
                {
                    "id": it.id,
                    "option_scores": {"yes": math.log(p), "no": math.log(1 - p)},
                    "output": "yes",
                    "parsed": 1.0,
                }
            )


def test_sweep_deltas_read_the_trained_bias_type() -> None:
    """paired_deltas binds each cell's bias type: a model trained on gender that lowers P(yes)
    for women moves the gender headline by +lean (not the all-type average)."""
    task = load_task("hiring_decision")
    n = task.min_size() * 3
    items = task.items(n, 0)
    real = compact_records(_Answers(task, items, 0.0).records)
    tuned = compact_records(_Answers(task, items, 0.1).records)
    conditions = [
        {"bias_type": "gender", "arm": "real", "ratio": 0, "seed": 0, "adapter": "a0"},
        {"bias_type": "gender", "arm": "s1", "ratio": 0.5, "seed": 0, "adapter": "a1"},
    ]
    records = {"a0": {task.name: real}, "a1": {task.name: tuned}}
    (d,) = paired_deltas([task], {task.name: n}, 0, conditions, records, n_resamples=100)
    assert d["metric"] == "bias.p_yes_signed"
    assert d["delta"] == pytest.approx(0.1, abs=1e-6)


# ============================================================================ item 8
def test_stereotype_detection_headline_is_the_paired_form() -> None:
    """A yes/no prior shift moves stereo_pref_p in every item but leaves the paired form."""
    spec = load_task("stereotype_detection").spec
    assert spec.bias_metric == "bias.stereo_pref_paired"
    items = []
    for c in range(20):
        for lab in ("stereotype", "anti_stereotype"):
            items.append(TaskItem(f"{c}{lab}", "p", {"axis": "gender"}, label=lab, cluster=str(c)))
    p_st = np.array([0.6 if it.label == "stereotype" else 0.7 for it in items])

    def ctx(shift: float) -> EvalContext:
        p = np.clip(p_st + shift, 0.01, 0.99)
        return EvalContext(
            spec=spec,
            items=items,
            labels=["stereotype", "anti_stereotype"],
            scores=np.column_stack([np.log(p), np.log(1 - p)]),
            pred=["stereotype"] * len(items),
            n_resamples=100,
        )

    a, b = ctx(0.0), ctx(-0.3)  # the tuned model says "no" more often
    head = spec.bias_metric
    assert METRICS[head].fn(a).value == METRICS[head].fn(b).value == 1.0
    assert METRICS["bias.stereo_pref_p"].fn(b).value > METRICS["bias.stereo_pref_p"].fn(a).value


# ============================================================================ item 9
def test_pronoun_items_resample_whole_occupations() -> None:
    """Occupation x template is crossed: every bootstrap replicate draws an occupation with
    all its templates (today: single items)."""
    task = load_task("pronoun_completion")
    items = task.items()
    occ = {it.fields["occupation"] for it in items}
    per_occ = len(items) // len(occ)
    assert per_occ > 1  # several templates
    assert all(it.cluster == f"occ-{it.fields['occupation']}" for it in items)
    ctx = EvalContext(spec=task.spec, items=items, n_resamples=20)
    for idx in ctx.resamples():
        counts: dict[str, int] = {}
        for i in idx:
            o = items[int(i)].fields["occupation"]
            counts[o] = counts.get(o, 0) + 1
        assert all(v % per_occ == 0 for v in counts.values())
    # and a sample of n items draws whole occupations
    sub = task.items(task.min_size() * 2, 0)
    sizes = {o: sum(it.fields["occupation"] == o for it in sub) for o in occ}
    assert {v for v in sizes.values() if v} == {per_occ}
