"""One call that measures a corpus with every metric family that applies.

Families: ``rule`` (gender occupation stereotypes), ``lexical`` (representation, co-occurrence,
stereotype rate for any axis), ``embedding`` (gender projection and anchors), ``misalignment``
(values, group data, distributions against a real reference corpus). Heavy families (the sentence
encoder) load only when asked for.

Each family is registered here in :data:`~synthbias.core.registry.METRIC_FAMILIES` with its
measure function, its title, whether it runs by default, needs a reference corpus or the sentence
encoder, and the orientation of its metrics (which direction is towards the stereotype). The
measure call, the audit, their reports, the CLI and the mitigation study's orientation table read
the registry, so a family registered anywhere (a plug-in, a test) is measured and reported like
these four.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from synthbias.core.registry import METRIC_FAMILIES
from synthbias.lexicon import load_lexicon
from synthbias.measure.direction import CODE_BALANCED
from synthbias.measure.embedding import EmbeddingGenderScorer, Encoder
from synthbias.measure.embedding_axes import EmbeddingAxisScorer
from synthbias.measure.lexical import measure_lexical
from synthbias.measure.misalignment import misalignment_factors
from synthbias.measure.names import MAGNITUDE, MAJORITY, STEREO, STEREO_SHARE
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import GenderRuleScorer


class MeasureError(ValueError):
    """Bad measurement request (unknown axis or family, missing reference)."""


@dataclass
class MeasureRequest:
    """What a metric family's measure function gets: the corpus and the shared settings.

    ``encoder`` is set when a chosen family has ``needs_encoder`` (one encoder for all of
    them); ``rule_scorer`` / ``embedding_scorer`` are already built scorers to use instead of
    the default ones (or ``None``).
    """

    texts: list[str]
    axes: list[str]
    reference: list[str] | None
    n_resamples: int
    seed: int
    encoder: Encoder | None = None
    rule_scorer: GenderRuleScorer | None = None
    embedding_scorer: EmbeddingGenderScorer | None = None


# --------------------------------------------------------------------------- the families


@METRIC_FAMILIES.register(
    "rule",
    title="Rule-based gender stereotypes",
    default=True,
    orientations={
        "rule.gender.stereotype_rate": STEREO,
        "rule.gender.signed_bias": STEREO,
        "rule.gender.gendered_term_imbalance": MAJORITY,  # raw: male-positive
        # a direction metric (measure.direction): needs each text's occupation code
        CODE_BALANCED: STEREO_SHARE,
    },
)
def measure_rule(req: MeasureRequest) -> dict[str, MetricResult]:
    if "gender" not in req.axes:
        return {}
    rule = req.rule_scorer if req.rule_scorer is not None else GenderRuleScorer()
    return {f"gender.{k}": v for k, v in rule.measure(req.texts, req.n_resamples, req.seed).items()}


@METRIC_FAMILIES.register(
    "lexical",
    title="Lexical: representation, co-occurrence, stereotype rate",
    default=True,
)
def measure_lexical_family(req: MeasureRequest) -> dict[str, MetricResult]:
    return measure_lexical(
        req.texts,
        axes=req.axes,
        reference=req.reference,
        n_resamples=req.n_resamples,
        seed=req.seed,
    )


@METRIC_FAMILIES.register(
    "embedding",
    title="Embedding: projection and anchors",
    default=True,
    needs_encoder=True,
    orientations={
        "embedding.gender.mean_abs_projection": MAGNITUDE,
        "embedding.gender.mean_projection": MAJORITY,  # raw: female-positive
        "embedding.gender.anchor_bias": MAJORITY,  # raw: female-positive
    },
)
def measure_embedding(req: MeasureRequest) -> dict[str, MetricResult]:
    out: dict[str, MetricResult] = {}
    if "gender" in req.axes:
        scorer = req.embedding_scorer
        if scorer is None:
            scorer = EmbeddingGenderScorer(req.encoder)
        res = scorer.measure(req.texts, n_resamples=req.n_resamples, seed=req.seed)
        out.update({f"gender.{k}": v for k, v in res.items()})
    for axis in (a for a in req.axes if a != "gender"):
        res = EmbeddingAxisScorer(req.encoder, axis).measure(req.texts, req.n_resamples, req.seed)
        out.update({f"{axis}.{k}": v for k, v in res.items()})
    return out


@METRIC_FAMILIES.register(
    "misalignment",
    title="Misalignment factors against a real reference",
    default=True,
    needs_reference=True,
    needs_encoder=True,
    per_axis=False,
)
def measure_misalignment(req: MeasureRequest) -> dict[str, MetricResult]:
    return misalignment_factors(
        req.texts,
        list(req.reference or []),
        axes=tuple(req.axes),
        encoder=req.encoder,
        n_resamples=req.n_resamples,
        seed=req.seed,
    )


# --------------------------------------------------------------------------- choosing families


def corpus_families() -> tuple[str, ...]:
    """Every family :func:`measure_corpus` can run, in registration order."""
    return METRIC_FAMILIES.names(corpus=True)


def default_families(has_reference: bool, exclude: Sequence[str] = ()) -> list[str]:
    """The families run when none are named: the default ones, those that need a reference
    only when there is one (``exclude``: left out, e.g. ``embedding`` for ``--no-embedding``)."""
    return [
        e.name
        for e in METRIC_FAMILIES.entries(corpus=True, default=True)
        if e.name not in exclude and (has_reference or not e.meta["needs_reference"])
    ]


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
    """The families to run (``None``: :func:`default_families`); unknown ones, or one that
    needs a reference without one, are a :class:`MeasureError` naming the valid families."""
    fams = list(families) if families else default_families(has_reference)
    known = corpus_families()
    bad = [f for f in fams if f not in known]
    if bad:
        raise MeasureError(
            f"unknown metric family {', '.join(map(repr, bad))}; choose from {', '.join(known)}"
        )
    for f in fams:
        if METRIC_FAMILIES.meta(f)["needs_reference"] and not has_reference:
            raise MeasureError(f"the {f} family needs a real reference corpus (--reference)")
    return fams


def measure_corpus(
    texts: Sequence[str],
    axes: Sequence[str] = ("gender",),
    reference: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    encoder: Encoder | None = None,
    rule_scorer: GenderRuleScorer | None = None,
    embedding_scorer: EmbeddingGenderScorer | None = None,
) -> dict[str, MetricResult]:
    """Measure ``texts`` on ``axes`` with the chosen metric families.

    Result keys are ``<family>.<axis>.<metric>`` (``rule.gender.stereotype_rate``,
    ``lexical.religion.representation_jsd``, ``embedding.gender.anchor_bias``,
    ``embedding.religion.anchor_spread`` (group-centroid anchors for non-gender axes),
    ``misalignment.distribution.mmd2`` …), families in registration order. With a ``reference``
    corpus, lexical representation is compared against it instead of the uniform distribution,
    and the misalignment family runs. ``rule_scorer`` / ``embedding_scorer``: an already built
    ``GenderRuleScorer`` (e.g. from a config's rule settings) / ``EmbeddingGenderScorer`` to use
    instead of the default ones. Names: :mod:`synthbias.measure.names`.
    """
    texts = list(texts)
    if not texts:
        raise MeasureError("no texts to measure")
    axes = check_axes(axes)
    fams = set(check_families(families, reference is not None))
    chosen = [e for e in METRIC_FAMILIES.entries(corpus=True) if e.name in fams]
    if embedding_scorer is not None and encoder is None:
        encoder = embedding_scorer.encoder
    if encoder is None and any(e.meta["needs_encoder"] for e in chosen):
        encoder = Encoder()
    req = MeasureRequest(
        texts=texts,
        axes=axes,
        reference=list(reference) if reference is not None else None,
        n_resamples=n_resamples,
        seed=seed,
        encoder=encoder,
        rule_scorer=rule_scorer,
        embedding_scorer=embedding_scorer,
    )
    out: dict[str, MetricResult] = {}
    for e in chosen:
        out.update({f"{e.name}.{k}": v for k, v in e.obj(req).items()})
    return out
