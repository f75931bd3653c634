"""The inheritance study's steps: augment -> mix -> train -> evaluate -> compare -> attribute.

Each function does one step for one unit of the sweep, and takes only what that unit needs: the
replicate (bias type, training seed, arm, ratio) or the model is an argument, never a loop inside
the step, so :func:`synthbias.studies.inheritance.runner.run_inheritance` reads as the study's
outline and one more replicate is one more call. Units that cost time go through
:class:`~synthbias.core.steps.Steps`, stored under a content key of their inputs
(:mod:`synthbias.studies.inheritance.keys`): a rerun reuses them, and a changed input redoes only
the units it changes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbias.core.progress import ProgressFactory
from synthbias.core.records import Record, read_corpus, read_jsonl, write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import write_json
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.lexicon.bias_types import bias_types, get_bias_type
from synthbias.measure.bias_dimensions import check_augmentation, dose_response
from synthbias.measure.misalignment import misalignment_factors
from synthbias.studies.inheritance.attribution import (
    downstream_harm,
    factor_attribution,
    harm_scores,
    legacy_correlations,
)
from synthbias.studies.inheritance.augment import (
    BiasSpec,
    augment,
    augment_carried,
    augment_with_methods,
    build_real_corpus,
)
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.studies.inheritance.design import Cell, arm_effects, left_out_factors
from synthbias.studies.inheritance.keys import content_key, records_key
from synthbias.studies.inheritance.replicates import (
    headlines,
    ratio_slopes,
    replicate_effects,
    replication_summary,
    strip_draws,
)
from synthbias.studies.inheritance.training import BackendLoader, Trainer
from synthbias.tasks.compare import compact_records
from synthbias.tasks.sweep import paired_deltas
from synthbias.train.adapter import AUTO_KEY
from synthbias.train.mix import MixMode, mix, mix_summary

#: Misalignment factors under axis-independent names (the run spans several axes).
FACTOR_KEYS: dict[str, str] = {
    "values": "values.{axis}.sentiment_gap",
    "group_data.representation": "group_data.{axis}.representation_jsd",
    "group_data.cooccurrence": "group_data.{axis}.cooccurrence_jsd",
    "distribution.mmd2": "distribution.mmd2",
    "distribution.frechet": "distribution.frechet",
}

Tick = Callable[[int], Any]


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _save_json(value: Any, path: Path) -> None:
    write_json(path, value)


def _no_tick(n: int) -> None:
    return None


@contextmanager
def progress_bar(progress: ProgressFactory | None, desc: str, total: int) -> Iterator[Tick]:
    """``tick(n)`` advances a bar of ``progress`` (none: ticks do nothing), closed at the end."""
    bar = progress(desc, total) if progress else None
    yield bar.update if bar else _no_tick
    if bar:
        bar.close()


# --------------------------------------------------------------------------- the real data


def load_real(study: InheritanceStudyConfig, seed: int) -> tuple[list[Record], str]:
    """The real set D_r and its cache key: the user's file or the synthbias-built seed set."""
    if study.real_data:
        path = Path(study.real_data)
        recs = read_corpus(path)
        for r in recs:
            r.source = "real"
            if "prompt" not in r.meta and isinstance(getattr(r, "prompt", None), str):
                r.meta["prompt"] = r.prompt  # type: ignore[attr-defined]
        key = content_key("file", str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
        return recs[: study.n_real], key

    # All six bias types, so D_r does not change when the swept bias types do.
    recs = build_real_corpus(sorted(bias_types()), study.n_real, seed=seed)
    return recs, content_key("built", study.n_real, seed)


# --------------------------------------------------------------------------- 1. augment


@dataclass
class Generator:
    """The generator of the augmented data, built on first use: a run whose augmented sets are
    all stored never loads it. Which backend and model wrote them is kept in ``info_path``, so
    a resumed run that reuses every set still reports its generator."""

    build: Callable[[], Backend]
    backend: Backend | None = None
    info_path: Path | None = None
    #: whether this object built (and so owns and closes) the backend; a backend passed in
    #: stays open for the caller (replicates run inline share it)
    built: bool = False

    def __call__(self) -> Backend:
        if self.backend is None:
            self.backend = self.build()
            self.built = True
            if self.info_path is not None:
                write_json(self.info_path, self.info())
        return self.backend

    def info(self) -> dict[str, Any]:
        """The backend's name and model id; from ``info_path`` when it was never loaded."""
        if self.backend is not None:
            return {"backend": self.backend.name, "model_id": self.backend.model_id}
        if self.info_path is not None and self.info_path.is_file():
            return json.loads(self.info_path.read_text(encoding="utf-8"))
        return {}

    def release(self) -> dict[str, Any]:
        """Close the generator (its memory is freed before training); its name for the results."""
        info = self.info()
        if self.backend is not None and self.info_path is not None:
            write_json(self.info_path, info)
        if self.built and self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()
            self.backend, self.built = None, False
        return info


@dataclass(frozen=True)
class SetWriter:
    """Writes one single-dimension augmented set: a unit of the ``augment`` step, stored in
    ``folder`` under a key of everything that changes it (``gen_key``: the generator, sampling,
    exemplar count and fair prompting; ``real_key``: the real data)."""

    steps: Steps
    folder: Path
    generator: Generator
    real: list[Record]
    real_key: str
    gen_key: str
    params: SamplingParams
    k_shots: int
    chunk_size: int
    fair: bool
    filter_retries: int

    def __call__(self, spec: BiasSpec, n: int, prefix: str, *, seed: int) -> list[Record]:
        name = content_key(
            self.gen_key, spec.to_dict(), n, self.real_key, seed, self.filter_retries
        )
        path = self.folder / f"{spec.bias_type}-{spec.dimensions[0]}-s{seed}-{name}.jsonl"

        def compute() -> list[Record]:
            return augment(
                self.real,
                spec,
                self.generator(),
                n,
                self.params,
                seed=seed,
                k_shots=self.k_shots,
                chunk_size=self.chunk_size,
                fair=self.fair,
                filter_retries=self.filter_retries,
                id_prefix=f"{prefix}-p{spec.strength:g}",
            )

        return self.steps.cached("augment", path, compute, read_jsonl, write_jsonl)


@dataclass
class ArmSets:
    """One bias type's augmented sets at one seed: each arm's records, their checks against the
    real data, the fallback rungs tried, and the dose-response over strengths."""

    by_arm: dict[str, list[Record]] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)
    ladder: list[dict[str, Any]] = field(default_factory=list)
    dose: list[dict[str, Any]] = field(default_factory=list)


