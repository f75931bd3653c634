"""Multiple comparisons: a "detected" flag is adjusted over a declared family of tests.

A run checks dozens of cells (task × bias type × arm × ratio); flagging each at 5 % on its own
makes false detections the rule. The caller declares the family (for example every task × arm ×
ratio cell of an inheritance run) and the flags are adjusted over it:

* **Holm** (default): step-down Bonferroni; controls the family-wise error rate (the chance of
  any false detection) at ``alpha`` under any dependence between the tests.
* **Benjamini–Hochberg** (``"bh"``): step-up; controls the false discovery rate (the expected
  share of false detections among the detected) at ``alpha`` for independent or positively
  dependent tests. More detections, weaker promise.

The p-values come from the replicate t-tests of :mod:`synthbias.stats.replicates` (or from a
bootstrap, :func:`~synthbias.stats.replicates.bootstrap_p_value`). A test without a p-value (a
cell that is not replicated) is not part of the family: it is never detected, and the family
size reported is the number of tests actually made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

AdjustMethod = Literal["holm", "bh"]
METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values: sorted ascending, p_(i) × (m − i + 1), made non-decreasing and
    capped at 1 (statsmodels' ``holm``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.maximum.accumulate(scaled)
    return out


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values: sorted ascending, p_(i) × m / i, made
    non-decreasing from the largest down and capped at 1 (statsmodels' ``fdr_bh``)."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    out = np.empty(m)
    out[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return out


@dataclass(frozen=True)
class Adjustment:
    """Adjusted p-values and flags of one family, in the order given (None where no test)."""

    p_adjusted: tuple[float | None, ...]
    detected: tuple[bool, ...]
    family_size: int
    method: str
    alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adjust(
    p_values: Sequence[float | None], method: AdjustMethod = "holm", alpha: float = 0.05
) -> Adjustment:
    """Adjust a family's p-values; missing or non-finite ones are left out of the family."""
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown adjustment {method!r}; use 'holm' or 'bh'")
    raw = np.array([math.nan if p is None else float(p) for p in p_values], dtype=float)
    tested = np.flatnonzero(np.isfinite(raw))
    fn = holm if method == "holm" else benjamini_hochberg
    adj = np.full(len(raw), math.nan)
    adj[tested] = fn(raw[tested])
    p_adj = tuple(float(v) if math.isfinite(v) else None for v in adj)
    detected = tuple(bool(v is not None and v <= alpha) for v in p_adj)
    return Adjustment(p_adj, detected, len(tested), METHOD_NAMES[method], alpha)


def flag_family(
    results: Sequence[Mapping[str, Any]],
    method: AdjustMethod = "holm",
    alpha: float = 0.05,
    p_key: str = "p_value",
    family: str | None = None,
) -> list[dict[str, Any]]:
    """Copies of ``results`` (e.g. ``ReplicateResult.to_dict()`` rows, one per cell of the
    family) with ``p_adjusted``, ``detected`` (the adjusted flag), ``family_size``,
    ``adjustment`` and, when given, the ``family`` name added."""
    adj = adjust([r.get(p_key) for r in results], method, alpha)
    out = []
    for r, p, d in zip(results, adj.p_adjusted, adj.detected, strict=True):
        row = dict(r)
        row.update(p_adjusted=p, detected=d, family_size=adj.family_size, adjustment=adj.method)
        if family is not None:
            row["family"] = family
        out.append(row)
    return out
