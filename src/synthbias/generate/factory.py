"""Build the configured backend from a :class:`~synthbias.generate.config.GeneratorConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from synthbias.generate.ray import backend_from_config

if TYPE_CHECKING:
    from synthbias.generate.config import GeneratorConfig
    from synthbias.generate.protocol import Backend


def make_backend(cfg: GeneratorConfig, seed: int = 0, run_dir: str | Path | None = None) -> Backend:
    """Instantiate the configured backend, one registered in
    :data:`synthbias.core.registry.BACKENDS` (its runtime loads only when it is built).

    Wrapped in the request cache chosen by ``cfg.cache`` (``run`` stores it in ``run_dir``) and
    spread over Ray actors when ``cfg.ray`` is set; see
    :func:`synthbias.generate.ray.backend_from_config`.
    """
    return backend_from_config(cfg, seed=seed, run_dir=run_dir)
