"""Metric names: one name per metric, ``<family>.<axis>.<metric>``, the old names' aliases, and
what a metric's sign means (:class:`Orientation`).

Every run kind (equilibrium, measure, audit, inheritance, mitigation, forecast) writes a metric
under the same name: ``rule.gender.stereotype_rate``, ``embedding.gender.anchor_bias``,
``lexical.religion.representation_jsd`` … (a family, the axis it measures, the metric). Metrics
that are not about one axis of one corpus keep their two-part names (``generation.off_topic_share``,
``misalignment.distribution.mmd2`` has its factor in the axis place).

Up to 0.1.0 the equilibrium study wrote the gender rule and embedding metrics without the axis
(``rule.stereotype_rate``). Those names are accepted for one release wherever a user gives a metric
name (config fields, audit budgets, report selectors) and in results files read back; a name given
by a user resolves with a :class:`DeprecationWarning` and a one-line message on stderr.

Which families exist, and which of them name an axis, is in the registry
(:data:`synthbias.core.registry.METRIC_FAMILIES`); each family registers the orientation of its
metrics there, next to the code that computes them.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from synthbias.core.registry import METRIC_FAMILIES

#: Old name -> canonical name. Accepted for one release after 0.1.0.
ALIASES: dict[str, str] = {
    "rule.stereotype_rate": "rule.gender.stereotype_rate",
    "rule.signed_bias": "rule.gender.signed_bias",
    "rule.gendered_term_imbalance": "rule.gender.gendered_term_imbalance",
    "embedding.mean_abs_projection": "embedding.gender.mean_abs_projection",
    "embedding.mean_projection": "embedding.gender.mean_projection",
    "embedding.anchor_bias": "embedding.gender.anchor_bias",
    # the LoRA pronoun probe (measure.probes); "downstream" now names the ten tasks only
    "downstream.pronoun_preference": "probe.gender.pronoun_preference",
    "downstream.stereotype_win_rate": "probe.gender.stereotype_win_rate",
    "downstream.classifier_stereotype_rate": "probe.gender.classifier_stereotype_rate",
}

V = TypeVar("V")
_told: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Orientation:
    """How a metric's raw value maps onto "positive = more bias in the stereotyped direction".

    ``sign`` +1 keeps the raw sign, -1 flips it, 0 follows the lean of the baseline (for group
    leans such as a male-positive term imbalance: positive = towards the baseline's majority
    group); ``neutral`` is the raw value of no bias (0.5 for a rate of choosing the stereotype).
    """

    sign: int
    neutral: float = 0.0
    meaning: str = "towards the stereotype"


#: Higher is more stereotyped.
STEREO = Orientation(1)
#: A share of stereotypical choices: higher is more stereotyped, 0.5 is no lean.
STEREO_SHARE = Orientation(1, neutral=0.5)
#: A signed lean between groups: positive = towards the baseline's majority group.
MAJORITY = Orientation(0, meaning="towards the baseline's majority group")
#: An unsigned distance from parity.
MAGNITUDE = Orientation(1, meaning="away from parity (unsigned)")


def axis_families() -> tuple[str, ...]:
    """Families whose metrics are per axis (``family.axis.metric``), as registered."""
    return METRIC_FAMILIES.names(per_axis=True)


def is_canonical(name: str) -> bool:
    """Whether ``name`` follows the naming rule: not an old alias, and a per-axis family's
    metric has its axis (``rule.gender.stereotype_rate``, not ``rule.stereotype_rate``)."""
    parts = name.split(".")
    return name not in ALIASES and (parts[0] not in axis_families() or len(parts) >= 3)


def canonical(name: str, where: str = "metric") -> str:
    """The canonical name of ``name``; an old alias resolves with a deprecation message naming
    ``where`` (the config field or option it came from)."""
    new = ALIASES.get(name)
    if new is None:
        return name
    msg = f"{where}: metric name {name!r} is deprecated, use {new!r}"
    warnings.warn(msg, DeprecationWarning, stacklevel=2)
    if (where, name) not in _told:  # once per process: a value may be validated twice
        _told.add((where, name))
        print(f"synthbias: {msg}", file=sys.stderr)
    return new


def canonical_keys(metrics: Mapping[str, V]) -> dict[str, V]:
    """``metrics`` with old keys renamed (silently: for results files written before the rename).
    Where a file has both an old and a canonical key, the canonical one wins."""
    out: dict[str, V] = {}
    for name, value in metrics.items():
        new = ALIASES.get(name, name)
        if new != name and new in metrics:
            continue
        out[new] = value
    return out


def canonical_results(results: dict[str, Any]) -> dict[str, Any]:
    """An equilibrium ``results.json`` payload with its metric names canonical, in place:
    ``fit_metric``, ``headline_metrics`` and every generation's ``metrics`` / ``pct_change``."""
    if isinstance(results.get("fit_metric"), str):
        results["fit_metric"] = ALIASES.get(results["fit_metric"], results["fit_metric"])
    if isinstance(results.get("headline_metrics"), list):
        names = [ALIASES.get(n, n) for n in results["headline_metrics"]]
        results["headline_metrics"] = list(dict.fromkeys(names))
    for lv in results.get("levels") or []:
        for g in lv.get("generations") or []:
            for key in ("metrics", "pct_change"):
                if isinstance(g.get(key), dict):
                    g[key] = canonical_keys(g[key])
    return results
