"""The ``tasks`` config section: benchmark root and per-task sizes."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    Field,
    field_validator,
)

from synthbias.core.schema import StrictModel
from synthbias.tasks import list_tasks


class TasksConfig(StrictModel):
    """Downstream task items and sizes (inheritance and mitigation runs).

    ``data_dir`` is a benchmark root (the layout of ``../shared/benchmarks``): tasks with a
    ``benchmark`` section then draw real items from it (WinoBias/Winogender, BBQ, Jigsaw
    templates, CrowS-Pairs/StereoSet, BOLD); ``None`` keeps our templates. ``sizes`` gives
    items per task (default: the study's ``n_eval``); a size below a task's minimum (where its
    headline metric is undefined) is an error naming the task and the minimum. Both are
    checked when a run starts (a relative ``data_dir`` is read from the working directory),
    before any generation or training.
    """

    data_dir: str | None = None
    sizes: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _known_sizes(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(set(v) - set(list_tasks()))
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {', '.join(list_tasks())}")
        return v
