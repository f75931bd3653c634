"""Two-level factorial experiments over replicates: main effects and two-way interactions.

Why: the attribution study manipulates three misalignment factors (values, group data,
distribution), two levels each, and asks which one moves a task's bias. Every arm of replicate
*i* shares its seeds, so the design is a randomised block with replicates as blocks: each
replicate gives one estimate of every effect (a contrast of its arms), and the interval of an
effect is the t-interval over those per-replicate estimates. The replicate x effect interaction
is then the error term, which is exactly the run-to-run variation a claim must survive.

* :func:`design_matrix`: the full 2^k design (cells in standard order) or the half fraction
  with defining relation I = AB...K (main effects aliased with (k-1)-way interactions; for
  k = 3 every main effect is aliased with a two-way interaction, which is then not estimable).
* :func:`effect_contrasts`: the contrasts estimated (main effects, then two-way interactions
  where the design resolves them), each as high − low (Yates: an interaction is half the
  difference of one factor's effect between the other's levels).
* :func:`factorial_table`: every contrast over replicates (:func:`replicate_estimate`: mean,
  t-interval, SE, 80 %-power MDE, p-value; "not replicated" below 3 replicates).
* :func:`calibrate`: coverage of those intervals by simulation, in the calibration bench's
  format (``bench/calibration.py`` can call it; the studies call the same functions).

Pure numpy (scipy only through :mod:`synthbias.stats.replicates` for t quantiles).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from synthbias.stats.replicates import ReplicateResult, replicate_estimate

Fraction = Literal["full", "half"]


def design_matrix(n_factors: int, fraction: Fraction = "full") -> np.ndarray:
    """Cells x factors in 0/1 coding: the full 2^k design, or the half fraction whose cells have
    an even number of high factors' complement (I = +AB..K in ±1 coding), in standard order."""
    if n_factors < 1:
        raise ValueError(f"a factorial design needs at least one factor, got {n_factors}")
    full = np.array(list(itertools.product((0, 1), repeat=n_factors)), dtype=int)
    if fraction == "full":
        return full
    if fraction != "half" or n_factors < 2:
        raise ValueError(f"fraction must be 'full' or 'half' (k >= 2), got {fraction!r}")
    coded = 2 * full - 1
    return full[np.prod(coded, axis=1) == 1]


def cell_label(levels: Sequence[int]) -> str:
    """A cell's name: its levels as digits (``"101"``: factors 1 and 3 high)."""
    return "".join(str(int(v)) for v in levels)


@dataclass(frozen=True)
class Contrast:
    """One estimated effect: its name, the factors it involves and its weights over the cells
    (an effect = weights · cell values, high − low)."""

    name: str
    factors: tuple[int, ...]
    weights: np.ndarray

    @property
    def kind(self) -> str:
        return "main" if len(self.factors) == 1 else "interaction"


def effect_contrasts(
    design: np.ndarray, names: Sequence[str], interactions: bool = True
) -> list[Contrast]:
    """The contrasts the design estimates: every main effect, then (with ``interactions``) every
    two-way interaction whose column is not aliased with a main effect.

    Raises ValueError when a main effect is aliased with another main effect (the design cannot
    separate them), or a factor has one level only.
    """
    d = np.asarray(design, dtype=float)
    if d.ndim != 2 or d.shape[1] != len(names):
        raise ValueError(f"design must be cells x {len(names)} factors, got shape {d.shape}")
    if np.any(d.min(axis=0) == d.max(axis=0)):
        raise ValueError("every factor needs two levels in the design")
    coded = 2 * (d - d.min(axis=0)) / (d.max(axis=0) - d.min(axis=0)) - 1
    half = len(d) / 2
    cols = [(n, (i,), coded[:, i]) for i, n in enumerate(names)]
    for (a, _, x), (b, _, y) in itertools.combinations(cols, 2):
        if abs(float(x @ y)) == len(d):
            raise ValueError(f"main effects {a} and {b} are aliased in this design")
    out = [Contrast(n, f, c / half) for n, f, c in cols]
    if not interactions:
        return out
    mains = [c for _, _, c in cols]
    for i, j in itertools.combinations(range(len(names)), 2):
        col = coded[:, i] * coded[:, j]
        if any(abs(float(col @ m)) == len(d) for m in mains):
            continue  # aliased with a main effect (a resolution III fraction)
        out.append(Contrast(f"{names[i]} x {names[j]}", (i, j), col / half))
    return out


def per_replicate_effects(values: np.ndarray, contrasts: Sequence[Contrast]) -> np.ndarray:
    """(R, contrasts): each replicate's estimate of each contrast from its (R, cells) values; a
    replicate with a missing (non-finite) cell gets NaN for every contrast."""
    y = np.atleast_2d(np.asarray(values, dtype=float))
    w = np.column_stack([c.weights for c in contrasts])
    out = np.nan_to_num(y) @ w
    out[~np.isfinite(y).all(axis=1)] = np.nan
    return out


