"""The attribution study's steps, one unit each: a replicate's pool, its generator sentences, an
arm's misalignment measures, and the signed bias values read off an arm's evaluation.

Why its own module: the runner (:mod:`synthbias.studies.attribution.runner`) reads as the
study's outline, and every unit that costs time is cached under a content key of its inputs
(the replicate's seed is an argument of each), so a rerun reuses it and kill -9 loses at most
the unit in progress. Training and evaluation reuse the inheritance study's steps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.core.hashing import derive_seed
from synthbias.core.records import Record, read_jsonl, write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import write_json
from synthbias.generate.prompts import clean_completion
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.generate.retries import generate_with_retries
from synthbias.lexicon.bias_types import get_bias_type
from synthbias.measure.misalignment import median_bandwidth, misalignment_factors, sentiment_scores
from synthbias.mitigate.swap import swap_bias_type
from synthbias.studies.attribution.manipulate import FILLER_TOPICS, filler_prompt
from synthbias.studies.inheritance.augment import BiasSpec, augment
from synthbias.studies.inheritance.keys import content_key, records_key

#: The misalignment measure(s) of each factor (names of :func:`misalignment_factors`).
MEASURES: dict[str, tuple[str, ...]] = {
    "values": ("values.{axis}.sentiment_gap",),
    "group_data": ("group_data.{axis}.representation_jsd",),
    "distribution": ("distribution.mmd2", "distribution.frechet"),
}

#: A generator sentence counts as sentiment-neutral within this VADER compound score.
NEUTRAL = 0.05


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _save_json(value: Any, path: Path) -> None:
    write_json(path, value)


class GroupBlindEncoder:
    """Sentence embeddings that do not see who is in a text: the mean of the embeddings of a
    text and of its counterfactual twin (target and contrast groups swapped).

    Why: the distribution factor is the texts' form, unrelated to any group, but a sentence
    encoder places "a woman ..." and "a man ..." apart, so MMD² / Fréchet on raw embeddings
    move when only the group shares change (a leak of group data into the distribution
    measures by construction). The twin average is invariant to the swap, so these measures
    see length, style and topic only."""

    def __init__(self, encoder: Any, bias_type: str) -> None:
        self.encoder, self.bias_type = encoder, bias_type
        self.model_id = f"{getattr(encoder, 'model_id', type(encoder).__name__)}+group-blind"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        fn = getattr(self.encoder, "encode", self.encoder)
        own = np.asarray(fn(list(texts)), dtype=np.float64)
        twin = np.asarray(fn([swap_bias_type(t, self.bias_type) for t in texts]), np.float64)
        mean = (own + twin) / 2
        norm = np.linalg.norm(mean, axis=1, keepdims=True)
        return mean / np.where(norm > 0, norm, 1.0)


def measure_names(axis: str) -> dict[str, list[str]]:
    """Each factor's measure names on ``axis``."""
    return {f: [m.format(axis=axis) for m in ms] for f, ms in MEASURES.items()}


def write_pool(
    generator: Callable[[], Backend],
    real: Sequence[Record],
    *,
    bias_type: str,
    dimensions: Sequence[str],
    n: int,
    params: SamplingParams,
    seed: int,
    k_shots: int,
    chunk_size: int,
    gen_key: str,
    folder: Path,
    steps: Steps,
) -> list[Record]:
    """Replicate ``seed``'s pool: ``n`` texts the generator writes under the inheritance study's
    strength-0 (control) prompts for ``bias_type``: people of either group, no bias asked for."""
    spec = BiasSpec(bias_type, tuple(dimensions), 0.0)
    key = content_key(gen_key, spec.to_dict(), n, records_key(real), seed, k_shots)
    path = folder / f"pool-{bias_type}-s{seed}-{key}.jsonl"

    def compute() -> list[Record]:
        return augment(
            real,
            spec,
            generator(),
            n,
            params,
            seed=seed,
            k_shots=k_shots,
            chunk_size=chunk_size,
            id_prefix=f"pool-s{seed}",
        )

    return steps.cached("pool", path, compute, read_jsonl, write_jsonl)


def neutral_sentence(text: str, bias_type: str) -> bool:
    """A generator sentence the distribution factor may append: 4+ words, no group term of
    ``bias_type`` (its counterfactual swap leaves it unchanged), VADER compound within
    :data:`NEUTRAL`."""
    if len(text.split()) < 4 or swap_bias_type(text, bias_type) != text:
        return False
    return bool(abs(float(sentiment_scores([text])[0])) <= NEUTRAL)


