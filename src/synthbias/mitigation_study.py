"""Run every mitigation (and none) where it applies, and report its effect honestly.

``kind: mitigation`` runs the recursive (equilibrium) study once per entry of
``mitigation_study.equilibrium`` and the bias-ratio pipeline once per entry of
``mitigation_study.inheritance``, plus an unmitigated baseline of each, all with the same seeds
(so generation k of a data mitigation starts from exactly the baseline's raw texts). Sub-runs live
in ``equilibrium/<strategy>/`` and ``inheritance/<strategy>/``; the bias-ratio runs share one step
cache, so e.g. the real-only adapter is trained once.

Reported, per strategy:

* **reduction** relative to no mitigation at the same level / generation (recursive study) or
  bias type / ratio (bias-ratio pipeline): ``(|b| - |m|) / |b|`` for baseline bias ``b`` and
  mitigated bias ``m`` (1 = bias removed, 0 = no change, negative = more bias), per metric
  family, with a bootstrap CI (recursive study: resampling the per-text / per-occupation scores of
  both corpora; bias-ratio pipeline: a normal approximation from the two task-metric CIs, since
  those are already bootstrap CIs of independent evaluations);
* the **task-performance cost** on the control tasks (mitigated minus baseline primary metric);
* **metric divergence**: whether the families agree in direction. A strategy is flagged
  ``disagree`` when one family's reduction CI lies above zero and another's below, and
  ``point-estimates-disagree`` when only the point estimates differ in sign. The equilibrium paper
  saw exactly this (contrastive augmentation cut downstream bias while the embedding score rose);
  whatever the embedded model shows is reported, nothing is tuned toward the paper.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.config import ExperimentConfig
from synthbias.core.store import atomic_write_text, lock_run_folder
from synthbias.core.version import __version__
from synthbias.measure.result import two_sample_ci

ProgressFactory = Callable[[str, int], Any]


def _strategies(entry: str) -> list[str]:
    return [] if entry == "none" else entry.split("+")


def sub_config(config: ExperimentConfig, pipeline: str, entry: str) -> ExperimentConfig:
    """The config of one sub-run: the pipeline's kind with this strategy entry."""
    cfg = config.model_copy(deep=True)
    cfg.kind = pipeline  # type: ignore[assignment]
    cfg.name = f"{config.name}-{pipeline}-{entry}"
    if pipeline == "equilibrium":
        cfg.study.mitigation.strategies = _strategies(entry)  # type: ignore[assignment]
    else:
        cfg.inheritance.mitigation.strategies = _strategies(entry)  # type: ignore[assignment]
    return cfg


