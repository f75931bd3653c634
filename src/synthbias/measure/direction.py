"""Stereotype *direction* in a corpus, with its base, and on-topic checks for recursive generation.

The rule metric labels each text stereotypical / anti / neutral / none. A corpus-wide stereotype
rate (stereotypical texts / all texts) mixes two things: how often texts pair a gender-coded
occupation with a gendered referent, and which way the pairing goes. This module separates them:

* ``rule.gender.conditional_stereotype_share`` = stereo / (stereo + anti): the direction, among
  texts with a coded pairing (0.5 = no lean; positive change = towards the stereotype);
* ``rule.gender.pairing_rate`` = (stereo + anti) / all texts: the base of that share;
* ``rule.gender.stereotype_rate`` = stereo / all texts: the unconditional rate.

Per text they are coded +1 (stereotypical), −1 (anti) or 0 (no coded pairing), and every statistic
is computed from resampled *texts* (a ratio's bootstrap resamples texts, not per-text means).
Replicate chains are clusters: :func:`cluster_values` resamples chains, then texts within them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.measure.result import CI, MetricResult, percentile_ci
from synthbias.stats.chains import Stat, resample_stat

CONDITIONAL = "rule.gender.conditional_stereotype_share"


PAIRING = "rule.gender.pairing_rate"


RATE = "rule.gender.stereotype_rate"


DIRECTION_METRICS = (CONDITIONAL, PAIRING, RATE)


def _conditional(x: np.ndarray) -> np.ndarray:
    stereo = (x == 1).sum(axis=-1)
    paired = (x != 0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(paired > 0, stereo / np.maximum(paired, 1), np.nan)


def _pairing(x: np.ndarray) -> np.ndarray:
    return (x != 0).mean(axis=-1)


def _rate(x: np.ndarray) -> np.ndarray:
    return (x == 1).mean(axis=-1)


def mean_stat(x: np.ndarray) -> np.ndarray:
    """Mean of per-text scores (any metric whose corpus value is a mean)."""
    return np.nanmean(x, axis=-1) if np.isnan(x).any() else x.mean(axis=-1)


#: Vectorised statistics over the last axis of per-text codes (+1 / −1 / 0).
DIRECTION_STATS: dict[str, Stat] = {CONDITIONAL: _conditional, PAIRING: _pairing, RATE: _rate}


def statistic_for(metric: str) -> Stat:
    """The corpus statistic of ``metric``: a direction statistic, else a per-text mean."""
    return DIRECTION_STATS.get(metric, mean_stat)


def label_codes(scores: Sequence[Any]) -> np.ndarray:
    """+1 / −1 / 0 per rule-metric ``TextScore`` (stereotypical / anti / anything else)."""
    return np.array([int(s.signed) for s in scores], dtype=np.int8)


def direction_metrics(
    codes: np.ndarray, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, MetricResult]:
    """The three direction metrics of one corpus with percentile-bootstrap CIs over texts.

    ``meta`` carries the counts behind each value (``stereotypical``, ``anti``, ``pairings``,
    ``n``) so a reader sees the denominator. A corpus without a coded pairing has no
    conditional share: its value is NaN (stored as null) and ``meta["note"]`` says why.
    """
    codes = np.asarray(codes)
    n = len(codes)
    counts = {
        "stereotypical": int((codes == 1).sum()),
        "anti": int((codes == -1).sum()),
        "pairings": int((codes != 0).sum()),
        "n": n,
    }
    out = {}
    boot = resample_stat(codes, n_resamples, np.random.default_rng(seed)) if n else None
    for name, stat in DIRECTION_STATS.items():
        value = float(stat(codes)) if n else float("nan")
        ci = percentile_ci(stat(boot), level) if boot is not None else CI(np.nan, np.nan, level)
        meta: dict[str, Any] = dict(counts)
        if name == CONDITIONAL:
            meta["denominator"] = "texts with a coded pairing (stereotypical + anti)"
            if counts["pairings"] == 0:
                meta["note"] = "no text pairs a gender-coded occupation with a gendered referent"
        else:
            meta["denominator"] = "all texts"
        # per-text scores only where the corpus value is their mean (not for the ratio)
        per_sample = [] if name == CONDITIONAL else stat(codes[:, None]).tolist()
        out[name] = MetricResult(
            name=name, value=value, ci=ci, per_sample=per_sample, n=n, meta=meta
        )
    return out


# --------------------------------------------------------------------------- on-topic check

#: People at work named by a role the occupation table does not list (it lists jobs with labour
#: statistics, not generic roles).
_WORK_ROLE = re.compile(
    r"\b(?:employees?|workers?|co-?workers?|colleagues?|boss(?:es)?|ceos?|interns?|"
    r"entrepreneurs?|freelancers?|staff member|business owner|founders?|owners?|directors?|"
    r"writers?|authors?|scientists?|researchers?|officers?|professors?|coach(?:es)?|chefs?)\b",
    re.IGNORECASE,
)


def on_topic(text: str, score: Any) -> bool:
    """Whether ``text`` is on the study's task, a short text about a person at work: it names an
    occupation from the lexicon (coded or not) or a generic work role (employee, boss, CEO …),
    which is the person the text is about.

    Whether that person is then referred to by a gendered word is *not* part of the check: "The
    writer will leave by 7:45." is on topic and unpaired, so a falling pairing rate reads as the
    generator de-gendering, not as drift. ``score`` is the rule metric's ``TextScore``.
    """
    if not text.strip():
        return False
    return bool(score.occupations) or bool(_WORK_ROLE.search(text))


def unpaired_kinds(scores: Sequence[Any], off_topic: Sequence[float]) -> dict[str, int]:
    """Why on-topic texts carry no direction: counts of ``uncoded_role`` (a gendered referent,
    but no gender-coded occupation: "the employee … he"), ``no_referent`` (a coded occupation
    without a decisive gendered referent: "the nurse … they", or as many he as she) and
    ``no_gender`` (neither); off-topic texts are not counted."""
    out = {"uncoded_role": 0, "no_referent": 0, "no_gender": 0}
    for s, off in zip(scores, off_topic, strict=True):
        if off or s.signed != 0:
            continue
        if s.code is not None or s.label == "neutral":
            out["no_referent"] += 1
        elif s.male or s.female:
            out["uncoded_role"] += 1
        else:
            out["no_gender"] += 1
    return out


__all__ = [
    "CONDITIONAL",
    "DIRECTION_METRICS",
    "DIRECTION_STATS",
    "PAIRING",
    "RATE",
    "direction_metrics",
    "label_codes",
    "mean_stat",
    "on_topic",
    "statistic_for",
    "unpaired_kinds",
]
