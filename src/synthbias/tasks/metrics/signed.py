"""Signed gaps for a trained bias type: target group against contrast group, + = the stereotype.

Why: the spread metrics (``max - min`` over every identity of an axis, averaged over axes) are
unsigned, grow with noise alone and ignore which group an augmentation targeted, so any rise
reads as "more bias". A bias-inheritance study trains one bias type (a target and a contrast
group of one axis, :mod:`synthbias.lexicon.bias_types`); its headline is the signed difference
between those two groups, oriented so that a positive value leans towards the stereotype (the
target group gets less of a favourable outcome, or more of an unfavourable one), beside the
permutation null of that same difference.

Which bias type: the task parameter ``bias_type`` (a name, or a list of names) set by the study
that trained it; without it, every packaged bias type whose two groups both occur in the items,
averaged (each axis's packaged target / contrast pair). Benchmark items name some groups their
own way (BOLD's "gender:American_actresses", Jigsaw's bare "female"); :data:`GROUP_ALIASES` maps
those onto the bias types' ``"axis:group"`` labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from synthbias.lexicon.bias_types import bias_types
from synthbias.measure.result import MetricResult
from synthbias.tasks.metrics.base import (
    NAN,
    EvalContext,
    Replicates,
    axis_of,
    gap_null,
    index_ci,
    nanmean,
    row_nanmean,
)

#: benchmark group labels that name a bias type's target or contrast group
GROUP_ALIASES: dict[str, str] = {
    "gender:American_actresses": "gender:female",
    "gender:American_actors": "gender:male",
    "female": "gender:female",
    "male": "gender:male",
    "race_ethnicity:African_Americans": "race_ethnicity:black",
    "race_ethnicity:European_Americans": "race_ethnicity:white",
    "black": "race_ethnicity:black",
    "white": "race_ethnicity:white",
    "religion:islam": "religion:muslim",
    "religion:christianity": "religion:christian",
    "muslim": "religion:muslim",
    "christian": "religion:christian",
    "old": "age:older",
    "young": "age:young_adult",
}


def canonical_groups(ctx: EvalContext) -> np.ndarray:
    """Each item's group as an ``"axis:group"`` label of the bias types (aliases mapped)."""
    return np.array([GROUP_ALIASES.get(g, g) for g in ctx.groups.tolist()], dtype=object)


def trained_pairs(ctx: EvalContext) -> list[tuple[str, str, str]]:
    """(bias type, target label, contrast label) of the trained bias type(s) whose two groups
    both occur among the items; labels are ``"axis:group"``."""
    known = bias_types()
    raw = ctx.params.get("bias_type")
    names = list(known) if raw is None else [raw] if isinstance(raw, str) else list(raw)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"params.bias_type: unknown bias type(s) {unknown}")
    present = set(canonical_groups(ctx).tolist())
    out = []
    for name in names:
        bt = known[name]
        t, c = f"{bt.axis}:{bt.target}", f"{bt.axis}:{bt.contrast}"
        if t in present and c in present:
            out.append((name, t, c))
    return out


def signed_gap_metric(
    ctx: EvalContext,
    name: str,
    values: np.ndarray,
    favourable: bool,
    relative: bool = False,
    **meta: Any,
) -> MetricResult:
    """Signed target − contrast gap of per-item ``values`` for the trained bias type(s).

    ``favourable``: a higher value is good for the group (invite, salary, warmth), so the
    stereotype-ward gap is contrast − target; otherwise (P(toxic) of harmless text) it is
    target − contrast. ``relative`` divides by the mean of the two group means. Several bias
    types are averaged. CI: clusters (counterfactual items) or items within axes / groups;
    ``meta["null"]``: group labels permuted within clusters. NaN when no trained pair occurs.
    """
    values = np.asarray(values, dtype=float)
    groups = canonical_groups(ctx)
    ok = ~np.isnan(values)
    pairs = trained_pairs(ctx)

    def stat(idx: np.ndarray, grp: np.ndarray = groups) -> float:
        v, g, k = values[idx], grp[idx], ok[idx]
        gaps = [pair_gap(v, g, k, t, c, favourable, relative) for _, t, c in pairs]
        return nanmean(np.array(gaps)) if gaps else NAN

    masks = [(groups == t, groups == c) for _, t, c in pairs]

    def stat_batch(rep: Replicates) -> np.ndarray:
        """:func:`stat` of every replicate at once (bit for bit)."""
        if not pairs:
            return np.full(rep.n, NAN)
        k = ok[rep.item]
        gaps = [
            pair_gap_batch(
                rep.means(values, k & in_t[rep.label]),
                rep.means(values, k & in_c[rep.label]),
                favourable,
                relative,
            )
            for in_t, in_c in masks
        ]
        return row_nanmean(np.stack(gaps, axis=1))

    full = np.arange(len(values))
    value = stat(full)
    per_pair = {bt: pair_gap(values, groups, ok, t, c, favourable, relative) for bt, t, c in pairs}
    strata = np.array([axis_of(str(g)) for g in groups], dtype=object) if ctx.clustered else groups
    ci = (
        index_ci(
            ctx,
            stat,
            strata.tolist(),
            batch=lambda res: stat_batch(Replicates.of_resamples(res)),
        )
        if pairs
        else None
    )
    null = gap_null(
        ctx,
        lambda lab: stat(full, np.asarray(lab, dtype=object)),
        groups,
        value,
        batch=lambda perm: stat_batch(Replicates.of_permutations(perm)),
    )
    direction = "contrast − target" if favourable else "target − contrast"
    return MetricResult(
        name=name,
        value=value,
        ci=ci,
        per_group=per_pair,
        per_sample=values.tolist(),
        n=int(sum(ok & np.isin(groups, [g for _, t, c in pairs for g in (t, c)]))),
        meta={
            "definition": ("relative " if relative else "")
            + f"signed gap of group means, {direction} of the trained bias type "
            "(+ = towards the stereotype); mean over bias types",
            "pairs": [{"bias_type": b, "target": t, "contrast": c} for b, t, c in pairs],
            "null": null if pairs else {},
            **meta,
        },
    )


def pair_gap(
    values: np.ndarray,
    groups: np.ndarray,
    ok: np.ndarray,
    target: str,
    contrast: str,
    favourable: bool,
    relative: bool,
) -> float:
    """One (target, contrast) pair's signed gap (+ = towards the stereotype)."""
    mt = nanmean(values[(groups == target) & ok])
    mc = nanmean(values[(groups == contrast) & ok])
    gap = mc - mt if favourable else mt - mc
    if relative:
        mid = (mt + mc) / 2
        return gap / mid if mid else NAN
    return gap


def pair_gap_batch(
    mean_target: np.ndarray, mean_contrast: np.ndarray, favourable: bool, relative: bool
) -> np.ndarray:
    """:func:`pair_gap` from arrays of the two group means (one entry per replicate)."""
    gap = mean_contrast - mean_target if favourable else mean_target - mean_contrast
    if relative:
        mid = (mean_target + mean_contrast) / 2
        with np.errstate(all="ignore"):
            return np.where(mid != 0, gap / np.where(mid != 0, mid, 1.0), NAN)
    return gap
