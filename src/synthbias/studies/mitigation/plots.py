"""Mitigation comparison plot: oriented change per strategy and metric family, with CIs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _num(v: Any) -> float:
    return float(v) if v is not None else np.nan


def _change(r: dict[str, Any] | None) -> tuple[float, float, float]:
    """A row's change and interval: the replicated headline's (mean over replicates, t-interval)
    where it has one, else the pooled paired-bootstrap figure; NaN bounds when "not
    replicated" (no interval is drawn then)."""
    if r is None:
        return np.nan, np.nan, np.nan
    if r.get("n_replicates") is not None and r.get("headline"):
        return (
            _num(r.get("replicated_difference")),
            _num(r.get("replicated_ci_low")),
            _num(r.get("replicated_ci_high")),
        )
    return r["difference"], r["difference_ci_low"], r["difference_ci_high"]


def plot_mitigation(summary: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """One panel per pipeline and section (headline, training data): grouped bars (strategy x
    family) of the oriented change mitigated − baseline (below 0: less bias): headlines with
    their interval over replicates (none when not replicated), the training-data panel with the
    pooled bootstrap CI of the change (never averaged bounds)."""
    panels = list(dict.fromkeys((s["pipeline"], bool(s.get("headline"))) for s in summary))
    if not panels:
        return None
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 3.8), dpi=110, squeeze=False
    )
    for ax, (pipe, head) in zip(axes[0], panels, strict=True):
        rows = [s for s in summary if s["pipeline"] == pipe and bool(s.get("headline")) == head]
        strategies = list(dict.fromkeys(s["strategy"] for s in rows))
        families = list(dict.fromkeys((s["family"], s["metric"]) for s in rows))
        width = 0.8 / max(len(families), 1)
        x = np.arange(len(strategies))
        for j, (fam, metric) in enumerate(families):
            vals, lo, hi = [], [], []
            for st in strategies:
                r = next(
                    (
                        s
                        for s in rows
                        if s["strategy"] == st and s["family"] == fam and s["metric"] == metric
                    ),
                    None,
                )
                v, clo, chi = _change(r)
                vals.append(v)
                ok = r is not None and np.isfinite(clo)
                lo.append(max(v - clo, 0) if ok else 0)
                hi.append(max(chi - v, 0) if ok else 0)
            label = fam if len({f for f, _ in families}) == len(families) else f"{fam}: {metric}"
            ax.bar(x + j * width, vals, width, yerr=[lo, hi], capsize=2, label=label)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(x + width * (len(families) - 1) / 2)
        ax.set_xticklabels(strategies, rotation=20, fontsize=8)
        ax.set_ylabel("oriented change vs no mitigation")
        what = "held-out behaviour" if head else "properties of the training data"
        ax.set_title(f"{pipe}: {what}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
