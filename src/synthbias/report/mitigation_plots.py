"""Mitigation comparison plot: reduction per strategy and metric family, with CIs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_mitigation(summary: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """One panel per pipeline: grouped bars (strategy x family) of the mean reduction.

    Bars above zero mean less bias than without mitigation (for ``control_cost``: higher task
    performance); error bars are the mean CI bounds.
    """
    pipes = sorted({s["pipeline"] for s in summary})
    if not pipes:
        return None
    fig, axes = plt.subplots(1, len(pipes), figsize=(6 * len(pipes), 3.8), dpi=110, squeeze=False)
    for ax, pipe in zip(axes[0], pipes, strict=True):
        rows = [s for s in summary if s["pipeline"] == pipe]
        strategies = list(dict.fromkeys(s["strategy"] for s in rows))
        families = list(dict.fromkeys(s["family"] for s in rows))
        width = 0.8 / max(len(families), 1)
        x = np.arange(len(strategies))
        for j, fam in enumerate(families):
            vals, lo, hi = [], [], []
            for st in strategies:
                r = next((s for s in rows if s["strategy"] == st and s["family"] == fam), None)
                v = r["reduction"] if r else np.nan
                vals.append(v)
                lo.append(max(v - r["ci_low"], 0) if r and np.isfinite(r["ci_low"]) else 0)
                hi.append(max(r["ci_high"] - v, 0) if r and np.isfinite(r["ci_high"]) else 0)
            ax.bar(x + j * width, vals, width, yerr=[lo, hi], capsize=2, label=fam)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x + width * (len(families) - 1) / 2)
        ax.set_xticklabels(strategies, rotation=20, fontsize=8)
        ax.set_ylabel("reduction vs no mitigation")
        ax.set_title(f"{pipe} pipeline", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
