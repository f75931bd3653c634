"""The generator and sampling config sections: which backend writes text, and how.

The backend choices, and the fields each backend cannot run without, are those registered in
:data:`synthbias.core.registry.BACKENDS` (by :mod:`synthbias.generate`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from synthbias.core.registry import BACKENDS
from synthbias.core.schema import StrictModel


class RayConfig(StrictModel):
    """Distribute generation over Ray actors (``pip install synthbias[ray]``).

    ``address``: ``None`` starts a local Ray instance, ``auto`` or ``ray://host:port`` joins a
    cluster. Each of ``num_actors`` actors holds one backend and reserves ``num_cpus`` CPUs and
    ``num_gpus`` GPUs.
    """

    address: str | None = None
    num_actors: Annotated[int, Field(ge=1, le=4096)] = 2
    num_cpus: Annotated[float, Field(ge=0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0)] = 0.0


class GeneratorConfig(StrictModel):
    """Which backend generates text. ``model_path=None`` means the embedded SmolLM2 GGUF.

    ``n_ctx`` is the context of each sequence (prompt + completion); the backend allocates
    ``n_ctx * batch_size`` KV cells, so keep it near the longest prompt plus ``max_tokens``.

    Backends: ``llamacpp`` (embedded), ``hf`` (transformers; ``device``, ``dtype``), ``openai``
    (any OpenAI-compatible server at ``base_url``, serving ``model``; the API key is read from
    the environment variable *named* by ``api_key_env``; ``endpoint``, ``concurrency``,
    ``timeout``, ``max_retries``), ``vllm`` (offline engine, GPU; ``dtype``) and ``fake``.
    ``options`` are extra keyword arguments for the backend's constructor.

    ``cache``: every request is stored in SQLite so reruns and resumed runs redo no work —
    ``run`` (``<run dir>/cache.sqlite``), ``shared`` (``$SYNTHBIAS_CACHE/requests.sqlite``,
    default ``~/.cache/synthbias``) or ``off``. ``ray`` distributes generation over actors.
    """

    backend: str = "llamacpp"
    model_path: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=512)] = 32
    n_ctx: Annotated[int, Field(ge=256, le=131072)] = 1024
    n_threads: Annotated[int, Field(ge=1)] | None = None
    device: str = "cpu"
    dtype: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    endpoint: Literal["auto", "chat", "completion"] = "auto"
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 4
    timeout: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0, le=100)] = 8
    options: dict[str, Any] = Field(default_factory=dict)
    cache: Literal["run", "shared", "off"] = "run"
    ray: RayConfig | None = None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        return BACKENDS.check(v)

    @model_validator(mode="after")
    def _backend_needs(self) -> GeneratorConfig:
        for key, hint in BACKENDS.meta(self.backend)["requires"].items():
            if not getattr(self, key):
                raise ValueError(f"backend {self.backend!r} needs {key} ({hint})")
        return self


class SamplingConfig(StrictModel):
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.8
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    top_k: Annotated[int, Field(ge=0)] = 0
