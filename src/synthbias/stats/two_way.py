"""A paired bootstrap over a two-way table (training seeds × probes) and an independent one.

Why a module of its own: the mitigation study compares two arms whose models (one per training
seed) answer the same probes; both arms must be resampled with the *same* draws of seeds and
probes so that probe difficulty and seed luck cancel in their difference. The draws are count
weights, so one draw serves every column at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def count_weights(rng: np.random.Generator, n_resamples: int, size: int) -> np.ndarray:
    """Bootstrap weights: how often each of ``size`` units is drawn in each of ``n_resamples``
    draws with replacement (rows sum to ``size``)."""
    idx = rng.integers(0, size, (n_resamples, size))
    out = np.zeros((n_resamples, size))
    np.add.at(out, (np.arange(n_resamples)[:, None], idx), 1.0)
    return out


def strata_count_weights(
    rng: np.random.Generator, n_resamples: int, strata: Sequence[Any]
) -> np.ndarray:
    """Probe weights of a bootstrap stratified by ``strata`` (one label per probe): each
    stratum's probes are drawn with replacement from that stratum only, as many as it holds."""
    labels = list(strata)
    out = np.zeros((n_resamples, len(labels)))
    for g in dict.fromkeys(labels):
        cols = np.array([i for i, x in enumerate(labels) if x == g])
        if len(cols) < 2:
            raise ValueError(
                f"a stratified bootstrap needs >= 2 probes per stratum, stratum {g!r} has "
                f"{len(cols)}; raise measure.downstream_occupations"
            )
        out[:, cols] = count_weights(rng, n_resamples, len(cols))
    return out


def paired_replicates(
    b: np.ndarray,
    m: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap means of two arms scored on the same probes by models of the same seeds.

    ``b`` and ``m`` are ``(n_seeds, n_probes)``: row i is training seed i, column j probe j, in
    both arms. Each replicate draws seeds and probes with replacement, the *same* draws for both
    arms (so probe difficulty and seed luck cancel in differences); returns the two arms'
    replicate means. One seed: only probes are resampled.

    ``strata`` (one label per probe, e.g. each occupation's coded gender): probes are resampled
    within each stratum separately, so every replicate keeps each group at its own size (the
    probe set is balanced by design; an unstratified draw can leave one group under-represented,
    and a global he/she shift then moves the mean). ``None``: probes are drawn from all columns.
    """
    b, m = np.atleast_2d(np.asarray(b, float)), np.atleast_2d(np.asarray(m, float))
    if b.shape != m.shape:
        raise ValueError(f"paired arms need the same seeds x probes, got {b.shape} and {m.shape}")
    s, p = b.shape
    if p < 2:
        raise ValueError(f"a paired bootstrap over probes needs >= 2 probes, got {p}")
    rng = np.random.default_rng(seed)
    ws = count_weights(rng, n_resamples, s) if s > 1 else np.ones((n_resamples, 1))
    if strata is None:
        wp = count_weights(rng, n_resamples, p)
    else:
        if len(strata) != p:
            raise ValueError(f"strata need one label per probe ({p}), got {len(strata)}")
        wp = strata_count_weights(rng, n_resamples, strata)
    denom = s * p

    def means(x: np.ndarray) -> np.ndarray:
        return np.einsum("rs,sp,rp->r", ws, x, wp) / denom

    return means(b), means(m)


def independent_replicates(
    b: Sequence[float], m: Sequence[float], n_resamples: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap means of two corpora of different texts (each resampled on its own)."""
    b, m = np.asarray(b, float), np.asarray(m, float)
    if len(b) < 2 or len(m) < 2:
        raise ValueError(f"need >= 2 texts per corpus, got {len(b)} and {len(m)}")
    rng = np.random.default_rng(seed)
    return (
        (count_weights(rng, n_resamples, len(b)) @ b) / len(b),
        (count_weights(rng, n_resamples, len(m)) @ m) / len(m),
    )
