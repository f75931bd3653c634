"""Paired comparison of two models (arms) evaluated on the same items.

Two fine-tuned models scored on the same task items are not independent samples: the item
effect is shared, so the CI of their difference resamples *items* and recomputes the statistic on
both arms with the same indices (a paired bootstrap). Items are paired by id, never by position
alone, so a missing or reordered item cannot silently pair unrelated scores. ``clusters`` (e.g. a
counterfactual set's id per item) resamples whole clusters instead of items.

This is a small stand-alone helper for the inheritance study's arm-vs-arm comparison; the task
metrics' own paired/cluster bootstrap (tasks branch) is meant to replace it at merge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthbias.measure.result import CI, percentile_ci


@dataclass
class PairedDelta:
    """statistic(a) − statistic(b) over paired items, with a paired-bootstrap CI."""

    value: float
    ci: CI
    n_items: int
    n_clusters: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "delta": self.value,
            "ci_low": self.ci.low,
            "ci_high": self.ci.high,
            "level": self.ci.level,
            "n_items": self.n_items,
            "n_clusters": self.n_clusters,
        }


def pair_items(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The item ids both arms scored (in ``a``'s order) and their per-item values."""
    ids = [k for k in a if k in b]
    if not ids:
        raise ValueError("the two arms share no item ids; were they evaluated on the same items?")
    return ids, np.asarray([a[k] for k in ids], float), np.asarray([b[k] for k in ids], float)


def paired_delta(
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    statistic: Callable[[np.ndarray], float] = np.mean,
    clusters: Mapping[str, Any] | None = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    min_items: int = 2,
) -> PairedDelta:
    """``statistic(a) − statistic(b)`` with a paired (item or cluster) bootstrap CI.

    ``a`` and ``b`` map item id -> per-item value (a number, or a row for a statistic over
    several columns). Raises when fewer than ``min_items`` items (or 2 clusters) are shared.
    """
    ids, xa, xb = pair_items(a, b)
    if len(ids) < min_items:
        raise ValueError(f"a paired CI needs at least {min_items} shared items, got {len(ids)}")
    groups: list[np.ndarray]
    if clusters is not None:
        labels = [clusters[k] for k in ids]
        uniq = list(dict.fromkeys(labels))
        groups = [np.array([i for i, lab in enumerate(labels) if lab == u]) for u in uniq]
    else:
        groups = [np.array([i]) for i in range(len(ids))]
    if len(groups) < 2:
        raise ValueError(f"a paired CI needs at least 2 clusters, got {len(groups)}")
    value = float(statistic(xa) - statistic(xb))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for k in range(n_resamples):
        pick = rng.integers(0, len(groups), len(groups))
        idx = np.concatenate([groups[g] for g in pick])
        stats[k] = statistic(xa[idx]) - statistic(xb[idx])
    return PairedDelta(value, percentile_ci(stats, level), len(ids), len(groups))


def smallest_detectable(ci: CI) -> float:
    """Rough power statement: an effect about half the CI width times 1.4 (80 % power at
    α = 0.05 for a normal estimate is ≈ 2.8 SE, and a 95 % CI spans ≈ 3.92 SE)."""
    return float((ci.high - ci.low) / 3.92 * 2.8)


def by_id(ids: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Per-item values keyed by item id (the inputs to :func:`paired_delta`)."""
    if len(ids) != len(values):
        raise ValueError(f"{len(ids)} item ids but {len(values)} values")
    return dict(zip(ids, values, strict=True))
