"""Sections for bias-inheritance runs (requested vs measured bias, misalignment vs harm) and
mitigation studies (reduction per strategy and family, sub-run reports)."""

from __future__ import annotations

from typing import Any

from synthbias.report.html import (
    ReportContext,
    Section,
    esc,
    fmt_ci,
    fmt_num,
    html_table,
    img_file,
    register_section,
)
from synthbias.tasks.sweep import arm_label


def _table(rows: list[dict]) -> str:
    return html_table(list(rows[0]), [list(r.values()) for r in rows])


def _headline_row(h: dict[str, Any], several: bool) -> list[str]:
    replicated = h["status"] == "replicated"
    item = h.get("item_level") or {}
    return [
        arm_label(h, several),
        f"{h['ratio']:g}",
        h["reference"],
        fmt_num(h["estimate"]),
        fmt_ci(h["ci_low"], h["ci_high"]) if replicated else "not replicated",
        fmt_num(h["mde_80"]),
        fmt_num(h["p_adjusted"]),
        ("yes" if h["detected"] else "no") if replicated else "—",
        " ".join(fmt_num(v) for v in h.get("per_replicate") or []),
        fmt_ci(item.get("ci_low"), item.get("ci_high")),
    ]


def _replication_note(rep: dict[str, Any]) -> str:
    r = rep.get("n_replicates", 0)
    seeds = ", ".join(str(s) for s in rep.get("seeds") or [])
    if not rep.get("replicated"):
        return (
            f"<p><b>R = {r} replicate{'s' if r != 1 else ''} (seeds {esc(seeds)}): not "
            "replicated.</b> Fewer than 3 replicates give no interval and no detection; each "
            "change is one model against another. The item-level CI beside it resamples task "
            "items for the same trained models, so the run-to-run variation of the augmentation, "
            "mix and training draws is not in it: it is not evidence that the effect recurs.</p>"
        )
    how = (
        "mean ± t<sub>R−1</sub>·SE of the per-replicate paired changes"
        if rep.get("inference") == "t"
        else "two-stage bootstrap SE (replicates, then items), t on R−1 df"
    )
    return (
        f"<p><b>R = {r} replicates</b> (seeds {esc(seeds)}); interval: {how}. "
        f"<b>Detected</b> = {esc(rep.get('adjustment'))}-adjusted p ≤ 0.05 over a "
        f"<b>family of {esc(rep.get('family_size'))} tests</b> ({esc(rep.get('family'))}). "
        "MDE 80% = the change detected 80 % of the time at this R (two-sided 5 % test).</p>"
    )


@register_section("inheritance", order=4)
def replicate_headlines(ctx: ReportContext) -> Section | None:
    """What the run claims: the mean over replicates of each arm's paired change of the bias
    metric (vs the real-only model and vs the control arm of the same replicate), its interval
    from the variation between replicates, MDE, adjusted flag and the family's size."""
    heads = ctx.results.get("headlines") or []
    if not heads:
        return None
    rep = ctx.results.get("replication") or {}
    parts = [
        _replication_note(rep),
        '<p class="note">A replicate is one seed: its own augmentation draw, mix draw and '
        "training seed, shared by every arm (biased, control, real-only), so each arm's change "
        "is paired within its replicate. The evaluation items are the same for all models. "
        "Positive = more bias.</p>",
    ]
    several = len({h["arm"] for h in heads}) > 1
    header = [
        "bias type (arm)",
        "ratio",
        "vs",
        "Δ (mean)",
        "95% CI",
        "MDE 80%",
        "adjusted p",
        "detected",
        "per replicate",
        "item-level CI (secondary)",
    ]
    for task in dict.fromkeys(h["task"] for h in heads):
        rows = [h for h in heads if h["task"] == task]
        parts.append(
            f"<h3>{esc(task)}: Δ {esc(rows[0]['metric'])}</h3>"
            + html_table(header, [_headline_row(h, several) for h in rows])
        )
    slopes = ctx.results.get("ratio_slopes") or []
    if slopes and rep.get("replicated"):
        rows = [
            [
                s["task"],
                arm_label(s, several),
                s["reference"],
                fmt_num(s["estimate"]),
                fmt_ci(s["ci_low"], s["ci_high"]),
                fmt_num(s["mde_80"]),
            ]
            for s in slopes
        ]
        parts.append(
            "<h3>Dose-response over ratios</h3><p>Slope of the paired change on the ratio "
            "(ratio 0 = no change), fitted per replicate; the interval is t over the "
            "per-replicate slopes.</p>"
            + html_table(["task", "bias type (arm)", "vs", "slope", "95% CI", "MDE 80%"], rows)
        )
    return Section("replicates", "Replicate-level headlines", "".join(parts))


