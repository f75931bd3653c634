"""One result type for every metric, in the spirit of fairlearn's ``MetricFrame``.

A metric is an overall value plus its disaggregation by group, with a bootstrap 95% CI and the
per-sample scores behind it, so any number in a report can be traced to the texts that made it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthbias.stats.bootstrap import (
    CI,
    bootstrap_ci,
    percentile_ci,
    percentile_interval,
    two_sample_ci,
)


@dataclass
class MetricResult:
    """A metric's value with uncertainty, disaggregated by group.

    ``per_sample`` holds one score per input unit (text or pair), in input order; ``per_group`` the
    value restricted to each group. ``difference`` and ``ratio`` are max−min and min/max over
    groups (fairlearn's between-group conventions).
    """

    name: str
    value: float
    ci: CI | None = None
    per_group: dict[str, float] = field(default_factory=dict)
    per_sample: list[float] = field(default_factory=list)
    n: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def difference(self) -> float | None:
        vals = [v for v in self.per_group.values() if not math.isnan(v)]
        return float(max(vals) - min(vals)) if len(vals) >= 2 else None

    @property
    def ratio(self) -> float | None:
        vals = [v for v in self.per_group.values() if not math.isnan(v)]
        if len(vals) < 2 or max(vals) == 0:
            return None
        return float(min(vals) / max(vals))

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "value": _clean(self.value),
            "ci": self.ci.to_dict() if self.ci else None,
            "per_group": {k: _clean(v) for k, v in self.per_group.items()},
            "difference": _clean(self.difference),
            "ratio": _clean(self.ratio),
            "n": self.n,
            "meta": self.meta,
        }
        if include_samples:
            out["per_sample"] = [_clean(v) for v in self.per_sample]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricResult:
        """Inverse of ``to_dict(include_samples=True)`` (``None`` reads back as NaN)."""

        def num(v: Any) -> float:
            return float("nan") if v is None else float(v)

        ci = d.get("ci")
        return cls(
            name=d["name"],
            value=num(d.get("value")),
            ci=CI(num(ci["low"]), num(ci["high"]), float(ci.get("level", 0.95))) if ci else None,
            per_group={k: num(v) for k, v in (d.get("per_group") or {}).items()},
            per_sample=[num(v) for v in d.get("per_sample") or []],
            n=int(d.get("n", 0)),
            meta=dict(d.get("meta") or {}),
        )

    def to_json(self, include_samples: bool = False) -> str:
        return json.dumps(self.to_dict(include_samples), indent=2)

    def to_frame(self):
        """Per-group table as a pandas DataFrame (overall row first)."""
        import pandas as pd

        rows = [{"group": "overall", "value": self.value}]
        rows += [{"group": g, "value": v} for g, v in self.per_group.items()]
        df = pd.DataFrame(rows)
        df.insert(0, "metric", self.name)
        if self.ci:
            df.loc[0, "ci_low"], df.loc[0, "ci_high"] = self.ci.low, self.ci.high
        return df


def _clean(v: float | None) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


# the interval helpers live in synthbias.stats.bootstrap; MetricResult's CI type is re-exported
# so a metric and its interval come from one import
__all__ = [
    "CI",
    "MetricResult",
    "bootstrap_ci",
    "percentile_ci",
    "percentile_interval",
    "two_sample_ci",
]
