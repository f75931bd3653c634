"""Report pages of an attribution run: the answer, the manipulation checks, the effects per task
and the observational Spearman view (registered for the ``attribution`` kind)."""

from __future__ import annotations

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
from synthbias.studies.attribution.analysis import LABELS
from synthbias.studies.attribution.console import design_line


@register_section("attribution", order=3)
def answer(ctx: ReportContext) -> Section | None:
    """One sentence per task, first: which factor moves its bias, or the MDE."""
    lines = ctx.results.get("answers") or []
    if not lines:
        return None
    body = "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in lines) + "</ul>"
    body += f"<p class='note'>{esc(design_line(ctx.results))}</p>"
    return Section("answer", "Which factor drives which task's bias", body)


@register_section("attribution", order=10)
def manipulation_checks(ctx: ReportContext) -> Section | None:
    """Each factor's main effect on each misalignment measure, the verdicts and the arms."""
    effects = ctx.results.get("measure_effects") or {}
    if not effects:
        return None
    factors = ctx.results["design"]["factors"]
    rows = [
        [
            m,
            *(
                f"{fmt_num(r['estimate'], 4)} {fmt_ci(r['ci_low'], r['ci_high'], 4)}"
                for r in by.values()
            ),
        ]
        for m, by in effects.items()
    ]
    parts = [
        "<p>Measures of each arm's augmented set against the real data; the effect of a factor "
        "is its high − low contrast, fitted per replicate, t over replicates. A factor passes "
        "when it moved its own measures (interval above 0) and no other factor's measure "
        "detectably by more than the leak tolerance of that factor's own effect; a factor that "
        "fails has its effects on harm reported but not attributed.</p>",
        html_table(["measure", *(LABELS[f] for f in factors)], rows),
    ]
    verdicts = [
        [LABELS[c["factor"]], "passed" if c["passed"] else "FAILED", "; ".join(c["reasons"])]
        for c in ctx.results.get("factor_checks") or []
    ]
    parts.append(html_table(["factor", "check", "reasons"], verdicts))
    arms = [
        [a["arm"], a["status"], "; ".join(a["reasons"])]
        for a in ctx.results.get("arm_checks") or []
    ]
    parts.append("<h3>Per arm (vs the all-balanced arm v0-g0-d0, paired)</h3>")
    parts.append(html_table(["arm", "check", "reasons"], arms))
    return Section("checks", "Manipulation checks", "".join(parts))


def _effect_row(r: dict[str, Any]) -> list[str]:
    replicated = r["status"] == "replicated"
    return [
        " x ".join(LABELS[f] for f in r["factors"]),
        fmt_num(r["estimate"], 4),
        fmt_ci(r["ci_low"], r["ci_high"], 4) if replicated else "not replicated",
        fmt_num(r["mde_80"], 4),
        fmt_num(r["p_adjusted"]),
        ("yes" if r["detected"] else "no") if replicated else "—",
        "" if r["attributed"] else "not attributed (check failed)",
        " ".join(fmt_num(v, 4) for v in r.get("per_replicate") or []),
    ]


@register_section("attribution", order=20)
def harm_effects(ctx: ReportContext) -> Section | None:
    """Per task: main effects and two-way interactions on the signed bias metric."""
    rows = ctx.results.get("effects") or []
    if not rows:
        return None
    header = [
        "effect",
        "estimate",
        "95% CI",
        "MDE 80%",
        "adjusted p",
        "detected",
        "note",
        "per replicate",
    ]
    parts = [
        "<p>Signed target − contrast bias metric of the chosen bias type (+ = towards the "
        "stereotype), per task; never averaged over tasks. Effects are high − low levels.</p>"
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        part = [r for r in rows if r["task"] == task]
        parts.append(
            f"<h3>{esc(task)}: {esc(part[0]['metric'])}</h3>"
            + html_table(header, [_effect_row(r) for r in part])
        )
    return Section("effects", "Effects of the factors on each task's bias", "".join(parts))


@register_section("attribution", order=30)
def spearman(ctx: ReportContext) -> Section | None:
    """The observational view, secondary."""
    rows = ctx.results.get("spearman") or []
    if not rows:
        return None
    table = [
        [
            r["task"],
            r["factor"],
            r["n_points"],
            fmt_num(r["association"], 2),
            fmt_ci(r["ci_low"], r["ci_high"], 2),
            r["note"],
        ]
        for r in rows
    ]
    note = (
        "<p>Secondary: Spearman of each measured factor with the signed bias over the "
        "(arm, replicate) units, bootstrap over units. The factors were manipulated; this only "
        "shows how the measured magnitudes track the harm.</p>"
    )
    return Section(
        "spearman",
        "Observational view: measured factor vs harm",
        note + html_table(["task", "measure", "units", "Spearman", "95% CI", "note"], table),
    )
