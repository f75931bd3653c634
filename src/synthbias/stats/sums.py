"""The bootstrap of column sums: texts resampled, per-column totals recomputed, all at once.

Corpus metrics that are ratios of corpus-wide sums (group shares, smoothed co-occurrence
probabilities, per-group rates) only need each resample's column sums of a per-text count
matrix. :func:`resampled_sums` computes them for every resample together: rows that are
identical (most texts mention nothing) are pooled and each resample draws how many copies of
each distinct row it holds. That is the ordinary nonparametric bootstrap, just vectorised, which
is what makes 1,000 resamples of a 100k-text corpus cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from synthbias.stats.bootstrap import CI, percentile_ci

Matrix = np.ndarray | sp.spmatrix | sp.sparray


def resampled_sums(X: Matrix, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Column sums of ``X`` (rows = texts) over ``n_resamples`` bootstrap resamples of its rows.

    Returns a ``(n_resamples, n_columns)`` array with the same distribution as
    ``X[rng.integers(0, n, n)].sum(0)`` repeated, computed from the distinct rows only
    (identical rows, e.g. the many texts that mention nothing, are pooled). Each resample draws
    how many copies of each distinct row it holds: a multinomial when there are few distinct
    rows, otherwise resampled indices counted with ``bincount``.
    """
    n, d = X.shape
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.full((n_resamples, d), np.nan)
    U, inv, mult = _distinct_rows(X)
    u = U.shape[0]
    if (u + 1) * 8 <= n:  # few distinct rows: one multinomial per resample over them
        p = mult / n
        W = rng.multinomial(n, p, size=n_resamples).astype(float)
        return _times(W, U)
    out = []
    block = max(1, min(n_resamples, 4_000_000 // n))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        bins = inv[rng.integers(0, n, size=(b, n))] + u * np.arange(b)[:, None]
        W = np.bincount(bins.ravel(), minlength=b * u).reshape(b, u)
        out.append(_times(W.astype(float), U))
    return np.concatenate(out)


def _distinct_rows(X: Matrix) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray, np.ndarray]:
    """(distinct rows U, row -> index into U, multiplicities).

    Rows are grouped by a random projection (1-D ``np.unique``, much faster than
    ``np.unique(axis=0)``) and the grouping is verified exactly; if two different rows ever
    shared a projection, every row is kept as its own group.
    """
    n, d = X.shape
    sparse = sp.issparse(X)
    X = sp.csr_matrix(X, dtype=float) if sparse else np.asarray(X, dtype=float).reshape(n, d)
    w = np.random.default_rng(12345).random(d) + 0.5
    key = np.asarray(X @ w).ravel()
    _, first, inv, mult = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    U = X[first]
    same = (U[inv] != X).nnz == 0 if sparse else np.array_equal(U[inv], X)
    if not same:
        return X, np.arange(n), np.ones(n, dtype=np.int64)
    return U, inv, mult


def _times(W: np.ndarray, U: np.ndarray | sp.csr_matrix) -> np.ndarray:
    if sp.issparse(U):
        return np.asarray((U.T @ W.T).T)
    return W @ U


def sums_ci(
    X: Matrix,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> CI:
    """Bootstrap CI of a statistic of column sums; ``statistic`` maps (B, d) sums to (B,)."""
    if X.shape[0] == 0:
        return CI(float("nan"), float("nan"), level)
    return percentile_ci(statistic(resampled_sums(X, n_resamples, seed)), level)
