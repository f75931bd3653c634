"""One replicate of the inheritance sweep as a unit of work: augment -> mix -> misalignment ->
train -> evaluate, for one seed.

Why: replicates share nothing but the real data and the task items, so each one can run in its
own process (:mod:`synthbias.core.parallel`: a local pool or Ray) and be resumed on its own.
Every costly unit inside a replicate is cached under a content key of its inputs (augmented
sets, adapters, evaluations, misalignment), written atomically, so a run killed mid-way loses
at most the step each replicate had in progress, and a rerun reuses every finished replicate.
What a replicate returns (:class:`ReplicateResult`) is what the study's paired comparisons and
headlines need; they are formed once all replicates are in
(:func:`synthbias.studies.inheritance.runner.run_inheritance`).

A worker given fewer threads than the machine's cores (``inheritance.workers``) passes them to
the llama.cpp backends it builds (generator and evaluation); the generator's cache key is the
configured generator's, so a replicate's stored sets are reused whatever the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.parallel import worker_threads
from synthbias.core.progress import ProgressFactory
from synthbias.core.records import Record
from synthbias.core.steps import StepCount, Steps
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.studies.inheritance.design import study_arms, sweep_cells
from synthbias.studies.inheritance.keys import content_key
from synthbias.studies.inheritance.steps import (
    ArmSets,
    Generator,
    SetWriter,
    augment_arms,
    eval_path,
    evaluate_model,
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
from synthbias.tasks.sweep import resolve_sizes

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig


def tasks_and_sizes(config: ExperimentConfig) -> tuple[list[Any], dict[str, int], list[str]]:
    """The run's tasks, each one's item count, and notes on sizes raised to a task's minimum;
    raises :class:`~synthbias.tasks.core.TaskSizeError` where a configured size leaves the
    headline metric undefined."""
    study = config.inheritance
    names = list(study.tasks) if study.tasks else list_tasks()
    tasks = [load_task(t, data_dir=config.tasks.data_dir) for t in names]
    sizes, notes = resolve_sizes(tasks, config.tasks.sizes, study.n_eval)
    return tasks, sizes, notes


@dataclass(frozen=True)
class ReplicateJob:
    """Everything one replicate needs; it pickles (to run in another process) when the
    injected ``backend``, ``trainer``, ``backend_loader`` and ``encoder`` do (the defaults,
    None, are built in the worker). ``progress`` is used only inline."""

    config: ExperimentConfig
    seed: int
    replicate: int
    out: Path
    cache: Path
    resume: bool
    real: list[Record]
    real_key: str
    backend: Backend | None = None
    trainer: Trainer | None = None
    backend_loader: BackendLoader | None = None
    encoder: Any = None
    progress: ProgressFactory | None = None


@dataclass
class ReplicateResult:
    """What one replicate produced: its augmented sets per bias type, training sets
    (conditions), misalignment factors, adapters and their training reports, evaluations (by
    model, with their file paths), the generator's name, and its steps' counts."""

    seed: int
    arm_sets: dict[tuple[str, int], ArmSets]
    conditions: list[dict[str, Any]]
    factors: dict[tuple[str, str, float, int], dict[str, Any]]
    train_info: dict[str, dict[str, Any]]
    evaluations: dict[str, dict[str, Any]]
    paths: dict[str, Path]
    generator: dict[str, Any]
    counts: dict[str, StepCount] = field(default_factory=dict)


def run_replicate(job: ReplicateJob) -> ReplicateResult:
    """Replicate ``job.seed`` from augmentation to evaluation (each step cached)."""
    config, study, s = job.config, job.config.inheritance, job.seed
    threads = worker_threads()
    steps = Steps(resume=job.resume)
    tasks, sizes, _ = tasks_and_sizes(config)
    label = f" (replicate {job.replicate + 1}/{study.n_replicates})"

    # 1. augment: every arm's set per bias type, checked against the control arm
    gen_cfg = config.generator
    if threads is not None and gen_cfg.n_threads is None:
        gen_cfg = gen_cfg.model_copy(update={"n_threads": threads})
    generator = Generator(
        partial(make_backend, gen_cfg, seed=config.seed, run_dir=job.cache),
        job.backend,
        info_path=job.cache / "augmented" / "generator.json",
    )
    write = set_writer(config, steps, job.cache / "augmented", generator, job.real, job.real_key)
    arms = study_arms(study)
    n_aug = len(study.bias_types) * study.n_augmented * len(arms)
    with progress_bar(job.progress, "augmenting" + label, n_aug) as tick:
        arm_sets = {
            (bt, s): augment_arms(
                partial(write, seed=s),
                job.real,
                bt,
                s,
                arms=arms,
                dimensions=tuple(study.dimensions),
                n=study.n_augmented,
                fallback=study.fallback,
                check_strengths=study.check_strengths,
                n_resamples=config.measure.n_resamples,
                tick=tick,
            )
            for bt in study.bias_types
        }
    generator_info = generator.release()  # free the generator before training

    # 2. mix: the replicate's training sets, and each one's misalignment against D_r
    conditions = [
        mix_set(
            job.real,
            arm_sets[(cell.bias_type, cell.seed)].by_arm[cell.source_arm],
            cell,
            mode=study.mix_mode,
            n_total=study.n_total,
            mitigate=partial(apply_data_mitigations, study=study),
            folder=job.out / "mixes",
        )
        for cell in sweep_cells(study)
        if cell.seed == s
    ]
    factors = {
        (c["bias_type"], c["arm"], c["ratio"], c["seed"]): training_set_misalignment(
            c["records"],
            c["mix_key"],
            c["bias_type"],
            job.real,
            encoder=job.encoder,
            n_resamples=config.measure.n_resamples,
            seed=config.seed,
            folder=job.cache / "misalignment",
            steps=steps,
        )
        for c in conditions
        if study.misalignment
    }

    # 3. train one adapter per distinct training set (r = 0 is shared by bias types)
    trainer = job.trainer or LoRATrainer(study)
    distinct = {c["mix_key"]: c["records"] for c in conditions}
    adapters: dict[str, str] = {}
    train_info: dict[str, dict[str, Any]] = {}
    with progress_bar(job.progress, "fine-tuning" + label, len(distinct)) as tick:
        for mix_key, records in distinct.items():
            akey, info = train_adapter(
                trainer, records, s, mix_key, folder=job.cache / "adapters", steps=steps
            )
            adapters[mix_key] = akey
            train_info[akey] = info
            tick(1)
    for c in conditions:
        c["adapter"] = adapters[c["mix_key"]]

    # 4. evaluate the replicate's models on the tasks
    loader = job.backend_loader or default_loader(config, threads)
    models = sorted(set(adapters.values()), key=str)
    paths = {m: model_eval_path(config, job.cache, m, tasks, sizes) for m in models}
    with progress_bar(job.progress, "evaluating" + label, len(models) * len(tasks)) as tick:
        evaluations = {
            m: evaluate_model(
                m,
                job.cache / "adapters" / m,
                loader,
                tasks,
                sizes,
                item_seed=config.seed,
                n_resamples=config.measure.n_resamples,
                path=paths[m],
                steps=steps,
                tick=tick,
            )
            for m in models
        }
    return ReplicateResult(
        seed=s,
        arm_sets=arm_sets,
        conditions=conditions,
        factors=factors,
        train_info=train_info,
        evaluations=evaluations,
        paths=paths,
        generator=generator_info,
        counts=steps.counts,
    )


def default_loader(config: ExperimentConfig, threads: int | None = None) -> DefaultBackendLoader:
    """The evaluation loader of the config; a worker's ``threads`` go to llama.cpp."""
    gen_cfg = config.generator
    if threads is not None and gen_cfg.n_threads is None:
        gen_cfg = gen_cfg.model_copy(update={"n_threads": threads})
    return DefaultBackendLoader(config.inheritance, gen_cfg)


def model_eval_path(
    config: ExperimentConfig, cache: Path, model: str, tasks: list[Any], sizes: dict[str, int]
) -> Path:
    """Where ``model``'s evaluation on the run's tasks is stored (under ``cache/evals``)."""
    study = config.inheritance
    return eval_path(
        cache / "evals",
        model,
        tasks_key(tasks, sizes, config.seed),
        study.eval_backend,
        study.eval_weights,
        study.finetune.base_model,
    )


def set_writer(
    config: ExperimentConfig,
    steps: Steps,
    folder: Path,
    generator: Generator,
    real: list[Record],
    real_key: str,
) -> SetWriter:
    """The augment step's writer, with the generation settings read off the config (short
    texts: at most 48 new tokens; fair prompting when the ``prompt`` mitigation is on). The
    key is the configured generator's, whatever threads this process gives it."""
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


def without_progress(job: ReplicateJob) -> ReplicateJob:
    """The job as sent to another process (a progress factory does not cross processes)."""
    return replace(job, progress=None)
