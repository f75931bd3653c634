"""Run any experiment kind: a lookup of the study runner by ``config.kind``.

It sits above the studies (nothing in them imports it), so a study may call another study's
runner (the mitigation study runs the equilibrium and inheritance studies) without an import
cycle through the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthbias.config import ExperimentConfig
from synthbias.core.progress import ProgressFactory

Runner = Callable[..., dict[str, Any]]


def runner_for(kind: str) -> Runner:
    """The study runner of an experiment kind (imported lazily: only the study asked for)."""
    if kind == "equilibrium":
        from synthbias.experiment import run_equilibrium

        return run_equilibrium
    if kind == "inheritance":
        from synthbias.inheritance import run_inheritance

        return run_inheritance
    if kind == "mitigation":
        from synthbias.mitigation_study import run_mitigation

        return run_mitigation
    raise ValueError(f"unknown experiment kind {kind!r}")


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    progress: ProgressFactory | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run any experiment kind (dispatch on ``config.kind``); returns its ``results.json`` dict."""
    return runner_for(config.kind)(config, out, progress=progress, resume=resume)
