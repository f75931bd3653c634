"""numpy's bounded-integer and shuffle draws of a fresh generator, computed in bulk.

The resampling loops of :mod:`synthbias.stats.resampling` call ``rng.integers(0, k, k)`` once per
stratum and replicate and ``rng.permutation(m)`` once per block and permutation: thousands of
small calls whose Python overhead dominates a task's metrics. Both are pure functions of one
stream of 32-bit words (the low, then the high half of each 64-bit output of the bit
generator), so reading that stream in bulk (``random_raw``) and applying numpy's arithmetic to
whole arrays gives the *same numbers*:

* ``Generator.integers(0, h)`` (``h`` < 2**32) is Lemire's method: a word ``w`` gives
  ``(w * h) >> 32`` unless ``(w * h) mod 2**32 < (2**32 - h) mod h``, when the next word is
  tried; ``h = 1`` reads no word.
* ``Generator.permutation(m)`` is a Fisher-Yates shuffle: for ``i = k-1 .. 1`` it swaps ``x[i]``
  with ``x[j]``, ``j`` the first word masked to the smallest all-ones ``mask >= i`` that is
  ``<= i`` (masked rejection, numpy's ``random_interval``).

:func:`bulk_ok` compares both against numpy's own calls once per process (a different numpy
could change an algorithm); callers fall back to the loops when it fails. Only generators
that nothing else draws from may be replaced (the caller's seed, a fresh generator).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_TWO32 = np.uint64(1 << 32)


class WordStream:
    """The 32-bit words of ``np.random.default_rng(seed)`` in order, read in bulk."""

    #: 64-bit outputs read beyond what a call needs (fewer reads when draws are rejected)
    margin = 512

    def __init__(self, seed: Any):
        self._bits = np.random.default_rng(seed).bit_generator
        self._buf = np.empty(0, dtype=np.uint64)

    def _fill(self, n: int) -> None:
        short = n - len(self._buf)
        if short > 0:
            k = (short + 1) // 2 + self.margin
            raw = self._bits.random_raw(k)
            words = np.empty(2 * k, dtype=np.uint64)
            words[0::2] = raw & _LOW32
            words[1::2] = raw >> _SHIFT32
            self._buf = np.concatenate([self._buf, words])

    def integers(self, highs: np.ndarray) -> np.ndarray:
        """``rng.integers(0, h)`` for each ``h`` of ``highs`` in turn (1 <= h < 2**32), as the
        successive calls ``rng.integers(0, h, size)`` of a generator would draw them."""
        highs = np.asarray(highs, dtype=np.uint64).ravel()
        out = np.zeros(len(highs), dtype=np.int64)
        use = np.flatnonzero(highs > 1)  # integers(0, 1) reads no word
        h = highs[use]
        thr = (_TWO32 - h) % h
        vals = np.empty(len(use), dtype=np.int64)
        start = 0
        while start < len(use):
            need = len(use) - start
            self._fill(need)
            m = self._buf[:need] * h[start:]
            rej = (m & _LOW32) < thr[start:]
            first = int(np.argmax(rej)) if rej.any() else need
            vals[start : start + first] = (m[:first] >> _SHIFT32).astype(np.int64)
            # a rejected word is skipped and its draw retried with the next word
            self._buf = self._buf[first + 1 if first < need else need :]
            start += first
        out[use] = vals
        return out

    def intervals(self, maxes: np.ndarray) -> np.ndarray:
        """numpy's ``random_interval(max)`` for each ``max`` of ``maxes`` in turn (1 <= max <
        2**32): the next word masked to the smallest all-ones mask >= max, words above max
        skipped."""
        maxes = np.asarray(maxes, dtype=np.uint64).ravel()
        mask = maxes.copy()
        for s in (1, 2, 4, 8, 16):
            mask |= mask >> np.uint64(s)
        n = len(maxes)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if np.array_equal(mask, maxes):  # every masked word is <= max: no rejection
            self._fill(n)
            words, self._buf = self._buf[:n], self._buf[n:]
            return (words & mask).astype(np.int64)
        pairs = list(zip(maxes.tolist(), mask.tolist(), strict=True))
        budget = 2 * n + 64
        while True:
            self._fill(budget)
            words = self._buf.tolist()
            out: list[int] = []
            keep = out.append
            p = 0
            try:
                for mx, mk in pairs:
                    v = words[p] & mk
                    p += 1
                    while v > mx:
                        v = words[p] & mk
                        p += 1
                    keep(v)
            except IndexError:  # ran past the words read: read more, start again
                budget = 2 * len(words)
                continue
            self._buf = self._buf[p:]
            return np.array(out, dtype=np.int64)


def shuffle_draws(sizes: list[int], n_rounds: int, stream: WordStream) -> list[np.ndarray]:
    """Per block size ``k`` of ``sizes`` (in order), the (n_rounds, k - 1) swap targets of
    ``rng.permutation`` on a block of that size (column ``c`` is the draw for ``i = k - 1 - c``),
    for ``n_rounds`` rounds that each shuffle every block in turn."""
    pattern = [i for k in sizes for i in range(k - 1, 0, -1)]
    draws = stream.intervals(np.tile(np.asarray(pattern, dtype=np.uint64), n_rounds))
    draws = draws.reshape(n_rounds, len(pattern))
    out, col = [], 0
    for k in sizes:
        out.append(draws[:, col : col + k - 1])
        col += k - 1
    return out


def apply_shuffles(blocks: list[np.ndarray], swaps: list[np.ndarray], n: int) -> np.ndarray:
    """(rounds, n) index arrays: row ``r`` holds, at each block's positions, the block shuffled
    by round ``r``'s swaps (Fisher-Yates as numpy does it) and elsewhere the identity; i.e.
    ``out[r, m] = rng.permutation(m)`` for each block ``m``."""
    rounds = swaps[0].shape[0] if swaps else 0
    out = np.tile(np.arange(n), (rounds, 1))
    # blocks of one size are shuffled side by side: (rounds, blocks, k) arrays
    by_size: dict[int, list[int]] = {}
    for b, m in enumerate(blocks):
        by_size.setdefault(len(m), []).append(b)
    rows = np.arange(rounds)[:, None]
    for k, bs in by_size.items():
        arr = np.broadcast_to(np.stack([blocks[b] for b in bs]), (rounds, len(bs), k)).copy()
        j_all = np.stack([swaps[b] for b in bs], axis=1)  # (rounds, blocks, k - 1)
        cols = np.arange(len(bs))[None, :]
        for c, i in enumerate(range(k - 1, 0, -1)):
            j = j_all[:, :, c]
            a_i = arr[:, :, i].copy()
            arr[:, :, i] = arr[rows, cols, j]
            arr[rows, cols, j] = a_i
        for t, b in enumerate(bs):
            out[:, blocks[b]] = arr[:, t, :]
    return out


@functools.cache
def bulk_ok() -> bool:
    """Whether this numpy draws as :class:`WordStream` computes (checked once, on cases with
    frequent rejections)."""
    try:
        for seed in (0, 12345):
            highs = [1, 2, 3, 7, 10, 3 * 2**30, 5, 3 * 2**30 + 17, 1, 2**31 + 3, 40]
            rng = np.random.default_rng(seed)
            ref = np.concatenate([rng.integers(0, h, 3) for h in highs])
            got = WordStream(seed).integers(np.repeat(np.asarray(highs, dtype=np.uint64), 3))
            if not np.array_equal(ref, got):
                return False
            sizes = [2, 3, 1, 5, 6, 13, 4, 9]
            rng = np.random.default_rng(seed)
            blocks = []
            start = 0
            for k in sizes:
                blocks.append(np.arange(start, start + k))
                start += k
            ref_rows = []
            for _ in range(3):
                row = np.arange(start)
                for m in blocks:
                    if len(m) > 1:
                        row[m] = row[rng.permutation(m)]
                ref_rows.append(row)
            multi = [m for m in blocks if len(m) > 1]
            swaps = shuffle_draws([len(m) for m in multi], 3, WordStream(seed))
            if not np.array_equal(np.array(ref_rows), apply_shuffles(multi, swaps, start)):
                return False
        return True
    except Exception:  # pragma: no cover - any surprise means: use numpy's own calls
        return False
