"""Paired comparisons of two models' task answers, for any pair of models of a design.

Thin layer over the tasks' own machinery (:mod:`synthbias.tasks.compare`): a task's headline
metric is recomputed from the stored per-item answers (``records`` of an evaluation file) of
both models on the same items, on the same resampled clusters (and seeds). It serves the
comparisons that are not "each ratio vs the real-only model" (that one is
:func:`synthbias.tasks.sweep.paired_deltas`): each biased arm vs the control arm at the same
ratio (:func:`synthbias.studies.inheritance.design.arm_effects`) and each mitigation vs none at the
same ratio
(:func:`synthbias.studies.mitigation.runner.compare_inheritance`).

* :func:`compare_pairs` — a paired delta with CI for every task and every comparison.
* :func:`paired_replicates` — both models' bootstrap replicates from the same draws, for
  statistics that need more than the delta (the mitigation study's reduction and its rule on
  the baseline's CI).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthbias.tasks.compare import finding, headline, paired_delta, paired_resample

#: stored answers: adapter key -> task name -> per-item records
Records = Mapping[str, Mapping[str, Sequence[dict[str, Any]]]]
#: one comparison: labels for its rows, and (reference adapter, compared adapter) per seed
Comparison = tuple[dict[str, Any], Sequence[tuple[str, str]]]


def seed_pairs(
    records: Records, task: str, adapters: Sequence[tuple[str, str]]
) -> list[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]]:
    """``(records_ref, records_cmp)`` of ``task`` per seed where both models stored answers."""
    out = []
    for ref, cmp_ in adapters:
        ra = (records.get(str(ref)) or {}).get(task)
        rb = (records.get(str(cmp_)) or {}).get(task)
        if ra is not None and rb is not None:
            out.append((ra, rb))
    return out


def compare_pairs(
    tasks: Sequence[Any],
    sizes: Mapping[str, int],
    item_seed: int,
    comparisons: Sequence[Comparison],
    records: Records,
    n_resamples: int = 1000,
    than: str = "the reference",
) -> list[dict[str, Any]]:
    """One row per task and comparison: labels, the headline's paired delta (compared −
    reference) with its CI, and a plain finding phrased against ``than``.

    Comparisons without stored answers for a task are skipped (evals of an older version).
    """
    out = []
    for task in tasks:
        metric = headline(task)
        items = task.items(sizes[task.name], item_seed)
        for labels, adapters in comparisons:
            pairs = seed_pairs(records, task.name, adapters)
            if not pairs:
                continue
            d = paired_delta(task, items, pairs, metric, n_resamples, item_seed)
            text = finding(d, bias=bool(task.spec.bias_metric)).replace("the real-only model", than)
            out.append({"task": task.name} | labels | d | {"finding": text})
    return out


def paired_replicates(
    task: Any,
    items: Sequence[Any],
    pairs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    metric: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Point values and bootstrap replicates of ``metric`` for model a and model b.

    The same draws as :func:`synthbias.stats.resampling.paired_bootstrap` (one cluster resample per
    replicate for both models and every seed; seeds resampled with two or more), so
    ``reps_b - reps_a`` is its delta's replicates. Values are means over the drawn seeds.
    """
    if not pairs:
        raise ValueError(f"task {task.name}: no stored answers to compare")
    res = paired_resample(task, items, pairs, metric, n_resamples, seed)
    return res["value_a"], res["value_b"], res["boots_a"], res["boots_b"]
