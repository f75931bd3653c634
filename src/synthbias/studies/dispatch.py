"""Run any experiment kind: a lookup of the study runner by ``config.kind``.

It sits above the studies (nothing in them imports it), so a study may call another study's
runner (the mitigation study runs the equilibrium and inheritance studies) without an import
cycle through the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.progress import ProgressFactory
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.inheritance.runner import run_inheritance
from synthbias.studies.mitigation.runner import run_mitigation

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

Runner = Callable[..., dict[str, Any]]


def runner_for(kind: str) -> Runner:
    """The study runner of an experiment kind (imported lazily: only the study asked for)."""
    if kind == "equilibrium":
        return run_equilibrium
    if kind == "inheritance":
        return run_inheritance
    if kind == "mitigation":
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
