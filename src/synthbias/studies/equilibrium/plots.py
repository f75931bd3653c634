"""Plots of stored results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

from synthbias.measure.names import canonical

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _errorbar(ax: Any, gens: list[int], values: list[Any], cis: list[dict], **kw: Any) -> None:
    vals = [float("nan") if v is None else v for v in values]
    lo = [
        max(v - c["low"], 0) if c.get("low") is not None and v == v else 0
        for v, c in zip(vals, cis, strict=True)
    ]
    hi = [
        max(c["high"] - v, 0) if c.get("high") is not None and v == v else 0
        for v, c in zip(vals, cis, strict=True)
    ]
    ax.errorbar(gens, vals, yerr=[lo, hi], marker="o", capsize=3, **kw)


def plot_trajectories(results: dict[str, Any], path: str | Path, metric: str | None = None) -> Path:
    """Left: the fit metric against generation, one line per initial level (95% CI bars; thin
    lines: the replicate chains), with the equilibrium fixed point and its CI band when the fit
    is stable. Right (when stored): the pairing rate and off-topic share, the fit's base."""

    metric = canonical(metric, "plot metric") if metric else None
    metric = metric or results.get("fit_metric", "rule.gender.stereotype_rate")
    has_base = any(g.get("off_topic_share") for lv in results["levels"] for g in lv["generations"])
    fig, axes = plt.subplots(
        1, 2 if has_base else 1, figsize=(11 if has_base else 7, 4.5), dpi=120, squeeze=False
    )
    ax = axes[0][0]
    for i, lv in enumerate(results["levels"]):
        color = f"C{i}"
        gens = [g["generation"] for g in lv["generations"]]
        ms = [g["metrics"].get(metric) or {} for g in lv["generations"]]
        _errorbar(
            ax,
            gens,
            [m.get("value") for m in ms],
            [m.get("ci") or {} for m in ms],
            color=color,
            label=f"b0 = {lv['level']:g}",
        )
        per_chain = [m.get("per_chain") or [] for m in ms]
        if all(len(p) > 1 for p in per_chain):
            for r in range(len(per_chain[0])):
                ax.plot(gens, [p[r] for p in per_chain], color=color, lw=0.6, alpha=0.4)
    eq = results.get("equilibrium") or {}
    interp = results.get("interpretation") or {}
    interpretable = interp.get("interpretable", True)
    if (
        interpretable  # a fit flagged not interpretable gets no equilibrium line
        and metric == results.get("fit_metric")
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
    title = "Bias across recursive generations"
    if not interpretable:
        title += " (fit NOT interpretable)"
    xticks = sorted({g["generation"] for lv in results["levels"] for g in lv["generations"]})
    ax.set_xlabel("generation")
    ax.set_ylabel(metric)
    ax.set_xticks(xticks)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if has_base:
        bx = axes[0][1]
        for i, lv in enumerate(results["levels"]):
            gens = [g["generation"] for g in lv["generations"]]
            pr = [g["metrics"].get("rule.gender.pairing_rate") or {} for g in lv["generations"]]
            off = [g.get("off_topic_share") or {} for g in lv["generations"]]
            _errorbar(
                bx,
                gens,
                [m.get("value") for m in pr],
                [m.get("ci") or {} for m in pr],
                color=f"C{i}",
                label=f"pairing rate, b0 = {lv['level']:g}",
            )
            _errorbar(
                bx,
                gens,
                [m.get("value") for m in off],
                [m.get("ci") or {} for m in off],
                color=f"C{i}",
                ls=":",
                label=f"off topic, b0 = {lv['level']:g}",
            )
        bx.set_xlabel("generation")
        bx.set_ylabel("share of texts")
        bx.set_xticks(xticks)
        bx.set_ylim(-0.02, 1.02)
        bx.set_title("Base: texts with a coded pairing; texts off topic", fontsize=10)
        bx.grid(alpha=0.3)
        bx.legend(fontsize=7)
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
