"""The fine-tuning config section shared by every study that trains (LoRA settings)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
)

from synthbias.core.schema import StrictModel

#: llama.cpp evaluation weights a study may name: the GGUF as stored, a dequantised copy, or the
#: f32 copy with the adapter merged in and a float32 KV cache
#: (:func:`synthbias.train.adapter.load_eval_llamacpp`).
EvalWeights = Literal["native", "f32", "f16", "f32-merged"]


class FinetuneConfig(StrictModel):
    """LoRA fine-tuning of the downstream model (see :mod:`synthbias.train.sft`).

    ``base_model=None`` fine-tunes the embedded SmolLM2 (the generator's own weights); a path
    names another GGUF file or local HF checkpoint folder.
    """

    base_model: str | None = None
    r: Annotated[int, Field(ge=1, le=256)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    epochs: Annotated[int, Field(ge=1, le=100)] = 2
    max_steps: Annotated[int, Field(ge=1)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=512)] = 8
    max_length: Annotated[int, Field(ge=16, le=8192)] = 96

    def lora_settings(self) -> dict[str, Any]:
        """The fields :class:`synthbias.train.sft.LoRAConfig` takes (everything but the base)."""
        return self.model_dump(exclude={"base_model"})