def augment_arms(
    write: Callable[[BiasSpec, int, str], list[Record]],
    real: list[Record],
    bias_type: str,
    seed: int,
    *,
    arms: Sequence[tuple[str, float]],
    dimensions: tuple[str, ...],
    n: int,
    fallback: Sequence[str],
    check_strengths: Sequence[float],
    n_resamples: int,
    tick: Tick = _no_tick,
) -> ArmSets:
    """Every arm's augmented set for ``bias_type`` at ``seed``, each biased arm checked against
    the control arm (strength 0: same templates, prompts, exemplar count and rungs, the bias
    removed), the control arm itself against the real data.

    The fallback ladder is climbed per dimension at the top requested strength on a batch of
    its own (:func:`augment_carried`); every arm is then written afresh on the rungs found, so
    "carried" is decided on texts that did not choose the rung, and strengths differ only in
    bias injection. Without a control arm in the study a strength-0 set is written for the
    check alone (``check-s0``). ``check_strengths`` are written only for the dose-response.
    ``write`` writes one single-dimension set (a :class:`SetWriter`).
    """
    top = max([s for _, s in arms] + list(check_strengths))
    found = augment_carried(
        write,
        real,
        BiasSpec(bias_type, dimensions, top),
        n,
        ladder=fallback,
        n_resamples=n_resamples,
        seed=seed,
    )
    labels = {"bias_type": bias_type, "seed": seed}
    out = ArmSets(ladder=[labels | t for t in found.tried])
    by_strength: dict[float, list[Record]] = {}

    def written(strength: float) -> list[Record]:
        """The set at ``strength`` on the chosen rungs: a fresh batch, not the rung choice's."""
        if strength not in by_strength:
            spec = BiasSpec(bias_type, dimensions, strength)
            by_strength[strength] = augment_with_methods(write, spec, n, found.methods)
        return by_strength[strength]

    # the reference of every check: the control arm (strength 0, same prompts and rungs),
    # written for the check alone when the study has no control arm
    control = written(0.0)
    control_arm = next((a for a, s in arms if s == 0.0), "check-s0")

    def checked(recs: list[Record], arm: str) -> list[dict[str, Any]]:
        ref = None if arm == control_arm else control
        rows = check_augmentation(real, recs, n_resamples=n_resamples, seed=seed, control=ref)
        return [labels | {"arm": arm} | c.to_dict() for c in rows]

    for arm, strength in arms:
        out.by_arm[arm] = written(strength)
        out.checks += checked(out.by_arm[arm], arm)
        tick(len(out.by_arm[arm]))
    if control_arm == "check-s0":
        out.checks += checked(control, control_arm)
    for strength in check_strengths:
        if strength not in by_strength:
            out.checks += checked(written(strength), f"check-s{strength:g}")
    if len(by_strength) >= 2:
        found_dose = dose_response(real, by_strength, n_resamples=n_resamples, seed=seed)
        out.dose = [{"seed": seed, **d} for d in found_dose]
    return out


