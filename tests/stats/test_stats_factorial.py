"""The factorial estimator: designs, contrasts, recovery of a known factor, interval coverage."""

from __future__ import annotations

import numpy as np
import pytest

from synthbias.stats.factorial import (
    SCENARIO,
    aliases,
    calibrate,
    design_matrix,
    effect_contrasts,
    factorial_table,
    simulate_values,
)

NAMES = ["values", "group_data", "distribution"]


def test_designs_and_contrasts() -> None:
    full = design_matrix(3)
    assert full.shape == (8, 3) and {tuple(r) for r in full} == {
        (a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)
    }
    half = design_matrix(3, "half")
    assert half.shape == (4, 3)
    assert [c.name for c in effect_contrasts(full, NAMES)] == [
        *NAMES,
        "values x group_data",
        "values x distribution",
        "group_data x distribution",
    ]
    # the half fraction cannot resolve two-way interactions (aliased with main effects)
    assert [c.name for c in effect_contrasts(half, NAMES)] == NAMES
    assert "values is aliased with group_data x distribution" in aliases(half, NAMES)
    assert aliases(full, NAMES) == []
    with pytest.raises(ValueError, match="two levels"):
        effect_contrasts(full[:1], NAMES)


def test_exact_effects_without_noise() -> None:
    design = design_matrix(3)
    coded = 2 * design - 1
    # y = 1 + 0.3 * (values high - low) + 0.1 * (group x distribution), every replicate alike
    y = 1 + 0.3 * coded[:, 0] / 2 + 0.1 * coded[:, 1] * coded[:, 2] / 2
    rows = {r["effect"]: r for r in factorial_table(design, np.tile(y, (4, 1)), NAMES)}
    assert rows["values"]["estimate"] == pytest.approx(0.3)
    assert rows["group_data x distribution"]["estimate"] == pytest.approx(0.1)
    assert rows["group_data"]["estimate"] == pytest.approx(0.0, abs=1e-12)
    assert rows["values x group_data"]["estimate"] == pytest.approx(0.0, abs=1e-12)


def test_recovers_the_one_driving_factor_and_no_other() -> None:
    design = design_matrix(3)
    rng = np.random.default_rng(3)
    found = {n: 0 for n in NAMES}
    n_sim = 200
    for _ in range(n_sim):
        v = simulate_values(
            rng,
            design,
            [0.0, 0.08, 0.0],  # group data drives the bias
            n_replicates=5,
            replicate_sd=0.05,
            replicate_x_factor_sd=0.01,
            cell_sd=0.01,
        )
        for r in factorial_table(design, v, NAMES, interactions=False):
            found[r["effect"]] += r["ci_low"] > 0 or r["ci_high"] < 0
    assert found["group_data"] / n_sim > 0.95  # power against a large effect
    assert found["values"] / n_sim < 0.1 and found["distribution"] / n_sim < 0.1


def test_not_replicated_below_three() -> None:
    design = design_matrix(3)
    rows = factorial_table(design, np.ones((2, 8)), NAMES)
    assert all(r["status"] == "not replicated" and r["ci_low"] is None for r in rows)


def test_calibration_covers_within_the_bench_band() -> None:
    for fraction in ("full", "half"):
        for est in calibrate(n_sim=400, seed=1, fraction=fraction):
            assert est["study"] == "attribution" and est["n_sim"] == 400
            assert est["between_replicate_sd"] > 0
            assert 0.92 <= est["coverage"] <= 0.98, est
    assert SCENARIO["effects"][0] != 0