def factorial_table(
    design: np.ndarray,
    values: np.ndarray,
    names: Sequence[str],
    *,
    interactions: bool = True,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Every effect of a two-level factorial over replicates, as rows: ``effect``, ``kind``
    (main / interaction), ``factors``, and the :class:`ReplicateResult` fields (estimate,
    t-interval over replicates, SE, df, 80 %-power MDE, p-value, per-replicate estimates).

    ``values`` is (R, cells), the cells in ``design``'s order; replicate *i* of every cell
    shares its seeds, so each contrast is paired within a replicate.
    """
    contrasts = effect_contrasts(design, names, interactions)
    per = per_replicate_effects(values, contrasts)
    rows = []
    for k, c in enumerate(contrasts):
        res: ReplicateResult = replicate_estimate(per[:, k], level=level)
        rows.append(
            {"effect": c.name, "kind": c.kind, "factors": [names[i] for i in c.factors]}
            | res.to_dict()
        )
    return rows


def aliases(design: np.ndarray, names: Sequence[str]) -> list[str]:
    """Plain-language alias notes of a fractional design (empty for a full factorial)."""
    d = np.asarray(design, dtype=float)
    if len(d) == 2 ** d.shape[1]:
        return []
    coded = 2 * d - 1
    notes = []
    for i, n in enumerate(names):
        for j, k in itertools.combinations([x for x in range(len(names)) if x != i], 2):
            if abs(float(coded[:, i] @ (coded[:, j] * coded[:, k]))) == len(d):
                notes.append(f"{n} is aliased with {names[j]} x {names[k]}")
    return notes


# --------------------------------------------------------------------------- simulation


def simulate_values(
    rng: np.random.Generator,
    design: np.ndarray,
    effects: Sequence[float],
    *,
    n_replicates: int,
    replicate_sd: float,
    replicate_x_factor_sd: float,
    cell_sd: float,
    interaction: tuple[int, int, float] | None = None,
) -> np.ndarray:
    """One simulated run, (R, cells): true main ``effects`` (high − low), an optional two-way
    ``interaction`` (i, j, effect), a replicate random intercept, replicate x factor random
    slopes (each factor's effect varies between replicates) and cell noise."""
    coded = 2 * np.asarray(design, dtype=float) - 1
    mean = coded @ np.asarray(effects, dtype=float) / 2
    if interaction is not None:
        i, j, e = interaction
        mean = mean + e * coded[:, i] * coded[:, j] / 2
    rep = rng.normal(0, replicate_sd, (n_replicates, 1))
    slopes = rng.normal(0, replicate_x_factor_sd, (n_replicates, coded.shape[1]))
    noise = rng.normal(0, cell_sd, (n_replicates, len(design)))
    return mean + rep + slopes @ coded.T / 2 + noise


#: The bench scenario: one factor (values) drives the bias, an interaction of the other two.
SCENARIO: dict[str, Any] = {
    "factors": ["values", "group_data", "distribution"],
    "effects": [0.05, 0.0, 0.0],
    "interaction": [1, 2, 0.02],
    "replicates": 5,
    "replicate_sd": 0.03,
    "replicate_x_factor_sd": 0.02,
    "cell_sd": 0.01,
}


def calibrate(
    n_sim: int = 400,
    seed: int = 0,
    scenario: dict[str, Any] | None = None,
    fraction: Fraction = "full",
) -> list[dict[str, Any]]:
    """Coverage of the attribution study's effect intervals by simulation, one entry per
    estimator in ``bench/calibration.py``'s format (``name``, ``study``, ``scenario``,
    ``between_replicate_sd``, ``n_sim``, ``nominal``, ``coverage``, ``mean_width``).

    Estimators: the driving factor's main effect, a null main effect, and (full design) the
    two-way interaction; each interval is formed by :func:`factorial_table`, as in the study.
    """
    s = dict(SCENARIO if scenario is None else scenario)
    design = design_matrix(len(s["factors"]), fraction)
    inter = tuple(s["interaction"]) if s.get("interaction") and fraction == "full" else None
    truth = dict(zip(s["factors"], s["effects"], strict=True))
    if inter is not None:
        i, j, e = inter
        truth[f"{s['factors'][int(i)]} x {s['factors'][int(j)]}"] = e
    driver = s["factors"][int(np.argmax(np.abs(s["effects"])))]
    null = next(f for f, e in zip(s["factors"], s["effects"], strict=True) if e == 0)
    targets = [driver, null] + ([next(k for k in truth if " x " in k)] if inter else [])
    rng = np.random.default_rng(seed)
    hits = {t: [] for t in targets}
    widths = {t: [] for t in targets}
    for _ in range(n_sim):
        v = simulate_values(
            rng,
            design,
            s["effects"],
            n_replicates=s["replicates"],
            replicate_sd=s["replicate_sd"],
            replicate_x_factor_sd=s["replicate_x_factor_sd"],
            cell_sd=s["cell_sd"],
            interaction=inter,  # type: ignore[arg-type]
        )
        rows = {r["effect"]: r for r in factorial_table(design, v, s["factors"])}
        for t in targets:
            lo, hi = rows[t]["ci_low"], rows[t]["ci_high"]
            hits[t].append(lo is not None and lo <= truth[t] <= hi)
            widths[t].append(math.nan if lo is None else hi - lo)
    label = {driver: "driving factor", null: "null factor"}
    return [
        {
            "name": f"attribution {label.get(t, 'two-way interaction')} effect "
            f"({'2x2x2' if fraction == 'full' else '2^(3-1)'}, t over replicates)",
            "study": "attribution",
            "scenario": s | {"fraction": fraction, "estimand": t, "truth": truth[t]},
            "between_replicate_sd": s["replicate_x_factor_sd"],
            "n_sim": n_sim,
            "nominal": 0.95,
            "coverage": float(np.mean(hits[t])),
            "mean_width": float(np.nanmean(widths[t])),
        }
        for t in targets
    ]
