"""Plots of the bias-inheritance sweep: task metrics against the bias ratio, one panel per task."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from synthbias.tasks.sweep import arm_label  # noqa: E402


def plot_by_ratio(
    df: Any, tasks: Sequence[dict[str, Any]], what: str, path: str | Path
) -> Path | None:
    """Performance (``what="performance"``) or downstream bias (``"bias"``) against the ratio.

    One panel per task with its primary (or bias) metric; one line per bias type with 95% CI
    bars (seeds averaged, CI bounds averaged too); the untuned base model as a dashed line.
    Returns ``None`` when no task has such a metric.
    """
    key = "primary_metric" if what == "performance" else "bias_metric"
    panels = [(t["name"], t[key]) for t in tasks if t.get(key)]
    if not panels or df.empty:
        return None
    ncol = min(5, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), dpi=110, squeeze=False)
    for ax, (task, metric) in zip(axes.ravel(), panels, strict=False):
        sub = df[(df["task"] == task) & (df["metric"] == metric)]
        for bt, g in sub[sub["bias_type"] != "base"].groupby("bias_type"):
            g = g.groupby("ratio", as_index=False)[["value", "ci_low", "ci_high"]].mean()
            lo = (g["value"] - g["ci_low"]).clip(lower=0).fillna(0)
            hi = (g["ci_high"] - g["value"]).clip(lower=0).fillna(0)
            ax.errorbar(g["ratio"], g["value"], yerr=[lo, hi], marker="o", capsize=2, label=bt)
        base = sub[sub["bias_type"] == "base"]["value"]
        if len(base):
            ax.axhline(float(base.mean()), color="k", ls="--", lw=0.8, label="base model")
        _style(ax, f"{task}\n{metric}")
    return _finish(fig, axes, len(panels), f"Task {what} against the bias ratio", path)


def _style(ax: Any, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("bias ratio", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _finish(fig: Any, axes: Any, used: int, title: str, path: str | Path) -> Path:
    """Blank the unused panels, add one legend and the title, save and close."""
    for ax in axes.ravel()[used:]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.94))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_deltas(deltas: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Headline bias metric's change from the real-only model against the ratio, per task.

    One panel per task, one line per bias type (and arm, when there are several), paired 95%
    CI bars; the dashed line is 0 (no change). Returns ``None`` without deltas.
    """
    if not deltas:
        return None
    tasks = list(dict.fromkeys(d["task"] for d in deltas))
    ncol = min(5, len(tasks))
    nrow = math.ceil(len(tasks) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 2.6 * nrow), dpi=110, squeeze=False)
    for ax, task in zip(axes.ravel(), tasks, strict=False):
        rows = [d for d in deltas if d["task"] == task]
        several = len({d.get("arm") for d in rows}) > 1
        for bt in dict.fromkeys(arm_label(d, several) for d in rows):
            sub = sorted((d for d in rows if arm_label(d, several) == bt), key=lambda d: d["ratio"])
            x = [0.0] + [d["ratio"] for d in sub]
            y = [0.0] + [d["delta"] for d in sub]
            lo = [0.0] + [max(d["delta"] - d["ci_low"], 0) for d in sub]
            hi = [0.0] + [max(d["ci_high"] - d["delta"], 0) for d in sub]
            ax.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=2, label=bt)
        ax.axhline(0, color="k", ls="--", lw=0.8)
        _style(ax, f"{task}\nΔ {rows[0]['metric']}")
    title = "Change of the headline bias metric from the real-only model (paired 95% CI)"
    return _finish(fig, axes, len(tasks), title, path)
