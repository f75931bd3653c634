"""Plan a replicated design from a pilot run: the replicates (and items) a target effect needs.

A headline is a mean over replicates, so its power rests on the SD *between* replicates, which
only a run can show. This module reads a pilot run's ``results.json`` and, per headline cell,
takes the SD of the stored per-replicate estimates and, where the run stores item-level figures,
the within-replicate item SD (equilibrium: the binomial SD of a share over each chain's pairings
or texts; inheritance: each replicate's item CI, as SE × sqrt(items)). With those it states the
80 %-power MDE of the pilot's own design and the design a target effect needs
(:mod:`synthbias.stats.power`: :func:`~synthbias.stats.power.plan_replicates` at the pilot's
items, :func:`~synthbias.stats.power.plan_items` at the pilot's replicates).

The default target is the paper's effect where the study has one (equilibrium: +36 % from
b0 = 0.1 and −26 % from b0 = 0.6, absolute changes of the fit share, labelled as the paper's);
elsewhere the user names it. Pure functions over a results dict (and a config dict, for the
advice a config without a run gets); the CLI and the API read the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.measure.direction import CODE_BALANCED, CONDITIONAL, PAIRING, RATE
from synthbias.stats.power import (
    MIN_REPLICATES,
    between_component,
    mde,
    plan_items,
    plan_replicates,
)
from synthbias.studies.equilibrium.summary import PAPER_EFFECTS, PAPER_MODEL

RESULTS_FILE = "results.json"
STUDIES = ("equilibrium", "inheritance", "mitigation")
#: Equilibrium metrics that are shares of a per-chain count: metric -> (numerator, denominator)
#: keys of a generation's ``chains`` entries (the binomial within-chain SD needs them).
#: The code-balanced share ½[p_male-coded + p_female-coded] uses the pooled counts: with the
#: prompts balanced over the two codes (n/2 pairings each) its binomial variance
#: ¼[p(1 − p)/(n/2) · 2] equals the pooled share's p(1 − p)/n, and the chains do not store
#: per-code counts.
SHARE_COUNTS = {
    CONDITIONAL: ("stereotypical", "pairings"),
    CODE_BALANCED: ("stereotypical", "pairings"),
    RATE: ("stereotypical", "n"),
    PAIRING: ("pairings", "n"),
}
CONVENTION = (
    "two-sided test at level alpha; MDE = (t_(1-alpha/2) + t_power) x SE on R - 1 df; "
    "SE = sqrt(between^2 / R + within^2 / (R x items))"
)


class PlanError(ValueError):
    """The input cannot be planned from (no run, not a study with replicates, no target)."""


@dataclass(frozen=True)
class Cell:
    """One headline cell of a pilot: its per-replicate estimates and item-level figures."""

    study: str
    cell: str
    metric: str
    values: tuple[float, ...]
    items: float | None = None
    within_sd: float | None = None
    item_unit: str | None = None
    within_source: str | None = None
    level: float | None = None
    texts_per_item: float | None = None


# --------------------------------------------------------------------------- reading


def read_results(path: str | Path) -> dict[str, Any]:
    """A pilot's ``results.json`` (``path``: the run folder or the file itself)."""
    p = Path(path)
    if not p.exists():
        raise PlanError(f"{p}: no such file or folder")
    file = p / RESULTS_FILE if p.is_dir() else p
    if not file.is_file():
        raise PlanError(
            f"{p}: no {RESULTS_FILE}, so not a finished run; finish it (synthbias run CONFIG "
            f"--out {p}) or give a config to get the pilot command"
        )
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PlanError(f"{file}: not readable JSON ({exc})") from exc
    if not isinstance(results, dict):
        raise PlanError(f"{file}: not a results.json (a JSON object expected)")
    return results


def _finite(values: Sequence[Any]) -> tuple[float, ...]:
    out = []
    for v in values:
        if isinstance(v, int | float) and math.isfinite(v):
            out.append(float(v))
    return tuple(out)


