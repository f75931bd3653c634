"""Which misalignment factor tracks downstream harm, without the bias ratio doing the work.

Every misalignment factor compares a training mix with the real data, so it grows with the share
of augmented data by construction, and the real-only model sits at (0, 0). Correlating factors
with harm across ratios therefore mostly measures the ratio. Here the association is computed

* **at a fixed ratio**, across the design's points that differ in bias type, strength and arm
  (bias vs control), where the augmented share is the same for every point; and
* **pooled** over the ratios with the ratio partialled out (ranks taken and centred within each
  ratio, so only within-ratio variation counts: a stratified Spearman correlation),

never including the r = 0 anchor. Each association comes with its number of points and a
bootstrap CI over **units** (bias type x arm x seed): a unit's training sets at the several
ratios share its augmented set and seeds (nested mixes), so resampling points would count each
unit once per ratio and inflate n. The pooled scope therefore draws units with all their points;
at a fixed ratio each unit is one point. Below ``min_points`` independent units (pooled: also
points minus one per ratio) the association is not computed and the row says the design has too
few points to tell.

Harm per point is the mean, over the bias-related tasks, of the bias metric's change from the
real-only model of the same seed, each task's changes divided by their standard deviation across
points so tasks on different scales weigh alike (positive = more bias).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthbias.measure.result import percentile_ci
from synthbias.report.html import fmt_signed
from synthbias.stats.correlation import partial_spearman, spearman

#: A point of the design: (bias type, arm, ratio, seed).
Point = tuple[str, str, float, int]


def downstream_harm(table: list[dict[str, Any]], tasks: Sequence[Any]) -> list[dict[str, Any]]:
    """Per (bias type, arm, ratio, seed, task): change of the task's metrics from the r = 0 model.

    ``bias_delta`` is the bias metric minus its value for the real-only model of the same bias
    type and seed (positive = more bias inherited); ``performance_delta`` the same for the
    primary metric. Rows without an ``arm`` belong to the single arm ``"bias"``.
    """
    specs = {t.spec.name: t.spec for t in tasks}
    base: dict[tuple[str, int, str, str], float] = {}
    for r in table:
        if r["bias_type"] != "base" and r["ratio"] == 0:
            base[(r["bias_type"], r["seed"], r["task"], r["metric"])] = r["value"]
    out: dict[tuple[str, str, float, int, str], dict[str, Any]] = {}
    for r in table:
        if r["bias_type"] == "base" or r["task"] not in specs:
            continue
        spec = specs[r["task"]]
        ref = base.get((r["bias_type"], r["seed"], r["task"], r["metric"]))
        if ref is None:
            continue
        arm = r.get("arm") or "bias"
        k = (r["bias_type"], arm, r["ratio"], r["seed"], r["task"])
        row = out.setdefault(
            k,
            {
                "bias_type": k[0],
                "arm": arm,
                "ratio": k[2],
                "seed": k[3],
                "task": k[4],
                "bias_related": spec.bias_related,
            },
        )
        if r["metric"] == spec.bias_metric:
            row["bias_delta"] = r["value"] - ref
        if r["metric"] == spec.primary_metric:
            row["performance_delta"] = r["value"] - ref
    return list(out.values())


def harm_scores(harm: list[dict[str, Any]]) -> dict[Point, float]:
    """Per point (r > 0 only): mean standardised bias delta over the bias-related tasks."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for h in harm:
        d = h.get("bias_delta")
        if h.get("bias_related") and d is not None and not math.isnan(d) and h["ratio"] > 0:
            by_task.setdefault(h["task"], []).append(h)
    scores: dict[Point, list[float]] = {}
    for rows in by_task.values():
        d = np.array([r["bias_delta"] for r in rows])
        sd = d.std() or 1.0
        for r, v in zip(rows, d / sd, strict=True):
            key = (r["bias_type"], r.get("arm") or "bias", float(r["ratio"]), r["seed"])
            scores.setdefault(key, []).append(float(v))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def factor_attribution(
    harm: Mapping[Point, float],
    factors: Mapping[Point, Mapping[str, Any]],
    excluded: Mapping[str, str] | None = None,
    min_points: int = 6,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Association of each factor's magnitude with harm, per fixed ratio and pooled.

    ``harm`` maps points to harm scores (:func:`harm_scores`), ``factors`` points to
    ``{factor: {"value": ...}}``; points with r = 0 are dropped. ``excluded`` names factors left
    out, with the reason (e.g. co-occurrence when the real data names no occupations). Rows:
    ``factor``, ``scope`` (``ratio=r`` or ``pooled (ratio partialled out)``), ``n_points``,
    ``association``, ``ci_low``/``ci_high`` (None when too few points), ``informative`` (CI
    excludes 0) and ``note``.
    """
    excluded = dict(excluded or {})
    points = sorted(k for k in harm if k in factors and k[2] > 0)
    names = sorted({f for k in points for f in factors[k]} - set(excluded))
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for name in names:
        pts = [k for k in points if (factors[k].get(name) or {}).get("value") is not None]
        x = np.array([abs(float(factors[k][name]["value"])) for k in pts])
        y = np.array([harm[k] for k in pts])
        r = np.array([k[2] for k in pts])
        units = np.unique([f"{k[0]}|{k[1]}|{k[3]}" for k in pts], return_inverse=True)[1]
        scopes: list[tuple[str, np.ndarray]] = [
            (f"ratio={v:g}", np.flatnonzero(r == v)) for v in sorted(set(r))
        ]
        scopes.append(("pooled (ratio partialled out)", np.arange(len(pts))))
        for scope, idx in scopes:
            out.append(
                _association(
                    name,
                    scope,
                    (x[idx], y[idx], r[idx], units[idx]),
                    min_points,
                    n_resamples,
                    level,
                    rng,
                )
            )
    for name, reason in sorted(excluded.items()):
        out.append(
            {
                "factor": name,
                "scope": "left out",
                "n_points": 0,
                "association": None,
                "ci_low": None,
                "ci_high": None,
                "informative": False,
                "note": reason,
            }
        )
    return out


def _unit_draw(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Point indices of a bootstrap draw of units (each drawn unit brings all its points)."""
    return np.concatenate([groups[j] for j in rng.integers(0, len(groups), len(groups))])


def _association(
    name: str,
    scope: str,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    min_points: int,
    n_resamples: int,
    level: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """One association: ``data`` = (factor, harm, ratio, unit label) per point; the CI
    resamples units (see the module docstring)."""
    x, y, strata, units = data
    pooled = scope.startswith("pooled")
    n_units = len(np.unique(units))
    row: dict[str, Any] = {"factor": name, "scope": scope, "n_points": len(x), "n_units": n_units}
    # within-ratio variation is what a pooled association can use: n minus one per ratio, and
    # never more than the independent units behind the points
    df = min(len(x) - len(np.unique(strata)), n_units) if pooled else n_units
    if df < min_points:
        return row | {
            "association": None,
            "ci_low": None,
            "ci_high": None,
            "informative": False,
            "note": f"too few points to tell: {len(x)} points"
            + (f" from {n_units} units over {len(np.unique(strata))} ratios" if pooled else "")
            + f", {min_points} independent ones needed",
        }

    def stat(i: np.ndarray) -> float:
        return partial_spearman(x[i], y[i], strata[i]) if pooled else spearman(x[i], y[i])

    value = stat(np.arange(len(x)))
    groups = [np.flatnonzero(units == u) for u in np.unique(units)]
    boots = np.empty(n_resamples)
    for k in range(n_resamples):
        boots[k] = stat(_unit_draw(groups, rng))
    ci = percentile_ci(boots, level)
    finite = not (math.isnan(value) or math.isnan(ci.low))
    note = "" if finite else "no variation in the factor or the harm at these points"
    return row | {
        "association": None if math.isnan(value) else value,
        "ci_low": None if math.isnan(ci.low) else ci.low,
        "ci_high": None if math.isnan(ci.high) else ci.high,
        "informative": bool(finite and (ci.low > 0 or ci.high < 0)),
        "note": note or ("CI excludes 0" if ci.low > 0 or ci.high < 0 else "CI includes 0"),
    }


def legacy_correlations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pooled rows in the older ``correlations`` shape (factor, spearman, CI, n_points)."""
    return [
        {
            "factor": r["factor"],
            "spearman": r["association"] if r["association"] is not None else math.nan,
            "ci_low": r["ci_low"] if r["ci_low"] is not None else math.nan,
            "ci_high": r["ci_high"] if r["ci_high"] is not None else math.nan,
            "n_points": r["n_points"],
            "note": r["note"],
        }
        for r in rows
        if r["scope"].startswith("pooled") or r["scope"] == "left out"
    ]


def _ci(lo: Any, hi: Any) -> str:
    return "[n/a]" if lo is None or hi is None else f"[{fmt_signed(lo)}, {fmt_signed(hi)}]"


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """Plain-text summary of the design's answers: carried table, dose-response, arm effects
    and factor attribution (printed by the console after the task table)."""
    checks = results.get("augmentation_checks") or []
    lines = ["Augmentation (augmented − reference, 95% CI; fallback rung):"] if checks else []
    for c in checks:
        verdict = "carried" if c["carried"] else "NOT carried"
        if c["carried"] and c.get("carried_by_construction"):
            verdict = "carried (by construction: filter rung)"
        if c.get("requested_strength") == 0:
            verdict = "control (strength 0)"
        share = c.get("model_share")
        verdict += f"; vs {c.get('reference', 'real')}" + (
            f", model wrote {share:.0%}" if share is not None and share == share else ""
        )
        ci = c.get("ci") or {}
        lines.append(
            f"  {c['bias_type']:14s} {c.get('arm', ''):8s} {c['dimension']:15s} "
            f"{c['difference']:+.3f} {_ci(ci.get('low'), ci.get('high'))} "
            f"[{c.get('method', 'prompt')}] {verdict}"
        )
    dose = results.get("dose_response") or []
    if dose:
        lines.append("Dose-response (slope of measured bias on requested strength, 95% CI):")
        for d in dose:
            ci = d["slope_ci"]
            flag = "" if d["monotone"] else f"  NON-MONOTONE (drop {d['largest_drop']:.3f})"
            lines.append(
                f"  {d['bias_type']:14s} {d['dimension']:15s} slope {d['slope']:+.3f} "
                f"{_ci(ci['low'], ci['high'])} measured "
                f"{[round(v, 3) for v in d['measured']]}{flag}"
            )
    effects = results.get("arm_effects") or []
    if effects:
        lines.append(
            "Downstream bias change (arm − reference, same items and seeds; paired 95% CI, "
            "smallest detectable change):"
        )
        for e in effects:
            lo, hi = e["ci_low"], e["ci_high"]
            finite = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
            mde = e.get("min_detectable_effect")
            lines.append(
                f"  {e['bias_type']:14s} {e['arm']:8s} r={e['ratio']:g} {e['task']:24s} "
                f"vs {e['reference']:9s} {fmt_signed(e['delta'])} "
                f"{_ci(lo, hi) if finite else '[n/a]'}"
                + (f" mde {fmt_signed(mde)[1:]}" if finite and mde is not None else "")
                + ("" if e.get("covers_zero", True) else "  detected")
            )
    attribution = results.get("attribution") or []
    if attribution:
        lines.append(
            "Factor vs harm (Spearman; r = 0 excluded; fixed ratio / ratio partialled out):"
        )
        for a in attribution:
            val = "—" if a["association"] is None else f"{a['association']:+.2f}"
            lines.append(
                f"  {a['factor']:28s} {a['scope']:30s} n={a['n_points']:<3d} {val} "
                f"{_ci(a['ci_low'], a['ci_high'])}  {a['note']}"
            )
    return lines
