"""Terminal summary of a mitigation study (the headline lines)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from synthbias.studies.mitigation.summary import format_headline


def print_mitigation(results: dict[str, Any], console: Console, out: Any) -> None:
    """Held-out behaviour per strategy (budget, untuned baseline, paired CI), then the rest."""

    for line in format_headline(results):
        console.print(line, highlight=False, markup=False)
    console.print(f"Output: {out}/ (results.json, comparison.csv, summary.csv, sub-runs)")