def equilibrium_cells(results: Mapping[str, Any]) -> list[Cell]:
    """Per level and generated generation (generation 0 is fixed by design): the fit metric's
    per-chain values and, for a share of a per-chain count, the binomial within-chain SD."""
    metric = results.get("fit_metric") or CONDITIONAL
    counts = SHARE_COUNTS.get(metric)
    cells = []
    for lv in results.get("levels") or []:
        for g in lv.get("generations") or []:
            if g.get("generation", 0) == 0:
                continue
            m = (g.get("metrics") or {}).get(metric) or {}
            cell = Cell(
                "equilibrium",
                f"b0 = {lv['level']:g}, gen {g['generation']}",
                metric,
                _finite(m.get("per_chain") or []),
                level=float(lv["level"]),
            )
            cells.append(_with_binomial(cell, g.get("chains") or [], counts))
    return cells


def _with_binomial(cell: Cell, chains: Sequence[Mapping[str, Any]], counts: Any) -> Cell:
    """The cell with the mean binomial variance p(1 − p) of its chains' shares as within²."""
    if counts is None:
        return cell
    num, den = counts
    used = [(c.get(num, 0), c.get(den, 0), c.get("n", 0)) for c in chains if c.get(den, 0) > 0]
    if not used:
        return cell
    var = float(np.mean([(k / d) * (1 - k / d) for k, d, _ in used]))
    items = float(np.mean([d for _, d, _ in used]))
    texts = float(np.mean([n for _, _, n in used]))
    unit = "pairings" if den == "pairings" else "texts"
    return Cell(
        cell.study,
        cell.cell,
        cell.metric,
        cell.values,
        items=items,
        within_sd=math.sqrt(var),
        item_unit=unit,
        within_source="binomial SD of each chain's share, mean over chains",
        level=cell.level,
        texts_per_item=texts / items if unit == "pairings" and items else None,
    )


INHERITANCE_CELL = ("task", "bias_type", "arm", "ratio", "reference")


def _inheritance_label(row: Mapping[str, Any]) -> str:
    return (
        f"{row.get('task')} · {row.get('bias_type')} · {row.get('arm')} vs "
        f"{row.get('reference')} · ratio {row.get('ratio')}"
    )


def inheritance_cells(results: Mapping[str, Any]) -> list[Cell]:
    """Per headline cell (task × bias type × arm × ratio × reference): the per-replicate paired
    changes and the within-replicate item SD from their item CIs (SE = width / (2 z), item SD
    = SE × sqrt(items), mean variance over replicates)."""
    from scipy import stats as sps

    level = float(((results.get("config") or {}).get("measure") or {}).get("ci_level", 0.95))
    z = float(sps.norm.ppf(0.5 + level / 2))
    per: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in results.get("replicate_effects") or []:
        per.setdefault(tuple(r.get(k) for k in INHERITANCE_CELL), []).append(r)
    heads = results.get("headlines") or []
    keys = [tuple(h.get(k) for k in INHERITANCE_CELL) for h in heads] or list(per)
    by_head = {tuple(h.get(k) for k in INHERITANCE_CELL): h for h in heads}
    cells = []
    for key in keys:
        rows = sorted(per.get(key, []), key=lambda r: r.get("replicate", 0))
        head = by_head.get(key) or {}
        values = _finite([r.get("delta") for r in rows]) if rows else ()
        if not values:
            values = _finite(head.get("per_replicate") or [])
        label_row = dict(zip(INHERITANCE_CELL, key, strict=True))
        metric = head.get("metric") or (rows[0].get("metric") if rows else "")
        cell = Cell("inheritance", _inheritance_label(label_row), str(metric), values)
        cells.append(_with_item_ci(cell, rows, z))
    return cells


def _with_item_ci(cell: Cell, rows: Sequence[Mapping[str, Any]], z: float) -> Cell:
    parts = []
    for r in rows:
        lo, hi, n = r.get("item_ci_low"), r.get("item_ci_high"), r.get("n_items")
        if None in (lo, hi, n) or not n or not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        parts.append((((hi - lo) / (2 * z)) ** 2 * n, n))
    if not parts:
        return cell
    return Cell(
        cell.study,
        cell.cell,
        cell.metric,
        cell.values,
        items=float(np.mean([n for _, n in parts])),
        within_sd=math.sqrt(float(np.mean([v for v, _ in parts]))),
        item_unit="task items",
        within_source="each replicate's item CI: SE = width / (2 z), SD = SE x sqrt(items)",
    )