@dataclass
class Augmentation:
    """The augment step over the sweep: each (bias type, seed, arm)'s set, and every check,
    fallback rung and dose-response, in the sweep's order."""

    sets: dict[tuple[str, int, str], list[Record]]
    checks: list[dict[str, Any]]
    ladder: list[dict[str, Any]]
    dose: list[dict[str, Any]]

    @classmethod
    def gather(cls, by_cell: dict[tuple[str, int], ArmSets]) -> Augmentation:
        """From :func:`augment_arms` per (bias type, seed), in the order they ran."""
        return cls(
            sets={(bt, s, arm): r for (bt, s), a in by_cell.items() for arm, r in a.by_arm.items()},
            checks=[c for a in by_cell.values() for c in a.checks],
            ladder=[t for a in by_cell.values() for t in a.ladder],
            dose=[d for a in by_cell.values() for d in a.dose],
        )


# --------------------------------------------------------------------------- 2. mix


def mix_set(
    real: list[Record],
    augmented: list[Record],
    cell: Cell,
    *,
    mode: MixMode,
    n_total: int | None,
    mitigate: Callable[..., list[Record]],
    folder: Path,
) -> dict[str, Any]:
    """The training set of ``cell``: the real data mixed with an arm's augmented set, with the
    data mitigations (``mitigate(records, seed=...)``) applied, written to ``folder``; returned
    as the sweep's condition (labels, records, their key and counts)."""
    records = mix(real, augmented, cell.ratio, mode, n_total, seed=cell.seed)
    records = mitigate(records, seed=cell.seed)
    write_jsonl(records, folder / f"{cell.name}.jsonl")
    return {
        "bias_type": cell.bias_type,
        "arm": cell.arm,
        "strength": cell.strength,
        "ratio": cell.ratio,
        "seed": cell.seed,
        "replicate": cell.replicate,
        "records": records,
        "mix_key": records_key(records),
        "summary": mix_summary(records),
    }


