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

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from synthbias.stats.bootstrap import percentile_interval
from synthbias.stats.bulk_draws import WordStream, apply_shuffles, bulk_ok, shuffle_draws

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
    of clusters fixed in every replicate. Replicate ``r`` draws, stratum after stratum (strata in
    first-seen order), ``rng.integers(0, k, k)`` for a stratum of ``k`` clusters from
    ``np.random.default_rng(seed)``; :func:`cluster_resample_index` gives the same replicates as
    one ragged array.
    """
    for block in _cluster_blocks(clusters, n_resamples, seed, strata):
        yield from block


class Resamples:
    """Ragged item-index replicates: replicate ``r`` is ``flat[offsets[r]:offsets[r + 1]]``.

    Iterating gives the replicates as arrays (what :func:`cluster_resamples` yields);
    :attr:`rows` says which replicate each entry of ``flat`` belongs to, for statistics that
    evaluate every replicate at once."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat = np.asarray(flat, dtype=np.intp)
        self.offsets = np.asarray(offsets, dtype=np.intp)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __iter__(self) -> Iterator[np.ndarray]:
        flat, off = self.flat, self.offsets.tolist()
        for r in range(len(off) - 1):
            yield flat[off[r] : off[r + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @functools.cached_property
    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), self.lengths)

    @classmethod
    def of(cls, replicates: Sequence[np.ndarray]) -> Resamples:
        """From a list of index arrays."""
        lengths = [len(r) for r in replicates]
        flat = np.concatenate(replicates) if replicates else np.zeros(0, dtype=np.intp)
        return cls(flat, np.concatenate([[0], np.cumsum(lengths, dtype=np.intp)]))


def cluster_resample_index(
    clusters: Sequence[Any],
    n_resamples: int,
    seed: int = 0,
    strata: Sequence[Any] | None = None,
) -> Resamples:
    """:func:`cluster_resamples` (the same draws) as one :class:`Resamples`."""
    blocks = list(_cluster_blocks(clusters, n_resamples, seed, strata, max_cells=None))
    if len(blocks) == 1:
        return blocks[0]
    return Resamples.of([r for b in blocks for r in b])


def _cluster_blocks(
    clusters: Sequence[Any],
    n_resamples: int,
    seed: Any,
    strata: Sequence[Any] | None,
    max_cells: int | None = 4_000_000,
) -> Iterator[Resamples]:
    """The replicates of :func:`cluster_resamples` in blocks of about ``max_cells`` indices
    (all at once for ``None``), drawn in bulk (:mod:`synthbias.stats.bulk_draws`) where that
    gives numpy's numbers, else call by call."""
    _, members = cluster_index(clusters)
    if strata is None:
        by_stratum = [np.arange(len(members))]
    else:
        first = [strata[m[0]] for m in members]
        keys = list(dict.fromkeys(first))
        by_stratum = [np.array([j for j, s in enumerate(first) if s == k]) for k in keys]
    if not members or not _seed_ok(seed) or not bulk_ok():
        rng = np.random.default_rng(seed)
        reps = []
        for _ in range(n_resamples):
            picked = np.concatenate([s[rng.integers(0, len(s), len(s))] for s in by_stratum])
            reps.append(np.concatenate([members[j] for j in picked]))
        yield Resamples.of(reps)
        return
    cat = np.concatenate(by_stratum).astype(np.intp)  # clusters, stratum after stratum
    highs = np.concatenate([np.full(len(s), len(s), dtype=np.uint64) for s in by_stratum])
    n_per = [len(s) for s in by_stratum]
    base = np.repeat(np.cumsum([0, *n_per[:-1]]), n_per)  # where each stratum starts in cat
    sizes = np.array([len(m) for m in members], dtype=np.intp)
    mem_flat = np.concatenate(members).astype(np.intp)
    mem_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    per_rep = max(1, int(sizes.sum()) if sizes.size else 1)
    block = max(1, n_resamples if max_cells is None else max_cells // per_rep)
    stream = WordStream(seed)
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        draws = stream.integers(np.tile(highs, b)).reshape(b, len(highs))
        picked = cat[draws + base]  # (b, clusters per replicate)
        if (sizes == sizes[0]).all():
            k = int(sizes[0])
            flat = mem_flat.reshape(-1, k)[picked].ravel()
            offsets = np.arange(b + 1, dtype=np.intp) * (picked.shape[1] * k)
        else:
            lens = sizes[picked].ravel()
            ends = np.cumsum(lens)
            pos = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lens, lens)
            flat = mem_flat[np.repeat(mem_start[picked].ravel(), lens) + pos]
            offsets = np.concatenate([[0], ends.reshape(b, -1)[:, -1]])
        yield Resamples(flat, offsets)


