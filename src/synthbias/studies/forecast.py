"""Forecast where bias settles from the first generations of a recursive (equilibrium) run.

The bias map b_{k+1} = a + c·b_k is fitted on the run's fit metric (by default the code-balanced
stereotype share) over the transitions that exist after one or two generations (every chain of
every initial level contributes one transition per generation), with the study's own fit
(:func:`~synthbias.studies.equilibrium.fit.fit_bias_map`: generation 0 fixed, slope first,
b* with a Fieller interval in [0, 1] or "unbounded"), and b* is the forecast. Projections are
shares, so they are kept within [0, 1]. It needs only the run folder's config and
corpora, so it works on a run that is still going; when the run has more generations, the
forecast is set beside the full-run fit and the observed values.

Beside it, ``one_generation``: the prediction of :mod:`synthbias.stats.feedback_loop` from
generation 0 → 1 alone (the map and the calibration gap), b* for the run's regime and real share
with the Taori–Hashimoto bound, and how that prediction did on the loop check
(``examples/equilibrium_loop.yaml``, :data:`LOOP_CHECK`); :func:`forecast_lines` prints it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.config import load_config, parse_config
from synthbias.core.hashing import file_hash, stable_hash
from synthbias.core.records import CorpusError, read_jsonl
from synthbias.core.schema import ConfigError
from synthbias.core.steps import Steps
from synthbias.core.store import write_json
from synthbias.measure.direction import statistic_for
from synthbias.measure.names import canonical_results
from synthbias.stats import feedback_loop as fl
from synthbias.studies.equilibrium.fit import (
    UndefinedFitMetric,
    chain_trajectories,
    check_code_balanced,
    fit_bias_map,
)
from synthbias.studies.equilibrium.generation import chain_corpus_path
from synthbias.studies.equilibrium.measurer import GenderMeasurer

FORECAST_FILE = "forecast.json"

#: How the one-generation prediction did on the check, ``examples/equilibrium_loop.yaml``
#: (real share 0 / 0.25 / 0.5 × replace / accumulate, 5 chains, 6 generations, the embedded
#: model): per cell, whether the predicted mean of generations 4–6 covered the observed one.
#: Filled from the run behind the README's "Real data in the loop" section; rerun the example
#: to check it on your machine (its ``loop.json`` holds the same counts).
LOOP_CHECK: dict[str, Any] = {
    "config": "examples/equilibrium_loop.yaml",
    "measured": "2026-12-05, seed 0, SmolLM2-135M-Instruct (embedded), 2,560 generated texts",
    "cells": 6,
    "window_covers": 4,
    "agrees": 6,
    "b_star_covers": 5,
    "summary": "in 6 cells (real share 0 / 0.25 / 0.5 x replace / accumulate, 5 chains, 6 "
    "generations, b_r = 0.19) the predicted mean of generations 4-6 covered the observed one "
    "in 4 and observed - predicted was consistent with 0 in 6 (largest miss +0.055, "
    "accumulate at real share 0.5); the predicted b* interval covered the observed level in 5",
}
#: Folder of the run where per-corpus measurements are cached (the forecast's ``measure`` step).
CACHE_DIR = "forecast_cache"


class ForecastError(ValueError):
    """The folder cannot be forecast (not an equilibrium run, too few generations)."""


def _load_config(run_dir: Path) -> Any:
    try:
        if (run_dir / "config.yaml").is_file():
            return load_config(run_dir / "config.yaml")
        results = run_dir / "results.json"
        if results.is_file():
            return parse_config(json.loads(results.read_text())["config"], source=results)
    except (ConfigError, KeyError, json.JSONDecodeError) as exc:
        raise ForecastError(f"{run_dir}: cannot read the run's config: {exc}") from exc
    raise ForecastError(f"{run_dir}: no config.yaml or results.json (is this a run folder?)")


def forecast_run(
    run_dir: str | Path,
    generations: int = 2,
    n_resamples: int | None = None,
    seed: int | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Fit the equilibrium on generations 0..``generations`` of ``run_dir`` and project forward.

    Returns (and writes to ``forecast.json`` when ``write``) the fit with its CI, per level the
    observed values used, the projected trajectory up to the run's configured generations and,
    where the run has them, the observed later values and the full-run fit. ``n_resamples`` and
    ``seed`` are accepted for the command line's sake: the fit's interval comes from the chains
    (a jackknife), not from resampling.
    """
    del n_resamples, seed  # the chain jackknife needs neither

    run_dir = Path(run_dir)
    if generations < 1:
        raise ForecastError("generations must be at least 1 (one transition per level)")
    cfg = _load_config(run_dir)
    if cfg.kind != "equilibrium":
        raise ForecastError(f"{run_dir}: a {cfg.kind!r} run; forecasts need an equilibrium run")
    t0 = time.perf_counter()
    steps = Steps()
    study = cfg.study
    metric = study.fit_metric
    measure_corpus = _CorpusMeasure(cfg, run_dir / CACHE_DIR)
    # data[level][chain][k]: per-text values of the fit metric (pairing codes by default)
    data: list[list[list[np.ndarray]]] = []
    used_levels: list[float] = []
    missing: list[str] = []
    for level in study.levels:
        chains = []
        for r in range(study.chains):
            samples = []
            for k in range(generations + 1):
                path = chain_corpus_path(run_dir, level, r, k)
                if not path.exists():
                    break
                samples.append(measure_corpus(steps, path))
            if len(samples) >= 2:
                chains.append(samples)
        if chains:
            data.append(chains)
            used_levels.append(level)
        else:
            missing.append(f"{level:g}")
    g_used = min((len(s) for lv in data for s in lv), default=0) - 1
    if len(data) * max(g_used, 0) < 2:
        raise ForecastError(
            f"{run_dir}: need generations 0 and 1 of at least two levels (or two generations of "
            f"one); levels without generation 1: {', '.join(missing) or 'none'}"
        )
    data = [[s[: g_used + 1] for s in lv] for lv in data]
    stat = statistic_for(metric)
    try:
        check_code_balanced(data, used_levels, metric, study.n)
    except UndefinedFitMetric as exc:
        raise ForecastError(f"{run_dir}: {exc}") from exc

    starts = [b0 for b0, lv in zip(used_levels, data, strict=True) for _ in lv]
    first = study.fit_from if g_used > study.fit_from else 0

    def fit_map() -> dict[str, Any]:
        fit = fit_bias_map(
            chain_trajectories(data, stat),
            starts,
            first_generation=first,
            level=cfg.measure.ci_level,
        )
        if "a" not in fit:
            raise ForecastError(f"{run_dir}: cannot fit the bias map: {fit['note']}")
        return fit

    fit = steps.timed("fit", fit_map)
    horizon = max(study.generations, g_used + 1)
    trajectories = steps.timed(
        "project",
        lambda: _trajectories(
            data, used_levels, stat, fit, g_used, horizon, _observed(run_dir, metric)
        ),
    )
    full_fit = None
    run_interpretation = None
    results = run_dir / "results.json"
    if results.is_file():
        try:
            r = json.loads(results.read_text())
            run_interpretation = r.get("interpretation")
            run_gens = max(g["generation"] for lv in r["levels"] for g in lv["generations"])
            if run_gens > g_used:
                full_fit = r.get("equilibrium")
        except (json.JSONDecodeError, KeyError, ValueError):
            full_fit = None
    out = {
        "kind": "forecast",
        "run_dir": str(run_dir),
        "created": time.time(),
        "fit_metric": metric,
        "generations_used": g_used,
        "levels": used_levels,
        "levels_without_generation_1": missing,
        "chains": study.chains,
        "forecast": fit,
        "one_generation": steps.timed(
            "predict",
            lambda: one_generation_prediction(data, used_levels, stat, study, cfg.measure.ci_level),
        ),
        "trajectories": trajectories,
        "full_fit": full_fit,
        # the run's verdict (off-topic share, pairings) applies to a forecast from its corpora
        "run_interpretation": run_interpretation,
        # measure: one cached unit per corpus (forecast_cache/); a rerun measures only new ones
        "steps": steps.summary(),
        "timing": {"total_seconds": round(time.perf_counter() - t0, 2)},
    }
    if write:
        write_json(run_dir / FORECAST_FILE, out)
    return out