def write_filler(
    generator: Callable[[], Backend],
    *,
    bias_type: str,
    n: int,
    params: SamplingParams,
    seed: int,
    chunk_size: int,
    gen_key: str,
    folder: Path,
    steps: Steps,
) -> list[str]:
    """Replicate ``seed``'s generator sentences on unrelated topics (group-free, neutral): up to
    ``n`` of them; raises when the generator wrote none that qualifies."""
    key = content_key(gen_key, bias_type, n, seed, FILLER_TOPICS, NEUTRAL)
    path = folder / f"filler-{bias_type}-s{seed}-{key}.json"
    prompts = [filler_prompt(FILLER_TOPICS[i % len(FILLER_TOPICS)]) for i in range(n)]

    def clean(i: int, completion: str) -> str:
        text = clean_completion(completion.split("\n", 1)[0], max_sentences=1).strip()
        return text if neutral_sentence(text, bias_type) else ""

    def compute() -> list[str]:
        texts, _, _ = generate_with_retries(
            generator(),
            prompts,
            params,
            clean=clean,
            chunk_seed=lambda attempt, start: derive_seed(seed, "filler", attempt, start),
            stop=("\n",),
            chunk_size=chunk_size,
            max_retries=3,
        )
        kept = [t for t in texts if t]
        if not kept:
            raise RuntimeError(
                f"the generator wrote no group-free, sentiment-neutral sentence in {n} tries "
                f"x 4 (seed {seed}); the distribution factor has nothing to append"
            )
        return kept

    return steps.cached("filler", path, compute, _read_json, _save_json)


def real_bandwidth(real: Sequence[Record], encoder: Any, bias_type: str) -> float:
    """One MMD² kernel bandwidth for every arm: the median heuristic on the real data's
    group-blind embeddings. Why: the default bandwidth is re-estimated from each pair of
    corpora, so an arm whose texts spread more gets a wider kernel and a *smaller* MMD²; a
    shared bandwidth keeps the arms' MMD² on one scale."""
    return median_bandwidth(GroupBlindEncoder(encoder, bias_type).encode([r.text for r in real]))


def arm_measures(
    records: Sequence[Record],
    real: Sequence[Record],
    bias_type: str,
    *,
    bandwidth: float,
    encoder: Any,
    n_resamples: int,
    seed: int,
    folder: Path,
    steps: Steps,
) -> dict[str, dict[str, Any]]:
    """The misalignment measures of one arm's augmented set against the real data: each
    measure's value and its within-replicate CI (a secondary figure). The distribution
    measures use group-blind embeddings (:class:`GroupBlindEncoder`)."""
    axis = get_bias_type(bias_type).axis
    key = content_key(
        records_key(records), records_key(real), axis, n_resamples, seed, round(bandwidth, 6), 2
    )
    names = [m for ms in measure_names(axis).values() for m in ms]

    def compute() -> dict[str, dict[str, Any]]:
        res = misalignment_factors(
            [r.text for r in records],
            [r.text for r in real],
            axes=(axis,),
            encoder=GroupBlindEncoder(encoder, bias_type),
            n_resamples=n_resamples,
            mmd_n_resamples=50,
            n_permutations=100,
            bandwidth=bandwidth,
            frechet_groups=min(50, len(records)),
            seed=seed,
        )
        return {
            m: {"value": res[m].value, "ci": res[m].ci.to_dict() if res[m].ci else None}
            for m in names
            if m in res
        }

    return steps.cached("misalignment", folder / f"{key}.json", compute, _read_json, _save_json)


def bias_values(evaluation: dict[str, Any], tasks: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Each task's signed bias metric (its ``bias_metric`` row) from a stored evaluation, with
    its item-level CI; a task whose metric is missing or not finite raises, naming it."""
    out = {}
    for task in tasks:
        rows = [
            r
            for r in evaluation["rows"]
            if r["task"] == task.spec.name and r["metric"] == task.spec.bias_metric
        ]
        v = rows[0].get("value") if rows else None
        if v is None or v != v:
            raise ValueError(
                f"{task.spec.name}: {task.spec.bias_metric} could not be computed for model "
                f"{evaluation.get('model')}; raise its size (tasks.sizes) above its minimum"
            )
        out[task.spec.name] = {
            "metric": task.spec.bias_metric,
            "value": float(v),
            "ci_low": rows[0].get("ci_low"),
            "ci_high": rows[0].get("ci_high"),
        }
    return out
