"""What the attribution run concludes: manipulation checks, effects on harm, the answer, and
the observational Spearman view.

Why apart from the runner: these are pure functions of the stored per-(arm, replicate) numbers,
so they are tested with simulated values and the runner only gathers those numbers.

* **Manipulation checks** (:func:`factor_checks`, :func:`arm_checks`): each factor's main effect
  on every misalignment measure (the same factorial estimator as the harm, over replicates). A
  factor passes when it raised one of its own measures (interval above 0) and lowered none, and
  moved no other factor's measure detectably (interval excluding 0) by more than
  ``leak_tolerance`` of that factor's own effect on it (or of its half-width, if larger). A
  factor that fails is reported and its effects are not attributed.
* **Effects on harm** (:func:`harm_effects`): per task, the main effects (and two-way
  interactions) of the three factors on the signed target − contrast bias metric, t over
  replicates, with the 80 %-power MDE; "detected" is Holm/BH-adjusted over the family of every
  task's main effects (interactions form a family of their own).
* **The answer** (:func:`answers`): one sentence per task.
* **Observational view** (:func:`spearman_view`): the inheritance study's factor-vs-harm Spearman
  table, computed per task over the (arm, replicate) units, bootstrap over units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from synthbias.stats.factorial import cell_label, factorial_table
from synthbias.stats.multiplicity import flag_family
from synthbias.stats.replicates import replicate_estimate
from synthbias.studies.attribution.config import FACTORS
from synthbias.studies.inheritance.attribution import factor_attribution

#: Plain names of the factors in sentences.
LABELS = {"values": "values", "group_data": "group data", "distribution": "distribution"}

#: (arm, replicate index) -> a number
Cells = Mapping[tuple[str, int], float]


def arm_names(design: np.ndarray) -> list[str]:
    """The arms of ``design`` (cells x factors, 0/1), named like ``v1-g0-d1``."""
    return [
        "-".join(f"{f[0]}{int(v)}" for f, v in zip(FACTORS, row, strict=True)) for row in design
    ]


def value_matrix(cells: Cells, arms: Sequence[str], n_replicates: int) -> np.ndarray:
    """(R, arms) of the per-(arm, replicate) numbers; NaN where one is missing."""
    return np.array(
        [[cells.get((a, r), np.nan) for a in arms] for r in range(n_replicates)], dtype=float
    )


# --------------------------------------------------------------------------- manipulation checks


def measure_effects(
    design: np.ndarray,
    measures: Mapping[str, Cells],
    n_replicates: int,
    level: float = 0.95,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{measure: {factor: effect row}}``: each factor's main effect on each measure."""
    arms = arm_names(design)
    out = {}
    for name, cells in measures.items():
        rows = factorial_table(
            design,
            value_matrix(cells, arms, n_replicates),
            list(FACTORS),
            interactions=False,
            level=level,
        )
        out[name] = {r["effect"]: r for r in rows}
    return out


def _excludes_zero(row: Mapping[str, Any]) -> bool:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return lo is not None and hi is not None and (lo > 0 or hi < 0)


def _leak(row: Mapping[str, Any], own: Mapping[str, Any], tolerance: float) -> bool:
    """A detectable move of a measure by more than ``tolerance`` of what its own factor does to
    it: its own effect, or its interval's half-width when that is larger (an owner that barely
    moves a measure does not turn every resolvable wiggle of it into a leak)."""
    lo, hi = own.get("ci_low"), own.get("ci_high")
    half = (hi - lo) / 2 if lo is not None and hi is not None else 0.0
    scale = max(abs(own.get("estimate") or 0.0), half)
    return _excludes_zero(row) and abs(row["estimate"]) > tolerance * scale


