"""Console summary of an equilibrium run: direction, its base and off-topic share per level and
generation (each the mean over chains with its CI and, for the fit metric, the 80 %-power MDE),
then the fit — slope first, b* with its Fieller interval, or why it is not interpretable — and
the power."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from synthbias.measure.direction import (
    CODE_BALANCED,
    CONDITIONAL,
    PAIRING,
    PAIRING_FEMALE_CODED,
    PAIRING_MALE_CODED,
    RATE,
)
from synthbias.studies.equilibrium.fit import fixed_point_text, map_text, slope_text
from synthbias.studies.equilibrium.summary import (
    cell_power,
    fmt_share,
    power_lines,
    seed_share_notes,
)

MAX_REASONS = 4


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _cell(m: dict[str, Any] | None) -> str:
    """``0.42 [0.30, 0.55]`` over chains; below 3 chains ``0.42 n.r. (texts [0.35, 0.49])``:
    not replicated, with the text-level bootstrap CI as the secondary figure."""
    if not m:
        return "—"
    ci = m.get("ci")
    if ci:
        return f"{_fmt(m.get('value'))} [{_fmt(ci.get('low'))}, {_fmt(ci.get('high'))}]"
    tci = m.get("text_ci") or {}
    if tci.get("low") is None:
        return f"{_fmt(m.get('value'))} n.r."
    return f"{_fmt(m.get('value'))} n.r. (texts [{_fmt(tci.get('low'))}, {_fmt(tci.get('high'))}])"


def _seed_cell(m: dict[str, Any] | None) -> str:
    """Generation 0 is written to its level: a design value, no interval."""
    return f"{_fmt((m or {}).get('value'))} (seed)" if m else "—"


def _mde_cell(m: dict[str, Any] | None, generation: int) -> str:
    if generation == 0:
        return "fixed"
    p = cell_power(m)
    return f"±{fmt_share(p['mde_80'], 2)}" if p["mde_80"] is not None else "—"


def fit_sentence(results: dict[str, Any]) -> str:
    """The headline: the slope c with its CI first, then b* (Fieller; "unbounded" when c's CI
    reaches 1), or "fit not interpretable, because …"."""
    eq = results.get("equilibrium") or {}
    interp = results.get("interpretation") or {}
    metric = results.get("fit_metric")
    chains = results.get("chains", 1)
    label = "single chain per level" if chains == 1 else f"{chains} chains per level"
    if "a" not in eq:
        fit = f"Equilibrium {eq.get('note', 'not fitted')}."
    else:
        verdict = "stable" if eq.get("stable") else "no attracting equilibrium (|c| >= 1)"
        first = eq.get("first_generation", 0)
        span = "generation 0 fixed" if first == 0 else f"generation ≥ {first} transitions only"
        fit = (
            f"Fit of {metric} ({label}; {span}): slope {slope_text(eq)}; "
            f"{fixed_point_text(eq)}; map {map_text(eq['a'], eq['c'])} over "
            f"{eq['n_points']} transitions of {eq.get('n_chains')} chains; {verdict} at the "
            f"point estimate; CI: {eq.get('method')}."
        )
    if interp and not interp.get("interpretable", True):
        reasons = interp.get("reasons") or ["of unknown reasons"]
        shown = "; ".join(reasons[:MAX_REASONS])
        if len(reasons) > MAX_REASONS:
            shown += f"; and {len(reasons) - MAX_REASONS} more (results.json: interpretation)"
        return f"Fit not interpretable, because {shown}. (For the record only: {fit})"
    return fit


def print_equilibrium(results: dict[str, Any], console: Console) -> None:
    """Print the per-generation table, the fit (or why not), findings and power."""
    first = results["levels"][0]["generations"][0]["metrics"]
    extra = [m for m in ("embedding.gender.anchor_bias",) if m in first]
    chains = results.get("chains", 1)
    inference = results.get("inference", "t")
    title = (
        f"Stereotype direction by initial level and generation (mean of {chains} chain(s); "
        + (
            f"95% CI over chains ({'t' if inference == 't' else 'two-stage bootstrap'}); "
            "MDE at 80% power"
            if chains >= 3
            else "n.r. = not replicated (< 3 chains): no interval; in brackets the text-level "
            "bootstrap CI, within-run variation only"
        )
        + ")"
    )
    metric = results.get("fit_metric", CONDITIONAL)
    table = Table(title=title)
    for col in ("b0", "gen"):
        table.add_column(col, justify="right")
    table.add_column("code-balanced share\n½[P(s|male)+P(s|female)]")
    table.add_column("pooled share (secondary)\nstereo/(stereo+anti),\ncodes pooled")
    table.add_column("MDE 80%\n(fit metric)")
    table.add_column("pairings")
    table.add_column("pairing rate")
    table.add_column("pairing rate\nmale- / female-coded")
    table.add_column("stereotype rate\n(all texts)")
    table.add_column("off topic")
    for m in extra:
        table.add_column(m)
    for lv in results["levels"]:
        for g in lv["generations"]:
            ms = g["metrics"]
            cell = _seed_cell if g["generation"] == 0 else _cell
            cells = [
                cell(ms.get(CODE_BALANCED)),
                cell(ms.get(CONDITIONAL)),
                _mde_cell(ms.get(metric), g["generation"]),
                f"{g.get('pairings', '—')}/{g['n']}",
                cell(ms.get(PAIRING)),
                f"{cell(ms.get(PAIRING_MALE_CODED))} / {cell(ms.get(PAIRING_FEMALE_CODED))}",
                cell(ms.get(RATE)),
                cell(g.get("off_topic_share")),
            ]
            cells += [cell(ms.get(m)) for m in extra]
            table.add_row(f"{lv['level']:g}", str(g["generation"]), *cells)
    console.print(table)
    for note in seed_share_notes(results):
        console.print(f"Note: {note}.", highlight=False, soft_wrap=True)
    console.print(fit_sentence(results), highlight=False, soft_wrap=True)
    for f in (results.get("interpretation") or {}).get("findings") or []:
        console.print(f"Finding: {f}.", highlight=False, soft_wrap=True)
    for line in power_lines(results):
        console.print(line, highlight=False, soft_wrap=True)
