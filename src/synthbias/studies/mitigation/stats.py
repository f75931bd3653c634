"""Statistics of the mitigation study: oriented metrics, paired bootstraps, reductions, flags.

Why a module of its own: every comparison in the study must (a) read each bias metric in one
orientation (positive = towards the stereotype, or towards the majority group where a metric
has no stereotype direction; each metric family registers its metrics' orientations with it),
(b) take its interval from a resampling that matches the design (a *paired* bootstrap over
probes and seeds when two models answer the same probes; independent resamples when two
corpora hold different texts), and (c) pool levels by averaging bootstrap replicates, never CI
bounds. The task engineers' paired bootstrap for task metrics lives in
``synthbias.tasks``; this is the study's own small one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.core.registry import METRIC_FAMILIES
from synthbias.measure.names import MAGNITUDE, MAJORITY, STEREO, Orientation
from synthbias.measure.result import percentile_interval

Z_ALPHA, Z_POWER = 1.959964, 0.841621  # two-sided 5% level, 80% power

__all__ = ["MAGNITUDE", "MAJORITY", "STEREO", "Orientation", "orientation", "orientation_table"]


def orientation_table() -> dict[str, Orientation]:
    """Orientation of every metric the study can compare: what each metric family registered
    (:data:`~synthbias.core.registry.METRIC_FAMILIES`, ``orientations``), task bias metrics by
    the name after the task (``bias.s_amb``)."""
    return {m: o for e in METRIC_FAMILIES.entries() for m, o in e.meta["orientations"].items()}


def orientation(metric: str) -> Orientation:
    """The orientation of ``metric`` (``family.name`` or ``task.bias.name``); unknown: error.

    Group gaps (``*_gap``) and AUC shortfalls (``*_shortfall``) are unsigned magnitudes.
    """
    table = orientation_table()
    if metric in table:
        return table[metric]
    i = metric.find("bias.")
    tail = metric[i:] if i >= 0 else metric
    tail = tail.split("[", 1)[0]  # per-axis rows: bias.x_gap[gender]
    if tail in table:
        return table[tail]
    if tail.endswith(("_gap", "_shortfall")):
        return MAGNITUDE
    raise KeyError(
        f"metric {metric!r} has no orientation; register it with its metric family "
        "(synthbias.core.registry.METRIC_FAMILIES, orientations=...)"
    )


def oriented(metric: str, values: Any, baseline_value: float) -> np.ndarray:
    """``values`` in the metric's oriented scale (positive = more bias; 0 = neutral)."""
    o = orientation(metric)
    x = np.asarray(values, dtype=float) - o.neutral
    sign = o.sign
    if sign == 0:
        sign = -1 if baseline_value - o.neutral < 0 else 1
    return sign * x


def compare(
    b: float, m: float, b_reps: np.ndarray, m_reps: np.ndarray, level: float = 0.95
) -> dict[str, Any]:
    """Baseline, mitigated, their difference and the relative reduction, each with a CI.

    All values are oriented (positive = more bias). ``reduction = (b - m) / b`` (1: bias removed,
    0: no change, < 0: more bias) is defined only when the baseline's CI excludes 0; otherwise it
    is NaN with ``reduction_status = "undefined"`` and the difference ``m - b`` is the figure.
    """
    blo, bhi = percentile_interval(b_reps, level)
    mlo, mhi = percentile_interval(m_reps, level)
    dlo, dhi = percentile_interval(m_reps - b_reps, level)
    out: dict[str, Any] = {
        "baseline": b,
        "baseline_ci_low": blo,
        "baseline_ci_high": bhi,
        "mitigated": m,
        "mitigated_ci_low": mlo,
        "mitigated_ci_high": mhi,
        "difference": m - b,
        "difference_ci_low": dlo,
        "difference_ci_high": dhi,
        # power: the smallest change this design detects with 80% power at alpha 0.05, from
        # the bootstrap SE of the difference (CI width / 2 z)
        "detectable_change": (Z_ALPHA + Z_POWER) * (dhi - dlo) / (2 * Z_ALPHA),
    }
    if blo > 0 or bhi < 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            red = (b_reps - m_reps) / b_reps
        rlo, rhi = percentile_interval(red, level)
        out |= {
            "reduction": (b - m) / b,
            "reduction_ci_low": rlo,
            "reduction_ci_high": rhi,
            "reduction_status": "defined",
        }
    else:
        out |= {
            "reduction": math.nan,
            "reduction_ci_low": math.nan,
            "reduction_ci_high": math.nan,
            "reduction_status": "undefined (baseline CI includes 0; the difference is the figure)",
        }
    return out