def one_generation_prediction(
    data: list[list[list[np.ndarray]]],
    levels: list[float],
    stat: Any,
    study: Any,
    level: float = 0.95,
) -> dict[str, Any]:
    """The prediction of :mod:`synthbias.stats.feedback_loop` from generation 0 → 1 alone: the
    map f(x) = a + c·x (x: the share generation 0 realises, fixed by design) and calibration
    gap, b* for the run's ``study.regime`` and ``study.real_share`` at each level's real share
    b_r (generation 0's realised share; Fieller interval), the expected
    trajectory, the Taori–Hashimoto bound beside it, and how the same prediction did on the
    loop check (:data:`LOOP_CHECK`). A note instead when it cannot be made (too few chains)."""
    starts, gen1, real = [], [], {}
    for b0, chains in zip(levels, data, strict=True):
        x0 = [float(stat(np.asarray(ch[0]))) for ch in chains if len(ch) > 1]
        real[b0] = float(np.mean(x0)) if x0 else b0  # the share generation 0 realises
        for ch, x in zip([ch for ch in chains if len(ch) > 1], x0, strict=True):
            starts.append(x)
            gen1.append(float(stat(np.asarray(ch[1]))) if len(ch[1]) else float("nan"))
    try:
        fit = fl.fit_one_generation(starts, gen1, level)
    except ValueError as exc:
        return {"note": f"no one-generation prediction: {exc}", "check": LOOP_CHECK}
    rho, regime = float(study.real_share), str(study.regime)
    per_level = []
    for b0 in levels if rho > 0 else levels[:1]:  # without real data b* has no b_r
        b_r = real[b0]
        fp = fl.predict_fixed_point(fit, rho, b_r)
        per_level.append(
            {
                "level": b0,
                "b_real": b_r,
                "gap": dict(zip(("estimate", "low", "high"), fit.gap_interval(b_r), strict=True)),
                "b_star": fp.to_dict(),
                "trajectory": fl.trajectory(fit.a, fit.c, rho, b_r, regime, study.generations),
                "bound": fl.taori_hashimoto_bound(fit, rho, b_r),
            }
        )
    return {
        "fit": fit.to_dict(),
        "regime": regime,
        "real_share": rho,
        "per_level": per_level,
        "check": LOOP_CHECK,
    }


