"""Debiased-data fine-tuning: LoRA-tune the generator on a balanced corpus before it generates.

Equilibrium paper, strategy 4. The corpus is balanced by swapping (default) or filtering so that
stereotypical and anti-stereotypical occupation-gender pairings are equally frequent under the
rule metric; the generator is then fine-tuned on it in exactly the format it is later prompted
with (the self-instruct numbered list: a header, k example texts, and the next text as the
completion), written as a GGUF LoRA and loaded by llama.cpp on the quantised base.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from synthbias.core.hashing import derive_seed as _mix_seed
from synthbias.core.records import Record
from synthbias.core.registry import MITIGATIONS
from synthbias.generate.prompts import build_prompt, prompt_templates, render_start, uses_occupation
from synthbias.measure.rules import ANTI, STEREOTYPICAL, GenderRuleScorer
from synthbias.mitigate.swap import swapped_twin
from synthbias.train.adapter import export_gguf_lora
from synthbias.train.sft import LoRAConfig, SFTExample, train_lora

BalanceMethod = Literal["swap", "filter"]


def debiased_corpus(
    records: Sequence[Record],
    scorer: Any = None,
    method: BalanceMethod = "swap",
    seed: int = 0,
) -> list[Record]:
    """Balance stereotypical vs anti-stereotypical texts (rule labels).

    ``swap`` gender-swaps randomly chosen texts of the larger side until the two counts differ
    by at most one (a swapped stereotypical text becomes anti-stereotypical); ``filter`` drops
    texts of the larger side instead. Neutral and unlabelled texts are kept as they are.
    """

    scorer = scorer or GenderRuleScorer()
    labels = [s.label for s in scorer.score_texts([r.text for r in records])]
    stereo = [i for i, lab in enumerate(labels) if lab == STEREOTYPICAL]
    anti = [i for i, lab in enumerate(labels) if lab == ANTI]
    big = stereo if len(stereo) > len(anti) else anti
    excess = abs(len(stereo) - len(anti))
    k = excess // 2 if method == "swap" else excess
    rng = np.random.default_rng(_mix_seed(seed, "debias", method))
    chosen = set(rng.choice(big, size=k, replace=False).tolist()) if k else set()
    out = []
    for i, r in enumerate(records):
        if i not in chosen:
            out.append(r)
        elif method == "swap":
            out.append(swapped_twin(r, "gender", "debiased"))
        elif method != "filter":
            raise ValueError(f"unknown balance method {method!r}; choose swap or filter")
    return out


def generator_examples(
    records: Sequence[Record],
    prompt: str = "self_instruct",
    k_shots: int = 3,
    n: int | None = None,
    seed: int = 0,
) -> list[Any]:
    """SFT examples in the generator's own prompt format: k shots -> the next text.

    A template's ``start`` (e.g. "The {occ}") ends the prompt only when the target text begins
    with it (the completion is then the rest); otherwise the prompt stops at the number and the
    completion is the whole text. A template that names the occupation takes the target's
    ``meta["occupation"]`` (seed texts) or ``meta["prompt_occupation"]`` (generated texts).
    """

    template = prompt_templates()[prompt]
    if "completion" not in template:
        raise ValueError(f"prompt {prompt!r} is a chat template; use a completion-form prompt")
    records = [r for r in records if r.text]
    texts = [r.text for r in records]
    named = uses_occupation(template)
    occupations = [r.meta.get("occupation") or r.meta.get("prompt_occupation") for r in records]
    if named and not all(occupations):
        bad = next(r.id for r, o in zip(records, occupations, strict=True) if not o)
        raise ValueError(f"prompt {prompt!r} names an occupation; record {bad} has none in meta")
    if len(texts) <= k_shots:
        raise ValueError(f"need more than k_shots={k_shots} texts, got {len(texts)}")
    rng = np.random.default_rng(_mix_seed(seed, "debias-sft"))
    n = n or len(texts)
    out = []
    for j in range(n):
        target = j % len(texts)
        others = [i for i in range(len(texts)) if i != target]
        shots = rng.choice(others, size=k_shots, replace=False)
        occ = occupations[target] if named else None
        start = render_start(template, occ)
        text = texts[target]
        if start and text.startswith(start):
            p = build_prompt([texts[i] for i in shots], template, occ)
            completion = text[len(start) :]
        else:
            p = build_prompt([texts[i] for i in shots], {**template, "start": ""}, occ)
            completion = f" {text}"
        out.append(SFTExample(prompt=str(p), completion=completion))
    return out


def finetune_generator(
    records: Sequence[Record],
    out_dir: str | Path,
    lora: Any = None,
    prompt: str = "self_instruct",
    k_shots: int = 3,
    seed: int = 0,
    base_model: str | None = None,
) -> Path:
    """Fine-tune the generator on ``records`` (already debiased) and export a GGUF LoRA.

    Returns the ``.gguf`` adapter path for ``LlamaCppBackend(lora_path=...)``. Reuses a
    finished adapter in ``out_dir``.
    """

    out_dir = Path(out_dir)
    gguf = out_dir / "adapter.gguf"
    if gguf.is_file():
        return gguf
    cfg = lora if isinstance(lora, LoRAConfig) else LoRAConfig.model_validate(lora or {})
    cfg = cfg.model_copy(update={"seed": seed, "max_length": max(cfg.max_length, 192)})
    examples = generator_examples(records, prompt, k_shots, seed=seed)
    train_lora(examples, cfg, out_dir / "peft", base_model=base_model)
    return export_gguf_lora(out_dir / "peft", gguf)  # atomic: a temp file, then rename


class LoRASettings(Protocol):
    def lora_settings(self) -> dict[str, Any]: ...


class DebiasSettings(Protocol):
    """What the ``debiased_finetune`` strategy reads from a pipeline's mitigation settings."""

    debias_method: BalanceMethod
    finetune: LoRASettings


@MITIGATIONS.register(
    "debiased_finetune",
    pipelines=("equilibrium",),
    kind="generator",
    description="the generator LoRA-tuned on a balanced seed corpus before it generates",
)
def debiased_generator(
    records: Sequence[Record],
    settings: DebiasSettings,
    out_dir: str | Path,
    *,
    prompt: str,
    k_shots: int,
    seed: int,
    base_model: str | None,
) -> Path:
    """The ``debiased_finetune`` strategy: balance ``records`` (``settings.debias_method``) and
    fine-tune the generator on them; returns the GGUF LoRA for ``LlamaCppBackend(lora_path=)``."""
    balanced = debiased_corpus(records, method=settings.debias_method, seed=seed)
    return finetune_generator(
        balanced,
        out_dir,
        settings.finetune.lora_settings(),
        prompt=prompt,
        k_shots=k_shots,
        seed=seed,
        base_model=base_model,
    )
