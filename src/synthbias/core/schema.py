"""The base of every config section (unknown keys are errors) and the config error type."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ConfigError(ValueError):
    """Invalid configuration; the message names file, line and key."""


def distinct_seeds(seeds: list[int]) -> list[int]:
    """A study's replicate seeds: non-empty and distinct (a repeated seed is not a replicate)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be non-empty and distinct, got {seeds}")
    return seeds


def replicate_seeds(data: Any) -> Any:
    """A section's raw data with ``replicates: R`` expanded to seeds 0..R-1 when no ``seeds`` are
    given; with both, they must agree. Shared by every study with a ``replicates`` key."""
    if not isinstance(data, dict) or data.get("replicates") is None:
        return data
    r = int(data["replicates"])
    if data.get("seeds") is None:
        return data | {"seeds": list(range(r))}
    if len(data["seeds"]) != r:
        raise ValueError(
            f"replicates ({r}) must equal the number of seeds ({len(data['seeds'])}); "
            "give one of them (replicates: R means seeds 0..R-1)"
        )
    return data


class ReplicatedSection(StrictModel):
    """A study section whose replicates are its ``seeds`` (or ``replicates: R``, seeds 0..R-1).

    Subclasses declare ``seeds`` (with their default) and ``replicates``; the checks live here
    once: seeds non-empty and distinct, ``replicates`` expanded or checked against them.
    """

    @field_validator("seeds", check_fields=False)
    @classmethod
    def _distinct_seeds(cls, v: list[int]) -> list[int]:
        return distinct_seeds(v)

    @model_validator(mode="before")
    @classmethod
    def _replicate_seeds(cls, data: Any) -> Any:
        return replicate_seeds(data)

    @property
    def n_replicates(self) -> int:
        """R: one replicate per seed."""
        return len(self.seeds)  # type: ignore[attr-defined]
