"""Occupations with the percent of workers who are women, from published labour statistics.

The stereotype code is computed, never stored: ``female-coded`` when ``pct_female >= hi``,
``male-coded`` when ``pct_female <= lo`` and ``neutral`` otherwise, so a study can move the
thresholds and see how its results depend on them. ``lo == hi`` is the majority convention:
female-coded above it, male-coded below it, neutral exactly at it. Each row records its source
and year.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Code = Literal["female-coded", "male-coded", "neutral"]
FEMALE_CODED: Code = "female-coded"
MALE_CODED: Code = "male-coded"
NEUTRAL: Code = "neutral"


def check_thresholds(lo: float, hi: float) -> None:
    if not (0.0 <= lo <= hi <= 100.0):
        raise ValueError(f"need 0 <= lo <= hi <= 100 (percent female), got lo={lo}, hi={hi}")


@dataclass(frozen=True)
class Occupation:
    name: str
    plural: str
    pct_female: float
    source: str
    year: int
    stat_category: str = ""
    variants: tuple[str, ...] = ()
    #: ``category`` (a statistical category with nouns of its own), ``pooled`` (an ambiguous
    #: noun pooled over categories) or ``unnamed`` (a category with no everyday noun of its own,
    #: e.g. "Managers, all other": kept as data, never matched in text); empty for old tables
    kind: str = ""

    @property
    def forms(self) -> tuple[str, ...]:
        """Every surface form that counts as a mention (singular, plural, variants)."""
        seen: dict[str, None] = {}
        for f in (self.name, self.plural, *self.variants):
            if f:
                seen[f] = None
        return tuple(seen)

    def code(self, lo: float = 30.0, hi: float = 70.0) -> Code:
        check_thresholds(lo, hi)
        # the strict inequalities only bite when lo == hi (a share exactly at 50 % is neutral)
        if self.pct_female >= hi and self.pct_female > lo:
            return FEMALE_CODED
        if self.pct_female <= lo and self.pct_female < hi:
            return MALE_CODED
        return NEUTRAL


class OccupationTable:
    """The occupation rows, looked up by name."""

    def __init__(self, rows: Iterable[Occupation]) -> None:
        self._rows: dict[str, Occupation] = {}
        for r in rows:
            if r.name in self._rows:
                raise ValueError(f"duplicate occupation {r.name!r}")
            self._rows[r.name] = r

    @classmethod
    def from_csv(cls, path: str | Path) -> OccupationTable:
        """Read (occupation, plural, pct_female, source, year[, stat_category, variants])."""
        path = Path(path)
        rows = []
        with path.open(encoding="utf-8", newline="") as fh:
            for lineno, rec in enumerate(csv.DictReader(fh), start=2):
                try:
                    occ = Occupation(
                        name=rec["occupation"].strip(),
                        plural=(rec.get("plural") or "").strip(),
                        pct_female=float(rec["pct_female"]),
                        source=rec["source"].strip(),
                        year=int(rec["year"]),
                        stat_category=(rec.get("stat_category") or "").strip(),
                        variants=tuple(
                            v.strip() for v in (rec.get("variants") or "").split("|") if v.strip()
                        ),
                        kind=(rec.get("kind") or "").strip(),
                    )
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise ValueError(f"{path}:{lineno}: bad occupation row: {exc}") from exc
                if not 0.0 <= occ.pct_female <= 100.0:
                    raise ValueError(f"{path}:{lineno}: pct_female outside [0, 100]")
                if not occ.source:
                    raise ValueError(f"{path}:{lineno}: every row needs a source")
                rows.append(occ)
        return cls(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Occupation]:
        return iter(self._rows.values())

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __getitem__(self, name: str) -> Occupation:
        try:
            return self._rows[name]
        except KeyError:
            raise KeyError(f"unknown occupation {name!r}") from None

    def matchable(self) -> OccupationTable:
        """The rows that have everyday nouns (drops ``unnamed`` categories)."""
        return OccupationTable(r for r in self._rows.values() if r.kind != "unnamed")

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def codes(self, lo: float = 30.0, hi: float = 70.0) -> dict[str, Code]:
        """Occupation name -> stereotype code under the given thresholds."""
        check_thresholds(lo, hi)
        return {name: occ.code(lo, hi) for name, occ in self._rows.items()}

    def coded(self, code: Code, lo: float = 30.0, hi: float = 70.0) -> list[Occupation]:
        return [occ for occ in self._rows.values() if occ.code(lo, hi) == code]
