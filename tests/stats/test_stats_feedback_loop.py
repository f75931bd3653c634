"""The one-generation prediction of where bias settles with real data in the loop (issue 31):
exact algebra, convergence of both regimes to the predicted b*, the Taori–Hashimoto bound, and a
small coverage simulation with loose bounds (``bench/calibration.py`` runs the full one)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthbias.stats import feedback_loop as fl
from synthbias.stats.fixed_point import fieller_fixed_point


def test_fit_recovers_an_exact_map() -> None:
    starts = [0.2] * 4 + [0.8] * 4
    fit = fl.fit_one_generation(starts, [0.3 + 0.4 * s for s in starts])
    assert fit.a == pytest.approx(0.3) and fit.c == pytest.approx(0.4)
    assert fit.gap(0.2) == pytest.approx(0.3 - 0.6 * 0.2) and fit.df == 7
    with pytest.raises(ValueError, match="two or more design levels"):
        fl.fit_one_generation([0.2] * 4, [0.5, 0.6, 0.5, 0.6])
    with pytest.raises(ValueError, match="≥ 3 chains"):
        fl.fit_one_generation([0.2, 0.8], [0.5, 0.6])


@pytest.mark.parametrize("regime", fl.REGIMES)
@pytest.mark.parametrize("rho", [0.0, 0.25, 0.5])
def test_both_regimes_converge_to_the_predicted_fixed_point(regime: str, rho: float) -> None:
    a, c, b_r = 0.5, 0.3, 0.2
    b_star = fl.fixed_point(a, c, rho, b_r)
    assert b_star == pytest.approx(a + c * (rho * b_r + (1 - rho) * b_star))  # a fixed point
    traj = fl.trajectory(a, c, rho, b_r, regime, 5000)  # accumulate closes in as k^-(1-c)
    assert traj[0] == b_r and traj[-1] == pytest.approx(b_star, abs=2e-3)
    if regime == "accumulate":  # slower: after 6 generations still short of b*
        fast = fl.trajectory(a, c, rho, b_r, "replace", 6)[-1]
        assert abs(traj[6] - b_star) > abs(fast - b_star)


def test_real_share_pulls_b_star_towards_the_real_level() -> None:
    a, c, b_r = 0.3, 0.6, 0.2
    stars = [fl.fixed_point(a, c, rho, b_r) for rho in (0.0, 0.25, 0.5, 0.75)]
    assert stars == sorted(stars, reverse=True) and stars[0] == pytest.approx(0.75)
    # b* − b_r = δ(b_r) / (1 − c(1 − ρ))
    gap = a + (c - 1) * b_r
    assert stars[1] - b_r == pytest.approx(gap / (1 - c * 0.75))


def test_mixed_map_without_real_data_is_the_plain_fieller() -> None:
    cov = np.array([[0.01, -0.004], [-0.004, 0.02]])
    fit = fl.OneGenerationFit(0.3, 0.5, cov, 2.3, 10, 0.95, ())
    ours = fl.predict_fixed_point(fit, 0.0, 0.2)
    plain = fieller_fixed_point(0.3, 0.5, cov, 2.3)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((plain.ci_low, plain.ci_high))
    mixed = fl.predict_fixed_point(fit, 0.5, 0.2)
    assert mixed.estimate == pytest.approx(fl.fixed_point(0.3, 0.5, 0.5, 0.2))


@pytest.mark.parametrize("c", [0.0, 0.5, 0.9, 1.0])
def test_bound_holds_the_linear_b_star(c: float) -> None:
    b_r, gap = 0.2, 0.3
    fit = fl.OneGenerationFit(b_r + gap - c * b_r, c, np.zeros((2, 2)), 2.0, 5, 0.95, ())
    for rho in (0.25, 0.5):
        b = fl.taori_hashimoto_bound(fit, rho, b_r)
        assert b["bound"] == pytest.approx(b_r + gap / rho) and "Taori & Hashimoto" in b["source"]
        star = fl.fixed_point(fit.a, c, rho, b_r)
        assert star <= b["bound"] + 1e-12
        assert math.isclose(star, b["bound"]) == (c == 1.0)
    assert fl.taori_hashimoto_bound(fit, 0.0, b_r)["bound"] is None


def test_prediction_covers_a_known_generator() -> None:
    """300 simulated designs (2 levels x 5 chains, 30 pairings each): the predicted b* at ρ = 0.25
    covers the truth about 95 % of the time (loose bounds: Monte Carlo error at 300)."""
    rng = np.random.default_rng(7)
    a, c, b_r, rho = 0.5, 0.3, 0.2, 0.25
    starts = np.repeat([0.2, 0.8], 5)
    truth = fl.fixed_point(a, c, rho, b_r)
    hits = 0
    for _ in range(300):
        p = a + c * starts + rng.normal(0, 0.03, len(starts))
        y = rng.binomial(30, np.clip(p, 0, 1)) / 30
        hits += fl.predict_fixed_point(fl.fit_one_generation(starts, y), rho, b_r).contains(truth)
    assert 0.89 <= hits / 300 <= 0.99


def test_observed_window_and_compare() -> None:
    trajs = [[0.2, 0.6, 0.62, 0.64, 0.6], [0.2, 0.5, 0.6, 0.66, 0.62], [0.2, 0.7, 0.58, 0.6, 0.7]]
    obs = fl.observed_window(trajs, 3)
    assert obs["estimate"] == pytest.approx(np.mean([np.mean(t[-3:]) for t in trajs]))
    assert obs["n_chains"] == 3 and obs["ci_low"] < obs["estimate"] < obs["ci_high"]
    far = {"estimate": 0.2, "se": 0.001, "ci_low": 0.198, "ci_high": 0.202}
    out = fl.compare(far, obs)
    assert not out["covers"] and not out["agrees"]
    near = {"estimate": obs["estimate"], "se": 0.01, "ci_low": 0.5, "ci_high": 0.8}
    assert fl.compare(near, obs)["agrees"] and fl.compare(near, obs)["covers"]
    with pytest.raises(ValueError, match="needs ≥ 4 values"):
        fl.window_mean([0.1, 0.2, 0.3], 3)
