"""Text generators behind one small protocol (see :mod:`synthbias.generate.protocol`).

``load_backend("llamacpp")`` gives the embedded, batched llama.cpp generator on the packaged
SmolLM2 model; ``load_backend("fake")`` a deterministic stand-in for unit tests. The llama.cpp
module is imported only when that backend is asked for, so the rest of the toolkit loads without
the native library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthbias.generate import llamacpp
from synthbias.generate.fake import FakeBackend
from synthbias.generate.hf import HFBackend
from synthbias.generate.llamacpp import LlamaCppBackend
from synthbias.generate.models import ModelNotFoundError, default_model_path, model_fingerprint
from synthbias.generate.openai_http import OpenAIHTTPBackend
from synthbias.generate.protocol import (
    Backend,
    Completion,
    ContextLengthError,
    Message,
    Prompt,
    SamplingParams,
    TextLogprobs,
)
from synthbias.generate.vllm_backend import VLLMBackend

if TYPE_CHECKING:
    from synthbias.generate.llamacpp import LlamaCppBackend

BACKENDS = ("llamacpp", "hf", "fake", "openai", "vllm")

__all__ = [
    "BACKENDS",
    "Backend",
    "Completion",
    "ContextLengthError",
    "FakeBackend",
    "LlamaCppBackend",
    "Message",
    "ModelNotFoundError",
    "Prompt",
    "SamplingParams",
    "TextLogprobs",
    "default_model_path",
    "load_backend",
    "model_fingerprint",
]


def load_backend(kind: str = "llamacpp", **kwargs: Any) -> Backend:
    """Build a backend by name; ``kwargs`` go to its constructor."""
    key = kind.lower().replace("-", "").replace("_", "").replace(".", "")
    if key == "llamacpp":
        return LlamaCppBackend(**kwargs)
    if key in ("hf", "transformers"):
        return HFBackend(**kwargs)
    if key == "fake":
        return FakeBackend(**kwargs)
    if key in ("openai", "http", "openaihttp"):
        return OpenAIHTTPBackend(**kwargs)
    if key == "vllm":
        return VLLMBackend(**kwargs)
    raise ValueError(f"unknown backend {kind!r}; choose one of {', '.join(BACKENDS)}")


def __getattr__(name: str) -> Any:
    """Lazy access to the llama.cpp backend so importing this package never loads the library."""
    if name == "LlamaCppBackend":
        return getattr(llamacpp, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
