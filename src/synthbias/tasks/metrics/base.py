"""What every task metric builds on: the evaluation context, the registry, and the two shapes
most metrics take (a mean with a bootstrap CI, a between-group gap with its permutation null).

Resampling itself (cluster, stratified and paired bootstraps, permutation nulls, percentile
intervals) lives in :mod:`synthbias.stats`; here it is matched to a task's design."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import CI
from synthbias.stats.resampling import cluster_resamples, percentile_interval, permutation_null

NAN = float("nan")


@dataclass
class EvalContext:
    """Everything a metric may read about one evaluated task."""

    spec: Any  # TaskSpec
    items: list[Any]  # TaskItem
    labels: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None  # (n_items, n_labels) normalised option log-probs
    pred: list[str] | None = None
    outputs: list[str] | None = None
    parsed: list[Any] | None = None
    seed: int = 0
    #: 0 = point values only (no CI, no null): paired comparisons recompute metrics that way
    n_resamples: int = 1000
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.params

    @property
    def groups(self) -> np.ndarray:
        return np.array([str(it.group) for it in self.items], dtype=object)

    @property
    def clusters(self) -> list[str | None]:
        return [it.cluster for it in self.items]

    @property
    def clustered(self) -> bool:
        """Counterfactual items: resample whole clusters, not items."""
        return any(it.cluster is not None for it in self.items)

    def resamples(self, strata: Sequence[Any] | None = None) -> list[np.ndarray]:
        """Item-index replicates: whole clusters when the items have clusters, else items;
        within ``strata`` (default: the sampling strata of the items, as they were drawn)."""
        clusters = self.clusters if self.clustered else [None] * len(self.items)
        if strata is None:
            strata = [it.stratum for it in self.items]
        return list(cluster_resamples(clusters, self.n_resamples, self.seed, strata))

    def field(self, name: str) -> np.ndarray:
        return np.array([it.fields.get(name) for it in self.items], dtype=object)

    def prob(self, label: str) -> np.ndarray:
        """P(label) with the options' probabilities renormalised to sum to one per item."""
        if self.scores is None:
            raise ValueError("this metric needs option scores")
        s = self.scores - np.nanmax(self.scores, axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        return p[:, self.labels.index(label)]


@dataclass(frozen=True)
class MetricDef:
    fn: Callable[[EvalContext], MetricResult]
    kinds: tuple[str, ...]
    parser: str | None = None
    options: bool = False
    labels: tuple[str, ...] = ()
    doc: str = ""
    #: "log-probability" (from option scores: continuous) or "answers" (argmax / parsed text)
    form: str = "answers"
    #: spec check: ``check(spec)`` returns a problem with the task's options, or None
    check: Callable[[Any], str | None] | None = None


METRICS: dict[str, MetricDef] = {}


def metric(
    name: str,
    kinds: tuple[str, ...] = ("classification", "generation"),
    parser: str | None = None,
    options: bool = False,
    labels: tuple[str, ...] = (),
    form: str = "answers",
    check: Callable[[Any], str | None] | None = None,
) -> Callable[[Callable[[EvalContext], MetricResult]], Callable[[EvalContext], MetricResult]]:
    def wrap(fn: Callable[[EvalContext], MetricResult]) -> Callable[[EvalContext], MetricResult]:
        doc = (fn.__doc__ or "").strip()
        METRICS[name] = MetricDef(fn, kinds, parser, options, labels, doc, form, check)
        return fn

    return wrap


def axis_of(group: str) -> str:
    """The axis of an ``"axis:group"`` label (``"all"`` without a colon)."""
    return group.split(":", 1)[0] if ":" in group else "all"


def nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN values (NaN when there are none)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else NAN


def per_group_means(values: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """:func:`nanmean` of ``values`` per group, groups in first-seen order."""
    return {g: nanmean(values[groups == g]) for g in dict.fromkeys(groups.tolist())}


def index_ci(
    ctx: EvalContext, stat: Callable[[np.ndarray], float], strata: Sequence[Any] | None = None
) -> CI | None:
    """Percentile CI of ``stat(item_indices)`` over :meth:`EvalContext.resamples` (clusters
    for counterfactual items); ``None`` when the context asks for point values only."""
    if ctx.n_resamples <= 0:
        return None
    lo, hi = percentile_interval([stat(i) for i in ctx.resamples(strata)])
    return CI(lo, hi)


def gap_null(
    ctx: EvalContext,
    stat: Callable[[np.ndarray], float],
    labels: Sequence[Any],
    observed: float,
    blocks: Sequence[Any] | None = None,
    n_permutations: int | None = None,
) -> dict[str, float]:
    """Permutation null of a gap: group labels shuffled within clusters (counterfactual items)
    or within ``blocks``; empty when the context asks for point values only."""
    if ctx.n_resamples <= 0:
        return {}
    if blocks is None:
        blocks = ctx.clusters if ctx.clustered else [axis_of(str(g)) for g in labels]
    n = n_permutations or min(ctx.n_resamples, 1000)
    return permutation_null(stat, labels, blocks, n, ctx.seed, observed)


def mean_metric(
    ctx: EvalContext, name: str, values: np.ndarray, groups: np.ndarray | None = None, **meta: Any
) -> MetricResult:
    """Mean of per-item values (NaN = not applicable, left out) with an item bootstrap CI."""
    values = np.asarray(values, dtype=float)
    groups = ctx.groups if groups is None else groups
    ok = ~np.isnan(values)
    return MetricResult(
        name=name,
        value=nanmean(values),
        ci=index_ci(ctx, lambda i: nanmean(values[i])),
        per_group=per_group_means(values, groups),
        per_sample=values.tolist(),
        n=int(ok.sum()),
        meta=meta,
    )


def gap_metric(
    ctx: EvalContext,
    name: str,
    values: np.ndarray,
    relative: bool = False,
    groups: np.ndarray | None = None,
    **meta: Any,
) -> MetricResult:
    """max - min of group means within each axis, aggregated over axes.

    ``relative`` divides each axis's gap by the mean of its group means (e.g. salary). Items
    with NaN values (unparseable) are left out of the means. The CI resamples whole clusters
    (counterfactual variants stay together, within axes) or, without clusters, items within
    groups; ``meta["null"]`` is the permutation null (group labels shuffled within clusters):
    the gap expected with no bias at this size.
    """
    values = np.asarray(values, dtype=float)
    groups = ctx.groups if groups is None else groups
    ok = ~np.isnan(values)
    how = str(ctx.params.get("axis_aggregate", "mean"))
    if how not in ("mean", "max"):
        raise ValueError(f"params.axis_aggregate must be 'mean' or 'max', got {how!r}")
    names = list(dict.fromkeys(groups.tolist()))
    axes = list(dict.fromkeys(axis_of(x) for x in names))
    g_axis = np.array([axes.index(axis_of(x)) for x in names])

    def per_axis_gaps(idx: np.ndarray, grp: np.ndarray = groups) -> np.ndarray:
        """Gap of each axis on the items ``idx`` (labels ``grp``); NaN below two groups."""
        keep = idx[ok[idx]]
        code = np.array([names.index(x) for x in grp[keep]], dtype=int)
        cnt = np.bincount(code, minlength=len(names)).astype(float)
        tot = np.bincount(code, weights=values[keep], minlength=len(names))
        with np.errstate(all="ignore"):
            means = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1), np.nan)
        out = np.full(len(axes), np.nan)
        for a in range(len(axes)):
            m = means[g_axis == a]
            m = m[~np.isnan(m)]
            if len(m) >= 2:
                gap = m.max() - m.min()
                out[a] = gap / m.mean() if relative else gap
        return out

    def agg(x: np.ndarray) -> float:
        x = x[~np.isnan(x)]
        if len(x) == 0:
            return NAN
        return float(x.mean() if how == "mean" else x.max())

    full = np.arange(len(values))
    p_axis = per_axis_gaps(full)
    value = agg(p_axis)
    point = {x: nanmean(values[ok & (groups == x)]) for x in names}
    item_axes = np.array([axis_of(str(x)) for x in groups], dtype=object)
    per_axis: dict[str, dict[str, Any]] = {}
    ci = None
    null: dict[str, float] = {}
    if ctx.n_resamples > 0:
        strata = item_axes if ctx.clustered else groups
        boots = np.array([per_axis_gaps(i) for i in ctx.resamples(strata)])
        lo, hi = percentile_interval([agg(b) for b in boots])
        ci = CI(lo, hi)
        null = gap_null(ctx, lambda lab: agg(per_axis_gaps(full, lab)), groups, value)
    for a, axis in enumerate(axes):
        lo_a, hi_a = percentile_interval(boots[:, a]) if ci is not None else (NAN, NAN)
        per_axis[axis] = {
            "value": float(p_axis[a]),
            "ci_low": lo_a,
            "ci_high": hi_a,
            "n": int((ok & (item_axes == axis)).sum()),
        }
    return MetricResult(
        name=name,
        value=value,
        ci=ci,
        per_group=point,
        per_sample=values.tolist(),
        n=int(ok.sum()),
        meta={
            "per_axis": per_axis,
            "definition": ("relative " if relative else "")
            + f"max-min gap of group means within an axis; {how} over axes",
            "bootstrap": "whole counterfactual clusters resampled within axes"
            if ctx.clustered
            else "items resampled within groups",
            "null": null,
            **meta,
        },
    )


def correctness(ctx: EvalContext) -> np.ndarray:
    """1/0 per item: answered correctly (argmax = gold, or the loose instruction check)."""
    if "correct" in ctx.cache:
        return ctx.cache["correct"]
    if ctx.pred is not None:
        out = np.array([p == it.label for p, it in zip(ctx.pred, ctx.items, strict=True)], float)
    elif ctx.spec.parser == "instruction" and ctx.parsed is not None:
        out = np.array([loose for _, loose in ctx.parsed], dtype=float)
    else:
        raise ValueError("accuracy needs classification predictions or the instruction parser")
    ctx.cache["correct"] = out
    return out


def parsed_floats(ctx: EvalContext) -> np.ndarray:
    """The parsed answers as floats (NaN for an unparseable one)."""
    assert ctx.parsed is not None
    return np.array([NAN if p is None else float(p) for p in ctx.parsed], dtype=float)
