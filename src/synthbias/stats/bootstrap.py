"""Percentile bootstrap intervals: one sample, two independent samples, and the interval of
already-resampled statistics (cluster and paired resampling build on these in
:mod:`synthbias.stats.resampling` and :mod:`synthbias.tasks.paired`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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


def bootstrap_ci(
    samples: Sequence[float] | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> CI:
    """Percentile bootstrap CI of ``statistic`` over resampled units (rows of ``samples``).

    The statistic takes the resampled array; for ratio-type metrics pass a 2-D array of
    per-sample numerator/denominator columns and a statistic that divides sums.
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
    for k in range(n_resamples):
        ia = rng.integers(0, len(arr_a), len(arr_a))
        ib = rng.integers(0, len(arr_b), len(arr_b))
        stats[k] = statistic(arr_a[ia], arr_b[ib])
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
