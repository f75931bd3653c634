"""Bulk draws give numpy's numbers: the vectorised resampling of synthbias.stats (cluster
bootstrap replicates, permutation indices, count weights, ragged means, batched statistics)
against the straightforward loops it replaces, on random designs, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from synthbias.stats import resampling
from synthbias.stats.bootstrap import bootstrap_ci
from synthbias.stats.bulk_draws import WordStream, apply_shuffles, bulk_ok, shuffle_draws
from synthbias.stats.resampling import (
    Resamples,
    cluster_index,
    cluster_resample_index,
    cluster_resamples,
    grouped_means,
    permutation_indices,
    permutation_null,
    permute_within,
    ragged_means,
    resample_counts,
)


def loop_cluster_resamples(clusters, n_resamples, seed=0, strata=None):
    """The call-by-call cluster bootstrap (the reference)."""
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


def random_design(rs: np.random.Generator) -> tuple[list, list | None]:
    n = int(rs.integers(1, 50))
    n_cl = int(rs.integers(1, n + 1))
    clusters = [None if rs.random() < 0.1 else f"c{rs.integers(0, n_cl)}" for _ in range(n)]
    strata = None if rs.random() < 0.25 else [f"s{rs.integers(0, 4)}" for _ in range(n)]
    return clusters, strata


def test_bulk_draws_match_this_numpy() -> None:
    assert bulk_ok()


@pytest.mark.parametrize("seed", [0, 1, 7, 2024])
def test_word_stream_integers_equal_successive_calls(seed: int) -> None:
    """Lemire draws, rejections included (highs near 2**32 reject often), and h = 1 (no
    word read), over several calls on one stream."""
    rs = np.random.default_rng(seed + 100)
    calls = [
        (int(rs.choice([1, 2, 3, 13, 40, 3 * 2**30, 2**31 + 5])), int(rs.integers(0, 30)))
        for _ in range(40)
    ]
    rng = np.random.default_rng(seed)
    ref = [rng.integers(0, h, k) for h, k in calls]
    stream = WordStream(seed)
    half = len(calls) // 2
    got = [
        stream.integers(np.concatenate([np.full(k, h) for h, k in part] + [np.zeros(0)]))
        for part in (calls[:half], calls[half:])
    ]
    assert np.array_equal(np.concatenate(ref), np.concatenate(got))


@pytest.mark.parametrize("seed", [0, 3, 99])
def test_shuffles_equal_numpy_permutation(seed: int) -> None:
    rs = np.random.default_rng(seed)
    sizes = rs.integers(2, 30, 12).tolist()
    blocks, start = [], 0
    for k in sizes:
        blocks.append(np.arange(start, start + k))
        start += k
    rng = np.random.default_rng(seed)
    ref = np.array([[v for m in blocks for v in rng.permutation(m)] for _ in range(25)])
    got = apply_shuffles(blocks, shuffle_draws(sizes, 25, WordStream(seed)), start)
    assert np.array_equal(ref, got)


def test_cluster_resamples_equal_the_loop() -> None:
    rs = np.random.default_rng(0)
    for _ in range(150):
        clusters, strata = random_design(rs)
        seed, n_res = int(rs.integers(0, 10_000)), int(rs.integers(0, 40))
        ref = list(loop_cluster_resamples(clusters, n_res, seed, strata))
        fast = list(cluster_resamples(clusters, n_res, seed, strata))
        index = cluster_resample_index(clusters, n_res, seed, strata)
        small = [r for b in resampling._cluster_blocks(clusters, n_res, seed, strata, 5) for r in b]
        assert len(ref) == len(fast) == len(index) == len(small) == n_res
        for a, b, c, d in zip(ref, fast, index, small, strict=True):
            assert a.dtype == b.dtype == c.dtype
            assert np.array_equal(a, b) and np.array_equal(a, c) and np.array_equal(a, d)
        for w_ref, w in zip(
            resample_counts(ref, len(clusters), 40),
            resample_counts(index, len(clusters), 40),
            strict=True,
        ):
            assert np.array_equal(w_ref, w)


def test_call_by_call_fallback_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where bulk draws are off (another numpy), the loops run and give the same numbers."""
    rs = np.random.default_rng(5)
    clusters, strata = random_design(rs)
    blocks = [f"b{rs.integers(0, 4)}" for _ in clusters]
    fast = cluster_resample_index(clusters, 30, 3, strata)
    fast_p = permutation_indices(blocks, 30, 3)
    monkeypatch.setattr(resampling, "bulk_ok", lambda: False)
    slow = cluster_resample_index(clusters, 30, 3, strata)
    assert np.array_equal(fast.flat, slow.flat) and np.array_equal(fast.offsets, slow.offsets)
    assert np.array_equal(fast_p, permutation_indices(blocks, 30, 3))


