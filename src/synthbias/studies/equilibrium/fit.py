"""The equilibrium fit: the map b_{k+1} = a + c·b_k over every chain's transitions, its slope c
first, and the fixed point b* = a / (1 − c) with a Fieller interval.

Why :func:`synthbias.stats.fixed_point.fit_map` and not a bootstrap over texts: generation 0 is
written to its design level (fixed, not an estimate), chains are the replicates, and resampling
the seed texts adds noise to x that pulls bootstrap slopes towards 0 (the old CI covered the
true b* only about 80 % of the time at c = 0.9). The slope's interval rests on between-chain
variation (delete-one-chain jackknife, t on chains − 1 df), and b*'s interval is unbounded when
c's interval reaches 1. The study and the forecast both call :func:`fit_bias_map`, so they
report the same fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from synthbias.stats.fixed_point import UNBOUNDED, fit_map


def pct_change(value: float, base: float) -> float | None:
    """Percent change from ``base``; None when the base is zero (undefined)."""
    if base == 0 or not math.isfinite(base) or not math.isfinite(value):
        return None
    return 100.0 * (value - base) / abs(base)


def chain_trajectories(
    data: Sequence[Sequence[Sequence[np.ndarray]]], stat: Callable[[np.ndarray], Any]
) -> list[list[float]]:
    """Per (level, chain) the statistic of each generation: ``data[level][chain][k]`` holds the
    per-text values of that corpus."""
    return [
        [float(stat(np.asarray(x))) if len(x) else float("nan") for x in chain]
        for level in data
        for chain in level
    ]


def fit_bias_map(
    trajectories: Sequence[Sequence[float]],
    starts: Sequence[float],
    *,
    first_generation: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Fit the map on chain trajectories (``trajectories[g][k]``: chain g's value at generation
    k; ``starts[g]``: its design level b0) and return the stored form.

    Keys: ``slope`` (c with its CI, MDE and status, reported first), ``fixed_point_interval``
    (b*'s Fieller set: ``status`` bounded / unbounded / not replicated ..., clipped to [0, 1]),
    and the flat keys the console, the forecast command and tracking read: ``a``, ``c``,
    ``fixed_point`` (b*), ``ci`` (b*'s finite interval or None), ``stable`` (|c| < 1),
    ``n_points`` (transitions), ``method``. A fit that cannot be made is ``{"note": ...}``.
    """
    n_all = sum(max(len(t) - 1 - first_generation, 0) for t in trajectories)
    try:
        fit = fit_map(trajectories, starts, first_generation=first_generation, level=level)
    except ValueError as exc:
        return _point_line(trajectories, first_generation, n_all) or {
            "note": f"not fitted: {exc} (have {n_all} transitions)"
        }
    d = fit.to_dict()
    fp = fit.fixed_point
    ci = (
        {"low": fp.ci_low, "high": fp.ci_high, "level": level, "clipped": fp.clipped}
        if fp.bounded
        else None
    )
    return {
        "slope": d["slope"],
        "fixed_point_interval": d["fixed_point"],
        "a": d["a"],
        "c": d["c"],
        "a_se": d["a_se"],
        "fixed_point": d["fixed_point"]["estimate"],
        "ci": ci,
        "stable": abs(fit.c) < 1,
        "status": fit.status,
        "n_points": fit.n_transitions,
        "transitions_left_out": n_all - fit.n_transitions,
        "n_chains": fit.n_chains,
        "first_generation": first_generation,
        "estimator": fit.estimator,
        "method": f"{fit.slope.method}; generation 0 fixed by design, not resampled",
    }


def _point_line(
    trajectories: Sequence[Sequence[float]], first_generation: int, n_all: int
) -> dict[str, Any] | None:
    """Two transitions with distinct b_k (two levels, one generation): the line through them as
    point values, ``not replicated`` (no interval can be formed); None when even that fails."""
    x, y = [], []
    for t in trajectories:
        for k in range(first_generation, len(t) - 1):
            if math.isfinite(t[k]) and math.isfinite(t[k + 1]):
                x.append(t[k])
                y.append(t[k + 1])
    if len(x) != 2 or x[0] == x[1]:
        return None
    c = (y[1] - y[0]) / (x[1] - x[0])
    a = y[0] - c * x[0]
    est = a / (1 - c) if c != 1 else None
    why = "2 transitions: a line through them, no interval (needs ≥ 3 transitions of ≥ 3 chains)"
    return {
        "slope": {"estimate": c, "ci_low": None, "ci_high": None, "status": "not replicated"},
        "fixed_point_interval": {"estimate": est, "status": "not replicated", "note": why},
        "a": a,
        "c": c,
        "a_se": None,
        "fixed_point": est,
        "ci": None,
        "stable": abs(c) < 1,
        "status": "not replicated",
        "n_points": 2,
        "transitions_left_out": n_all - 2,
        "n_chains": sum(1 for t in trajectories if len(t) > first_generation + 1),
        "first_generation": first_generation,
        "estimator": "line through two points",
        "method": why,
    }


def fixed_point_text(eq: dict[str, Any], digits: int = 3) -> str:
    """``b* = 0.41 [0.33, 0.52]``, ``b* = 0.41 (unbounded: c's CI reaches 1)``, ``b* = 0.41
    (not replicated: 2 chains)`` …, from a stored fit."""
    fp = eq.get("fixed_point_interval") or {}
    est = eq.get("fixed_point")
    head = "b* = " + ("—" if est is None else f"{est:.{digits}f}")
    ci = eq.get("ci")
    status = fp.get("status")
    pct = int(round(100 * fp.get("level", 0.95)))
    if ci:
        clipped = " (clipped to [0, 1])" if ci.get("clipped") else ""
        return f"{head} [{pct}% CI {ci['low']:.{digits}f}, {ci['high']:.{digits}f}]{clipped}"
    if status == UNBOUNDED:
        return f"{head} ({pct}% CI unbounded: the slope's CI reaches 1)"
    if status == "not replicated":
        return f"{head} (not replicated: {eq.get('n_chains')} chains, needs ≥ 3 for an interval)"
    return f"{head} (no interval: {status or 'not fitted'})"


def slope_text(eq: dict[str, Any], digits: int = 3) -> str:
    """``c = +0.420 [95% CI +0.200, +0.640] (80%-power MDE 0.310)`` or ``c = +0.420 (not
    replicated …)``."""
    s = eq.get("slope") or {}
    c = eq.get("c")
    head = "c = " + ("—" if c is None else f"{c:+.{digits}f}")
    if s.get("ci_low") is None or s.get("ci_high") is None:
        return f"{head} (not replicated: {eq.get('n_chains')} chains, needs ≥ 3 for an interval)"
    pct = int(round(100 * s.get("level", 0.95)))
    mde = s.get("mde_80")
    tail = f" (80%-power MDE {mde:.{digits}f})" if mde is not None else ""
    return f"{head} [{pct}% CI {s['ci_low']:+.{digits}f}, {s['ci_high']:+.{digits}f}]{tail}"


def map_text(a: float, c: float, digits: int = 3) -> str:
    """``b_(k+1) = 0.120 + 0.450·b_k`` with the sign written once (never ``+ -0.000``)."""
    sign = "−" if c < 0 and round(abs(c), digits) > 0 else "+"
    return f"b_(k+1) = {a:.{digits}f} {sign} {abs(c):.{digits}f}·b_k"
