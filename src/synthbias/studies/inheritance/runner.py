"""The bias-inheritance sweep: augment -> mix by bias ratio -> LoRA fine-tune -> evaluate tasks.

Reproduces the design of *Understanding and Mitigating Bias Inheritance in LLM-based Data
Augmentation on Downstream Tasks* (ACL 2026) on the embedded model: for every bias type the
generator writes augmented data under a bias spec (:mod:`synthbias.augment`), training sets mix it
with real data at each bias ratio (:mod:`synthbias.train.mix`), the downstream model is LoRA-tuned
on each set (:mod:`synthbias.train.sft`) and evaluated on the downstream tasks
(:mod:`synthbias.tasks`). Next to the downstream results the run records, per augmented set, the
requested vs measured bias, and per training set the three misalignment factors against the real
data; it then reports which factor tracks the downstream harm (Spearman rank correlation with a
bootstrap CI over the sweep's points).

Every step is cached under the run folder by a content hash of exactly its inputs
(``augmented/``, ``adapters/``, ``evals/``, ``misalignment/``): an interrupted run resumes where it
stopped, and a changed config redoes only the steps whose inputs changed (e.g. adding a ratio
trains one more adapter; changing ``n_eval`` re-evaluates but does not retrain).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from synthbias.core.cpu import run_environment
from synthbias.core.hashing import stable_hash
from synthbias.core.records import Record, read_corpus, write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import atomic_write_text, lock_run_folder, write_json, write_table
from synthbias.core.version import __version__
from synthbias.generate import load_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.lexicon.bias_types import bias_types, get_bias_type
from synthbias.measure.misalignment import misalignment_factors
from synthbias.mitigate.contrastive import contrastive_augment
from synthbias.mitigate.loss import ConsistencyLoss, attach_twins, bias_weights, example_bias_scores
from synthbias.mitigate.mask import mask_examples
from synthbias.mitigate.swap import swap_augment
from synthbias.mitigate.token import DEFAULT_TAGS, TaggedBackend, tag_examples, tag_tokens
from synthbias.report.html import write_run_report
from synthbias.studies.inheritance.attribution import (
    downstream_harm,
    factor_attribution,
    harm_scores,
    legacy_correlations,
)
from synthbias.studies.inheritance.augment import build_real_corpus
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.studies.inheritance.design import (
    arm_effects,
    augment_arms,
    left_out_factors,
    study_arms,
)
from synthbias.tasks import list_tasks, load_task
from synthbias.tasks.compare import compact_records
from synthbias.tasks.sweep import paired_deltas, resolve_sizes, task_answers
from synthbias.train.adapter import load_finetuned
from synthbias.train.mix import mix, mix_summary
from synthbias.train.sft import LoRAConfig, SFTExample, read_train_meta, resolve_base, train_lora

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

ProgressFactory = Callable[[str, int], Any]

#: Misalignment factors under axis-independent names (the run spans several axes).
FACTOR_KEYS: dict[str, str] = {
    "values": "values.{axis}.sentiment_gap",
    "group_data.representation": "group_data.{axis}.representation_jsd",
    "group_data.cooccurrence": "group_data.{axis}.cooccurrence_jsd",
    "distribution.mmd2": "distribution.mmd2",
    "distribution.frechet": "distribution.frechet",
}


def _hash(*parts: Any) -> str:
    return stable_hash(parts, 12)


def _records_hash(records: Sequence[Record]) -> str:
    return _hash([(r.id, r.text, r.meta.get("prompt")) for r in records])


class Trainer(Protocol):
    """Fine-tunes on records, writes an adapter to ``out_dir`` (the default uses LoRA).

    ``key(records, seed)`` names the adapter by everything that changes it, so a cached adapter
    is reused exactly when the training would be identical.
    """

    def __call__(self, records: Sequence[Record], out_dir: Path, seed: int) -> dict[str, Any]: ...

    def key(self, records: Sequence[Record], seed: int) -> str: ...


class BackendLoader(Protocol):
    """A backend for the base model (``adapter_dir=None``) or the model tuned in ``adapter_dir``."""

    def __call__(self, adapter_dir: Path | None) -> Backend: ...


def sft_examples(records: Sequence[Record]) -> list[Any]:
    """Instruction-format training pairs: ``meta["prompt"]`` + newline, then the text."""

    return [
        SFTExample(
            prompt=f"{r.meta.get('prompt') or 'Write one sentence.'}\n",
            completion=r.text,
            meta={"id": r.id, "source": r.source, **r.meta},
        )
        for r in records
    ]


def training_examples(records: Sequence[Record], study: InheritanceStudyConfig) -> list[Any]:
    """SFT examples with the training-time mitigations (token, mask, loss) applied."""

    mit = study.mitigation
    strategies = set(mit.strategies)
    examples = sft_examples(records)
    if "token" in strategies:
        examples = tag_examples(examples)
    if strategies & {"mask_loss", "mask_input"}:
        axes = sorted({get_bias_type(b).axis for b in study.bias_types})
        mode = "loss" if "mask_loss" in strategies else "input"
        examples = mask_examples(examples, axes, mode, mask_word=mit.mask_word)
    if "loss_weight" in strategies:
        examples = bias_weights(examples, example_bias_scores(records), mit.weight_strength)
    if "loss_consistency" in strategies:
        examples = attach_twins(examples)
    return examples


@dataclass
class LoRATrainer:
    """Default trainer: LoRA SFT of the configured base model, prompt tokens masked, with the
    training-time mitigations of ``study.mitigation``."""

    study: InheritanceStudyConfig

    def lora_config(self, seed: int) -> Any:
        ft = self.study.finetune
        extra: list[str] = []
        if "token" in self.study.mitigation.strategies:
            extra = tag_tokens()
        return LoRAConfig(**ft.lora_settings(), seed=seed, extra_special_tokens=extra)

    def key(self, records: Sequence[Record], seed: int) -> str:
        examples = training_examples(records, self.study)
        content = [
            (e.prompt, e.completion, e.weight, e.ignore_spans, e.meta.get("twin")) for e in examples
        ]
        consistency = (
            self.study.mitigation.consistency_weight
            if "loss_consistency" in self.study.mitigation.strategies
            else None
        )
        return _hash(
            content,
            self.lora_config(seed).model_dump(mode="json"),
            self.study.finetune.base_model,
            consistency,
        )

    def __call__(self, records: Sequence[Record], out_dir: Path, seed: int) -> dict[str, Any]:
        cfg = self.lora_config(seed)
        examples = training_examples(records, self.study)
        extra_loss = None
        if "loss_consistency" in self.study.mitigation.strategies:
            extra_loss = self._consistency(cfg)
        res = train_lora(
            examples, cfg, out_dir, base_model=self.study.finetune.base_model, extra_loss=extra_loss
        )
        return {
            "steps": res.steps,
            "seconds": round(res.seconds, 2),
            "n_examples": len(examples),
            "first_loss": res.losses[0] if res.losses else None,
            "last_loss": res.losses[-1] if res.losses else None,
            "added_tokens": res.added_tokens,
            "n_tokens": res.n_tokens,
        }

    def _consistency(self, cfg: Any) -> Any:
        from transformers import AutoTokenizer

        _, checkpoint, _ = resolve_base(self.study.finetune.base_model)
        tok = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
        if cfg.extra_special_tokens:
            tok.add_tokens(list(cfg.extra_special_tokens), special_tokens=True)
        return ConsistencyLoss(tok, cfg, self.study.mitigation.consistency_weight)


@dataclass
class DefaultBackendLoader:
    """Loads the evaluation model: llama.cpp with a GGUF LoRA (fast) or transformers.

    Adapters that added tokens (token-based mitigation) always run in transformers, since a
    llama.cpp LoRA cannot grow the vocabulary, and their prompts get the ``real`` tag.
    """

    study: InheritanceStudyConfig
    generator_cfg: Any

    def __call__(self, adapter_dir: Path | None) -> Backend:
        base = self.study.finetune.base_model
        if adapter_dir is None:
            if self.study.eval_backend == "hf":
                return load_backend("hf", model_path=base)
            return load_backend(
                "llamacpp",
                model_path=base,
                n_ctx=512,
                batch_size=self.generator_cfg.batch_size,
                weights=self.study.eval_weights,
            )

        added = read_train_meta(adapter_dir).get("added_tokens") or {}
        if added or self.study.eval_backend == "hf":
            model = load_finetuned(adapter_dir, "hf", **({"model_path": base} if base else {}))
        else:
            model = load_finetuned(
                adapter_dir,
                "llamacpp",
                n_ctx=512,
                batch_size=self.generator_cfg.batch_size,
                weights=self.study.eval_weights,
                **({"model_path": base} if base else {}),
            )
        if added:
            return TaggedBackend(model, DEFAULT_TAGS["real"])
        return model


def apply_data_mitigations(
    records: Sequence[Record], study: InheritanceStudyConfig, seed: int
) -> list[Record]:
    """Swap (CDA) and contrastive augmentation, applied to the augmented part of a mix."""
    out = list(records)
    strategies = study.mitigation.strategies
    if "swap" in strategies:
        out = swap_augment(out, study.mitigation.swap_fraction, seed, only_source="augmented")
    if "contrastive" in strategies:
        out = contrastive_augment(out, only_source="augmented")
    return out


# --------------------------------------------------------------------------- the sweep


def _load_real(study: InheritanceStudyConfig, seed: int) -> tuple[list[Record], str]:
    """The real set D_r and its cache key: the user's file or the synthbias-built seed set."""
    if study.real_data:
        path = Path(study.real_data)
        recs = read_corpus(path)
        for r in recs:
            r.source = "real"
            if "prompt" not in r.meta and isinstance(getattr(r, "prompt", None), str):
                r.meta["prompt"] = r.prompt  # type: ignore[attr-defined]
        key = _hash("file", str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
        return recs[: study.n_real], key

    # All six bias types, so D_r does not change when the swept bias types do.
    recs = build_real_corpus(sorted(bias_types()), study.n_real, seed=seed)
    return recs, _hash("built", study.n_real, seed)


def _task_names(study: InheritanceStudyConfig) -> list[str]:
    return list(study.tasks) if study.tasks else list_tasks()


def _tasks_and_sizes(config: ExperimentConfig) -> tuple[list[Any], dict[str, int], list[str]]:
    """The run's tasks, each one's item count, and notes on sizes raised to a task's minimum;
    raises :class:`~synthbias.tasks.core.TaskSizeError` where a configured size leaves the
    headline metric undefined."""

    study = config.inheritance
    tasks = [load_task(t, data_dir=config.tasks.data_dir) for t in _task_names(study)]
    sizes, notes = resolve_sizes(tasks, config.tasks.sizes, study.n_eval)
    return tasks, sizes, notes


def check_task_sizes(config: ExperimentConfig) -> dict[str, int]:
    """Each task's item count, raising :class:`~synthbias.tasks.core.TaskSizeError` where a
    configured size leaves the headline metric undefined.

    Why: a study that runs other pipelines first (the mitigation study's recursive part) calls
    this before anything runs, so a bad ``tasks.sizes`` fails in seconds, not after them.
    """
    return _tasks_and_sizes(config)[1]


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
    ``results.json``, ``results.csv`` (tidy: task, bias_type, ratio, seed, metric, value, CI),
    ``correlations.csv`` and the plots ``performance_by_ratio.png`` / ``bias_by_ratio.png``.

    ``backend`` is the generator (default from ``config.generator``); ``trainer`` and
    ``backend_loader`` replace LoRA training and model loading (tests use fakes).
    ``cache_dir`` holds the content-addressed steps (augmented data, adapters, evaluations,
    misalignment) instead of ``out``, so several runs (e.g. mitigation strategies) share them.
    """

    if config.kind != "inheritance":
        raise ValueError(f"run_inheritance needs kind: inheritance, got {config.kind!r}")
    study = config.inheritance
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out
    if not resume:
        shutil.rmtree(out / "mixes", ignore_errors=True)
        for sub in ("augmented", "adapters", "evals", "misalignment"):
            shutil.rmtree(cache / sub, ignore_errors=True)
    write_json(
        out / "manifest.json",
        {"config_hash": config.content_hash(), "synthbias": __version__, "created": time.time()},
    )
    atomic_write_text(out / "config.yaml", config.to_yaml())
    trainer = trainer or LoRATrainer(study)
    backend_loader = backend_loader or DefaultBackendLoader(study, config.generator)
    t0 = time.perf_counter()
    steps = Steps(resume=resume)
    tasks, sizes, size_notes = _tasks_and_sizes(config)
    task_key = _hash(
        [t.spec.model_dump(mode="json") for t in tasks],
        sizes,
        [t.item_source for t in tasks],
        config.seed,
    )

    real, real_key = _load_real(study, config.seed)
    write_jsonl(real, out / "real.jsonl")
    params = SamplingParams(
        max_tokens=min(config.sampling.max_tokens, 48),
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        top_k=config.sampling.top_k,
        seed=config.seed,
    )
    fair = "prompt" in study.mitigation.strategies
    gen_key = _hash(config.generator.model_dump(mode="json"), params.to_dict(), study.k_shots, fair)

    # 1. augmentation per (bias type, seed, arm), checked against the real data
    augmented, checks, ladder, dose, backend = augment_arms(
        study,
        config,
        real,
        real_key,
        gen_key,
        params,
        fair,
        cache,
        steps,
        backend,
        progress,
        _hash,
    )
    write_json(out / "checks.json", checks)
    generator_info = {"backend": backend.name, "model_id": backend.model_id} if backend else {}
    if backend is not None and hasattr(backend, "close"):
        backend.close()  # free the generator before training

    # 2. mixes (same ratios and seeds for every arm) and their misalignment against D_r;
    #    r = 0 is the real-only set, once per (bias type, seed)
    conditions: list[dict[str, Any]] = []
    for seed in study.seeds:
        for bt in study.bias_types:
            for arm, strength in study_arms(study):
                for ratio in study.ratios:
                    if ratio == 0 and arm != study_arms(study)[0][0]:
                        continue
                    recs = mix(
                        real,
                        augmented[(bt, seed, arm)],
                        ratio,
                        study.mix_mode,
                        study.n_total,
                        seed=seed,
                    )
                    recs = apply_data_mitigations(recs, study, seed)
                    one_arm = len(study_arms(study)) == 1
                    label = "real" if ratio == 0 else bt if one_arm else f"{bt}-{arm}"
                    mix_path = out / "mixes" / f"{label}-r{ratio:g}-s{seed}.jsonl"
                    write_jsonl(recs, mix_path)
                    conditions.append(
                        {
                            "bias_type": bt,
                            "arm": "real" if ratio == 0 else arm,
                            "strength": None if ratio == 0 else strength,
                            "ratio": ratio,
                            "seed": seed,
                            "records": recs,
                            "mix_key": _records_hash(recs),
                            "summary": mix_summary(recs),
                        }
                    )
    factors = (
        _misalignment(conditions, real, study, config, cache, encoder, steps)
        if study.misalignment
        else {}
    )

    # 3. fine-tune one adapter per distinct training set (r = 0 is shared by bias types, and by
    #    runs whose mitigations leave it unchanged)
    train_info: dict[str, dict[str, Any]] = {}
    distinct = {(c["mix_key"], c["seed"]): c for c in conditions}
    bar = progress("fine-tuning", len(distinct)) if progress else None
    for (mix_key, seed), c in distinct.items():
        akey = trainer.key(c["records"], seed) if hasattr(trainer, "key") else _hash(mix_key, seed)
        adir = cache / "adapters" / akey
        info_path = adir / "synthbias_train.json"

        def train(records: list[Record] = c["records"], adir: Path = adir, seed: int = seed):
            if adir.exists():  # an interrupted training: start it over
                shutil.rmtree(adir)
            return trainer(records, adir, seed)

        train_info[akey] = steps.cached("train", info_path, train, _read_json, _save_json)
        for cc in conditions:
            if cc["mix_key"] == mix_key and cc["seed"] == seed:
                cc["adapter"] = akey
        if bar:
            bar.update(1)
    if bar:
        bar.close()

    # 4. evaluate every model (and the untuned base) on the tasks
    evals: dict[str, list[dict[str, Any]]] = {}
    evals_samples: dict[str, Any] = {}
    evals_records: dict[str, dict[str, list[dict[str, Any]]]] = {}
    eval_files: dict[str, str] = {}  # adapter -> its evaluation file, relative to ``out``
    eval_model_ids: dict[str, str | None] = {}
    to_eval = (["base"] if study.eval_base else []) + sorted(
        {c["adapter"] for c in conditions}, key=str
    )
    bar = progress("evaluating", len(to_eval) * len(tasks)) if progress else None
    for akey in to_eval:
        eval_model = study.eval_backend
        if study.eval_backend == "llamacpp" and study.eval_weights != "native":
            eval_model = f"llamacpp-{study.eval_weights}"  # native keeps its old cache key
        ekey = _hash(akey, task_key, eval_model, study.finetune.base_model)
        epath = cache / "evals" / f"{ekey}.json"
        eval_files[akey] = os.path.relpath(epath, out)

        def evaluate(akey: str = akey) -> dict[str, Any]:
            model = backend_loader(None if akey == "base" else cache / "adapters" / akey)
            rows, samples, answers, seconds = [], {}, {}, {}
            try:
                for task in tasks:
                    t_task = time.perf_counter()
                    res = task.evaluate(
                        model,
                        n=sizes[task.name],
                        seed=config.seed,
                        n_resamples=config.measure.n_resamples,
                    )
                    rows.extend(_task_rows(task, res))
                    samples[task.spec.name] = _samples(res)
                    answers[task.spec.name] = compact_records(res.records)
                    seconds[task.spec.name] = round(time.perf_counter() - t_task, 2)
                    if bar:
                        bar.update(1)
            finally:
                if hasattr(model, "close"):
                    model.close()
            return {
                "model": akey,
                "model_id": getattr(model, "model_id", None),
                "rows": rows,
                "samples": samples,
                "records": answers,
                "seconds": seconds,  # per task: where an evaluation's time goes
            }

        stored = steps.cached("evaluate", epath, evaluate, _read_json, _save_json)
        evals[akey] = stored["rows"]
        evals_samples[akey] = stored.get("samples", {})
        evals_records[akey] = stored.get("records", {})
        eval_model_ids[akey] = stored.get("model_id")
        if bar and steps.last_reused:
            bar.update(len(tasks))
    if bar:
        bar.close()

    # 5. tidy table, harm vs misalignment, plots
    table = _tidy(conditions, evals, study)
    n_res = config.measure.n_resamples

    def compare() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        deltas = paired_deltas(tasks, sizes, config.seed, conditions, evals_records, n_res)
        effects = arm_effects(deltas, conditions, evals_records, tasks, sizes, config.seed, n_res)
        return deltas, effects

    deltas, effects = steps.timed("compare", compare)
    answers_by_task = task_answers(tasks, deltas, table, sizes)
    harm = downstream_harm(table, tasks)
    attribution = factor_attribution(
        harm_scores(harm),
        factors,
        excluded=left_out_factors(factors),
        n_resamples=config.measure.n_resamples,
        seed=config.seed,
    )
    corr = legacy_correlations(attribution)
    results = {
        "kind": "inheritance",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "generator": generator_info,
        "environment": run_environment(),
        "evaluation": {
            "backend": study.eval_backend,
            "weights": study.eval_weights,
            "model_ids": {k: v for k, v in eval_model_ids.items() if v},
        },
        "timing": {
            f"{name}_seconds": round(steps.seconds(step), 2)
            for name, step in (
                ("augment", "augment"),
                ("train", "train"),
                ("eval", "evaluate"),
                ("paired", "compare"),
            )
        }
        | {"total_seconds": round(time.perf_counter() - t0, 2)},
        "steps": steps.summary(),
        "tasks": [
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
        ],
        "task_answers": answers_by_task,
        "paired_deltas": deltas,
        "eval_files": eval_files,
        "size_notes": size_notes,
        "augmentation_checks": checks,
        "not_carried": [
            f"{c['bias_type']} (seed {c['seed']}, {c['arm']}): {c['dimension']} [{c['method']}]"
            for c in checks
            if not c["carried"] and c["requested_strength"] > 0
        ],
        "fallback_ladder": ladder,
        "dose_response": dose,
        "arm_effects": effects,
        "attribution": attribution,
        "conditions": [
            {k: v for k, v in c.items() if k != "records"} | {"train": train_info.get(c["adapter"])}
            for c in conditions
        ],
        "misalignment": {"|".join(str(p) for p in k): v for k, v in factors.items()},
        "correlations": corr,
        "plots": [],
        "flags": [
            {
                "severity": "warning",
                "message": f"augmentation did not carry the requested bias: {c['bias_type']} "
                f"(seed {c['seed']}, arm {c['arm']}), dimension {c['dimension']} with fallback "
                f"{c['method']} (augmented − real = {c['difference']:.3f})",
                "source": "augmentation check",
            }
            for c in checks
            if not c["carried"] and c["requested_strength"] > 0
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
        ],
        "samples": ["samples.jsonl"],
    }
    atomic_write_text(
        out / "samples.jsonl",
        "".join(json.dumps(r) + "\n" for r in _sample_rows(augmented, evals_samples)),
    )
    import pandas as pd

    df = pd.DataFrame(table)
    write_table(df, out / "results.csv")
    write_table(df, out / "results.parquet")
    write_table(pd.DataFrame(corr), out / "correlations.csv")
    write_table(pd.DataFrame(deltas), out / "deltas.csv")
    write_table(pd.DataFrame(attribution), out / "attribution.csv")
    if effects:
        write_table(pd.DataFrame(effects), out / "arm_effects.csv")
    from synthbias.studies.inheritance.plots import plot_by_ratio, plot_deltas

    if plot_deltas(deltas, out / "bias_change_by_ratio.png") is not None:
        results["plots"].append("bias_change_by_ratio.png")
    for what, name in (("performance", "performance_by_ratio.png"), ("bias", "bias_by_ratio.png")):
        if plot_by_ratio(df, results["tasks"], what, out / name) is not None:
            results["plots"].append(name)
    write_json(out / "results.json", results)

    write_run_report(out)
    return results


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _save_json(value: Any, path: Path) -> None:
    write_json(path, value)


def _sample_rows(
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


def _task_rows(task: Any, res: Any) -> list[dict[str, Any]]:
    rows = []
    for row in res.rows():
        name = row["metric"]
        rows.append(
            row
            | {
                "kind": task.spec.kind,
                "bias_related": task.spec.bias_related,
                "role": "performance"
                if name == task.spec.primary_metric
                else "bias"
                if name == task.spec.bias_metric
                else "other",
            }
        )
    return rows


def _samples(res: Any, k: int = 8) -> list[dict[str, Any]]:
    items = getattr(res, "items", None) or getattr(res, "records", None) or []
    out = []
    for it in list(items)[:k]:
        out.append(it if isinstance(it, dict) else getattr(it, "__dict__", {"item": str(it)}))
    return json.loads(json.dumps(out, default=str))


def _tidy(
    conditions: list[dict[str, Any]], evals: dict[str, list[dict[str, Any]]], study: Any
) -> list[dict[str, Any]]:
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
                    "augmented_share": c["summary"]["augmented_share"],
                }
                | row
            )
    return rows


# --------------------------------------------------------------------------- misalignment


def _misalignment(
    conditions: list[dict[str, Any]],
    real: list[Record],
    study: InheritanceStudyConfig,
    config: ExperimentConfig,
    out: Path,
    encoder: Any,
    steps: Steps,
) -> dict[tuple[str, str, float, int], dict[str, Any]]:
    """The three misalignment factors of every training set against the real data D_r, keyed
    by (bias type, arm, ratio, seed)."""

    real_texts = [r.text for r in real]
    found: dict[tuple[str, str, float, int], dict[str, Any]] = {}
    for c in conditions:
        axis = get_bias_type(c["bias_type"]).axis
        key = _hash(c["mix_key"], _records_hash(real), axis, config.measure.n_resamples, 2)
        path = out / "misalignment" / f"{key}.json"

        def compute(records: list[Record] = c["records"], axis: str = axis) -> dict[str, Any]:
            res = misalignment_factors(
                [r.text for r in records],
                real_texts,
                axes=(axis,),
                encoder=encoder,
                n_resamples=min(config.measure.n_resamples, 300),
                mmd_n_resamples=50,
                n_permutations=100,
                seed=config.seed,
            )
            vals = {}
            for short, pattern in FACTOR_KEYS.items():
                m = res.get(pattern.format(axis=axis))
                if m is not None:
                    vals[short] = {
                        "value": m.value,
                        "ci": m.ci.to_dict() if m.ci else None,
                    } | (
                        {"n_cooccurring_texts_real": m.meta["n_cooccurring_texts_real"]}
                        if "n_cooccurring_texts_real" in m.meta
                        else {}
                    )
            return vals

        vals = steps.cached("misalignment", path, compute, _read_json, _save_json)
        found[(c["bias_type"], c["arm"], c["ratio"], c["seed"])] = vals
    return found
