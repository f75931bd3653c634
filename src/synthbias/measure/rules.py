"""Rule-based gender-occupation stereotype metric over a corpus of texts.

Each text is scanned once by a single compiled regex holding every gendered referent (pronouns,
gendered nouns, titles, first names) and every occupation form, longest match first. A text is

* ``none`` when no gender-coded occupation is mentioned (neutral occupations do not count);
* ``neutral`` when a coded occupation is mentioned but there is no male or female referent,
  or as many male as female referents;
* ``stereotypical`` when the majority referent gender matches the occupation's code
  (he + engineer, she + nurse);
* ``anti`` otherwise (she + engineer, he + nurse).

Resolution rules, chosen to be simple and symmetric under gender swapping:

* referent gender = the gender with more referents in the whole text (ties -> ``neutral``);
* occupation code = the code with more coded-occupation mentions (one occupation mentioned
  twice counts twice); when male- and female-coded mentions are equally many the text is
  ``neutral``, because without coreference the rules cannot tell whose pronoun it is. (Breaking
  the tie by the first mention was tried and rejected: on WinoBias, where every sentence names
  one male- and one female-dominated occupation, it scored the pro-stereotypical set as
  anti-stereotypical, because the first occupation is usually not the pronoun's referent.)

The rules do not resolve coreference: "The nurse thanked the patient for his help" counts *his*
against *nurse*. That is the usual trade-off of lexicon metrics: cheap, transparent, and noisy
per text but informative over a corpus.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..lexicon import FEMALE_CODED, MALE_CODED, Lexicon, MatchEntry, TermMatcher
from ..lexicon import load_lexicon as _load_lexicon
from ..lexicon.occupations import check_thresholds
from .result import MetricResult, bootstrap_ci

STEREOTYPICAL = "stereotypical"
ANTI = "anti"
NEUTRAL_LABEL = "neutral"
NONE = "none"
LABELS = (STEREOTYPICAL, ANTI, NEUTRAL_LABEL, NONE)

_REF = "ref"
_OCC = "occ"


@dataclass
class TextScore:
    """What the rules found in one text and the resulting label."""

    label: str
    occupations: list[tuple[str, str]] = field(default_factory=list)  # (occupation, code)
    male: int = 0
    female: int = 0
    neutral: int = 0
    code: str | None = None  # the resolved occupation code behind the label

    @property
    def signed(self) -> int:
        """+1 stereotypical, -1 anti-stereotypical, 0 otherwise."""
        return 1 if self.label == STEREOTYPICAL else -1 if self.label == ANTI else 0


class GenderRuleScorer:
    """Label texts stereotypical / anti / neutral / none from occupations and gendered words.

    ``lo``/``hi`` are the percent-female thresholds for male-/female-coded occupations and
    ``name_threshold`` the census share a first name needs to count as gendered.
    """

    def __init__(
        self,
        lexicon: Lexicon | None = None,
        lo: float = 30.0,
        hi: float = 70.0,
        name_threshold: float = 0.9,
    ) -> None:
        check_thresholds(lo, hi)
        self.lexicon = lexicon if lexicon is not None else _load_lexicon()
        self.axis = self.lexicon.axis("gender")
        if self.axis.occupations is None:
            raise ValueError("the gender axis has no occupation table")
        self.lo, self.hi, self.name_threshold = lo, hi, name_threshold
        self.codes = self.axis.occupations.codes(lo, hi)
        female_group = self.axis.occupation_groups.get("female", "female")
        male_group = self.axis.occupation_groups.get("male", "male")
        self._gender_of_group = {male_group: "male", female_group: "female"}
        occ_forms = {f.lower() for occ in self.axis.occupations for f in occ.forms}
        entries: list[MatchEntry] = []
        for e in self.axis.entries(name_threshold):
            if e.case_sensitive and e.term.lower() in occ_forms:
                continue  # a first name spelled like an occupation counts as the occupation
            label = (
                None if e.label is None else (_REF, self._gender_of_group.get(e.label, "neutral"))
            )
            entries.append(MatchEntry(e.term, label, e.case_sensitive, e.followed_by))
        for occ in self.axis.occupations:
            for form in occ.forms:
                entries.append(MatchEntry(form, (_OCC, occ.name), False))
        self.matcher = TermMatcher(entries)

    def _score(self, labels: Sequence[Hashable]) -> TextScore:
        male = female = neutral = 0
        occupations: list[tuple[str, str]] = []
        n_male_coded = n_female_coded = 0
        first_coded: str | None = None  # only tells whether any coded occupation was seen
        for kind, value in labels:  # type: ignore[misc]
            if kind == _REF:
                if value == "male":
                    male += 1
                elif value == "female":
                    female += 1
                else:
                    neutral += 1
            else:
                code = self.codes[value]
                occupations.append((value, code))
                if code == MALE_CODED:
                    n_male_coded += 1
                elif code == FEMALE_CODED:
                    n_female_coded += 1
                else:
                    continue
                if first_coded is None:
                    first_coded = code
        score = TextScore(NONE, occupations, male, female, neutral)
        if first_coded is None:
            return score
        if n_male_coded == n_female_coded:
            score.label = NEUTRAL_LABEL  # as many male- as female-coded mentions: undecidable
            return score
        score.code = MALE_CODED if n_male_coded > n_female_coded else FEMALE_CODED
        if male == female:
            score.label = NEUTRAL_LABEL
        else:
            majority = MALE_CODED if male > female else FEMALE_CODED
            score.label = STEREOTYPICAL if majority == score.code else ANTI
        return score

    def score_text(self, text: str) -> TextScore:
        return self._score(self.matcher.findall(text))

    def score_texts(self, texts: Sequence[str]) -> list[TextScore]:
        """Scores for many texts (one regex pass per chunk of texts)."""
        return [self._score(labels) for labels in self.matcher.labels_batch(texts)]

    def measure(
        self, texts: Sequence[str], n_resamples: int = 1000, seed: int = 0
    ) -> dict[str, MetricResult]:
        """Corpus metrics with percentile bootstrap 95% CIs over texts."""
        scores = self.score_texts(texts)
        return metrics_from_scores(
            scores,
            n_resamples=n_resamples,
            seed=seed,
            meta={"lo": self.lo, "hi": self.hi, "name_threshold": self.name_threshold},
        )


def _rate(mask: np.ndarray, values: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def _imbalance(arr: np.ndarray) -> float:
    m, f = arr[:, 0].sum(), arr[:, 1].sum()
    return float((m - f) / (m + f)) if m + f > 0 else float("nan")


def metrics_from_scores(
    scores: Sequence[TextScore],
    n_resamples: int = 1000,
    seed: int = 0,
    meta: dict | None = None,
) -> dict[str, MetricResult]:
    """``stereotype_rate``, ``signed_bias`` and ``gendered_term_imbalance`` from text scores.

    * stereotype_rate = stereotypical texts / all texts; per_group: the same rate among texts
      whose occupation is male-coded and female-coded;
    * signed_bias = (stereotypical - anti) / all texts, in [-1, 1]; per_group as above;
    * gendered_term_imbalance = (male - female referents) / (male + female referents) pooled
      over the corpus, in [-1, 1]; the bootstrap resamples texts and recomputes the pooled ratio;
      per_group gives the male and female shares of referents.
    """
    base = dict(meta or {})
    n = len(scores)
    labels = np.array([s.label for s in scores], dtype=object)
    stereo = (labels == STEREOTYPICAL).astype(float)
    signed = np.array([s.signed for s in scores], dtype=float)
    codes = np.array([s.code or "" for s in scores], dtype=object)
    counts = {lab: int((labels == lab).sum()) for lab in LABELS}
    base["label_counts"] = counts
    by_code = {
        MALE_CODED: codes == MALE_CODED,
        FEMALE_CODED: codes == FEMALE_CODED,
    }
    base["n_by_code"] = {c: int(m.sum()) for c, m in by_code.items()}

    def mean(a: np.ndarray) -> float:
        return float(a.mean()) if len(a) else float("nan")

    rate = MetricResult(
        name="stereotype_rate",
        value=mean(stereo),
        ci=bootstrap_ci(stereo, n_resamples=n_resamples, seed=seed),
        per_group={c: _rate(m, stereo) for c, m in by_code.items()},
        per_sample=stereo.tolist(),
        n=n,
        meta=dict(base),
    )
    bias = MetricResult(
        name="signed_bias",
        value=mean(signed),
        ci=bootstrap_ci(signed, n_resamples=n_resamples, seed=seed),
        per_group={c: _rate(m, signed) for c, m in by_code.items()},
        per_sample=signed.tolist(),
        n=n,
        meta=dict(base),
    )
    mf = np.array([[s.male, s.female] for s in scores], dtype=float).reshape(n, 2)
    tot = mf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_text = np.where(tot > 0, (mf[:, 0] - mf[:, 1]) / np.where(tot > 0, tot, 1), np.nan)
    m_total, f_total = float(mf[:, 0].sum()), float(mf[:, 1].sum())
    both = m_total + f_total
    imbalance = MetricResult(
        name="gendered_term_imbalance",
        value=_imbalance(mf),
        ci=bootstrap_ci(mf, statistic=_imbalance, n_resamples=n_resamples, seed=seed),
        per_group={
            "male": m_total / both if both else float("nan"),
            "female": f_total / both if both else float("nan"),
        },
        per_sample=per_text.tolist(),
        n=n,
        meta={**base, "male_referents": int(m_total), "female_referents": int(f_total)},
    )
    return {r.name: r for r in (rate, bias, imbalance)}


__all__ = [
    "ANTI",
    "GenderRuleScorer",
    "LABELS",
    "NEUTRAL_LABEL",
    "NONE",
    "STEREOTYPICAL",
    "TextScore",
    "metrics_from_scores",
]