@lock_run_folder("out")
def run_mitigation(
    config: ExperimentConfig,
    out: str | Path,
    progress: ProgressFactory | None = None,
    resume: bool = True,
    runners: dict[str, Callable[..., dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run the mitigation study (see the module docstring); returns ``results.json``'s content.

    ``runners`` replaces ``run_equilibrium`` / ``run_inheritance`` (tests pass fakes).
    """
    from synthbias.core.store import write_json, write_table
    from synthbias.experiment import run_equilibrium
    from synthbias.inheritance import run_inheritance

    if config.kind != "mitigation":
        raise ValueError(f"run_mitigation needs kind: mitigation, got {config.kind!r}")
    runners = runners or {}
    run_eq = runners.get("equilibrium", run_equilibrium)
    run_inh = runners.get("inheritance", run_inheritance)
    ms = config.mitigation_study
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", config.to_yaml())
    rows: list[dict[str, Any]] = []
    sub_runs: dict[str, str] = {}
    if ms.run_equilibrium:
        for entry in ["none", *ms.equilibrium]:
            d = out / "equilibrium" / entry
            run_eq(sub_config(config, "equilibrium", entry), d, progress=progress, resume=resume)
            sub_runs[f"equilibrium/{entry}"] = str(d.relative_to(out))
        rows += compare_equilibrium(out / "equilibrium", ms.equilibrium, ms.families, config)
    if ms.run_inheritance:
        cache = out / "inheritance" / "_cache"
        for entry in ["none", *ms.inheritance]:
            d = out / "inheritance" / entry
            run_inh(
                sub_config(config, "inheritance", entry),
                d,
                progress=progress,
                resume=resume,
                cache_dir=cache,
            )
            sub_runs[f"inheritance/{entry}"] = str(d.relative_to(out))
        rows += compare_inheritance(out / "inheritance", ms.inheritance)
    summary = summarise(rows)
    flags = divergence_flags(summary)
    import pandas as pd

    write_table(pd.DataFrame(rows), out / "comparison.csv")
    write_table(pd.DataFrame(summary), out / "summary.csv")
    plots = []
    if summary:
        from synthbias.report.mitigation_plots import plot_mitigation

        if plot_mitigation(summary, out / "mitigation_comparison.png") is not None:
            plots.append("mitigation_comparison.png")
    results = {
        "kind": "mitigation",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "sub_runs": sub_runs,
        "summary": summary,
        "flags": flags,
        "plots": plots,
    }
    write_json(out / "results.json", results)
    from synthbias.report.html import write_run_report

    write_run_report(out)
    return results


# --------------------------------------------------------------------------- recursive study


def _reduction(b: float, m: float) -> float:
    return (abs(b) - abs(m)) / abs(b) if b and not math.isnan(b) else math.nan


def compare_equilibrium(
    root: Path, entries: Sequence[str], families: dict[str, str], config: ExperimentConfig
) -> list[dict[str, Any]]:
    """Reduction per strategy, level, generation and family, from the stored corpora."""
    from synthbias.experiment import GenderMeasurer

    measurer = GenderMeasurer(config.measure)
    per_sample: dict[tuple[str, float, int], dict[str, np.ndarray]] = {}

    def samples(entry: str, level: float, gen: int) -> dict[str, np.ndarray]:
        key = (entry, level, gen)
        if key not in per_sample:
            per_sample[key] = _generation_samples(root / entry, level, gen, measurer, config)
        return per_sample[key]

    base = json.loads((root / "none" / "results.json").read_text())
    rows = []
    n_res = config.measure.n_resamples
    for entry in entries:
        for lv in base["levels"]:
            level = lv["level"]
            for g in lv["generations"]:
                k = g["generation"]
                if k == 0:
                    continue
                b_s, m_s = samples("none", level, k), samples(entry, level, k)
                for family, metric in families.items():
                    if metric not in b_s or metric not in m_s:
                        continue
                    b, m = b_s[metric], m_s[metric]
                    bv, mv = float(np.mean(b)), float(np.mean(m))
                    ci = two_sample_ci(
                        b, m, lambda x, y: _reduction(x.mean(), y.mean()), n_res, seed=config.seed
                    )
                    rows.append(
                        {
                            "pipeline": "equilibrium",
                            "strategy": entry,
                            "family": family,
                            "metric": metric,
                            "level": level,
                            "generation": k,
                            "baseline": bv,
                            "mitigated": mv,
                            "reduction": _reduction(bv, mv),
                            "ci_low": ci.low,
                            "ci_high": ci.high,
                        }
                    )
    return rows


def _generation_samples(
    run: Path, level: float, gen: int, measurer: Any, config: ExperimentConfig
) -> dict[str, np.ndarray]:
    """Per-sample scores of one stored generation: re-measured texts, stored downstream scores."""
    from synthbias.core.store import corpus_path
    from synthbias.corpus import read_jsonl

    recs = read_jsonl(corpus_path(run, level, gen))
    out = {
        name: np.asarray(m.per_sample, dtype=float)
        for name, m in measurer.measure([r.text for r in recs], seed=config.seed).items()
        if m.per_sample
    }
    res = json.loads((run / "results.json").read_text())
    for lv in res["levels"]:
        if lv["level"] != level:
            continue
        for g in lv["generations"]:
            if g["generation"] != gen:
                continue
            for name, m in g["metrics"].items():
                if name.startswith("downstream.") and m.get("per_sample"):
                    out[name] = np.asarray(m["per_sample"], dtype=float)
    return out


# --------------------------------------------------------------------------- bias-ratio pipeline


def compare_inheritance(root: Path, entries: Sequence[str]) -> list[dict[str, Any]]:
    """Reduction of each bias-related task's bias metric, and the control tasks' cost."""
    import pandas as pd

    base = json.loads((root / "none" / "results.json").read_text())
    tasks = {t["name"]: t for t in base["tasks"]}
    b_df = pd.read_csv(root / "none" / "results.csv")
    rows = []
    for entry in entries:
        m_df = pd.read_csv(root / entry / "results.csv")
        keys = ["task", "bias_type", "ratio", "seed", "metric"]
        merged = b_df.merge(m_df, on=keys, suffixes=("_b", "_m"))
        merged = merged[(merged["bias_type"] != "base") & (merged["ratio"] > 0)]
        for r in merged.itertuples(index=False):
            t = tasks.get(r.task)
            if t is None:
                continue
            if t["bias_related"] and r.metric == t["bias_metric"]:
                family, value = "task_bias", _reduction(r.value_b, r.value_m)
                lo, hi = _normal_ci(r, lambda b, m: _reduction(b, m))
            elif not t["bias_related"] and r.metric == t["primary_metric"]:
                family, value = "control_cost", r.value_m - r.value_b
                lo, hi = _normal_ci(r, lambda b, m: m - b)
            else:
                continue
            rows.append(
                {
                    "pipeline": "inheritance",
                    "strategy": entry,
                    "family": family,
                    "metric": f"{r.task}.{r.metric}",
                    "bias_type": r.bias_type,
                    "ratio": r.ratio,
                    "seed": r.seed,
                    "baseline": r.value_b,
                    "mitigated": r.value_m,
                    "reduction": value,
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return rows


def _normal_ci(r: Any, f: Callable[[float, float], float], z: float = 1.96) -> tuple[float, float]:
    """CI of ``f(b, m)`` by the delta method with SEs read off the two 95% CIs."""
    se_b = (r.ci_high_b - r.ci_low_b) / (2 * z)
    se_m = (r.ci_high_m - r.ci_low_m) / (2 * z)
    if any(map(math.isnan, (se_b, se_m))):
        return math.nan, math.nan
    eps = 1e-6
    db = (f(r.value_b + eps, r.value_m) - f(r.value_b - eps, r.value_m)) / (2 * eps)
    dm = (f(r.value_b, r.value_m + eps) - f(r.value_b, r.value_m - eps)) / (2 * eps)
    se = math.sqrt((db * se_b) ** 2 + (dm * se_m) ** 2)
    v = f(r.value_b, r.value_m)
    return v - z * se, v + z * se


# --------------------------------------------------------------------------- summary and flags


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean reduction (and mean CI bounds) per pipeline, strategy and family.

    Recursive study: the last generation of each level (where bias has settled), averaged over
    levels, plus the value at the lowest initial level (the paper reports both).
    """
    import pandas as pd

    if not rows:
        return []
    df = pd.DataFrame(rows)
    out = []
    for (pipe, strat, fam), g in df.groupby(["pipeline", "strategy", "family"], sort=False):
        extra: dict[str, Any] = {}
        if pipe == "equilibrium":
            g = g[g["generation"] == g["generation"].max()]
            low = g[g["level"] == g["level"].min()]
            extra["reduction_lowest_level"] = float(low["reduction"].mean())
        vals = g["reduction"].astype(float)
        out.append(
            {
                "pipeline": pipe,
                "strategy": strat,
                "family": fam,
                "reduction": float(vals.mean()),
                "ci_low": float(g["ci_low"].astype(float).mean()),
                "ci_high": float(g["ci_high"].astype(float).mean()),
                "n": int(len(g)),
            }
            | extra
        )
    return out


def divergence_flags(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per strategy: do the bias families agree in direction? (control cost is not a family)."""
    flags = []
    by: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in summary:
        if s["family"] != "control_cost":
            by.setdefault((s["pipeline"], s["strategy"]), []).append(s)
    for (pipe, strat), fams in by.items():
        if len(fams) < 2:
            continue
        sure = {
            f["family"]: (1 if f["ci_low"] > 0 else -1 if f["ci_high"] < 0 else 0) for f in fams
        }
        point = {
            f["family"]: np.sign(f["reduction"]) for f in fams if not math.isnan(f["reduction"])
        }
        if 1 in sure.values() and -1 in sure.values():
            kind = "disagree"
        elif 1.0 in point.values() and -1.0 in point.values():
            kind = "point-estimates-disagree"
        else:
            continue
        detail = ", ".join(
            f"{f['family']} {f['reduction']:+.0%} [{f['ci_low']:+.0%}, {f['ci_high']:+.0%}]"
            for f in fams
        )
        flags.append(
            {
                "pipeline": pipe,
                "strategy": strat,
                "flag": kind,
                "message": f"{pipe}/{strat}: metric families {kind.replace('-', ' ')}: {detail}",
            }
        )
    return flags
