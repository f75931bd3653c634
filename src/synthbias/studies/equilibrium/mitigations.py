"""Hooks that put the data- and prompt-level mitigations into the recursive (equilibrium) study.

``run_equilibrium`` calls :func:`generation_prompt` once, :func:`mitigated_generator` before it
first generates, and :func:`after_generation` on every generated corpus before it is stored and
used as the next generation's few-shot pool. With no strategy configured each is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbias.core.records import Record
from synthbias.generate import load_backend
from synthbias.mitigate.contrastive import contrastive_augment
from synthbias.mitigate.debiased import debiased_corpus, finetune_generator
from synthbias.mitigate.prompting import fair_prompt_name
from synthbias.mitigate.swap import swap_augment


def generation_prompt(study: Any) -> str:
    """The prompt template name, switched to its fairness variant for ``prompt``."""
    if "prompt" in study.mitigation.strategies:
        return fair_prompt_name(study.prompt)
    return study.prompt


def mitigated_generator(
    config: Any, out: Path, seed_corpora: Sequence[Sequence[Record]]
) -> Any | None:
    """For ``debiased_finetune``: the generator with a LoRA trained on the balanced seed corpora.

    Returns ``None`` when the strategy is off (the caller builds the plain generator). The
    adapter lives in ``out/generator_adapter`` and is reused on resume.
    """
    study = config.study
    mit = study.mitigation
    if "debiased_finetune" not in mit.strategies:
        return None
    if config.generator.backend != "llamacpp":
        raise ValueError("debiased_finetune needs generator.backend: llamacpp (GGUF LoRA)")

    pooled = [r for corpus in seed_corpora for r in corpus]
    balanced = debiased_corpus(pooled, method=mit.debias_method, seed=config.seed)
    ft = mit.finetune
    gguf = finetune_generator(
        balanced,
        out / "generator_adapter",
        ft.lora_settings(),
        prompt=generation_prompt(study),
        k_shots=study.k_shots,
        seed=config.seed,
        base_model=ft.base_model or config.generator.model_path,
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


def after_generation(records: list[Record], study: Any, seed: int) -> list[Record]:
    """Apply ``swap`` (CDA) and/or ``contrastive`` augmentation to a generated corpus."""
    strategies = study.mitigation.strategies
    out = records
    if "swap" in strategies:
        out = swap_augment(out, study.mitigation.swap_fraction, seed, bias_type="gender")
    if "contrastive" in strategies:
        out = contrastive_augment(out, bias_type="gender")
    return out
