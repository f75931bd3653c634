"""The attribution study's conclusions from per-(arm, replicate) numbers: a simulated harm that
depends on one known factor is attributed to that factor and no other; a manipulation that
leaks into another factor's measure fails its check and is not attributed."""

from __future__ import annotations

import numpy as np

from synthbias.stats.factorial import design_matrix
from synthbias.studies.attribution.analysis import (
    answers,
    arm_checks,
    arm_names,
    factor_checks,
    harm_effects,
    measure_effects,
    spearman_view,
)

OWNERS = {
    "values": ["values.gender.sentiment_gap"],
    "group_data": ["group_data.gender.representation_jsd"],
    "distribution": ["distribution.mmd2"],
}
R = 5


def _cells(design: np.ndarray, fn, seed: int) -> dict[tuple[str, int], float]:
    """(arm, replicate) -> fn(levels) + replicate effect + noise."""
    rng = np.random.default_rng(seed)
    rep = rng.normal(0, 0.05, R)
    return {
        (a, r): fn(levels) + rep[r] + rng.normal(0, 0.005)
        for r in range(R)
        for a, levels in zip(arm_names(design), design, strict=True)
    }


def _measures(design: np.ndarray, leak: float = 0.0) -> dict[str, dict[tuple[str, int], float]]:
    """Each factor moves its own measure by 0.2; ``leak``: values also moves the group JSD."""
    return {
        OWNERS["values"][0]: _cells(design, lambda lv: 0.1 + 0.2 * lv[0], 1),
        OWNERS["group_data"][0]: _cells(design, lambda lv: 0.05 + 0.2 * lv[1] + leak * lv[0], 2),
        OWNERS["distribution"][0]: _cells(design, lambda lv: 0.01 + 0.2 * lv[2], 3),
    }


def _run(design: np.ndarray, measures, harm_fn, seed: int = 7):
    effects = measure_effects(design, measures, R)
    checks = factor_checks(effects, OWNERS, tolerance=0.25)
    harm = {
        "hiring_decision": _cells(design, harm_fn, seed),
        "story_generation": _cells(design, lambda lv: 0.0, seed + 1),
    }
    rows = harm_effects(
        design,
        harm,
        {"hiring_decision": "bias.p_yes_signed", "story_generation": "bias.sentiment_signed_p"},
        checks,
        R,
        interactions=True,
        adjust="holm",
    )
    return checks, rows, answers(rows, checks), harm


def test_simulated_harm_is_attributed_to_its_factor_and_no_other() -> None:
    design = design_matrix(3)
    checks, rows, text, harm = _run(design, _measures(design), lambda lv: 0.04 * lv[1])
    assert all(c["passed"] for c in checks), checks
    main = {(r["task"], r["effect"]): r for r in rows if r["kind"] == "main"}
    hit = main[("hiring_decision", "group_data")]
    assert hit["detected"] and hit["attributed"]
    assert hit["ci_low"] <= 0.04 <= hit["ci_high"]
    detected = {k for k, r in main.items() if r["detected"]}
    assert detected == {("hiring_decision", "group_data")}
    assert {r["family_size"] for r in main.values()} == {6}  # 2 tasks x 3 factors
    assert text[0].startswith("hiring_decision (bias.p_yes_signed")
    assert "group data moves its bias by +0.04" in text[0]
    assert "story_generation" in text[1] and "no factor moves its bias" in text[1]
    assert "MDE 80 %" in text[1]
    # the interactions are estimated and none is flagged
    inter = [r for r in rows if r["kind"] == "interaction"]
    assert len(inter) == 6 and not any(r["detected"] for r in inter)
    # the observational view runs over the 40 (arm, replicate) units
    view = spearman_view(harm, _measures(design), "gender", 0.5, n_resamples=200, seed=0)
    assert {r["n_points"] for r in view} == {40}


def test_a_leaking_manipulation_fails_its_check_and_is_not_attributed() -> None:
    design = design_matrix(3)
    # values also moves the representation JSD by 0.15 (75 % of group data's own 0.2)
    measures = _measures(design, leak=0.15)
    checks, rows, text, _ = _run(design, measures, lambda lv: 0.04 * lv[0])
    verdict = {c["factor"]: c for c in checks}
    assert not verdict["values"]["passed"]
    assert "leaked into group_data.gender.representation_jsd" in verdict["values"]["reasons"][0]
    assert verdict["group_data"]["passed"] and verdict["distribution"]["passed"]
    hit = next(r for r in rows if r["task"] == "hiring_decision" and r["effect"] == "values")
    assert hit["detected"] and not hit["attributed"]
    assert "values's change" in text[0] and "not attributed" in text[0]
    arms = {
        a["arm"]: a
        for a in arm_checks(design, measures, OWNERS, measure_effects(design, measures, R), R, 0.25)
    }
    assert arms["v0-g0-d0"]["status"] == "reference"
    assert arms["v1-g0-d0"]["status"] == "FAILED"
    assert arms["v0-g1-d0"]["status"] == "passed"


def test_a_manipulation_that_did_not_move_its_measure_fails() -> None:
    design = design_matrix(3)
    measures = _measures(design)
    measures[OWNERS["distribution"][0]] = _cells(design, lambda lv: 0.01, 3)  # no effect
    checks = factor_checks(measure_effects(design, measures, R), OWNERS, 0.25)
    verdict = {c["factor"]: c for c in checks}
    assert not verdict["distribution"]["passed"]
    assert "did not move its measures (distribution.mmd2" in verdict["distribution"]["reasons"][0]
