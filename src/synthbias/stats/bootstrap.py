"""The percentile bootstrap: its draws and its intervals.

* **Draws** — resampled row indices of one or of two independent samples, the same draws as
  count weights (rows of an (m, n) matrix summing to n, for statistics that are weighted
  sums), multinomial mean weights, and one resample of each of several independent samples per
  replicate.
* **Intervals** — one sample, two independent samples, and the interval of already-resampled
  statistics. Cluster, stratified and paired resampling and permutation nulls build on these in
  :mod:`synthbias.stats.resampling`; the bootstrap of column sums is :mod:`synthbias.stats.sums`.

Every draw takes the caller's ``numpy`` generator, so a caller that draws several things from
one generator keeps its order of draws (and its numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class CI:
    low: float
    high: float
    level: float = 0.95

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "level": self.level}


# --------------------------------------------------------------------------- draws


def two_sample_indices(
    n_a: int, n_b: int, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Resampled row indices of two independent samples, shapes (n_resamples, n_a) and
    (n_resamples, n_b): every row of ``a``'s draws first, then ``b``'s."""
    ia = rng.integers(0, n_a, size=(n_resamples, n_a))
    ib = rng.integers(0, n_b, size=(n_resamples, n_b))
    return ia, ib


def bootstrap_weights(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """``m`` bootstrap resamples of ``n`` units as count weights: an (m, n) array, rows sum to n."""
    if n == 0:
        return np.zeros((m, 0))
    idx = rng.integers(0, n, size=(m, n)) + (np.arange(m) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)


def two_sample_weights(
    n_a: int, n_b: int, n_resamples: int, seed: int, max_cells: int = 4_000_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks of (weights of ``a``, weights of ``b``) that resample two independent samples
    separately; a block holds about ``max_cells`` cells, so a 100k-text corpus stays in memory."""
    rng = np.random.default_rng(seed)
    block = max(1, min(n_resamples, max_cells // max(n_a, n_b, 1)))
    for start in range(0, n_resamples, block):
        m = min(block, n_resamples - start)
        yield bootstrap_weights(n_a, m, rng), bootstrap_weights(n_b, m, rng)


def multinomial_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap resamples of ``n`` units as mean weights (counts / n), shape (n_resamples, n):
    ``weights @ values`` is each resample's mean."""
    return rng.multinomial(n, np.full(n, 1 / n), size=n_resamples) / n


def independent_resamples(
    samples: Sequence[np.ndarray], n_resamples: int, rng: np.random.Generator
) -> Iterator[list[np.ndarray]]:
    """Per replicate, one resample (rows drawn with replacement) of each sample, in order."""
    for _ in range(n_resamples):
        yield [s[rng.integers(0, len(s), len(s))] for s in samples]


# --------------------------------------------------------------------------- intervals


def bootstrap_ci(
    samples: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    batched: bool = False,
) -> CI:
    """Percentile bootstrap CI of ``statistic`` over resampled units (rows of ``samples``).

    The statistic takes the resampled array; for ratio-type metrics pass a 2-D array of
    per-sample numerator/denominator columns and a statistic that divides sums. With
    ``batched`` it takes a stack of resampled arrays (resamples first) and returns one value
    per resample: the same draws, without a Python call per resample.
    """
    arr = np.asarray(samples, dtype=float)
    n = len(arr)
    if n == 0:
        return CI(float("nan"), float("nan"), level)
    rng = np.random.default_rng(seed)
    # Resample in blocks so memory stays ~O(8M indices) even for 100k-text corpora.
    block = max(1, min(n_resamples, 8_000_000 // max(n, 1)))
    parts = []
    for start in range(0, n_resamples, block):
        idx = rng.integers(0, n, size=(min(block, n_resamples - start), n))
        if arr.ndim == 1 and statistic is np.mean:
            parts.append(arr[idx].mean(axis=1))
        elif batched:
            parts.append(np.asarray(statistic(arr[idx]), dtype=float))
        else:
            parts.append(np.array([statistic(arr[i]) for i in idx]))
    return percentile_ci(np.concatenate(parts), level)


def two_sample_ci(
    a: Sequence[Any] | np.ndarray,
    b: Sequence[Any] | np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap CI of ``statistic(a, b)`` for two independent samples.

    Rows of ``a`` and of ``b`` are resampled separately (the samples are independent corpora),
    e.g. for an augmented-minus-real difference. Resamples whose statistic is NaN are dropped.
    """
    arr_a, arr_b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(arr_a) == 0 or len(arr_b) == 0:
        return CI(float("nan"), float("nan"), level)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for k, (ra, rb) in enumerate(independent_resamples([arr_a, arr_b], n_resamples, rng)):
        stats[k] = statistic(ra, rb)
    return percentile_ci(stats, level)


def percentile_interval(
    values: Sequence[float] | np.ndarray, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the finite values (NaN, NaN when there are none); unlike
    :func:`percentile_ci`, infinite resamples are dropped too."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if len(arr) == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(arr, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def percentile_ci(stats: Sequence[float] | np.ndarray, level: float = 0.95) -> CI:
    """Percentile interval of bootstrap statistics (NaN resamples dropped; NaN if none left)."""
    arr = np.asarray(stats, dtype=float).ravel()
    arr = arr[~np.isnan(arr)]
    if len(arr) == 0:
        return CI(float("nan"), float("nan"), level)
    alpha = (1 - level) / 2
    # interpolating between an infinite and a finite value gives NaN: take order statistics then
    method = "nearest" if np.isinf(arr).any() else "linear"
    lo, hi = np.quantile(arr, [alpha, 1 - alpha], method=method)
    return CI(float(lo), float(hi), level)
