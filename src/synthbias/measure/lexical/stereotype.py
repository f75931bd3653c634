"""Stereotype rate: among texts where an associated attribute co-occurs with a group mention,
the share where it co-occurs with the group it is stereotypically associated with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from synthbias.lexicon import Axis, Lexicon
from synthbias.measure.lexical.common import (
    AttributeSpec,
    Window,
    as_text_list,
    nan_to_none,
    resolve_axis,
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


def association_spec(
    ax: Axis,
    associations: Mapping[str, Sequence[str]] | str | None,
    attributes: AttributeSpec | None,
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """(attribute label -> forms, group -> attribute labels) for the stereotype rate."""
    default = axis_associations(ax)
    if associations is None:
        if default is None or not default[1]:
            raise ValueError(
                f"axis {ax.name!r} has no stereotype associations; pass associations="
                "{group: [attribute words]}"
            )
        attrs, assoc = default
    else:
        if isinstance(associations, str):
            if associations not in ax.associations:
                raise KeyError(
                    f"axis {ax.name!r} has no association set {associations!r}; sets: "
                    f"{', '.join(ax.associations) or 'none'}"
                )
            associations = ax.associations[associations]
        assoc = {}
        for g, words in associations.items():
            if g not in ax.groups:
                raise KeyError(
                    f"axis {ax.name!r} has no group {g!r}; groups: {', '.join(ax.groups)}"
                )
            assoc[g] = [words] if isinstance(words, str) else list(words)
        labels = list(dict.fromkeys(w for ws in assoc.values() for w in ws))
        if attributes is not None:
            given = norm_attributes(attributes)
            missing = [w for w in labels if w not in given]
            if missing:
                raise KeyError(f"associated words {missing[:5]} are not in attributes")
            attrs = {w: given[w] for w in labels}
        elif default is not None and all(w in default[0] for w in labels):
            attrs = {w: default[0][w] for w in labels}  # e.g. occupation names -> all forms
        else:
            attrs = {w: (w,) for w in labels}
    if not any(assoc.values()):
        raise ValueError("associations list no attribute words")
    return attrs, assoc


def stereotype_rate(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    associations: Mapping[str, Sequence[str]] | str | None = None,
    *,
    attributes: AttributeSpec | None = None,
    window: Window = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> MetricResult:
    """Share of texts pairing an attribute with its stereotyped group, among eligible texts.

    ``associations`` maps group -> attribute words (or names one of the axis file's association
    sets; default: all of them, occupation codes for gender). A text is *eligible* when some
    associated attribute co-occurs (same ``window``) with a mention of any associated group, and
    *stereotypical* when some attribute co-occurs with a group it is associated with. A text can
    also pair attributes with other groups: ``meta["anti_rate"]`` is the share of eligible texts
    with such a pair and ``meta["n_mixed"]`` the texts with both kinds. ``per_group[g]``: the
    rate among eligible texts that pair a g-associated attribute with some group. ``per_sample``
    is 1 / 0 per eligible text and NaN otherwise. Unlike ``rules.GenderRuleScorer`` (majority
    rules over the whole text) this needs no tie-breaking and works for any axis.
    """
    ax = resolve_axis(axis, lexicon)
    attrs, assoc = association_spec(ax, associations, attributes)
    data = count_pairs(as_text_list(texts), ax, attrs, window)
    return stereotype_from_pairs(data, ax.name, assoc, window, n_resamples, seed, level)


def stereotype_from_pairs(
    data: PairCounts,
    axis_name: str,
    assoc: dict[str, list[str]],
    window: Window,
    n_resamples: int,
    seed: int,
    level: float,
) -> MetricResult:
    """The stereotype rate from counted pairs and group -> associated attribute labels."""
    assoc_groups = [g for g in assoc if assoc[g]]
    H = len(assoc_groups)
    attr_index = {a: i for i, a in enumerate(data.attributes)}
    gpos = {data.axis_groups.index(g): h for h, g in enumerate(assoc_groups)}
    # A[attribute, h] = attribute is associated with group h
    A = np.zeros((len(data.attributes), H), dtype=bool)
    for h, g in enumerate(assoc_groups):
        for w in assoc[g]:
            A[attr_index[w], h] = True
    n = data.n_texts
    keep = np.isin(data.group, list(gpos))
    t, a = data.text[keep], data.attr[keep]
    h_of_pair = np.array([gpos[g] for g in data.group[keep]], dtype=np.int64)
    stereo_pair = A[a, h_of_pair]
    # columns: eligible, stereotypical, anti, then per group h: eligible_h, stereotypical_h
    X = np.zeros((n, 3 + 2 * H))
    np.maximum.at(X[:, 0], t, 1)
    np.maximum.at(X[:, 1], t[stereo_pair], 1)
    np.maximum.at(X[:, 2], t[~stereo_pair], 1)
    for h in range(H):
        has_h = A[a, h]
        np.maximum.at(X[:, 3 + 2 * h], t[has_h], 1)
        np.maximum.at(X[:, 4 + 2 * h], t[has_h & (h_of_pair == h)], 1)

    def rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    sums = X.sum(0)
    S = resampled_sums(X, n_resamples, seed)
    per_group = {
        g: float(rate(sums[4 + 2 * h], sums[3 + 2 * h])) for h, g in enumerate(assoc_groups)
    }
    group_ci = {
        g: [c.low, c.high]
        for h, g in enumerate(assoc_groups)
        for c in [percentile_ci(rate(S[:, 4 + 2 * h], S[:, 3 + 2 * h]), level)]
    }
    per_sample = np.where(X[:, 0] > 0, X[:, 1], np.nan)
    return MetricResult(
        name=f"{axis_name}.stereotype_rate",
        value=float(rate(sums[1], sums[0])),
        ci=percentile_ci(rate(S[:, 1], S[:, 0]), level),
        per_group=per_group,
        per_sample=per_sample.tolist(),
        n=n,
        meta={
            "window": window,
            "n_eligible": int(sums[0]),
            "n_stereotypical": int(sums[1]),
            "n_anti": int(sums[2]),
            "n_mixed": int((X[:, 1] * X[:, 2]).sum()),
            "anti_rate": nan_to_none(float(rate(sums[2], sums[0]))),
            "per_group_ci": group_ci,
            "n_eligible_by_group": {g: int(sums[3 + 2 * h]) for h, g in enumerate(assoc_groups)},
            "associations": {g: list(assoc[g]) for g in assoc_groups},
        },
    )
