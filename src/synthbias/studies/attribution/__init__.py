"""The attribution study: which misalignment factor (values, group data, distribution) drives
bias inheritance, by manipulating them in a 2x2x2 factorial at one bias ratio.

Registered as the experiment kind ``attribution`` (config section ``attribution``, defined in
:mod:`synthbias.studies.sections`) by :mod:`synthbias.studies`, which names this package lazily:
importing it loads the runner, the console summary and the report pages (and, through the
inheritance study's pieces, the task code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.studies.attribution import report
from synthbias.studies.attribution.console import print_attribution
from synthbias.studies.attribution.runner import run_attribution

__all__ = ["print_summary", "report", "run_attribution"]


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then where its report is."""
    print_attribution(results, console)
    if (Path(out) / "report.html").is_file():
        console.print(f"Report: {Path(out) / 'report.html'}")
