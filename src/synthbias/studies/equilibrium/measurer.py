"""How the equilibrium study measures a generation: the configured rule metric (and the seed
vocabulary it implies), the corpus metrics and the direction metrics, in one object that the
runner, the forecast and the mitigation study share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from synthbias.core.records import Record
from synthbias.core.store import atomic_write_text as _atomic_write_text  # noqa: F401
from synthbias.lexicon.swap import swap_gender
from synthbias.measure.api import measure_corpus
from synthbias.measure.config import MeasureConfig
from synthbias.measure.direction import (
    DIRECTION_STATS,
    coded_labels,
    continuation,
    direction_metrics,
    on_topic,
    unpaired_kinds,
)
from synthbias.measure.embedding import EmbeddingGenderScorer, Encoder
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import FEMALE_CODED, MALE_CODED, GenderRuleScorer
from synthbias.studies.equilibrium.generation import (
    SeedVocabulary,
    text_opening,
)


@dataclass
class GenderMeasurer:
    """Rule-based and (optionally) embedding gender metrics on one corpus."""

    cfg: MeasureConfig
    encoder: Any = None
    #: attach each text's subject to its prompt occupation (the rule metric's
    #: ``prompt_occupations``). On by default since issue 27: on 520 texts the embedded model
    #: wrote for this study's prompt it changed 2 labels, both from a pairing of somebody else
    #: ("… that Christine was a doctor and Steven was an ambulance driver", prompt: eligibility
    #: interviewer) to no pairing of the prompt's occupation, and it gives every text its prompt
    #: occupation's code, so the per-code denominators follow the balanced prompts.
    attach_to_prompt: bool = True

    def __post_init__(self) -> None:
        self.rule = GenderRuleScorer.from_config(self.cfg.rule)
        self.embedding = None
        if self.cfg.embedding:
            self.encoder = self.encoder or Encoder()
            self.embedding = EmbeddingGenderScorer(self.encoder)

    def measure(
        self,
        texts: list[str],
        seed: int = 0,
        prompt_occupations: list[str | None] | None = None,
    ) -> dict[str, MetricResult]:
        """The ``rule`` (and, when configured, ``embedding``) family of
        :func:`~synthbias.measure.api.measure_corpus` on the gender axis, with this config's
        rule settings, then the direction metrics (``rule.gender.stereotype_rate`` is the
        direction metric's: same value, its CI from the pairing codes); every metric with a
        bootstrap CI over texts. ``prompt_occupations`` (one per text, or None) are the
        occupations the prompts named: the rule metric attaches each text's subject to it."""

        nr = self.cfg.n_resamples
        out = measure_corpus(
            texts,
            axes=("gender",),
            families=["rule", "embedding"] if self.embedding is not None else ["rule"],
            n_resamples=nr,
            seed=seed,
            rule_scorer=self.rule,
            embedding_scorer=self.embedding,
        )
        if not self.attach_to_prompt:
            prompt_occupations = None
        scores = self.rule.score_texts(texts, prompt_occupations=prompt_occupations)
        out.update(
            direction_metrics(
                coded_labels(scores), n_resamples=nr, seed=seed, level=self.cfg.ci_level
            )
        )
        return out

    def swap_gender(self, text: str) -> str:
        """``text`` with every gendered word and first name mirrored (he ↔ she, Mary ↔ James),
        names at this scorer's threshold: how ``seed_source: model`` relabels a pilot text."""
        return swap_gender(text, name_threshold=self.rule.name_threshold)

    def on_topic(self, text: str, opening: str = "") -> bool:
        """Whether a text names an occupation and refers to a person; with the ``opening`` the
        prompt wrote ("The nurse said that"), whether what the model wrote after it refers to a
        person (a pronoun, a name or a person noun; see
        :func:`~synthbias.measure.direction.on_topic`)."""
        rest = self.rule.score_text(continuation(text, opening)) if opening.strip() else None
        return on_topic(text, self.rule.score_text(text), opening, rest)

    def per_text(self, records: list[Record], fit_metric: str, seed: int = 0) -> dict[str, Any]:
        """Per-text values of one corpus: pairing ``codes`` (sign + 10 · occupation code, see
        :func:`~synthbias.measure.direction.coded_labels`), ``off_topic`` (0/1) and ``fit`` (the
        fit metric's per-text values: the codes for a direction metric, else the metric's
        per-sample scores, which must average to its value). A text whose opening the prompt
        wrote (:func:`~synthbias.studies.equilibrium.generation.text_opening`) is on topic only
        when the model's continuation refers to a person. A text generated for a prompt
        occupation (``meta["prompt_occupation"]``) has its subject attached to it when
        ``attach_to_prompt`` is set (the default)."""
        texts = [r.text for r in records]
        occupations = prompt_occupations(records) if self.attach_to_prompt else None
        scores = self.rule.score_texts(texts, prompt_occupations=occupations)
        codes = coded_labels(scores)
        off = np.array(
            [
                not on_topic(t, s, o, self.rule.score_text(continuation(t, o)) if o else None)
                for t, s, o in zip(texts, scores, map(text_opening, records), strict=True)
            ],
            float,
        )
        unpaired = unpaired_kinds(scores, off)
        if fit_metric in DIRECTION_STATS:
            fit = codes
        else:
            metrics = self.measure(texts, seed=seed, prompt_occupations=occupations)
            if fit_metric not in metrics:
                raise KeyError(f"fit_metric {fit_metric!r} not measured; have {sorted(metrics)}")
            m = metrics[fit_metric]
            fit = np.asarray(m.per_sample, dtype=float)
            if len(fit) != len(texts) or not np.isclose(np.nanmean(fit), m.value):
                raise ValueError(f"fit_metric {fit_metric!r} is not a mean of per-text scores")
        return {
            "codes": codes,
            "off_topic": off,
            "fit": fit,
            "n": len(texts),
            "unpaired": unpaired,
        }

    def check_seed_corpus(self, records: list[Record]) -> None:
        """Every seed text must score as designed (stereotypical / anti / neutral pairing);
        otherwise generation 0 would not start at its level, and the run stops here."""
        expected = {"stereotypical": "stereotypical", "anti": "anti", "neutral": "neutral"}
        scores = self.rule.score_texts([r.text for r in records])
        bad = [
            f"{r.id}: {r.text!r} scored {s.label}, designed {r.meta.get('seed_kind')}"
            for r, s in zip(records, scores, strict=True)
            if s.label != expected.get(str(r.meta.get("seed_kind")), s.label)
        ]
        if bad:
            raise ValueError(
                f"{len(bad)} seed texts do not score as designed, e.g. " + "; ".join(bad[:3])
            )

    def seed_vocabulary(self, n_names: int = 60) -> SeedVocabulary:
        """Gender-coded occupations and unambiguous names, as the rule metric sees them.

        Every occupation and name is checked against the scorer itself, so a generation-0 corpus
        built from them scores exactly its intended level.
        """
        return seed_vocabulary_for(self.rule, n_names=n_names)


def seed_vocabulary_for(rule: Any, n_names: int = 60) -> SeedVocabulary:
    """Build the seed vocabulary from a ``GenderRuleScorer`` (occupations by code, top names)."""

    occupations = []
    for occ in rule.axis.occupations:
        code = rule.codes[occ.name]
        if code not in (MALE_CODED, FEMALE_CODED):
            continue
        gender = "male" if code == MALE_CODED else "female"
        s = rule.score_text(f"The {occ.name} said {'he' if gender == 'male' else 'she'} was fine.")
        if s.label == "stereotypical":
            occupations.append((occ.name, gender))
    names: dict[str, list[str]] = {"male": [], "female": []}
    table = rule.axis.names
    if table is not None:
        ranked = sorted(table, key=lambda info: -info.total_freq)
        for info in ranked:
            g = table.gender(info.name, rule.name_threshold)
            if g not in names or len(names[g]) >= n_names:
                continue
            name = info.name[:1].upper() + info.name[1:].lower()
            s = rule.score_text(f"{name} works here.")
            if (s.male, s.female) == ((1, 0) if g == "male" else (0, 1)):
                names[g].append(name)
    if not occupations:
        raise ValueError("no gender-coded occupations at these thresholds")
    return SeedVocabulary(occupations=occupations, names=names)


def prompt_occupations(records: list[Record]) -> list[str | None] | None:
    """Each record's prompt occupation (``meta["prompt_occupation"]``), or None when no record
    has one (a seed corpus, a corpus synthbias did not write)."""
    occ = [r.meta.get("prompt_occupation") for r in records]
    return occ if any(occ) else None
