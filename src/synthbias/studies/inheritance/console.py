"""Terminal summaries of an inheritance run: first the replicate-level headlines (mean paired
change over replicates, its interval, MDE at 80 % power, adjusted flag, the family's size:
:func:`print_headlines`), then per task the item-level comparisons (:func:`print_task_answers`),
then the task metrics by bias ratio (:func:`print_inheritance`).
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from synthbias.report.html import fmt_signed
from synthbias.studies.inheritance.attribution import summary_lines
from synthbias.tasks.sweep import arm_label


def _signed(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return fmt_signed(v, digits) if isinstance(v, float) else str(v)


def replication_line(results: dict[str, Any]) -> str:
    """One sentence: R, the seeds, the interval method, the adjustment and the family's size."""
    rep = results.get("replication") or {}
    r = rep.get("n_replicates", 0)
    seeds = ", ".join(str(s) for s in rep.get("seeds") or [])
    if not rep.get("replicated"):
        return (
            f"R = {r} replicate{'s' if r != 1 else ''} (seeds {seeds}): not replicated (fewer than "
            "3), so no headline interval and nothing flagged detected; the item-level CI beside "
            "each change resamples task items for the same models and leaves out run-to-run "
            "variation."
        )
    how = "t over replicates" if rep.get("inference") == "t" else "two-stage bootstrap SE, t"
    return (
        f"R = {r} replicates (seeds {seeds}); intervals: {how}; 'detected' is "
        f"{rep.get('adjustment')}-adjusted over a family of {rep.get('family_size')} tests "
        f"({rep.get('family')})."
    )


def _ci(lo: Any, hi: Any) -> str:
    return "-" if lo is None or hi is None else f"[{_signed(lo)}, {_signed(hi)}]"


def print_headlines(results: dict[str, Any], console: Console) -> None:
    """The replicate-level headlines per task (bias type and arm vs the real-only model and vs
    the control arm, by ratio), then the dose-response slopes over ratios."""
    heads = results.get("headlines") or []
    if not heads:
        return
    console.print(replication_line(results), highlight=False)
    rep = results.get("replication") or {}
    several = len({h["arm"] for h in heads}) > 1
    for task in dict.fromkeys(h["task"] for h in heads):
        rows = [h for h in heads if h["task"] == task]
        table = Table(
            title=f"{task}: Δ {rows[0]['metric']}, mean of paired per-replicate changes",
            title_justify="left",
        )
        cols = ["bias type", "ratio", "vs", "Δ", "95% CI", "MDE 80%", "p adj.", "detected"]
        for col in [*cols, "item-level CI"]:
            table.add_column(col, justify="left" if col in ("bias type", "vs") else "right")
        for h in rows:
            replicated = h["status"] == "replicated"
            table.add_row(
                arm_label(h, several),
                f"{h['ratio']:g}",
                h["reference"],
                _signed(h["estimate"]),
                _ci(h["ci_low"], h["ci_high"]) if replicated else "not replicated",
                _f(h["mde_80"]),
                _f(h["p_adjusted"]),
                ("yes" if h["detected"] else "no") if replicated else "-",
                _ci(
                    (h.get("item_level") or {}).get("ci_low"),
                    (h.get("item_level") or {}).get("ci_high"),
                ),
            )
        console.print(table)
    slopes = results.get("ratio_slopes") or []
    if slopes and rep.get("replicated"):
        table = Table(title="Dose-response: slope of the paired change over ratios (per replicate)")
        for col in ("task", "bias type", "vs", "slope", "95% CI", "MDE 80%"):
            table.add_column(col)
        for s in slopes:
            table.add_row(
                s["task"],
                arm_label(s, several),
                s["reference"],
                _signed(s["estimate"]),
                _ci(s["ci_low"], s["ci_high"]),
                _f(s["mde_80"]),
            )
        console.print(table)


