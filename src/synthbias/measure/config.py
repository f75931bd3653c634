"""The measurement config section: which rule metric (preset or custom) scores gender pairings."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    model_validator,
)

from synthbias.core.schema import StrictModel
from synthbias.measure.rules import resolve_preset


class RuleMetricConfig(StrictModel):
    """The rule metric: occupation table, thresholds on the share of women, referent rule.

    ``preset``: ``strict`` (male-coded <= 30 %, female-coded >= 70 %, the default), ``majority``
    (below / above 50 %, the coreference-benchmark convention) or ``custom`` with explicit
    ``male_coded_max_pct`` / ``female_coded_min_pct``. Explicit thresholds without a preset get
    the preset they equal, else ``custom``; a preset with different explicit thresholds is an
    error. After validation the two thresholds always hold the values in use.
    ``occupations``: ``bls`` (500+ BLS/ACS occupations) or ``legacy`` (the 96-row table);
    ``attach``: ``nearest``, ``occupation`` or ``text`` (see ``synthbias.measure.rules``).
    """

    preset: Literal["strict", "majority", "custom"] | None = None
    female_coded_min_pct: Annotated[float, Field(ge=0, le=100)] = 70.0
    male_coded_max_pct: Annotated[float, Field(ge=0, le=100)] = 30.0
    name_threshold: Annotated[float, Field(gt=0.5, le=1.0)] = 0.9
    occupations: Literal["bls", "legacy"] = "bls"
    attach: Literal["nearest", "occupation", "text"] = "nearest"

    @model_validator(mode="after")
    def _resolve_preset(self) -> RuleMetricConfig:
        given = self.model_fields_set
        lo = self.male_coded_max_pct if "male_coded_max_pct" in given else None
        hi = self.female_coded_min_pct if "female_coded_min_pct" in given else None
        preset, lo, hi = resolve_preset(self.preset, lo, hi)
        # write through __dict__: assignment would re-run this validator
        self.__dict__.update(preset=preset, male_coded_max_pct=lo, female_coded_min_pct=hi)
        return self


class MeasureConfig(StrictModel):
    rule: RuleMetricConfig = Field(default_factory=RuleMetricConfig)
    embedding: bool = True
    #: The pronoun probe (``probe.gender.*``) of a model LoRA-tuned on each corpus (equilibrium
    #: study's third family; minutes per corpus on a CPU): off, the last generation (and
    #: generation 0) or all. The field keeps its old name; "downstream" elsewhere = the ten tasks.
    downstream: Literal["off", "last", "all"] = "off"
    #: Probe budget of the downstream family: at most this many occupations (half female-,
    #: half male-coded, in table order) and the first this many probe templates; None = all.
    downstream_occupations: Annotated[int, Field(ge=2)] | None = None
    downstream_templates: Annotated[int, Field(ge=1)] | None = None
    n_resamples: Annotated[int, Field(ge=50, le=100_000)] = 1000
    ci_level: Annotated[float, Field(gt=0.5, lt=1.0)] = 0.95
