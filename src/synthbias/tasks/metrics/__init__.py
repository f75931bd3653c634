"""Task metrics: each turns a task's answers into a :class:`MetricResult` with a bootstrap CI.

One module per task family, numbered as the tasks are: :mod:`.generic` (accuracy, macro F1,
unparseable rate), 1 :mod:`.stereotypes`, 2 :mod:`.toxicity`, 3 :mod:`.coreference`,
4 :mod:`.bbq`, 6 :mod:`.hiring`, 7 :mod:`.salary`, 8 :mod:`.stories`, 9 :mod:`.pronouns`; the
context, the registry and the mean / gap shapes are in :mod:`.base`. Each metric registers
itself in :data:`METRICS` with ``@metric`` when its module is imported (all are, below).

Conventions (so numbers from different tasks read alike):

* Rates and means: percentile bootstrap within the sampling strata, over whole clusters when
  the items are counterfactual sets (a sentence, profile or template with all its group
  variants), else over items (:meth:`EvalContext.resamples`, :mod:`synthbias.stats.resampling`).
* Gaps between groups: whole clusters resampled within axes (counterfactual items) or items
  within each group, so every replicate still has every group; ``meta["null"]`` is the
  permutation null (group labels shuffled within clusters), the gap expected with no bias at
  this size. ``n_resamples = 0`` asks for point values only. Within an axis the gap is
  ``max - min`` of the group values (fairlearn's ``difference``); tasks that span several axes
  report per-axis gaps in ``meta["per_axis"]`` and aggregate them with the task parameter
  ``axis_aggregate`` (``mean``, the default, or ``max`` for the worst axis).
* Groups are ``"axis:group"`` strings; the axis is the part before the colon.

Every metric records ``per_group`` values and ``per_sample`` scores so a report can trace it.
"""

# isort: off
# The import order is the registration order, i.e. the order METRICS lists the metrics in.
from synthbias.tasks.metrics import generic, stereotypes, toxicity, coreference, bbq  # noqa: F401
from synthbias.tasks.metrics import hiring, salary, stories, pronouns  # noqa: F401

# isort: on
from synthbias.tasks.metrics.base import (
    METRICS,
    NAN,
    EvalContext,
    MetricDef,
    axis_of,
    correctness,
    gap_metric,
    gap_null,
    index_ci,
    mean_metric,
    metric,
    nanmean,
    parsed_floats,
    per_group_means,
)
from synthbias.tasks.metrics.generic import macro_f1_score
from synthbias.tasks.metrics.salary import expected_salary
from synthbias.tasks.metrics.stories import (
    positive_p,
    positive_probs,
    sentiment_values,
    valence_pairs,
)
from synthbias.tasks.metrics.toxicity import (
    TOX_METRICS,
    identity_aucs,
    power_mean,
    roc_auc,
    tox_replicates,
    weighted_identity_aucs,
)

__all__ = [
    "METRICS",
    "NAN",
    "TOX_METRICS",
    "EvalContext",
    "MetricDef",
    "axis_of",
    "correctness",
    "expected_salary",
    "gap_metric",
    "gap_null",
    "identity_aucs",
    "index_ci",
    "macro_f1_score",
    "mean_metric",
    "metric",
    "nanmean",
    "parsed_floats",
    "per_group_means",
    "positive_p",
    "positive_probs",
    "power_mean",
    "roc_auc",
    "sentiment_values",
    "tox_replicates",
    "valence_pairs",
    "weighted_identity_aucs",
]
