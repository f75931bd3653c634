"""Metric families; every metric returns a MetricResult (value, CI, per-group, per-sample).

The corpus families register in :data:`synthbias.core.registry.METRIC_FAMILIES` when
:mod:`synthbias.measure.api` is imported (not here: ``import synthbias.measure`` stays light).
"""

from synthbias.measure.result import CI, MetricResult, bootstrap_ci

__all__ = ["CI", "MetricResult", "bootstrap_ci"]
