"""Tasks inside a sweep: per-task sizes, paired deltas vs the real-only model, plain answers.

Used by :func:`synthbias.studies.inheritance.runner.run_inheritance`; kept here so the sweep only
calls it.

* :func:`resolve_sizes` turns ``tasks.sizes`` (explicit, per task) and the study's blanket
  ``n_eval`` into one size per task. An explicit size below the task's minimum (the size at
  which its headline metric is defined: every group or cluster complete) is a config error
  naming the task and the minimum; a blanket ``n_eval`` below it is raised to the minimum, and
  the note says so.
* :func:`paired_deltas` computes, per task, bias type, arm and ratio, the change of the headline
  bias metric from the real-only model (ratio 0, same bias type) on the same items, with a
  paired cluster-bootstrap CI (seeds resampled too when there are several).
* :func:`task_answers` condenses them into one compact table per task and a sentence.
* :func:`for_bias_type` tells a task which bias type a model was trained on, so its signed
  headline (target vs contrast group, :mod:`synthbias.tasks.metrics.signed`) reads that pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from synthbias.tasks.compare import finding, headline, paired_delta
from synthbias.tasks.core import Task, TaskSizeError, parse_rate
from synthbias.tasks.metrics import METRICS


def for_bias_type(task: Task, bias_type: str) -> Task:
    """``task`` with ``params.bias_type`` set (same items: the pool is shared).

    Why: an inheritance model is trained on one bias type; the task's signed headline compares
    that type's target and contrast groups instead of averaging every packaged type."""
    spec = task.spec.model_copy(update={"params": {**task.spec.params, "bias_type": bias_type}})
    bound = Task(spec, task.source, task.data_dir)
    bound.__dict__["pool"] = task.pool  # the items do not depend on the bias type
    return bound


def resolve_sizes(
    tasks: Sequence[Task], sizes: dict[str, int], default: int
) -> tuple[dict[str, int], list[str]]:
    """One item count per task, and notes on blanket sizes raised to a task's minimum."""
    unknown = sorted(set(sizes) - {t.name for t in tasks})
    if unknown:
        raise TaskSizeError(
            f"tasks.sizes: {unknown} are not tasks of this run ({', '.join(t.name for t in tasks)})"
        )
    out: dict[str, int] = {}
    notes: list[str] = []
    for t in tasks:
        if t.name in sizes:
            t.check_size(sizes[t.name])
            out[t.name] = sizes[t.name]
            continue
        need = t.min_size()
        out[t.name] = max(default, need)
        if default < need:
            notes.append(
                f"{t.name}: n_eval {default} raised to {need}, the smallest size at which "
                f"{t.spec.bias_metric or t.spec.primary_metric} is defined"
            )
    return out, notes


def size_for(size: int, hw: float, target: float) -> int | None:
    """Items needed for a CI half-width of ``target``, from ``hw`` at ``size`` (hw ~ 1/sqrt(n))."""
    if not (math.isfinite(hw) and hw > 0):
        return None
    return max(1, math.ceil(size * (hw / target) ** 2))


def paired_deltas(
    tasks: Sequence[Task],
    sizes: dict[str, int],
    item_seed: int,
    conditions: Sequence[dict[str, Any]],
    records: dict[str, dict[str, list[dict[str, Any]]]],
    n_resamples: int = 1000,
) -> list[dict[str, Any]]:
    """Headline-metric change of every (bias type, arm, ratio > 0) model from the real-only
    model (ratio 0, same bias type), paired over seeds.

    ``conditions`` carry ``bias_type``, ``arm``, ``ratio``, ``seed`` and ``adapter``; every arm
    (the biased strengths and the control arm) at a ratio is its own model, so they are kept
    apart by the arm. ``records`` maps an adapter key to ``{task: stored answers}``. Tasks or
    models without stored answers (evals cached by an older version) are skipped.
    """
    out: list[dict[str, Any]] = []
    real = {(c["bias_type"], c["seed"]): c["adapter"] for c in conditions if c["ratio"] == 0}
    by_key = {
        (c["bias_type"], c.get("arm", ""), c["ratio"], c["seed"]): c
        for c in conditions
        if c["ratio"] > 0
    }
    bias_types = list(dict.fromkeys(c["bias_type"] for c in conditions))
    arms = list(dict.fromkeys(k[1] for k in by_key))
    ratios = sorted({k[2] for k in by_key})
    seeds = sorted({c["seed"] for c in conditions})
    for base in tasks:
        metric = headline(base)
        items = base.items(sizes[base.name], item_seed)
        for bt in bias_types:
            task = for_bias_type(base, bt)
            for arm in arms:
                for ratio in ratios:
                    pairs, strength = [], None
                    for s in seeds:
                        c = by_key.get((bt, arm, ratio, s))
                        ra = records.get(str(real.get((bt, s))), {}).get(task.name)
                        rb = records.get(str(c["adapter"]), {}).get(task.name) if c else None
                        if ra is not None and rb is not None:
                            pairs.append((ra, rb))
                            strength = c.get("strength") if c else None
                    if not pairs:
                        continue
                    d = paired_delta(task, items, pairs, metric, n_resamples, item_seed)
                    out.append(
                        {"task": task.name, "bias_type": bt, "arm": arm, "strength": strength}
                        | {"ratio": ratio}
                        | d
                        | {
                            "finding": finding(d, bias=bool(task.spec.bias_metric)),
                            "bias_related": task.bias_related,
                        }
                    )
    return out


