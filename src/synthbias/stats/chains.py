"""Two-stage (cluster) bootstrap over replicate chains: chains first, then texts within each drawn
chain, for any per-text statistic (the equilibrium study's direction metrics)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthbias.stats.bootstrap import CI, percentile_ci

Stat = Callable[[np.ndarray], np.ndarray]


def resample_stat(x: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` bootstrap resamples of the rows of ``x`` (shape (n_resamples, len(x)))."""
    return x[rng.integers(0, len(x), size=(n_resamples, len(x)))]


# --------------------------------------------------------------------------- replicate chains


@dataclass
class ClusterValue:
    """A generation's value over replicate chains: their mean and a cluster-bootstrap CI."""

    value: float
    ci: CI
    per_chain: list[float]
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": _finite(self.value),
            "ci": {
                "low": _finite(self.ci.low),
                "high": _finite(self.ci.high),
                "level": self.ci.level,
            },
            "per_chain": [_finite(v) for v in self.per_chain],
            "method": self.method,
        }


def _finite(v: float) -> float | None:
    return float(v) if v is not None and np.isfinite(v) else None


def text_draws(x: np.ndarray, stat: Stat, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``stat`` of ``n_draws`` text resamples of one corpus (NaN for an empty corpus)."""
    if len(x) == 0:
        return np.full(n_draws, np.nan)
    out = np.empty(n_draws)
    block = max(1, 4_000_000 // len(x))
    for start in range(0, n_draws, block):
        stop = min(n_draws, start + block)
        out[start:stop] = stat(resample_stat(x, stop - start, rng))
    return out


def chain_picks(n_chains: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Chains drawn with replacement per resample (shape (n_resamples, n_chains)); with one chain
    the only draw is that chain (the CI then resamples texts only)."""
    return rng.integers(0, n_chains, size=(n_resamples, n_chains))


def cluster_values(
    chains: Sequence[np.ndarray],
    stat: Stat,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> ClusterValue:
    """Mean of ``stat`` over chains, with a two-stage (chains, then texts) bootstrap CI.

    Each resample draws R chains with replacement and, for each drawn chain, a fresh resample of
    its texts; the statistic is the mean over the drawn chains (chains where it is undefined,
    e.g. no pairings, are left out of that mean).
    """
    if not chains:
        raise ValueError("no chains to summarise")
    rng = np.random.default_rng(seed)
    r = len(chains)
    point = np.array([float(stat(np.asarray(x))) if len(x) else np.nan for x in chains])
    draws = np.stack(
        [
            text_draws(np.asarray(x), stat, n_resamples * r, rng).reshape(n_resamples, r)
            for x in chains
        ]
    )  # (chain, resample, slot)
    picks = chain_picks(r, n_resamples, rng)
    slots = np.broadcast_to(np.arange(r), picks.shape)
    boot = draws[picks, np.arange(n_resamples)[:, None], slots]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as they should
        means = np.nanmean(boot, axis=1)
        value = float(np.nanmean(point)) if np.isfinite(point).any() else float("nan")
    method = "chains, then texts" if r > 1 else "single chain: texts only"
    return ClusterValue(value, percentile_ci(means, level), point.tolist(), method)
