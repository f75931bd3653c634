"""Hooks that put the data-, prompt- and generator-level mitigations into the recursive
(equilibrium) study.

``run_equilibrium`` calls :func:`generation_prompt` once, :func:`mitigated_generator` before it
first generates, and :func:`after_generation` on every generated corpus before it is stored and
used as the next generation's few-shot pool. Each applies the configured strategies registered
for the ``equilibrium`` pipeline (:data:`synthbias.core.registry.MITIGATIONS`) by their kind, so a
newly registered strategy runs here without an edit; with no strategy configured each is a
no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from synthbias.core.records import Record
from synthbias.generate import load_backend
from synthbias.generate.protocol import Backend
from synthbias.mitigate import apply_data, chosen

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig

PIPELINE = "equilibrium"


def generation_prompt(study: EquilibriumStudyConfig) -> str:
    """The prompt template name, switched by every ``prompt`` strategy (``prompt``: its
    fairness variant)."""
    prompt = study.prompt
    for e in chosen(study.mitigation.strategies, PIPELINE, "prompt"):
        prompt = e.obj(prompt)
    return prompt


def mitigated_generator(
    config: ExperimentConfig, out: Path, seed_corpora: Sequence[Sequence[Record]]
) -> Backend | None:
    """For a ``generator`` strategy (``debiased_finetune``): the generator with a LoRA trained on
    the pooled seed corpora.

    Returns ``None`` when no such strategy is on (the caller builds the plain generator). The
    adapter lives in ``out/generator_adapter`` and is reused on resume.
    """
    study = config.study
    mit = study.mitigation
    tuners = chosen(mit.strategies, PIPELINE, "generator")
    if not tuners:
        return None
    if len(tuners) > 1:
        names = ", ".join(e.name for e in tuners)
        raise ValueError(f"study.mitigation: one generator strategy at a time, got {names}")
    (tuner,) = tuners
    if config.generator.backend != "llamacpp":
        raise ValueError(f"{tuner.name} needs generator.backend: llamacpp (GGUF LoRA)")

    pooled = [r for corpus in seed_corpora for r in corpus]
    gguf = tuner.obj(
        pooled,
        mit,
        out / "generator_adapter",
        prompt=generation_prompt(study),
        k_shots=study.k_shots,
        seed=config.seed,
        base_model=mit.finetune.base_model or config.generator.model_path,
    )
    g = config.generator
    return load_backend(
        "llamacpp",
        model_path=g.model_path,
        n_ctx=g.n_ctx,
        n_threads=g.n_threads,
        batch_size=g.batch_size,
        lora_path=gguf,
    )


def after_generation(
    records: list[Record], study: EquilibriumStudyConfig, seed: int
) -> list[Record]:
    """Apply the ``data`` strategies (``swap`` (CDA), ``contrastive``) to a generated corpus."""
    return apply_data(
        records,
        study.mitigation.strategies,
        study.mitigation,
        seed,
        pipeline=PIPELINE,
        bias_type="gender",
    )