def factor_checks(
    effects: Mapping[str, Mapping[str, Mapping[str, Any]]],
    owners: Mapping[str, Sequence[str]],
    tolerance: float,
) -> list[dict[str, Any]]:
    """One verdict per factor: ``moved`` (its own measures, main effect and interval),
    ``leaks`` (other factors' measures it moved too much), ``passed`` and ``reasons``.

    A factor moved its misalignment when at least one of its own measures rose (interval above
    0) and none fell (interval below 0): the distribution factor has two (MMD², Fréchet), and
    MMD² at the median-heuristic bandwidth is the less sensitive one. ``owners`` maps each
    factor to its measure names; measures absent from ``effects`` (not computable at this
    size) count as not moved.
    """
    out = []
    for f in FACTORS:
        reasons, moved, leaks = [], [], []
        for m in owners[f]:
            row = (effects.get(m) or {}).get(f)
            if row is None or row.get("ci_low") is None:
                continue
            moved.append({"measure": m} | _brief(row))
            if row["ci_high"] < 0:
                reasons.append(f"moved {m} the wrong way (interval {_ci(row)})")
        if not any(r["ci_low"] > 0 for r in moved):
            shown = "; ".join(f"{r['measure']} {_ci(r)}" for r in moved) or "no interval"
            reasons.append(f"did not move its measures ({shown})")
        for g in FACTORS:
            if g == f:
                continue
            for m in owners[g]:
                row, own = (effects.get(m) or {}).get(f), (effects.get(m) or {}).get(g)
                if row is None or own is None:
                    continue
                if _leak(row, own, tolerance):
                    leaks.append({"measure": m, "owner": g} | _brief(row))
                    reasons.append(
                        f"leaked into {m} ({row['estimate']:+.4g} {_ci(row)}, more than "
                        f"{tolerance:.0%} of {LABELS[g]}'s own {own['estimate']:+.4g})"
                    )
        out.append(
            {
                "factor": f,
                "passed": not reasons,
                "moved": moved,
                "leaks": leaks,
                "reasons": reasons,
            }
        )
    return out


