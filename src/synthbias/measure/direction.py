"""Stereotype *direction* in a corpus, with its base, and on-topic checks for recursive generation.

The rule metric labels each text stereotypical / anti / neutral / none. A corpus-wide stereotype
rate (stereotypical texts / all texts) mixes two things: how often texts pair a gender-coded
occupation with a gendered referent, and which way the pairing goes. This module separates them:

* ``rule.gender.conditional_stereotype_share`` = stereo / (stereo + anti): the direction, among
  texts with a coded pairing (0.5 = no lean; positive change = towards the stereotype);
* ``rule.gender.pairing_rate`` = (stereo + anti) / all texts: the base of that share;
* ``rule.gender.stereotype_rate`` = stereo / all texts: the unconditional rate.

The pooled share lets a global he/she lean in whenever the two codes are paired at different
rates: a gender-blind generator with P(he) = 0.8 that pairs male-coded occupations 80 % of the time
and female-coded ones 50 % scores 0.569. Hence, per occupation code:

* ``rule.gender.code_balanced_stereotype_share`` = ½[P(stereo | male-coded, paired) +
  P(stereo | female-coded, paired)]: each code's direction weighs the same (0.5 = no lean, also
  for that gender-blind generator; positive change = towards the stereotype);
* ``rule.gender.pairing_rate_male_coded`` / ``rule.gender.pairing_rate_female_coded`` = paired
  texts / texts of that code: the bases of the two halves.

Per text they are coded +1 (stereotypical), −1 (anti) or 0 (no coded pairing): :func:`label_codes`.
The per-code metrics also need the text's occupation code: :func:`coded_labels` packs both into
one integer, ``sign + 10 · occupation`` (occupation 0 = none, 1 = male-coded, 2 = female-coded,
see :data:`OCCUPATION_INDEX`), which every statistic here reads (:func:`label_signs` decodes the
sign), so a corpus has one per-text array for all six metrics. Every statistic is computed from
resampled *texts* (a ratio's bootstrap resamples texts, not per-text means). Replicate chains are
clusters: :func:`cluster_values` resamples chains, then texts within them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.lexicon import FEMALE_CODED, MALE_CODED
from synthbias.lexicon.people import person_nouns
from synthbias.measure.result import CI, MetricResult, percentile_ci
from synthbias.measure.rules import GARBLED
from synthbias.stats.chains import Stat, resample_stat

CONDITIONAL = "rule.gender.conditional_stereotype_share"


PAIRING = "rule.gender.pairing_rate"


RATE = "rule.gender.stereotype_rate"


CODE_BALANCED = "rule.gender.code_balanced_stereotype_share"


PAIRING_MALE_CODED = "rule.gender.pairing_rate_male_coded"


PAIRING_FEMALE_CODED = "rule.gender.pairing_rate_female_coded"


DIRECTION_METRICS = (
    CONDITIONAL,
    PAIRING,
    RATE,
    CODE_BALANCED,
    PAIRING_MALE_CODED,
    PAIRING_FEMALE_CODED,
)

#: The metrics that need each text's occupation code (:func:`coded_labels`).
PER_CODE_METRICS = (CODE_BALANCED, PAIRING_MALE_CODED, PAIRING_FEMALE_CODED)

#: Occupation code -> its digit in :func:`coded_labels` (0: no coded occupation).
OCCUPATION_INDEX = {MALE_CODED: 1, FEMALE_CODED: 2}
_STEP = 10


def occupation_index(x: np.ndarray) -> np.ndarray:
    """The occupation digit of per-text codes (0 none, 1 male-coded, 2 female-coded)."""
    return np.floor_divide(np.asarray(x) + 1, _STEP)


def label_signs(x: np.ndarray) -> np.ndarray:
    """+1 / −1 / 0 of per-text codes, plain (:func:`label_codes`) or packed
    (:func:`coded_labels`)."""
    x = np.asarray(x)
    return x - _STEP * occupation_index(x)


def _conditional(x: np.ndarray) -> np.ndarray:
    sign = label_signs(x)
    stereo = (sign == 1).sum(axis=-1)
    paired = (sign != 0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(paired > 0, stereo / np.maximum(paired, 1), np.nan)


def _pairing(x: np.ndarray) -> np.ndarray:
    return (label_signs(x) != 0).mean(axis=-1)


def _rate(x: np.ndarray) -> np.ndarray:
    return (label_signs(x) == 1).mean(axis=-1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _share_of_code(x: np.ndarray, code: str) -> np.ndarray:
    """P(stereotypical | paired, occupation code) over the last axis (NaN: no pairing there)."""
    sign, of_code = label_signs(x), occupation_index(x) == OCCUPATION_INDEX[code]
    return _ratio((of_code & (sign == 1)).sum(axis=-1), (of_code & (sign != 0)).sum(axis=-1))


def _code_balanced(x: np.ndarray) -> np.ndarray:
    return 0.5 * (_share_of_code(x, MALE_CODED) + _share_of_code(x, FEMALE_CODED))


def _pairing_of_code(code: str) -> Stat:
    def stat(x: np.ndarray) -> np.ndarray:
        sign, of_code = label_signs(x), occupation_index(x) == OCCUPATION_INDEX[code]
        return _ratio((of_code & (sign != 0)).sum(axis=-1), of_code.sum(axis=-1))

    return stat


def mean_stat(x: np.ndarray) -> np.ndarray:
    """Mean of per-text scores (any metric whose corpus value is a mean)."""
    return np.nanmean(x, axis=-1) if np.isnan(x).any() else x.mean(axis=-1)


#: Vectorised statistics over the last axis of per-text codes (+1 / −1 / 0).
DIRECTION_STATS: dict[str, Stat] = {
    CONDITIONAL: _conditional,
    PAIRING: _pairing,
    RATE: _rate,
    CODE_BALANCED: _code_balanced,
    PAIRING_MALE_CODED: _pairing_of_code(MALE_CODED),
    PAIRING_FEMALE_CODED: _pairing_of_code(FEMALE_CODED),
}


def statistic_for(metric: str) -> Stat:
    """The corpus statistic of ``metric``: a direction statistic, else a per-text mean."""
    return DIRECTION_STATS.get(metric, mean_stat)


def label_codes(scores: Sequence[Any]) -> np.ndarray:
    """+1 / −1 / 0 per rule-metric ``TextScore`` (stereotypical / anti / anything else)."""
    return np.array([int(s.signed) for s in scores], dtype=np.int8)


def coded_labels(scores: Sequence[Any]) -> np.ndarray:
    """``sign + 10 · occupation`` per rule-metric ``TextScore``: its +1 / −1 / 0 and the digit
    of its occupation code (``TextScore.code``: the prompt occupation's code when the scorer was
    given it, else the code behind the label; 0 when it has none). All six direction metrics
    read this array; the three plain ones also read :func:`label_codes`."""
    return np.array(
        [int(s.signed) + _STEP * OCCUPATION_INDEX.get(s.code or "", 0) for s in scores],
        dtype=np.int8,
    )


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
    sign, occ = label_signs(codes), occupation_index(codes)
    counts = {
        "stereotypical": int((sign == 1).sum()),
        "anti": int((sign == -1).sum()),
        "pairings": int((sign != 0).sum()),
        "n": n,
    }
    by_code = {
        code: {
            "texts": int((occ == k).sum()),
            "stereotypical": int(((occ == k) & (sign == 1)).sum()),
            "anti": int(((occ == k) & (sign == -1)).sum()),
        }
        for code, k in OCCUPATION_INDEX.items()
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
        elif name in PER_CODE_METRICS:
            meta.update(_per_code_meta(name, by_code))
        else:
            meta["denominator"] = "all texts"
        # per-text scores only where the corpus value is their mean (not for the ratios)
        ratio = name == CONDITIONAL or name in PER_CODE_METRICS
        per_sample = [] if ratio else stat(codes[:, None]).tolist()
        out[name] = MetricResult(
            name=name, value=value, ci=ci, per_sample=per_sample, n=n, meta=meta
        )
    return out


def _per_code_meta(name: str, by_code: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Counts and denominator of a per-code metric, and why it is undefined where it is."""
    meta: dict[str, Any] = {"by_code": by_code}
    if name == CODE_BALANCED:
        meta["denominator"] = "per code: texts with a coded pairing; the two shares averaged"
        empty = [c for c, d in by_code.items() if d["stereotypical"] + d["anti"] == 0]
    else:
        code = MALE_CODED if name == PAIRING_MALE_CODED else FEMALE_CODED
        meta["denominator"] = f"texts whose occupation is {code}"
        empty = [code] if by_code[code]["texts"] == 0 else []
    if not any(d["texts"] for d in by_code.values()):
        meta["note"] = "the per-text codes carry no occupation code: pass coded_labels(scores)"
    elif empty:
        meta["note"] = f"undefined: no {' or '.join(empty)} texts to divide by"
    return meta


