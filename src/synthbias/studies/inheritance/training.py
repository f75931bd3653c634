"""What the inheritance study trains on and how: training sets with their mitigations, the LoRA
trainer and the loader of the models it evaluates.

Kept apart from the steps (:mod:`synthbias.studies.inheritance.steps`) because a run may replace
both the trainer and the model loader (tests pass fakes; the mitigation study reuses the trainer
to count optimizer steps); the steps see only the :class:`Trainer` and :class:`BackendLoader`
protocols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from synthbias.core.records import Record
from synthbias.generate.config import GeneratorConfig
from synthbias.generate.protocol import Backend
from synthbias.lexicon.bias_types import get_bias_type
from synthbias.mitigate import apply_data
from synthbias.mitigate.loss import ConsistencyLoss, attach_twins, bias_weights, example_bias_scores
from synthbias.mitigate.mask import mask_examples
from synthbias.mitigate.token import DEFAULT_TAGS, TaggedBackend, tag_examples, tag_tokens
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.studies.inheritance.keys import content_key
from synthbias.train.adapter import load_eval_model
from synthbias.train.sft import LoRAConfig, SFTExample, read_train_meta, resolve_base, train_lora


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


def apply_data_mitigations(
    records: Sequence[Record], study: InheritanceStudyConfig, seed: int
) -> list[Record]:
    """The data strategies (swap, contrastive, any other registered ``data`` strategy of the
    inheritance pipeline), applied to the augmented part of a mix in registration order."""
    return apply_data(
        records,
        study.mitigation.strategies,
        study.mitigation,
        seed,
        pipeline="inheritance",
        only_source="augmented",
    )


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
        return content_key(
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
    """Loads the evaluation model: ``eval_backend`` auto (scoring on transformers fp32,
    generation on llama.cpp, :func:`~synthbias.train.adapter.load_eval_model`), llama.cpp with
    a GGUF LoRA, or transformers.

    Adapters that added tokens (token-based mitigation) always run in transformers, since a
    llama.cpp LoRA cannot grow the vocabulary, and their prompts get the ``real`` tag.
    """

    study: InheritanceStudyConfig
    generator_cfg: GeneratorConfig

    def __call__(self, adapter_dir: Path | None) -> Backend:
        base = self.study.finetune.base_model
        llama: dict[str, Any] = {"n_ctx": 512, "batch_size": self.generator_cfg.batch_size}
        if self.generator_cfg.n_threads is not None:  # a worker's share of the cores
            llama["n_threads"] = self.generator_cfg.n_threads
        if adapter_dir is None:
            return load_eval_model(
                None, self.study.eval_backend, self.study.eval_weights, base, **llama
            )
        added = read_train_meta(adapter_dir).get("added_tokens") or {}
        backend = "hf" if added else self.study.eval_backend
        model = load_eval_model(adapter_dir, backend, self.study.eval_weights, base, **llama)
        if added:
            return TaggedBackend(model, DEFAULT_TAGS["real"])
        return model
