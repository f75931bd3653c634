"""How much of a requested bias a set of texts carries, per dimension (explicit statements,
implicit role casting, representation skew, value skew), and the augmentation check: augmented
minus reference texts with a two-sample bootstrap CI, so a bias that was not carried is never
used as if it had been.

The reference is the control arm (texts the same generator wrote from the same prompts with the
bias removed) where there is one: augmented − real would mix "written by the model" with
"biased". Each check also reports how much of the texts the model wrote (``model_share``: the
rest is the code-written opening) and flags the ``filter`` rung, whose texts were kept by the
very measure checked, as carried by construction."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from synthbias.core.records import Record
from synthbias.lexicon import load_lexicon
from synthbias.lexicon.bias_types import DIMENSIONS, BiasType, augment_templates, get_bias_type
from synthbias.measure.embedding import Encoder
from synthbias.measure.misalignment import sentiment_scores
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import CI, independent_resamples, percentile_ci, two_sample_ci

# --------------------------------------------------------------------------- requested vs measured


@dataclass
class AugmentationCheck:
    """Requested vs measured bias of one dimension of an augmented set."""

    dimension: str
    metric: str
    augmented: float
    #: the reference's value: the control arm's texts, or the real texts without a control
    real: float
    result: MetricResult  # augmented − reference, with a two-sample bootstrap CI
    carried: bool
    n_augmented: int
    empty: int
    method: str = "prompt"
    filter_failed: int = 0
    #: what ``real`` was measured on: "control" (the control arm) or "real" (the real data)
    reference: str = "real"
    #: mean share of each text's words the model wrote (NaN when the records do not say)
    model_share: float = float("nan")

    @property
    def by_construction(self) -> bool:
        """The filter rung kept texts by this very measure: "carried" is then no finding."""
        return self.method == "filter"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "metric": self.metric,
            "augmented": self.augmented,
            "real": self.real,
            "difference": self.result.value,
            "ci": self.result.ci.to_dict() if self.result.ci else None,
            "carried": self.carried,
            "n_augmented": self.n_augmented,
            "empty": self.empty,
            "method": self.method,
            "filter_failed": self.filter_failed,
            "reference": self.reference,
            "model_share": self.model_share,
            "carried_by_construction": self.by_construction,
            "requested_strength": self.result.meta.get("requested_strength"),
            # smallest gap this size detects with 80 % power at α = 0.05 (≈ 2.8 SE)
            "detectable": (self.result.ci.high - self.result.ci.low) / 3.92 * 2.8
            if self.result.ci
            else None,
        }


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _word_regex(words: Sequence[str]) -> re.Pattern[str]:
    alts = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")s?\b", re.IGNORECASE)


def _group_counts(texts: Sequence[str], bt: BiasType) -> Any:
    return load_lexicon().axis(bt.axis).count_groups_batch(list(texts))


def _sides(texts: Sequence[str], bt: BiasType) -> np.ndarray:
    """Per text: 1 if it mentions the target group only, −1 contrast only, 0 otherwise."""
    counts = _group_counts(texts, bt)
    t, c = counts[bt.target] > 0, counts[bt.contrast] > 0
    return np.where(t & ~c, 1, np.where(c & ~t, -1, 0))


def _representation(texts: Sequence[str], bt: BiasType) -> np.ndarray:
    """Per text: (target mentions, mentions of any non-neutral group on the axis)."""
    counts = _group_counts(texts, bt)
    cols = [i for i, g in enumerate(counts.labels) if g != "neutral"]
    total = counts.counts[:, cols].sum(axis=1)
    return np.stack([counts[bt.target], total], axis=1).astype(float)


#: Margin on the stereotype axis below which a statement counts as neither direction.
EXPLICIT_MARGIN = 0.08


#: Weight of the (group-masked) VADER valence on the axis: stereotypes are mostly negative claims.
VALENCE_WEIGHT = 0.1


@cache
def default_encoder() -> Any:
    """The embedded sentence encoder (all-MiniLM-L6-v2), loaded once per process."""

    return Encoder()


#: Softmax temperature over cosine similarity that picks which stimulus pair a text is about.
TOPIC_TEMPERATURE = 0.05


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def explicit_axis(texts: Sequence[str], bt: BiasType, encoder: Any = None) -> np.ndarray:
    """Per text: signed position between the bias type's stereotypes and counter-stereotypes.

    Each stereotype statement ("Women are worse drivers than everyone else.") is paired with a
    counter-statement on the same topic and in the same form ("Women are better drivers than
    everyone else."). A text's score is its cosine similarity to the stereotype minus that to
    the counter-statement, averaged over the pairs weighted by how close the text is to each
    pair's topic (softmax at :data:`TOPIC_TEMPERATURE`), minus :data:`VALENCE_WEIGHT` × its
    VADER valence; 0 is the mean of neutral statements about the group ("Women went hiking in
    the hills."). Comparing within a topic-matched pair makes the sign the direction of the
    claim, not its sentence form: a single mean-difference axis confused the two ("Women are
    better at math than everyone else." scored as a stereotype because only a stereotype
    stimulus said "than everyone else").
    """
    if not bt.counter or len(bt.counter) != len(bt.explicit):
        raise ValueError(f"bias type {bt.name}: `counter` must pair every `explicit` ending")
    if not texts:
        return np.zeros(0)

    enc = encoder or default_encoder()
    people = _cap(bt.people["target"])
    stereo = _unit_rows(np.asarray(enc.encode([f"{people} {a}." for a in bt.explicit]), float))
    counter = _unit_rows(np.asarray(enc.encode([f"{people} {c}." for c in bt.counter]), float))

    def score(xs: list[str]) -> np.ndarray:
        e = _unit_rows(np.asarray(enc.encode(xs), dtype=float))
        to_stereo, to_counter = e @ stereo.T, e @ counter.T
        topic = (to_stereo + to_counter) / 2 / TOPIC_TEMPERATURE
        w = np.exp(topic - topic.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        return (w * (to_stereo - to_counter)).sum(axis=1) - VALENCE_WEIGHT * sentiment_scores(xs)

    # 0 = neutral statements about the group (the real-data activities), not the stimuli's
    # midpoint: counter-statements are warmer than stereotypes are cold, so that midpoint is
    # not neutral
    neutral = [f"{people} {act}." for act in augment_templates()["real"]["activities"]]
    return score(list(texts)) - float(score(neutral).mean())


def explicit_units(texts: Sequence[str], bt: BiasType, encoder: Any = None) -> np.ndarray:
    """Per text: +1 a stereotype claim about the target group, −1 a counter-stereotype claim,
    0 neither: no claim about the group as a whole (its plural, "Muslims", is not named), or
    within :data:`EXPLICIT_MARGIN` of neutral on :func:`explicit_axis`."""
    texts = list(texts)
    if not texts:
        return np.zeros(0, dtype=int)
    group = re.compile(rf"\b{re.escape(bt.people['target'])}\b", re.IGNORECASE)
    about = np.array([bool(group.search(t)) for t in texts])
    d = explicit_axis(texts, bt, encoder)
    sign = np.where(d > EXPLICIT_MARGIN, 1, np.where(d < -EXPLICIT_MARGIN, -1, 0))
    return np.where(about, sign, 0)


def moves_in_direction(text: str, bt: BiasType, dimension: str, side: str) -> bool:
    """Whether one text, written for ``side``, carries ``dimension`` in the requested direction
    (the filter rung of the ladder uses each dimension's own per-text measure)."""
    want = 1 if side == "target" else -1
    if dimension == "explicit":
        return bool(explicit_units([text], bt)[0] == 1)
    got = int(_sides([text], bt)[0])
    if dimension == "representation":
        return got == 1
    if got != want:
        return False
    if dimension == "implicit_role":
        has_role = bool(_word_regex(bt.role_words("target")).search(text))
        return has_role == (side == "target")
    if dimension == "value":
        score = float(sentiment_scores([_mask_groups(text, bt)])[0])
        return score < -0.05 if side == "target" else score > 0.05
    raise ValueError(f"unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")


def dimension_scores(
    texts: Sequence[str], bt: BiasType, dimension: str, encoder: Any = None
) -> tuple[np.ndarray, Any]:
    """Per-text units and the statistic that turns resampled units into the dimension's bias.

    * explicit: mean of :func:`explicit_units` (+1 stereotype statement about the target group,
      −1 counter-stereotype, 0 neither): a direction on the embedding axis, not a sentence form.
    * implicit_role: share of target-group texts naming a target stereotyped role minus the
      share of contrast-group texts naming one (role association, Bordia & Bowman style).
    * representation: the target group's share of all group mentions on the axis.
    * value: mean VADER compound of contrast-group texts minus that of target-group texts, with
      the group terms themselves masked (VADER rates "poor" negative).
    """
    texts = list(texts)
    if dimension == "explicit":
        units = explicit_units(texts, bt, encoder=encoder).astype(float)[:, None]
        return units, lambda u: float(u[:, 0].mean()) if len(u) else float("nan")
    if dimension == "implicit_role":
        roles = _word_regex(bt.role_words("target"))
        side = _sides(texts, bt)
        has = np.array([1.0 if roles.search(t) else 0.0 for t in texts])
        units = np.stack([side, has], axis=1).astype(float)
        return units, _role_gap
    if dimension == "representation":
        units = _representation(texts, bt)
        return (
            units,
            lambda u: float(u[:, 0].sum() / u[:, 1].sum()) if u[:, 1].sum() else float("nan"),
        )
    if dimension == "value":
        side = _sides(texts, bt)
        masked = [_mask_groups(t, bt) for t in texts]
        units = np.stack([side, sentiment_scores(masked)], axis=1).astype(float)
        return units, _value_gap
    raise ValueError(f"unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")


def _mask_groups(text: str, bt: BiasType) -> str:
    """Replace group terms by "person", so that a group word VADER rates ("poor") is not
    counted as the text's sentiment about the group."""

    out, last = [], 0
    for m in load_lexicon().axis(bt.axis).find(text):
        out += [text[last : m.start], "person"]
        last = m.end
    return "".join(out) + text[last:]


def _group_mean(u: np.ndarray, side: int) -> float:
    sel = u[:, 0] == side
    return float(u[sel, 1].mean()) if sel.any() else float("nan")


def _role_gap(u: np.ndarray) -> float:
    t, c = _group_mean(u, 1), _group_mean(u, -1)
    if np.isnan(t):
        return float("nan")
    return t - (0.0 if np.isnan(c) else c)


def _value_gap(u: np.ndarray) -> float:
    t, c = _group_mean(u, 1), _group_mean(u, -1)
    if np.isnan(t):
        return float("nan")
    return (0.0 if np.isnan(c) else c) - t


def check_augmentation(
    real: Sequence[Record],
    augmented: Sequence[Record],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    encoder: Any = None,
    control: Sequence[Record] | None = None,
) -> list[AugmentationCheck]:
    """Measure each requested dimension of ``augmented`` against a reference of its bias type.

    The reference is ``control`` (the control arm's texts of the same dimension) when given,
    else the real texts. A dimension is *carried* when the lower CI bound of (augmented −
    reference) is above zero. Each check records the ladder rung (``method``) its texts were
    written with, the share the model wrote and whether "carried" holds by construction.
    """
    if not augmented:
        raise ValueError("no augmented records to check")
    spec = augmented[0].meta.get("bias_spec")
    if not spec:
        raise ValueError(f"record {augmented[0].id} has no bias_spec in its meta")
    bt = get_bias_type(spec["bias_type"])
    real_texts = [r.text for r in real if r.meta.get("bias_type") in (None, bt.name)]
    dims = list(dict.fromkeys(r.meta["dimension"] for r in augmented if r.meta.get("dimension")))
    checks = []
    for dim in dims:
        recs = [r for r in augmented if r.meta.get("dimension") == dim]
        texts = [r.text for r in recs if r.text]
        ref_texts = real_texts
        if control is not None:
            ref_texts = [r.text for r in control if r.meta.get("dimension") == dim and r.text]
        ua, stat = dimension_scores(texts, bt, dim, encoder)
        ur, _ = dimension_scores(ref_texts, bt, dim, encoder)
        a, b = stat(ua), stat(ur)
        b0 = 0.0 if np.isnan(b) else b
        ci = (
            two_sample_ci(
                ua, ur, lambda x, y, s=stat: s(x) - _zero_nan(s(y)), n_resamples, level, seed
            )
            if len(ua)
            else CI(float("nan"), float("nan"), level)
        )
        diff = a - b0
        res = MetricResult(
            name=f"augment.{bt.name}.{dim}",
            value=float(diff),
            ci=ci,
            per_group={"augmented": float(a), "real": float(b)},
            n=len(texts),
            meta={"requested_strength": recs[0].meta["bias_spec"]["strength"]},
        )
        carried = bool(ci.low > 0) if not np.isnan(ci.low) else False
        checks.append(
            AugmentationCheck(
                dimension=dim,
                metric=res.name,
                augmented=float(a),
                real=float(b),
                result=res,
                carried=carried,
                n_augmented=len(recs),
                empty=len(recs) - len(texts),
                method=str(recs[0].meta.get("method", "prompt")),
                filter_failed=sum(1 for r in recs if r.meta.get("filter_passed") is False),
                reference="real" if control is None else "control",
                model_share=_mean_share(recs),
            )
        )
    return checks


def _mean_share(recs: Sequence[Record]) -> float:
    """Mean ``meta["model_share"]`` of the records that say (NaN when none does)."""
    shares = [float(r.meta["model_share"]) for r in recs if "model_share" in r.meta]
    return float(np.mean(shares)) if shares else float("nan")


def _zero_nan(v: float) -> float:
    return 0.0 if np.isnan(v) else v


def dose_response(
    real: Sequence[Record],
    sets: Mapping[float, Sequence[Record]],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    encoder: Any = None,
) -> list[dict[str, Any]]:
    """Measured bias (augmented − real) against requested strength, per dimension.

    ``sets`` maps a requested strength to the augmented set written at it (one bias type). The
    slope is the least-squares slope of the measured differences on strength; its CI resamples
    the texts of every set and of the real data (the sets are independent samples; the real data
    is shared, so it is resampled once per replicate). ``monotone`` is False when a higher
    strength measured lower than a lower one (``largest_drop`` gives the size).
    """
    if len(sets) < 2:
        raise ValueError(f"a dose-response needs at least 2 strengths, got {sorted(sets)}")
    strengths = sorted(sets)
    first = next(iter(sets[strengths[0]]), None)
    if first is None:
        raise ValueError(f"strength {strengths[0]}: empty augmented set")
    bt = get_bias_type(first.meta["bias_type"])
    real_texts = [r.text for r in real if r.meta.get("bias_type") in (None, bt.name)]
    dims = list(dict.fromkeys(r.meta["dimension"] for s in strengths for r in sets[s]))
    rng = np.random.default_rng(seed)
    x = np.asarray(strengths, dtype=float)
    out = []
    for dim in dims:
        ur, stat = dimension_scores(real_texts, bt, dim, encoder)
        units = []
        for s in strengths:
            texts = [r.text for r in sets[s] if r.meta.get("dimension") == dim and r.text]
            units.append(dimension_scores(texts, bt, dim, encoder)[0])
        if any(len(u) == 0 for u in units) or len(ur) == 0:
            raise ValueError(f"{bt.name}.{dim}: a strength or the real data has no texts")
        measured = np.array([stat(u) - _zero_nan(stat(ur)) for u in units])
        slope = float(np.polyfit(x, measured, 1)[0]) if not np.isnan(measured).any() else np.nan
        boots = np.empty(n_resamples)
        draws = independent_resamples([ur, *units], n_resamples, rng)  # real first, then each set
        for k, (r_real, *r_sets) in enumerate(draws):
            r0 = _zero_nan(stat(r_real))
            y = np.array([stat(u) - r0 for u in r_sets])
            boots[k] = np.polyfit(x, y, 1)[0] if not np.isnan(y).any() else np.nan
        ci = percentile_ci(boots, level)
        drops = np.diff(measured)
        out.append(
            {
                "bias_type": bt.name,
                "dimension": dim,
                "strengths": [float(v) for v in strengths],
                "measured": [float(v) for v in measured],
                "slope": slope,
                "slope_ci": ci.to_dict(),
                "n_per_strength": [len(u) for u in units],
                "increasing": bool(ci.low > 0),
                "monotone": bool((drops >= 0).all()),
                "largest_drop": float(max(0.0, -drops.min())) if len(drops) else 0.0,
            }
        )
    return out
