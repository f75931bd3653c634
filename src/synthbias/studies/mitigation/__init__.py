"""The mitigation study: every strategy (and none) where it applies, judged by held-out
behaviour.

Registered as the experiment kind ``mitigation`` (config section ``mitigation_study``; it runs
the equilibrium and inheritance studies, so it uses their sections too) by
:mod:`synthbias.studies`. This package is light (a config reads its section from :mod:`.config`):
it holds the console summary and registers the report pages; the runner loads on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.studies.mitigation import report
from synthbias.studies.mitigation.console import print_mitigation

__all__ = ["print_summary", "report"]


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then where its report is."""
    print_mitigation(results, console, out)
    if (Path(out) / "report.html").is_file():
        console.print(f"Report: {Path(out) / 'report.html'}")
