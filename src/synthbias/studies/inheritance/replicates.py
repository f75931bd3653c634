"""The inheritance study at the level of its claim: per-replicate effects and their headlines.

A replicate is one seed of the sweep: its own augmentation draw (every arm's augmented set is
written under the seed), its own mix draw, its own training seed, hence its own real-only model
and its own control model. Replicate *i* of every arm shares these seeds, so an arm's effect is a
*paired* difference within replicate *i* (biased − real-only, biased − control), and the claim
rests on the variation of those differences between replicates (:mod:`synthbias.stats.replicates`).

The evaluation items are the same for every replicate (item seed = the run's ``seed``): the
task set is the fixed test set on which every model, the untuned base model and the mitigation
study's sub-runs are compared. The headlines are therefore about these items; item noise enters
each replicate's estimate, and the run-to-run variation of the models enters between replicates.

What is built here, from the stored task answers (nothing is retrained or re-evaluated):

* :func:`replicate_effects`: per replicate, task, bias type, arm and ratio, the bias metric's
  paired change against the real-only model and (biased arms) against the control arm, with its
  within-replicate item CI (the paired cluster bootstrap of :mod:`synthbias.tasks.compare`),
* :func:`headlines`: the mean of those changes over replicates, with a t (or two-stage
  bootstrap) interval, the 80 %-power MDE and a Holm/BH-adjusted "detected" flag over the
  declared family (every task × bias type × arm × ratio × reference cell); below 3 replicates a
  headline is "not replicated" and carries no interval,
* :func:`ratio_slopes`: the dose-response slope over ratios from per-replicate slopes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthbias.stats.multiplicity import METHOD_NAMES, flag_family
from synthbias.stats.replicates import (
    MIN_REPLICATES,
    NOT_REPLICATED,
    replicate_estimate,
    slope_over_replicates,
)
from synthbias.tasks.compare import headline, paired_delta
from synthbias.tasks.paired import paired_replicates, seed_pairs
from synthbias.tasks.sweep import for_bias_type

#: The labels of one headline cell (a member of the family).
CELL = ("task", "bias_type", "arm", "ratio", "reference")
FAMILY = "task × bias type × arm × ratio × reference (real-only, control)"
ITEM_CI_NOTE = (
    "item-level CI: the paired bootstrap of the item-level comparison (task items, and the seeds "
    "when there are 2 or more), not an inference over replicates; with one replicate it leaves "
    "out the run-to-run variation of the augmentation, mix and training draws"
)
Records = Mapping[str, Mapping[str, Sequence[dict[str, Any]]]]


def _first(x: np.ndarray) -> np.ndarray:
    """Statistic for the two-stage bootstrap over stored item-bootstrap draws: a resample's first
    element is one uniform draw from the replicate's item-level bootstrap distribution, so the
    within-replicate variance the two-stage SE removes is that of the item bootstrap."""
    return x[:, 0]


def replicate_effects(
    tasks: Sequence[Any],
    sizes: Mapping[str, int],
    conditions: Sequence[dict[str, Any]],
    records: Records,
    *,
    item_seed: int,
    n_resamples: int,
    draws: bool = False,
) -> list[dict[str, Any]]:
    """Per replicate (seed), bias-related task, bias type, arm and ratio > 0: the paired change
    of the task's bias metric against the real-only model and, for biased arms, against the
    control arm of the same replicate, with its within-replicate item CI.

    ``draws`` also stores each change's item-bootstrap draws (``item_draws``, for the two-stage
    bootstrap); they are dropped before anything is written.
    """
    seeds = list(dict.fromkeys(c["seed"] for c in conditions))
    by_key = {(c["bias_type"], c["arm"], c["ratio"], c["seed"]): c for c in conditions}
    real = {(c["bias_type"], c["seed"]): c["adapter"] for c in conditions if c["ratio"] == 0}
    bias = [t for t in tasks if t.spec.bias_related and t.spec.bias_metric]
    out = []
    for base in bias:
        metric = headline(base)
        items = base.items(sizes[base.name], item_seed)
        for (bt, arm, ratio, s), c in by_key.items():
            if ratio == 0:
                continue
            task = for_bias_type(base, bt)
            refs = [("real-only", real.get((bt, s)))]
            if arm != "control":
                ctrl = by_key.get((bt, "control", ratio, s))
                refs.append(("control", ctrl["adapter"] if ctrl else None))
            for reference, ref in refs:
                pairs = seed_pairs(records, task.name, [(str(ref), str(c["adapter"]))])
                if ref is None or not pairs:
                    continue
                d = paired_delta(task, items, pairs, metric, n_resamples, item_seed)
                row = {
                    "task": task.name,
                    "bias_type": bt,
                    "arm": arm,
                    "strength": c.get("strength"),
                    "ratio": ratio,
                    "reference": reference,
                    "replicate": seeds.index(s),
                    "seed": s,
                    "metric": metric,
                    "delta": d["delta"],
                    "item_ci_low": d["ci_low"],
                    "item_ci_high": d["ci_high"],
                    "n_items": d["n_items"],
                }
                if draws:
                    _, _, boots_a, boots_b = paired_replicates(
                        task, items, pairs, metric, n_resamples, item_seed
                    )
                    row["item_draws"] = np.asarray(boots_b) - np.asarray(boots_a)
                out.append(row)
    return out


def _cells(rows: Sequence[dict[str, Any]]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault(tuple(r[k] for k in CELL), []).append(r)
    return cells


def _by_replicate(rows: Sequence[dict[str, Any]], n: int, key: str = "delta") -> np.ndarray:
    """One value per replicate (NaN where the replicate has none, e.g. a failed metric)."""
    values = np.full(n, math.nan)
    for r in rows:
        v = r[key]
        values[r["replicate"]] = v if v is not None and math.isfinite(v) else math.nan
    return values


def _two_stage_items(rows: Sequence[dict[str, Any]], n: int) -> list[np.ndarray] | None:
    """Each replicate's stored item-bootstrap draws (None if any replicate has none)."""
    found = {r["replicate"]: r.get("item_draws") for r in rows}
    if any(found.get(i) is None for i in range(n)):
        return None
    return [np.asarray(found[i], dtype=float) for i in range(n)]


