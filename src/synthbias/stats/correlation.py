"""Rank correlations for factor attribution (how a misalignment factor tracks downstream harm)."""

from __future__ import annotations

import numpy as np


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN (undefined) below 3 points or for a constant input."""
    from scipy.stats import rankdata

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def partial_spearman(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> float:
    """Spearman correlation of x and y with the strata (ratios) partialled out: x and y are
    ranked within each stratum and the centred ranks correlated (Pearson), so differences
    between strata (the ratio) contribute nothing."""
    from scipy.stats import rankdata

    rx, ry = np.zeros(len(x)), np.zeros(len(y))
    for s in np.unique(strata):
        m = strata == s
        rx[m] = rankdata(x[m]) - (m.sum() + 1) / 2
        ry[m] = rankdata(y[m]) - (m.sum() + 1) / 2
    if len(x) < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])