def mitigation_cells(results: Mapping[str, Any]) -> list[Cell]:
    """Per headline (pipeline × strategy × headline family): the per-replicate paired
    differences strategy − baseline (no item-level figure per replicate is stored)."""
    return [
        Cell(
            "mitigation",
            f"{s.get('pipeline')} · {s.get('strategy')}",
            str(s.get("metric")),
            _finite(s.get("per_replicate") or []),
        )
        for s in results.get("summary") or []
        if s.get("headline")
    ]


CELLS = {
    "equilibrium": equilibrium_cells,
    "inheritance": inheritance_cells,
    "mitigation": mitigation_cells,
}


def pilot_cells(results: Mapping[str, Any]) -> list[Cell]:
    """The headline cells of a pilot run of any study with replicates."""
    kind = results.get("kind")
    if kind not in CELLS:
        raise PlanError(
            f"a {kind!r} results.json has no replicates to plan from; give the folder of an "
            f"{', '.join(STUDIES[:-1])} or {STUDIES[-1]} run"
        )
    cells = CELLS[kind](results)
    if not cells:
        raise PlanError(f"the {kind} run stores no headline cells with per-replicate values")
    return cells


# --------------------------------------------------------------------------- planning


def check_settings(effect: float | None, power: float, alpha: float) -> None:
    """Refuse a target, power or level that cannot be planned for."""
    if effect is not None and (not math.isfinite(effect) or effect == 0):
        raise PlanError(f"--effect must be a non-zero number, got {effect}")
    if not 0.5 <= power < 1:
        raise PlanError(f"--power must be in [0.5, 1), got {power}")
    if not 0 < alpha < 0.5:
        raise PlanError(f"--alpha must be in (0, 0.5), got {alpha}")


def target_for(cell: Cell, effect: float | None) -> tuple[float | None, str]:
    """The cell's target effect and where it comes from (``--effect`` or the paper's)."""
    if effect is not None:
        return effect, "--effect"
    if cell.study == "equilibrium" and cell.level is not None:
        for eff in PAPER_EFFECTS:
            if math.isclose(eff["level"], cell.level):
                return (
                    eff["relative_change"] * eff["level"],
                    f"the paper's ({PAPER_MODEL}): {eff['label']}",
                )
    return None, ""


def plan_cell(
    cell: Cell, target: float, source: str, power: float = 0.8, alpha: float = 0.05
) -> dict[str, Any]:
    """One row: the pilot's R, items and SDs, its MDE, and the R (at the pilot's items) and
    items (at the pilot's R) that detect ``target`` at ``power``."""
    r = len(cell.values)
    row: dict[str, Any] = {
        "study": cell.study,
        "cell": cell.cell,
        "metric": cell.metric,
        "replicates": r,
        "estimate": float(np.mean(cell.values)) if r else None,
        "items": cell.items,
        "item_unit": cell.item_unit,
        "sd": None,
        "within_sd": cell.within_sd,
        "within_source": cell.within_source,
        "between_sd": None,
        "mde_pilot": None,
        "target": target,
        "target_source": source,
        "power": power,
        "alpha": alpha,
        "replicates_needed": None,
        "mde_at_needed": None,
        "items_needed": None,
        "texts_needed": None,
        "note": "",
    }
    if r < 2:
        row["note"] = f"{r} replicate(s) with a value: an SD needs ≥ 2 (a pilot ≥ {MIN_REPLICATES})"
        return row
    sd = float(np.std(cell.values, ddof=1))
    row["sd"] = sd
    if r >= MIN_REPLICATES:
        row["mde_pilot"] = mde(sd / math.sqrt(r), alpha=alpha, power=power, df=r - 1)
    if sd == 0:
        row["note"] = "every replicate gave the same value (SD 0): no usable pilot variance"
        return row
    within, items = cell.within_sd, cell.items
    use_items = within is not None and items is not None and items > 0
    n = max(1, round(items)) if use_items else None  # type: ignore[arg-type]
    between = between_component(sd, within, n) if use_items else sd  # type: ignore[arg-type]
    row["between_sd"] = between
    need = plan_replicates(target, between, within or 0.0, n, alpha=alpha, power=power)
    row["replicates_needed"], row["mde_at_needed"] = need.replicates, need.mde
    notes = [need.note] if need.note else []
    if use_items and between == 0:
        notes.append(
            "the replicates agree more than item noise allows (SD of reps ≤ SD within / "
            "sqrt(items)): the plan uses the item-noise floor"
        )
    if use_items and r >= MIN_REPLICATES:
        by_items = plan_items(target, between, within, r, alpha=alpha, power=power)  # type: ignore[arg-type]
        row["items_needed"] = by_items.items
        if by_items.note:
            notes.append(f"items: {by_items.note}")
        if by_items.items is not None and cell.texts_per_item:
            row["texts_needed"] = math.ceil(by_items.items * cell.texts_per_item)
    elif not use_items:
        notes.append("no item-level figure stored: the SD is taken whole")
    row["note"] = "; ".join(notes)
    return row


