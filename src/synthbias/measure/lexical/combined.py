"""Every lexical metric that applies, per axis, in one call (one scan of the texts per axis
serves both the co-occurrence bias and the stereotype rate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from synthbias.lexicon import Lexicon, load_lexicon
from synthbias.measure.lexical.common import (
    AttributeSpec,
    ReferenceSpec,
    Window,
    as_text_list,
    group_counts,
    resolve_groups,
)
from synthbias.measure.lexical.cooccurrence import cooccurrence_metrics, resolve_contrasts
from synthbias.measure.lexical.intersections import intersection_representation
from synthbias.measure.lexical.pairs import axis_associations, count_pairs, norm_attributes
from synthbias.measure.lexical.representation import (
    representation_from_counts,
    resolve_reference,
)
from synthbias.measure.lexical.stereotype import association_spec, stereotype_from_pairs
from synthbias.measure.result import MetricResult


def measure_lexical(
    texts: Sequence[str],
    axes: Sequence[str] | None = None,
    reference: Sequence[str] | Mapping[str, Mapping[str, float] | str] | None = None,
    *,
    attributes: Mapping[str, AttributeSpec] | None = None,
    associations: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    intersections: Sequence[tuple[str, str]] = (),
    window: Window = "sentence",
    smoothing: float = 1.0,
    min_count: int = 1,
    intersection_min_count: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Every lexical metric that applies, per axis: ``{"gender.representation_jsd": ..., ...}``.

    Per axis (default: all of the lexicon's): ``representation``, ``representation_jsd``,
    ``representation_kl``; ``cooccurrence_bias`` and ``cooccurrence_bias_signed`` when the axis
    has attributes (``attributes[axis]``, else its associations; occupations for gender);
    ``stereotype_rate`` when it has associations (``associations[axis]`` or the axis file's).
    ``reference``: ``None`` (uniform), another corpus (texts, used for every axis), or a
    mapping axis -> ({group: weight} or "uniform"). ``intersections``: axis pairs, reported as
    ``"<a>+<b>.intersection"``.
    """
    lex = lexicon if lexicon is not None else load_lexicon()
    texts = as_text_list(texts)
    names = list(axes) if axes is not None else lex.axes
    axes_ = [lex.axis(a) for a in names]  # unknown names fail before any work
    if isinstance(reference, Mapping):
        unknown = [k for k in reference if k not in lex]
        if unknown:
            raise KeyError(
                f"reference must map axis -> shares; {unknown} are not axes (valid axes: "
                f"{', '.join(sorted(lex.axes))})"
            )
    elif reference is not None:
        reference = as_text_list(reference)
    out: dict[str, MetricResult] = {}
    for ax in axes_:
        gs = resolve_groups(ax, None)
        ref_spec: ReferenceSpec
        if isinstance(reference, Mapping):
            ref_spec = reference.get(ax.name)
        else:
            ref_spec = reference
        ref = resolve_reference(ax, gs, ref_spec, lex)
        counts = group_counts(texts, ax, gs)
        out.update(representation_from_counts(counts, ax.name, gs, ref, n_resamples, seed, level))
        given_attrs = (attributes or {}).get(ax.name)
        given_assoc = (associations or {}).get(ax.name)
        default = axis_associations(ax)
        if given_attrs is not None:
            attrs = norm_attributes(given_attrs)
        elif given_assoc is not None:
            attrs = association_spec(ax, given_assoc, None)[0]
        else:
            attrs = default[0] if default else None
        data = None
        if attrs is not None and len(gs) >= 2:
            data = count_pairs(texts, ax, attrs, window)
            contrasts = resolve_contrasts(gs, "auto", None)
            args = (window, smoothing, min_count, n_resamples, seed, level)
            out.update(cooccurrence_metrics(data, ax.name, gs, contrasts, *args))
        if given_assoc is not None or (default is not None and default[1]):
            s_attrs, s_assoc = association_spec(ax, given_assoc, given_attrs)
            if data is not None and attrs and all(attrs.get(k) == v for k, v in s_attrs.items()):
                s_data = data.restrict(list(s_attrs))  # same forms: reuse the scan
            else:
                s_data = count_pairs(texts, ax, s_attrs, window)
            res = stereotype_from_pairs(s_data, ax.name, s_assoc, window, n_resamples, seed, level)
            out[res.name] = res
    for a, b in intersections:
        res = intersection_representation(
            texts,
            a,
            b,
            min_count=intersection_min_count,
            n_resamples=n_resamples,
            seed=seed,
            level=level,
            lexicon=lex,
        )
        out[res.name] = res
    return out
