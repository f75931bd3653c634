"""Divergences between discrete distributions, in bits, along the last axis.

One implementation for the lexical representation metrics (many bootstrap rows at once) and
the misalignment factors (one pair, with per-category terms): inputs are non-negative weights,
normalised here; 0·log 0 = 0; a row without mass (or with a NaN weight) gives NaN, because a
corpus that names no group has no distribution to compare. Rows broadcast (``(n, k)`` against
``(1, k)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def normalise(p: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; NaN where a row has no mass."""
    tot = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, p / tot, np.nan)


def _pair(p: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p_arr, q_arr = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    try:
        np.broadcast_shapes(p_arr.shape, q_arr.shape)
    except ValueError:
        raise ValueError(
            f"p and q must have the same shape, got {p_arr.shape} and {q_arr.shape}"
        ) from None
    if np.any(p_arr < 0) or np.any(q_arr < 0):
        raise ValueError("distributions must be non-negative")
    return normalise(p_arr), normalise(q_arr)


def _rows(value: np.ndarray) -> np.ndarray | float:
    """A 1-D input gives a float, rows give an array."""
    return float(value) if np.ndim(value) == 0 else value


def jsd_terms(p: ArrayLike, q: ArrayLike) -> np.ndarray:
    """Per-category contributions to JSD(p, q) in bits (they sum to the divergence)."""
    p_arr, q_arr = _pair(p, q)
    m = (p_arr + q_arr) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        kp = np.where(p_arr > 0, p_arr * np.log2(p_arr / m), 0.0)
        kq = np.where(q_arr > 0, q_arr * np.log2(q_arr / m), 0.0)
    return np.where(np.isnan(m), np.nan, 0.5 * (kp + kq))


def js_divergence(p: ArrayLike, q: ArrayLike) -> np.ndarray | float:
    """Jensen–Shannon divergence in bits, in [0, 1] (the divergence, not its square root)."""
    return _rows(np.clip(jsd_terms(p, q).sum(axis=-1), 0.0, 1.0))  # NaN rows stay NaN


def kl_divergence(p: ArrayLike, q: ArrayLike) -> np.ndarray | float:
    """KL(p || q) in bits; ``inf`` where p has mass that q lacks."""
    p_arr, q_arr = _pair(p, q)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(p_arr > 0, p_arr * np.log2(p_arr / q_arr), 0.0)
    bad = np.isnan(p_arr).any(axis=-1) | np.isnan(q_arr).any(axis=-1)
    return _rows(np.where(bad, np.nan, np.maximum(terms.sum(axis=-1), 0.0)))
