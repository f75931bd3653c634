"""The equilibrium map b_{k+1} = a + c·b_k over replicate chains, its slope first, and the fixed
point b* = a / (1 − c) with a Fieller interval that says when it has no finite bound.

**Design.** Chains start at design levels b0 (generation 0 is written to that share: fixed by
design, never resampled) and each generation's corpus is drawn from a model trained on the
previous one. The x of a transition is the previous corpus's share, which the next model
actually learns from; chains are the replicates.

**Estimator.** Pooled least squares of b_{k+1} on b_k is biased when chains differ
persistently (a chain effect raises every b_k of its chain, x included: the dynamic-panel bias).
Template → model transitions escape it (their x is the design level), later ones do not: in the
calibration bench, pooled least squares on generation ≥ 1 transitions covers c = 0.1 only about
70 % of the time. The default (``estimator="design_iv"``) is two-stage least squares that
instruments b_k with the design: generation-specific linear functions of the chain's b0, which
no chain effect can move. At generation 0 the instrument *is* x, so the template → model
transitions enter as they are; later ones enter through their predictable part.
``estimator="ols"`` keeps pooled least squares (valid when chain deviations do not persist).
``first_generation=1`` fits model → model transitions only (generation ≥ 1); its instruments
are weak when c is small, which widens the slope's interval honestly rather than biasing it.

**Intervals.** Chains are the replicates. The covariance of (a, c) is the delete-one-chain
jackknife (every chain left out in turn and the whole fit, first stage included, redone;
``variance="sandwich"`` gives the CR1 chain-cluster sandwich, which runs about 1.5 points short
of 95 % at 25 chains), with t on G − 1 df for G chains: the analytic counterpart of a cluster
bootstrap over chains, without its instability at a handful of chains. The slope c and its CI
are reported first. b* = a / (1 − c) gets the Fieller interval — the b whose line value
a + (c − 1)·b is within t standard errors of 0. Its set is a bounded interval exactly when c's
CI excludes 1; when c's CI reaches 1 it is unbounded (a whole line or two half-lines) and is
reported with ``status="unbounded"`` and no finite ends. For a share the bounded interval is
clipped to [0, 1] and flagged. ``bench/calibration.py`` checks coverage at c = 0.1, 0.9 and 0.97.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synthbias.stats.power import MIN_REPLICATES, t_quantile
from synthbias.stats.replicates import NOT_REPLICATED, ReplicateResult, not_replicated, t_result

Estimator = Literal["design_iv", "ols"]
Variance = Literal["jackknife", "sandwich"]
ESTIMATOR_NAMES = {
    "design_iv": "least squares instrumented by design level × generation",
    "ols": "pooled least squares",
}

BOUNDED = "bounded"
UNBOUNDED = "unbounded"
UNSTABLE = "unstable"
OUTSIDE = "outside bounds"
NO_FIXED_POINT = "no fixed point"


@dataclass(frozen=True)
class FixedPoint:
    """b* = a / (1 − c) and its Fieller set.

    ``status``: ``bounded`` (c's CI below 1 in size: a finite interval), ``unbounded`` (c's CI
    reaches 1: no finite interval, ``ci_low``/``ci_high`` None), ``unstable`` (c's CI lies beyond
    ±1: a finite interval around a repelling point), ``outside bounds`` (the interval misses
    ``bounds``), ``not replicated`` (too few chains) or ``no fixed point`` (c = 1).
    ``pieces`` is the Fieller set before clipping (±inf allowed), for :meth:`contains`."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    status: str
    clipped: bool = False
    level: float = 0.95
    pieces: tuple[tuple[float, float], ...] = ()

    @property
    def bounded(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    def contains(self, value: float) -> bool:
        """Whether the Fieller set (unclipped, unbounded ones included) contains ``value``."""
        return any(lo <= value <= hi for lo, hi in self.pieces)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": _finite(self.estimate),
            "ci_low": _finite(self.ci_low),
            "ci_high": _finite(self.ci_high),
            "status": self.status,
            "clipped": self.clipped,
            "level": self.level,
            "set": [[_finite(lo), _finite(hi)] for lo, hi in self.pieces],
        }


def _finite(v: float | None) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


@dataclass(frozen=True)
class MapFit:
    """The fitted map: intercept ``a``, ``slope`` (c with its CI, reported first), the
    ``fixed_point`` and the fit's size; ``status`` is the slope's (``replicated`` or
    ``not replicated``)."""

    a: float
    slope: ReplicateResult
    fixed_point: FixedPoint
    n_chains: int
    n_transitions: int
    first_generation: int
    estimator: str
    a_se: float | None = None
    cov_ac: float | None = None

    @property
    def c(self) -> float:
        return float(self.slope.estimate)  # type: ignore[arg-type]

    @property
    def status(self) -> str:
        return self.slope.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "slope": self.slope.to_dict(),
            "fixed_point": self.fixed_point.to_dict(),
            "a": _finite(self.a),
            "c": _finite(self.c),
            "a_se": _finite(self.a_se),
            "cov_ac": _finite(self.cov_ac),
            "n_chains": self.n_chains,
            "n_transitions": self.n_transitions,
            "first_generation": self.first_generation,
            "estimator": self.estimator,
            "status": self.status,
        }


