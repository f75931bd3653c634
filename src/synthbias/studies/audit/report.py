"""Sections for ``synthbias audit`` folders: the gate, metrics by family, the misalignment factors,
per-group plots, and a sample browser with per-text scores.

A family's heading is the title it registered (:data:`synthbias.core.registry.METRIC_FAMILIES`),
so a newly registered family is reported like the built-in ones.
"""

from __future__ import annotations

import json
import math
from typing import Any

from synthbias.core.registry import METRIC_FAMILIES
from synthbias.report.html import (
    ReportContext,
    Section,
    esc,
    fmt_num,
    html_table,
    img_figure,
    register_section,
    sample_browser,
    value_cell,
)

#: Per-sample score columns shown in the browser, most useful first (others stay in the JSONL).
_SCORE_PRIORITY = (
    "rule.gender.stereotype_rate",
    "rule.gender.signed_bias",
    "embedding.gender.anchor_bias",
    "embedding.gender.mean_projection",
    "lexical.gender.stereotype_rate",
)
MAX_SCORE_COLUMNS = 5


@register_section("audit", order=5)
def gate(ctx: ReportContext) -> Section:
    ctx.skip.add("headline")  # the metric tables below replace the generic pivot
    g = ctx.results.get("gate") or {}
    checks = g.get("checks") or []
    if not checks:
        return Section(
            "gate", "Gate", "<p>No budgets were set (--max / --min): nothing to gate.</p>"
        )
    passed = g.get("passed", all(c.get("status") != "fail" for c in checks))
    verdict = (
        '<p><span class="badge pass">PASS</span> every budget holds.</p>'
        if passed
        else '<p><span class="badge fail">FAIL</span> '
        f"{sum(c.get('status') == 'fail' for c in checks)} budget(s) breached.</p>"
    )
    rows = []
    for c in checks:
        status = str(c.get("status"))
        badge = {"pass": "pass", "fail": "fail"}.get(status, "warning")
        rows.append(
            [
                f'<span class="badge {badge}">{esc(status)}</span>',
                esc(c.get("metric")),
                esc(c.get("kind")),
                fmt_num(c.get("bound")),
                value_cell(c.get("value"), c.get("ci_low"), c.get("ci_high")),
                esc(c.get("reason")),
            ]
        )
    table = html_table(
        ["status", "metric", "budget", "bound", "value [95% CI]", "reason"],
        rows,
        raw_columns=range(6),
    )
    for c in checks:
        if c.get("status") == "fail":
            ctx.flags.append({"severity": "fail", "message": c.get("reason"), "source": "gate"})
    return Section("gate", "Gate", verdict + table)


