"""Behavioural bias metrics: does a model treat texts differently when only the group changes?

Two families, for any model given as a callable over a batch of texts:

* **counterfactual** — every text that mentions a group is paired with group-swapped twins
  (``swap_gender``, grammar-aware, for gender; ``swap_groups`` with a mapping for any axis);
  the **flip rate** is the share of (text, twin) pairs whose predicted label differs, the
  **score gap** the mean of ``score(text) - score(twin)`` and its absolute value. A fair model
  has flip rate 0 and gaps 0; a signed gap near 0 with a large absolute gap means the model
  reacts to the group, in both directions.
* **group fairness of predictions** — demographic parity difference, equalized odds
  difference and per-group accuracy / TPR / FPR / selection rate, computed with
  ``fairlearn.metrics`` (``MetricFrame``, ``demographic_parity_difference``,
  ``equalized_odds_difference``).

CIs are percentile bootstraps. Counterfactual CIs resample *texts* (a text and all its twins
together), so texts with many twins do not count as many independent samples. Fairness CIs
resample examples and recompute the per-group rates from resampled counts (vectorised, see
:func:`~synthbias.stats.sums.resampled_sums`); the point values are fairlearn's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from synthbias.lexicon import Axis, Lexicon, load_lexicon, swap_groups
from synthbias.measure.lexical import as_text_list, resolve_axis, resolve_groups
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.sums import resampled_sums

Predictor = Callable[[Sequence[str]], Any]
SwapMode = Literal["mirror", "targets", "pairs"]


# =============================================================================== twins
@dataclass
class Twins:
    """Texts paired with their group-swapped twins (one row per pair, in input-text order).

    ``keys[i]`` names the swap behind pair ``i``: the target group (``targets``), ``"s->t"``
    (``pairs``), or the group the text mentioned, ``"mixed"`` when it mentioned both
    (``mirror`` and explicit mappings).
    """

    axis: str
    mode: str
    text_index: np.ndarray
    twins: list[str]
    keys: list[str]
    n_texts: int
    n_without_group: int  # texts mentioning none of the swapped groups: excluded
    n_unchanged: int  # (text, swap) cases the swap left identical: excluded
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.twins)


def _presence(
    texts: list[str], ax: Axis, groups: list[str], name_threshold: float | None
) -> np.ndarray:
    """(n_texts, n_groups) boolean: does the text mention the group?"""
    gc = ax.matcher(name_threshold).count_batch(texts)
    cols = [gc.labels.index(g) if g in gc.labels else None for g in groups]
    out = np.zeros((len(texts), len(groups)), dtype=bool)
    for j, c in enumerate(cols):
        if c is not None:
            out[:, j] = gc.counts[:, c] > 0
    return out


def counterfactual_twins(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    *,
    mapping: dict[str, str] | None = None,
    mode: SwapMode | None = None,
    groups: Sequence[str] | None = None,
    lexicon: Lexicon | None = None,
    name_threshold: float | None = None,
) -> Twins:
    """Build the counterfactual pairs.

    ``mapping`` (group -> group, directional) gives one twin per text. Otherwise ``mode``:
    ``"mirror"`` swaps two groups both ways (default with two groups, e.g. gender male<->female,
    which is ``swap_gender``); ``"targets"`` gives one twin per target group t, every other
    group's terms replaced by t's (default with more groups; texts mentioning only t get no
    twin for t); ``"pairs"`` gives one twin per ordered pair (s, t) for texts mentioning s, only
    s's terms replaced. Texts mentioning none of the groups are excluded and counted.
    """
    ax = resolve_axis(axis, lexicon)
    texts = as_text_list(texts)
    gs = resolve_groups(ax, groups, at_least=2)
    if mapping is not None:
        for g in (*mapping, *mapping.values()):
            if g not in ax.groups:
                raise KeyError(
                    f"axis {ax.name!r} has no group {g!r}; groups: {', '.join(ax.groups)}"
                )
        gs = list(dict.fromkeys(mapping))
        mode_name = "mapping"
        swaps = [(None, dict(mapping))]
    else:
        mode_name = mode or ("mirror" if len(gs) == 2 else "targets")
        if mode_name == "mirror":
            if len(gs) != 2:
                raise ValueError(f"mode='mirror' needs exactly two groups, got {gs}")
            swaps = [(None, {gs[0]: gs[1], gs[1]: gs[0]})]
        elif mode_name == "targets":
            swaps = [(t, {g: t for g in gs if g != t}) for t in gs]
        elif mode_name == "pairs":
            swaps = [(f"{s}->{t}", {s: t}) for s in gs for t in gs if s != t]
        else:
            raise ValueError(f"mode must be 'mirror', 'targets' or 'pairs', got {mode!r}")
    present = _presence(texts, ax, gs, name_threshold)
    gi = {g: j for j, g in enumerate(gs)}
    has_any = present.any(1)
    index: list[int] = []
    twins: list[str] = []
    keys: list[str] = []
    unchanged = 0
    for key, mp in swaps:
        src = [gi[g] for g in mp if g in gi]
        eligible = np.flatnonzero(present[:, src].any(1))
        for i in eligible.tolist():
            twin = swap_groups(texts[i], ax, mp, name_threshold=name_threshold)
            if twin == texts[i]:
                unchanged += 1
                continue
            if key is None:
                mentioned = [gs[j] for j in src if present[i, j]]
                k = mentioned[0] if len(mentioned) == 1 else "mixed"
            else:
                k = key
            index.append(i)
            twins.append(twin)
            keys.append(k)
    order = np.argsort(np.asarray(index, dtype=np.int64), kind="stable")
    return Twins(
        axis=ax.name,
        mode=mode_name,
        text_index=np.asarray(index, dtype=np.int64)[order],
        twins=[twins[j] for j in order],
        keys=[keys[j] for j in order],
        n_texts=len(texts),
        n_without_group=int((~has_any).sum()),
        n_unchanged=unchanged,
        mappings={(mode_name if k is None else k): mp for k, mp in swaps},
    )


def _call(fn: Predictor, texts: list[str]) -> np.ndarray:
    out = np.asarray(fn(texts)) if texts else np.zeros(0)
    if out.shape[:1] != (len(texts),):
        raise ValueError(f"the model returned {out.shape[:1]} outputs for {len(texts)} texts")
    return out


def _labels(out: np.ndarray, threshold: float | None) -> np.ndarray:
    if threshold is not None:
        scores = out[:, -1] if out.ndim == 2 else out
        return np.asarray(scores, dtype=float) >= threshold
    if out.ndim == 2:
        return out.argmax(1)
    return out


def _scores(out: np.ndarray, column: int) -> np.ndarray:
    return np.asarray(out[:, column] if out.ndim == 2 else out, dtype=float)


def _outputs(texts: list[str], twins: Twins, fn: Predictor) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs for each pair's original and twin (each original scored once)."""
    used = np.unique(twins.text_index)
    orig = _call(fn, [texts[i] for i in used.tolist()])
    pos = np.searchsorted(used, twins.text_index)
    return orig[pos], _call(fn, twins.twins)


