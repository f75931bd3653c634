"""The inheritance study's design around the sweep: arms, augmentation up the ladder, effects.

Kept out of :mod:`synthbias.studies.inheritance.runner` (the sweep's steps) so the design can grow
without
touching the runner: the augmentation arms (one per requested strength plus the strength-0
control), each written up the fallback ladder and checked, with the dose-response over strengths;
which misalignment factors are undefined for the design; and each arm's downstream bias change
against the real-only model and the control arm (paired, from the stored task answers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.records import Record, read_jsonl, write_jsonl
from synthbias.core.steps import Steps
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.bias_dimensions import check_augmentation, dose_response
from synthbias.studies.inheritance.augment import (
    BiasSpec,
    augment,
    augment_carried,
    augment_with_methods,
)
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.tasks.paired import compare_pairs

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

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
    steps: Steps,
    backend: Backend | None,
    progress: ProgressFactory | None,
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
    strengths differ only in bias injection. Each single-dimension set is a unit of the
    ``augment`` step, cached under ``cache/augmented/`` by ``key(...)`` of everything that
    changes it.
    """

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

            def compute() -> list[Record]:
                if holder["backend"] is None:
                    holder["backend"] = make_backend(
                        config.generator, seed=config.seed, run_dir=cache
                    )
                return augment(
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

            return steps.cached("augment", path, compute, read_jsonl, write_jsonl)

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


def arm_effects(
    deltas: Sequence[dict[str, Any]],
    conditions: Sequence[dict[str, Any]],
    records: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]],
    tasks: Sequence[Any],
    sizes: Mapping[str, int],
    item_seed: int,
    n_resamples: int = 1000,
) -> list[dict[str, Any]]:
    """Every arm's downstream bias change on the bias-related tasks, twice: against the
    real-only model (the sweep's ``deltas``, reused) and, for each biased arm, against the
    control arm at the same ratio and seeds (the bias effect proper).

    Both are paired: the task's headline metric is recomputed from both models' stored answers
    on the same resampled clusters (and seeds), so gaps and AUCs get a CI like means do.
    """

    bias = [t for t in tasks if t.spec.bias_related and t.spec.bias_metric]
    names = {t.name for t in bias}
    out = [d | {"reference": "real-only"} for d in deltas if d["task"] in names]
    by_key = {(c["bias_type"], c["arm"], c["ratio"], c["seed"]): c for c in conditions}
    groups = dict.fromkeys(k[:3] for k in by_key if k[2] > 0 and k[1] != "control")
    comparisons = []
    for bt, arm, ratio in groups:
        seeds = sorted(k[3] for k in by_key if k[:3] == (bt, arm, ratio))
        adapters = [
            (by_key[(bt, "control", ratio, s)]["adapter"], by_key[(bt, arm, ratio, s)]["adapter"])
            for s in seeds
            if (bt, "control", ratio, s) in by_key
        ]
        if adapters:
            c = by_key[(bt, arm, ratio, seeds[0])]
            labels = {"bias_type": bt, "arm": arm, "strength": c.get("strength"), "ratio": ratio}
            comparisons.append((labels | {"reference": "control"}, adapters))
    out += compare_pairs(
        bias, sizes, item_seed, comparisons, records, n_resamples, than="the control arm"
    )
    return out