def arm_label(d: dict[str, Any], several_arms: bool) -> str:
    """How a delta's model is named in tables: the bias type, and its arm when there are
    several arms (biased strengths, control)."""
    arm = d.get("arm") or ""
    return f"{d['bias_type']} ({arm})" if several_arms and arm else str(d["bias_type"])


def task_answers(
    tasks: Sequence[Task],
    deltas: Sequence[dict[str, Any]],
    table: Sequence[dict[str, Any]],
    sizes: dict[str, int],
    target: float = 0.10,
) -> list[dict[str, Any]]:
    """One entry per task: source, size, headline metric at the real-only model (value, CI
    half-width, permutation null, the size that would reach ``target`` half-width), its
    paired deltas by ratio, and a plain sentence."""
    out = []
    for task in tasks:
        metric = headline(task)
        ref = [
            r
            for r in table
            if r["task"] == task.name and r["metric"] == metric and r.get("ratio") == 0
        ]
        hw = [
            (r["ci_high"] - r["ci_low"]) / 2
            for r in ref
            if math.isfinite(r["ci_low"]) and math.isfinite(r["ci_high"])
        ]
        nulls = [r.get("null", math.nan) for r in ref]
        nulls = [x for x in nulls if isinstance(x, float) and math.isfinite(x)]
        rows = [d for d in deltas if d["task"] == task.name]
        undefined = [
            d for d in rows if not all(math.isfinite(d[k]) for k in ("delta", "ci_low", "ci_high"))
        ]
        if not rows:
            sentence = "no paired comparison (no ratio above 0, or answers not stored)"
        elif undefined:
            sentence = (
                f"{metric} is undefined for {len(undefined)} of {len(rows)} comparisons "
                "(no valid answers to compute it from, e.g. nothing parseable): no finding."
            )
        elif all(d["covers_zero"] for d in rows):
            mde = max(d["min_detectable_effect"] for d in rows)
            sentence = (
                f"No detectable change in {metric} at this size: every paired 95% CI covers 0 "
                + (
                    f"(changes smaller than about {mde:.3f} would go unseen)."
                    if mde > 0
                    else "(the compared models answered these items identically)."
                )
            )
        else:
            several = len({d.get("arm") for d in rows}) > 1
            found = [
                f"{arm_label(d, several)} r={d['ratio']:g}: {d['finding']}"
                for d in rows
                if not d["covers_zero"]
            ]
            sentence = f"{metric} changed detectably for " + "; ".join(found) + "."
        parse = [
            rate
            for r in table
            if r["task"] == task.name and r.get("ratio") == 0
            for rate in [parse_rate({r["metric"]: r["value"]})]
            if rate is not None and math.isfinite(rate)
        ]
        out.append(
            {
                "task": task.name,
                "metric": metric,
                "item_source": task.item_source,
                "size": sizes[task.name],
                "n_items": ref[0]["n"] if ref else None,
                "real_only_value": sum(r["value"] for r in ref) / len(ref) if ref else math.nan,
                "half_width": sum(hw) / len(hw) if hw else math.nan,
                "null": sum(nulls) / len(nulls) if nulls else math.nan,
                "parse_rate": sum(parse) / len(parse) if parse else None,
                "form": METRICS[metric].form,
                "degenerate": bool(hw) and max(hw) <= 1e-12,
                "size_for_target": size_for(sizes[task.name], sum(hw) / len(hw), target)
                if hw
                else None,
                "target_half_width": target,
                "deltas": [
                    {
                        k: d[k]
                        for k in (
                            "bias_type",
                            "arm",
                            "strength",
                            "ratio",
                            "delta",
                            "ci_low",
                            "ci_high",
                            "covers_zero",
                            "n_seeds",
                        )
                    }
                    for d in rows
                ],
                "sentence": sentence,
            }
        )
    return out
