"""One call that measures a corpus with every metric family that applies.

Families: ``rule`` (gender occupation stereotypes), ``lexical`` (representation, co-occurrence,
stereotype rate for any axis), ``embedding`` (gender projection and anchors), ``misalignment``
(values, group data, distributions against a real reference corpus). Heavy families (the sentence
encoder) load only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthbias.lexicon import load_lexicon
from synthbias.measure.embedding import EmbeddingGenderScorer, Encoder
from synthbias.measure.embedding_axes import EmbeddingAxisScorer
from synthbias.measure.lexical import measure_lexical
from synthbias.measure.misalignment import misalignment_factors
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import GenderRuleScorer

FAMILIES = ("rule", "lexical", "embedding", "misalignment")
DEFAULT_FAMILIES = ("rule", "lexical", "embedding")


class MeasureError(ValueError):
    """Bad measurement request (unknown axis or family, missing reference)."""


def check_axes(axes: Sequence[str]) -> list[str]:
    """Validate axis names against the lexicon; the error lists the valid names."""

    known = load_lexicon().axes
    bad = [a for a in axes if a not in known]
    if bad:
        raise MeasureError(
            f"unknown axis {', '.join(map(repr, bad))}; choose from {', '.join(known)}"
        )
    if not axes:
        raise MeasureError(f"no axes given; choose from {', '.join(known)}")
    return list(axes)


def check_families(families: Sequence[str] | None, has_reference: bool) -> list[str]:
    fams = list(families) if families else list(DEFAULT_FAMILIES)
    if has_reference and not families:
        fams.append("misalignment")
    bad = [f for f in fams if f not in FAMILIES]
    if bad:
        raise MeasureError(
            f"unknown metric family {', '.join(map(repr, bad))}; choose from {', '.join(FAMILIES)}"
        )
    if "misalignment" in fams and not has_reference:
        raise MeasureError("the misalignment family needs a real reference corpus (--reference)")
    return fams


def measure_corpus(
    texts: Sequence[str],
    axes: Sequence[str] = ("gender",),
    reference: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    encoder: Any = None,
    rule_scorer: Any = None,
    embedding_scorer: Any = None,
) -> dict[str, MetricResult]:
    """Measure ``texts`` on ``axes`` with the chosen metric families.

    Result keys are ``<family>.<axis>.<metric>`` (``rule.gender.stereotype_rate``,
    ``lexical.religion.representation_jsd``, ``embedding.gender.anchor_bias``,
    ``embedding.religion.anchor_spread`` (group-centroid anchors for non-gender axes),
    ``misalignment.distribution.mmd2`` …). With a ``reference`` corpus, lexical representation is
    compared against it instead of the uniform distribution, and the misalignment family runs.
    ``rule_scorer`` / ``embedding_scorer``: an already built ``GenderRuleScorer`` (e.g. from a
    config's rule settings) / ``EmbeddingGenderScorer`` to use instead of the default ones.
    Names: :mod:`synthbias.measure.names`.
    """
    texts = list(texts)
    if not texts:
        raise MeasureError("no texts to measure")
    axes = check_axes(axes)
    fams = check_families(families, reference is not None)
    out: dict[str, MetricResult] = {}
    if "rule" in fams and "gender" in axes:
        rule = rule_scorer if rule_scorer is not None else GenderRuleScorer()
        for name, res in rule.measure(texts, n_resamples, seed).items():
            out[f"rule.gender.{name}"] = res
    if "lexical" in fams:
        ref = list(reference) if reference is not None else None
        res = measure_lexical(texts, axes=axes, reference=ref, n_resamples=n_resamples, seed=seed)
        out.update({f"lexical.{k}": v for k, v in res.items()})
    if embedding_scorer is not None and encoder is None:
        encoder = embedding_scorer.encoder
    needs_encoder = "embedding" in fams or "misalignment" in fams
    if needs_encoder and encoder is None:
        encoder = Encoder()
    if "embedding" in fams and "gender" in axes:
        scorer = (
            embedding_scorer if embedding_scorer is not None else EmbeddingGenderScorer(encoder)
        )
        for name, res in scorer.measure(texts, n_resamples=n_resamples, seed=seed).items():
            out[f"embedding.gender.{name}"] = res
    if "embedding" in fams:
        for axis in (a for a in axes if a != "gender"):
            res = EmbeddingAxisScorer(encoder, axis).measure(texts, n_resamples, seed)
            out.update({f"embedding.{axis}.{k}": v for k, v in res.items()})
    if "misalignment" in fams:
        res = misalignment_factors(
            texts,
            list(reference or []),
            axes=tuple(axes),
            encoder=encoder,
            n_resamples=n_resamples,
            seed=seed,
        )
        out.update({f"misalignment.{k}": v for k, v in res.items()})
    return out