def _seed_ok(seed: Any) -> bool:
    """A seed :class:`WordStream` reads as numpy would: a non-negative integer."""
    return isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0


def ragged_means(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Mean of each consecutive run of ``values`` (run ``r`` has ``lengths[r]`` entries), equal
    bit for bit to ``run.mean()`` of each run alone (NaN for an empty run): runs of one length
    are averaged as rows of a matrix, which numpy sums with the same pairwise summation."""
    values = np.asarray(values, dtype=float)
    lengths = np.asarray(lengths, dtype=np.intp)
    out = np.full(len(lengths), np.nan)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    for n in np.unique(lengths):
        if n == 0:
            continue
        rows = np.flatnonzero(lengths == n)
        out[rows] = values[starts[rows][:, None] + np.arange(n)].mean(axis=1)
    return out


def grouped_means(rows: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row id ``0 .. n_rows - 1`` the mean of its ``values`` (``rows`` ascending, values in
    their order), as ``values[rows == r].mean()``; NaN for a row without values."""
    return ragged_means(values, np.bincount(rows, minlength=n_rows))


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
    resamples: Sequence[np.ndarray] | Resamples, n: int, max_cells: int = 2_000_000
) -> Iterator[np.ndarray]:
    """Item-index replicates as count weights, in blocks of about ``max_cells`` cells: each
    block is a (replicates, n) array of how often each item occurs in each replicate."""
    block = max(1, max_cells // max(n, 1))
    if isinstance(resamples, Resamples):
        off = resamples.offsets
        for start in range(0, len(resamples), block):
            stop = min(start + block, len(resamples))
            sl = slice(int(off[start]), int(off[stop]))
            key = (resamples.rows[sl] - start) * n + resamples.flat[sl]
            yield np.bincount(key, minlength=(stop - start) * n).reshape(stop - start, n)
        return
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


def permutation_indices(blocks: Sequence[Any], n_permutations: int, seed: Any) -> np.ndarray:
    """(n_permutations, n) item indices of successive :func:`permute_within` calls on one
    ``np.random.default_rng(seed)``: permutation ``p`` gives item ``i`` the label of item
    ``out[p, i]`` (``labels[out[p]]`` is the permuted labels). Drawn in bulk where that gives
    numpy's numbers (:mod:`synthbias.stats.bulk_draws`), else call by call."""
    n = len(blocks)
    _, members = cluster_index(blocks)
    multi = [m for m in members if len(m) > 1]
    if n_permutations <= 0:
        return np.zeros((0, n), dtype=np.intp)
    if not multi:
        return np.tile(np.arange(n, dtype=np.intp), (n_permutations, 1))
    if _seed_ok(seed) and bulk_ok():
        swaps = shuffle_draws([len(m) for m in multi], n_permutations, WordStream(seed))
        return apply_shuffles(multi, swaps, n).astype(np.intp)
    rng = np.random.default_rng(seed)
    out = np.tile(np.arange(n, dtype=np.intp), (n_permutations, 1))
    for p in range(n_permutations):
        row = out[p]
        for m in multi:
            row[m] = row[rng.permutation(m)]
    return out


def permutation_null(
    stat: Callable[[np.ndarray], Any],
    labels: Sequence[Any],
    blocks: Sequence[Any] | None = None,
    n_permutations: int = 1000,
    seed: int = 0,
    observed: float | None = None,
    batched: bool = False,
) -> dict[str, float]:
    """Distribution of ``stat(permuted_labels)`` with labels shuffled within ``blocks``.

    Returns the null ``mean`` (the gap expected with no bias at this size), its 95th percentile
    ``q95`` and, given ``observed``, the one-sided permutation ``p_value`` (with the +1 rule).
    ``blocks=None`` shuffles over all items. The permutations are successive
    :func:`permute_within` calls on ``np.random.default_rng(seed + 104729)``
    (:func:`permutation_indices`). With ``batched``, ``stat`` takes the (n_permutations, n)
    index array of :func:`permutation_indices` (permutation ``p``'s labels are
    ``labels[index[p]]``) and returns one value per permutation.
    """
    blocks = [0] * len(labels) if blocks is None else blocks
    perm = permutation_indices(blocks, n_permutations, seed + 104729)
    if batched:
        vals = np.asarray(stat(perm), dtype=float)
    else:
        lab = np.array(labels, dtype=object)
        vals = np.array([float(stat(lab[p])) for p in perm])
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