def _pair_metric(
    name: str,
    values: np.ndarray,
    twins: Twins,
    n_resamples: int,
    seed: int,
    level: float,
    meta: dict[str, Any],
) -> MetricResult:
    """Mean of a per-pair value, overall and per swap key, with a text-level bootstrap."""
    values = np.asarray(values, dtype=float)
    keys = sorted(set(twins.keys))
    kpos = {k: j for j, k in enumerate(keys)}
    used, unit = np.unique(twins.text_index, return_inverse=True)
    m = len(values)
    key_arr = np.array([kpos[k] for k in twins.keys], dtype=np.int64)
    # per text: [sum of values, pairs] overall, then the same per key
    one = np.ones(m)
    zero = np.zeros(m, dtype=np.int64)
    rows = np.tile(unit, 4)
    cols = np.concatenate([zero, zero + 1, 2 + 2 * key_arr, 3 + 2 * key_arr])
    data = np.concatenate([values, one, values, one])
    X = sp.csr_matrix((data, (rows, cols)), shape=(len(used), 2 + 2 * len(keys)))
    S = resampled_sums(X, n_resamples, seed) if m else np.full((1, X.shape[1]), np.nan)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    per_group = {k: float(values[key_arr == j].mean()) for k, j in kpos.items()}
    key_ci = {
        k: [c.low, c.high]
        for k, j in kpos.items()
        for c in [percentile_ci(ratio(S[:, 2 + 2 * j], S[:, 3 + 2 * j]), level)]
    }
    return MetricResult(
        name=name,
        value=float(values.mean()) if m else float("nan"),
        ci=percentile_ci(ratio(S[:, 0], S[:, 1]), level),
        per_group=per_group,
        per_sample=values.tolist(),
        n=m,
        meta={
            **meta,
            "mode": twins.mode,
            "n_pairs": m,
            "n_texts": twins.n_texts,
            "n_texts_used": len(used),
            "n_without_group": twins.n_without_group,
            "n_unchanged": twins.n_unchanged,
            "n_pairs_by_key": {k: int((key_arr == j).sum()) for k, j in kpos.items()},
            "per_group_ci": key_ci,
            "bootstrap_unit": "text",
        },
    )


