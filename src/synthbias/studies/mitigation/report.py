"""Sections of mitigation studies: held-out behaviour (the headline, with budgets and the untuned
model), properties of the training data (corpus metrics, kept apart), and the paper's table."""

from __future__ import annotations

import math
from typing import Any

from synthbias.report.html import (
    ReportContext,
    Section,
    esc,
    fmt_ci,
    fmt_num,
    html_table,
    register_section,
)
from synthbias.studies.mitigation.summary import REDUCTIONS, arm_steps, replicated_text


def _table(rows: list[dict[str, Any]]) -> str:
    return html_table(list(rows[0]), [list(r.values()) for r in rows])


def _red(s: dict[str, Any], key: str = "reduction") -> str:
    v = s.get(key)
    if v is None or not math.isfinite(v):
        return "undefined"
    return f"{v:+.0%} {fmt_ci(s.get(f'{key}_ci_low'), s.get(f'{key}_ci_high'), 2)}"


@register_section("mitigation", order=15)
def heldout_behaviour(ctx: ReportContext) -> Section | None:
    res = ctx.results
    head = [s for s in res.get("summary") or [] if s.get("headline")]
    if not head and not res.get("notes"):
        return None
    budgets = res.get("budgets") or []
    u = res.get("untuned")
    rows = [
        {
            "pipeline": s["pipeline"],
            "strategy": s["strategy"],
            "metric": s["metric"],
            "baseline": f"{fmt_num(s['baseline'])} "
            f"{fmt_ci(s['baseline_ci_low'], s['baseline_ci_high'])}",
            "mitigated": f"{fmt_num(s['mitigated'])} "
            f"{fmt_ci(s['mitigated_ci_low'], s['mitigated_ci_high'])}",
            "difference over replicates (headline)": replicated_text(s),
            "paired bootstrap difference (secondary)": f"{fmt_num(s['difference'])} "
            f"{fmt_ci(s['difference_ci_low'], s['difference_ci_high'])}",
            "reduction " + REDUCTIONS["added"][1]: _red(s, REDUCTIONS["added"][0]),
            "reduction " + REDUCTIONS["total"][1]: _red(s, REDUCTIONS["total"][0]),
            "untuned model": fmt_num(s.get("untuned")),
            "budget (arm / baseline)": f"{arm_steps(budgets, s['pipeline'], s['strategy'])} / "
            f"{arm_steps(budgets, s['pipeline'], 'none')}",
        }
        for s in head
    ]
    note = (
        f"<p>Budget: <b>{esc(str(res.get('budget')))}</b>. Behaviour of a model trained on each "
        "arm's data, measured on held-out probes no strategy edits (recursive study: pronoun "
        "preference in nats of a model LoRA-tuned on the generator's last-generation output; "
        "ratio study: task bias metrics). Oriented: + = towards the stereotype. Pooled over "
        "levels. Headline: the mean over replicates of the paired per-replicate difference "
        "(recursive study: replicate = a (chain, probe seed) cell; ratio study: a seed), its "
        "interval from between-replicate variation, the 80 %-power MDE and a detected flag "
        "adjusted over every headline; below 3 replicates 'not replicated'. Secondary: the "
        "paired bootstrap over probes and cells (recursive) or task items and seeds (ratio). "
        "Reductions (paired bootstrap): of what the baseline data added over the untuned "
        "model, (b − m)/(b − u), and of the total bias, (b − m)/b; each undefined where its "
        "denominator's CI includes 0.</p>"
    )
    for pipe, sc in (res.get("scoring") or {}).items():
        note += (
            f"<p>Scoring ({esc(pipe)} study): every arm by <b>{esc(str(sc.get('backend')))}"
            f"</b> on {esc(str(sc.get('weights')))}.</p>"
        )
    if u:
        note += (
            f"<p>Untuned model's probe bias: {fmt_num(u['value'])} "
            f"{fmt_ci(u.get('ci_low'), u.get('ci_high'))}</p>"
        )
    notes = "".join(f"<li>{esc(n)}</li>" for n in res.get("notes") or [])
    body = note + (_table(rows) if rows else "") + (f"<ul>{notes}</ul>" if notes else "")
    templ = [
        {
            "strategy": t["strategy"],
            "template": t["template"],
            "difference (t over replicates)": f"{fmt_num(t['difference'])} "
            f"{fmt_ci(t['ci_low'], t['ci_high'])}",
            "replicates": t["n_replicates"],
        }
        for t in res.get("per_template") or []
    ]
    if templ:
        body += "<p>Per probe template (recursive study; not in the adjusted family):</p>"
        body += _table(templ)
    return Section("mitigation-headline", "Held-out behaviour (headline)", body)


@register_section("mitigation", order=25)
def training_data_properties(ctx: ReportContext) -> Section | None:
    props = [s for s in ctx.results.get("summary") or [] if not s.get("headline")]
    props.sort(key=lambda s: s["family"] == "control_cost")
    if not props:
        return None
    rows = [
        {
            "strategy": s["strategy"],
            "family": s["family"],
            "metric": s["metric"],
            "orientation": s["orientation"],
            "baseline": fmt_num(s["baseline"], 4),
            "mitigated": fmt_num(s["mitigated"], 4),
            "difference": f"{fmt_num(s['difference'], 4)} "
            f"{fmt_ci(s['difference_ci_low'], s['difference_ci_high'], 4)}",
        }
        for s in props
    ]
    note = (
        "<p>Corpus metrics of the data each arm passes on (edited corpus) and of the generator's "
        "output. They describe training data, not a trained model, and are not the headline. "
        "Rows <code>control_cost</code>: the control tasks' performance change (+ = better).</p>"
    )
    return Section("mitigation-data", "Properties of the training data", note + _table(rows))


@register_section("mitigation", order=30)
def paper_table(ctx: ReportContext) -> Section | None:
    rows = ctx.results.get("paper_comparison") or []
    if not rows:
        return None
    note = "<p>Left: the figures the equilibrium paper reports (not ours). Right: ours.</p>"
    return Section(
        "mitigation-paper", "The paper's contrastive result beside ours", note + _table(rows)
    )
