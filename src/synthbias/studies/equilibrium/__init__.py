"""The equilibrium-dynamics study: recursive generation from seeds at chosen initial bias levels,
the direction of the stereotype per generation, and the fixed point it settles at.

Registered as the experiment kinds ``equilibrium`` (config section ``study``) and
``equilibrium_loop`` (the same section: real data in the loop, see
:mod:`~synthbias.studies.equilibrium.loop`) by :mod:`synthbias.studies`. This package is light (a
config reads its section from :mod:`.config`, the CLI its fit wording from :mod:`.fit`): it holds
the console summary and registers the report pages; the runners load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.studies.equilibrium import loop_report, report
from synthbias.studies.equilibrium.console import print_equilibrium

__all__ = ["loop_report", "print_summary", "report"]


def print_summary(results: dict[str, Any], console: Console, out: Path) -> None:
    """The console summary of a finished run, then what it wrote where."""
    print_equilibrium(results, console)
    t = results["timing"]
    console.print(
        f"Generated {t['texts_generated']} texts in {t['generation_seconds']:.0f} s "
        f"(total {t['total_seconds']:.0f} s: generation, measurement, fit and report). "
        f"Output: {out}/ (results.json, results.csv, "
        "bias_by_generation.png, report.html, corpora/)"
    )