def _brief(row: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("estimate", "ci_low", "ci_high", "mde_80", "n_replicates", "status")
    return {k: row.get(k) for k in keys}


def _ci(row: Mapping[str, Any]) -> str:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return "[n/a]" if lo is None or hi is None else f"[{lo:+.4g}, {hi:+.4g}]"


def arm_checks(
    design: np.ndarray,
    measures: Mapping[str, Cells],
    owners: Mapping[str, Sequence[str]],
    effects: Mapping[str, Mapping[str, Mapping[str, Any]]],
    n_replicates: int,
    tolerance: float,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Per arm, each measure's mean over replicates (t-interval) and, in the full design, its
    paired change from the all-balanced arm ``v0-g0-d0``: each of the arm's high factors must
    have raised one of its measures (interval above 0) and lowered none, its low factors'
    measures must not have moved (a detectable change larger than ``tolerance`` of the
    factor's own main effect fails)."""
    arms = arm_names(design)
    ref = "v0-g0-d0" if "v0-g0-d0" in arms else None
    out = []
    for a, levels in zip(arms, design, strict=True):
        row: dict[str, Any] = {"arm": a, "cell": cell_label(levels), "measures": {}}
        reasons: list[str] = []
        for f, lv in zip(FACTORS, levels, strict=True):
            rose, fell = [], []
            for m in owners[f]:
                cells = measures.get(m) or {}
                vals = [cells.get((a, r), np.nan) for r in range(n_replicates)]
                entry = {"mean": _brief(replicate_estimate(vals, level=level).to_dict())}
                if ref is not None and a != ref:
                    diff = [v - cells.get((ref, r), np.nan) for r, v in enumerate(vals)]
                    d = _brief(replicate_estimate(diff, level=level).to_dict())
                    entry["vs_reference"] = d
                    own = (effects.get(m) or {}).get(f) or {}
                    if d["ci_low"] is not None:
                        rose += [m] if d["ci_low"] > 0 else []
                        fell += [f"{m} {_ci(d)}"] if d["ci_high"] < 0 else []
                    if not lv and _leak(d, own, tolerance):
                        reasons.append(f"{LABELS[f]} low but {m} moved {_ci(d)}")
                row["measures"][m] = entry
            if lv and ref is not None and a != ref and (not rose or fell):
                what = f"lowered {', '.join(fell)}" if fell else "raised none of its measures"
                reasons.append(f"{LABELS[f]} high but {what}")
        if ref is None:
            status = "n/a (fractional design: no one-factor neighbour; see the factor checks)"
        elif a == ref:
            status = "reference"
        else:
            status = "passed" if not reasons else "FAILED"
        out.append(row | {"status": status, "reasons": reasons})
    return out


# --------------------------------------------------------------------------- effects on harm


def harm_effects(
    design: np.ndarray,
    harm: Mapping[str, Cells],
    metrics: Mapping[str, str],
    checks: Sequence[Mapping[str, Any]],
    n_replicates: int,
    *,
    interactions: bool,
    adjust: str,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Every task's factorial effects on its signed bias metric, with adjusted flags.

    Rows: ``task``, ``metric``, ``effect``, ``kind``, the interval fields, ``p_adjusted``,
    ``detected`` (adjusted over the family: all tasks' main effects; interactions apart),
    ``family_size`` and ``attributed`` (False for a factor whose manipulation check failed, or an
    interaction involving one; its flag is then not a finding)."""
    passed = {c["factor"]: c["passed"] for c in checks}
    arms = arm_names(design)
    rows = []
    for task, cells in harm.items():
        table = factorial_table(
            design,
            value_matrix(cells, arms, n_replicates),
            list(FACTORS),
            interactions=interactions,
            level=level,
        )
        for r in table:
            ok = all(passed.get(f, False) for f in r["factors"])
            rows.append({"task": task, "metric": metrics[task], "attributed": ok} | r)
    out = []
    for kind, family in (
        ("main", f"main effects: {len(harm)} tasks x {len(FACTORS)} factors"),
        ("interaction", "two-way interactions over tasks"),
    ):
        part = [r for r in rows if r["kind"] == kind]
        if part:
            out += flag_family(part, method=adjust, family=family)  # type: ignore[arg-type]
    return out


def answers(effects: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per task: which factor moves its bias, by how much, with its interval; or
    that none does at this power, with the MDE of each factor."""
    failed = [LABELS[c["factor"]] for c in checks if not c["passed"]]
    out = []
    for task in dict.fromkeys(e["task"] for e in effects):
        mains = [e for e in effects if e["task"] == task and e["kind"] == "main"]
        head = f"{task} ({mains[0]['metric']}, + = towards the stereotype): "
        if not any(e["status"] == "replicated" for e in mains):
            r = mains[0]["n_replicates"]
            out.append(head + f"not replicated (R = {r} < 3): no interval, nothing attributed.")
            continue
        found = [e for e in mains if e["detected"] and e["attributed"]]
        parts = [
            f"{LABELS[e['effect']]} moves its bias by {e['estimate']:+.4f} {_ci(e)} "
            f"(adjusted p = {e['p_adjusted']:.3g}, family of {e['family_size']})"
            for e in found
        ]
        rest = [e for e in mains if e not in found]
        mdes = ", ".join(
            f"{LABELS[e['effect']]} {e['mde_80']:.4f}" for e in rest if e.get("mde_80") is not None
        )
        if parts:
            text = head + "; ".join(parts)
            if rest:
                text += f"; the other factors do not at this power (MDE 80 %: {mdes})"
        else:
            text = head + f"no factor moves its bias detectably at this power (MDE 80 %: {mdes})"
        unattr = [e for e in mains if e["detected"] and not e["attributed"]]
        if unattr:
            text += "; " + ", ".join(
                f"{LABELS[e['effect']]}'s change {e['estimate']:+.4f} {_ci(e)} is not attributed "
                "(its manipulation check failed)"
                for e in unattr
            )
        elif failed:
            text += f" [not attributable: {', '.join(failed)} (manipulation check failed)]"
        out.append(text + ".")
    return out


# --------------------------------------------------------------------------- observational view


def spearman_view(
    harm: Mapping[str, Cells],
    measures: Mapping[str, Cells],
    bias_type: str,
    ratio: float,
    *,
    n_resamples: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Per task, the Spearman association of each measured factor with the signed bias over
    the (arm, replicate) units at the study's one ratio, bootstrap over units (each unit is one
    point here). Secondary: the factors were manipulated, so this only shows how the measured
    magnitudes track the harm."""
    out = []
    for task, cells in harm.items():
        points = {(bias_type, a, ratio, r): v for (a, r), v in cells.items()}
        factors: dict[tuple[str, str, float, int], dict[str, Any]] = {}
        for name, mcells in measures.items():
            for (a, r), v in mcells.items():
                factors.setdefault((bias_type, a, ratio, r), {})[name] = {"value": v}
        rows = factor_attribution(points, factors, n_resamples=n_resamples, seed=seed)
        out += [{"task": task} | r for r in rows if not r["scope"].startswith("pooled")]
    return out
