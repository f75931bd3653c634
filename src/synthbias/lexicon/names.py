"""First names with the share of bearers who are female (US Census 1990), for name-based gender.

A name counts as female when its female share is at least ``threshold``, male when at most
``1 - threshold``, and ambiguous in between (Jordan, Taylor, Kelly at the default 0.9). Names are
matched case-sensitively (capitalised only) so that "will", "mark" or "grant" are never names;
names that are also common capitalised words (months, virtues, places, titles) are excluded by the
axis file (see ``data/axes/gender.yaml``).
"""

from __future__ import annotations

import csv
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NameGender = Literal["female", "male", "ambiguous"]


def _check_threshold(threshold: float) -> None:
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"name threshold must be in (0.5, 1], got {threshold}")


@dataclass(frozen=True)
class NameInfo:
    name: str
    female_share: float
    total_freq: float


class NameTable:
    """Names ordered by frequency, with gender by a share threshold and a swap mapping."""

    def __init__(self, rows: Iterable[NameInfo], exclude: Iterable[str] = ()) -> None:
        self.excluded = frozenset(exclude)
        kept = [r for r in rows if r.name not in self.excluded]
        kept.sort(key=lambda r: (-r.total_freq, r.name))
        self._rows: dict[str, NameInfo] = {r.name: r for r in kept}

    @classmethod
    def from_csv(
        cls, path: str | Path, exclude: Iterable[str] = (), top_n: int | None = None
    ) -> NameTable:
        """Read a (name, female_share, total_freq) table, keeping the ``top_n`` most frequent."""
        path = Path(path)
        rows: list[NameInfo] = []
        with path.open(encoding="utf-8", newline="") as fh:
            for lineno, rec in enumerate(csv.DictReader(fh), start=2):
                try:
                    info = NameInfo(
                        rec["name"].strip(), float(rec["female_share"]), float(rec["total_freq"])
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise ValueError(f"{path}:{lineno}: bad name row {rec!r}: {exc}") from exc
                if not 0.0 <= info.female_share <= 1.0:
                    raise ValueError(f"{path}:{lineno}: female_share outside [0, 1]")
                rows.append(info)
        rows.sort(key=lambda r: (-r.total_freq, r.name))
        if top_n is not None:
            rows = rows[:top_n]
        return cls(rows, exclude)

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[NameInfo]:
        return iter(self._rows.values())

    @property
    def names(self) -> list[str]:
        return list(self._rows)

    def female_share(self, name: str) -> float | None:
        info = self._rows.get(name)
        return None if info is None else info.female_share

    def gender(self, name: str, threshold: float = 0.9) -> NameGender | None:
        """female / male / ambiguous for a known name, ``None`` for an unknown one."""
        _check_threshold(threshold)
        share = self.female_share(name)
        if share is None:
            return None
        if share >= threshold:
            return "female"
        if share <= 1.0 - threshold:
            return "male"
        return "ambiguous"

    def by_gender(self, threshold: float = 0.9) -> dict[NameGender, list[str]]:
        """Names per gender, each list most frequent first."""
        out: dict[NameGender, list[str]] = {"female": [], "male": [], "ambiguous": []}
        for name in self._rows:
            g = self.gender(name, threshold)
            assert g is not None
            out[g].append(name)
        return out

    def swap_map(
        self, threshold: float = 0.9, keep: Container[str] | None = None
    ) -> dict[str, str]:
        """Deterministic female<->male mapping by frequency rank (Mary<->James, ...).

        The i-th most frequent female name maps to the i-th most frequent male name and back, so
        swapping twice is the identity for the first ``min(n_female, n_male)`` ranks; names
        beyond that (there are more female names) map to rank ``i mod n_other``. Ambiguous names
        are left out (they stay unchanged). ``keep`` restricts the names before ranking (the
        swapper passes the names its matcher really matches as names).
        """
        groups = self.by_gender(threshold)
        female, male = groups["female"], groups["male"]
        if keep is not None:
            female = [n for n in female if n in keep]
            male = [n for n in male if n in keep]
        out: dict[str, str] = {}
        if not female or not male:
            return out
        for i, name in enumerate(female):
            out[name] = male[i % len(male)]
        for i, name in enumerate(male):
            out[name] = female[i % len(female)]
        return out
