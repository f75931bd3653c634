"""The delete-a-group jackknife: rows dealt at random into groups, each group left out in turn.

For statistics a bootstrap would distort (duplicated rows shift rank- and covariance-based
values such as the Fréchet distance), the jackknife never repeats a row. Computing each
leave-one-group-out replicate is the caller's work; this module deals the groups and turns the
replicates into a variance and a bias estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_groups(n: int, n_groups: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indices ``0..n-1`` shuffled and dealt into ``min(n_groups, n)`` near-equal groups."""
    return np.array_split(rng.permutation(n), min(n_groups, n))


def jackknife_terms(
    replicates: Sequence[float] | np.ndarray, value: float, n_groups: int
) -> tuple[float, float]:
    """(variance, bias) of the delete-a-group jackknife of one sample's ``replicates`` (one per
    left-out group) around the full-sample ``value``; with several independent samples, the
    terms of each add up."""
    r = np.asarray(replicates, dtype=float)
    variance = (n_groups - 1) / n_groups * ((r - r.mean()) ** 2).sum()
    bias = (n_groups - 1) * (r.mean() - value)
    return variance, bias