def forecast_lines(fc: dict[str, Any]) -> list[str]:
    """Console lines for the one-generation prediction of a forecast (``forecast_run``'s
    ``one_generation``) and how it did on the loop check."""
    og = fc.get("one_generation") or {}
    if "fit" not in og:
        return [og.get("note", "no one-generation prediction")]
    f = og["fit"]
    lines = [
        f"One-generation prediction (generation 0 → 1, {f['n_chains']} chains): f(x) = "
        f"{f['a']:.3f} {'+' if f['c'] >= 0 else '−'} {abs(f['c']):.3f}·x, slope "
        f"[{f['c_ci']['low']:+.3f}, {f['c_ci']['high']:+.3f}]; regime {og['regime']}, real "
        f"share {og['real_share']:g}."
    ]
    for row in og["per_level"]:
        fp, b, g = row["b_star"], row["bound"], row["gap"]
        ci = (
            f"[{fp['ci_low']:.3f}, {fp['ci_high']:.3f}]"
            if fp.get("ci_low") is not None
            else f"({fp.get('status')})"
        )
        th = "none (ρ = 0)" if b["bound"] is None else f"{b['bound']:.3f}"
        lines.append(
            f"  real level {row['b_real']:.3g}: calibration gap δ = {g['estimate']:+.3f} "
            f"[{g['low']:+.3f}, {g['high']:+.3f}]; predicted b* = {fp['estimate']:.3f} {ci}; "
            f"Taori & Hashimoto (ICML 2023) bound b_r + δ/ρ = {th}"
        )
    chk = og.get("check") or {}
    lines.append(f"On the loop check ({chk.get('config')}): {chk.get('summary')}.")
    return lines


