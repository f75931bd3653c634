"""Metric families; every metric returns a MetricResult (value, CI, per-group, per-sample)."""

from synthbias.measure.result import CI, MetricResult, bootstrap_ci

__all__ = ["CI", "MetricResult", "bootstrap_ci"]
