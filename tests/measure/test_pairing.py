"""One paired machinery for every model comparison of the inheritance and mitigation studies.

Fake stored answers on the coreference task (template items, no model): its headline
``bias.pro_anti_gap_p`` = P(correct) on pro items − on anti items is a gap, not a mean of
per-item scores, so the old arm comparison gave it no CI. Each model's answers are built by
hand, so every delta below is worked out from the definition.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthbias.config import parse_config
from synthbias.stats.resampling import percentile_interval
from synthbias.studies.inheritance.design import arm_effects
from synthbias.studies.mitigation.runner import compare_inheritance
from synthbias.tasks import load_task
from synthbias.tasks.compare import paired_delta
from synthbias.tasks.paired import compare_pairs, paired_replicates
from synthbias.tasks.sweep import paired_deltas

N = 40


def _answers(items: list[Any], right: Any) -> list[dict[str, Any]]:
    """Stored answers that are correct exactly where ``right(i, item)`` holds."""
    out = []
    for i, it in enumerate(items):
        wrong = "participant" if it.label == "occupation" else "occupation"
        choice = it.label if right(i, it) else wrong
        # the other option 50 nats below: P(choice) = 1 to 1e-21, so the headline's
        # log-probability form (bias.pro_anti_gap_p) equals the argmax gap worked out here
        scores = {lab: 0.0 if lab == choice else -50.0 for lab in ("occupation", "participant")}
        out.append({"id": it.id, "choice": choice, "option_scores": scores})
    return out


def _gap(items: list[Any], recs: list[dict[str, Any]]) -> float:
    ok = np.array([r["choice"] == it.label for it, r in zip(items, recs, strict=True)])
    cond = np.array([it.fields["condition"] for it in items])
    return float(ok[cond == "pro"].mean() - ok[cond == "anti"].mean())


@pytest.fixture(scope="module")
def design() -> dict[str, Any]:
    """Real-only model R: right on every other item. Biased arm B: right on every pro item,
    wrong on every anti item (gap 1). Control arm C: right on every pro item, like R on anti
    items (gap 1 − acc_anti(R)). Two seeds with the same answers."""
    task = load_task("coreference")
    items = task.items(N, 0)
    pro = lambda i, it: it.fields["condition"] == "pro"  # noqa: E731
    recs = {
        "R": _answers(items, lambda i, it: i % 2 == 0),
        "B": _answers(items, pro),
        "C": _answers(items, lambda i, it: pro(i, it) or i % 2 == 0),
    }
    conditions = []
    for seed in (0, 1):
        for arm, ratio, key, strength in (
            ("real", 0.0, "R", None),
            ("s1", 0.5, "B", 1.0),
            ("control", 0.5, "C", 0.0),
        ):
            adapter = f"{key}{seed}"
            conditions.append(
                {"bias_type": "gender", "arm": arm, "ratio": ratio, "seed": seed}
                | {"strength": strength, "adapter": adapter}
            )
    records = {f"{k}{s}": {"coreference": v} for k, v in recs.items() for s in (0, 1)}
    return {"task": task, "items": items, "recs": recs, "conds": conditions, "records": records}


def test_worked_out_gaps(design: dict[str, Any]) -> None:
    items, recs = design["items"], design["recs"]
    anti_r = np.mean(
        [r["choice"] == it.label for it, r in zip(items, recs["R"], strict=True)
         if it.fields["condition"] == "anti"]
    )  # fmt: skip
    assert 0 < anti_r < 1  # R is right on some anti items and wrong on others
    assert _gap(items, recs["B"]) == 1.0
    assert _gap(items, recs["C"]) == pytest.approx(1 - anti_r)


def test_control_and_biased_arm_do_not_collide(design: dict[str, Any]) -> None:
    """Both arms at r = 0.5 get their own delta vs the real-only model, with paired CIs."""
    task, items, recs = design["task"], design["items"], design["recs"]
    rows = paired_deltas([task], {"coreference": N}, 0, design["conds"], design["records"], 300)
    by_arm = {r["arm"]: r for r in rows}
    assert len(rows) == 2 and set(by_arm) == {"s1", "control"}
    g_r = _gap(items, recs["R"])
    assert by_arm["s1"]["delta"] == pytest.approx(1.0 - g_r)
    assert by_arm["control"]["delta"] == pytest.approx(_gap(items, recs["C"]) - g_r)
    assert by_arm["s1"]["strength"] == 1.0 and by_arm["control"]["strength"] == 0.0
    for r in rows:
        assert r["n_seeds"] == 2 and r["metric"] == "bias.pro_anti_gap_p"
        assert r["ci_low"] <= r["delta"] <= r["ci_high"] and np.isfinite(r["half_width"])
    assert not by_arm["s1"]["covers_zero"]


def test_biased_arm_vs_control_is_paired(design: dict[str, Any]) -> None:
    """The bias effect proper: B − C on the same items = acc_anti(R) (the anti items C gets
    right and B does not), with a paired CI that excludes 0."""
    task, items, recs = design["task"], design["items"], design["recs"]
    deltas = paired_deltas([task], {"coreference": N}, 0, design["conds"], design["records"], 300)
    rows = arm_effects(
        deltas, design["conds"], design["records"], [task], {"coreference": N}, 0, 300
    )
    refs = {(r["arm"], r["reference"]): r for r in rows}
    assert set(refs) == {("s1", "real-only"), ("control", "real-only"), ("s1", "control")}
    vs_c = refs[("s1", "control")]
    expected = _gap(items, recs["B"]) - _gap(items, recs["C"])
    assert vs_c["delta"] == pytest.approx(expected) and expected > 0.2
    assert vs_c["ci_low"] > 0 and not vs_c["covers_zero"]
    assert vs_c["finding"].startswith("more bias than the control arm")
    assert vs_c["n_seeds"] == 2 and vs_c["resampling"] == "paired; whole clusters"


def test_replicates_are_the_paired_deltas_draws(design: dict[str, Any]) -> None:
    """Both models' replicates come from the same draws as the paired delta: their
    difference's percentile interval is the paired CI."""
    task, items, recs = design["task"], design["items"], design["recs"]
    pairs = [(recs["C"], recs["B"]), (recs["C"], recs["B"])]
    d = paired_delta(task, items, pairs, "bias.pro_anti_gap", 300, 0)
    a, b, ra, rb = paired_replicates(task, items, pairs, "bias.pro_anti_gap", 300, 0)
    assert b - a == pytest.approx(d["delta"])
    lo, hi = percentile_interval(rb - ra)
    assert (lo, hi) == pytest.approx((d["ci_low"], d["ci_high"]))
    assert a == pytest.approx(_gap(items, recs["C"])) and b == 1.0


