"""The mitigation study: every strategy (and none) where it applies, judged by held-out
behaviour.

Registered as the experiment kind ``mitigation`` (config section ``mitigation_study``; it runs
the equilibrium and inheritance studies, so it uses their sections too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.core.registry import STUDIES
from synthbias.studies.mitigation import report
from synthbias.studies.mitigation.console import print_mitigation
from synthbias.studies.mitigation.runner import run_mitigation


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then where its report is."""
    print_mitigation(results, console, out)
    if (Path(out) / "report.html").is_file():
        console.print(f"Report: {Path(out) / 'report.html'}")


STUDIES.register(
    "mitigation",
    run_mitigation,
    section="mitigation_study",
    uses=("study", "inheritance"),
    printer=print_summary,
    report=report,
    description="every mitigation strategy against the same-seed baseline",
)
