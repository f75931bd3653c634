"""The attribution study's outline: pool -> arms -> checks -> mix -> train -> evaluate -> effects.

Why a factorial: correlating measured misalignment with harm cannot say which factor drives
inheritance (at a fixed ratio the factors move together with bias type and strength). Here the
three factors are *manipulated*, two levels each, on one pool of generated texts per replicate
(:mod:`synthbias.studies.attribution.manipulate`), every arm is mixed with the real data at one
ratio and LoRA-tuned with the replicate's seeds and the same budget, and each task's signed
bias metric is modelled as main effects (+ two-way interactions) of the factors, with intervals
from between-replicate variation (:mod:`synthbias.stats.factorial`). The manipulation checks and
the answer are assembled in :mod:`synthbias.studies.attribution.analysis`.

Every unit (a pool, its generator sentences, an arm's measures, an adapter, an evaluation) is
cached under a content key of its inputs in the run folder, with the replicate's seed among
them, so a rerun resumes unit by unit. Training and evaluation are the inheritance study's
(:mod:`synthbias.studies.inheritance.steps`, ``.training``).
"""

from __future__ import annotations

import csv
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
from synthbias.lexicon.bias_types import get_bias_type
from synthbias.measure.embedding import Encoder
from synthbias.report.html import write_run_report
from synthbias.stats.factorial import aliases, design_matrix
from synthbias.studies.attribution.analysis import (
    answers,
    arm_checks,
    arm_names,
    factor_checks,
    harm_effects,
    measure_effects,
    spearman_view,
)
from synthbias.studies.attribution.config import FACTORS
from synthbias.studies.attribution.manipulate import Draws, manipulate, real_like_sentences
from synthbias.studies.attribution.steps import (
    arm_measures,
    bias_values,
    measure_names,
    neutral_sentence,
    real_bandwidth,
    write_filler,
    write_pool,
)
from synthbias.studies.inheritance.augment import build_real_corpus
from synthbias.studies.inheritance.keys import content_key, records_key
from synthbias.studies.inheritance.results import task_info
from synthbias.studies.inheritance.steps import (
    Generator,
    eval_path,
    evaluate_model,
    load_real,
    progress_bar,
    tasks_key,
    train_adapter,
)
from synthbias.studies.inheritance.training import (
    BackendLoader,
    DefaultBackendLoader,
    LoRATrainer,
    Trainer,
)
from synthbias.tasks import load_task
from synthbias.tasks.sweep import for_bias_type, resolve_sizes
from synthbias.train.mix import mix

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig


