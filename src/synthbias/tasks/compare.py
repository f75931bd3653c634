"""Paired comparison of two models on the same task items (each ratio vs the real-only model).

Every model of a sweep answers the same items (``Task.items(n, seed)`` is deterministic), so the
change of a metric between two models is estimated on the *same* resampled clusters: a metric
is recomputed from the stored per-item answers of both models for each replicate
(:func:`synthbias.stats.resampling.paired_bootstrap`). The paired CI is much narrower than the two
unpaired CIs suggest whenever the models agree on most items.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from synthbias.stats.resampling import half_width, min_detectable_effect, paired_bootstrap
from synthbias.tasks.metrics import (
    METRICS,
    TOX_METRICS,
    EvalContext,
    sentiment_values,
    tox_replicates,
)

#: per-item fields kept in evaluation files so metrics can be recomputed later
RECORD_KEYS = ("id", "choice", "option_scores", "output", "parsed")


def compact_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-item answers a metric needs (no prompts), for evaluation files."""
    return [{k: r[k] for k in RECORD_KEYS if k in r} for r in records]


def context_from_records(
    task: Any, items: Sequence[Any], records: Sequence[dict[str, Any]], seed: int = 0
) -> EvalContext:
    """An :class:`EvalContext` rebuilt from stored answers (same items, same order)."""
    if len(records) != len(items) or any(
        str(r.get("id")) != it.id for r, it in zip(records, items, strict=True)
    ):
        raise ValueError(
            f"task {task.name}: stored answers do not match the items "
            f"({len(records)} answers, {len(items)} items); re-evaluate"
        )
    spec = task.spec
    ctx = EvalContext(spec=spec, items=list(items), seed=seed, n_resamples=0)
    if spec.options:
        ctx.labels = list(spec.options)
        ctx.scores = np.array(
            [[float(r["option_scores"][lab]) for lab in ctx.labels] for r in records]
        )
    if spec.kind == "classification":
        ctx.pred = [str(r["choice"]) for r in records]
    else:
        ctx.outputs = [str(r.get("output", "")) for r in records]
        ctx.parsed = [r.get("parsed") for r in records]
    return ctx


def subset(ctx: EvalContext, idx: np.ndarray) -> EvalContext:
    """The context restricted to items ``idx`` (repeats allowed), for point values only.

    A cluster drawn twice becomes two clusters (``c@0``, ``c@1``), so twin-based metrics count
    it twice like every other statistic of the replicate.
    """
    seen: dict[int, int] = {}
    items = []
    for i in idx:
        k = seen.get(int(i), 0)
        seen[int(i)] = k + 1
        it = ctx.items[int(i)]
        if it.cluster is not None and k:
            it = type(it)(**{**it.__dict__, "cluster": f"{it.cluster}@{k}"})
        items.append(it)
    sub = EvalContext(spec=ctx.spec, items=items, labels=ctx.labels, seed=ctx.seed, n_resamples=0)
    if ctx.scores is not None:
        sub.scores = ctx.scores[idx]
    if ctx.pred is not None:
        sub.pred = [ctx.pred[int(i)] for i in idx]
    if ctx.outputs is not None:
        sub.outputs = [ctx.outputs[int(i)] for i in idx]
    if ctx.parsed is not None:
        sub.parsed = [ctx.parsed[int(i)] for i in idx]
    for key in ("correct", "sentiment"):
        if key in ctx.cache:
            sub.cache[key] = np.asarray(ctx.cache[key])[idx]
    return sub


def metric_stat(ctx: EvalContext, name: str) -> Callable[[list[np.ndarray]], np.ndarray]:
    """``stat([idx, ...])``: metric ``name`` recomputed on each item-index replicate."""
    fn = METRICS[name].fn
    if "sentiment" in name and METRICS[name].form == "answers":  # VADER of the stored texts
        ctx.cache["sentiment"] = sentiment_values(ctx)
    if name in TOX_METRICS:
        return lambda reps: tox_replicates(ctx, name, reps)

    def stat(reps: list[np.ndarray]) -> np.ndarray:
        return np.array([float(fn(subset(ctx, idx)).value) for idx in reps])

    return stat


def headline(task: Any) -> str:
    """The metric a task's comparisons are about: its bias metric, else its primary metric."""
    return task.spec.bias_metric or task.spec.primary_metric


def paired_resample(
    task: Any,
    items: Sequence[Any],
    pairs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    metric: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`~synthbias.stats.resampling.paired_bootstrap` of ``metric`` recomputed from each
    seed's
    stored answers of model a and model b on ``items`` (whole clusters where items have them,
    else items within their strata)."""
    stats = []
    for rec_a, rec_b in pairs:
        ca = context_from_records(task, items, rec_a, seed)
        cb = context_from_records(task, items, rec_b, seed)
        stats.append((metric_stat(ca, metric), metric_stat(cb, metric)))
    clustered = any(it.cluster is not None for it in items)
    clusters = [it.cluster if clustered else None for it in items]
    strata = [it.stratum for it in items]
    return paired_bootstrap(stats, clusters, n_resamples, seed, strata, batched=True)


def paired_delta(
    task: Any,
    items: Sequence[Any],
    pairs: Sequence[tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]]],
    metric: str,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Change of ``metric`` from model a to model b with a paired cluster-bootstrap CI.

    ``pairs`` holds one ``(records_a, records_b)`` per seed (stored answers on ``items``).
    Returns value, CI, half-width, smallest detectable effect (80% power), the number of seeds
    and whether the CI covers 0.
    """
    res = paired_resample(task, items, pairs, metric, n_resamples, seed)
    clustered = any(it.cluster is not None for it in items)
    hw = half_width(res["ci_low"], res["ci_high"])
    lo, hi = res["ci_low"], res["ci_high"]
    return {
        "metric": metric,
        "delta": res["value"],
        "ci_low": lo,
        "ci_high": hi,
        "half_width": hw,
        "min_detectable_effect": min_detectable_effect(hw),
        "n_seeds": res["n_seeds"],
        "n_items": len(items),
        "covers_zero": bool(math.isfinite(lo) and lo <= 0 <= hi) if math.isfinite(hi) else True,
        "resampling": "paired; whole clusters" if clustered else "paired; items within strata",
    }


def finding(delta: dict[str, Any], digits: int = 3, bias: bool = True) -> str:
    """One plain sentence on a paired delta: detected direction, or no detectable change.

    ``bias=False`` (a control task's accuracy-type headline) names the metric going higher or
    lower instead of calling the change more or less bias.
    """
    d, lo, hi = delta["delta"], delta["ci_low"], delta["ci_high"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval could be computed"
    ci = f"{d:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    if lo <= 0 <= hi:
        mde = delta["min_detectable_effect"]
        if not mde > 0:
            return f"no detectable change at this size ({ci}; identical answers)"
        return (
            f"no detectable change at this size ({ci}; changes smaller than about "
            f"{mde:.{digits}f} would go unseen)"
        )
    if not bias:
        way = "higher" if d > 0 else "lower"
        return f"{way} {delta.get('metric', 'score')} than the real-only model ({ci})"
    way = "more" if d > 0 else "less"
    return f"{way} bias than the real-only model ({ci})"