def training_set_misalignment(
    records: list[Record],
    mix_key: str,
    bias_type: str,
    real: list[Record],
    *,
    encoder: Any,
    n_resamples: int,
    seed: int,
    folder: Path,
    steps: Steps,
) -> dict[str, Any]:
    """The three misalignment factors of one training set against the real data D_r, on its
    bias type's axis: a unit of the ``misalignment`` step."""
    axis = get_bias_type(bias_type).axis
    key = content_key(mix_key, records_key(real), axis, n_resamples, 2)

    def compute() -> dict[str, Any]:
        res = misalignment_factors(
            [r.text for r in records],
            [r.text for r in real],
            axes=(axis,),
            encoder=encoder,
            n_resamples=min(n_resamples, 300),
            mmd_n_resamples=50,
            n_permutations=100,
            seed=seed,
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

    return steps.cached("misalignment", folder / f"{key}.json", compute, _read_json, _save_json)


# --------------------------------------------------------------------------- 3. train


def train_adapter(
    trainer: Trainer,
    records: list[Record],
    seed: int,
    mix_key: str,
    *,
    folder: Path,
    steps: Steps,
) -> tuple[str, dict[str, Any]]:
    """One adapter fine-tuned on ``records`` under training seed ``seed``: a unit of the
    ``train`` step, stored in ``folder/<key>`` (an interrupted training starts over). Returns
    the adapter's key and the trainer's report."""
    akey = trainer.key(records, seed) if hasattr(trainer, "key") else content_key(mix_key, seed)
    adir = folder / akey

    def compute() -> dict[str, Any]:
        if adir.exists():  # an interrupted training: start it over
            shutil.rmtree(adir)
        return trainer(records, adir, seed)

    info = steps.cached("train", adir / "synthbias_train.json", compute, _read_json, _save_json)
    return akey, info


# --------------------------------------------------------------------------- 4. evaluate


def tasks_key(tasks: Sequence[Any], sizes: dict[str, int], item_seed: int) -> str:
    """Everything about the tasks that changes an evaluation: specs, sizes, items, item seed."""
    return content_key(
        [t.spec.model_dump(mode="json") for t in tasks],
        sizes,
        [t.item_source for t in tasks],
        item_seed,
    )


def eval_path(
    folder: Path,
    model: str,
    task_key: str,
    eval_backend: str,
    eval_weights: str,
    base_model: str | None,
) -> Path:
    """Where the evaluation of ``model`` (an adapter key, or ``"base"``) is stored."""
    eval_model = AUTO_KEY if eval_backend == "auto" else eval_backend
    if eval_backend in ("llamacpp", "auto") and eval_weights != "native":
        eval_model = f"{eval_backend}-{eval_weights}"  # native keeps its old cache key
    return folder / f"{content_key(model, task_key, eval_model, base_model)}.json"


def task_rows(task: Any, res: Any) -> list[dict[str, Any]]:
    """A task result's tidy rows, each with the metric's role (performance, bias or other)."""
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


def result_samples(res: Any, k: int = 8) -> list[dict[str, Any]]:
    """The first ``k`` items of a task result, as JSON, for the report's sample browser."""
    items = getattr(res, "items", None) or getattr(res, "records", None) or []
    out = []
    for it in list(items)[:k]:
        out.append(it if isinstance(it, dict) else getattr(it, "__dict__", {"item": str(it)}))
    return json.loads(json.dumps(out, default=str))


def evaluate_model(
    model: str,
    adapter_dir: Path | None,
    load: BackendLoader,
    tasks: Sequence[Any],
    sizes: dict[str, int],
    *,
    item_seed: int,
    n_resamples: int,
    path: Path,
    steps: Steps,
    tick: Tick = _no_tick,
) -> dict[str, Any]:
    """One model (the adapter in ``adapter_dir``, or the untuned base model) on every task: a
    unit of the ``evaluate`` step stored at ``path``, with rows, samples, per-item answers and
    each task's seconds."""

    def compute() -> dict[str, Any]:
        backend = load(adapter_dir)
        rows: list[dict[str, Any]] = []
        samples, answers, seconds = {}, {}, {}
        try:
            for task in tasks:
                t_task = time.perf_counter()
                res = task.evaluate(
                    backend, n=sizes[task.name], seed=item_seed, n_resamples=n_resamples
                )
                rows.extend(task_rows(task, res))
                samples[task.spec.name] = result_samples(res)
                answers[task.spec.name] = compact_records(res.records)
                seconds[task.spec.name] = round(time.perf_counter() - t_task, 2)
                tick(1)
        finally:
            if hasattr(backend, "close"):
                backend.close()
        return {
            "model": model,
            "model_id": getattr(backend, "model_id", None),
            "rows": rows,
            "samples": samples,
            "records": answers,
            "seconds": seconds,  # per task: where an evaluation's time goes
        }

    stored = steps.cached("evaluate", path, compute, _read_json, _save_json)
    if steps.last_reused:
        tick(len(tasks))
    return stored


# --------------------------------------------------------------------------- 5. compare


def compare_models(
    tasks: Sequence[Any],
    sizes: dict[str, int],
    conditions: list[dict[str, Any]],
    answers: dict[str, dict[str, list[dict[str, Any]]]],
    *,
    item_seed: int,
    n_resamples: int,
    steps: Steps,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``compare`` step, paired from the stored ``answers`` (by adapter, then task): every
    model's change from the real-only model (deltas), and every arm's bias change against the
    real-only model and the control arm (arm effects)."""

    def compute() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        deltas = paired_deltas(tasks, sizes, item_seed, conditions, answers, n_resamples)
        effects = arm_effects(deltas, conditions, answers, tasks, sizes, item_seed, n_resamples)
        return deltas, effects

    return steps.timed("compare", compute)


def infer_over_replicates(
    tasks: Sequence[Any],
    sizes: dict[str, int],
    conditions: list[dict[str, Any]],
    answers: dict[str, dict[str, list[dict[str, Any]]]],
    effects: Sequence[dict[str, Any]],
    study: InheritanceStudyConfig,
    *,
    item_seed: int,
    n_resamples: int,
    level: float,
    steps: Steps,
) -> dict[str, Any]:
    """The ``replicates`` step: every replicate's paired effects (vs the real-only model and
    the control arm of the same replicate), the headlines over replicates with their MDE and
    adjusted flags, and the dose-response slopes over ratios (see
    :mod:`synthbias.studies.inheritance.replicates`)."""

    def compute() -> dict[str, Any]:
        rows = replicate_effects(
            tasks,
            sizes,
            conditions,
            answers,
            item_seed=item_seed,
            n_resamples=n_resamples,
            draws=study.inference == "two_stage",
        )
        r = study.n_replicates
        heads = headlines(
            rows,
            r,
            method=study.inference,
            adjust=study.adjust,
            level=level,
            pooled=effects,
            seed=item_seed,
        )
        return {
            "summary": replication_summary(
                heads, study.seeds, study.inference, study.adjust, item_seed
            ),
            "headlines": heads,
            "ratio_slopes": ratio_slopes(rows, r, level),
            "per_replicate": strip_draws(rows),
        }

    return steps.timed("replicates", compute)


# --------------------------------------------------------------------------- 6. attribute


def attribute_harm(
    table: list[dict[str, Any]],
    tasks: Sequence[Any],
    factors: dict[tuple[str, str, float, int], dict[str, Any]],
    *,
    n_resamples: int,
    seed: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Which misalignment factor tracks the downstream harm: the attribution rows, and the same
    as the older correlation table."""
    attribution = factor_attribution(
        harm_scores(downstream_harm(table, tasks)),
        factors,
        excluded=left_out_factors(factors),
        n_resamples=n_resamples,
        seed=seed,
    )
    return attribution, legacy_correlations(attribution)