class _CorpusMeasure:
    """The ``measure`` step: per-text fit-metric values of one corpus, cached by its content.

    Why cached: a forecast is rerun as a recursive run grows (generation 1, then 2, ...), and the
    corpora already measured do not change; the key is the corpus bytes, the fit metric, the
    measurement settings and the seed, so an edited corpus or a new setting is measured again.
    """

    def __init__(self, cfg: Any, cache: Path) -> None:
        self.cfg = cfg
        self.metric = cfg.study.fit_metric
        self.mcfg = cfg.measure.model_copy(
            update={"embedding": self.metric.startswith("embedding."), "n_resamples": 50}
        )
        self.measurer = GenderMeasurer(self.mcfg)
        self.cache = cache

    def __call__(self, steps: Steps, path: Path) -> np.ndarray:
        key = stable_hash(
            [
                file_hash(path),
                self.metric,
                self.mcfg.model_dump(mode="json"),
                self.cfg.seed,
            ],
            16,
        )

        def compute() -> np.ndarray:
            try:
                recs = read_jsonl(path)
            except CorpusError as exc:
                raise ForecastError(str(exc)) from exc
            try:
                return np.asarray(
                    self.measurer.per_text(recs, self.metric, seed=self.cfg.seed)["fit"], float
                )
            except KeyError as exc:
                raise ForecastError(str(exc)) from exc

        return steps.cached("measure", self.cache / f"{key}.json", compute, _load, _save)


def _save(values: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, [None if not np.isfinite(v) else float(v) for v in values])


def _load(path: Path) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in json.loads(path.read_text())], float)


def _trajectories(
    data: list[list[list[np.ndarray]]],
    levels: list[float],
    stat: Any,
    fit: dict[str, Any],
    g_used: int,
    horizon: int,
    observed_full: dict[float, dict[int, float]],
) -> list[dict[str, Any]]:
    """The ``project`` step: per level, observed values, the fitted map's projection up to
    ``horizon`` and, where the run has them, the observed later values."""
    out = []
    for level, chains in zip(levels, data, strict=True):
        with np.errstate(invalid="ignore"):
            per_chain = np.array([[float(stat(np.asarray(x))) for x in ch] for ch in chains])
        obs = [float(np.nanmean(col)) if np.isfinite(col).any() else None for col in per_chain.T]
        b = next((v for v in reversed(obs) if v is not None), float("nan"))
        projected = []
        for k in range(g_used + 1, horizon + 1):
            b = min(1.0, max(0.0, fit["a"] + fit["c"] * b))  # a share stays a share
            projected.append({"generation": k, "value": b})
        actual = observed_full.get(level, {})
        out.append(
            {
                "level": level,
                "observed": [{"generation": k, "value": v} for k, v in enumerate(obs)],
                "projected": projected,
                "actual": [
                    {"generation": k, "value": v} for k, v in sorted(actual.items()) if k > g_used
                ],
            }
        )
    return out


def _observed(run_dir: Path, metric: str) -> dict[float, dict[int, float]]:
    """Observed fit-metric values by level and generation from results.json, if present."""
    f = run_dir / "results.json"
    if not f.is_file():
        return {}
    try:
        r = canonical_results(json.loads(f.read_text()))
        return {
            lv["level"]: {
                g["generation"]: g["metrics"][metric]["value"]
                for g in lv["generations"]
                if metric in g["metrics"]
            }
            for lv in r["levels"]
        }
    except (json.JSONDecodeError, KeyError, TypeError):
        return {}
