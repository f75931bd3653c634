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
#: ``paper_quantity``: what the paper's reduction is a reduction *of*: ``"total"``, the whole
#: measured bias of the model trained on the unmitigated data (the paper does not subtract an
#: untrained model's own bias), matching our ``(b - m) / b``; ``"added"`` would match our
#: ``(b - m) / (b - u)``, the bias training on the data added over the untuned model ``u``.
#: A verdict is given only for our figure of the same quantity; the other is shown, labelled.
PAPER = [
    {
        "strategy": "contrastive",
        "what": "downstream behavioural bias",
        "paper": "reduced by about 91 % (reduction 0.91)",
        "paper_reduction": 0.91,
        "paper_quantity": "total",
    },
    {
        "strategy": "contrastive",
        "what": "embedding bias score of the training data",
        "paper": "higher than without mitigation (the 'metric paradox')",
        "paper_reduction": None,
        "paper_quantity": None,
    },
]
#: Our two reductions: summary keys and labels.
REDUCTIONS = {
    "total": ("reduction", "of the total bias (b - m)/b, incl. the untuned model's own"),
    "added": ("reduction_of_added", "of what the data added (b - m)/(b - u)"),
}


def _verdict(lo: float | None, hi: float | None, target: float | None, rises: bool) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "not measurable here"
    if rises:  # the paper: the score rises, i.e. the oriented change is > 0
        return "reproduced" if lo > 0 else "opposite" if hi < 0 else "inconclusive (CI includes 0)"
    if lo <= target <= hi:  # type: ignore[operator]
        return "consistent (our CI includes the paper's figure)"
    return "not reproduced (our CI excludes the paper's figure)"


def _reduction_text(ours: dict[str, Any], quantity: str) -> str:
    key, label = REDUCTIONS[quantity]
    v = ours.get(key, math.nan)
    if v is None or not math.isfinite(v):
        return f"reduction {label}: undefined"
    lo, hi = ours.get(f"{key}_ci_low"), ours.get(f"{key}_ci_high")
    return f"reduction {label}: {v:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _ours(summary: Sequence[dict[str, Any]], strategy: str, test: Any) -> dict[str, Any] | None:
    return next(
        (
            s
            for s in summary
            if s["pipeline"] == "equilibrium" and s["strategy"] == strategy and test(s["family"])
        ),
        None,
    )


def _paper_reduction_row(p: dict[str, Any], ours: dict[str, Any] | None) -> tuple[str, str]:
    """Ours beside the paper's reduction: both of our reductions, labelled; a verdict only for
    the one of the paper's quantity (and only where it is defined)."""
    if not ours:
        return "not run", "not run"
    figs = [_reduction_text(ours, q) for q in REDUCTIONS]
    figs.append(
        f"difference {ours['difference']:+.3f} nats "
        f"[{ours['difference_ci_low']:+.3f}, {ours['difference_ci_high']:+.3f}]"
    )
    quantity = p.get("paper_quantity")
    if quantity not in REDUCTIONS:
        return "; ".join(figs), "no verdict (the paper's quantity matches neither of ours)"
    key, label = REDUCTIONS[quantity]
    lo, hi = ours.get(f"{key}_ci_low"), ours.get(f"{key}_ci_high")
    verdict = _verdict(lo, hi, p["paper_reduction"], rises=False)
    return "; ".join(figs), f"{verdict}; compared: our reduction {label} (the paper's quantity)"


