"""Console summary of an equilibrium run: direction, its base and off-topic share per level and
generation (each with its CI), then the fit — or why it is not interpretable — and the power."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from synthbias.measure.direction import CONDITIONAL, PAIRING, RATE
from synthbias.studies.equilibrium.summary import power_lines

MAX_REASONS = 4


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _cell(m: dict[str, Any] | None) -> str:
    if not m:
        return "—"
    ci = m.get("ci") or {}
    return f"{_fmt(m.get('value'))} [{_fmt(ci.get('low'))}, {_fmt(ci.get('high'))}]"


def fit_sentence(results: dict[str, Any]) -> str:
    """The headline: the fit with its CI, or "fit not interpretable, because …"."""
    eq = results.get("equilibrium") or {}
    interp = results.get("interpretation") or {}
    metric = results.get("fit_metric")
    chains = results.get("chains", 1)
    label = "single chain per level" if chains == 1 else f"{chains} chains per level"
    if "a" not in eq:
        fit = f"Equilibrium {eq.get('note', 'not fitted')}."
    else:
        ci = eq.get("ci") or {}
        verdict = "stable" if eq.get("stable") else "no attracting equilibrium (|c| >= 1)"
        fit = (
            f"Fit of {metric} ({label}): b* = {_fmt(eq.get('fixed_point'), 3)} "
            f"[95% CI {_fmt(ci.get('low'), 3)}, {_fmt(ci.get('high'), 3)}] from b_(k+1) = "
            f"{eq['a']:.3f} + {eq['c']:.3f}·b_k over {eq['n_points']} transitions; {verdict}; "
            f"{_fmt(eq.get('stable_share'))} of bootstrap fits stable; CI: {eq.get('method')}."
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
    title = (
        "Stereotype direction by initial level and generation (95% CI; "
        + (
            "one chain per level: CIs resample texts only"
            if chains == 1
            else f"mean of {chains} chains, CIs resample chains then texts"
        )
        + ")"
    )
    table = Table(title=title)
    for col in ("b0", "gen"):
        table.add_column(col, justify="right")
    table.add_column("conditional share\nstereo/(stereo+anti)")
    table.add_column("pairings")
    table.add_column("pairing rate")
    table.add_column("stereotype rate\n(all texts)")
    table.add_column("off topic")
    for m in extra:
        table.add_column(m)
    for lv in results["levels"]:
        for g in lv["generations"]:
            ms = g["metrics"]
            cells = [
                _cell(ms.get(CONDITIONAL)),
                f"{g.get('pairings', '—')}/{g['n']}",
                _cell(ms.get(PAIRING)),
                _cell(ms.get(RATE)),
                _cell(g.get("off_topic_share")),
            ]
            cells += [_cell(ms.get(m)) for m in extra]
            table.add_row(f"{lv['level']:g}", str(g["generation"]), *cells)
    console.print(table)
    console.print(fit_sentence(results), highlight=False, soft_wrap=True)
    for f in (results.get("interpretation") or {}).get("findings") or []:
        console.print(f"Finding: {f}.", highlight=False, soft_wrap=True)
    for line in power_lines(results):
        console.print(line, highlight=False, soft_wrap=True)