def test_compare_pairs_skips_models_without_answers(design: dict[str, Any]) -> None:
    task = design["task"]
    rows = compare_pairs(
        [task],
        {"coreference": N},
        0,
        [({"arm": "x"}, [("R0", "missing")]), ({"arm": "y"}, [("R0", "B0")])],
        design["records"],
        100,
    )
    assert [r["arm"] for r in rows] == ["y"]


def _sub_run(root: Path, entry: str, recs: list[dict[str, Any]]) -> None:
    """A ratio-study sub-run folder as run_inheritance writes it (the parts the mitigation
    study reads): tasks, conditions, evaluation files with stored answers, results.csv."""
    d = root / entry
    (d / "evals").mkdir(parents=True)
    conds, files = [], {}
    for seed in (0, 1):
        key = f"{entry}{seed}"
        conds.append({"bias_type": "gender", "arm": "s1", "ratio": 0.5, "seed": seed} | {
            "adapter": key})  # fmt: skip
        files[key] = f"evals/{key}.json"
        (d / files[key]).write_text(json.dumps({"records": {"coreference": recs}}))
    res = {"tasks": [{"name": "coreference", "size": N}], "config": {"seed": 0}}
    res |= {"conditions": conds, "eval_files": files}
    (d / "results.json").write_text(json.dumps(res))
    csv = "task,metric,bias_type,value\ncoreference,bias.pro_anti_gap_p,base,0.2\n"
    (d / "results.csv").write_text(csv)


def _mitigation_config() -> Any:
    return parse_config(
        {
            "name": "m",
            "kind": "mitigation",
            "generator": {"backend": "fake"},
            "measure": {"embedding": False, "n_resamples": 300},
            "inheritance": {"tasks": ["coreference"], "ratios": [0.0, 0.5]},
            "mitigation_study": {"inheritance": ["swap"]},
        }
    )


def test_mitigation_vs_none_is_paired_and_oriented(design: dict[str, Any], tmp_path: Path) -> None:
    """Baseline B (gap 1 in every replicate: CI excludes 0) vs strategy C: difference
    C − B = −acc_anti(R) with a paired CI below 0, reduction acc_anti(R) (defined)."""
    items, recs = design["items"], design["recs"]
    _sub_run(tmp_path, "none", recs["B"])
    _sub_run(tmp_path, "swap", recs["C"])
    reps: dict[Any, list[Any]] = {}
    rows = compare_inheritance(tmp_path, ["swap"], _mitigation_config(), reps)
    assert len(rows) == 1
    r = rows[0]
    expected = _gap(items, recs["C"]) - 1.0
    assert r["difference"] == pytest.approx(expected) and r["difference_ci_high"] < 0
    assert r["baseline"] == 1.0 and r["reduction_status"] == "defined"
    assert r["reduction"] == pytest.approx(-expected)
    assert r["n_seeds"] == 2 and r["ci_method"].startswith("paired")
    assert r["untuned"] == pytest.approx(0.2)  # oriented: + = towards the stereotype
    assert len(reps[("inheritance", "swap", "task_bias", "coreference.bias.pro_anti_gap_p")]) == 1


def test_mitigation_reduction_undefined_when_baseline_ci_includes_zero(
    design: dict[str, Any], tmp_path: Path
) -> None:
    """Baseline R has a small gap (0.1 over 20 clusters; its CI includes 0): the relative
    reduction is undefined and the paired difference is the figure."""
    items, recs = design["items"], design["recs"]
    _sub_run(tmp_path, "none", recs["R"])
    _sub_run(tmp_path, "swap", recs["B"])
    (r,) = compare_inheritance(tmp_path, ["swap"], _mitigation_config(), {})
    assert r["baseline_ci_low"] <= 0 <= r["baseline_ci_high"]
    assert r["reduction_status"].startswith("undefined") and np.isnan(r["reduction"])
    assert r["difference"] == pytest.approx(1.0 - _gap(items, recs["R"]))
    assert r["difference_ci_low"] > 0
