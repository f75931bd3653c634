"""Downstream fine-tuning: the students whose bias is inherited from (synthetic) training data.

* :mod:`.sft`: LoRA supervised fine-tuning of a causal LM (per-example weights, ignored
  character spans, extra-loss hook) with :func:`train_lora`.
* :mod:`.adapter`: the tuned model behind the backend protocol (:func:`load_finetuned`), on the
  HF backend (merged) or llama.cpp (:func:`export_gguf_lora`).
* :mod:`.classifier`: fast text classifiers on MiniLM (frozen-embedding logistic regression, or
  a fine-tuned top layer), usable as ``Predictor`` for the behavioural metrics.

Importing this package loads neither torch nor transformers; they load on first use.
"""

from synthbias.train.adapter import export_gguf_lora, load_finetuned, read_gguf_header
from synthbias.train.classifier import EmbeddingClassifier, EncoderHeadClassifier
from synthbias.train.sft import (
    EncodedExample,
    LoRAConfig,
    LoRAResult,
    SFTExample,
    encode_example,
    read_train_meta,
    sft_loss,
    train_lora,
)

__all__ = [
    "EmbeddingClassifier",
    "EncodedExample",
    "EncoderHeadClassifier",
    "LoRAConfig",
    "LoRAResult",
    "SFTExample",
    "encode_example",
    "export_gguf_lora",
    "load_finetuned",
    "read_gguf_header",
    "read_train_meta",
    "sft_loss",
    "train_lora",
]