def _item_level(
    pooled: Mapping[tuple[Any, ...], dict[str, Any]], key: tuple[Any, ...]
) -> dict[str, Any] | None:
    """The old item-level figure of a cell (pooled over seeds), named for what it is."""
    d = pooled.get(key)
    if d is None:
        return None
    return {
        "delta": d.get("delta"),
        "ci_low": d.get("ci_low"),
        "ci_high": d.get("ci_high"),
        "n_seeds": d.get("n_seeds"),
        "note": ITEM_CI_NOTE,
    }


def headlines(
    rows: Sequence[dict[str, Any]],
    n_replicates: int,
    *,
    method: str = "t",
    adjust: str = "holm",
    level: float = 0.95,
    alpha: float = 0.05,
    pooled: Sequence[dict[str, Any]] = (),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per cell (task, bias type, arm, ratio, reference): the mean paired change over
    replicates with its interval (``method``: ``t`` or ``two_stage``), MDE at 80 % power,
    p-value, and the adjusted ``detected`` flag over the family of every cell (``adjust``:
    ``holm`` or ``bh``). ``pooled`` are the item-level comparisons (``arm_effects``) whose CI
    is kept beside each headline as the secondary, item-level figure."""
    by_pooled = {tuple(d.get(k) for k in CELL): d for d in pooled}
    out = []
    for key, cell in _cells(rows).items():
        values = _by_replicate(cell, n_replicates)
        items = _two_stage_items(cell, n_replicates) if method == "two_stage" else None
        use = method if items is not None else "t"
        res = replicate_estimate(
            values,
            method=use,
            items=items,
            statistic=_first,
            level=level,
            seed=seed,  # type: ignore[arg-type]
        )
        first = cell[0]
        out.append(
            dict(zip(CELL, key, strict=True))
            | {"strength": first.get("strength"), "metric": first["metric"]}
            | res.to_dict()
            | {"item_level": _item_level(by_pooled, key)}
        )
    return flag_family(out, method=adjust, alpha=alpha, family=FAMILY)  # type: ignore[arg-type]


def ratio_slopes(
    rows: Sequence[dict[str, Any]], n_replicates: int, level: float = 0.95
) -> list[dict[str, Any]]:
    """Dose-response per (task, bias type, arm, reference): the slope of the paired change over
    ratios, its interval from the per-replicate slopes (t over replicates). Ratio 0 enters as a
    change of 0 (both arms are the replicate's real-only model there), so a run with one ratio
    above 0 still has a slope."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["bias_type"], r["arm"], r["reference"]), []).append(r)
    out = []
    for (task, bt, arm, reference), cell in groups.items():
        ratios = sorted({r["ratio"] for r in cell})
        xs = [0.0, *ratios]
        table = np.zeros((n_replicates, len(xs)))
        for j, ratio in enumerate(ratios, start=1):
            table[:, j] = _by_replicate([r for r in cell if r["ratio"] == ratio], n_replicates)
        res = slope_over_replicates(xs, table, level=level)
        out.append(
            {"task": task, "bias_type": bt, "arm": arm, "reference": reference}
            | {"metric": cell[0]["metric"], "ratios": xs}
            | res.to_dict()
        )
    return out


def replication_summary(
    headline_rows: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    method: str,
    adjust: str,
    item_seed: int,
) -> dict[str, Any]:
    """What the headlines rest on: R, the seeds, the interval method, the family and its size."""
    r = len(seeds)
    sizes = {h.get("family_size") for h in headline_rows}
    return {
        "n_replicates": r,
        "seeds": list(seeds),
        "replicated": r >= MIN_REPLICATES,
        "status": "replicated" if r >= MIN_REPLICATES else NOT_REPLICATED,
        "inference": method,
        "adjustment": METHOD_NAMES[adjust],
        "family": FAMILY,
        "family_size": max((s for s in sizes if s is not None), default=0),
        "n_cells": len(headline_rows),
        "item_seed": item_seed,
        "replicate": "one seed: its augmentation draw, mix draw and training seed, shared by "
        "every arm (biased, control, real-only); the evaluation items are the same in all",
    }


def strip_draws(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-replicate rows without their bootstrap draws (for results.json and the CSV)."""
    return [{k: v for k, v in r.items() if k != "item_draws"} for r in rows]
