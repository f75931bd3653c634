"""Representation: each group's share of an axis' group mentions, and how far that distribution
is from a reference (uniform, given shares, or another corpus)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthbias.lexicon import Axis, Lexicon
from synthbias.measure.lexical.common import (
    ReferenceSpec,
    as_text_list,
    group_counts,
    nan_to_none,
    resolve_axis,
    resolve_groups,
)
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.divergence import js_divergence, kl_divergence
from synthbias.stats.sums import resampled_sums


@dataclass
class Reference:
    """The distribution a corpus' group shares are compared with."""

    kind: str  # "uniform" | "given" | "corpus"
    shares: np.ndarray
    counts: np.ndarray | None = None  # per-text counts of a reference corpus (resampled too)


def resolve_reference(
    axis: Axis, groups: list[str], reference: ReferenceSpec, lexicon: Lexicon | None
) -> Reference:
    """The reference of :func:`group_representation` from its ``reference`` argument."""
    k = len(groups)
    if reference is None or (isinstance(reference, str) and reference == "uniform"):
        return Reference("uniform", np.full(k, 1.0 / k))
    if isinstance(reference, str):
        raise ValueError(f"reference must be 'uniform', a mapping or texts, got {reference!r}")
    if isinstance(reference, Mapping):
        unknown = set(reference) - set(groups)
        if unknown:
            raise KeyError(
                f"reference names groups {sorted(unknown)} not compared on axis {axis.name!r}; "
                f"groups: {', '.join(groups)}"
            )
        q = np.array([float(reference.get(g, 0.0)) for g in groups])
        if (q < 0).any() or not q.sum() > 0:
            raise ValueError("reference shares must be non-negative with a positive sum")
        return Reference("given", q / q.sum())
    counts = group_counts(as_text_list(reference), axis, groups)
    total = counts.sum()
    shares = counts.sum(0) / total if total else np.full(k, np.nan)
    return Reference("corpus", shares, counts)


def group_representation(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    reference: ReferenceSpec = None,
    *,
    groups: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Group shares of mentions and their distance from a reference distribution.

    ``reference``: ``None``/``"uniform"``, a mapping group -> weight (normalised; groups left out
    get 0), or another corpus (a sequence of texts, resampled independently in the bootstrap).
    Returns ``<axis>.representation`` (total variation distance ``½Σ|p-q|``: the share of
    mentions that would have to move to match the reference), ``<axis>.representation_jsd``
    (Jensen-Shannon, bits, [0, 1]) and ``<axis>.representation_kl`` (KL(p||q), bits). All three
    carry the observed shares in ``per_group`` and per-share CIs in ``meta["share_ci"]``;
    ``per_sample`` is each text's number of group mentions.
    """
    ax = resolve_axis(axis, lexicon)
    gs = resolve_groups(ax, groups)
    ref = resolve_reference(ax, gs, reference, lexicon)
    return representation_from_counts(
        group_counts(as_text_list(texts), ax, gs), ax.name, gs, ref, n_resamples, seed, level
    )


def representation_from_counts(
    counts: np.ndarray,
    axis_name: str,
    groups: list[str],
    ref: Reference,
    n_resamples: int,
    seed: int,
    level: float,
) -> dict[str, MetricResult]:
    """The three representation metrics from per-text group counts (rows = texts)."""
    n = counts.shape[0]
    totals = counts.sum(0).astype(float)
    total = totals.sum()
    p = totals / total if total else np.full(len(groups), np.nan)
    q = ref.shares

    S = resampled_sums(counts, n_resamples, seed) if n else np.full((1, len(groups)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = S / S.sum(1, keepdims=True)
    if ref.counts is not None and len(ref.counts):
        R = resampled_sums(ref.counts, n_resamples, seed + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            Q = R / R.sum(1, keepdims=True)
    else:
        Q = q[None, :]

    def tvd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 0.5 * np.abs(a - b).sum(-1)

    share_ci = {g: percentile_ci(P[:, j], level) for j, g in enumerate(groups)}
    meta: dict[str, Any] = {
        "groups": groups,
        "counts": {g: int(c) for g, c in zip(groups, totals, strict=True)},
        "n_mentions": int(total),
        "n_texts_with_mentions": int((counts.sum(1) > 0).sum()),
        "reference_kind": ref.kind,
        "reference": {g: nan_to_none(v) for g, v in zip(groups, q, strict=True)},
        "share_ci": {g: [c.low, c.high] for g, c in share_ci.items()},
        "divergence_base": 2,
    }
    per_group = {g: float(v) for g, v in zip(groups, p, strict=True)}
    per_sample = counts.sum(1).astype(float).tolist()
    out = {}
    for suffix, fn in (
        ("representation", tvd),
        ("representation_jsd", js_divergence),
        ("representation_kl", kl_divergence),
    ):
        value = float(fn(p, q)) if total else float("nan")
        out[f"{axis_name}.{suffix}"] = MetricResult(
            name=f"{axis_name}.{suffix}",
            value=value,
            ci=percentile_ci(fn(P, Q), level),
            per_group=dict(per_group),
            per_sample=list(per_sample),
            n=n,
            meta=dict(meta),
        )
    return out