def print_task_answers(results: dict[str, Any], console: Console) -> None:
    """One compact table per task (paired change of its headline bias metric from the
    real-only model at each ratio, per bias type and arm) and the plain sentence of what it
    found."""
    for a in results.get("task_answers") or []:
        extra = f", parse rate {a['parse_rate']:.2f}" if a.get("parse_rate") is not None else ""
        null = a.get("null")
        null_s = f", null {null:.3f}" if isinstance(null, float) and math.isfinite(null) else ""
        hw = a.get("half_width")
        hw_s = f"{hw:.3f}" if isinstance(hw, float) and math.isfinite(hw) else "-"
        if a.get("degenerate"):
            hw_s += " (zero width: every resample gave the same value, not an informative CI)"
        form = f" ({a['form']} form)" if a.get("form") else ""
        need = ""
        if a.get("size_for_target") and isinstance(hw, float) and hw > a["target_half_width"]:
            need = f"; about {a['size_for_target']} items for ±{a['target_half_width']:g}"
        table = Table(
            title=f"{a['task']}: Δ {a['metric']}{form} vs the real-only model (item-level paired "
            "95% CI, pooled over seeds)",
            caption=f"items: {a['item_source']}; size {a['size']}; real-only CI half-width "
            f"{hw_s}{null_s}{extra}{need}",
            title_justify="left",
        )
        for col in ("bias type", "ratio", "Δ", "95% CI", "CI excl. 0 (unadjusted)"):
            table.add_column(col, justify="left" if col == "bias type" else "right")
        several = len({d.get("arm") for d in a["deltas"]}) > 1
        for d in a["deltas"]:
            table.add_row(
                arm_label(d, several),
                f"{d['ratio']:g}",
                _signed(d["delta"]),
                f"[{_signed(d['ci_low'])}, {_signed(d['ci_high'])}]",
                "-" if not math.isfinite(d["delta"]) else "no" if d["covers_zero"] else "yes",
            )
        console.print(table)
        console.print(f"  {a['sentence']}", highlight=False)
    for note in results.get("size_notes") or []:
        console.print(f"[yellow]size:[/] {note}", highlight=False)


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def print_inheritance(results: dict[str, Any], console: Console, out: Any) -> None:
    """Headline per task: performance and bias metric at each ratio (mean over bias types)."""
    import pandas as pd

    print_headlines(results, console)
    print_task_answers(results, console)
    df = pd.read_csv(out / "results.csv")
    tasks = results["tasks"]
    ratios = sorted(r for r in df["ratio"].dropna().unique())
    table = Table(title="Bias inheritance: task metrics by bias ratio (mean over bias types)")
    for col in ("task", "metric", "base", *[f"r={r:g}" for r in ratios]):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for t in tasks:
        for key in ("primary_metric", "bias_metric"):
            metric = t.get(key)
            if not metric:
                continue
            sub = df[(df["task"] == t["name"]) & (df["metric"] == metric)]
            base = sub[sub["bias_type"] == "base"]["value"]
            cells = [_f(float(base.mean())) if len(base) else "-"]
            for r in ratios:
                v = sub[sub["ratio"] == r]["value"]
                cells.append(_f(float(v.mean())) if len(v) else "-")
            label = f"{metric}{' (bias)' if key == 'bias_metric' else ''}"
            table.add_row(t["name"], label, *cells)
    console.print(table)
    not_carried = results.get("not_carried") or []
    if not_carried:
        console.print(
            "[yellow]Augmentation did not carry the requested bias for:[/] "
            + "; ".join(not_carried)
        )

    for line in summary_lines(results):
        console.print(line, markup=False, highlight=False)
    corr = results.get("correlations") or []
    if corr and not results.get("attribution"):
        c = Table(title="Which misalignment factor tracks downstream harm (Spearman ρ)")
        for col in ("factor", "rho", "95% CI", "points"):
            c.add_column(col)
        for r in corr:
            c.add_row(
                r["factor"],
                _f(r["spearman"], 2),
                f"[{_f(r['ci_low'], 2)}, {_f(r['ci_high'], 2)}]",
                str(r["n_points"]),
            )
        console.print(c)
    t = results["timing"]
    console.print(
        f"augment {t['augment_seconds']:.0f} s, fine-tune {t['train_seconds']:.0f} s, "
        f"evaluate {t['eval_seconds']:.0f} s{workers_note(results)}, total (wall) "
        f"{t['total_seconds']:.0f} s. Output: {out}/ "
        f"(results.json, results.csv, correlations.csv, {', '.join(results['plots'])})"
    )


def workers_note(results: dict[str, Any]) -> str:
    """Where replicates ran side by side, the step seconds are summed over the workers."""
    par = results.get("parallel") or {}
    if (par.get("workers") or 1) <= 1 and par.get("scale", "local") == "local":
        return ""
    where = "Ray" if par.get("scale") == "ray" else f"{par['workers']} local workers"
    return f" (steps summed over {where})"
