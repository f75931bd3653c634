"""Calibration of every study's headline interval: simulate with a known truth and run-to-run
variation, form the interval with the functions the studies call, count how often it covers.

Each estimator simulates ``--n-sim`` replicated experiments (vectorised over experiments) and
forms its interval with :mod:`synthbias.stats.replicates` or :mod:`synthbias.stats.fixed_point`:

* **equilibrium** — chains at design levels b0 (generation 0 fixed by design), b_{k+1} drawn as a
  binomial share of ``texts`` texts around a + c·b_k + chain effect (persistent, per chain) +
  innovation (per generation: each generation's training run); c = 0.1, 0.9 and 0.97. The slope
  c and the fixed point b* (Fieller) from :func:`fit_map`; pooled least squares as a contrast.
* **inheritance** — arm − control deltas paired within replicate (a shared replicate effect,
  arm-specific replicate effects, probe items with shared item effects and residual noise), by
  the t-interval and by the two-stage bootstrap; the dose-response slope over ratios with
  replicate intercepts and slopes; the main effect of a factor in a 2×2×2 design with
  replicates (replicate × factor interaction as between-replicate variation).
* **loop** — the one-generation prediction of where bias settles with real data in the loop
  (:mod:`synthbias.stats.feedback_loop`): generation-1 shares of chains at two real levels around
  a generator with slope c and a known calibration gap; the predicted b* (Fieller on the mixed
  map) at real shares 0, 0.25, 0.5 and the predicted mean of generations 4–6 (accumulate).
* **mitigation** — strategy − baseline probe-loss deltas likewise (large training-seed
  effects), also at R = 3 with heavy-tailed (t, 3 df) seed effects.

Also the family-wise error of Holm / Benjamini–Hochberg / unadjusted flags over a null family,
and the detection rate at the printed 80 %-power MDE. An unbounded b* interval counts as
covering when its set contains the truth; ``mean_width`` is over bounded intervals and
``share_unbounded`` says how many were not.

    .venv/bin/python bench/calibration.py --out bench/results/calibration.json [--n-sim 1000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.stats import feedback_loop as fl
from synthbias.stats.factorial import calibrate as factorial_calibrate
from synthbias.stats.fixed_point import fit_map
from synthbias.stats.multiplicity import adjust
from synthbias.stats.power import mde
from synthbias.stats.replicates import (
    factorial_effect,
    paired_difference,
    paired_items,
    paired_mean_difference,
    replicate_estimate,
    slope_over_replicates,
)

NOMINAL = 0.95
TARGET = (0.92, 0.98)


@dataclass
class Outcome:
    """Per simulated experiment: whether the interval covered the truth, its width (NaN when
    unbounded) and whether it was replicated at all."""

    covered: list[bool] = field(default_factory=list)
    width: list[float] = field(default_factory=list)
    unbounded: list[bool] = field(default_factory=list)

    def add(self, covered: bool, low: float | None, high: float | None) -> None:
        self.covered.append(bool(covered))
        bounded = low is not None and high is not None
        self.unbounded.append(not bounded)
        self.width.append(high - low if bounded else math.nan)  # type: ignore[operator]


@dataclass
class Estimator:
    name: str
    study: str
    scenario: dict[str, Any]
    between_replicate_sd: float
    run: Callable[[np.random.Generator, int], Outcome]
    headline: bool = True


# --------------------------------------------------------------------------- equilibrium

EQ_BASE = {
    "levels": [0.1, 0.3, 0.5, 0.7, 0.9],
    "chains_per_level": 5,
    "generations": 4,
    "texts": 200,
    "b_star": 0.65,
    "chain_sd": 0.02,
    "innovation_sd": 0.02,
}


def simulate_chains(rng: np.random.Generator, s: dict[str, Any], n_sim: int) -> np.ndarray:
    """(n_sim, chains, generations + 1) trajectories; generation 0 is the design level."""
    b0 = np.repeat(np.asarray(s["levels"], dtype=float), s["chains_per_level"])
    g, c = len(b0), s["c"]
    a = (1 - c) * s["b_star"]
    u = rng.normal(0, s["chain_sd"], (n_sim, g))
    tr = np.empty((n_sim, g, s["generations"] + 1))
    tr[:, :, 0] = b0
    for k in range(s["generations"]):
        p = a + c * tr[:, :, k] + u + rng.normal(0, s["innovation_sd"], (n_sim, g))
        tr[:, :, k + 1] = rng.binomial(s["texts"], np.clip(p, 0, 1)) / s["texts"]
    return tr


def equilibrium_runs(
    s: dict[str, Any], estimator: str, first_generation: int
) -> tuple[Callable[[np.random.Generator, int], Outcome], ...]:
    """Two runs over the same kind of data: the slope c and the fixed point b*."""

    def fits(rng: np.random.Generator, n_sim: int) -> list[Any]:
        tr = simulate_chains(rng, s, n_sim)
        return [
            fit_map(t, first_generation=first_generation, estimator=estimator)  # type: ignore[arg-type]
            for t in tr
        ]

    def slope(rng: np.random.Generator, n_sim: int) -> Outcome:
        out = Outcome()
        for f in fits(rng, n_sim):
            out.add(f.slope.covers(s["c"]), f.slope.ci_low, f.slope.ci_high)
        return out

    def fixed_point(rng: np.random.Generator, n_sim: int) -> Outcome:
        out = Outcome()
        for f in fits(rng, n_sim):
            fp = f.fixed_point
            out.add(fp.contains(s["b_star"]), fp.ci_low, fp.ci_high)
        return out

    return slope, fixed_point


def equilibrium_estimators() -> list[Estimator]:
    out = []
    sd = EQ_BASE["chain_sd"]
    for c in (0.1, 0.9, 0.97):
        s = {**EQ_BASE, "c": c, "first_generation": 0, "estimator": "design_iv"}
        slope, fp = equilibrium_runs(s, "design_iv", 0)
        out.append(Estimator(f"equilibrium slope c, c={c}", "equilibrium", s, sd, slope))
        out.append(Estimator(f"equilibrium b* (Fieller), c={c}", "equilibrium", s, sd, fp))
    for c in (0.1, 0.9):
        s = {**EQ_BASE, "c": c, "first_generation": 1, "estimator": "design_iv"}
        slope, fp = equilibrium_runs(s, "design_iv", 1)
        out.append(
            Estimator(f"equilibrium slope c, gen>=1 only, c={c}", "equilibrium", s, sd, slope)
        )
        out.append(Estimator(f"equilibrium b*, gen>=1 only, c={c}", "equilibrium", s, sd, fp))
    for c, first in ((0.1, 1), (0.9, 0), (0.9, 1)):
        s = {**EQ_BASE, "c": c, "first_generation": first, "estimator": "ols"}
        slope, _ = equilibrium_runs(s, "ols", first)
        name = f"contrast: pooled OLS slope c, gen>={first}, c={c}"
        out.append(Estimator(name, "equilibrium", s, sd, slope, headline=False))
    return out


# --------------------------------------------------------------------------- feedback loop

#: The one-generation prediction (issue 31) at the loop example's design: two real levels, five
#: chains each, one generation 0 -> 1 transition per chain, a few dozen coded pairings per
#: chain; a generator with slope c and a calibration gap of +0.4 at b_r = 0.2.
LOOP_BASE = {
    "levels": [0.2, 0.8],
    "chains_per_level": 5,
    "pairings": 30,
    "chain_sd": 0.03,
    "b_real": 0.2,
    "gap_at_real": 0.4,
    "generations": 6,
    "window": 3,
}


def simulate_gen1(rng: np.random.Generator, s: dict[str, Any], n_sim: int) -> np.ndarray:
    """(n_sim, chains) generation-1 shares: binomial over ``pairings`` around a + c·b0 + a
    per-chain effect (the generator's run-to-run variation)."""
    b0 = np.repeat(np.asarray(s["levels"], dtype=float), s["chains_per_level"])
    a = s["b_real"] + s["gap_at_real"] - s["c"] * s["b_real"]
    p = a + s["c"] * b0 + rng.normal(0, s["chain_sd"], (n_sim, len(b0)))
    return rng.binomial(s["pairings"], np.clip(p, 0, 1)) / s["pairings"]


def loop_runs(s: dict[str, Any]) -> tuple[Callable[[np.random.Generator, int], Outcome], ...]:
    """The predicted b* (Fieller on the mixed map) and the predicted window mean (jackknife-t)
    at real share ``s["rho"]``, regime ``s["regime"]``, against the simulated generator's truth."""
    b0 = np.repeat(np.asarray(s["levels"], dtype=float), s["chains_per_level"])
    c, rho, br = s["c"], s["rho"], s["b_real"]
    a = br + s["gap_at_real"] - c * br
    true_b = fl.fixed_point(a, c, rho, br)
    true_w = fl.window_mean(
        fl.trajectory(a, c, rho, br, s["regime"], s["generations"]), s["window"]
    )

    def b_star(rng: np.random.Generator, n_sim: int) -> Outcome:
        out = Outcome()
        for y in simulate_gen1(rng, s, n_sim):
            fp = fl.predict_fixed_point(fl.fit_one_generation(b0, y), rho, br)
            out.add(fp.contains(true_b), fp.ci_low, fp.ci_high)
        return out

    def window(rng: np.random.Generator, n_sim: int) -> Outcome:
        out = Outcome()
        for y in simulate_gen1(rng, s, n_sim):
            fit = fl.fit_one_generation(b0, y)
            w = fl.predict_window(fit, rho, br, s["regime"], s["generations"], s["window"])
            out.add(w["ci_low"] <= true_w <= w["ci_high"], w["ci_low"], w["ci_high"])
        return out

    return b_star, window


def loop_estimators() -> list[Estimator]:
    out = []
    sd = LOOP_BASE["chain_sd"]
    for c in (0.0, 0.5):
        for rho in (0.0, 0.25, 0.5):
            s = {**LOOP_BASE, "c": c, "rho": rho, "regime": "accumulate"}
            b_star, window = loop_runs(s)
            out.append(Estimator(f"loop: predicted b*, c={c}, rho={rho}", "loop", s, sd, b_star))
            if rho == 0.25:
                name = f"loop: predicted gens 4-6 (accumulate), c={c}"
                out.append(Estimator(name, "loop", s, sd, window))
    return out


# --------------------------------------------------------------------------- paired arms


def simulate_paired(
    rng: np.random.Generator, s: dict[str, Any], n_sim: int
) -> tuple[np.ndarray, np.ndarray]:
    """Item values (n_sim, R, items) of the arm and of the baseline, paired within replicate:
    a shared replicate effect, arm-specific replicate effects (normal, or t with ``seed_df``
    df scaled to ``arm_sd``), shared item effects and residual item noise."""
    r, n = s["replicates"], s["items"]
    shared = rng.normal(0, s["shared_sd"], (n_sim, r, 1))
    item = rng.normal(0, s["item_sd"], (n_sim, r, n))

    def arm_effect() -> np.ndarray:
        df = s.get("seed_df")
        if df is None:
            return rng.normal(0, s["arm_sd"], (n_sim, r, 1))
        return rng.standard_t(df, (n_sim, r, 1)) * s["arm_sd"] / math.sqrt(df / (df - 2))

    base = shared + arm_effect() + item + rng.normal(0, s["residual_sd"], (n_sim, r, n))
    arm = s["delta"] + shared + arm_effect() + item
    arm = arm + rng.normal(0, s["residual_sd"], (n_sim, r, n))
    return arm, base


def paired_t_run(s: dict[str, Any]) -> Callable[[np.random.Generator, int], Outcome]:
    def run(rng: np.random.Generator, n_sim: int) -> Outcome:
        arm, base = simulate_paired(rng, s, n_sim)
        out = Outcome()
        for a, b in zip(arm.mean(axis=2), base.mean(axis=2), strict=True):
            res = paired_difference(a, b)
            out.add(res.covers(s["delta"]), res.ci_low, res.ci_high)
        return out

    return run


def paired_two_stage_run(s: dict[str, Any]) -> Callable[[np.random.Generator, int], Outcome]:
    def run(rng: np.random.Generator, n_sim: int) -> Outcome:
        arm, base = simulate_paired(rng, s, n_sim)
        out = Outcome()
        for k, (a, b) in enumerate(zip(arm, base, strict=True)):
            items = paired_items(list(a), list(b))
            res = replicate_estimate(
                method="two_stage", items=items, statistic=paired_mean_difference, seed=k
            )
            out.add(res.covers(s["delta"]), res.ci_low, res.ci_high)
        return out

    return run


def paired_sd(s: dict[str, Any]) -> float:
    """SD of the replicate part of a per-replicate paired difference."""
    return s["arm_sd"] * math.sqrt(2)


INHERITANCE_DELTA = {
    "replicates": 5,
    "items": 200,
    "delta": 0.04,
    "shared_sd": 0.05,
    "arm_sd": 0.03,
    "item_sd": 0.3,
    "residual_sd": 0.2,
}
MITIGATION_DELTA = {
    "replicates": 5,
    "items": 100,
    "delta": -0.35,
    "shared_sd": 0.3,
    "arm_sd": 0.2,
    "item_sd": 1.0,
    "residual_sd": 0.3,
}
DOSE = {
    "replicates": 5,
    "ratios": [0.0, 0.25, 0.5, 1.0],
    "slope": 0.08,
    "intercept_sd": 0.05,
    "slope_sd": 0.03,
    "items": 200,
    "item_sd": 0.3,
}
FACTORIAL = {
    "replicates": 5,
    "effects": {"A": 0.05, "B": 0.02, "C": -0.03, "AB": 0.01},
    "replicate_sd": 0.1,
    "replicate_x_factor_sd": 0.03,
    "cell_sd": 0.02,
}


def dose_run(rng: np.random.Generator, n_sim: int) -> Outcome:
    s = DOSE
    x = np.asarray(s["ratios"])
    r = s["replicates"]
    intercept = rng.normal(0, s["intercept_sd"], (n_sim, r, 1))
    slope = s["slope"] + rng.normal(0, s["slope_sd"], (n_sim, r, 1))
    noise = rng.normal(0, s["item_sd"] / math.sqrt(s["items"]), (n_sim, r, len(x)))
    values = intercept + slope * x + noise
    out = Outcome()
    for v in values:
        res = slope_over_replicates(x, v)
        out.add(res.covers(s["slope"]), res.ci_low, res.ci_high)
    return out


def factorial_run(rng: np.random.Generator, n_sim: int) -> Outcome:
    s = FACTORIAL
    design = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    pm = 2 * design - 1
    e = s["effects"]
    mean = (e["A"] * pm[:, 0] + e["B"] * pm[:, 1] + e["C"] * pm[:, 2]) / 2
    mean = mean + e["AB"] * pm[:, 0] * pm[:, 1] / 2
    r = s["replicates"]
    rep = rng.normal(0, s["replicate_sd"], (n_sim, r, 1))
    rep_a = rng.normal(0, s["replicate_x_factor_sd"], (n_sim, r, 1)) * pm[:, 0] / 2
    values = mean + rep + rep_a + rng.normal(0, s["cell_sd"], (n_sim, r, len(design)))
    out = Outcome()
    for v in values:
        res = factorial_effect(design, v, factor=0)
        out.add(res.covers(e["A"]), res.ci_low, res.ci_high)
    return out


def study_estimators() -> list[Estimator]:
    heavy = {**MITIGATION_DELTA, "replicates": 3, "seed_df": 3}
    inh, mit = INHERITANCE_DELTA, MITIGATION_DELTA
    return [
        Estimator(
            "inheritance arm-control delta (t)",
            "inheritance",
            {**inh, "method": "t"},
            paired_sd(inh),
            paired_t_run(inh),
        ),
        Estimator(
            "inheritance arm-control delta (two-stage)",
            "inheritance",
            {**inh, "method": "two_stage"},
            paired_sd(inh),
            paired_two_stage_run(inh),
        ),
        Estimator(
            "inheritance dose-response slope", "inheritance", DOSE, DOSE["slope_sd"], dose_run
        ),
        Estimator(
            "inheritance factor main effect (2x2x2)",
            "inheritance",
            FACTORIAL,
            FACTORIAL["replicate_x_factor_sd"],
            factorial_run,
        ),
        Estimator(
            "mitigation strategy-baseline delta (t)",
            "mitigation",
            {**mit, "method": "t"},
            paired_sd(mit),
            paired_t_run(mit),
        ),
        Estimator(
            "mitigation strategy-baseline delta (two-stage)",
            "mitigation",
            {**mit, "method": "two_stage"},
            paired_sd(mit),
            paired_two_stage_run(mit),
        ),
        Estimator(
            "mitigation delta, R=3, heavy-tailed seeds (t)",
            "mitigation",
            {**heavy, "method": "t"},
            paired_sd(heavy),
            paired_t_run(heavy),
        ),
    ]


# --------------------------------------------------------------------------- flags and power


def family_error(rng: np.random.Generator, n_sim: int, m: int = 12) -> list[dict[str, Any]]:
    """Share of simulated runs with any false detection over a family of ``m`` null cells."""
    s = {**INHERITANCE_DELTA, "delta": 0.0}
    any_false = {"holm": 0, "bh": 0, "unadjusted": 0}
    for _ in range(n_sim):
        arm, base = simulate_paired(rng, s, m)
        pairs = zip(arm.mean(axis=2), base.mean(axis=2), strict=True)
        p = [paired_difference(a, b).p_value for a, b in pairs]
        any_false["unadjusted"] += any(v <= 0.05 for v in p)  # type: ignore[operator]
        any_false["holm"] += any(adjust(p, "holm").detected)
        any_false["bh"] += any(adjust(p, "bh").detected)
    return [
        {"method": k, "family_size": m, "n_sim": n_sim, "familywise_error": v / n_sim}
        for k, v in any_false.items()
    ]


def power_check(rng: np.random.Generator, n_sim: int) -> dict[str, Any]:
    """Detection rate when the true delta equals the 80 %-power MDE of the design."""
    s = INHERITANCE_DELTA
    r = s["replicates"]
    per_rep_var = 2 * s["arm_sd"] ** 2 + 2 * s["residual_sd"] ** 2 / s["items"]
    target = mde(math.sqrt(per_rep_var / r), df=r - 1)
    arm, base = simulate_paired(rng, {**s, "delta": target}, n_sim)
    pairs = zip(arm.mean(axis=2), base.mean(axis=2), strict=True)
    hits = [paired_difference(a, b).p_value <= 0.05 for a, b in pairs]  # type: ignore[operator]
    return {
        "name": "inheritance delta at its MDE",
        "true_effect": target,
        "n_sim": n_sim,
        "nominal_power": 0.8,
        "detection_rate": float(np.mean(hits)),
    }


# --------------------------------------------------------------------------- main


def evaluate(est: Estimator, n_sim: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    o = est.run(np.random.default_rng(seed), n_sim)
    widths = np.asarray(o.width, dtype=float)
    coverage = float(np.mean(o.covered))
    return {
        "name": est.name,
        "study": est.study,
        "headline": est.headline,
        "scenario": est.scenario,
        "between_replicate_sd": est.between_replicate_sd,
        "n_sim": len(o.covered),
        "nominal": NOMINAL,
        "coverage": coverage,
        "coverage_mc_se": math.sqrt(coverage * (1 - coverage) / len(o.covered)),
        "coverage_ratio": coverage / NOMINAL,
        "mean_width": float(np.nanmean(widths)) if np.isfinite(widths).any() else None,
        "share_unbounded": float(np.mean(o.unbounded)),
        "within_target": TARGET[0] <= coverage <= TARGET[1],
        "seconds": round(time.perf_counter() - t0, 2),
    }


def attribution_rows(n_sim: int, seed: int, only: str) -> list[dict[str, Any]]:
    """The attribution study's own estimator (:func:`synthbias.stats.factorial.calibrate`: the
    driving factor, a null factor and an interaction, in the full 2x2x2 design and the half
    fraction the example runs), in this bench's row format."""
    rows = []
    for i, fraction in enumerate(("full", "half")):
        t0 = time.perf_counter()
        for r in factorial_calibrate(n_sim=n_sim, seed=seed + i, fraction=fraction):
            if only not in r["name"]:
                continue
            cov = float(r["coverage"])
            rows.append(
                r
                | {
                    "headline": True,
                    "coverage_mc_se": math.sqrt(cov * (1 - cov) / r["n_sim"]),
                    "coverage_ratio": cov / NOMINAL,
                    "share_unbounded": 0.0,
                    "within_target": TARGET[0] <= cov <= TARGET[1],
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'estimator':<48} {'study':<12} {'cover':>6} {'/nom':>6} {'width':>8} {'unb':>5} ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        w = "-" if r["mean_width"] is None else f"{r['mean_width']:.4f}"
        ok = "yes" if r["within_target"] else "NO"
        lines.append(
            f"{r['name']:<48} {r['study']:<12} {r['coverage']:>6.3f} {r['coverage_ratio']:>6.3f}"
            f" {w:>8} {r['share_unbounded']:>5.2f} {ok}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/calibration.json"))
    ap.add_argument("--n-sim", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="run only estimators whose name contains this")
    args = ap.parse_args()
    if args.n_sim < 400:
        ap.error("--n-sim must be at least 400")
    t0 = time.perf_counter()
    ests = equilibrium_estimators() + loop_estimators() + study_estimators()
    ests = [e for e in ests if args.only in e.name]
    rows = [evaluate(e, args.n_sim, args.seed + i) for i, e in enumerate(ests)]
    rows += attribution_rows(args.n_sim, args.seed + len(ests), args.only)
    rng = np.random.default_rng(args.seed + 1000)
    flags = family_error(rng, args.n_sim)
    power = power_check(rng, args.n_sim)
    wall = time.perf_counter() - t0
    good = [r for r in rows if r["headline"] and r["within_target"]]
    result = {
        "estimators": rows,
        "family_error": flags,
        "power": power,
        "summary": {
            "target": list(TARGET),
            "headline_within_target": len(good),
            "headline_total": sum(r["headline"] for r in rows),
            "studies_within_target": sorted({r["study"] for r in good}),
            "equilibrium_c_ge_085_within_target": any(
                r["study"] == "equilibrium" and r["scenario"]["c"] >= 0.85 for r in good
            ),
        },
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "wall_s": round(wall, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print()
    for f in flags:
        print(
            f"family of {f['family_size']} null cells, {f['method']}: "
            f"familywise error {f['familywise_error']:.3f}"
        )
    print(f"detection rate at the 80%-power MDE: {power['detection_rate']:.3f}")
    s = result["summary"]
    print(
        f"headline estimators within {TARGET}: {s['headline_within_target']} of "
        f"{s['headline_total']}; wall {wall:.1f} s; wrote {args.out}"
    )


if __name__ == "__main__":
    main()
