"""The inheritance study's results: the tidy table, ``results.json`` and the files beside it.

Kept apart from the steps so that what a run reports (keys, flags, tables, plots) is read in one
place; everything here is derived from the steps' outputs and computes nothing that is cached.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.cpu import run_environment
from synthbias.core.records import Record
from synthbias.core.steps import Steps
from synthbias.core.store import atomic_write_text, write_json, write_table
from synthbias.core.version import __version__
from synthbias.studies.inheritance.steps import Augmentation
from synthbias.train.adapter import AUTO_WHY

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

#: results.json's ``timing``: name -> the step it times.
TIMED_STEPS = (
    ("augment", "augment"),
    ("train", "train"),
    ("eval", "evaluate"),
    ("paired", "compare"),
    ("replicates", "replicates"),
)


def tidy(
    conditions: list[dict[str, Any]], evals: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """One row per (model, task, metric): the untuned base model first, then every condition's
    model with its bias type, arm, strength, ratio, seed and augmented share."""
    rows = []
    for row in evals.get("base", []):
        rows.append({"bias_type": "base", "ratio": math.nan, "seed": None} | row)
    for c in conditions:
        for row in evals[c["adapter"]]:
            rows.append(
                {
                    "bias_type": c["bias_type"],
                    "arm": c["arm"],
                    "strength": c["strength"],
                    "ratio": c["ratio"],
                    "seed": c["seed"],
                    "replicate": c.get("replicate"),
                    "augmented_share": c["summary"]["augmented_share"],
                }
                | row
            )
    return rows


def step_timing(steps: Steps, started: float) -> dict[str, float]:
    """Seconds per timed step and in total since ``started`` (a ``perf_counter`` reading)."""
    return {f"{name}_seconds": round(steps.seconds(step), 2) for name, step in TIMED_STEPS} | {
        "total_seconds": round(time.perf_counter() - started, 2)
    }


def task_info(tasks: list[Any], sizes: dict[str, int]) -> list[dict[str, Any]]:
    """What each task is and how many items it was evaluated on."""
    return [
        {
            "name": t.spec.name,
            "kind": t.spec.kind,
            "bias_related": t.spec.bias_related,
            "primary_metric": t.spec.primary_metric,
            "bias_metric": t.spec.bias_metric,
            "item_source": t.item_source,
            "size": sizes[t.name],
        }
        for t in tasks
    ]


def _not_carried(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if not c["carried"] and c["requested_strength"] > 0]


def flags(checks: list[dict[str, Any]], dose: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Warnings: augmented sets that did not carry the requested bias, non-monotone doses."""
    return (
        [
            {
                "severity": "warning",
                "message": f"augmentation did not carry the requested bias: {c['bias_type']} "
                f"(seed {c['seed']}, arm {c['arm']}), dimension {c['dimension']} with fallback "
                f"{c['method']} (augmented − {c.get('reference', 'real')} = "
                f"{c['difference']:.3f})",
                "source": "augmentation check",
            }
            for c in _not_carried(checks)
        ]
        + [
            {
                "severity": "warning",
                "message": f"carried by construction: {c['bias_type']} (seed {c['seed']}, arm "
                f"{c['arm']}), dimension {c['dimension']} was written on the filter rung, which "
                "keeps texts by the very measure checked",
                "source": "augmentation check",
            }
            for c in checks
            if c.get("carried_by_construction") and c["carried"] and c["requested_strength"] > 0
        ]
        + [
            {
                "severity": "warning",
                "message": f"non-monotone dose-response: {d['bias_type']} {d['dimension']} "
                f"(seed {d['seed']}): measured {[round(v, 3) for v in d['measured']]} at "
                f"strengths {d['strengths']}",
                "source": "dose-response",
            }
            for d in dose
            if not d["monotone"]
        ]
    )


