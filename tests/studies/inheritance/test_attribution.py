"""Factor attribution that is not the ratio in disguise (paired arm effects: test_pairing)."""

from __future__ import annotations

import numpy as np
import pytest

from synthbias.stats.correlation import partial_spearman
from synthbias.studies.inheritance.attribution import factor_attribution


def _design(n_per_ratio: int = 8, seed: int = 0):
    """Points at ratios 0.5 and 1 that differ in bias type / arm; harm = 2 * ratio + signal
    (factor magnitudes are positive, like JSD / MMD / Fréchet)."""
    rng = np.random.default_rng(seed)
    harm, factors = {}, {}
    for ratio in (0.0, 0.5, 1.0):
        for j in range(n_per_ratio):
            key = (f"type{j % 4}", "control" if j >= 4 else "s1", ratio, j // 8)
            signal = rng.normal()
            harm[key] = 2 * ratio + signal
            factors[key] = {
                "tracks": {"value": 5 + ratio + signal + 0.1 * rng.normal()},
                "ratio_only": {"value": ratio},
                "noise": {"value": 5 + ratio + rng.normal()},
            }
    return harm, factors


def test_fixed_ratio_and_pooled_association_without_the_anchor() -> None:
    harm, factors = _design()
    rows = factor_attribution(harm, factors, n_resamples=300, min_points=6)
    by = {(r["factor"], r["scope"]): r for r in rows}
    assert {s for _, s in by} == {"ratio=0.5", "ratio=1", "pooled (ratio partialled out)"}
    pooled = by[("tracks", "pooled (ratio partialled out)")]
    assert pooled["n_points"] == 16  # r = 0 excluded
    assert pooled["association"] > 0.8 and pooled["informative"]
    assert by[("tracks", "ratio=1")]["association"] > 0.8
    # a factor that only follows the ratio has nothing to say once the ratio is fixed
    ratio_only = by[("ratio_only", "pooled (ratio partialled out)")]
    assert ratio_only["association"] is None and not ratio_only["informative"]
    assert by[("ratio_only", "ratio=0.5")]["association"] is None


def test_too_few_points_are_declared() -> None:
    harm, factors = _design(n_per_ratio=4)
    rows = factor_attribution(harm, factors, n_resamples=100, min_points=6)
    fixed = [r for r in rows if r["scope"] == "ratio=1"]
    assert fixed and all(r["association"] is None for r in fixed)
    assert all("too few points to tell: 4 points" in r["note"] for r in fixed)
    pooled = [r for r in rows if r["scope"].startswith("pooled")]
    # 8 points over 2 ratios come from 4 units (bias type x arm x seed), each at both ratios:
    # the bootstrap is over units, and 4 independent units are too few
    assert all(r["n_units"] == 4 and r["association"] is None for r in pooled)
    assert all("from 4 units over 2 ratios" in r["note"] for r in pooled)


def test_pooled_bootstrap_resamples_units_not_points() -> None:
    harm, factors = _design()
    rows = factor_attribution(harm, factors, n_resamples=200, min_points=6)
    pooled = next(r for r in rows if r["factor"] == "tracks" and r["scope"].startswith("pooled"))
    assert pooled["n_points"] == 16 and pooled["n_units"] == 8


def test_left_out_factor_is_reported_with_its_reason() -> None:
    harm, factors = _design()
    rows = factor_attribution(harm, factors, excluded={"noise": "undefined here"}, n_resamples=50)
    left = [r for r in rows if r["factor"] == "noise"]
    assert len(left) == 1 and left[0]["scope"] == "left out" and left[0]["note"] == "undefined here"


def test_partial_spearman_removes_the_strata() -> None:
    x = np.array([1.0, 2.0, 3.0, 11.0, 12.0, 13.0])
    y = np.array([3.0, 2.0, 1.0, 13.0, 12.0, 11.0])  # across strata: rising; within: falling
    s = np.array([0, 0, 0, 1, 1, 1])
    assert partial_spearman(x, y, s) == pytest.approx(-1.0)
