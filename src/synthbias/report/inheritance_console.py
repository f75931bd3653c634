"""Terminal summary that leads an inheritance run: per task, what the run found.

Called from :func:`synthbias.report.console.print_inheritance` before the full table.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from synthbias.tasks.sweep import arm_label


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:+.{digits}f}" if isinstance(v, float) else str(v)


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
            title=f"{a['task']}: Δ {a['metric']}{form} vs the real-only model (paired 95% CI)",
            caption=f"items: {a['item_source']}; size {a['size']}; real-only CI half-width "
            f"{hw_s}{null_s}{extra}{need}",
            title_justify="left",
        )
        for col in ("bias type", "ratio", "Δ", "95% CI", "detected"):
            table.add_column(col, justify="left" if col == "bias type" else "right")
        several = len({d.get("arm") for d in a["deltas"]}) > 1
        for d in a["deltas"]:
            table.add_row(
                arm_label(d, several),
                f"{d['ratio']:g}",
                _f(d["delta"]),
                f"[{_f(d['ci_low'])}, {_f(d['ci_high'])}]",
                "-" if not math.isfinite(d["delta"]) else "no" if d["covers_zero"] else "yes",
            )
        console.print(table)
        console.print(f"  {a['sentence']}", highlight=False)
    for note in results.get("size_notes") or []:
        console.print(f"[yellow]size:[/] {note}", highlight=False)
