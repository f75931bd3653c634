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
Every step is cached under the run folder by a content hash of exactly its inputs
(``augmented/``, ``adapters/``, ``evals/``, ``misalignment/``): an interrupted run resumes where it
stopped, and a changed config redoes only the steps whose inputs changed (e.g. adding a ratio
trains one more adapter; changing ``n_eval`` re-evaluates but does not retrain).
"""

from __future__ import annotations

import os
import shutil
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.progress import ProgressFactory
from synthbias.core.records import Record, write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import atomic_write_text, lock_run_folder, write_json
from synthbias.core.version import __version__
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.report.html import write_run_report
from synthbias.studies.inheritance.design import study_arms, sweep_cells
from synthbias.studies.inheritance.keys import content_key
from synthbias.studies.inheritance.results import (
    step_timing,
    study_results,
    task_info,
    tidy,
    write_results,
)
from synthbias.studies.inheritance.steps import (
    Augmentation,
    Generator,
    SetWriter,
    attribute_harm,
    augment_arms,
    compare_models,
    eval_path,
    evaluate_model,
    infer_over_replicates,
    load_real,
    mix_set,
    progress_bar,
    tasks_key,
    train_adapter,
    training_set_misalignment,
)
from synthbias.studies.inheritance.training import (
    BackendLoader,
    DefaultBackendLoader,
    LoRATrainer,
    Trainer,
    apply_data_mitigations,
)
from synthbias.tasks import list_tasks, load_task
from synthbias.tasks.sweep import resolve_sizes, task_answers

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
    trainer = trainer or LoRATrainer(study)
    backend_loader = backend_loader or DefaultBackendLoader(study, config.generator)
    t0 = time.perf_counter()
    steps = Steps(resume=resume)
    tasks, sizes, size_notes = _tasks_and_sizes(config)
    real, real_key = load_real(study, seed)
    write_jsonl(real, out / "real.jsonl")

    # 1. augment: every arm's set per (bias type, seed), checked against the real data
    generator = Generator(
        partial(make_backend, config.generator, seed=seed, run_dir=cache),
        backend,
        info_path=cache / "augmented" / "generator.json",
    )
    write = _set_writer(config, steps, cache / "augmented", generator, real, real_key)
    arms = study_arms(study)
    n_aug = len(study.bias_types) * len(study.seeds) * study.n_augmented * len(arms)
    with progress_bar(progress, "augmenting", n_aug) as tick:
        augmentation = Augmentation.gather(
            {
                (bt, s): augment_arms(
                    partial(write, seed=s),
                    real,
                    bt,
                    s,
                    arms=arms,
                    dimensions=tuple(study.dimensions),
                    n=study.n_augmented,
                    fallback=study.fallback,
                    check_strengths=study.check_strengths,
                    n_resamples=n_res,
                    tick=tick,
                )
                for s in study.seeds
                for bt in study.bias_types
            }
        )
    write_json(out / "checks.json", augmentation.checks)
    generator_info = generator.release()  # free the generator before training

    # 2. mix: one training set per cell of the sweep, and its misalignment against D_r
    conditions = [
        mix_set(
            real,
            augmentation.sets[(cell.bias_type, cell.seed, cell.source_arm)],
            cell,
            mode=study.mix_mode,
            n_total=study.n_total,
            mitigate=partial(apply_data_mitigations, study=study),
            folder=out / "mixes",
        )
        for cell in sweep_cells(study)
    ]
    factors = {
        (c["bias_type"], c["arm"], c["ratio"], c["seed"]): training_set_misalignment(
            c["records"],
            c["mix_key"],
            c["bias_type"],
            real,
            encoder=encoder,
            n_resamples=n_res,
            seed=seed,
            folder=cache / "misalignment",
            steps=steps,
        )
        for c in conditions
        if study.misalignment
    }

    # 3. train one adapter per distinct training set (r = 0 is shared by bias types, and by
    #    runs whose mitigations leave it unchanged)
    distinct = {(c["mix_key"], c["seed"]): c["records"] for c in conditions}
    adapters: dict[tuple[str, int], str] = {}
    train_info: dict[str, dict[str, Any]] = {}
    with progress_bar(progress, "fine-tuning", len(distinct)) as tick:
        for (mix_key, s), records in distinct.items():
            akey, info = train_adapter(
                trainer, records, s, mix_key, folder=cache / "adapters", steps=steps
            )
            adapters[(mix_key, s)] = akey
            train_info[akey] = info
            tick(1)
    for c in conditions:
        c["adapter"] = adapters[(c["mix_key"], c["seed"])]

    # 4. evaluate every model (and the untuned base) on the tasks
    models = (["base"] if study.eval_base else []) + sorted(set(adapters.values()), key=str)
    task_key = tasks_key(tasks, sizes, seed)
    paths = {
        m: eval_path(
            cache / "evals",
            m,
            task_key,
            study.eval_backend,
            study.eval_weights,
            study.finetune.base_model,
        )
        for m in models
    }
    with progress_bar(progress, "evaluating", len(models) * len(tasks)) as tick:
        evaluations = {
            m: evaluate_model(
                m,
                None if m == "base" else cache / "adapters" / m,
                backend_loader,
                tasks,
                sizes,
                item_seed=seed,
                n_resamples=n_res,
                path=paths[m],
                steps=steps,
                tick=tick,
            )
            for m in models
        }

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
    write_results(out, results, table, augmentation.sets, evaluations)
    write_run_report(out)
    return results


def check_task_sizes(config: ExperimentConfig) -> dict[str, int]:
    """Each task's item count, raising :class:`~synthbias.tasks.core.TaskSizeError` where a
    configured size leaves the headline metric undefined.

    Why: a study that runs other pipelines first (the mitigation study's recursive part) calls
    this before anything runs, so a bad ``tasks.sizes`` fails in seconds, not after them.
    """
    return _tasks_and_sizes(config)[1]


def _tasks_and_sizes(config: ExperimentConfig) -> tuple[list[Any], dict[str, int], list[str]]:
    """The run's tasks, each one's item count, and notes on sizes raised to a task's minimum;
    raises :class:`~synthbias.tasks.core.TaskSizeError` where a configured size leaves the
    headline metric undefined."""

    study = config.inheritance
    names = list(study.tasks) if study.tasks else list_tasks()
    tasks = [load_task(t, data_dir=config.tasks.data_dir) for t in names]
    sizes, notes = resolve_sizes(tasks, config.tasks.sizes, study.n_eval)
    return tasks, sizes, notes


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


def _set_writer(
    config: ExperimentConfig,
    steps: Steps,
    folder: Path,
    generator: Generator,
    real: list[Record],
    real_key: str,
) -> SetWriter:
    """The augment step's writer, with the generation settings read off the config (short
    texts: at most 48 new tokens; fair prompting when the ``prompt`` mitigation is on)."""
    study = config.inheritance
    params = SamplingParams(
        max_tokens=min(config.sampling.max_tokens, 48),
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        top_k=config.sampling.top_k,
        seed=config.seed,
    )
    fair = "prompt" in study.mitigation.strategies
    gen_key = content_key(
        config.generator.model_dump(mode="json"), params.to_dict(), study.k_shots, fair
    )
    return SetWriter(
        steps=steps,
        folder=folder,
        generator=generator,
        real=real,
        real_key=real_key,
        gen_key=gen_key,
        params=params,
        k_shots=study.k_shots,
        chunk_size=config.generator.batch_size,
        fair=fair,
        filter_retries=study.filter_retries,
    )
