"""The bias-inheritance sweep: augment -> mix by bias ratio -> LoRA fine-tune -> evaluate tasks.

Reproduces the design of *Understanding and Mitigating Bias Inheritance in LLM-based Data
Augmentation on Downstream Tasks* (ACL 2026) on the embedded model: for every bias type the
generator writes augmented data under a bias spec (:mod:`synthbias.studies.inheritance.augment`),
training sets mix it with real data at each bias ratio (:mod:`synthbias.train.mix`), the
downstream model is LoRA-tuned on each set (:mod:`synthbias.studies.inheritance.training`) and
evaluated on the downstream tasks (:mod:`synthbias.tasks`). Next to the downstream results the run
records, per augmented set, the requested vs measured bias, and per training set the three
misalignment factors against the real data; it then reports which factor tracks the downstream
harm (Spearman rank correlation with a bootstrap CI over the sweep's points).

The claim's unit is the replicate: one seed of ``inheritance.seeds`` (``replicates: R`` means
seeds 0..R-1), which draws the augmentation, the mix and the training of every arm, so each
replicate has its own real-only and control models and an arm's effect is a paired difference
within it. The headlines are means over replicates with intervals from their variation, an
80 %-power MDE and adjusted flags over the run's family of cells
(:mod:`synthbias.studies.inheritance.replicates`); below 3 replicates they say "not replicated".

:func:`run_inheritance` is the study's outline; each step is a function of
:mod:`synthbias.studies.inheritance.steps` called once per unit (a bias type and seed, a training
set, a model), and what the run reports is assembled in
:mod:`synthbias.studies.inheritance.results`.
Replicates are independent units (:mod:`synthbias.studies.inheritance.unit`: augment -> mix ->
train -> evaluate for one seed): ``inheritance.workers`` runs them on a local process pool (each
worker with its share of the cores) and ``scale: ray`` on Ray; the comparisons and headlines are
formed once every replicate is in.
Every step is cached under the run folder by a content hash of exactly its inputs
(``augmented/``, ``adapters/``, ``evals/``, ``misalignment/``): an interrupted run resumes where it
stopped, and a changed config redoes only the steps whose inputs changed (e.g. adding a ratio
trains one more adapter; changing ``n_eval`` re-evaluates but does not retrain).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.parallel import resolve_workers, run_units, threads_per_worker
from synthbias.core.progress import ProgressFactory
from synthbias.core.records import write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import atomic_write_text, lock_run_folder, write_json
from synthbias.core.version import __version__
from synthbias.generate.protocol import Backend
from synthbias.report.html import write_run_report
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.studies.inheritance.results import (
    step_timing,
    study_results,
    task_info,
    tidy,
    write_results,
)
from synthbias.studies.inheritance.steps import (
    Augmentation,
    attribute_harm,
    compare_models,
    evaluate_model,
    infer_over_replicates,
    load_real,
    progress_bar,
)
from synthbias.studies.inheritance.training import (
    BackendLoader,
    DefaultBackendLoader,
    LoRATrainer,
    Trainer,
    apply_data_mitigations,
)
from synthbias.studies.inheritance.unit import (
    ReplicateJob,
    ReplicateResult,
    default_loader,
    model_eval_path,
    run_replicate,
    tasks_and_sizes,
    without_progress,
)
from synthbias.tasks.sweep import task_answers

#: What callers import from here (the mitigation study, tests): the runner, the size check, and
#: the default trainer, loader and data mitigations it runs with.
__all__ = [
    "DefaultBackendLoader",
    "LoRATrainer",
    "apply_data_mitigations",
    "check_task_sizes",
    "run_inheritance",
]

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig


@lock_run_folder("out")
def run_inheritance(
    config: ExperimentConfig,
    out: str | Path,
    backend: Backend | None = None,
    trainer: Trainer | None = None,
    backend_loader: BackendLoader | None = None,
    encoder: Any = None,
    progress: ProgressFactory | None = None,
    resume: bool = True,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Run the bias-inheritance sweep and write its output folder.

    Output: ``real.jsonl``, ``augmented/*.jsonl`` (+ ``*.check.json``: requested vs measured),
    ``mixes/*.jsonl`` (training sets with provenance), ``adapters/<hash>/``, ``evals/<hash>.json``
    (task results with per-item samples), ``misalignment/<hash>.json``, and the summary:
    ``results.json``, ``results.csv`` (tidy: task, bias_type, ratio, seed, replicate, metric,
    value, CI), ``headlines.csv`` (replicate-level headlines), ``replicate_effects.csv`` (every
    per-replicate paired effect with its item CI), ``correlations.csv`` and the plots
    ``performance_by_ratio.png`` / ``bias_by_ratio.png``.

    ``backend`` is the generator (default from ``config.generator``); ``trainer`` and
    ``backend_loader`` replace LoRA training and model loading (tests use fakes).
    ``cache_dir`` holds the content-addressed steps (augmented data, adapters, evaluations,
    misalignment) instead of ``out``, so several runs (e.g. mitigation strategies) share them.
    """

    if config.kind != "inheritance":
        raise ValueError(f"run_inheritance needs kind: inheritance, got {config.kind!r}")
    study, seed, n_res = config.inheritance, config.seed, config.measure.n_resamples
    out = Path(out)
    cache = Path(cache_dir) if cache_dir is not None else out
    _open_run(config, out, cache, resume)
    t0 = time.perf_counter()
    steps = Steps(resume=resume)
    tasks, sizes, size_notes = tasks_and_sizes(config)
    real, real_key = load_real(study, seed)
    write_jsonl(real, out / "real.jsonl")

    # 1-4. every replicate (seed) from augmentation to evaluation: independent units, run
    #      inline, on a local process pool or on Ray (inheritance.workers / scale), each one
    #      cached and resumable on its own
    jobs = [
        ReplicateJob(
            config=config,
            seed=s,
            replicate=i,
            out=out,
            cache=cache,
            resume=resume,
            real=real,
            real_key=real_key,
            backend=backend,
            trainer=trainer,
            backend_loader=backend_loader,
            encoder=encoder,
            progress=progress,
        )
        for i, s in enumerate(study.seeds)
    ]
    replicates = _run_replicates(jobs, study, progress)
    for r in replicates:
        steps.merge(r.counts)
    augmentation = Augmentation.gather({k: a for r in replicates for k, a in r.arm_sets.items()})
    write_json(out / "checks.json", augmentation.checks)
    generator_info = next((r.generator for r in replicates if r.generator), {})
    conditions = [c for r in replicates for c in r.conditions]
    factors = {k: f for r in replicates for k, f in r.factors.items()}
    train_info = {k: v for r in replicates for k, v in r.train_info.items()}
    evaluations = {m: e for r in replicates for m, e in r.evaluations.items()}
    paths = {m: p for r in replicates for m, p in r.paths.items()}
    if study.eval_base:  # the untuned model: once per run, not per replicate
        paths["base"] = model_eval_path(config, cache, "base", tasks, sizes)
        with progress_bar(progress, "evaluating the base model", len(tasks)) as tick:
            evaluations["base"] = evaluate_model(
                "base",
                None,
                backend_loader or default_loader(config),
                tasks,
                sizes,
                item_seed=seed,
                n_resamples=n_res,
                path=paths["base"],
                steps=steps,
                tick=tick,
            )
    models = (["base"] if study.eval_base else []) + sorted(set(paths) - {"base"}, key=str)
    evaluations = {m: evaluations[m] for m in models}
    paths = {m: paths[m] for m in models}

    # 5. compare every model with the real-only model (and each arm with the control), paired
    table = tidy(conditions, {m: e["rows"] for m, e in evaluations.items()})
    answers = {m: e.get("records", {}) for m, e in evaluations.items()}
    deltas, effects = compare_models(
        tasks, sizes, conditions, answers, item_seed=seed, n_resamples=n_res, steps=steps
    )
    answers_by_task = task_answers(tasks, deltas, table, sizes)

    # 5b. infer at the level of the claim: replicate i of every arm shares its seeds, so each
    #     arm effect is a per-replicate paired difference; headlines rest on their variation
    replication = infer_over_replicates(
        tasks,
        sizes,
        conditions,
        answers,
        effects,
        study,
        item_seed=seed,
        n_resamples=n_res,
        level=config.measure.ci_level,
        steps=steps,
    )

    # 6. attribute the downstream harm to the misalignment factors
    attribution, corr = attribute_harm(table, tasks, factors, n_resamples=n_res, seed=seed)

    results = study_results(
        config,
        generator=generator_info,
        evaluations=evaluations,
        eval_files={m: os.path.relpath(p, out) for m, p in paths.items()},
        timing=step_timing(steps, t0),
        steps=steps,
        tasks=task_info(tasks, sizes),
        answers=answers_by_task,
        deltas=deltas,
        size_notes=size_notes,
        augmentation=augmentation,
        effects=effects,
        attribution=attribution,
        conditions=conditions,
        train_info=train_info,
        factors=factors,
        corr=corr,
        replication=replication,
    )
    results["parallel"] = _parallel_info(study, len(jobs))
    write_results(out, results, table, augmentation.sets, evaluations)
    write_run_report(out)
    return results


