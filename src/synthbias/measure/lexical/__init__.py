"""Lexical bias metrics for any axis: who is mentioned, and next to which words.

Four families, each returning :class:`~synthbias.measure.result.MetricResult` objects named
``"<axis>.<metric>"``:

* **representation** — each group's share of the axis' group mentions, and how far that
  distribution is from a reference (uniform, given shares, or another corpus): total variation
  (``representation``), Jensen-Shannon divergence in bits (``representation_jsd``, in [0, 1])
  and KL(corpus || reference) in bits (``representation_kl``);
* **co-occurrence bias** (Bordia & Bowman, 2019) — for attribute words ``w``,
  ``bias(w) = ln(P(w|a) / P(w|b))`` from attribute-group co-occurrence counts in a window, with
  add-k smoothing; the corpus score is the mean ``|bias(w)|`` (``cooccurrence_bias``) and the
  signed mean (``cooccurrence_bias_signed``);
* **stereotype rate** — among texts where an associated attribute co-occurs with a group mention,
  the share where it co-occurs with the group it is stereotypically associated with;
* **intersections** — representation of (group of axis A, group of axis B) pairs co-mentioned in
  a text, against independence of the two axes.

Every CI is a percentile bootstrap over texts. Metrics here are ratios of corpus-wide sums
(shares, smoothed probabilities), so :func:`synthbias.stats.sums.resampled_sums` resamples texts
and recomputes the sums for all resamples at once (identical rows pooled, multinomial counts
over them): the ordinary nonparametric bootstrap, vectorised.

One module per family: :mod:`.representation`, :mod:`.cooccurrence`, :mod:`.stereotype`,
:mod:`.intersections`; :mod:`.pairs` counts the attribute-group pairs the middle two share,
:mod:`.common` resolves axes and groups, :mod:`.combined` runs everything that applies.

Stereotype associations (group -> attribute words) are data: the ``associations`` key of an axis
file, or passed by the caller; gender uses its occupation statistics (male-/female-coded). The
shipped non-gender axes define none, so their co-occurrence and stereotype metrics run only
when the caller passes attributes / associations.

Matching is lexical and whole-word (the axis' compiled matcher): no coreference, no negation,
no word-sense disambiguation. Per-text values are noisy; corpus values are the point.
"""

from synthbias.measure.lexical.combined import measure_lexical
from synthbias.measure.lexical.common import (
    DEFAULT_GROUPS,
    AttributeSpec,
    Contrast,
    ReferenceSpec,
    Window,
    as_text_list,
    resolve_axis,
    resolve_groups,
)
from synthbias.measure.lexical.cooccurrence import cooccurrence_bias
from synthbias.measure.lexical.intersections import intersection_representation
from synthbias.measure.lexical.pairs import axis_associations
from synthbias.measure.lexical.representation import group_representation
from synthbias.measure.lexical.stereotype import stereotype_rate
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.divergence import js_divergence, kl_divergence
from synthbias.stats.sums import resampled_sums, sums_ci

__all__ = [
    "DEFAULT_GROUPS",
    "AttributeSpec",
    "Contrast",
    "ReferenceSpec",
    "Window",
    "as_text_list",
    "axis_associations",
    "cooccurrence_bias",
    "group_representation",
    "intersection_representation",
    "js_divergence",
    "kl_divergence",
    "measure_lexical",
    "percentile_ci",
    "resampled_sums",
    "resolve_axis",
    "resolve_groups",
    "stereotype_rate",
    "sums_ci",
]
