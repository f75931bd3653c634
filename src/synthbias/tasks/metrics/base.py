"""What every task metric builds on: the evaluation context, the registry, and the two shapes
most metrics take (a mean with a bootstrap CI, a between-group gap with its permutation null).

Resampling itself (cluster, stratified and paired bootstraps, permutation nulls, percentile
intervals) lives in :mod:`synthbias.stats`; here it is matched to a task's design."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import CI
from synthbias.stats.resampling import (
    Resamples,
    cluster_resample_index,
    grouped_means,
    percentile_interval,
    permutation_null,
    ragged_means,
)

NAN = float("nan")

#: evaluate a statistic on every bootstrap replicate / permutation at once where a metric has a
#: batched form (the same numbers, bit for bit); False: one call per replicate, the reference
#: the batched forms are tested against (tests/tasks/test_metric_batches.py).
BATCHED = True


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
        return list(self.resample_index(strata))

    def resample_index(self, strata: Sequence[Any] | None = None) -> Resamples:
        """:meth:`resamples` as one :class:`~synthbias.stats.resampling.Resamples` (for
        statistics of every replicate at once); drawn once per context and strata."""
        if strata is None:
            strata = [it.stratum for it in self.items]
        clusters = self.clusters if self.clustered else [None] * len(self.items)
        try:
            key: Any = ("_resamples", self.n_resamples, self.seed, tuple(clusters), tuple(strata))
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self.cache:
            return self.cache[key]
        out = cluster_resample_index(clusters, self.n_resamples, self.seed, strata)
        if key is not None:
            out.flat.flags.writeable = False  # shared by every metric of the context
            self.cache[key] = out
        return out

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
    ctx: EvalContext,
    stat: Callable[[np.ndarray], float],
    strata: Sequence[Any] | None = None,
    batch: Callable[[Resamples], np.ndarray] | None = None,
) -> CI | None:
    """Percentile CI of ``stat(item_indices)`` over :meth:`EvalContext.resamples` (clusters
    for counterfactual items); ``None`` when the context asks for point values only.

    ``batch``, if given, computes ``stat`` of every replicate at once from the
    :class:`~synthbias.stats.resampling.Resamples` (the same values, faster)."""
    if ctx.n_resamples <= 0:
        return None
    if batch is not None and BATCHED:
        lo, hi = percentile_interval(batch(ctx.resample_index(strata)))
    else:
        lo, hi = percentile_interval([stat(i) for i in ctx.resamples(strata)])
    return CI(lo, hi)


def gap_null(
    ctx: EvalContext,
    stat: Callable[[np.ndarray], float],
    labels: Sequence[Any],
    observed: float,
    blocks: Sequence[Any] | None = None,
    n_permutations: int | None = None,
    batch: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """Permutation null of a gap: group labels shuffled within clusters (counterfactual items)
    or within ``blocks``; empty when the context asks for point values only.

    ``batch``, if given, computes ``stat`` of every permutation at once from the
    (permutations, items) index array of
    :func:`~synthbias.stats.resampling.permutation_indices` (permutation ``p`` gives item ``i``
    the label of item ``index[p, i]``)."""
    if ctx.n_resamples <= 0:
        return {}
    if blocks is None:
        blocks = ctx.clusters if ctx.clustered else [axis_of(str(g)) for g in labels]
    n = n_permutations or min(ctx.n_resamples, 1000)
    if batch is not None and BATCHED:
        return permutation_null(batch, labels, blocks, n, ctx.seed, observed, batched=True)
    return permutation_null(stat, labels, blocks, n, ctx.seed, observed)


@dataclass(frozen=True)
class Replicates:
    """Many replicates of a statistic's input, flattened: entry ``k`` of replicate ``rows[k]``
    takes its value from item ``item[k]`` and its group label from item ``label[k]`` (the same
    item in a bootstrap replicate; another one under a label permutation). Entries of a
    replicate are consecutive and in the order the one-replicate statistic sees them."""

    rows: np.ndarray
    item: np.ndarray
    label: np.ndarray
    n: int

    @classmethod
    def of_resamples(cls, res: Resamples) -> Replicates:
        """Bootstrap replicates: replicate ``r`` is the items ``res`` draws, with their labels."""
        return cls(res.rows, res.flat, res.flat, len(res))

    @classmethod
    def of_permutations(cls, perm: np.ndarray, keep: np.ndarray | None = None) -> Replicates:
        """Permutation replicates: the items ``keep`` (default all), labelled as ``perm``
        (permutation ``p`` gives item ``i`` the label of item ``perm[p, i]``)."""
        keep = np.arange(perm.shape[1]) if keep is None else np.asarray(keep, dtype=np.intp)
        n_p = perm.shape[0]
        return cls(
            np.repeat(np.arange(n_p), len(keep)),
            np.tile(keep, n_p),
            perm[:, keep].ravel(),
            n_p,
        )

    def means(self, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Per replicate ``values[item][mask].mean()`` over its entries (``mask`` per entry),
        bit for bit; NaN for a replicate with no entry left."""
        return grouped_means(
            self.rows[mask], np.asarray(values, dtype=float)[self.item[mask]], self.n
        )