def pooled(
    reps: Sequence[tuple[float, float, np.ndarray, np.ndarray]], level: float = 0.95
) -> dict[str, Any]:
    """:func:`compare` of the mean over levels, from replicate-wise means (not mean CI bounds).

    Each entry is ``(b, m, b_reps, m_reps)`` of one level, all with the same number of
    resamples; levels are independent experiments, so averaging their replicates index-wise is
    a bootstrap of the averaged statistic.
    """
    if not reps:
        raise ValueError("nothing to pool")
    b = float(np.mean([r[0] for r in reps]))
    m = float(np.mean([r[1] for r in reps]))
    br = np.mean([r[2] for r in reps], axis=0)
    mr = np.mean([r[3] for r in reps], axis=0)
    out = compare(b, m, br, mr, level)
    # legacy summary keys (report tables): the reduction and its CI, NaN where undefined
    return out | {
        "ci_low": out["reduction_ci_low"],
        "ci_high": out["reduction_ci_high"],
        "n": len(reps),
    }


def added_reduction(
    b: float,
    m: float,
    u: float,
    b_reps: np.ndarray,
    m_reps: np.ndarray,
    u_reps: np.ndarray,
    level: float = 0.95,
) -> dict[str, Any]:
    """The reduction of what the data did: ``(b - m) / (b - u)`` for ``u`` the untuned model.

    :func:`compare`'s ``reduction = (b - m) / b`` divides by the baseline-trained model's whole
    bias, which includes the untuned model's own (no data edit created it, none can remove it).
    Here the denominator is what training on the baseline data added, ``b - u``; it is defined
    only when that addition's CI (same paired replicates) excludes 0. All values oriented.
    """
    a, a_reps = b - u, b_reps - u_reps
    alo, ahi = percentile_interval(a_reps, level)
    out: dict[str, Any] = {
        "added_by_baseline_data": a,
        "added_by_baseline_data_ci_low": alo,
        "added_by_baseline_data_ci_high": ahi,
    }
    if alo > 0 or ahi < 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            red = (b_reps - m_reps) / a_reps
        rlo, rhi = percentile_interval(red, level)
        return out | {
            "reduction_of_added": (b - m) / a,
            "reduction_of_added_ci_low": rlo,
            "reduction_of_added_ci_high": rhi,
            "reduction_of_added_status": "defined",
        }
    return out | {
        "reduction_of_added": math.nan,
        "reduction_of_added_ci_low": math.nan,
        "reduction_of_added_ci_high": math.nan,
        "reduction_of_added_status": "undefined (training on the baseline data added no "
        "measurable bias over the untuned model; the difference is the figure)",
    }


# --------------------------------------------------------------------------- divergence


def divergence_flags(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (pipeline, strategy): oriented metrics whose changes point in opposite directions.

    Every row is oriented (see :func:`oriented`), so "the change is negative" means the same
    thing for every metric. A strategy is flagged only when one metric's difference CI lies
    wholly above 0 and another's wholly below 0; changes whose CI includes 0 are not a direction.
    """
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("family") == "control_cost":
            continue
        by.setdefault((r["pipeline"], r["strategy"]), []).append(r)
    flags = []
    for (pipe, strat), ms in by.items():
        up = [r for r in ms if r["difference_ci_low"] > 0]
        down = [r for r in ms if r["difference_ci_high"] < 0]
        if not (up and down):
            continue
        detail = ", ".join(
            f"{r['metric']} {r['difference']:+.3g} "
            f"[{r['difference_ci_low']:+.3g}, {r['difference_ci_high']:+.3g}]"
            for r in (*down, *up)
        )
        flags.append(
            {
                "pipeline": pipe,
                "strategy": strat,
                "flag": "disagree",
                "message": f"{pipe}/{strat}: oriented bias metrics move in opposite directions "
                f"(change, 95% CI): {detail}",
            }
        )
    return flags
