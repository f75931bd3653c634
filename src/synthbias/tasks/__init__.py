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
"""

from synthbias.tasks.core import (
    Task,
    TaskItem,
    TaskResult,
    TaskSizeError,
    evaluate_tasks,
    list_tasks,
    load_task,
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
from synthbias.tasks.spec import DataSpec, SamplingSpec, TaskError, TaskSpec, parse_spec

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
]
