"""The equilibrium-dynamics study: recursive generation from seeds at chosen initial bias levels,
the direction of the stereotype per generation, and the fixed point it settles at.

Registered as the experiment kinds ``equilibrium`` (config section ``study``) and
``equilibrium_loop`` (the same section: real data in the loop, see
:mod:`~synthbias.studies.equilibrium.loop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from synthbias.core.registry import STUDIES
from synthbias.studies.equilibrium import loop_report, report
from synthbias.studies.equilibrium.console import print_equilibrium
from synthbias.studies.equilibrium.loop import print_loop, run_equilibrium_loop
from synthbias.studies.equilibrium.runner import run_equilibrium


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


STUDIES.register(
    "equilibrium",
    run_equilibrium,
    section="study",
    printer=print_summary,
    report=report,
    description="recursive generation: where does bias settle?",
)

STUDIES.register(
    "equilibrium_loop",
    run_equilibrium_loop,
    section="study",
    printer=print_loop,
    report=loop_report,
    description="real data in the loop: predicted vs observed b* per regime and real share",
)
