"""The bias-inheritance study: augment -> mix by bias ratio -> LoRA fine-tune -> evaluate tasks.

Registered as the experiment kind ``inheritance`` (config section ``inheritance``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.core.registry import STUDIES
from synthbias.studies.inheritance import report
from synthbias.studies.inheritance.console import print_inheritance
from synthbias.studies.inheritance.runner import run_inheritance


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then where its report is."""
    print_inheritance(results, console, out)
    if (Path(out) / "report.html").is_file():
        console.print(f"Report: {Path(out) / 'report.html'}")


STUDIES.register(
    "inheritance",
    run_inheritance,
    section="inheritance",
    printer=print_summary,
    report=report,
    description="bias-ratio fine-tuning sweep: does a model inherit the data's bias?",
)
