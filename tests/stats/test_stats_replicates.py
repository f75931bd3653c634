"""Replicate-level inference, power, multiplicity and the equilibrium map (issue 26's core).

Known answers (scipy's t-interval and t-tests, Holm and Benjamini–Hochberg by their textbook
definitions, a brute-force Fieller set), the "not replicated" status below three replicates,
and small coverage simulations with loose bounds (``bench/calibration.py`` runs the full ones).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from synthbias.stats.fixed_point import fieller_fixed_point, fit_map
from synthbias.stats.multiplicity import adjust, benjamini_hochberg, flag_family, holm
from synthbias.stats.power import (
    between_component,
    headline_se,
    mde,
    plan_items,
    plan_replicates,
    power_at,
)
from synthbias.stats.replicates import (
    bootstrap_p_value,
    factorial_effect,
    factorial_effects,
    paired_arms,
    paired_difference,
    paired_items,
    paired_mean_difference,
    replicate_estimate,
    replicate_slopes,
    slope_over_replicates,
)

# --------------------------------------------------------------------------- replicate headlines


def test_t_interval_matches_scipy() -> None:
    x = np.array([0.12, 0.31, 0.05, 0.22, 0.18, 0.27])
    res = replicate_estimate(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=sps.sem(x))
    assert res.status == "replicated" and res.replicated
    assert res.estimate == pytest.approx(x.mean())
    assert (res.ci_low, res.ci_high) == pytest.approx((lo, hi))
    assert res.se == pytest.approx(sps.sem(x))
    assert res.df == 5 and res.n_replicates == 6
    assert res.p_value == pytest.approx(sps.ttest_1samp(x, 0.0).pvalue)
    assert res.mde_80 == pytest.approx((sps.t.ppf(0.975, 5) + sps.t.ppf(0.8, 5)) * sps.sem(x))
    json.dumps(res.to_dict())


def test_below_three_replicates_is_not_replicated() -> None:
    for values in ([0.4, 0.6], [0.5], [math.nan, 0.2, math.nan, 0.3]):
        res = replicate_estimate(values)
        assert res.status == "not replicated" and not res.replicated
        assert res.ci_low is None and res.ci_high is None and res.se is None
        assert res.p_value is None and res.mde_80 is None
        assert not res.covers(0.5)
        d = res.to_dict()
        assert d["status"] == "not replicated" and d["ci_low"] is None
    assert replicate_estimate([0.4, 0.6]).estimate == pytest.approx(0.5)
    assert replicate_estimate([math.nan, math.nan]).estimate is None


def test_failed_replicates_are_left_out() -> None:
    res = replicate_estimate([1.0, math.nan, 2.0, 3.0])
    assert res.n_replicates == 3 and res.estimate == pytest.approx(2.0)


def test_paired_difference_is_the_paired_t_test() -> None:
    arm = np.array([0.50, 0.61, 0.47, 0.58, 0.55])
    base = np.array([0.44, 0.52, 0.45, 0.50, 0.49])
    res = paired_difference(arm, base)
    assert res.estimate == pytest.approx((arm - base).mean())
    assert res.p_value == pytest.approx(sps.ttest_rel(arm, base).pvalue)
    table = np.column_stack([base, arm, arm + 0.1])
    arms = paired_arms(table, ["control", "biased", "more"], "control")
    assert set(arms) == {"biased", "more"}
    assert arms["biased"].ci_low == pytest.approx(res.ci_low)
    with pytest.raises(ValueError):
        paired_difference(arm, base[:4])


def test_two_stage_matches_t_for_item_means() -> None:
    rng = np.random.default_rng(3)
    items = [rng.normal(m, 1.0, 80) for m in rng.normal(0.2, 0.15, 6)]
    t_res = replicate_estimate(items=items)
    boot = replicate_estimate(items=items, method="two_stage", n_resamples=4000, seed=1)
    assert boot.estimate == pytest.approx(t_res.estimate)
    assert boot.method.startswith("two-stage")
    assert boot.se == pytest.approx(t_res.se, rel=0.35)
    with pytest.raises(ValueError):
        replicate_estimate([0.1, 0.2, 0.3], method="two_stage")
    with pytest.raises(ValueError):
        replicate_estimate([0.1, 0.2, 0.3], method="percentile")  # type: ignore[arg-type]


def test_paired_items_statistic() -> None:
    arm = [np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])]
    base = [np.array([0.0, 1.0, 2.0]), np.array([1.0, 3.0])]
    cols = paired_items(arm, base)
    assert cols[0].shape == (3, 2)
    assert paired_mean_difference(cols[0][None])[0] == pytest.approx(1.0)
    res = replicate_estimate(items=cols, statistic=paired_mean_difference)
    assert res.per_replicate == pytest.approx((1.0, 0.0)) and not res.replicated


def test_bootstrap_p_value() -> None:
    assert bootstrap_p_value(np.arange(1, 1000)) == pytest.approx(2 / 1000)
    assert bootstrap_p_value(np.linspace(-1, 1, 1001)) == pytest.approx(1.0)
    assert bootstrap_p_value([math.nan]) is None


def test_replicate_slopes_and_factorial_effects() -> None:
    x = np.array([0.0, 0.25, 0.5, 1.0])
    values = np.array([[0.1, 0.12, 0.16, 0.2], [0.0, 0.05, 0.07, 0.15], [0.3, 0.3, 0.35, 0.4]])
    slopes = replicate_slopes(x, values)
    assert slopes == pytest.approx([np.polyfit(x, v, 1)[0] for v in values])
    values[1, 2] = math.nan
    assert replicate_slopes(x, values)[1] == pytest.approx(
        np.polyfit(x[[0, 1, 3]], values[1, [0, 1, 3]], 1)[0]
    )
    assert slope_over_replicates(x, values).n_replicates == 3

    design = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(4, 8))
    eff = factorial_effects(design, vals)
    high, low = design[:, 1] == 1, design[:, 1] == 0
    assert eff[:, 1] == pytest.approx(vals[:, high].mean(1) - vals[:, low].mean(1))
    assert factorial_effects(design, vals, interactions=True) == pytest.approx(eff)
    res = factorial_effect(design, vals, factor=1)
    assert res.estimate == pytest.approx(eff[:, 1].mean()) and res.df == 3
    vals[0, 3] = math.nan
    assert np.isnan(factorial_effects(design, vals)[0]).all()


# --------------------------------------------------------------------------- power


def test_mde_and_power() -> None:
    assert mde(1.0) == pytest.approx(2.8016, abs=1e-3)
    assert mde(0.5, df=4) == pytest.approx(0.5 * (sps.t.ppf(0.975, 4) + sps.t.ppf(0.8, 4)))
    assert mde(math.nan) is None
    assert power_at(mde(1.0), 1.0) == pytest.approx(0.8, abs=0.01)
    assert power_at(mde(1.0, df=9), 1.0, df=9) == pytest.approx(0.8, abs=0.03)
    assert power_at(0.0, 1.0) == pytest.approx(0.05, abs=1e-6)


def test_planning() -> None:
    plan = plan_replicates(0.1, between_sd=0.1)
    assert plan.feasible and plan.replicates is not None
    r = plan.replicates
    assert mde(0.1 / math.sqrt(r), df=r - 1) <= 0.1 < mde(0.1 / math.sqrt(r - 1), df=r - 2)
    two = plan_replicates(0.1, between_sd=0.05, within_sd=1.0, items=50)
    assert two.replicates > plan_replicates(0.1, between_sd=0.05).replicates  # type: ignore[operator]
    need = plan_items(0.1, between_sd=0.05, within_sd=1.0, replicates=10)
    assert need.feasible and need.mde <= 0.1  # type: ignore[operator]
    n = need.items
    assert mde(headline_se(10, 0.05, 1.0, n - 1), df=9) > 0.1  # type: ignore[operator]
    floor = plan_items(0.05, between_sd=0.1, within_sd=1.0, replicates=5)
    assert not floor.feasible and "replicates" in floor.note
    assert not plan_replicates(1e-6, between_sd=1.0, max_replicates=50).feasible
    assert between_component(0.2, 1.0, 100) == pytest.approx(math.sqrt(0.04 - 0.01))
    json.dumps(need.to_dict())


# --------------------------------------------------------------------------- multiplicity


def _holm_by_definition(p: list[float]) -> list[float]:
    m, order = len(p), np.argsort(p)
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, max((m - j) * p[order[j]] for j in range(rank + 1)))
    return out


def _bh_by_definition(p: list[float]) -> list[float]:
    m, order = len(p), np.argsort(p)
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = min(1.0, min(m * p[order[j]] / (j + 1) for j in range(rank, m)))
    return out


def test_holm_and_bh_known_answers() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(5)
    for _ in range(20):
        q = list(rng.uniform(0, 0.2, 9))
        assert holm(q) == pytest.approx(_holm_by_definition(q))
        assert benjamini_hochberg(q) == pytest.approx(_bh_by_definition(q))


def test_adjust_and_flag_family() -> None:
    adj = adjust([0.001, None, 0.04, math.nan, 0.02], "holm")
    assert adj.family_size == 3
    assert adj.p_adjusted == pytest.approx((0.003, None, 0.04, None, 0.04))
    assert adj.detected == (True, False, True, False, True)
    assert adjust([0.001, 0.04, 0.03], "bh").method == "Benjamini-Hochberg"
    rows = [
        replicate_estimate(v).to_dict()
        for v in ([0.5, 0.6, 0.55, 0.52], [0.01, -0.02, 0.03, 0.0], [0.3, 0.4])
    ]
    flagged = flag_family(rows, family="task x arm")
    assert [r["detected"] for r in flagged] == [True, False, False]
    assert all(r["family_size"] == 2 and r["adjustment"] == "Holm" for r in flagged)
    assert flagged[2]["p_adjusted"] is None and "detected" not in rows[0]
    with pytest.raises(ValueError):
        adjust([0.1], "bonferroni")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- equilibrium map


def _brute_fieller(a: float, c: float, cov: np.ndarray, t: float, grid: np.ndarray) -> np.ndarray:
    var = cov[0, 0] + 2 * grid * cov[0, 1] + grid**2 * cov[1, 1]
    return (a + (c - 1) * grid) ** 2 <= t**2 * var


def test_fieller_bounded_matches_brute_force() -> None:
    cov = np.array([[4e-4, -5e-4], [-5e-4, 1e-3]])
    fp = fieller_fixed_point(0.3, 0.5, cov, 2.06, bounds=None)
    assert fp.status == "bounded" and fp.bounded and not fp.clipped
    assert fp.estimate == pytest.approx(0.6)
    grid = np.linspace(-2, 3, 200_001)
    inside = grid[_brute_fieller(0.3, 0.5, cov, 2.06, grid)]
    assert (fp.ci_low, fp.ci_high) == pytest.approx((inside.min(), inside.max()), abs=1e-4)
    assert fp.contains(0.6) and not fp.contains(2.0)


def test_fieller_unbounded_when_slope_ci_reaches_one() -> None:
    # c = 0.96 with se 0.03: c's CI [0.898, 1.022] reaches 1
    cov = np.array([[2.5e-4, -3e-4], [-3e-4, 9e-4]])
    fp = fieller_fixed_point(0.026, 0.96, cov, 2.06)
    assert fp.status == "unbounded" and not fp.bounded
    assert fp.ci_low is None and fp.ci_high is None
    assert fp.contains(1e6) or fp.contains(-1e6)
    assert fp.contains(fp.estimate)  # type: ignore[arg-type]
    d = fp.to_dict()
    assert d["ci_low"] is None and d["status"] == "unbounded"
    json.dumps(d)
    grid = np.linspace(-50, 50, 10_001)
    brute = _brute_fieller(0.026, 0.96, cov, 2.06, grid)
    assert np.array_equal(brute, np.array([fp.contains(b) for b in grid]))


def test_fieller_clipped_to_share_and_unstable() -> None:
    cov = np.array([[4e-3, -4e-3], [-4e-3, 5e-3]])
    fp = fieller_fixed_point(0.45, 0.5, cov, 2.0)
    assert fp.clipped and fp.ci_high == 1.0 and fp.status == "bounded"
    up = fieller_fixed_point(-0.2, 1.5, np.diag([1e-4, 1e-3]), 2.0)
    assert up.status == "unstable" and up.bounded
    assert fieller_fixed_point(0.1, 1.0, np.eye(2) * 1e-3, 2.0).status == "no fixed point"


def _chains(rng: np.random.Generator, c: float, b_star: float = 0.65, per_level: int = 4):
    levels = np.repeat([0.1, 0.4, 0.7, 0.9], per_level)
    a = (1 - c) * b_star
    u = rng.normal(0, 0.02, len(levels))
    tr = np.empty((len(levels), 5))
    tr[:, 0] = levels
    for k in range(4):
        p = np.clip(a + c * tr[:, k] + u + rng.normal(0, 0.02, len(levels)), 0, 1)
        tr[:, k + 1] = rng.binomial(200, p) / 200
    return tr


def test_fit_map_recovers_an_exact_map() -> None:
    levels = [0.1, 0.5, 0.9, 0.3]
    trajs = []
    for b0 in levels:
        b = [b0]
        for _ in range(3):
            b.append(0.2 + 0.6 * b[-1])
        trajs.append(b)
    for est in ("design_iv", "ols"):
        fit = fit_map(trajs, estimator=est)
        assert fit.a == pytest.approx(0.2) and fit.c == pytest.approx(0.6)
        assert fit.fixed_point.estimate == pytest.approx(0.5)
        assert fit.n_chains == 4 and fit.n_transitions == 12
    later = fit_map(trajs, first_generation=1)
    assert later.c == pytest.approx(0.6) and later.n_transitions == 8
    json.dumps(later.to_dict())


def test_fit_map_not_replicated_and_unidentified() -> None:
    two = fit_map([[0.2, 0.5, 0.55], [0.8, 0.6, 0.58]])
    assert two.status == "not replicated" and two.slope.ci_low is None
    assert two.fixed_point.status == "not replicated" and two.fixed_point.estimate is not None
    with pytest.raises(ValueError):
        fit_map([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError):
        fit_map([[0.2, 0.5]], estimator="gmm")  # type: ignore[arg-type]


def test_fit_map_sandwich_and_starts() -> None:
    tr = _chains(np.random.default_rng(1), 0.5)
    jk = fit_map(tr)
    sw = fit_map(tr, variance="sandwich")
    assert jk.c == pytest.approx(sw.c) and "jackknife" in jk.slope.method
    assert "sandwich" in sw.slope.method
    noisy0 = tr.copy()
    noisy0[:, 0] += 0.01  # a measured generation 0; the design level still instruments
    assert fit_map(noisy0, starts=tr[:, 0]).n_chains == len(tr)


# --------------------------------------------------------------------------- coverage


def test_small_coverage_simulation() -> None:
    rng = np.random.default_rng(11)
    n_sim = 200
    hits = 0
    for _ in range(n_sim):
        d = 0.05 + rng.normal(0, 0.04, 5) + rng.normal(0, 0.3, (5, 50)).mean(1)
        hits += replicate_estimate(d).covers(0.05)
    assert 0.88 <= hits / n_sim <= 0.99
    slope_hits = fp_hits = 0
    for _ in range(n_sim):
        fit = fit_map(_chains(rng, 0.9))
        slope_hits += fit.slope.covers(0.9)
        fp_hits += fit.fixed_point.contains(0.65)
    assert 0.86 <= slope_hits / n_sim <= 0.995
    assert 0.86 <= fp_hits / n_sim <= 0.995