def paper_comparison(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's contrastive figures beside ours (recursive study, pooled over levels)."""
    rows = []
    for p in PAPER:
        if p["paper_reduction"] is not None:
            ours = _ours(summary, p["strategy"], lambda f: f == HEADLINE_FAMILY)
            fig, verdict = _paper_reduction_row(p, ours)
        else:
            ours = _ours(summary, p["strategy"], lambda f: f.startswith("embedding (edited"))
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


def replicated_text(s: dict[str, Any]) -> str:
    """The headline over replicates: the mean paired difference with its interval, MDE and
    adjusted flag, or "not replicated" with the mean alone."""
    n = s.get("n_replicates")
    if n is None:
        return "no replicate-level headline"
    if s.get("replication_status") != "replicated":
        return (
            f"not replicated (R = {n} < 3): mean paired difference "
            f"{_num(s.get('replicated_difference'))}, no interval"
        )
    det = "detected" if s.get("detected") else "not detected"
    p_adj = s.get("p_adjusted")
    p_txt = f"{p_adj:.3g}" if isinstance(p_adj, int | float) else "—"
    return (
        f"difference over R = {n} replicates {_num(s['replicated_difference'])} "
        f"{_ci_text(s['replicated_ci_low'], s['replicated_ci_high'])} ({s.get('inference')}), "
        f"MDE at 80 % power {abs(s['mde_80']):.3f}, {det} ({s.get('adjustment')}-adjusted over "
        f"{s.get('family_size')} headlines, p_adj {p_txt})"
    )


def _reductions(s: dict[str, Any]) -> str:
    parts = []
    for key, label in REDUCTIONS.values():
        v = s.get(key, math.nan)
        if v is not None and math.isfinite(v):
            ci = _ci_text(s.get(f"{key}_ci_low"), s.get(f"{key}_ci_high"), 2)
            parts.append(f"reduction {label} {_num(v, 2)} {ci}")
        elif key in s:
            parts.append(f"reduction {label} undefined")
    return "; ".join(parts)


def format_headline(results: dict[str, Any]) -> list[str]:
    """Plain-text lines of the study's findings (the CLI prints them; the report shows them)."""
    lines = [f"Budget: {results.get('budget')} (every arm's steps x batch size below)"]
    for pipe, sc in (results.get("scoring") or {}).items():
        lines.append(
            f"Scoring ({pipe} study): every arm by {sc.get('backend')} on {sc.get('weights')}"
        )
    rep = results.get("replication") or {}
    for pipe in ("recursive", "ratio"):
        r = rep.get(pipe)
        if r:
            lines.append(f"Replicates ({pipe} study): R = {r['n_replicates']}, {r['replicate']}")
    u = results.get("untuned")
    if u:
        lines.append(
            f"Untuned model, probe bias (pronoun preference, nats, + = stereotyped pronoun "
            f"likelier): {_num(u['value'])} {_ci_text(u.get('ci_low'), u.get('ci_high'))}"
        )
    budgets = results.get("budgets") or []
    head = [s for s in results.get("summary", []) if s.get("headline")]
    lines.append(
        "Held-out behaviour (headline; oriented, + = towards the stereotype; mitigated - "
        "baseline, paired within each replicate):"
    )
    for s in head:
        red = _reductions(s)
        lines.append(
            f"  {s['pipeline']}/{s['strategy']} {s['metric']}: {replicated_text(s)}; "
            f"baseline {_num(s['baseline'])}, mitigated {_num(s['mitigated'])}; "
            f"secondary, paired bootstrap over items and replicates: difference "
            f"{_num(s['difference'])} "
            f"{_ci_text(s['difference_ci_low'], s['difference_ci_high'])}"
            + (f"; {red}" if red else "")
            + f"; budget {arm_steps(budgets, s['pipeline'], s['strategy'])} (baseline "
            f"{arm_steps(budgets, s['pipeline'], 'none')})"
            + f"; untuned model {_num(s.get('untuned', math.nan))}"
        )
    templ = results.get("per_template") or []
    if templ:
        lines.append("Per probe template (recursive; mitigated - baseline, t over replicates)")
        lines += [
            f'  {t["strategy"]} "{t["template"]}": {_num(t["difference"])} '
            f"{_ci_text(t['ci_low'], t['ci_high'])}"
            for t in templ
        ]
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
