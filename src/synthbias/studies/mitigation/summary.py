"""What the mitigation study reports: the paper's table beside ours and the text summary.

Kept apart from the runner (:mod:`synthbias.studies.mitigation.runner`) so that the report sections
and
the CLI can render a stored ``results.json`` without importing the pipelines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: The headline family of the recursive study (held-out pronoun probes of tuned models).
HEADLINE_FAMILY = "pronoun probe (held-out)"
#: The equilibrium paper's reported contrastive-augmentation figures (not ours).
PAPER = [
    {
        "strategy": "contrastive",
        "what": "downstream behavioural bias",
        "paper": "reduced by about 91 % (reduction 0.91)",
        "paper_reduction": 0.91,
    },
    {
        "strategy": "contrastive",
        "what": "embedding bias score of the training data",
        "paper": "higher than without mitigation (the 'metric paradox')",
        "paper_reduction": None,
    },
]


def _verdict(lo: float | None, hi: float | None, target: float | None, rises: bool) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "not measurable here"
    if rises:  # the paper: the score rises, i.e. the oriented change is > 0
        return "reproduced" if lo > 0 else "opposite" if hi < 0 else "inconclusive (CI includes 0)"
    if lo <= target <= hi:  # type: ignore[operator]
        return "consistent (our CI includes the paper's figure)"
    return "not reproduced (our CI excludes the paper's figure)"


def paper_comparison(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's contrastive figures beside ours (recursive study, pooled over levels)."""
    rows = []
    for p in PAPER:
        if p["paper_reduction"] is not None:
            ours = next(
                (
                    s
                    for s in summary
                    if s["pipeline"] == "equilibrium"
                    and s["strategy"] == p["strategy"]
                    and s["family"] == HEADLINE_FAMILY
                ),
                None,
            )
            lo = ours and ours.get("reduction_ci_low")
            hi = ours and ours.get("reduction_ci_high")
            fig = (
                f"reduction {ours['reduction']:+.2f} [{lo:+.2f}, {hi:+.2f}]"
                if ours and math.isfinite(ours.get("reduction", math.nan))
                else f"reduction undefined; difference {ours['difference']:+.3f} nats "
                f"[{ours['difference_ci_low']:+.3f}, {ours['difference_ci_high']:+.3f}]"
                if ours
                else "not run"
            )
            verdict = _verdict(lo, hi, p["paper_reduction"], rises=False) if ours else "not run"
        else:
            ours = next(
                (
                    s
                    for s in summary
                    if s["pipeline"] == "equilibrium"
                    and s["strategy"] == p["strategy"]
                    and s["family"].startswith("embedding (edited")
                ),
                None,
            )
            lo = ours and ours["difference_ci_low"]
            hi = ours and ours["difference_ci_high"]
            fig = (
                f"change {ours['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] ({ours['metric']})"
                if ours
                else "not run"
            )
            verdict = _verdict(lo, hi, None, rises=True) if ours else "not run"
        rows.append(
            {
                "strategy": p["strategy"],
                "what": p["what"],
                "paper (reported)": p["paper"],
                "ours (95% CI)": fig,
                "verdict": verdict,
            }
        )
    return rows


# --------------------------------------------------------------------------- text summary


def _num(v: Any, d: int = 3) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.{d}f}"


def _ci_text(lo: Any, hi: Any, d: int = 3) -> str:
    text = f"[{_num(lo, d)}, {_num(hi, d)}]"
    if isinstance(lo, int | float) and isinstance(hi, int | float) and lo == hi:
        text += " (zero width: every resample gave the same value, not an informative CI)"
    return text


def arm_steps(budgets: Sequence[dict[str, Any]], pipeline: str, strategy: str) -> str:
    """The optimizer steps (and batch size) an arm trained with, as stated in the report."""
    rows = [b for b in budgets if b["pipeline"] == pipeline and b["strategy"] == strategy]
    steps = sorted(
        {
            s
            for b in rows
            for s in (b.get("steps_trained") or [b.get("steps") or b.get("steps_configured")])
            if s
        }
    )
    bs = sorted({b["batch_size"] for b in rows if b.get("batch_size")})
    if not steps:
        return "?"
    return f"{'/'.join(map(str, steps))} steps x {'/'.join(map(str, bs))}"


def format_headline(results: dict[str, Any]) -> list[str]:
    """Plain-text lines of the study's findings (the CLI prints them; the report shows them)."""
    lines = [f"Budget: {results.get('budget')} (every arm's steps x batch size below)"]
    u = results.get("untuned")
    if u:
        lines.append(
            f"Untuned model, probe bias (pronoun preference, nats, + = stereotyped pronoun "
            f"likelier): {_num(u['value'])} {_ci_text(u.get('ci_low'), u.get('ci_high'))}"
        )
    budgets = results.get("budgets") or []
    head = [s for s in results.get("summary", []) if s.get("headline")]
    lines.append(
        "Held-out behaviour (headline; oriented, + = towards the stereotype; pooled; 95% CI):"
    )
    for s in head:
        red = (
            f"reduction {_num(s['reduction'], 2)} {_ci_text(s['ci_low'], s['ci_high'], 2)}"
            if math.isfinite(s["reduction"])
            else "reduction undefined (baseline CI includes 0)"
        )
        lines.append(
            f"  {s['pipeline']}/{s['strategy']} {s['metric']}: baseline {_num(s['baseline'])} "
            f"{_ci_text(s['baseline_ci_low'], s['baseline_ci_high'])}, mitigated "
            f"{_num(s['mitigated'])} {_ci_text(s['mitigated_ci_low'], s['mitigated_ci_high'])}, "
            f"difference {_num(s['difference'])} "
            f"{_ci_text(s['difference_ci_low'], s['difference_ci_high'])} (detectable: "
            f"{abs(s['detectable_change']):.3f}), {red}; budget "
            f"{arm_steps(budgets, s['pipeline'], s['strategy'])} (baseline "
            f"{arm_steps(budgets, s['pipeline'], 'none')})"
            + f"; untuned model {_num(s.get('untuned', math.nan))}"
        )
    cost = [s for s in results.get("summary", []) if s["family"] == "control_cost"]
    if cost:
        lines.append("Task-performance cost (control tasks, mitigated - baseline, + = better):")
        lines += [
            f"  {s['strategy']} {s['metric']}: {_num(s['difference'])} "
            f"{_ci_text(s['difference_ci_low'], s['difference_ci_high'])}"
            for s in cost
        ]
    props = [
        s
        for s in results.get("summary", [])
        if not s.get("headline") and s["family"] != "control_cost"
    ]
    if props:
        lines.append("Properties of the training data (corpus metrics, not a trained model):")
        for s in props:
            lines.append(
                f"  {s['strategy']} {s['family']} {s['metric']}: difference "
                f"{_num(s['difference'], 4)} "
                f"{_ci_text(s['difference_ci_low'], s['difference_ci_high'], 4)}"
            )
    for p in results.get("paper_comparison") or []:
        lines.append(
            f"Paper vs ours, {p['strategy']} {p['what']}: paper (reported) {p['paper (reported)']}"
            f"; ours {p['ours (95% CI)']}: {p['verdict']}"
        )
    lines += [f"divergence: {f['message']}" for f in results.get("flags") or []]
    lines += [f"note: {n}" for n in results.get("notes") or []]
    return lines
