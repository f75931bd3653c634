"""The equilibrium fit: a linear map b_{k+1} = a + c·b_k on every chain's transitions, its fixed
point b* = a / (1 − c) when |c| < 1, and bootstrap intervals for both."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from synthbias.measure.direction import mean_stat
from synthbias.measure.result import CI, percentile_ci
from synthbias.stats.chains import text_draws

# --------------------------------------------------------------------------- equilibrium fit


@dataclass
class EquilibriumFit:
    """Linear bias map b_{k+1} = a + c·b_k and its fixed point a / (1 − c) with a bootstrap CI.

    ``stable`` is |c| < 1 (an attracting equilibrium). ``stable_share`` is the share of bootstrap
    fits that were stable; the CI is over those.
    """

    a: float
    c: float
    fixed_point: float
    stable: bool
    n_points: int
    ci: CI | None = None
    stable_share: float | None = None
    method: str = "texts"
    n_resamples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("a", "c", "fixed_point"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = None
        return d


def _transitions(trajectories: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for traj in trajectories:
        for k in range(len(traj) - 1):
            xs.append(traj[k])
            ys.append(traj[k + 1])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def fit_linear_map(trajectories: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """Least-squares a, c of b_{k+1} = a + c·b_k over all transitions; returns (a, c, b*).

    b* is nan when c == 1 (no fixed point).
    """
    x, y = _transitions(trajectories)
    if len(x) < 2:
        raise ValueError("need at least two transitions (levels × generations) to fit")
    if np.ptp(x) == 0:
        raise ValueError("all starting values are equal; the map's slope is not identified")
    c, a = np.polyfit(x, y, 1)
    fp = a / (1 - c) if c != 1 else float("nan")
    return float(a), float(c), float(fp)


def fit_equilibrium(
    per_sample: Sequence[Sequence[np.ndarray]],
    method: str = "texts",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EquilibriumFit:
    """Fit the bias map on corpus means, one chain per level (see :func:`fit_equilibrium_chains`).

    ``per_sample[l][k]`` holds the per-text scores (e.g. 0/1 stereotypical) of level ``l`` at
    generation ``k``; the corpus bias is their mean. ``method="texts"`` resamples texts within each
    corpus (measurement noise); ``"pairs"`` resamples the transitions themselves.
    """
    if method not in ("texts", "pairs"):
        raise ValueError(f"unknown CI method {method!r}; use 'texts' or 'pairs'")
    data = [[[np.asarray(s, dtype=float) for s in lv]] for lv in per_sample]
    return fit_equilibrium_chains(data, mean_stat, method, n_resamples, level, seed)


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


def _fit_points(trajs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _transitions(trajs)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def fit_equilibrium_chains(
    data: Sequence[Sequence[Sequence[np.ndarray]]],
    stat: Callable[[np.ndarray], Any],
    method: str = "chains",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EquilibriumFit:
    """Fit b_(k+1) = a + c·b_k on every chain's transitions and bootstrap the fixed point.

    ``data[level][chain][k]`` holds the per-text values (e.g. +1/−1/0 pairing codes) of one
    corpus and ``stat`` turns a (resamples, texts) array into one value per resample (ratio
    statistics are recomputed on resampled texts). ``method``: ``chains`` draws chains with
    replacement within each level, then texts within each drawn chain (with one chain per level
    this is the texts bootstrap, labelled so); ``texts`` keeps the chains and resamples texts;
    ``pairs`` resamples the transitions. Transitions with an undefined value (no pairings) are
    left out of the fit, and their count is recorded.
    """
    if method not in ("chains", "texts", "pairs"):
        raise ValueError(f"unknown CI method {method!r}; use 'chains', 'texts' or 'pairs'")
    trajs = chain_trajectories(data, stat)
    x, y = _fit_points(trajs)
    n_all = sum(max(len(t) - 1, 0) for t in trajs)
    a, c, fp = fit_linear_map([list(p) for p in zip(x, y, strict=True)])
    rng = np.random.default_rng(seed)
    chains_per_level = [len(lv) for lv in data]
    fps: list[float] = []
    stable = 0
    if method == "pairs":
        boots = []
        for _ in range(n_resamples):
            idx = rng.integers(0, len(x), len(x))
            boots.append((x[idx], y[idx]))
    else:
        # draws[level][chain][k]: the statistic of n_resamples * R text resamples of that corpus
        draws = [
            [[text_draws(np.asarray(g), stat, n_resamples * len(lv), rng) for g in ch] for ch in lv]
            for lv in data
        ]
        boots = []
        for b in range(n_resamples):
            trs: list[list[float]] = []
            for li, lv in enumerate(draws):
                r = chains_per_level[li]
                picks = rng.integers(0, r, r) if method == "chains" else np.arange(r)
                for slot, ch in enumerate(picks):
                    trs.append([float(d[b * r + slot]) for d in lv[ch]])
            boots.append(_fit_points(trs))
    for bx, by in boots:
        if len(bx) < 2 or np.ptp(bx) == 0:
            continue
        bc, ba = np.polyfit(bx, by, 1)
        if abs(bc) < 1:
            stable += 1
            fps.append(ba / (1 - bc))
    ci = None
    if fps:
        ci = percentile_ci(np.asarray(fps), level)
    single = all(r == 1 for r in chains_per_level)
    label = method
    if method == "chains" and single:
        label = "chains (single chain per level: texts only)"
    return EquilibriumFit(
        a=a,
        c=c,
        fixed_point=fp,
        stable=abs(c) < 1,
        n_points=len(x),
        ci=ci,
        stable_share=stable / n_resamples if n_resamples else None,
        method=label,
        n_resamples=n_resamples,
        extra={
            "chains_per_level": chains_per_level,
            "transitions_left_out": n_all - len(x),
            "single_chain": single,
        },
    )
