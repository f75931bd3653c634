"""Text generators behind one small protocol (see :mod:`synthbias.generate.protocol`).

``load_backend("llamacpp")`` gives the embedded, batched llama.cpp generator on the packaged
SmolLM2 model; ``load_backend("fake")`` a deterministic stand-in for unit tests. Every backend is
registered here in :data:`~synthbias.core.registry.BACKENDS` with what the rest of the toolkit
needs to know about it: whether it generates part of a call at its own indices (``indexed``),
the config fields it cannot run without (``requires``) and how a ``GeneratorConfig`` becomes its
constructor's arguments (``config_kwargs``). ``GeneratorConfig.backend`` and the CLI's backend
options read the registry, so registering one more backend is the whole job.

The backend modules import their runtimes (the llama.cpp library, torch, vLLM) only when a
backend is built, so importing this package loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthbias.core.registry import BACKENDS
from synthbias.generate.fake import FakeBackend
from synthbias.generate.hf import HFBackend
from synthbias.generate.llamacpp import LlamaCppBackend
from synthbias.generate.models import ModelNotFoundError, default_model_path, model_fingerprint
from synthbias.generate.openai_http import OpenAIHTTPBackend
from synthbias.generate.protocol import (
    Backend,
    Completion,
    ContextLengthError,
    IndexedBackend,
    Message,
    Prompt,
    SamplingParams,
    TextLogprobs,
    generate_indexed,
    is_indexed,
)
from synthbias.generate.vllm_backend import VLLMBackend

if TYPE_CHECKING:
    from synthbias.generate.config import GeneratorConfig

__all__ = [
    "BACKENDS",
    "Backend",
    "Completion",
    "ContextLengthError",
    "FakeBackend",
    "IndexedBackend",
    "LlamaCppBackend",
    "Message",
    "ModelNotFoundError",
    "Prompt",
    "SamplingParams",
    "TextLogprobs",
    "default_model_path",
    "generate_indexed",
    "is_indexed",
    "load_backend",
    "model_fingerprint",
]


def load_backend(kind: str = "llamacpp", **kwargs: Any) -> Backend:
    """Build a registered backend by name or alias (case, ``-``, ``_`` and ``.`` ignored:
    ``llama.cpp`` is ``llamacpp``); ``kwargs`` go to its constructor. An unknown name is a
    ``ValueError`` listing the registered ones."""
    return BACKENDS.get(kind)(**kwargs)


# --------------------------------------------------------------------------- the backends
# ``config_kwargs(cfg, seed)``: the constructor's arguments from a GeneratorConfig (its
# ``options`` are added on top by the caller).


def _llamacpp_kwargs(cfg: GeneratorConfig, seed: int) -> dict[str, Any]:
    n_threads = cfg.n_threads
    if n_threads is None and cfg.ray is not None:  # one actor must not take every core
        n_threads = max(1, int(cfg.ray.num_cpus))
    return {
        "model_path": cfg.model_path,
        "n_ctx": cfg.n_ctx,
        "n_threads": n_threads,
        "batch_size": cfg.batch_size,
    }


def _hf_kwargs(cfg: GeneratorConfig, seed: int) -> dict[str, Any]:
    return {
        "model_path": cfg.model_path,
        "device": cfg.device,
        "dtype": cfg.dtype or "float32",
        "batch_size": cfg.batch_size,
        "n_threads": cfg.n_threads,
    }


def _no_kwargs(cfg: GeneratorConfig, seed: int) -> dict[str, Any]:
    return {}


def _openai_kwargs(cfg: GeneratorConfig, seed: int) -> dict[str, Any]:
    return {
        "base_url": cfg.base_url,
        "model": cfg.model,
        "api_key_env": cfg.api_key_env,
        "endpoint": cfg.endpoint,
        "concurrency": cfg.concurrency,
        "timeout": cfg.timeout,
        "max_retries": cfg.max_retries,
    }


def _vllm_kwargs(cfg: GeneratorConfig, seed: int) -> dict[str, Any]:
    return {"model_path": cfg.model_path, "dtype": cfg.dtype or "auto", "seed": seed}


BACKENDS.register(
    "llamacpp",
    LlamaCppBackend,
    description="embedded llama.cpp on a GGUF model (default: the packaged SmolLM2)",
    config_kwargs=_llamacpp_kwargs,
)
BACKENDS.register(
    "hf",
    HFBackend,
    aliases=("transformers",),
    description="Hugging Face transformers on a local checkpoint (device, dtype)",
    config_kwargs=_hf_kwargs,
)
BACKENDS.register(
    "fake",
    FakeBackend,
    description="deterministic stand-in for tests (hashing, no model)",
    config_kwargs=_no_kwargs,
)
BACKENDS.register(
    "openai",
    OpenAIHTTPBackend,
    aliases=("http", "openaihttp"),
    description="any OpenAI-compatible server at base_url",
    indexed=True,
    requires={"base_url": "e.g. http://127.0.0.1:8000/v1"},
    config_kwargs=_openai_kwargs,
)
BACKENDS.register(
    "vllm",
    VLLMBackend,
    description="offline vLLM engine (GPU)",
    indexed=True,
    requires={"model_path": "an HF checkpoint or GGUF file"},
    config_kwargs=_vllm_kwargs,
)
