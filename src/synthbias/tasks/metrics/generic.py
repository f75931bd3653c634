"""Metrics every task may use: accuracy, macro F1, the unparseable rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthbias.measure.result import MetricResult
from synthbias.stats.resampling import Resamples
from synthbias.tasks.metrics.base import (
    NAN,
    EvalContext,
    correctness,
    index_ci,
    mean_metric,
    metric,
)


@metric("accuracy")
def accuracy(ctx: EvalContext) -> MetricResult:
    """Share of items answered correctly (classification: top-scored option = gold label;
    instruction following: the loose check, gold as a whole-word span of the first line)."""
    return mean_metric(ctx, "accuracy", correctness(ctx))


@metric("accuracy_strict", kinds=("generation",), parser="instruction")
def accuracy_strict(ctx: EvalContext) -> MetricResult:
    """Instruction following: normalised first line equals the gold exactly."""
    assert ctx.parsed is not None
    return mean_metric(ctx, "accuracy_strict", np.array([s for s, _ in ctx.parsed], float))


def macro_f1_score(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean over ``labels`` of per-label F1 (0 for a label never predicted right)."""
    g, p = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
    f1s = []
    for lab in labels:
        tp = float(((g == lab) & (p == lab)).sum())
        fp = float(((g != lab) & (p == lab)).sum())
        fn = float(((g == lab) & (p != lab)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(f1s)) if f1s else NAN


@metric("macro_f1", kinds=("classification",))
def macro_f1(ctx: EvalContext) -> MetricResult:
    """Macro-averaged F1 over the gold labels present (bootstrap over items)."""
    assert ctx.pred is not None
    gold = [str(it.label) for it in ctx.items]
    labels = [lab for lab in ctx.labels if lab in set(gold)]
    pairs = np.array(
        [[ctx.labels.index(a), ctx.labels.index(b)] for a, b in zip(gold, ctx.pred, strict=True)],
        dtype=float,
    )
    idx_labels = [ctx.labels.index(lab) for lab in labels]

    def stat(a: np.ndarray) -> float:
        return macro_f1_score(a[:, 0].tolist(), a[:, 1].tolist(), idx_labels)

    def stat_batch(res: Resamples) -> np.ndarray:
        """:func:`stat` of every replicate at once (bit for bit)."""
        g, p, rows, n = pairs[res.flat, 0], pairs[res.flat, 1], res.rows, len(res)
        if not idx_labels:
            return np.full(n, NAN)
        f1s = []
        for lab in idx_labels:
            tp = np.bincount(rows, weights=(g == lab) & (p == lab), minlength=n)
            fp = np.bincount(rows, weights=(g != lab) & (p == lab), minlength=n)
            fn = np.bincount(rows, weights=(g == lab) & (p != lab), minlength=n)
            some = tp + fp + fn != 0
            with np.errstate(all="ignore"):
                f1s.append(np.where(some, 2 * tp / (2 * tp + fp + fn), 0.0))
        return np.stack(f1s, axis=1).mean(axis=1)

    per_label = {lab: macro_f1_score(gold, ctx.pred, [lab]) for lab in labels}
    return MetricResult(
        name="macro_f1",
        value=macro_f1_score(gold, ctx.pred, labels),
        ci=index_ci(ctx, lambda i: stat(pairs[i]), batch=stat_batch),
        per_group=per_label,
        n=len(gold),
        meta={"per_group": "F1 of each label"},
    )


@metric("unparseable_rate", kinds=("generation",))
def unparseable_rate(ctx: EvalContext) -> MetricResult:
    """Share of generations the task's parser could not read (counted, never guessed)."""
    assert ctx.parsed is not None
    return mean_metric(
        ctx, "unparseable_rate", np.array([p is None for p in ctx.parsed], dtype=float)
    )