def _metric_rows(metrics: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, m in metrics.items():
        ci = m.get("ci") or {}
        groups = ", ".join(
            f"{g}={fmt_num(v)}" for g, v in list((m.get("per_group") or {}).items())[:8]
        )
        rows.append(
            [
                esc(name),
                value_cell(m.get("value"), ci.get("low"), ci.get("high")),
                fmt_num(m.get("n")),
                esc(groups),
            ]
        )
    return rows


#: Families shown in a section of their own instead of the metric tables.
OWN_SECTION = frozenset({"misalignment"})


def family_title(family: str) -> str:
    """The registered title of a metric family (its name when it is not registered)."""
    return METRIC_FAMILIES.meta(family)["title"] if family in METRIC_FAMILIES else family


@register_section("audit", order=20)
def metrics(ctx: ReportContext) -> Section | None:
    ms: dict[str, Any] = ctx.results.get("metrics") or {}
    if not ms:
        return None
    parts = []
    families = list(dict.fromkeys(n.split(".", 1)[0] for n in ms))
    for fam in families:
        if fam in OWN_SECTION:
            continue
        sub = {k: v for k, v in ms.items() if k.split(".", 1)[0] == fam}
        parts.append(f"<h3>{esc(family_title(fam))}</h3>")
        parts.append(
            html_table(
                ["metric", "value [95% CI]", "n", "per group"],
                _metric_rows(sub),
                raw_columns=range(4),
            )
        )
    _nan_flags(ctx, ms)
    return Section("metrics", "Metrics", "".join(parts))


def _nan_flags(ctx: ReportContext, ms: dict[str, Any]) -> None:
    undefined = [k for k, m in ms.items() if m.get("value") is None]
    if undefined:
        ctx.flags.append(
            {
                "severity": "info",
                "message": f"{len(undefined)} metric(s) undefined (no group terms found): "
                + ", ".join(undefined[:12])
                + (" …" if len(undefined) > 12 else ""),
                "source": "metrics",
            }
        )


_FACTORS = {
    "values": "Values: sentiment gap between groups (synthetic vs real)",
    "group_data": "Group data: representation and co-occurrence divergence (JSD)",
    "distribution": "Distribution: MMD² and Fréchet distance of sentence embeddings",
}


@register_section("audit", order=25)
def misalignment(ctx: ReportContext) -> Section | None:
    ms = {
        k: v for k, v in (ctx.results.get("metrics") or {}).items() if k.startswith("misalignment.")
    }
    if not ms:
        return None
    parts = [
        f"<p>Against the reference: {esc((ctx.results.get('info') or {}).get('reference'))}</p>"
    ]
    for factor, title in _FACTORS.items():
        sub = {k: v for k, v in ms.items() if k.split(".")[1] == factor}
        if sub:
            parts.append(f"<h3>{esc(title)}</h3>")
            parts.append(
                html_table(
                    ["metric", "value [95% CI]", "n", "per group"],
                    _metric_rows(sub),
                    raw_columns=range(4),
                )
            )
    return Section("misalignment", "Misalignment factors", "".join(parts))


@register_section("audit", order=30)
def representation_plots(ctx: ReportContext) -> Section | None:
    """Share of mentions per group for each audited axis."""
    ms = ctx.results.get("metrics") or {}
    axes = [
        (k.split(".")[1], m["per_group"])
        for k, m in ms.items()
        if k.startswith("lexical.") and k.endswith(".representation") and m.get("per_group")
    ]
    axes = [(a, {g: v for g, v in pg.items() if v is not None}) for a, pg in axes]
    axes = [(a, pg) for a, pg in axes if pg]
    if not axes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(axes)
    height = max(2.2, 0.28 * max(len(pg) for _, pg in axes) + 1.0)
    fig, axs = plt.subplots(1, n, figsize=(min(4.2 * n, 12), height), dpi=110, squeeze=False)
    for ax, (axis, pg) in zip(axs[0], axes, strict=True):
        groups = list(pg)
        ax.barh(groups, [pg[g] for g in groups], color="#2f6fb3")
        ax.set_title(axis, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
    fig.suptitle("Group representation (share of group mentions)", fontsize=10)
    fig.tight_layout()
    return Section(
        "representation", "Group representation", img_figure(fig, "group representation")
    )


def _score_columns(rows: list[dict[str, Any]]) -> list[str]:
    numeric = [
        k for k in rows[0] if "." in k and any(isinstance(r.get(k), (int, float)) for r in rows)
    ]
    ranked = [k for k in _SCORE_PRIORITY if k in numeric]
    ranked += [k for k in numeric if k not in ranked]
    return ranked[:MAX_SCORE_COLUMNS]


@register_section("audit", order=70)
def samples(ctx: ReportContext) -> Section | None:
    f = ctx.path(ctx.results.get("samples") or "samples.jsonl")
    if not f.is_file():
        return None
    rows: list[dict[str, Any]] = []
    total = 0
    with f.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            total += 1
            if len(rows) < ctx.max_samples:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    rows.append(obj)
    if not rows:
        return None
    groups = [k for k in rows[0] if k.endswith(" groups") or k == "rule label"]
    scores = _score_columns(rows)
    for r in rows:
        for k in scores:
            v = r.get(k)
            if isinstance(v, float) and math.isfinite(v):
                r[k] = round(v, 4)
    note = f"first {len(rows)} of {total} texts; all are in {f.name}" if total > len(rows) else ""
    note += ("; " if note else "") + "per-text scores of the metrics that have one"
    ctx.samples_rendered = True
    body = sample_browser(rows, ["id", *groups], groups, "text", note, after_text=scores)
    return Section("samples", "Samples", body)
