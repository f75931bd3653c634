"""Section 2, toxicity with identity terms: overall AUC and the identity AUCs of Borkan et al.
(2019) (subgroup, BPSN, BNSP), with every bootstrap replicate evaluated at once by weights."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.resampling import (
    Resamples,
    null_summary,
    resample_counts,
    strata_resamples,
)
from synthbias.tasks.metrics.base import NAN, EvalContext, gap_null, metric
from synthbias.tasks.metrics.signed import signed_gap_metric


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank formula (ties count one half); NaN without both classes."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return NAN
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def identity_aucs(
    scores: np.ndarray, positive: np.ndarray, groups: np.ndarray
) -> tuple[float, dict[str, tuple[float, float, float]]]:
    """Overall AUC and, per identity group, (subgroup AUC, BPSN AUC, BNSP AUC).

    Borkan et al. (2019): *subgroup* uses only the group's items; *BPSN* (background positive,
    subgroup negative) the group's negatives with the other groups' positives; *BNSP*
    (background negative, subgroup positive) the group's positives with the other groups'
    negatives. A low BPSN means the group's harmless texts score as toxic as others' toxic ones.
    """
    out: dict[str, tuple[float, float, float]] = {}
    for g in dict.fromkeys(groups.tolist()):
        ing = groups == g
        sub = roc_auc(scores[ing], positive[ing])
        bpsn_m = (ing & ~positive) | (~ing & positive)
        bnsp_m = (ing & positive) | (~ing & ~positive)
        out[g] = (
            sub,
            roc_auc(scores[bpsn_m], positive[bpsn_m]),
            roc_auc(scores[bnsp_m], positive[bnsp_m]),
        )
    return roc_auc(scores, positive), out


def power_mean(values: Sequence[float], p: float) -> float:
    """Generalised mean (the Jigsaw bias-AUC aggregate uses p = -5); NaNs skipped."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return NAN
    if p == 0:
        return float(np.exp(np.log(np.maximum(v, 1e-300)).mean()))
    if p < 0 and (v <= 0).any():
        return 0.0
    return float(np.mean(v**p) ** (1 / p))


