"""Resampling that matches a task's design: clusters, pairs of models, permutation nulls.

* **Cluster bootstrap.** Counterfactual items (the variants of one profile, sentence or
  template) are not independent: they are drawn and resampled as whole clusters, within strata
  (e.g. the axis or the gold label), so every replicate keeps every group complete.
* **Paired differences.** Two models evaluated on the same items are compared on the *same*
  resampled clusters; with several seeds the seeds are resampled too and the delta is averaged
  over them.
* **Stratified bootstrap.** Items resampled within each stratum, every stratum keeping its
  size (:func:`strata_resamples`); index replicates become count weights with
  :func:`resample_counts` for statistics evaluated on many replicates at once.
* **Permutation null.** A max − min gap over groups is positive even without any bias. The null
  permutes the group labels within each cluster (or within a block) and recomputes the gap:
  its mean is the gap expected at this size by noise alone. Two-sample permutation tests draw
  :func:`random_subsets` (which rows form the first sample; :func:`all_subsets` for the exact
  test) and count with :func:`permutation_p_value`.

All functions take a statistic of item *indices* (or of permuted labels), so they work for
any metric, AUCs and bias scores included.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from synthbias.stats.bootstrap import percentile_interval

#: z of a two-sided 5% test plus z of 80% power: the smallest effect a test detects reliably
#: is about (1.96 + 0.84) standard errors.
POWER_Z = 1.959964 + 0.841621


def cluster_index(clusters: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Cluster code of each item and the item indices of each cluster (first-seen order).

    ``None`` clusters count as singletons.
    """
    codes: dict[Any, int] = {}
    out = np.empty(len(clusters), dtype=int)
    for i, c in enumerate(clusters):
        key = ("#", i) if c is None else c
        out[i] = codes.setdefault(key, len(codes))
    members = [np.flatnonzero(out == k) for k in range(len(codes))]
    return out, members


def cluster_resamples(
    clusters: Sequence[Any],
    n_resamples: int,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
) -> Iterator[np.ndarray]:
    """Item-index arrays of a cluster bootstrap: whole clusters drawn with replacement.

    ``strata`` (one value per item; a cluster takes its first item's) keeps each stratum's number
    of clusters fixed in every replicate.
    """
    _, members = cluster_index(clusters)
    if strata is None:
        by_stratum = [np.arange(len(members))]
    else:
        first = [strata[m[0]] for m in members]
        keys = list(dict.fromkeys(first))
        by_stratum = [np.array([j for j, s in enumerate(first) if s == k]) for k in keys]
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        picked = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in by_stratum])
        yield np.concatenate([members[j] for j in picked])


def stratified_draw(groups: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One stratified bootstrap draw: each group's indices resampled with replacement to its own
    size, concatenated in the groups' order (the caller's ``rng`` advances)."""
    return np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])


def strata_resamples(strata: np.ndarray, n_resamples: int, seed: int) -> list[np.ndarray]:
    """Index arrays of a stratified bootstrap: every stratum resampled with its own size."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(strata == s) for s in dict.fromkeys(strata.tolist())]
    out = []
    for _ in range(n_resamples):
        out.append(np.concatenate([m[rng.integers(0, len(m), len(m))] for m in members]))
    return out


