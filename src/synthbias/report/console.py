"""Terminal summaries of the bias-inheritance and mitigation studies (rich tables)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def print_inheritance(results: dict[str, Any], console: Console, out: Any) -> None:
    """Headline per task: performance and bias metric at each ratio (mean over bias types)."""
    import pandas as pd

    from synthbias.report.inheritance_console import print_task_answers

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
    from synthbias.attribution import summary_lines

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
        f"evaluate {t['eval_seconds']:.0f} s, total {t['total_seconds']:.0f} s. Output: {out}/ "
        f"(results.json, results.csv, correlations.csv, {', '.join(results['plots'])})"
    )


def print_mitigation(results: dict[str, Any], console: Console, out: Any) -> None:
    """Held-out behaviour per strategy (budget, untuned baseline, paired CI), then the rest."""
    from synthbias.mitigate.summary import format_headline

    for line in format_headline(results):
        console.print(line, highlight=False, markup=False)
    console.print(f"Output: {out}/ (results.json, comparison.csv, summary.csv, sub-runs)")