def study_results(
    config: ExperimentConfig,
    *,
    generator: dict[str, Any],
    evaluations: dict[str, dict[str, Any]],
    eval_files: dict[str, str],
    timing: dict[str, float],
    steps: Steps,
    tasks: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    deltas: list[dict[str, Any]],
    size_notes: list[str],
    augmentation: Augmentation,
    effects: list[dict[str, Any]],
    attribution: list[dict[str, Any]],
    conditions: list[dict[str, Any]],
    train_info: dict[str, dict[str, Any]],
    factors: dict[tuple[str, str, float, int], dict[str, Any]],
    corr: list[dict[str, Any]],
    replication: dict[str, Any],
) -> dict[str, Any]:
    """The content of ``results.json`` (``plots`` filled in when they are drawn).

    The replicate-level keys lead what the run claims: ``replication`` (R, seeds, interval
    method, adjustment, family and its size), ``headlines`` (per task × bias type × arm × ratio ×
    reference: mean paired change over replicates, interval, MDE at 80 % power, adjusted
    ``detected``; the item-level figure beside it as ``item_level``), ``ratio_slopes`` and
    ``replicate_effects`` (every per-replicate estimate with its item CI). ``paired_deltas`` and
    ``arm_effects`` are the item-level comparisons pooled over seeds, as before."""
    study = config.inheritance
    model_ids = {m: e.get("model_id") for m, e in evaluations.items()}
    return {
        "kind": "inheritance",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "generator": generator,
        "environment": run_environment(),
        "evaluation": {
            "backend": study.eval_backend,
            "weights": study.eval_weights,
            "why": AUTO_WHY if study.eval_backend == "auto" else "chosen in the config",
            "model_ids": {k: v for k, v in model_ids.items() if v},
        },
        "timing": timing,
        "steps": steps.summary(),
        "tasks": tasks,
        "task_answers": answers,
        "paired_deltas": deltas,
        "eval_files": eval_files,
        "size_notes": size_notes,
        "augmentation_checks": augmentation.checks,
        "not_carried": [
            f"{c['bias_type']} (seed {c['seed']}, {c['arm']}): {c['dimension']} [{c['method']}]"
            for c in _not_carried(augmentation.checks)
        ],
        "fallback_ladder": augmentation.ladder,
        "dose_response": augmentation.dose,
        "arm_effects": effects,
        "replication": replication["summary"],
        "headlines": replication["headlines"],
        "ratio_slopes": replication["ratio_slopes"],
        "replicate_effects": replication["per_replicate"],
        "attribution": attribution,
        "conditions": [
            {k: v for k, v in c.items() if k != "records"} | {"train": train_info.get(c["adapter"])}
            for c in conditions
        ],
        "misalignment": {"|".join(str(p) for p in k): v for k, v in factors.items()},
        "correlations": corr,
        "plots": [],
        "flags": flags(augmentation.checks, augmentation.dose),
        "samples": ["samples.jsonl"],
    }


def headline_table(rows: list[dict[str, Any]]) -> Any:
    """The headlines as a flat table: per-replicate values joined, the item-level CI in its
    own columns."""
    import pandas as pd

    flat = []
    for h in rows:
        item = h.get("item_level") or {}
        flat.append(
            {k: v for k, v in h.items() if k not in ("item_level", "per_replicate")}
            | {
                "per_replicate": " ".join(
                    "nan" if v is None else f"{v:.6g}" for v in h.get("per_replicate") or []
                ),
                "item_level_delta": item.get("delta"),
                "item_level_ci_low": item.get("ci_low"),
                "item_level_ci_high": item.get("ci_high"),
            }
        )
    return pd.DataFrame(flat)


def sample_rows(
    augmented: dict[tuple[str, int, str], list[Record]], evals_samples: dict[str, Any]
) -> list[dict[str, Any]]:
    """Flat rows for the report's sample browser: augmented texts and task outputs."""
    rows: list[dict[str, Any]] = []
    for (bt, seed, arm), items in augmented.items():
        for r in items[:60]:
            rows.append(
                {
                    "kind": "augmented",
                    "bias_type": bt,
                    "arm": arm,
                    "seed": seed,
                    "dimension": r.meta.get("dimension"),
                    "side": r.meta.get("side"),
                    "text": r.text,
                }
            )
    for model, by_task in evals_samples.items():
        for task, items in by_task.items():
            for it in items:
                text = it.get("output") or it.get("choice") or it.get("prompt") or ""
                rows.append(
                    {"kind": "task output", "model": model, "task": task, "text": str(text)}
                )
    return rows


def write_results(
    out: Path,
    results: dict[str, Any],
    table: list[dict[str, Any]],
    augmented: dict[tuple[str, int, str], list[Record]],
    evaluations: dict[str, dict[str, Any]],
) -> None:
    """``samples.jsonl``, the tables (``results.csv``/``.parquet``, ``correlations.csv``,
    ``deltas.csv``, ``attribution.csv``, ``arm_effects.csv``), the plots, then ``results.json``."""
    samples = {m: e.get("samples", {}) for m, e in evaluations.items()}
    atomic_write_text(
        out / "samples.jsonl",
        "".join(json.dumps(r) + "\n" for r in sample_rows(augmented, samples)),
    )
    import pandas as pd

    df = pd.DataFrame(table)
    write_table(df, out / "results.csv")
    write_table(df, out / "results.parquet")
    write_table(pd.DataFrame(results["correlations"]), out / "correlations.csv")
    write_table(pd.DataFrame(results["paired_deltas"]), out / "deltas.csv")
    write_table(pd.DataFrame(results["attribution"]), out / "attribution.csv")
    if results["arm_effects"]:
        write_table(pd.DataFrame(results["arm_effects"]), out / "arm_effects.csv")
    if results["replicate_effects"]:
        write_table(pd.DataFrame(results["replicate_effects"]), out / "replicate_effects.csv")
    if results["headlines"]:
        write_table(headline_table(results["headlines"]), out / "headlines.csv")
    from synthbias.studies.inheritance.plots import plot_by_ratio, plot_deltas

    if plot_deltas(results["paired_deltas"], out / "bias_change_by_ratio.png") is not None:
        results["plots"].append("bias_change_by_ratio.png")
    for what, name in (("performance", "performance_by_ratio.png"), ("bias", "bias_by_ratio.png")):
        if plot_by_ratio(df, results["tasks"], what, out / name) is not None:
            results["plots"].append(name)
    write_json(out / "results.json", results)
