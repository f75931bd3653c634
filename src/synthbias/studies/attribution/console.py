"""Terminal summary of an attribution run: the answer first (one sentence per task), then the
manipulation checks, the effects per task and the observational Spearman view.

Why this order: the question is which factor moves which task's bias; the checks say whether
each factor's effect may be attributed to it at all, and the rest is the evidence.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from synthbias.studies.attribution.analysis import LABELS


def _f(v: Any, digits: int = 4) -> str:
    return "-" if v is None else f"{v:+.{digits}f}"


def _ci(row: dict[str, Any]) -> str:
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return "not replicated" if lo is None or hi is None else f"[{_f(lo)}, {_f(hi)}]"


def design_line(results: dict[str, Any]) -> str:
    """One sentence: the design, bias type, ratio, replicates and the flags' adjustment."""
    d = results["design"]
    arms = len(d["arms"])
    frac = "2x2x2 full factorial" if d["fraction"] == "full" else "2^(3-1) half fraction"
    return (
        f"Design: {frac} ({arms} arms) for {d['bias_type']} at ratio {d['ratio']:g}, "
        f"R = {d['n_replicates']} replicates (seeds {', '.join(map(str, d['seeds']))}, shared "
        f"by every arm); effects = high − low level, t over the per-replicate contrasts; "
        f"'detected' is {d['adjust']}-adjusted over the tasks' main effects."
        + (f" Aliases: {'; '.join(d['aliases'])}." if d["aliases"] else "")
    )


def print_checks(results: dict[str, Any], console: Console) -> None:
    """Per factor: its effect on every misalignment measure (interval), and the verdict."""
    effects = results["measure_effects"]
    table = Table(
        title="Manipulation checks: main effect of each factor on each misalignment measure "
        "(arm's augmented set vs the real data; high − low, 95% CI over replicates)",
        title_justify="left",
    )
    table.add_column("measure")
    for f in results["design"]["factors"]:
        table.add_column(LABELS[f], justify="right")
    for m, by_factor in effects.items():
        table.add_row(m, *(f"{_f(r['estimate'])} {_ci(r)}" for r in by_factor.values()))
    console.print(table)
    for c in results["factor_checks"]:
        verdict = "passed" if c["passed"] else "FAILED: " + "; ".join(c["reasons"])
        console.print(f"  {LABELS[c['factor']]:13s} {verdict}", highlight=False, markup=False)
    failed = [a for a in results["arm_checks"] if a["status"] == "FAILED"]
    for a in failed:
        console.print(
            f"  arm {a['arm']} FAILED: {'; '.join(a['reasons'])}", highlight=False, markup=False
        )


def print_effects(results: dict[str, Any], console: Console) -> None:
    """Per task: every effect on its signed bias metric with interval, MDE and adjusted flag."""
    rows = results["effects"]
    for task in dict.fromkeys(r["task"] for r in rows):
        part = [r for r in rows if r["task"] == task]
        table = Table(
            title=f"{task}: effects on {part[0]['metric']} (+ = towards the stereotype)",
            title_justify="left",
        )
        for col in ("effect", "estimate", "95% CI", "MDE 80%", "p adj.", "detected", "note"):
            table.add_column(col, justify="left" if col in ("effect", "note") else "right")
        for r in part:
            name = " x ".join(LABELS[f] for f in r["factors"])
            table.add_row(
                name,
                _f(r["estimate"]),
                _ci(r),
                "-" if r["mde_80"] is None else f"{r['mde_80']:.4f}",
                "-" if r["p_adjusted"] is None else f"{r['p_adjusted']:.3g}",
                ("yes" if r["detected"] else "no") if r["status"] == "replicated" else "-",
                "" if r["attributed"] else "not attributed (check failed)",
            )
        console.print(table)


def print_spearman(results: dict[str, Any], console: Console) -> None:
    """The observational view: Spearman of measured factor vs signed bias over units."""
    rows = results.get("spearman") or []
    if not rows:
        return
    console.print(
        "Secondary, observational: Spearman of each measured factor with the signed bias over "
        "the (arm, replicate) units, bootstrap over units (the factors were manipulated above; "
        "this only shows how the measured magnitudes track the harm):",
        highlight=False,
    )
    for r in rows:
        val = "-" if r["association"] is None else f"{r['association']:+.2f}"
        lo, hi = r.get("ci_low"), r.get("ci_high")
        ci = "[n/a]" if lo is None or hi is None else f"[{lo:+.2f}, {hi:+.2f}]"
        console.print(
            f"  {r['task']:22s} {r['factor']:36s} n={r['n_points']:<3d} {val} {ci}",
            highlight=False,
        )


def print_attribution(results: dict[str, Any], console: Console) -> None:
    """The whole summary: answer, design, checks, effects, observational view, time."""
    console.print("[bold]Which misalignment factor drives the bias (answer first):[/bold]")
    for line in results["answers"]:
        console.print(f"  {line}", highlight=False, markup=False)
    console.print(design_line(results), highlight=False, markup=False)
    print_checks(results, console)
    print_effects(results, console)
    print_spearman(results, console)
    total = (results.get("timing") or {}).get("total_seconds")
    if total is not None:
        console.print(f"Run time: {total / 60:.1f} min", highlight=False, markup=False)