# --------------------------------------------------------------------------- Fieller


def fieller_fixed_point(
    a: float,
    c: float,
    cov: np.ndarray | Sequence[Sequence[float]],
    t: float,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    level: float = 0.95,
) -> FixedPoint:
    """Fieller set of b* = a / (1 − c): the b with (a + (c − 1)b)² ≤ t² Var(a + (c − 1)b).

    ``cov`` is the 2 × 2 covariance of (a, c). The quadratic A b² + B b + C ≤ 0 has
    A = (1 − c)² − t² Var(c), so the set is a bounded interval exactly when |1 − c| > t·se(c),
    i.e. when c's t-interval excludes 1; otherwise it is unbounded.
    """
    v = np.asarray(cov, dtype=float)
    est = a / (1 - c) if c != 1 else None
    if est is None:
        return FixedPoint(None, None, None, NO_FIXED_POINT, False, level, ((-math.inf, math.inf),))
    t2 = t * t
    qa = (c - 1) ** 2 - t2 * v[1, 1]
    qb = 2 * (a * (c - 1) - t2 * v[0, 1])
    qc = a * a - t2 * v[0, 0]
    disc = max(qb * qb - 4 * qa * qc, 0.0)
    if qa <= 0:
        if qa == 0 or disc == 0:
            pieces: tuple[tuple[float, float], ...] = ((-math.inf, math.inf),)
        else:
            r1, r2 = sorted(
                ((-qb - math.sqrt(disc)) / (2 * qa), (-qb + math.sqrt(disc)) / (2 * qa))
            )
            pieces = ((-math.inf, float(r1)), (float(r2), math.inf))
        return FixedPoint(est, None, None, UNBOUNDED, False, level, pieces)
    lo = float((-qb - math.sqrt(disc)) / (2 * qa))
    hi = float((-qb + math.sqrt(disc)) / (2 * qa))
    c_half = t * math.sqrt(max(v[1, 1], 0.0))
    status = UNSTABLE if (c - c_half > 1 or c + c_half < -1) else BOUNDED
    clipped = False
    out_lo, out_hi = lo, hi
    if bounds is not None:
        out_lo, out_hi = max(lo, bounds[0]), min(hi, bounds[1])
        clipped = (out_lo, out_hi) != (lo, hi)
        if out_lo > out_hi:
            return FixedPoint(est, None, None, OUTSIDE, True, level, ((lo, hi),))
    return FixedPoint(est, out_lo, out_hi, status, clipped, level, ((lo, hi),))


# --------------------------------------------------------------------------- the fit


def transitions(
    trajectories: Sequence[Sequence[float]],
    starts: Sequence[float] | None = None,
    first_generation: int = 0,
) -> dict[str, np.ndarray]:
    """The fit's rows: x = b_k, y = b_{k+1}, the generation k, the chain's design level b0
    (default: its generation-0 value) and its chain index, for k ≥ ``first_generation``; rows
    with a non-finite x or y are left out."""
    rows: list[tuple[float, float, int, float, int]] = []
    for g, traj in enumerate(trajectories):
        b = np.asarray(traj, dtype=float)
        z = float(starts[g]) if starts is not None else float(b[0])
        for k in range(first_generation, len(b) - 1):
            if math.isfinite(b[k]) and math.isfinite(b[k + 1]):
                rows.append((b[k], b[k + 1], k, z, g))
    arr = np.array(rows, dtype=float).reshape(-1, 5)
    return {
        "x": arr[:, 0],
        "y": arr[:, 1],
        "generation": arr[:, 2].astype(int),
        "start": arr[:, 3],
        "chain": arr[:, 4].astype(int),
    }


def _design_projection(x: np.ndarray, rows: dict[str, np.ndarray]) -> np.ndarray:
    """X projected on the instruments: per generation, a line in the chain's design level."""
    gens = np.unique(rows["generation"])
    dummies = (rows["generation"][:, None] == gens[None, :]).astype(float)
    z = np.column_stack([dummies, dummies * rows["start"][:, None]])
    coef = np.linalg.lstsq(z, x, rcond=None)[0]
    return z @ coef


def _identified(gram: np.ndarray) -> bool:
    return abs(np.linalg.det(gram)) > 1e-12 * max(1.0, float(np.abs(gram).max()) ** 2)


