"""Co-occurrence bias (Bordia & Bowman, 2019): ``bias(w) = ln(P(w|a) / P(w|b))`` from
attribute-group pair counts, with add-k smoothing, for two groups or each group against the
rest or a reference group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.lexicon import Axis, Lexicon
from synthbias.measure.lexical.common import (
    AttributeSpec,
    Contrast,
    Window,
    as_text_list,
    nan_to_none,
    resolve_axis,
    resolve_groups,
)
from synthbias.measure.lexical.pairs import (
    PairCounts,
    axis_associations,
    count_pairs,
    norm_attributes,
)
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.sums import resampled_sums


def resolve_contrasts(
    groups: list[str], contrast: Contrast, reference_group: str | None
) -> list[tuple[str, int, list[int]]]:
    """(label, index of group a, indices pooled as group b) for each comparison."""
    k = len(groups)
    if contrast == "auto":
        contrast = "pair" if k == 2 else "reference" if reference_group else "rest"
    if contrast == "pair":
        if k != 2:
            raise ValueError(f"contrast='pair' needs exactly two groups, got {groups}")
        return [(f"{groups[0]}_vs_{groups[1]}", 0, [1])]
    if contrast == "rest":
        return [(g, i, [j for j in range(k) if j != i]) for i, g in enumerate(groups)]
    if contrast == "reference":
        if reference_group not in groups:
            raise ValueError(f"reference_group {reference_group!r} is not one of {groups}")
        r = groups.index(reference_group)
        return [(g, i, [r]) for i, g in enumerate(groups) if i != r]
    raise ValueError(f"contrast must be 'auto', 'pair', 'rest' or 'reference', got {contrast!r}")


def _bias(
    C: np.ndarray,
    contrasts: list[tuple[str, int, list[int]]],
    smoothing: float,
    min_count: int,
) -> np.ndarray:
    """bias (..., n_contrasts, V) from counts C (..., V, K); NaN for attributes below min_count.

    P(w|g) = (c(w,g) + k) / (sum_w' c(w',g) + k V), V the number of attributes.
    """
    V = C.shape[-2]
    out = []
    for _, a, b in contrasts:
        ca = C[..., :, a]
        cb = C[..., :, b].sum(-1)
        na = ca.sum(-1, keepdims=True)
        nb = cb.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            bias = np.log((ca + smoothing) / (na + smoothing * V)) - np.log(
                (cb + smoothing) / (nb + smoothing * V)
            )
        out.append(np.where(ca + cb >= min_count, bias, np.nan))
    return np.stack(out, axis=-2)


def _nanmean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    n = (~np.isnan(a)).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(a, axis) / np.maximum(n, 1), np.nan)


def cooccurrence_bias(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    attributes: AttributeSpec | None = None,
    *,
    groups: Sequence[str] | None = None,
    contrast: Contrast = "auto",
    reference_group: str | None = None,
    window: Window = "sentence",
    smoothing: float = 1.0,
    min_count: int = 1,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Bordia & Bowman (2019) co-occurrence bias of attribute words between groups.

    ``bias(w) = ln(P(w|a) / P(w|b))``, positive when ``w`` leans towards group ``a``, with
    ``P(w|g) = (c(w,g) + k) / (N_g + k V)``: ``c(w,g)`` the attribute-group pairs in a
    ``window`` (``"sentence"``, ``"text"`` or a number of word tokens either side), ``N_g`` their
    total over the ``V`` attributes, ``k = smoothing``. Attributes with fewer than ``min_count``
    pairs with a or b are left out (NaN). B&B's sign (positive = female) is
    ``groups=("female", "male")``; the default gender order is (male, female).

    Comparisons (``contrast``): with two groups, a vs b (``"pair"``); with more, each group vs
    all others pooled (``"rest"``, the default) or vs ``reference_group`` (``"reference"``).
    ``<axis>.cooccurrence_bias`` is the mean |bias| over attributes (averaged over comparisons),
    ``<axis>.cooccurrence_bias_signed`` the signed mean; ``per_group`` has one value per
    comparison, ``meta["per_attribute"]`` the bias of every attribute per comparison, and
    ``per_sample`` each text's number of attribute-group pairs. ``attributes``: a list of words
    or a mapping label -> forms; default: the axis' associations (occupations for gender).
    """
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0 (add-k), got {smoothing}")
    ax = resolve_axis(axis, lexicon)
    gs = resolve_groups(ax, groups, at_least=2)
    attrs = _default_attrs(ax, attributes)
    contrasts = resolve_contrasts(gs, contrast, reference_group)
    data = count_pairs(as_text_list(texts), ax, attrs, window)
    return cooccurrence_metrics(
        data, ax.name, gs, contrasts, window, smoothing, min_count, n_resamples, seed, level
    )


