"""Real data in the loop (issue 31): where bias settles when every generation keeps a share of
real examples, predicted from generation 0 → 1 alone and checked against long chains.

Registered as the experiment kind ``equilibrium_loop`` (config section ``study``, grid in
``study.loop``). Steps:

1. ``gen01``: one equilibrium run of generation 0 → 1 at ``study.levels`` +
   ``loop.calibration_levels`` (a generation-1 corpus does not depend on the regime or the real
   share: its examples are generation 0, the real corpus itself). Its per-chain shares give the
   map f(x) = a + c·x and the calibration gap δ(x) = f(x) − x
   (:func:`synthbias.stats.feedback_loop.fit_one_generation`).
2. one equilibrium run per ``loop.regimes`` × ``loop.real_shares`` cell at ``study.levels`` for
   ``study.generations``, under ``cells/<regime>-rho<ρ>/``, with generation 1 copied from
   ``gen01`` (the same texts, so the prediction and the cells share it, and it is generated once).
3. per cell and real level b_r: the predicted b* (Fieller) and the predicted mean of the last
   ``loop.window`` generations (jackknife-t), the Taori–Hashimoto bound beside them, the observed
   mean of those generations over chains (t on chains − 1 df), whether the prediction's interval
   covers it and whether observed − predicted is consistent with 0.

Output: ``loop.json`` (also ``results.json``), ``loop.csv``, ``loop_trajectories.png``, the
gen01 run and every cell's own run folder (corpora, results, report).
"""

from __future__ import annotations

import shutil
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from synthbias.core.steps import Steps
from synthbias.core.store import write_json
from synthbias.core.version import __version__
from synthbias.generate.protocol import Backend
from synthbias.report.html import write_run_report
from synthbias.stats import feedback_loop as fl
from synthbias.studies.equilibrium.generation import chain_corpus_path
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import run_equilibrium

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

GEN01 = "gen01"


def cell_name(regime: str, real_share: float) -> str:
    """``replace-rho0.25``: a cell's folder under ``cells/``."""
    return f"{regime}-rho{real_share:g}"


