"""Named, cached steps of a study run.

A study is a sequence of named steps (augment → mix → train → evaluate → …). Each unit of work a
step does (one augmented set, one adapter, one evaluation) is stored under a content key of
everything that changes it; a rerun loads what is stored and computes only units whose key is
new. :class:`Steps` does that bookkeeping in one place and counts, per step, the units that ran
and the units reused, so a changed config visibly re-runs only the steps whose inputs changed
(the counts go into the results file as ``steps``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class StepCount:
    """What one named step did in this run."""

    ran: int = 0
    reused: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"ran": self.ran, "reused": self.reused, "seconds": round(self.seconds, 2)}


@dataclass
class Steps:
    """The steps of one run, in the order first used.

    ``resume=False`` ignores what is stored (every unit runs again and overwrites it).
    """

    resume: bool = True
    counts: dict[str, StepCount] = field(default_factory=dict)
    #: whether the last :meth:`cached` unit was loaded rather than computed
    last_reused: bool = False

    def _count(self, step: str) -> StepCount:
        return self.counts.setdefault(step, StepCount())

    def cached(
        self,
        step: str,
        path: Path,
        compute: Callable[[], T],
        load: Callable[[Path], T],
        save: Callable[[T, Path], None],
        *,
        done: Path | None = None,
    ) -> T:
        """One unit of ``step``: ``load(path)`` when stored, else ``compute()`` then ``save``.

        ``done`` is the file whose presence marks the unit complete (default ``path``): a unit
        that writes a folder marks it with a file written last, so an interrupted unit runs again.
        """
        count = self._count(step)
        self.last_reused = self.resume and (done or path).exists()
        if self.last_reused:
            count.reused += 1
            return load(path)
        t = time.perf_counter()
        value = compute()
        save(value, path)
        count.seconds += time.perf_counter() - t
        count.ran += 1
        return value

    def timed(self, step: str, compute: Callable[[], T]) -> T:
        """A step that is not cached (cheap, or derived from cached units): run and time it."""
        count = self._count(step)
        t = time.perf_counter()
        value = compute()
        count.seconds += time.perf_counter() - t
        count.ran += 1
        return value

    def merge(self, counts: dict[str, StepCount]) -> None:
        """Add step counts of work done elsewhere (a replicate in a worker process) to these."""
        for name, c in counts.items():
            mine = self._count(name)
            mine.ran += c.ran
            mine.reused += c.reused
            mine.seconds += c.seconds

    def seconds(self, step: str) -> float:
        return self.counts[step].seconds if step in self.counts else 0.0

    def summary(self) -> dict[str, dict[str, Any]]:
        """``{step: {"ran": n, "reused": m, "seconds": s}}`` in the order the steps ran."""
        return {name: c.to_dict() for name, c in self.counts.items()}
