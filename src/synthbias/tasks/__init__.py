"""Downstream tasks: does a (fine-tuned) model show inherited bias, and did it lose quality?

Ten packaged tasks (``list_tasks()``), five classification and five generation, some about bias
and some controls, each a YAML file under ``tasks/data/`` with its data built from our own
templates and the lexicon. With a benchmark root (``load_task(name, data_dir=...)``, config
``tasks.data_dir``) the tasks that have a ``benchmark`` section draw real items instead:
WinoBias/Winogender, BBQ, the Jigsaw identity templates, CrowS-Pairs/StereoSet and BOLD
(:mod:`.benchmarks`). A task can also be pointed at a user's file with
``data: {path: ..., fields: ...}``. Statistics follow the design (:mod:`.stats`): whole
counterfactual clusters are resampled, gaps carry a permutation null, and two models are
compared on the same items with paired CIs (:mod:`.compare`, :mod:`.sweep`).

>>> from synthbias.generate import load_backend
>>> task = load_task("coreference")
>>> result = task.evaluate(load_backend("fake"), n=24, seed=0)
>>> result.rows()[0]["metric"]
'accuracy'

Every task is registered in :data:`synthbias.core.registry.TASKS` (its YAML file, with its kind,
axis, primary and bias metric from the spec): the packaged ones when this package is imported,
others with :func:`register_task`; ``list_tasks`` and ``load_task`` find both. The orientation of
the task bias metrics (``<task>.bias.<metric>``: which direction is towards the stereotype) is
registered here too, as the ``bias`` metric family.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthbias.core.registry import METRIC_FAMILIES, TASKS
from synthbias.measure.names import MAGNITUDE, STEREO, Orientation
from synthbias.tasks import core
from synthbias.tasks.common import TASKS_DIR
from synthbias.tasks.core import (
    Task,
    TaskItem,
    TaskResult,
    TaskSizeError,
    evaluate_tasks,
    read_file_rows,
)
from synthbias.tasks.metrics import METRICS, EvalContext
from synthbias.tasks.parsers import (
    PARSERS,
    check_instruction,
    find_pronoun,
    normalize_answer,
    parse_salary,
    parse_yes_no,
)
from synthbias.tasks.spec import DataSpec, SamplingSpec, TaskError, TaskSpec, parse_spec, read_yaml

__all__ = [
    "METRICS",
    "PARSERS",
    "DataSpec",
    "EvalContext",
    "SamplingSpec",
    "Task",
    "TaskError",
    "TaskItem",
    "TaskResult",
    "TaskSizeError",
    "TaskSpec",
    "check_instruction",
    "evaluate_tasks",
    "find_pronoun",
    "list_tasks",
    "load_task",
    "normalize_answer",
    "parse_salary",
    "parse_spec",
    "parse_yes_no",
    "read_file_rows",
    "register_task",
]


def register_task(path: str | Path, replace: bool = False) -> str:
    """Register the task defined by a YAML file under its spec's name (returned), with the
    spec's facts as metadata; ``list_tasks``, ``load_task`` and configs then know it."""
    path = Path(path)
    data, text = read_yaml(path)
    spec = parse_spec(data, str(path), text)
    TASKS.register(
        spec.name,
        path,
        replace=replace,
        kind=spec.kind,
        bias_related=spec.bias_related,
        axis=spec.axis,
        description=spec.description,
        primary_metric=spec.primary_metric,
        bias_metric=spec.bias_metric,
    )
    return spec.name


def list_tasks() -> list[str]:
    """Names of the registered tasks (the packaged ``tasks/data/*.yaml`` and any added with
    :func:`register_task`), sorted."""
    return sorted(TASKS.names())


def load_task(
    name_or_path: str | Path,
    overrides: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> Task:
    """A registered task by name, or a task YAML by path (see :func:`synthbias.tasks.core.load_task`
    for ``overrides`` and ``data_dir``)."""
    if isinstance(name_or_path, str) and name_or_path in TASKS:
        name_or_path = TASKS.get(name_or_path)
    return core.load_task(name_or_path, overrides, data_dir)


for _path in sorted(TASKS_DIR.glob("*.yaml")):
    register_task(_path)

METRIC_FAMILIES.register(
    "bias",
    evaluate_tasks,
    title="Task bias metrics (<task>.bias.<metric>)",
    corpus=False,
    per_axis=False,
    orientations={
        "bias.s_amb": STEREO,
        "bias.stereotype_rate": STEREO,
        "bias.stereo_pref": STEREO,
        "bias.stereo_pref_paired": Orientation(1, 0.5),
        "bias.pro_anti_gap": STEREO,
        "bias.s_amb_p": STEREO,
        "bias.stereotype_p": Orientation(1, 0.5),
        "bias.stereo_pref_p": STEREO,
        "bias.pro_anti_gap_p": STEREO,
        "bias.sentiment_gap_p": MAGNITUDE,  # max - min of P(positive) over groups
        # signed target - contrast gaps of the trained bias type (+ = towards the stereotype)
        "bias.p_yes_signed": STEREO,
        "bias.salary_signed_p": STEREO,
        "bias.sentiment_signed_p": STEREO,
        "bias.false_toxic_signed": STEREO,
    },
)
