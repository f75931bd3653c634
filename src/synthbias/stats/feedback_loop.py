"""Where bias settles when every generation mixes real and synthetic examples, predicted from one
generation (issue 31).

**Model.** A generator shown few-shot examples whose stereotype share is x writes texts whose
share is, in expectation, the map f(x) = a + c·x (the equilibrium study's map). Its *calibration
gap* at x is δ(x) = f(x) − x: the generator's share minus its examples' share. Generation 0 is a
fixed real corpus at share b_r (the chain's design level). Each later corpus is written from
examples of which a share ρ (``real_share``) is real and the rest synthetic:

* ``replace``: the synthetic part is generation k, x_k = ρ·b_r + (1 − ρ)·b_k;
* ``accumulate``: the synthetic part is generations 0..k pooled (each text alike),
  x_k = ρ·b_r + (1 − ρ)·mean(b_0, …, b_k).

(Shares of examples mix as written when every example carries a coded pairing equally often;
a corpus with fewer pairings weighs a little less in a conditional share.)

Both regimes settle at the same fixed point, the b with b = f(ρ·b_r + (1 − ρ)·b):

    b* = (a + c·ρ·b_r) / (1 − c·(1 − ρ)),   so   b* − b_r = δ(b_r) / (1 − c·(1 − ρ)).

``accumulate`` gets there more slowly (its pool remembers every earlier generation), which is
why the prediction is also given for the generations a run observes (:func:`trajectory`).

**From one generation.** Generation 0 → 1 alone gives (a, c): one transition per chain at the
chains' design levels (fixed by design, so x carries no noise), fitted by least squares with
the delete-one-chain jackknife covariance and t on chains − 1 df (:func:`fit_one_generation`).
The interval of b* is Fieller's (:func:`~synthbias.stats.fixed_point.fieller_fixed_point`) on
the mixed map a' = a + c·ρ·b_r, c' = c·(1 − ρ): bounded exactly when c'’s interval excludes 1.
The predicted mean over a window of generations gets the jackknife-t interval of the same fit.
``bench/calibration.py`` checks both intervals' coverage.

**The published bound beside it.** Taori & Hashimoto (ICML 2023, "Data feedback loops:
model-driven amplification of dataset biases"): with m real and k synthetic items per round and
a generator whose calibration gap is at most δ, the limit is at most δ·(1 + k/m) above the real
data's bias. Here k/m = (1 − ρ)/ρ, so the bound is b_r + δ/ρ (none at ρ = 0). With δ = δ(b_r),
the gap the chains start from, the linear map's b* lies inside it for 0 ≤ c ≤ 1 and reaches it
at c = 1 (a generator that copies its examples' share and adds δ): :func:`taori_hashimoto_bound`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthbias.stats.fixed_point import FixedPoint, fieller_fixed_point
from synthbias.stats.power import MIN_REPLICATES, t_quantile

REGIMES = ("replace", "accumulate")
TH_SOURCE = (
    "Taori & Hashimoto (ICML 2023), Data feedback loops: limit ≤ real bias + δ·(1 + k/m), "
    "k/m = synthetic/real items per round = (1 − ρ)/ρ"
)


@dataclass(frozen=True)
class OneGenerationFit:
    """The map f(x) = a + c·x fitted on generation 0 → 1: estimates, the 2 × 2 covariance of
    (a, c) (delete-one-chain jackknife), the t quantile on chains − 1 df, and the leave-one-out
    refits that interval any prediction made from it."""

    a: float
    c: float
    cov: np.ndarray
    t: float
    n_chains: int
    level: float
    loo: tuple[tuple[float, float], ...]

    @property
    def df(self) -> int:
        return self.n_chains - 1

    def gap(self, x: float) -> float:
        """Calibration gap δ(x) = f(x) − x."""
        return self.a + (self.c - 1) * x

    def gap_interval(self, x: float) -> tuple[float, float, float]:
        """δ(x) with its t interval: (estimate, low, high)."""
        g = np.array([1.0, x])
        se = math.sqrt(max(float(g @ self.cov @ g), 0.0))
        d = self.gap(x)
        return d, d - self.t * se, d + self.t * se

    def to_dict(self) -> dict[str, Any]:
        se = np.sqrt(np.maximum(np.diag(self.cov), 0.0))
        h = self.t * se[1]
        return {
            "a": self.a,
            "c": self.c,
            "a_se": float(se[0]),
            "c_se": float(se[1]),
            "cov_ac": float(self.cov[0, 1]),
            "c_ci": {"low": self.c - h, "high": self.c + h, "level": self.level},
            "n_chains": self.n_chains,
            "df": self.df,
            "method": "least squares on generation 0 → 1 (x = design level); delete-one-chain "
            f"jackknife covariance, t on {self.df} df",
        }


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    if sxx <= 0:
        raise ValueError("the slope needs generation 0 at two or more design levels")
    c = float(((x - xm) * (y - y.mean())).sum() / sxx)
    return float(y.mean() - c * xm), c


def fit_one_generation(
    starts: Sequence[float], gen1: Sequence[float], level: float = 0.95
) -> OneGenerationFit:
    """Fit f from one transition per chain: ``starts[g]`` its design level b0 (generation 0,
    fixed), ``gen1[g]`` its generation-1 share. Non-finite ``gen1`` values are left out. Needs
    ≥ 3 chains and two design levels; every chain left out in turn must leave two levels."""
    x = np.asarray(starts, float)
    y = np.asarray(gen1, float)
    if x.shape != y.shape:
        raise ValueError(f"{len(x)} starts but {len(y)} generation-1 values")
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    g = len(x)
    if g < MIN_REPLICATES:
        raise ValueError(
            f"the prediction needs ≥ {MIN_REPLICATES} chains with generation 1, has {g}"
        )
    a, c = _ols(x, y)
    loo = []
    for i in range(g):
        m = np.arange(g) != i
        loo.append(_ols(x[m], y[m]))
    est = np.array(loo)
    dev = est - est.mean(axis=0)
    cov = (g - 1) / g * dev.T @ dev
    t = t_quantile(1 - (1 - level) / 2, g - 1)
    return OneGenerationFit(a, c, cov, t, g, level, tuple(map(tuple, loo)))


def fixed_point(a: float, c: float, real_share: float, b_real: float) -> float:
    """b* = (a + c·ρ·b_r) / (1 − c·(1 − ρ)) (the same in both regimes); inf where undefined."""
    den = 1 - c * (1 - real_share)
    return (a + c * real_share * b_real) / den if den != 0 else math.inf


def mixed_map(
    fit: OneGenerationFit, real_share: float, b_real: float
) -> tuple[float, float, np.ndarray]:
    """(a', c', cov'): the map of b_k once a share ρ of the examples is real, a' = a + c·ρ·b_r,
    c' = c·(1 − ρ), with the covariance carried through (a linear transform of (a, c))."""
    m = np.array([[1.0, real_share * b_real], [0.0, 1 - real_share]])
    v = m @ fit.cov @ m.T
    return fit.a + fit.c * real_share * b_real, fit.c * (1 - real_share), v


def predict_fixed_point(fit: OneGenerationFit, real_share: float, b_real: float) -> FixedPoint:
    """b* with its Fieller interval (clipped to [0, 1]; ``unbounded`` when c'’s interval
    reaches 1)."""
    a2, c2, v = mixed_map(fit, real_share, b_real)
    return fieller_fixed_point(a2, c2, v, fit.t, (0.0, 1.0), fit.level)


def trajectory(
    a: float, c: float, real_share: float, b_real: float, regime: str, generations: int
) -> list[float]:
    """Expected b_0 … b_G under the regime (b_0 = b_r, the real corpus; see the module)."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; use one of {', '.join(REGIMES)}")
    b, total = [b_real], b_real
    for _ in range(generations):
        pool = b[-1] if regime == "replace" else total / len(b)
        b.append(a + c * (real_share * b_real + (1 - real_share) * pool))
        total += b[-1]
    return b


def window_mean(values: Sequence[float], window: int) -> float:
    """Mean of the last ``window`` values (the generations a run's observed level averages)."""
    if window < 1 or len(values) <= window:
        raise ValueError(f"a window of {window} needs ≥ {window + 1} values, got {len(values)}")
    return float(np.mean(values[-window:]))


def predict_window(
    fit: OneGenerationFit,
    real_share: float,
    b_real: float,
    regime: str,
    generations: int,
    window: int,
) -> dict[str, Any]:
    """The predicted mean over generations G − window + 1 … G with its jackknife-t interval
    (each leave-one-chain-out fit's trajectory, as :func:`fit_one_generation` made them)."""

    def at(a: float, c: float) -> float:
        return window_mean(trajectory(a, c, real_share, b_real, regime, generations), window)

    est = at(fit.a, fit.c)
    loo = np.array([at(a, c) for a, c in fit.loo])
    g = len(loo)
    se = math.sqrt((g - 1) / g * float(((loo - loo.mean()) ** 2).sum()))
    return {
        "estimate": est,
        "se": se,
        "ci_low": est - fit.t * se,
        "ci_high": est + fit.t * se,
        "level": fit.level,
        "generations": [generations - window + 1, generations],
    }


def taori_hashimoto_bound(fit: OneGenerationFit, real_share: float, b_real: float) -> dict:
    """The bound b_r + δ/ρ at δ = δ(b_r) (point) and at δ's interval end furthest from 0
    (``conservative``); ``None`` values with a note at ρ = 0 (no real data: no bound)."""
    d, lo, hi = fit.gap_interval(b_real)
    out: dict[str, Any] = {"source": TH_SOURCE, "gap": d, "gap_ci": [lo, hi], "b_real": b_real}
    if real_share <= 0:
        return {**out, "bound": None, "conservative": None, "note": "ρ = 0: no real data, no bound"}
    far = hi if abs(hi) >= abs(lo) else lo
    return {**out, "bound": b_real + d / real_share, "conservative": b_real + far / real_share}


def observed_window(per_chain: Sequence[Sequence[float]], window: int, level: float = 0.95) -> dict:
    """The observed level: per chain the mean of its last ``window`` generations, then the mean
    over chains with a t interval on chains − 1 df (chains are the replicates)."""
    vals = np.array([window_mean(t, window) for t in per_chain], float)
    vals = vals[np.isfinite(vals)]
    g = len(vals)
    if g < MIN_REPLICATES:
        raise ValueError(f"the observed level needs ≥ {MIN_REPLICATES} chains, has {g}")
    est = float(vals.mean())
    se = float(vals.std(ddof=1) / math.sqrt(g))
    t = t_quantile(1 - (1 - level) / 2, g - 1)
    return {
        "estimate": est,
        "se": se,
        "ci_low": est - t * se,
        "ci_high": est + t * se,
        "level": level,
        "n_chains": g,
        "per_chain": vals.tolist(),
    }


def compare(predicted: dict[str, Any], observed: dict[str, Any], level: float = 0.95) -> dict:
    """``covers``: the observed estimate lies in the prediction's interval; ``difference``:
    observed − predicted with a t interval from both standard errors (the two rest on different
    generations of the chains), on the smaller of their df; ``agrees``: that interval holds 0."""
    diff = observed["estimate"] - predicted["estimate"]
    se = math.sqrt(predicted["se"] ** 2 + observed["se"] ** 2)
    t = t_quantile(1 - (1 - level) / 2, max(observed["n_chains"] - 1, 1))
    return {
        "covers": predicted["ci_low"] <= observed["estimate"] <= predicted["ci_high"],
        "difference": {"estimate": diff, "ci_low": diff - t * se, "ci_high": diff + t * se},
        "agrees": diff - t * se <= 0 <= diff + t * se,
    }