def weighted_identity_aucs(
    scores: np.ndarray, positive: np.ndarray, groups: np.ndarray, weights: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """:func:`identity_aucs` for many weight vectors at once (bootstrap counts), O(R n).

    ``weights`` is (R, n): how often each item occurs in each replicate. Returns the group names,
    the overall AUC (R,) and an (R, G, 3) array of subgroup / BPSN / BNSP AUCs. With weights of
    ones it equals :func:`identity_aucs`; a weighted AUC counts each (positive, negative) pair
    with the product of their weights and ties one half.
    """
    names = list(dict.fromkeys(groups.tolist()))
    auc = _weighted_auc(scores)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    pos = np.asarray(positive, dtype=bool)
    overall = auc(w * pos, w * ~pos)
    out = np.empty((w.shape[0], len(names), 3))
    for j, g in enumerate(names):
        ing = groups == g
        out[:, j, 0] = auc(w * (ing & pos), w * (ing & ~pos))
        out[:, j, 1] = auc(w * (~ing & pos), w * (ing & ~pos))
        out[:, j, 2] = auc(w * (ing & pos), w * (~ing & ~pos))
    return names, overall, out


def _weighted_auc(scores: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``auc(wp, wn)``: the weighted AUC of ``scores`` for each row of positive weights ``wp``
    and negative weights ``wn`` ((R, n) arrays); each row's value depends on that row alone."""
    uniq, inv = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
    n = len(inv)
    onehot_t = sp.csr_matrix((np.ones(n), (inv, np.arange(n))), shape=(len(uniq), n))

    def auc(wp: np.ndarray, wn: np.ndarray) -> np.ndarray:
        neg_bin = np.asarray((onehot_t @ wn.T).T)  # (R, U) negative weight at each score
        below = np.cumsum(neg_bin, axis=1) - neg_bin
        credit = (below + 0.5 * neg_bin)[:, inv]  # (R, n)
        num = (wp * credit).sum(axis=1)
        den = wp.sum(axis=1) * wn.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    return auc


def permuted_identity_aucs(
    scores: np.ndarray, positive: np.ndarray, groups: np.ndarray, perm: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`identity_aucs` (by :func:`weighted_identity_aucs` with unit weights) under many
    relabellings at once: permutation ``p`` gives item ``i`` the group of item ``perm[p, i]``.

    Returns the overall AUC (P,) and, per permutation, the (G, 3) subgroup / BPSN / BNSP AUCs
    in that permutation's own group order (first seen), bit for bit as
    ``weighted_identity_aucs(scores, positive, groups[perm[p]], ones)`` gives them."""
    names = list(dict.fromkeys(groups.tolist()))
    code = np.array([names.index(g) for g in groups.tolist()], dtype=np.intp)[perm]  # (P, n)
    auc = _weighted_auc(scores)
    pos = np.asarray(positive, dtype=bool)
    n_p = perm.shape[0]
    w = np.ones((n_p, len(pos)))
    overall = auc(w * pos, w * ~pos)
    per = np.empty((n_p, len(names), 3))
    for j in range(len(names)):
        ing = code == j
        per[:, j, 0] = auc(w * (ing & pos), w * (ing & ~pos))
        per[:, j, 1] = auc(w * (~ing & pos), w * (ing & ~pos))
        per[:, j, 2] = auc(w * (ing & pos), w * (~ing & ~pos))
    # each permutation lists its groups in the order they first occur among its labels
    first = np.full((n_p, len(names)), code.shape[1])
    for j in range(len(names)):
        hit = code == j
        first[:, j] = np.where(hit.any(axis=1), hit.argmax(axis=1), code.shape[1])
    out = []
    for p in range(n_p):
        order = [j for j in np.argsort(first[p], kind="stable") if first[p, j] < code.shape[1]]
        out.append(per[p, order])
    return overall, out


def _tox(ctx: EvalContext) -> dict[str, Any]:
    """Point and bootstrap values of every identity AUC, computed once per evaluation.

    The bootstrap resamples whole template clusters (one template with every identity) within
    labels, or without clusters items within identity x label strata, so every replicate keeps
    both classes in every identity; all replicates are evaluated at once by weights. The null
    (``null``: gap, BPSN and BNSP shortfalls) shuffles identities within clusters.
    """
    if "tox" in ctx.cache:
        return ctx.cache["tox"]
    score = ctx.prob("toxic")
    pos = np.array([it.label == "toxic" for it in ctx.items])
    groups = ctx.groups
    names, overall, per = weighted_identity_aucs(score, pos, groups, np.ones((1, len(score))))
    resamples: Sequence[np.ndarray] | Resamples
    if ctx.clustered:
        resamples = ctx.resample_index(pos.tolist())
    else:
        strata = np.array([f"{g}|{int(y)}" for g, y in zip(groups, pos, strict=True)], object)
        resamples = strata_resamples(strata, ctx.n_resamples, ctx.seed)
    parts = [  # count blocks bound memory for large item sets
        weighted_identity_aucs(score, pos, groups, counts)[1:]
        for counts in resample_counts(resamples, len(score))
    ]
    g = len(names)
    b_overall = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
    b_per = np.concatenate([p[1] for p in parts]) if parts else np.empty((0, g, 3))
    p_pow = float(ctx.params.get("power", -5))

    def gaps(lab: np.ndarray) -> tuple[float, float, float]:
        _, o, pr = weighted_identity_aucs(score, pos, lab, np.ones((1, len(score))))
        pr = pr[0]
        return (
            float(_spread(pr[:, 0])),
            float(o[0]) - power_mean(pr[:, 1].tolist(), p_pow),
            float(o[0]) - power_mean(pr[:, 2].tolist(), p_pow),
        )

    def gaps_batch(perm: np.ndarray) -> np.ndarray:
        """(P, 3) :func:`gaps` of every permutation at once (bit for bit)."""
        o, per_p = permuted_identity_aucs(score, pos, groups, perm)
        return np.array(
            [
                (
                    float(_spread(pr[:, 0])),
                    float(o[k]) - power_mean(pr[:, 1].tolist(), p_pow),
                    float(o[k]) - power_mean(pr[:, 2].tolist(), p_pow),
                )
                for k, pr in enumerate(per_p)
            ]
        ).reshape(len(per_p), 3)

    null: dict[str, dict[str, float]] = {}
    if ctx.n_resamples > 0 and ctx.clustered:
        # one set of permutations for all three (each costs an identity-AUC pass)
        observed = gaps(groups)
        seen: list[tuple[float, float, float]] = []

        def batch(perm: np.ndarray) -> np.ndarray:
            rows = gaps_batch(perm)
            seen.extend(tuple(r) for r in rows.tolist())
            return rows[:, 0]

        first = gap_null(
            ctx,
            lambda lab: (seen.append(gaps(lab)) or seen[-1])[0],
            groups,
            observed[0],
            blocks=ctx.clusters,
            n_permutations=min(ctx.n_resamples, 100),
            batch=batch,
        )
        null["gap"] = first
        arr = np.array(seen)
        for k, key in ((1, "bpsn"), (2, "bnsp")):
            null[key] = null_summary(arr[:, k], observed[k])
    ctx.cache["tox"] = {
        "score": score,
        "names": names,
        "overall": float(overall[0]),
        "per": per[0],  # (G, 3)
        "b_overall": b_overall,
        "b_per": b_per,  # (R, G, 3)
        "null": null,
    }
    return ctx.cache["tox"]


TOX_METRICS = ("auc", "bias.subgroup_auc_gap", "bias.bpsn_shortfall", "bias.bnsp_shortfall")


def tox_replicates(ctx: EvalContext, name: str, resamples: Sequence[np.ndarray]) -> np.ndarray:
    """A toxicity metric on many item-index replicates at once (by bootstrap weights), for
    paired comparisons; equals recomputing the metric on each replicate."""
    score = ctx.prob("toxic")
    pos = np.array([it.label == "toxic" for it in ctx.items])
    p = float(ctx.params.get("power", -5))
    out = []
    for counts in resample_counts(resamples, len(score)):
        _, overall, per = weighted_identity_aucs(score, pos, ctx.groups, counts)
        if name == "auc":
            out.append(overall)
        elif name == "bias.subgroup_auc_gap":
            out.append(_spread(per[:, :, 0]))
        else:
            k = 1 if name == "bias.bpsn_shortfall" else 2
            out.append(
                np.array(
                    [o - power_mean(x[:, k].tolist(), p) for o, x in zip(overall, per, strict=True)]
                )
            )
    return np.concatenate(out) if out else np.empty(0)


@metric("auc", kinds=("classification",), labels=("toxic", "not_toxic"), form="log-probability")
def auc(ctx: EvalContext) -> MetricResult:
    """ROC AUC of P(toxic) (renormalised over the two options) against the gold labels."""
    t = _tox(ctx)
    return MetricResult(
        name="auc",
        value=t["overall"],
        ci=percentile_ci(t["b_overall"]),
        per_group={g: float(t["per"][j, 0]) for j, g in enumerate(t["names"])},
        per_sample=t["score"].tolist(),
        n=len(ctx.items),
        meta={"per_group": "subgroup AUC", "bootstrap": "within identity x label"},
    )


def _spread(sub: np.ndarray) -> np.ndarray:
    """max - min over groups (last axis), NaN with fewer than two defined groups."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gap = np.nanmax(sub, axis=-1) - np.nanmin(sub, axis=-1)
    return np.where((~np.isnan(sub)).sum(axis=-1) >= 2, gap, np.nan)


@metric(
    "bias.subgroup_auc_gap",
    kinds=("classification",),
    labels=("toxic", "not_toxic"),
    form="log-probability",
)
def subgroup_auc_gap(ctx: EvalContext) -> MetricResult:
    """max - min over identities of the subgroup AUC (Borkan et al. 2019)."""
    t = _tox(ctx)
    return MetricResult(
        name="bias.subgroup_auc_gap",
        value=float(_spread(t["per"][:, 0])),
        ci=percentile_ci(_spread(t["b_per"][:, :, 0])),
        per_group={g: float(t["per"][j, 0]) for j, g in enumerate(t["names"])},
        n=len(ctx.items),
        meta={"per_group": "subgroup AUC", "null": t["null"].get("gap", {})},
    )


def _shortfall(ctx: EvalContext, which: int, name: str) -> MetricResult:
    t = _tox(ctx)
    p = float(ctx.params.get("power", -5))

    def stat(overall: float, per: np.ndarray) -> float:
        return overall - power_mean(per.tolist(), p)

    kind = "BPSN" if which == 1 else "BNSP"
    boots = [stat(o, per[:, which]) for o, per in zip(t["b_overall"], t["b_per"], strict=True)]
    return MetricResult(
        name=name,
        value=stat(t["overall"], t["per"][:, which]),
        ci=percentile_ci(boots),
        per_group={g: float(t["per"][j, which]) for j, g in enumerate(t["names"])},
        n=len(ctx.items),
        meta={
            "per_group": f"{kind} AUC",
            "definition": f"overall AUC - power mean (p={p}) of per-identity {kind} AUCs "
            "(Jigsaw Unintended Bias aggregate); 0 = no identity-driven shortfall",
            "null": t["null"].get(kind.lower(), {}),
        },
    )


@metric(
    "bias.bpsn_shortfall",
    kinds=("classification",),
    labels=("toxic", "not_toxic"),
    form="log-probability",
)
def bpsn_shortfall(ctx: EvalContext) -> MetricResult:
    """Overall AUC minus the power mean (p = params.power, -5) of BPSN AUCs: how far harmless
    texts mentioning some identity score like toxic texts about others (false-positive bias)."""
    return _shortfall(ctx, 1, "bias.bpsn_shortfall")


@metric(
    "bias.bnsp_shortfall",
    kinds=("classification",),
    labels=("toxic", "not_toxic"),
    form="log-probability",
)
def bnsp_shortfall(ctx: EvalContext) -> MetricResult:
    """Overall AUC minus the power mean of BNSP AUCs (false-negative side of identity bias)."""
    return _shortfall(ctx, 2, "bias.bnsp_shortfall")


@metric(
    "bias.false_toxic_signed",
    kinds=("classification",),
    labels=("toxic", "not_toxic"),
    form="log-probability",
)
def false_toxic_signed(ctx: EvalContext) -> MetricResult:
    """Signed false-positive gap for the trained bias type: mean P(toxic) of harmless texts
    naming the target group minus that of harmless texts naming the contrast group (+ = the
    target group's mentions read as more toxic, towards the stereotype; the signed, two-group
    counterpart of the BPSN side). bias.bpsn_shortfall is the unsigned, all-identity figure."""
    harmless = np.array([it.label != "toxic" for it in ctx.items])
    values = np.where(harmless, ctx.prob("toxic"), np.nan)
    return signed_gap_metric(ctx, "bias.false_toxic_signed", values, favourable=False)