def counterfactual_flip_rate(
    texts: Sequence[str],
    predict: Predictor,
    axis: str | Axis = "gender",
    *,
    mapping: dict[str, str] | None = None,
    mode: SwapMode | None = None,
    groups: Sequence[str] | None = None,
    threshold: float | None = None,
    twins: Twins | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> MetricResult:
    """Share of (text, twin) pairs whose predicted label changes: ``<axis>.flip_rate``.

    ``predict`` maps a list of texts to labels (1-D), class scores (2-D: argmax is the label),
    or scores turned into labels by ``threshold`` (``score >= threshold``; last column if
    2-D). ``per_group`` is the flip rate per swap key (see :class:`Twins`); ``per_sample`` is
    1/0 per pair in :func:`counterfactual_twins` order. Pass ``twins`` to reuse a swap.
    """
    texts = as_text_list(texts)
    tw = twins or counterfactual_twins(
        texts, axis, mapping=mapping, mode=mode, groups=groups, lexicon=lexicon
    )
    a, b = _outputs(texts, tw, predict)
    la, lb = _labels(a, threshold), _labels(b, threshold)
    flips = (np.asarray(la) != np.asarray(lb)).astype(float)
    return _pair_metric(
        f"{tw.axis}.flip_rate", flips, tw, n_resamples, seed, level, {"threshold": threshold}
    )


def counterfactual_score_gap(
    texts: Sequence[str],
    score: Predictor,
    axis: str | Axis = "gender",
    *,
    mapping: dict[str, str] | None = None,
    mode: SwapMode | None = None,
    groups: Sequence[str] | None = None,
    score_column: int = -1,
    twins: Twins | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Mean ``score(text) - score(twin)`` (``<axis>.score_gap``) and its absolute value
    (``<axis>.abs_score_gap``) over pairs.

    ``score`` maps texts to one score each (or a 2-D array: ``score_column`` is used). With
    the gender mirror swap a positive gap means the original texts score higher than their
    swapped twins; ``per_group`` splits by swap key (the group the text mentioned).
    """
    texts = as_text_list(texts)
    tw = twins or counterfactual_twins(
        texts, axis, mapping=mapping, mode=mode, groups=groups, lexicon=lexicon
    )
    a, b = _outputs(texts, tw, score)
    gap = _scores(a, score_column) - _scores(b, score_column)
    meta = {"score_column": score_column, "direction": "score(text) - score(twin)"}
    out = {}
    for name, vals in (("score_gap", gap), ("abs_score_gap", np.abs(gap))):
        res = _pair_metric(f"{tw.axis}.{name}", vals, tw, n_resamples, seed, level, meta)
        out[res.name] = res
    return out


def measure_behavioural(
    texts: Sequence[str],
    predict: Predictor | None = None,
    score: Predictor | None = None,
    axes: Sequence[str] = ("gender",),
    *,
    mode: SwapMode | None = None,
    threshold: float | None = None,
    score_column: int = -1,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Counterfactual metrics per axis: ``<axis>.flip_rate`` (needs ``predict``) and
    ``<axis>.score_gap`` / ``<axis>.abs_score_gap`` (need ``score``).

    Only gender by default: on many-group axes every mentioning text gets one twin per other
    group, so the model is called many times (e.g. 48 twins per text for nationality).
    """
    if predict is None and score is None:
        raise ValueError("give predict (labels) and/or score (scores)")
    lex = lexicon if lexicon is not None else load_lexicon()
    texts = as_text_list(texts)
    out: dict[str, MetricResult] = {}
    for name in axes:
        ax = lex.axis(name)
        tw = counterfactual_twins(texts, ax, mode=mode, lexicon=lex)
        common = {"twins": tw, "n_resamples": n_resamples, "seed": seed, "level": level}
        if predict is not None:
            res = counterfactual_flip_rate(texts, predict, ax, threshold=threshold, **common)
            out[res.name] = res
        if score is not None:
            out.update(
                counterfactual_score_gap(texts, score, ax, score_column=score_column, **common)
            )
    return out


# =============================================================================== group fairness
def text_groups(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    groups: Sequence[str] | None = None,
    lexicon: Lexicon | None = None,
) -> list[str]:
    """Sensitive-feature labels from the texts: the one group mentioned, else "mixed"/"none"."""
    ax = resolve_axis(axis, lexicon)
    gs = resolve_groups(ax, groups)
    texts = as_text_list(texts)
    present = _presence(texts, ax, gs, None)
    n_present = present.sum(1)
    first = present.argmax(1)
    return [
        gs[f] if k == 1 else "mixed" if k > 1 else "none"
        for f, k in zip(first.tolist(), n_present.tolist(), strict=True)
    ]


def _binary(y: Sequence[Any] | np.ndarray, pos_label: Any, what: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    values = set(np.unique(arr).tolist())
    if len(values - {pos_label}) > 1:
        raise ValueError(
            f"{what} has more than two labels {sorted(map(str, values))[:5]}; binary only"
        )
    return (arr == pos_label).astype(int)


def group_fairness(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    sensitive_features: Sequence[Any] | np.ndarray,
    *,
    pos_label: Any = 1,
    prefix: str = "",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, MetricResult]:
    """Fairness of binary predictions across groups, via ``fairlearn.metrics``.

    Returns ``demographic_parity_difference`` (per_group: selection rates, so ``.difference``
    equals the value), ``equalized_odds_difference`` (worst of the TPR and FPR differences;
    per_group ``"<g>:tpr"`` / ``"<g>:fpr"``), and ``selection_rate``, ``accuracy``,
    ``true_positive_rate``, ``false_positive_rate`` (value overall, per_group from
    ``MetricFrame.by_group``, per-group CIs in ``meta["per_group_ci"]``), each name prefixed
    by ``prefix``. As in fairlearn, a group without positives (negatives) gets TPR (FPR) 0;
    such groups are listed in ``meta["undefined"]``.
    """
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    yt = _binary(y_true, pos_label, "y_true")
    yp = _binary(y_pred, pos_label, "y_pred")
    sf = np.asarray(sensitive_features, dtype=object)
    if not (len(yt) == len(yp) == len(sf)):
        raise ValueError(f"lengths differ: y_true {len(yt)}, y_pred {len(yp)}, groups {len(sf)}")
    if len(yt) == 0:
        raise ValueError("no predictions given")
    metrics = {
        "selection_rate": selection_rate,
        "accuracy": accuracy_score,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
    }
    # fairlearn's rates are exact with sample weights, so each distinct (y_true, y_pred, group)
    # is passed once, weighted by its count: the same numbers, and no per-example Python work
    # inside MetricFrame (about 5 s per call on 100k examples otherwise).
    agg = (
        pd.DataFrame({"t": yt, "p": yp, "g": sf})
        .groupby(["t", "p", "g"], sort=False)
        .size()
        .reset_index(name="w")
    )
    t, p, g, w = (agg[c].to_numpy() for c in ("t", "p", "g", "w"))
    mf = MetricFrame(
        metrics=metrics,
        y_true=t,
        y_pred=p,
        sensitive_features=g,
        sample_params={m: {"sample_weight": w} for m in metrics},
    )
    by_group = mf.by_group
    groups = list(by_group.index)
    names = [str(x) for x in groups]
    dp = float(demographic_parity_difference(t, p, sensitive_features=g, sample_weight=w))
    eo = float(equalized_odds_difference(t, p, sensitive_features=g, sample_weight=w))

    # Per example, per group: [member, selected, positive, true pos, negative, false pos, correct]
    G = len(groups)
    gidx = np.array([groups.index(g) for g in sf.tolist()])
    cols = np.stack(
        [np.ones_like(yt), yp, yt, yt & yp, 1 - yt, (1 - yt) & yp, (yt == yp).astype(int)], 1
    )
    X = np.zeros((len(yt), 7 * G))
    for c in range(7):
        X[np.arange(len(yt)), 7 * gidx + c] = cols[:, c]
    S = resampled_sums(X, n_resamples, seed).reshape(-1, G, 7)

    def rate(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), empty)

    present = S[..., 0] > 0  # a group absent from a resample is left out, as in fairlearn
    rates = {
        "selection_rate": rate(S[..., 1], S[..., 0], np.nan),
        "accuracy": rate(S[..., 6], S[..., 0], np.nan),
        "true_positive_rate": np.where(present, rate(S[..., 3], S[..., 2], 0.0), np.nan),
        "false_positive_rate": np.where(present, rate(S[..., 5], S[..., 4], 0.0), np.nan),
    }  # TPR/FPR: 0 when a present group has no positives/negatives, as in fairlearn
    overall = {
        "selection_rate": rate(S[..., 1].sum(1), S[..., 0].sum(1), np.nan),
        "accuracy": rate(S[..., 6].sum(1), S[..., 0].sum(1), np.nan),
        "true_positive_rate": rate(S[..., 3].sum(1), S[..., 2].sum(1), 0.0),
        "false_positive_rate": rate(S[..., 5].sum(1), S[..., 4].sum(1), 0.0),
    }

    def spread(r: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # "All-NaN slice": a resample may miss every group
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmax(r, 1) - np.nanmin(r, 1)

    n_pos = np.array([int(yt[gidx == j].sum()) for j in range(G)])
    n_neg = np.array([int((1 - yt)[gidx == j].sum()) for j in range(G)])
    base_meta: dict[str, Any] = {
        "groups": names,
        "group_sizes": {nm: int((gidx == j).sum()) for j, nm in enumerate(names)},
        "pos_label": pos_label,
        "undefined": {
            "true_positive_rate": [nm for nm, k in zip(names, n_pos, strict=True) if k == 0],
            "false_positive_rate": [nm for nm, k in zip(names, n_neg, strict=True) if k == 0],
        },
        "source": "fairlearn.metrics",
    }
    n = len(yt)
    out: dict[str, MetricResult] = {}
    sel_pg = {nm: float(by_group["selection_rate"].iloc[j]) for j, nm in enumerate(names)}
    out[prefix + "demographic_parity_difference"] = MetricResult(
        name=prefix + "demographic_parity_difference",
        value=dp,
        ci=percentile_ci(spread(rates["selection_rate"]), level),
        per_group=sel_pg,
        per_sample=yp.astype(float).tolist(),
        n=n,
        meta={**base_meta, "method": "between_groups"},
    )
    eo_boot = np.fmax(spread(rates["true_positive_rate"]), spread(rates["false_positive_rate"]))
    eo_pg = {}
    for j, nm in enumerate(names):
        eo_pg[f"{nm}:tpr"] = float(by_group["true_positive_rate"].iloc[j])
        eo_pg[f"{nm}:fpr"] = float(by_group["false_positive_rate"].iloc[j])
    out[prefix + "equalized_odds_difference"] = MetricResult(
        name=prefix + "equalized_odds_difference",
        value=eo,
        ci=percentile_ci(eo_boot, level),
        per_group=eo_pg,
        per_sample=yp.astype(float).tolist(),
        n=n,
        meta={
            **base_meta,
            "method": "between_groups",
            "agg": "worst_case",
            "tpr_difference": float(mf.difference()["true_positive_rate"]),
            "fpr_difference": float(mf.difference()["false_positive_rate"]),
        },
    )
    samples = {
        "selection_rate": yp.astype(float),
        "accuracy": (yt == yp).astype(float),
        "true_positive_rate": np.where(yt == 1, yp, np.nan),
        "false_positive_rate": np.where(yt == 0, yp, np.nan),
    }
    for metric in metrics:
        out[prefix + metric] = MetricResult(
            name=prefix + metric,
            value=float(mf.overall[metric]),
            ci=percentile_ci(overall[metric], level),
            per_group={nm: float(by_group[metric].iloc[j]) for j, nm in enumerate(names)},
            per_sample=samples[metric].tolist(),
            n=n,
            meta={
                **base_meta,
                "per_group_ci": {
                    nm: [c.low, c.high]
                    for j, nm in enumerate(names)
                    for c in [percentile_ci(rates[metric][:, j], level)]
                },
            },
        )
    return out


__all__ = [
    "Predictor",
    "Twins",
    "counterfactual_flip_rate",
    "counterfactual_score_gap",
    "counterfactual_twins",
    "group_fairness",
    "measure_behavioural",
    "text_groups",
]
