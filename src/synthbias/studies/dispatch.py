"""Run any experiment kind: the study registered under ``config.kind``.

The studies register themselves (:data:`synthbias.core.registry.STUDIES`, filled when
:mod:`synthbias.studies` is imported), so a new study needs no edit here. It sits above the studies
(nothing in them imports it), so a study may call another study's runner (the mitigation study
runs the equilibrium and inheritance studies) without an import cycle through the dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.progress import ProgressFactory
from synthbias.core.registry import STUDIES

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

Runner = Callable[..., dict[str, Any]]


def experiment_kinds() -> tuple[str, ...]:
    """The studies ``synthbias run`` can run from a config (``kind:``), in registration order."""
    return STUDIES.names(experiment=True)


def runner_for(kind: str) -> Runner:
    """The study runner of an experiment kind; an unknown kind's error lists the known ones."""
    return STUDIES.get(STUDIES.check(kind, experiment_kinds()))


def run_experiment(
    config: ExperimentConfig,
    out: str | Path,
    progress: ProgressFactory | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run any experiment kind (dispatch on ``config.kind``); returns its ``results.json`` dict."""
    return runner_for(config.kind)(config, out, progress=progress, resume=resume)
