"""The inheritance study's design around the sweep: arms, augmentation up the ladder, effects.

Kept out of :mod:`synthbias.inheritance` (the sweep's steps) so the design can grow without
touching the runner: the augmentation arms (one per requested strength plus the strength-0
control), each written up the fallback ladder and checked, with the dose-response over strengths;
which misalignment factors are undefined for the design; the per-item scores of an evaluation;
and each arm's downstream bias change against the real-only model and the control arm.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.augment import augment, check_augmentation
from synthbias.config import ExperimentConfig, InheritanceStudyConfig
from synthbias.corpus import Record, read_jsonl, write_jsonl
from synthbias.generate.protocol import Backend, SamplingParams

ProgressFactory = Callable[[str, int], Any]


def study_arms(study: InheritanceStudyConfig) -> list[tuple[str, float]]:
    """The augmentation arms: one per requested strength (``s1``, ``s0.5``), plus ``control``
    (strength 0, same prompts and exemplar count) when ``control`` is on; a requested strength
    0 is then the control arm itself."""
    arms = [(f"s{s:g}", s) for s in study.strength if not (study.control and s == 0)]
    return arms + ([("control", 0.0)] if study.control else [])


def augment_arms(
    study: InheritanceStudyConfig,
    config: ExperimentConfig,
    real: list[Record],
    real_key: str,
    gen_key: str,
    params: SamplingParams,
    fair: bool,
    cache: Path,
    resume: bool,
    backend: Backend | None,
    progress: ProgressFactory | None,
    timing: dict[str, float],
    key: Callable[..., str],
) -> tuple[
    dict[tuple[str, int, str], list[Record]],
    list[dict[str, Any]],
    list[dict[str, Any]],
    list[dict[str, Any]],
    Backend | None,
]:
    """Every arm's augmented set per (bias type, seed), with its checks and dose-response.

    The fallback ladder is climbed per dimension at the top requested strength; the rung found
    is reused for every other strength and the control arm (same prompts and exemplar count), so
    strengths differ only in bias injection. Each single-dimension set is cached under
    ``cache/augmented/`` by ``key(...)`` of everything that changes it.
    """
    from synthbias.augment import (
        BiasSpec,
        augment_carried,
        augment_with_methods,
        dose_response,
    )
    from synthbias.generate.factory import make_backend

    arms = study_arms(study)
    top = max([s for _, s in arms] + list(study.check_strengths))
    n_aug_total = len(study.bias_types) * len(study.seeds) * study.n_augmented * len(arms)
    bar = progress("augmenting", n_aug_total) if progress else None
    holder: dict[str, Backend | None] = {"backend": backend}

    def writer(seed: int) -> Any:
        def write(spec: BiasSpec, n: int, prefix: str) -> list[Record]:
            name = key(gen_key, spec.to_dict(), n, real_key, seed, study.filter_retries)
            dim = spec.dimensions[0]
            path = cache / "augmented" / f"{spec.bias_type}-{dim}-s{seed}-{name}.jsonl"
            if resume and path.exists():
                return read_jsonl(path)
            if holder["backend"] is None:
                holder["backend"] = make_backend(config.generator, seed=config.seed, run_dir=cache)
            t = time.perf_counter()
            recs = augment(
                real,
                spec,
                holder["backend"],  # type: ignore[arg-type]
                n,
                params,
                seed=seed,
                k_shots=study.k_shots,
                chunk_size=config.generator.batch_size,
                fair=fair,
                filter_retries=study.filter_retries,
                id_prefix=f"{prefix}-p{spec.strength:g}",
            )
            timing["augment_seconds"] += time.perf_counter() - t
            write_jsonl(recs, path)
            return recs

        return write

    augmented: dict[tuple[str, int, str], list[Record]] = {}
    checks: list[dict[str, Any]] = []
    ladder: list[dict[str, Any]] = []
    dose: list[dict[str, Any]] = []
    n_res = config.measure.n_resamples
    for seed in study.seeds:
        write = writer(seed)
        for bt in study.bias_types:
            dims = tuple(study.dimensions)
            found = augment_carried(
                write,
                real,
                BiasSpec(bt, dims, top),
                study.n_augmented,
                ladder=study.fallback,
                n_resamples=n_res,
                seed=seed,
            )
            ladder += [{"bias_type": bt, "seed": seed, **t} for t in found.tried]
            by_strength: dict[float, list[Record]] = {top: found.records}
            for arm, strength in arms:
                if strength not in by_strength:
                    by_strength[strength] = augment_with_methods(
                        write, BiasSpec(bt, dims, strength), study.n_augmented, found.methods
                    )
                recs = by_strength[strength]
                augmented[(bt, seed, arm)] = recs
                for c in check_augmentation(real, recs, n_resamples=n_res, seed=seed):
                    checks.append({"bias_type": bt, "seed": seed, "arm": arm, **c.to_dict()})
                if bar:
                    bar.update(len(recs))
            for strength in study.check_strengths:
                if strength not in by_strength:
                    by_strength[strength] = augment_with_methods(
                        write, BiasSpec(bt, dims, strength), study.n_augmented, found.methods
                    )
                    for c in check_augmentation(
                        real, by_strength[strength], n_resamples=n_res, seed=seed
                    ):
                        checks.append(
                            {"bias_type": bt, "seed": seed, "arm": f"check-s{strength:g}"}
                            | c.to_dict()
                        )
            if len(by_strength) >= 2:
                for d in dose_response(real, by_strength, n_resamples=n_res, seed=seed):
                    dose.append({"seed": seed, **d})
    if bar:
        bar.close()
    return augmented, checks, ladder, dose, holder["backend"]


def left_out_factors(factors: dict[tuple[str, str, float, int], dict[str, Any]]) -> dict[str, str]:
    """Factors that are undefined for this design, with the reason."""
    out = {}
    if any(
        (v.get("group_data.cooccurrence") or {}).get("n_cooccurring_texts_real") == 0
        for v in factors.values()
    ):
        out["group_data.cooccurrence"] = (
            "the real data names no occupations, so group x occupation co-occurrence is undefined"
        )
    return out


def item_scores(res: Any) -> dict[str, Any]:
    """Per-item scores of a task's bias metric, keyed by item id (for paired arm comparisons).

    Only kept when the metric has one score per item; ``mean`` says whether the metric's value
    is the mean of those scores over the items that have one (NaN = not scored), so that a
    paired bootstrap of that mean is a CI of the metric itself.
    """
    name = getattr(res, "bias_metric", None)
    m = res.metrics.get(name) if name else None
    if m is None or not m.per_sample:
        return {}
    ids = [str(r.get("id", i)) for i, r in enumerate(res.records)]
    if len(ids) != len(m.per_sample) or len(set(ids)) != len(ids):
        return {}
    vals = np.asarray(m.per_sample, dtype=float)
    scored = vals[np.isfinite(vals)]
    is_mean = bool(len(scored) and abs(float(scored.mean()) - float(m.value)) < 1e-9)
    return {"metric": name, "mean": is_mean, "items": dict(zip(ids, vals.tolist(), strict=True))}


def arm_effects(
    conditions: list[dict[str, Any]],
    evals: dict[str, list[dict[str, Any]]],
    evals_items: dict[str, Any],
    tasks: Sequence[Any],
    arms: list[tuple[str, float]],
    config: ExperimentConfig,
) -> list[dict[str, Any]]:
    """Every downstream bias change against the real-only model and against the control arm."""
    from synthbias.attribution import compare_to_references

    return compare_to_references(
        conditions,
        evals,
        evals_items,
        tasks,
        has_control=any(a == "control" for a, _ in arms),
        n_resamples=config.measure.n_resamples,
        seed=config.seed,
    )
