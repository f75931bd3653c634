"""Plots of stored results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_trajectories(results: dict[str, Any], path: str | Path, metric: str | None = None) -> Path:
    """Bias against generation, one line per initial level (95% CI bars), with the equilibrium
    fixed point and its CI band when the fit is stable."""
    metric = metric or results.get("fit_metric", "rule.stereotype_rate")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for lv in results["levels"]:
        gens = [g["generation"] for g in lv["generations"]]
        vals = [g["metrics"][metric]["value"] for g in lv["generations"]]
        cis = [g["metrics"][metric].get("ci") or {} for g in lv["generations"]]
        pairs = list(zip(vals, cis, strict=True))
        lo = [max(v - c["low"], 0) if c.get("low") is not None else 0 for v, c in pairs]
        hi = [max(c["high"] - v, 0) if c.get("high") is not None else 0 for v, c in pairs]
        ax.errorbar(gens, vals, yerr=[lo, hi], marker="o", capsize=3, label=f"b0 = {lv['level']:g}")
    eq = results.get("equilibrium") or {}
    if (
        metric == results.get("fit_metric")
        and eq.get("stable")
        and eq.get("fixed_point") is not None
    ):
        ax.axhline(
            eq["fixed_point"],
            color="k",
            ls="--",
            lw=1,
            label=f"equilibrium {eq['fixed_point']:.3f}",
        )
        ci = eq.get("ci")
        if ci:
            ax.axhspan(ci["low"], ci["high"], color="0.5", alpha=0.2, label="equilibrium 95% CI")
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.set_xticks(sorted({g["generation"] for lv in results["levels"] for g in lv["generations"]}))
    ax.set_title("Bias across recursive generations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
