"""The six bias types as data: for each, a target and a contrast group with their slot fillers,
and the bias dimensions an augmentation can carry (``lexicon/data/augment.yaml``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml

from synthbias.lexicon.loader import DATA_DIR

DIMENSIONS: tuple[str, ...] = ("explicit", "implicit_role", "representation", "value")


@cache
def augment_templates() -> dict[str, Any]:
    """The packaged bias types, dimensions and real seed templates (``augment.yaml``)."""
    return yaml.safe_load((DATA_DIR / "augment.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class BiasType:
    """One bias type: an axis with a target and a contrast group and its stereotype content."""

    name: str
    axis: str
    target: str
    contrast: str
    person: Mapping[str, str]
    people: Mapping[str, str]
    explicit: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]
    counter: tuple[str, ...] = ()

    def role_words(self, side: str) -> tuple[str, ...]:
        return tuple(self.roles[side])


def bias_types() -> dict[str, BiasType]:
    """All packaged bias types by name (the six axes)."""
    out = {}
    for name, spec in augment_templates()["bias_types"].items():
        out[name] = BiasType(
            name=name,
            axis=spec["axis"],
            target=spec["target"],
            contrast=spec["contrast"],
            person=dict(spec["person"]),
            people=dict(spec["people"]),
            explicit=tuple(spec["explicit"]),
            roles={k: tuple(v) for k, v in spec["roles"].items()},
            counter=tuple(spec.get("counter", ())),
        )
    return out


def get_bias_type(name: str) -> BiasType:
    known = bias_types()
    if name not in known:
        raise ValueError(f"unknown bias type {name!r}; choose one of {', '.join(sorted(known))}")
    return known[name]