# --------------------------------------------------------------------------- on-topic check

#: People at work named by a role the occupation table does not list (it lists jobs with labour
#: statistics, not generic roles).
_WORK_ROLE = re.compile(
    r"\b(?:employees?|workers?|co-?workers?|colleagues?|boss(?:es)?|ceos?|interns?|"
    r"entrepreneurs?|freelancers?|staff member|business owner|founders?|owners?|directors?|"
    r"writers?|authors?|scientists?|researchers?|officers?|professors?|coach(?:es)?|chefs?)\b",
    re.IGNORECASE,
)


#: Words that refer to a person in any text: personal and indefinite pronouns (he, she, they and
#: their forms are also in the gender axis; I, we, you and the indefinite ones are not).
_PERSON_WORD = re.compile(
    r"\b(?:he|she|they|him|her|them|his|hers|their|theirs|himself|herself|themselves|themself|"
    r"i|me|my|mine|myself|we|us|our|ours|ourselves|you|your|yours|yourself|yourselves|"
    r"someone|somebody|everyone|everybody|anyone|anybody|nobody|no one)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")


def continuation(text: str, opening: str) -> str:
    """What the model wrote of ``text``: the text after the prompt's fixed ``opening`` (the
    template's ``start``, e.g. "The nurse said that"; matched without regard to case or spacing).
    The whole text when there is no opening or the text does not begin with it (then the model
    wrote all of it)."""
    words = opening.split()
    if not words:
        return text
    m = re.match(r"\s*" + r"\s+".join(map(re.escape, words)), text, re.IGNORECASE)
    return text[m.end() :] if m else text