def plan_rows(
    results: Mapping[str, Any],
    effect: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Per headline cell of a pilot run, its variances and the design ``effect`` needs.

    ``effect`` (absolute, in the metric's units; its sign is ignored) applies to every cell;
    without it the paper's effects are used where the study has them (equilibrium: the cells of
    b0 = 0.1 and 0.6 only), else :class:`PlanError` asks for one.
    """
    check_settings(effect, power, alpha)
    cells = pilot_cells(results)
    rows = []
    for cell in cells:
        target, source = target_for(cell, effect)
        if target is not None:
            rows.append(plan_cell(cell, target, source, power, alpha))
    if not rows:
        kind = results.get("kind")
        where = (
            "this run has neither b0 = 0.1 nor b0 = 0.6, the levels of the paper's effects"
            if kind == "equilibrium"
            else f"the paper reports no effect for the {kind} study in these units"
        )
        raise PlanError(f"a target effect is required (--effect X, in the metric's units): {where}")
    return rows


# --------------------------------------------------------------------------- a config, no run


def config_replicates(config: Mapping[str, Any]) -> list[tuple[str, int]]:
    """The replicate units of a config (a dumped ExperimentConfig) and their number R."""
    kind = config.get("kind")
    study = config.get("study") or {}
    inh = config.get("inheritance") or {}
    if kind == "equilibrium":
        return [("chains per level", int(study.get("chains", 1)))]
    if kind == "inheritance":
        return [("replicates (inheritance.seeds)", len(inh.get("seeds") or [0]))]
    if kind == "mitigation":
        ms = config.get("mitigation_study") or {}
        units = []
        if ms.get("run_equilibrium", True):
            r = int(study.get("chains", 1)) * len(ms.get("seeds") or [0])
            units.append(("recursive: chains x mitigation_study.seeds", r))
        if ms.get("run_inheritance", True):
            units.append(("ratio: inheritance.seeds", len(inh.get("seeds") or [0])))
        return units
    raise PlanError(f"a config of kind {kind!r} has no replicates to plan")


def config_advice(
    config: Mapping[str, Any], source: str, power: float = 0.8, alpha: float = 0.05
) -> dict[str, Any]:
    """What a config without a run gets: the pilot command, and per replicate unit the MDE as a
    multiple of the (unknown) between-replicate SD at the config's own R."""
    check_settings(None, power, alpha)
    units = []
    for name, r in config_replicates(config):
        k = mde(1 / math.sqrt(r), alpha=alpha, power=power, df=r - 1) if r >= 2 else None
        units.append(
            {
                "unit": name,
                "replicates": r,
                "mde_per_sd": k if r >= MIN_REPLICATES else None,
                "note": ""
                if r >= MIN_REPLICATES
                else f"fewer than {MIN_REPLICATES} replicates: no interval, no MDE; raise it "
                f"to at least {MIN_REPLICATES} for the pilot",
            }
        )
    out = f"runs/{Path(source).stem}-pilot"
    return {
        "kind": config.get("kind"),
        "source": source,
        "units": units,
        "commands": [f"synthbias run {source} --out {out}", f"synthbias plan {out}"],
        "power": power,
        "alpha": alpha,
    }


__all__ = [
    "CONVENTION",
    "Cell",
    "PlanError",
    "check_settings",
    "config_advice",
    "config_replicates",
    "equilibrium_cells",
    "inheritance_cells",
    "mitigation_cells",
    "pilot_cells",
    "plan_cell",
    "plan_rows",
    "read_results",
    "target_for",
]
