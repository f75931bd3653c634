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

from synthbias.measure.direction import (
    CODE_BALANCED,
    OCCUPATION_INDEX,
    label_signs,
    occupation_index,
)
from synthbias.stats.fixed_point import UNBOUNDED, fit_map

#: The chance, over a whole run, that some chain's generation pairs no text of one code, which
#: the size :func:`check_code_balanced` names keeps below.
MISSING_CODE_RISK = 0.05


class UndefinedFitMetric(ValueError):
    """The fit metric cannot be computed for some corpus at this size (the message names the
    corpora and the size it needs)."""


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


def check_code_balanced(
    data: Sequence[Sequence[Sequence[np.ndarray]]],
    levels: Sequence[float],
    metric: str,
    n: int | None = None,
) -> None:
    """The code-balanced share ½[P(stereo | male-coded) + P(stereo | female-coded)] is undefined
    for a corpus without a paired text of one code: the fit does not drop it or fall back to
    the pooled share but raises :class:`UndefinedFitMetric`, naming the corpora and the
    ``study.n`` (texts per chain and generation, half of each code) at which a missing code has
    a chance below :data:`MISSING_CODE_RISK` over the run, at the lowest per-code pairing rate
    the run shows (paired / texts of that code, pooled over the run). ``data[level][chain][k]``
    are packed codes
    (:func:`~synthbias.measure.direction.coded_labels`). Other metrics pass."""
    if metric != CODE_BALANCED:
        return
    missing, n_corpora = [], 0
    texts = {code: 0 for code in OCCUPATION_INDEX}
    pairs = {code: 0 for code in OCCUPATION_INDEX}
    for level, chains in zip(levels, data, strict=True):
        for r, chain in enumerate(chains):
            for k, x in enumerate(chain):
                n_corpora += 1
                x = np.asarray(x)
                occ, sign = occupation_index(x), label_signs(x)
                gone = []
                for code, idx in OCCUPATION_INDEX.items():
                    of_code = occ == idx
                    paired = int((of_code & (sign != 0)).sum())
                    texts[code] += int(of_code.sum())
                    pairs[code] += paired
                    if paired == 0:
                        gone.append(code)
                if gone:
                    missing.append(
                        f"b0 = {level:g}, chain {r}, generation {k}: no paired "
                        + " or ".join(gone)
                        + " text"
                    )
    if not missing:
        return
    rates = [pairs[c] / texts[c] if texts[c] else 0.0 for c in OCCUPATION_INDEX]
    raise UndefinedFitMetric(
        f"{metric} is undefined for {len(missing)} of {n_corpora} corpora ("
        + "; ".join(missing[:3])
        + ("; …" if len(missing) > 3 else "")
        + "): it needs a paired text of each occupation code in every chain's generation. "
        + needed_size_text(min(rates), n_corpora, n)
        + " The corpora are stored: the same --out reuses them with another fit metric, e.g. "
        "study.fit_metric: rule.gender.conditional_stereotype_share (the pooled share, which a "
        "global he/she lean moves)."
    )


def needed_size_text(rate: float, n_corpora: int, n: int | None) -> str:
    """``At the lower per-code pairing rate (0.41), study.n ≥ 24 …``: the texts per chain
    and generation (half of each code) at which P(no paired text of a code in some corpus) <
    :data:`MISSING_CODE_RISK` over ``2 · n_corpora`` chances."""
    have = f"; this run has study.n = {n}" if n is not None else ""
    if rate <= 0:
        return f"No text of one code is paired anywhere in the run, so no size suffices{have}."
    per_chance = MISSING_CODE_RISK / (2 * max(n_corpora, 1))
    per_code = 1 if rate >= 1 else math.ceil(math.log(per_chance) / math.log(1 - rate))
    return (
        f"At the run's lower per-code pairing rate ({rate:.2f}), study.n ≥ {2 * per_code} texts "
        f"per chain and generation ({per_code} of each code) keeps the chance of a missing code "
        f"below {MISSING_CODE_RISK:.0%} over the run's {n_corpora} corpora{have}."
    )


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
