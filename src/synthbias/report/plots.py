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


def plot_divergence(changes: list[dict[str, Any]]):
    """Heatmap of each metric's change (first to last generation) per initial level.

    Colour is the change scaled by the metric's largest absolute change (metrics differ in
    scale); ▲/▼ mark changes beyond both 95% CIs. Returns the figure.
    """
    import numpy as np

    metrics = list(dict.fromkeys(c["metric"] for c in changes))
    levels = list(dict.fromkeys(c["level"] for c in changes))
    grid = np.full((len(metrics), len(levels)), np.nan)
    marks: dict[tuple[int, int], str] = {}
    for c in changes:
        i, j = metrics.index(c["metric"]), levels.index(c["level"])
        grid[i, j] = c["change"]
        marks[(i, j)] = {"up": "▲", "down": "▼"}.get(c["direction"], "")
    scale = np.nanmax(np.abs(grid), axis=1, keepdims=True)
    scale[~np.isfinite(scale) | (scale == 0)] = 1.0
    fig, ax = plt.subplots(
        figsize=(min(2.2 + 1.3 * len(levels), 9), 0.9 + 0.38 * len(metrics)), dpi=110
    )
    scaled = grid / scale
    ax.imshow(scaled, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), mark in marks.items():
        if np.isfinite(grid[i, j]):
            color = "white" if abs(scaled[i, j]) > 0.6 else "black"
            ax.text(
                j, i, f"{grid[i, j]:+.3f} {mark}", ha="center", va="center", fontsize=7, color=color
            )
    ax.set_xticks(range(len(levels)), [f"b0 = {lv:g}" for lv in levels], fontsize=8)
    ax.set_yticks(range(len(metrics)), metrics, fontsize=8)
    ax.set_title("Change from first to last generation", fontsize=10)
    fig.tight_layout()
    return fig