@register_section("inheritance", order=5)
def task_answers(ctx: ReportContext) -> Section | None:
    """What the run found, per task: the headline bias metric's paired change from the
    real-only model at each ratio, leading the report (the full table follows)."""
    answers = ctx.results.get("task_answers") or []
    if not answers:
        return None
    parts = [
        "<p>Item-level comparisons (secondary to the replicate-level headlines above). Per task: "
        "the headline bias metric's change from the real-only model (ratio 0, same "
        "bias type) at each ratio, on the same items, with a paired 95% CI (clusters of "
        "counterfactual items resampled whole; seeds resampled when there are several). "
        "Positive = more bias. The real-only value's own CI half-width says the power at this "
        "size; the null is the value a gap takes with no bias at all (permutation).</p>"
    ]
    plot = ctx.path("bias_change_by_ratio.png")
    if plot.is_file():
        parts.append(img_file(plot, "bias change by ratio", "Paired change vs the real-only model"))
        ctx.used_images.add(plot)
    for a in answers:
        meta = (
            f"items: {esc(a['item_source'])}; size {esc(a['size'])}"
            f" (n = {esc(a['n_items'])} for the metric); real-only {esc(a['metric'])} = "
            f"{fmt_num(a['real_only_value'])} ± {fmt_num(a['half_width'])} (95% CI half-width)"
        )
        if a.get("form"):
            meta += f" ({esc(a['form'])} form)"
        if a.get("degenerate"):
            meta += " (zero width: every resample gave the same value, not an informative CI)"
        if a.get("null") == a.get("null") and a.get("null") is not None:
            meta += f"; permutation null {fmt_num(a['null'])}"
        if a.get("parse_rate") is not None:
            meta += f"; parse rate {fmt_num(a['parse_rate'])}"
        hw, target = a.get("half_width"), a.get("target_half_width")
        if a.get("size_for_target") and hw == hw and target and hw > target:
            meta += f"; about {esc(a['size_for_target'])} items would give ±{target:g}"
        several = len({d.get("arm") for d in a["deltas"]}) > 1
        rows = [
            [
                arm_label(d, several),
                f"{d['ratio']:g}",
                fmt_num(d["delta"]),
                fmt_ci(d["ci_low"], d["ci_high"]),
                "undefined"
                if d["delta"] != d["delta"]
                else "no (CI covers 0)"
                if d["covers_zero"]
                else "yes",
            ]
            for d in a["deltas"]
        ]
        table = (
            html_table(
                [
                    "bias type (arm)",
                    "ratio",
                    f"Δ {a['metric']}",
                    "item-level paired 95% CI",
                    "item CI excludes 0 (unadjusted)",
                ],
                rows,
            )
            if rows
            else ""
        )
        parts.append(
            f"<h3>{esc(a['task'])}</h3><p><b>{esc(a['sentence'])}</b></p>"
            f'<p class="note">{meta}</p>{table}'
        )
    notes = ctx.results.get("size_notes") or []
    if notes:
        parts.append('<p class="note">Sizes: ' + esc("; ".join(notes)) + "</p>")
    return Section("answers", "Item-level comparisons, per task", "".join(parts))