def _default_attrs(ax: Axis, attributes: AttributeSpec | None) -> dict[str, tuple[str, ...]]:
    if attributes is not None:
        return norm_attributes(attributes)
    found = axis_associations(ax)
    if found is None:
        raise ValueError(
            f"axis {ax.name!r} has no associations or occupation table; pass attributes="
        )
    return found[0]


def cooccurrence_metrics(
    data: PairCounts,
    axis_name: str,
    groups: list[str],
    contrasts: list[tuple[str, int, list[int]]],
    window: Window,
    smoothing: float,
    min_count: int,
    n_resamples: int,
    seed: int,
    level: float,
) -> dict[str, MetricResult]:
    """Both co-occurrence bias metrics from counted pairs, for each comparison."""
    V, K = len(data.attributes), len(groups)
    X = data.matrix(groups)
    C = np.asarray(X.sum(0)).reshape(V, K)
    bias = _bias(C, contrasts, smoothing, min_count)  # (n_contrasts, V)
    abs_c, signed_c = _nanmean(np.abs(bias)), _nanmean(bias)
    S = resampled_sums(X, n_resamples, seed).reshape(-1, V, K)
    boot = _bias(S, contrasts, smoothing, min_count)  # (B, n_contrasts, V)
    labels = [c[0] for c in contrasts]
    per_attr = {
        lab: {a: nan_to_none(v) for a, v in zip(data.attributes, row, strict=True)}
        for lab, row in zip(labels, bias, strict=True)
    }
    counts = {
        a: {g: int(C[i, j]) for j, g in enumerate(groups) if C[i, j]}
        for i, a in enumerate(data.attributes)
        if C[i].any()
    }
    meta: dict[str, Any] = {
        "groups": groups,
        "contrasts": {lab: [groups[a], [groups[j] for j in b]] for lab, a, b in contrasts},
        "window": window,
        "smoothing": smoothing,
        "min_count": min_count,
        "log": "natural",
        "n_attributes": V,
        "n_attributes_used": {
            lab: int((~np.isnan(r)).sum()) for lab, r in zip(labels, bias, strict=True)
        },
        "group_totals": {g: int(C[:, j].sum()) for j, g in enumerate(groups)},
        "counts": counts,
        "per_attribute": per_attr,
    }
    per_sample = np.asarray(X.sum(1)).ravel().tolist()
    out = {}
    for suffix, per_c, fn in (
        ("cooccurrence_bias", abs_c, np.abs),
        ("cooccurrence_bias_signed", signed_c, lambda x: x),
    ):
        value = float(_nanmean(per_c)) if len(per_c) else float("nan")
        boot_stat = _nanmean(_nanmean(fn(boot)))
        m = dict(meta)
        m["per_contrast_ci"] = {
            lab: [ci.low, ci.high]
            for c, lab in enumerate(labels)
            for ci in [percentile_ci(_nanmean(fn(boot[:, c])), level)]
        }
        out[f"{axis_name}.{suffix}"] = MetricResult(
            name=f"{axis_name}.{suffix}",
            value=value,
            ci=percentile_ci(boot_stat, level),
            per_group={lab: float(v) for lab, v in zip(labels, per_c, strict=True)},
            per_sample=list(per_sample),
            n=data.n_texts,
            meta=m,
        )
    return out