def refers_to_person(text: str, score: Any = None) -> bool:
    """Whether ``text`` refers to a person: a pronoun (he, she, they, I, we, you, someone …), a
    work role (employee, boss …) or a non-occupational person noun
    (``lexicon/data/person_nouns.txt``: patient, customer, friend …), or what the rule metric's
    ``score`` *of this text* found: a first name, a title, a gendered or neutral person noun
    (man, mother, child, people …), an occupation."""
    if score is not None and (score.male or score.female or score.neutral or score.occupations):
        return True
    if _PERSON_WORD.search(text) or _WORK_ROLE.search(text):
        return True
    return not person_nouns().isdisjoint(w.lower() for w in _WORD.findall(text))


def on_topic(text: str, score: Any, opening: str = "", rest_score: Any = None) -> bool:
    """Whether ``text`` is on the study's task, a short text about a person at work: it names an
    occupation from the lexicon (coded or not) or a generic work role (employee, boss, CEO …),
    which is the person the text is about.

    When the prompt wrote the text's ``opening`` (the template's ``start``, "The {occupation}
    said that"), that opening names the occupation whatever the model writes, so the check
    would pass by construction. Then the text is on topic only when, in addition, the
    *continuation* (:func:`continuation`: what the model wrote after the opening) refers to a
    person (:func:`refers_to_person`: a pronoun, a name or a person noun): "The nurse said that
    she was tired" and "… that the patient left" are on topic, "The nurse said that the weather
    was nice" is not — it is the opening plus words about nothing and nobody. ``rest_score`` is
    the rule metric's score of the continuation (its names, titles and gendered nouns count;
    without it only pronouns and person nouns do).

    Whether that person is referred to by a *gendered* word is not part of the check: "The
    writer will leave by 7:45." is on topic and unpaired, so a falling pairing rate reads as the
    generator de-gendering, not as drift. ``score`` is the rule metric's ``TextScore`` of the
    whole text.
    """
    if not text.strip():
        return False
    if not (score.occupations or _WORK_ROLE.search(text)):
        return False
    if not opening.strip():
        return True
    return refers_to_person(continuation(text, opening), rest_score)


def unpaired_kinds(scores: Sequence[Any], off_topic: Sequence[float]) -> dict[str, int]:
    """Why on-topic texts carry no direction: counts of ``uncoded_role`` (a gendered referent,
    but no gender-coded occupation: "the employee … he"), ``no_referent`` (a coded occupation
    without a decisive gendered referent: "the nurse … they", or as many he as she) and
    ``no_gender`` (neither), and ``garbled`` (a generation loop, see
    :func:`~synthbias.measure.rules.is_garbled`) when there is one; off-topic texts are not
    counted."""
    out = {"uncoded_role": 0, "no_referent": 0, "no_gender": 0}
    for s, off in zip(scores, off_topic, strict=True):
        if off or s.signed != 0:
            continue
        if s.label == GARBLED:
            out[GARBLED] = out.get(GARBLED, 0) + 1
        elif s.label == "neutral" or (s.code is not None and s.label != "none"):
            out["no_referent"] += 1
        elif s.male or s.female:
            out["uncoded_role"] += 1
        else:
            out["no_gender"] += 1
    return out


__all__ = [
    "CODE_BALANCED",
    "CONDITIONAL",
    "DIRECTION_METRICS",
    "DIRECTION_STATS",
    "OCCUPATION_INDEX",
    "PAIRING",
    "PAIRING_FEMALE_CODED",
    "PAIRING_MALE_CODED",
    "PER_CODE_METRICS",
    "RATE",
    "coded_labels",
    "continuation",
    "direction_metrics",
    "label_codes",
    "label_signs",
    "mean_stat",
    "occupation_index",
    "on_topic",
    "refers_to_person",
    "statistic_for",
    "unpaired_kinds",
]