def _coefficients(
    rows: dict[str, np.ndarray], estimator: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(beta, X, projected X, (X̂'X)⁻¹) of the fit on ``rows``; None when not identified."""
    n = len(rows["y"])
    x = np.column_stack([np.ones(n), rows["x"]])
    xh = x if estimator == "ols" else _design_projection(x, rows)
    gram = xh.T @ x
    if n < 3 or not _identified(gram):
        return None
    bread = np.linalg.inv(gram)
    return bread @ (xh.T @ rows["y"]), x, xh, bread


def _sandwich(
    rows: dict[str, np.ndarray], fit: tuple[np.ndarray, ...], chains: np.ndarray
) -> np.ndarray:
    """Chain-cluster sandwich (CR1) covariance of (a, c)."""
    beta, x, xh, bread = fit
    g, n = len(chains), len(rows["y"])
    scores = np.zeros((g, 2))
    resid = rows["y"] - x @ beta
    np.add.at(scores, np.searchsorted(chains, rows["chain"]), xh * resid[:, None])
    return g / (g - 1) * (n - 1) / max(n - 2, 1) * bread @ (scores.T @ scores) @ bread.T


def _jackknife(
    rows: dict[str, np.ndarray], estimator: str, chains: np.ndarray
) -> np.ndarray | None:
    """Delete-one-chain jackknife covariance of (a, c), refitting everything (the instruments'
    first stage included) without each chain; None if a deletion leaves the fit unidentified."""
    betas = []
    for ch in chains:
        keep = rows["chain"] != ch
        fit = _coefficients({k: v[keep] for k, v in rows.items()}, estimator)
        if fit is None:
            return None
        betas.append(fit[0])
    b = np.asarray(betas)
    d = b - b.mean(axis=0)
    g = len(chains)
    return (g - 1) / g * d.T @ d


def fit_map(
    trajectories: Sequence[Sequence[float]],
    starts: Sequence[float] | None = None,
    *,
    first_generation: int = 0,
    estimator: Estimator = "design_iv",
    level: float = 0.95,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    variance: Variance = "jackknife",
) -> MapFit:
    """Fit b_{k+1} = a + c·b_k on every chain's transitions (see the module docstring).

    ``trajectories[g]`` is chain g's values b_0 … b_K by generation (NaN for an unmeasured one);
    ``starts[g]`` its design level (default: b_0, which is fixed by design). Chains are the
    replicates: the interval rests on between-chain variation, and with fewer than 3 chains in
    the fit the slope and b* are point values with status ``not replicated``. ``bounds`` clips
    b*'s interval (None for a quantity that is not a share). ``variance="jackknife"`` falls back
    to the sandwich when leaving a chain out leaves the slope unidentified (the label says so).
    """
    if estimator not in ESTIMATOR_NAMES:
        raise ValueError(f"unknown estimator {estimator!r}; use 'design_iv' or 'ols'")
    if variance not in ("jackknife", "sandwich"):
        raise ValueError(f"unknown variance {variance!r}; use 'jackknife' or 'sandwich'")
    rows = transitions(trajectories, starts, first_generation)
    fit = _coefficients(rows, estimator)
    if fit is None:
        raise ValueError(
            "the map's slope is not identified: it needs three transitions and b_k varying "
            "with the chains' design levels or over generations"
        )
    a, c = float(fit[0][0]), float(fit[0][1])
    chains = np.unique(rows["chain"])
    g, n = len(chains), len(rows["y"])
    base = {"n_chains": g, "n_transitions": n, "first_generation": first_generation}
    if g < MIN_REPLICATES:
        slope = not_replicated(c, g, f"{ESTIMATOR_NAMES[estimator]}; {g} chains", level)
        fp = FixedPoint(a / (1 - c) if c != 1 else None, None, None, NOT_REPLICATED, level=level)
        return MapFit(a, slope, fp, estimator=estimator, **base)
    cov = _jackknife(rows, estimator, chains) if variance == "jackknife" else None
    if cov is None:  # asked for, or a chain's deletion leaves the fit unidentified
        cov, variance = _sandwich(rows, fit, chains), "sandwich"
    label = f"{ESTIMATOR_NAMES[estimator]}; chain {variance}, t on {g - 1} df"
    df = g - 1
    t = t_quantile(1 - (1 - level) / 2, df)
    slope = t_result(c, math.sqrt(max(cov[1, 1], 0.0)), df, g, label, level)
    fp = fieller_fixed_point(a, c, cov, t, bounds, level)
    return MapFit(
        a,
        slope,
        fp,
        estimator=estimator,
        a_se=math.sqrt(max(cov[0, 0], 0.0)),
        cov_ac=float(cov[0, 1]),
        **base,
    )