@lock_run_folder("out")
def run_attribution(
    config: ExperimentConfig,
    out: str | Path,
    backend: Backend | None = None,
    trainer: Trainer | None = None,
    backend_loader: BackendLoader | None = None,
    encoder: Any = None,
    progress: ProgressFactory | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the factorial attribution study and write its folder: ``pools/`` (generated texts and
    generator sentences per replicate), ``arms/*.jsonl`` (each arm's set per replicate),
    ``misalignment/``, ``adapters/``, ``evals/``, and the summary ``results.json``,
    ``effects.csv`` (every task x effect), ``per_replicate.csv`` and ``report.html``.

    ``backend`` is the generator, ``trainer`` / ``backend_loader`` / ``encoder`` replace LoRA
    training, model loading and the sentence encoder (tests pass fakes)."""
    if config.kind != "attribution":
        raise ValueError(f"run_attribution needs kind: attribution, got {config.kind!r}")
    study, seed = config.attribution, config.seed
    inh = study.as_inheritance()
    out = Path(out)
    _open_run(config, out, resume)
    t0 = time.perf_counter()
    steps = Steps(resume=resume)
    tasks, sizes, size_notes = _tasks_and_sizes(config)
    real = _real_data(inh, study.bias_type, seed)
    write_jsonl(real, out / "real.jsonl")
    design = design_matrix(len(FACTORS), study.design)
    arms = arm_names(design)
    reps = list(enumerate(study.seeds))

    # 1. one pool of generated texts (and generator sentences) per replicate
    generator = Generator(
        partial(make_backend, config.generator, seed=seed, run_dir=out),
        backend,
        info_path=out / "pools" / "generator.json",
    )
    params = SamplingParams(
        max_tokens=min(config.sampling.max_tokens, 48),
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        top_k=config.sampling.top_k,
        seed=seed,
    )
    gen_key = content_key(config.generator.model_dump(mode="json"), params.to_dict())
    common = {
        "params": params,
        "chunk_size": config.generator.batch_size,
        "gen_key": gen_key,
        "folder": out / "pools",
        "steps": steps,
    }
    with progress_bar(progress, "writing pools", 2 * len(reps)) as tick:
        pools, fillers = {}, {}
        for r, s in reps:
            pools[r] = write_pool(
                generator,
                real,
                bias_type=study.bias_type,
                dimensions=study.dimensions,
                n=study.n_augmented,
                seed=s,
                k_shots=study.k_shots,
                **common,
            )
            tick(1)
            fillers[r] = write_filler(
                generator, bias_type=study.bias_type, n=study.n_augmented, seed=s, **common
            )
            tick(1)
    generator_info = generator.release()

    # 2. the arms: the pool edited in one factor per level; their misalignment measures
    encoder = encoder if encoder is not None else Encoder()
    owners = measure_names(get_bias_type(study.bias_type).axis)
    real_like = [t for t in real_like_sentences() if neutral_sentence(t, study.bias_type)]
    bandwidth = real_bandwidth(real, encoder, study.bias_type)
    sets: dict[tuple[str, int], list[Record]] = {}
    measures: dict[str, dict[tuple[str, int], float]] = {}
    measure_cis: list[dict[str, Any]] = []
    with progress_bar(progress, "arms and checks", len(arms) * len(reps)) as tick:
        for r, s in reps:
            draws = Draws.make(len(pools[r]), s)
            for arm, levels in zip(arms, design, strict=True):
                recs = manipulate(
                    pools[r],
                    fillers[r],
                    dict(zip(FACTORS, (int(v) for v in levels), strict=True)),
                    real_like,
                    bias_type=study.bias_type,
                    target_share=study.target_share,
                    draws=draws,
                )
                sets[(arm, r)] = recs
                write_jsonl(recs, out / "arms" / f"{arm}-s{s}.jsonl")
                found = arm_measures(
                    recs,
                    real,
                    study.bias_type,
                    bandwidth=bandwidth,
                    encoder=encoder,
                    n_resamples=study.check_resamples,
                    seed=s,
                    folder=out / "misalignment",
                    steps=steps,
                )
                for m, v in found.items():
                    if v["value"] is not None and v["value"] == v["value"]:
                        measures.setdefault(m, {})[(arm, r)] = float(v["value"])
                    measure_cis.append({"arm": arm, "replicate": r, "seed": s, "measure": m} | v)
                tick(1)

    # 3. mix each arm with the real data at the ratio, 4. train, 5. evaluate (same items)
    trainer = trainer or LoRATrainer(inh)
    backend_loader = backend_loader or DefaultBackendLoader(inh, config.generator)
    task_key = tasks_key(tasks, sizes, seed)
    harm: dict[str, dict[tuple[str, int], float]] = {t.spec.name: {} for t in tasks}
    per_replicate: list[dict[str, Any]] = []
    train_info: dict[str, Any] = {}
    with progress_bar(progress, "fine-tuning and evaluating", len(arms) * len(reps)) as tick:
        for r, s in reps:
            for arm in arms:
                records = mix(real, sets[(arm, r)], study.ratio, study.mix_mode, study.n_total, s)
                write_jsonl(records, out / "mixes" / f"{arm}-s{s}.jsonl")
                akey, info = train_adapter(
                    trainer, records, s, records_key(records), folder=out / "adapters", steps=steps
                )
                train_info[akey] = info
                evaluation = evaluate_model(
                    akey,
                    out / "adapters" / akey,
                    backend_loader,
                    tasks,
                    sizes,
                    item_seed=seed,
                    n_resamples=config.measure.n_resamples,
                    path=eval_path(
                        out / "evals",
                        akey,
                        task_key,
                        study.eval_backend,
                        study.eval_weights,
                        study.finetune.base_model,
                    ),
                    steps=steps,
                )
                for task, v in bias_values(evaluation, tasks).items():
                    harm[task][(arm, r)] = v["value"]
                    per_replicate.append(
                        {"task": task, "arm": arm, "replicate": r, "seed": s, "adapter": akey} | v
                    )
                tick(1)

    # 6. what the run concludes
    level, n_rep = config.measure.ci_level, study.n_replicates
    m_effects = measure_effects(design, measures, n_rep, level)
    checks = factor_checks(m_effects, owners, study.leak_tolerance)
    effects = harm_effects(
        design,
        harm,
        {t.spec.name: t.spec.bias_metric for t in tasks},
        checks,
        n_rep,
        interactions=study.interactions,
        adjust=study.adjust,
        level=level,
    )
    results = {
        "kind": "attribution",
        "name": config.name,
        "config": config.model_dump(mode="json"),
        "synthbias": __version__,
        "answers": answers(effects, checks),
        "design": {
            "bias_type": study.bias_type,
            "ratio": study.ratio,
            "fraction": study.design,
            "arms": arms,
            "factors": list(FACTORS),
            "aliases": aliases(design, list(FACTORS)),
            "n_replicates": n_rep,
            "seeds": list(study.seeds),
            "target_share": study.target_share,
            "leak_tolerance": study.leak_tolerance,
            "adjust": study.adjust,
        },
        "factor_checks": checks,
        "arm_checks": arm_checks(
            design, measures, owners, m_effects, n_rep, study.leak_tolerance, level
        ),
        "measure_effects": m_effects,
        "effects": effects,
        "spearman": spearman_view(
            harm,
            measures,
            study.bias_type,
            study.ratio,
            n_resamples=config.measure.n_resamples,
            seed=seed,
        ),
        "per_replicate": per_replicate,
        "measure_cis": measure_cis,
        "tasks": task_info(tasks, sizes),
        "size_notes": size_notes,
        "generator": generator_info,
        "train_info": train_info,
        "steps": steps.summary(),
        "timing": {"total_seconds": round(time.perf_counter() - t0, 2)},
    }
    _write_results(out, results)
    write_run_report(out)
    return results


def _tasks_and_sizes(config: ExperimentConfig) -> tuple[list[Any], dict[str, int], list[str]]:
    """The study's tasks bound to its bias type (signed target − contrast metrics) and sizes."""
    study = config.attribution
    axis = get_bias_type(study.bias_type).axis
    tasks = [for_bias_type(_axis_task(t, axis, config), study.bias_type) for t in study.tasks]
    sizes, notes = resolve_sizes(tasks, config.tasks.sizes, study.n_eval)
    return tasks, sizes, notes


def _real_data(inh: Any, bias_type: str, seed: int) -> list[Record]:
    """The real set: the user's file (``real_data``), else the synthbias-built one for the
    study's bias type only, balanced between its target and contrast groups.

    Why not the inheritance study's six-type set: the checks measure misalignment against the
    real data on the bias type's axis, and in the six-type set most gender mentions come from
    the other types' person phrases ("a Mexican man"; 30 % male vs 11 % female mentions at 32
    texts), so "balanced" arms were further from the real data than "skewed" ones and the
    per-group sentiment means rested on 3 texts."""
    if inh.real_data:
        return load_real(inh, seed)[0]
    return build_real_corpus([bias_type], inh.n_real, seed=seed)


def _axis_task(name: str, axis: str, config: ExperimentConfig) -> Any:
    """A task whose items are built per axis (counterfactual profiles: hiring, salary) with
    the bias type's axis only: every item then feeds the signed metric (with every axis, 6 of
    40 hiring items are gender ones); other tasks as packaged."""
    task = load_task(name, data_dir=config.tasks.data_dir)
    data = task.spec.data
    if getattr(data, "builder", None) != "counterfactual_profiles":
        return task
    spec = data.model_dump(mode="json")
    spec["params"] = {**(spec.get("params") or {}), "axes": [axis]}
    return load_task(name, overrides={"data": spec}, data_dir=config.tasks.data_dir)


def _open_run(config: ExperimentConfig, out: Path, resume: bool) -> None:
    """Create ``out`` with its manifest and config; without ``resume`` the stored units go."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for sub in ("pools", "arms", "mixes", "adapters", "evals", "misalignment"):
            shutil.rmtree(out / sub, ignore_errors=True)
    write_json(
        out / "manifest.json",
        {"config_hash": config.content_hash(), "synthbias": __version__, "created": time.time()},
    )
    atomic_write_text(out / "config.yaml", config.to_yaml())


def _write_results(out: Path, results: dict[str, Any]) -> None:
    write_json(out / "results.json", results)
    _csv(out / "effects.csv", results["effects"], drop=("per_replicate", "factors"))
    _csv(out / "per_replicate.csv", results["per_replicate"])


def _csv(path: Path, rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> None:
    if not rows:
        return
    keys = [k for k in rows[0] if k not in drop]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