def resample_counts(
    resamples: Sequence[np.ndarray], n: int, max_cells: int = 2_000_000
) -> Iterator[np.ndarray]:
    """Item-index replicates as count weights, in blocks of about ``max_cells`` cells: each
    block is a (replicates, n) array of how often each item occurs in each replicate."""
    block = max(1, max_cells // max(n, 1))
    for start in range(0, len(resamples), block):
        yield np.array([np.bincount(i, minlength=n) for i in resamples[start : start + block]])


def cluster_bootstrap(
    stat: Callable[[np.ndarray], float],
    clusters: Sequence[Any],
    n_resamples: int = 1000,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
    level: float = 0.95,
) -> tuple[float, float, np.ndarray]:
    """(low, high, replicates) of ``stat(item_indices)`` under the cluster bootstrap."""
    boots = np.array(
        [float(stat(i)) for i in cluster_resamples(clusters, n_resamples, seed, strata)]
    )
    lo, hi = percentile_interval(boots, level)
    return lo, hi, boots


def paired_bootstrap(
    pairs: Sequence[tuple[Callable[..., Any], Callable[..., Any]]],
    clusters: Sequence[Any],
    n_resamples: int = 1000,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
    level: float = 0.95,
    batched: bool = False,
) -> dict[str, Any]:
    """Delta ``b - a`` of a statistic between two models on the same items, paired.

    ``pairs`` has one ``(stat_a, stat_b)`` per seed, each a statistic of item indices (with
    ``batched``: of a list of index arrays, returning one value per array). Every replicate
    draws one cluster resample used for both models and every seed, and (with two or more
    seeds) resamples the seeds; the delta is the mean over the drawn seeds. Returns ``value``,
    ``ci_low``, ``ci_high``, ``n_seeds`` and the replicates (``boots``), and each model's own
    point value and replicates from the same draws (``value_a``/``value_b``,
    ``boots_a``/``boots_b``) for statistics that need more than the delta.
    """
    full = np.arange(len(clusters))
    reps = list(cluster_resamples(clusters, n_resamples, seed, strata))

    def run(stat: Callable[..., Any], idx: list[np.ndarray]) -> np.ndarray:
        if batched:
            return np.asarray(stat(idx), dtype=float)
        return np.array([float(stat(i)) for i in idx])

    point_a = [float(run(a, [full])[0]) for a, _ in pairs]
    point_b = [float(run(b, [full])[0]) for _, b in pairs]
    reps_a = np.array([run(a, reps) for a, _ in pairs])  # (S, R)
    reps_b = np.array([run(b, reps) for _, b in pairs])
    per_seed = reps_b - reps_a
    if len(pairs) > 1:
        rng = np.random.default_rng(seed + 7919)
        pick = rng.integers(0, len(pairs), size=(n_resamples, len(pairs)))
        cols = np.arange(n_resamples)[:, None]
        boots = per_seed[pick, cols].mean(axis=1)
        boots_a, boots_b = reps_a[pick, cols].mean(axis=1), reps_b[pick, cols].mean(axis=1)
    elif pairs:
        boots, boots_a, boots_b = per_seed[0], reps_a[0], reps_b[0]
    else:
        boots = boots_a = boots_b = np.empty(0)
    lo, hi = percentile_interval(boots, level)
    return {
        "value": float(np.mean([b - a for a, b in zip(point_a, point_b, strict=True)])),
        "ci_low": lo,
        "ci_high": hi,
        "n_seeds": len(pairs),
        "boots": boots,
        "value_a": float(np.mean(point_a)) if pairs else float("nan"),
        "value_b": float(np.mean(point_b)) if pairs else float("nan"),
        "boots_a": boots_a,
        "boots_b": boots_b,
    }


def permute_within(
    labels: Sequence[Any], blocks: Sequence[Any], rng: np.random.Generator
) -> np.ndarray:
    """``labels`` shuffled within each block (a cluster's variants swap their group labels)."""
    out = np.array(labels, dtype=object)
    _, members = cluster_index(blocks)
    for m in members:
        if len(m) > 1:
            out[m] = out[rng.permutation(m)]
    return out


def permutation_null(
    stat: Callable[[np.ndarray], float],
    labels: Sequence[Any],
    blocks: Sequence[Any] | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    observed: float | None = None,
) -> dict[str, float]:
    """Distribution of ``stat(permuted_labels)`` with labels shuffled within ``blocks``.

    Returns the null ``mean`` (the gap expected with no bias at this size), its 95th percentile
    ``q95`` and, given ``observed``, the one-sided permutation ``p_value`` (with the +1 rule).
    ``blocks=None`` shuffles over all items.
    """
    rng = np.random.default_rng(seed + 104729)
    blocks = [0] * len(labels) if blocks is None else blocks
    vals = np.array(
        [float(stat(permute_within(labels, blocks, rng))) for _ in range(n_permutations)]
    )
    usable = observed is not None and np.isfinite(vals).any() and math.isfinite(observed)
    return null_summary(vals, observed if usable else None)


def null_summary(values: np.ndarray, observed: float | None = None) -> dict[str, float]:
    """Mean, 95th percentile and count of the finite null values and, given ``observed``, the
    one-sided permutation p-value (+1 rule; 1 when no null value is finite)."""
    vals = np.asarray(values, dtype=float)
    vals = vals[np.isfinite(vals)]
    out = {
        "mean": float(vals.mean()) if len(vals) else math.nan,
        "q95": float(np.quantile(vals, 0.95)) if len(vals) else math.nan,
        "n_permutations": int(len(vals)),
    }
    if observed is not None:
        out["p_value"] = permutation_p_value(int((vals >= observed - 1e-12).sum()), len(vals))
    return out


def permutation_p_value(hits: int, n_permutations: int) -> float:
    """One-sided permutation p-value with the +1 rule: (1 + hits) / (1 + permutations)."""
    return (1 + hits) / (1 + n_permutations)


def random_subsets(
    n: int, k: int, n_draws: int, rng: np.random.Generator, max_cells: int = 2_000_000
) -> Iterator[np.ndarray]:
    """``n_draws`` random subsets of ``k`` of ``n`` rows, in blocks of about ``max_cells``
    random numbers: (draws, k) index arrays, unordered within a row. Each is the first sample of
    a two-sample permutation (sizes kept)."""
    block = max(1, max_cells // n)
    for start in range(0, n_draws, block):
        b = min(block, n_draws - start)
        yield rng.random((b, n)).argpartition(k - 1, axis=1)[:, :k]


def all_subsets(n: int, k: int, max_cells: int = 1_000_000) -> Iterator[np.ndarray]:
    """Every subset of ``k`` of ``n`` rows, in lexicographic order and in blocks of about
    ``max_cells`` indices ((subsets, k) arrays): the exact two-sample permutation test."""
    combos = itertools.combinations(range(n), k)
    block = max(1, max_cells // max(k, 1))
    while True:
        flat = np.fromiter(
            itertools.chain.from_iterable(itertools.islice(combos, block)), dtype=np.int64
        )
        if flat.size == 0:
            return
        yield flat.reshape(-1, k)


def half_width(low: float | None, high: float | None) -> float:
    """Half the width of a CI (NaN when either bound is missing)."""
    if low is None or high is None:
        return math.nan
    return (float(high) - float(low)) / 2


def min_detectable_effect(hw: float, level_z: float = 1.959964) -> float:
    """Smallest true effect found with 80% power by a two-sided 5% test, from a CI half-width."""
    return hw / level_z * POWER_Z if math.isfinite(hw) else math.nan