def row_nanmean(x: np.ndarray) -> np.ndarray:
    """:func:`nanmean` of each row of a 2-D array (bit for bit)."""
    x = np.asarray(x, dtype=float)
    ok = ~np.isnan(x)
    return ragged_means(x[ok], ok.sum(axis=1))


def mean_metric(
    ctx: EvalContext, name: str, values: np.ndarray, groups: np.ndarray | None = None, **meta: Any
) -> MetricResult:
    """Mean of per-item values (NaN = not applicable, left out) with an item bootstrap CI."""
    values = np.asarray(values, dtype=float)
    groups = ctx.groups if groups is None else groups
    ok = ~np.isnan(values)

    def batch(res: Resamples) -> np.ndarray:
        v = values[res.flat]
        keep = ~np.isnan(v)
        return grouped_means(res.rows[keep], v[keep], len(res))

    return MetricResult(
        name=name,
        value=nanmean(values),
        ci=index_ci(ctx, lambda i: nanmean(values[i]), batch=batch),
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

    code = np.array([names.index(x) for x in groups.tolist()], dtype=np.intp)

    def gaps_batch(rep: Replicates) -> np.ndarray:
        """:func:`per_axis_gaps` of every replicate, (replicates, axes)."""
        sel = ok[rep.item]
        return _axis_gaps_batch(
            rep.rows[sel],
            code[rep.label[sel]],
            values[rep.item[sel]],
            rep.n,
            g_axis,
            len(names),
            len(axes),
            relative,
        )

    def agg_batch(x: np.ndarray) -> np.ndarray:
        if how == "mean":
            return row_nanmean(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(x, axis=1)

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
        if BATCHED:
            res = ctx.resample_index(strata)
            boots = gaps_batch(Replicates.of_resamples(res)).reshape(len(res), len(axes))
            lo, hi = percentile_interval(agg_batch(boots))
        else:
            boots = np.array([per_axis_gaps(i) for i in ctx.resamples(strata)])
            lo, hi = percentile_interval([agg(b) for b in boots])
        ci = CI(lo, hi)
        null = gap_null(
            ctx,
            lambda lab: agg(per_axis_gaps(full, lab)),
            groups,
            value,
            batch=lambda perm: agg_batch(gaps_batch(Replicates.of_permutations(perm))),
        )
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


def _axis_gaps_batch(
    rows: np.ndarray,
    codes: np.ndarray,
    vals: np.ndarray,
    n_rows: int,
    g_axis: np.ndarray,
    n_groups: int,
    n_axes: int,
    relative: bool,
) -> np.ndarray:
    """(n_rows, n_axes) gaps of :func:`gap_metric` for many replicates at once, bit for bit:
    entry ``k`` (value ``vals[k]``, group ``codes[k]``) belongs to replicate ``rows[k]``. Group
    sums are ``np.bincount`` sums in entry order, as in the one-replicate version."""
    key = rows * n_groups + codes
    size = n_rows * n_groups
    cnt = np.bincount(key, minlength=size).astype(float).reshape(n_rows, n_groups)
    tot = np.bincount(key, weights=vals, minlength=size).reshape(n_rows, n_groups)
    with np.errstate(all="ignore"):
        means = np.where(cnt > 0, tot / np.where(cnt > 0, cnt, 1), np.nan)
    out = np.full((n_rows, n_axes), np.nan)
    for a in range(n_axes):
        m = means[:, g_axis == a]
        valid = ~np.isnan(m)
        n_valid = valid.sum(axis=1)
        two = n_valid >= 2
        if not two.any():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gap = np.nanmax(m, axis=1) - np.nanmin(m, axis=1)
        if relative:
            with np.errstate(all="ignore"):
                gap = gap / ragged_means(m[valid], n_valid)
        out[two, a] = gap[two]
    return out


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
