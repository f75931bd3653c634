"""The bias-inheritance study: augment -> mix by bias ratio -> LoRA fine-tune -> evaluate tasks.

Registered as the experiment kind ``inheritance`` (config section ``inheritance``, defined in
:mod:`synthbias.studies.sections`) by :mod:`synthbias.studies`, which names this package lazily:
importing it loads the runner, the console summary and the report pages (and the task code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.studies.inheritance import report
from synthbias.studies.inheritance.console import print_inheritance
from synthbias.studies.inheritance.runner import run_inheritance

__all__ = ["print_summary", "report", "run_inheritance"]


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then where its report is."""
    print_inheritance(results, console, out)
    if (Path(out) / "report.html").is_file():
        console.print(f"Report: {Path(out) / 'report.html'}")