def test_permutation_indices_equal_permute_within() -> None:
    rs = np.random.default_rng(1)
    for _ in range(100):
        n = int(rs.integers(1, 60))
        blocks = [
            None if rs.random() < 0.1 else f"b{rs.integers(0, max(1, n // 4))}" for _ in range(n)
        ]
        labels = [f"g{rs.integers(0, 5)}" for _ in range(n)]
        seed, n_perm = int(rs.integers(0, 10_000)), int(rs.integers(0, 30))
        rng = np.random.default_rng(seed)
        ref = [permute_within(labels, blocks, rng) for _ in range(n_perm)]
        perm = permutation_indices(blocks, n_perm, seed)
        assert perm.shape == (n_perm, n)
        lab = np.array(labels, dtype=object)
        for p in range(n_perm):
            assert (ref[p] == lab[perm[p]]).all()


def test_permutation_null_batched_equals_one_call_per_permutation() -> None:
    rs = np.random.default_rng(2)
    values = rs.normal(size=30)
    labels = np.array(["A", "B", "C"] * 10, dtype=object)
    blocks = [i // 3 for i in range(30)]

    def gap(lab: np.ndarray) -> float:
        return float(values[lab == "A"].mean() - values[lab == "B"].mean())

    def gap_batch(perm: np.ndarray) -> np.ndarray:
        return np.array([gap(labels[p]) for p in perm])

    one = permutation_null(gap, labels, blocks, 300, 4, observed=0.1)
    many = permutation_null(gap_batch, labels, blocks, 300, 4, observed=0.1, batched=True)
    assert one == many


def test_ragged_and_grouped_means_equal_numpy_mean() -> None:
    rs = np.random.default_rng(3)
    for _ in range(50):
        lengths = rs.integers(0, 300, int(rs.integers(1, 20)))
        values = rs.normal(size=int(lengths.sum())) * 10 ** rs.uniform(-4, 4, int(lengths.sum()))
        got = ragged_means(values, lengths)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        assert np.array_equal(got, grouped_means(rows, values, len(lengths)), equal_nan=True)
        at = np.concatenate([[0], np.cumsum(lengths)])
        for r, n in enumerate(lengths):
            want = float(values[at[r] : at[r + 1]].mean()) if n else np.nan
            assert got[r] == want or (np.isnan(want) and np.isnan(got[r]))


def test_resamples_iterate_as_their_replicates() -> None:
    reps = [np.array([0, 1]), np.array([], dtype=int), np.array([2, 2, 3])]
    res = Resamples.of(reps)
    assert len(res) == 3
    assert [r.tolist() for r in res] == [[0, 1], [], [2, 2, 3]]
    assert res.rows.tolist() == [0, 0, 2, 2, 2]


def test_bootstrap_ci_batched_equals_per_resample() -> None:
    rs = np.random.default_rng(4)
    data = np.column_stack([rs.integers(0, 2, 40), rs.integers(-1, 2, 40)]).astype(float)

    def stat(a: np.ndarray) -> float:
        nz = np.abs(a[:, 1]).sum()
        return float((1 - a[:, 0].mean()) * a[:, 1].sum() / nz) if nz else float("nan")

    def stat_b(a: np.ndarray) -> np.ndarray:
        nz = np.abs(a[:, :, 1]).sum(axis=1)
        with np.errstate(all="ignore"):
            r = (1 - np.ascontiguousarray(a[:, :, 0]).mean(axis=1)) * a[:, :, 1].sum(axis=1) / nz
        return np.where(nz != 0, r, np.nan)

    one = bootstrap_ci(data, stat, n_resamples=500, seed=9)
    many = bootstrap_ci(data, stat_b, n_resamples=500, seed=9, batched=True)
    assert one == many


def test_word_stream_reads_more_words_when_needed() -> None:
    """Interval draws that run past the words first read (max 2**31 rejects about half the
    words) give what one long read gives."""
    maxes = np.full(3000, 2**31, dtype=np.uint64)
    tight = WordStream(11)
    tight.margin = 0
    got = tight.intervals(maxes)
    assert np.array_equal(got, WordStream(11).intervals(maxes))
    assert np.array_equal(got[:5], WordStream(11).intervals(maxes[:5]))
