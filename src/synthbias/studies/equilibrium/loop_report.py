"""The report page of a real-data-in-the-loop run (``kind: equilibrium_loop``): the prediction
from generation 0 → 1 first, then predicted vs observed per regime and real share, and the plot.

Each cell's own run folder keeps its equilibrium report; this page is the comparison a user
reads first, so it says what was predicted, from what, and whether the chains landed there.
"""

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

KIND = "equilibrium_loop"


def _est(d: dict[str, Any]) -> str:
    if d.get("estimate") is None:
        return "—"
    if d.get("ci_low") is None or d.get("ci_high") is None:
        return f"{fmt_num(d['estimate'])} ({d.get('status', 'no interval')})"
    return f"{fmt_num(d['estimate'])} {fmt_ci(d['ci_low'], d['ci_high'])}"


def _bound(b: dict[str, Any]) -> str:
    v = b.get("bound")
    return "none (ρ = 0)" if v is None else fmt_num(v)


def _rows(cells: list[dict[str, Any]]) -> list[list[str]]:
    return [
        [
            c["regime"],
            f"{c['real_share']:g}",
            fmt_num(c["b_real"]),
            _est(c["predicted_b_star"]),
            f"gens {c['window'][0]}–{c['window'][1]}: {_est(c['predicted_window'])}",
            _est(c["observed_window"]),
            "yes" if c["covers"] else "no",
            _bound(c["bound"]),
        ]
        for c in cells
    ]


@register_section(KIND, order=15)
def loop_prediction(ctx: ReportContext) -> Section | None:
    """Predicted (from generation 0 → 1) vs observed b* per regime and real share."""
    res = ctx.results
    cells = res.get("cells") or []
    one = res.get("one_generation") or {}
    if not cells or "a" not in one:
        return None
    cov = res.get("coverage") or {}
    ci = one.get("c_ci") or {}
    intro = (
        f"<p>One-generation map ({esc(res.get('fit_metric', ''))}, generation 0 → 1 of "
        f"{one.get('n_chains')} chains): f(x) = {fmt_num(one['a'])} + {fmt_num(one['c'])}·x, "
        f"slope c {fmt_ci(ci.get('low'), ci.get('high'))}. Predicted b* = "
        "(a + c·ρ·b_r) / (1 − c·(1 − ρ)) for a share ρ of real examples at share b_r; the "
        f"Taori–Hashimoto bound beside it ({esc(res.get('bound_source', ''))}).</p>"
        f"<p>The prediction's interval covers the observed mean in {cov.get('window_covers')} "
        f"of {cov.get('cells')} cells; the b* interval in {cov.get('b_star_covers')}; observed "
        f"− predicted is consistent with 0 in {cov.get('agrees')}. Observed: each chain's mean "
        "over the window, then the mean over chains with a t-interval.</p>"
    )
    head = [
        "regime",
        "ρ real",
        "b_r",
        "predicted b*",
        "predicted (window)",
        "observed (window)",
        "covers",
        "T–H bound",
    ]
    body = intro + html_table(head, _rows(cells))
    plot = ctx.path("loop_trajectories.png")
    if plot.exists():
        ctx.used_images.add(plot)
        body += img_file(plot, "observed trajectories with the predicted fixed point and bound")
    return Section("loop", "Real data in the loop: predicted vs observed", body)