def check_task_sizes(config: ExperimentConfig) -> dict[str, int]:
    """Each task's item count, raising :class:`~synthbias.tasks.core.TaskSizeError` where a
    configured size leaves the headline metric undefined.

    Why: a study that runs other pipelines first (the mitigation study's recursive part) calls
    this before anything runs, so a bad ``tasks.sizes`` fails in seconds, not after them.
    """
    return tasks_and_sizes(config)[1]


def _open_run(config: ExperimentConfig, out: Path, cache: Path, resume: bool) -> None:
    """Create ``out`` with its manifest and config; without ``resume``, drop every stored step."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.rmtree(out / "mixes", ignore_errors=True)
        for sub in ("augmented", "adapters", "evals", "misalignment"):
            shutil.rmtree(cache / sub, ignore_errors=True)
    write_json(
        out / "manifest.json",
        {"config_hash": config.content_hash(), "synthbias": __version__, "created": time.time()},
    )
    atomic_write_text(out / "config.yaml", config.to_yaml())


def _run_replicates(
    jobs: list[ReplicateJob],
    study: InheritanceStudyConfig,
    progress: ProgressFactory | None,
) -> list[ReplicateResult]:
    """Every replicate's steps: inline with one worker (today's behaviour: progress per step),
    else on a local process pool of ``study.workers`` (each with its share of the cores) or on
    Ray (``study.scale``), with one progress tick per finished replicate."""
    workers = resolve_workers(study.workers, len(jobs))
    if study.scale == "local" and workers == 1:
        return run_units(run_replicate, jobs)
    sent = [without_progress(j) for j in jobs]
    threads = threads_per_worker(workers)
    with progress_bar(progress, f"replicates ({workers} workers)", len(jobs)) as tick:
        return run_units(
            run_replicate,
            sent,
            workers=workers,
            threads=threads,
            scale=study.scale,
            on_done=lambda i, r: tick(1),
        )


def _parallel_info(study: InheritanceStudyConfig, n_units: int) -> dict[str, Any]:
    """How the replicates ran (step seconds in ``timing`` are summed over workers)."""
    workers = resolve_workers(study.workers, n_units)
    return {
        "scale": study.scale,
        "workers": workers,
        "threads_per_worker": threads_per_worker(workers) if workers > 1 else None,
        "note": "step seconds are summed over the workers that ran the replicates",
    }