def _check_row(c: dict[str, Any]) -> dict[str, Any]:
    """One augmentation check: which arm and fallback rung wrote the set, and what it carried."""
    ci = c.get("ci") or {}
    diff = f"{fmt_num(c['difference'])} {fmt_ci(ci.get('low'), ci.get('high'))}"
    return {
        "bias type": c["bias_type"],
        "arm": c.get("arm", ""),
        "requested strength": fmt_num(c.get("requested_strength"), 2),
        "seed": c["seed"],
        "dimension": c["dimension"],
        "fallback": c.get("method", ""),
        "augmented": fmt_num(c["augmented"]),
        "reference": f"{fmt_num(c['real'])} ({c.get('reference', 'real')})",
        "difference (95% CI)": diff,
        "carried": ("yes, by construction" if c.get("carried_by_construction") else "yes")
        if c["carried"]
        else "NO",
        "model-written share": fmt_num(c.get("model_share"), 2),
        "empty texts": c.get("empty", 0),
    }


@register_section("inheritance", order=20)
def augmentation_checks(ctx: ReportContext) -> Section | None:
    checks = ctx.results.get("augmentation_checks") or []
    if not checks:
        return None
    rows = [_check_row(c) for c in checks]
    note = (
        "<p>Each biased set is measured per requested dimension against the control arm "
        "(the same templates and prompts with the bias removed, written by the same model), "
        "on a batch that was not used to choose the fallback rung; a dimension is carried "
        "when the lower CI bound of (augmented − control) is above zero. The control arm "
        "itself is measured against the real data. The model-written share is the mean share "
        "of each text's words the model wrote (the rest is the code-written opening); the "
        "filter rung keeps texts by the measure checked, so its 'carried' holds by "
        "construction. Sets that did not carry their bias are still used, and flagged below."
        "</p>"
    )
    return Section("augmentation", "Requested vs measured bias", note + _table(rows))


@register_section("inheritance", order=30)
def factor_correlations(ctx: ReportContext) -> Section | None:
    corr = ctx.results.get("correlations") or []
    if not corr:
        return None
    rows = [
        {
            "factor": r["factor"],
            "Spearman ρ": fmt_num(r["spearman"], 2),
            "95% CI": fmt_ci(r["ci_low"], r["ci_high"], 2),
            "points": r["n_points"],
        }
        for r in corr
    ]
    note = (
        "<p>Across the sweep's training sets (bias type × ratio × seed): rank correlation "
        "between each misalignment factor of the training set (against the real data) and the "
        "downstream harm (bias-metric change from the real-only model, averaged over the "
        "bias-related tasks after scaling each task by its spread).</p>"
    )
    return Section(
        "factors",
        "Which misalignment factor tracks the harm",
        note + _table(rows),
    )


@register_section("mitigation", order=20)
def mitigation_summary(ctx: ReportContext) -> Section | None:
    summary = ctx.results.get("summary") or []
    if not summary or "headline" in ctx.results:  # newer studies: sections/mitigation.py
        return None
    rows = [
        {
            "pipeline": s["pipeline"],
            "strategy": s["strategy"],
            "family": s["family"],
            "reduction": f"{s['reduction']:+.1%}" if s["reduction"] == s["reduction"] else "—",
            "95% CI": fmt_ci(s["ci_low"], s["ci_high"]),
            "lowest level": f"{s['reduction_lowest_level']:+.1%}"
            if s.get("reduction_lowest_level") == s.get("reduction_lowest_level")
            and s.get("reduction_lowest_level") is not None
            else "",
            "n": s["n"],
        }
        for s in summary
    ]
    links = "".join(
        f"<li>{esc(name)}: <code>{esc(path)}/report.html</code></li>"
        for name, path in (ctx.results.get("sub_runs") or {}).items()
    )
    note = (
        "<p>Reduction = (|baseline| − |mitigated|) / |baseline| of the bias metric, same seeds; "
        "control_cost is the change of the control tasks' performance. Families that disagree in "
        "direction are flagged.</p>"
    )
    body = note + _table(rows) + f"<p>Sub-run reports:</p><ul>{links}</ul>"
    ctx.skip.add("headline")
    return Section("mitigation", "Mitigation effects", body)