def run_equilibrium_loop(
    config: ExperimentConfig,
    out: str | Path,
    backend: Backend | None = None,
    measurer: GenderMeasurer | None = None,
    progress: Any = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the loop grid (see the module docstring) and write its outputs; returns ``loop.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    study, loop = config.study, config.study.loop
    if study.generations <= loop.window:
        raise ValueError(
            f"study.generations = {study.generations}: the observed window of "
            f"study.loop.window = {loop.window} generations needs ≥ {loop.window + 1}"
        )
    run = partial(run_equilibrium, backend=backend, measurer=measurer, progress=progress)
    levels01 = list(dict.fromkeys([*study.levels, *loop.calibration_levels]))
    cfg01 = _with_study(config, levels=levels01, generations=1, real_share=0.0, regime="replace")
    res01 = run(cfg01, out / GEN01, resume=resume)
    metric = study.fit_metric
    starts, gen1 = [], []
    for lv in res01["levels"]:  # x: the share generation 0 realises (round(n·b0)/n), per chain
        starts += _per_chain(lv["generations"][0], metric)
        gen1 += _per_chain(lv["generations"][1], metric)
    level = config.measure.ci_level
    fit = fl.fit_one_generation(starts, gen1, level=level)
    cells = []
    for regime in loop.regimes:
        for rho in loop.real_shares:
            cfg = _with_study(config, real_share=rho, regime=regime)
            cell_out = out / "cells" / cell_name(regime, rho)
            _share_generation_one(out / GEN01, cell_out, study.levels, study.chains)
            res = run(cfg, cell_out, resume=resume)
            cells += _cell_rows(res, fit, regime, rho, metric, loop.window, level)
    results = {
        "kind": "equilibrium_loop",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "fit_metric": metric,
        "one_generation": {
            **fit.to_dict(),
            "levels": levels01,
            "gap": {
                f"{b:.4g}": dict(zip(("estimate", "low", "high"), fit.gap_interval(b), strict=True))
                for b in sorted(set(starts))
            },
        },
        "cells": cells,
        "coverage": coverage_summary(cells),
        "bound_source": fl.TH_SOURCE,
        "timing": {"total_seconds": round(time.perf_counter() - t0, 2)},
    }
    steps = Steps()
    steps.timed("report", partial(_write, results, out))
    results["timing"]["total_seconds"] = round(time.perf_counter() - t0, 2)
    write_json(out / "results.json", results)
    write_json(out / "loop.json", results)
    write_run_report(out)
    return results


def _with_study(config: ExperimentConfig, **update: Any) -> ExperimentConfig:
    study = config.study.model_copy(update=update)
    return config.model_copy(update={"study": study, "kind": "equilibrium"})


def _per_chain(generation: dict[str, Any], metric: str) -> list[float]:
    """The fit metric's per-chain values of one generation (NaN where a chain has none)."""
    m = generation["metrics"].get(metric) or {}
    vals = m.get("per_chain")
    if vals is None:
        raise KeyError(f"{metric}: no per-chain values stored for generation {generation}")
    return [float("nan") if v is None else float(v) for v in vals]


def _share_generation_one(src: Path, dst: Path, levels: list[float], chains: int) -> None:
    """Copy generation 1 of every chain from the gen01 run into a cell (kept when present)."""
    for level in levels:
        for r in range(chains):
            a, b = chain_corpus_path(src, level, r, 1), chain_corpus_path(dst, level, r, 1)
            if a.exists() and not b.exists():
                b.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(a, b)


def _cell_rows(
    res: dict[str, Any],
    fit: fl.OneGenerationFit,
    regime: str,
    rho: float,
    metric: str,
    window: int,
    level: float,
) -> list[dict[str, Any]]:
    """One row per real level b_r of a cell: prediction, bound, observation, comparison."""
    rows = []
    for lv in res["levels"]:
        gens = lv["generations"]
        g = len(gens) - 1
        per_gen = [_per_chain(gen, metric) for gen in gens]
        per_chain = [list(t) for t in zip(*per_gen, strict=True)]
        b_r = float(np.nanmean(per_gen[0]))  # the real corpus's realised share
        fp = fl.predict_fixed_point(fit, rho, b_r)
        pred = fl.predict_window(fit, rho, b_r, regime, g, window)
        obs = fl.observed_window(per_chain, window, level)
        rows.append(
            {
                "regime": regime,
                "real_share": rho,
                "level": lv["level"],
                "b_real": b_r,
                "generations": g,
                "window": [g - window + 1, g],
                "predicted_b_star": fp.to_dict(),
                "predicted_window": pred,
                "predicted_trajectory": fl.trajectory(fit.a, fit.c, rho, b_r, regime, g),
                "observed_window": obs,
                "observed_trajectories": per_chain,
                "bound": fl.taori_hashimoto_bound(fit, rho, b_r),
                "b_star_covers_observed": fp.contains(obs["estimate"]),
                **fl.compare(pred, obs, level),
            }
        )
    return rows


def coverage_summary(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """How many cells' predictions covered the observed level (window and b*), and agreed."""
    n = len(cells)
    return {
        "cells": n,
        "window_covers": sum(c["covers"] for c in cells),
        "b_star_covers": sum(c["b_star_covers_observed"] for c in cells),
        "agrees": sum(c["agrees"] for c in cells),
    }


# --------------------------------------------------------------------------- outputs


def _write(results: dict[str, Any], out: Path) -> None:
    _table(results).to_csv(out / "loop.csv", index=False)
    plot_loop(results, out / "loop_trajectories.png")


def plot_loop(results: dict[str, Any], path: str | Path) -> Path:
    """Real data in the loop: one panel per regime (rows: real levels b_r); per real share ρ
    (one colour) the observed chains (thin) and their mean (markers), the trajectory predicted
    from generation 0 → 1 (dash-dot), the predicted fixed point b* (dashed, its interval
    shaded) and the Taori–Hashimoto bound (dotted, where it lies in [0, 1]). matplotlib is
    loaded here, on use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    regimes = list(dict.fromkeys(c["regime"] for c in cells))
    levels = list(dict.fromkeys(c["level"] for c in cells))
    shares = list(dict.fromkeys(c["real_share"] for c in cells))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(
        len(levels),
        len(regimes),
        figsize=(5.5 * len(regimes), 4 * len(levels)),
        dpi=120,
        squeeze=False,
        sharey=True,
    )
    for c in cells:
        ax = axes[levels.index(c["level"])][regimes.index(c["regime"])]
        col = colours[shares.index(c["real_share"]) % len(colours)]
        trajs = [[float("nan") if v is None else v for v in t] for t in c["observed_trajectories"]]
        gens = list(range(len(trajs[0])))
        for t in trajs:
            ax.plot(gens, t, color=col, alpha=0.2, lw=0.8)
        ax.plot(
            gens,
            np.nanmean(np.array(trajs, float), axis=0),
            "o-",
            color=col,
            label=f"ρ = {c['real_share']:g}: observed (mean of chains)",
        )
        ax.plot(gens, c["predicted_trajectory"], "-.", color=col, lw=1)
        fp = c["predicted_b_star"]
        if fp.get("estimate") is not None:
            ax.axhline(fp["estimate"], color=col, ls="--", lw=1)
            if fp.get("ci_low") is not None:
                ax.axhspan(fp["ci_low"], fp["ci_high"], color=col, alpha=0.08)
        bound = c["bound"].get("bound")
        if bound is not None and 0 <= bound <= 1:
            ax.axhline(bound, color=col, ls=":", lw=1.2)
        ax.set_title(f"{c['regime']}, real corpus b0 = {c['level']:g} (b_r = {c['b_real']:.3g})")
        ax.set_xlabel("generation")
        ax.set_ylim(0, 1)
    for row in axes:
        row[0].set_ylabel(results.get("fit_metric", "share").replace("rule.gender.", ""))
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.text(
        0.01,
        0.005,
        "dash-dot: predicted from gen 0→1; dashed (shaded): predicted b*; dotted: "
        "Taori–Hashimoto bound (ICML 2023), shown where in [0, 1]",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def _table(results: dict[str, Any]) -> Any:
    import pandas as pd

    rows = []
    for c in results["cells"]:
        fp, pw, ob, b = (
            c["predicted_b_star"],
            c["predicted_window"],
            c["observed_window"],
            c["bound"],
        )
        rows.append(
            {
                "regime": c["regime"],
                "real_share": c["real_share"],
                "b_real": c["b_real"],
                "predicted_b_star": fp["estimate"],
                "predicted_b_star_low": fp["ci_low"],
                "predicted_b_star_high": fp["ci_high"],
                "window": f"{c['window'][0]}-{c['window'][1]}",
                "predicted_window": pw["estimate"],
                "predicted_window_low": pw["ci_low"],
                "predicted_window_high": pw["ci_high"],
                "observed_window": ob["estimate"],
                "observed_window_low": ob["ci_low"],
                "observed_window_high": ob["ci_high"],
                "covers": c["covers"],
                "agrees": c["agrees"],
                "th_bound": b["bound"],
            }
        )
    return pd.DataFrame(rows)


def _ci(d: dict[str, Any], lo: str = "ci_low", hi: str = "ci_high") -> str:
    est = d.get("estimate")
    if est is None:
        return "—"
    if d.get(lo) is None or d.get(hi) is None:
        return f"{est:.3f} ({d.get('status', 'no interval')})"
    return f"{est:.3f} [{d[lo]:.3f}, {d[hi]:.3f}]"


def print_loop(results: dict[str, Any], console: Console, out: Path) -> None:
    """The loop table: per regime, real share and real level, predicted vs observed."""
    one = results["one_generation"]
    pct = int(round(100 * one["c_ci"]["level"]))
    console.print(
        f"One-generation prediction ({results['fit_metric']}, generation 0 → 1 of "
        f"{one['n_chains']} chains at b0 = {', '.join(f'{b:g}' for b in one['levels'])}): "
        f"f(x) = {one['a']:.3f} {'+' if one['c'] >= 0 else '−'} {abs(one['c']):.3f}·x, slope c "
        f"[{pct}% CI {one['c_ci']['low']:+.3f}, {one['c_ci']['high']:+.3f}]; calibration gap "
        "δ = f(x) − x (the generator's share minus its examples'): "
        + "; ".join(
            f"δ({b}) = {g['estimate']:+.3f} [{g['low']:+.3f}, {g['high']:+.3f}]"
            for b, g in one["gap"].items()
        ),
        highlight=False,
        soft_wrap=True,
    )
    table = Table(
        title=f"Real data in the loop: predicted (from gen 0 → 1) vs observed, {pct}% intervals"
    )
    for col in ("regime", "ρ real", "b_r (b0)", "predicted b*", "predicted", "observed", "covers"):
        table.add_column(col)
    table.add_column("obs − pred")
    table.add_column("T–H bound")
    for c in results["cells"]:
        w = f"gens {c['window'][0]}–{c['window'][1]}"
        bound = c["bound"]["bound"]
        table.add_row(
            c["regime"],
            f"{c['real_share']:g}",
            f"{c['b_real']:.4g} ({c['level']:g})",
            _ci(c["predicted_b_star"]),
            f"{w}: {_ci(c['predicted_window'])}",
            _ci(c["observed_window"]),
            "yes" if c["covers"] else "no",
            _ci(c["difference"]),
            "none (ρ = 0)" if bound is None else f"{bound:.3f}",
        )
    console.print(table)
    cov = results["coverage"]
    console.print(
        f"Coverage: the prediction's interval for the observed generations covers the observed "
        f"mean in {cov['window_covers']} of {cov['cells']} cells; observed − predicted is "
        f"consistent with 0 in {cov['agrees']} of {cov['cells']}; the b* interval covers the "
        f"observed mean in {cov['b_star_covers']} of {cov['cells']}. Observed: mean over chains "
        "of each chain's mean over the window, t on chains − 1 df. T–H bound: "
        + results["bound_source"]
        + f". Total {results['timing']['total_seconds']:.0f} s. Output: {out}/ (loop.json, "
        "loop.csv, loop_trajectories.png, gen01/, cells/)",
        highlight=False,
        soft_wrap=True,
    )


def forecast_lines(results: dict[str, Any]) -> list[str]:
    """Short lines for ``synthbias forecast``: how the one-generation prediction did on a loop
    check (coverage per cell)."""
    cov = results["coverage"]
    lines = [
        f"On the loop check ({cov['cells']} cells), the one-generation prediction's interval "
        f"covered the observed late-generation mean in {cov['window_covers']} and agreed "
        f"(observed − predicted consistent with 0) in {cov['agrees']}."
    ]
    for c in results["cells"]:
        lines.append(
            f"  {c['regime']}, ρ = {c['real_share']:g}, b_r = {c['b_real']:.3g}: predicted "
            f"{_ci(c['predicted_window'])}, observed {_ci(c['observed_window'])}"
            + ("" if c["covers"] else "  (not covered)")
        )
    return lines


__all__ = [
    "cell_name",
    "coverage_summary",
    "forecast_lines",
    "print_loop",
    "run_equilibrium_loop",
]
