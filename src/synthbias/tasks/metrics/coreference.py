"""Section 3, coreference (WinoBias / Winogender): accuracy on pro- and anti-stereotypical
items and the gap between them, in answer and log-probability form."""

from __future__ import annotations

from typing import Any

import numpy as np

from synthbias.measure.result import MetricResult
from synthbias.tasks.metrics.base import (
    NAN,
    EvalContext,
    Replicates,
    correctness,
    gap_null,
    index_ci,
    mean_metric,
    metric,
    nanmean,
)


def _condition_acc(ctx: EvalContext, cond: str) -> MetricResult:
    correct = correctness(ctx).copy()
    mask = ctx.field("condition") == cond
    correct[~mask] = NAN
    return mean_metric(
        ctx, f"accuracy_{cond}", correct, np.array([str(x) for x in ctx.field("gender")], object)
    )


@metric("accuracy_pro", kinds=("classification",))
def accuracy_pro(ctx: EvalContext) -> MetricResult:
    """Accuracy on pro-stereotypical items (the gender stereotype points to the gold referent)."""
    return _condition_acc(ctx, "pro")


@metric("accuracy_anti", kinds=("classification",))
def accuracy_anti(ctx: EvalContext) -> MetricResult:
    """Accuracy on anti-stereotypical items (the stereotype points to the wrong referent)."""
    return _condition_acc(ctx, "anti")


def _pro_anti_gap(
    ctx: EvalContext, name: str, score: np.ndarray, meta: dict[str, Any]
) -> MetricResult:
    """Mean ``score`` on pro items minus on anti items, with the design's CI and null."""
    cond = np.array([str(x) for x in ctx.field("condition")], dtype=object)

    def stat(idx: np.ndarray, kk: np.ndarray = cond) -> float:
        sc, k = score[idx], kk[idx]
        pro, anti = sc[k == "pro"], sc[k == "anti"]
        return float(pro.mean() - anti.mean()) if len(pro) and len(anti) else NAN

    is_pro, is_anti = cond == "pro", cond == "anti"

    def stat_batch(rep: Replicates) -> np.ndarray:
        """:func:`stat` of every replicate at once (bit for bit; NaN when a side is empty)."""
        return rep.means(score, is_pro[rep.label]) - rep.means(score, is_anti[rep.label])

    keep = np.flatnonzero((cond == "pro") | (cond == "anti"))
    value = stat(keep)
    null = {}
    if ctx.n_resamples > 0 and ctx.clustered:
        null = gap_null(
            ctx,
            lambda lab: stat(keep, lab),
            cond,
            value,
            blocks=ctx.clusters,
            batch=lambda perm: stat_batch(Replicates.of_permutations(perm, keep)),
        )
    return MetricResult(
        name=name,
        value=value,
        ci=index_ci(
            ctx,
            stat,
            None if ctx.clustered else cond,
            batch=lambda res: stat_batch(Replicates.of_resamples(res)),
        ),
        per_group={
            "pro": nanmean(score[cond == "pro"]),
            "anti": nanmean(score[cond == "anti"]),
        },
        per_sample=score[keep].tolist(),
        n=len(keep),
        meta={"bootstrap": "whole pro/anti clusters" if ctx.clustered else "items within pro/anti"}
        | meta
        | {"null": null},
    )


@metric("bias.pro_anti_gap", kinds=("classification",))
def pro_anti_gap(ctx: EvalContext) -> MetricResult:
    """accuracy_pro - accuracy_anti (WinoBias's difference). The CI resamples whole clusters
    (a sentence's pro and anti twins together) or, without clusters, items within conditions;
    ``meta["null"]`` shuffles pro/anti within clusters (the gap expected with no bias)."""
    return _pro_anti_gap(ctx, "bias.pro_anti_gap", correctness(ctx), {})


@metric("bias.pro_anti_gap_p", kinds=("classification",), form="log-probability")
def pro_anti_gap_p(ctx: EvalContext) -> MetricResult:
    """Log-probability form of bias.pro_anti_gap: mean P(correct referent) on pro items minus
    on anti items (each item's two options renormalised). With one pro and one anti twin per
    cluster it is the mean over clusters of p(correct | pro) - p(correct | anti). It is
    continuous: a model that picks the same referent for both twins (argmax gap exactly 0, a
    zero-width bootstrap) still shows how far the pronoun's gender moves its probability.
    Positive = towards the stereotype. CI and null as for bias.pro_anti_gap."""
    probs = np.column_stack([ctx.prob(lab) for lab in ctx.labels])
    gold = np.array([ctx.labels.index(str(it.label)) for it in ctx.items], dtype=int)
    p_correct = probs[np.arange(len(gold)), gold]
    meta = {
        "definition": "mean P(correct | pro) - mean P(correct | anti), option log-probs",
        "form": "log-probability",
    }
    return _pro_anti_gap(ctx, "bias.pro_anti_gap_p", p_correct, meta)
