"""The mitigation study's config section (``mitigation_study:``): which strategies run in which
pipeline, the probe and the training budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from synthbias.core.schema import StrictModel
from synthbias.measure.names import canonical
from synthbias.mitigate import check_strategies
from synthbias.studies.mitigation.stats import orientation
from synthbias.train.config import FinetuneConfig


class MitigationStudyConfig(StrictModel):
    """Every mitigation (and none) in the pipeline where it applies, same seeds as the baseline.

    Each entry runs one strategy alone; ``a+b`` stacks strategies. The headline of every
    strategy is held-out behaviour: in the recursive study the pronoun probe of a model
    LoRA-tuned (``probe``) on the generator's last-generation output, once per ``seeds`` entry;
    in the ratio study the task bias metrics. ``budget``: ``steps`` (default) gives every arm the
    same optimizer steps (``steps``, default the baseline's epochs x batches) and batch size;
    ``epochs`` the same passes over its own data. ``families`` names the corpus metrics reported
    as properties of the training data. Training-time strategies (token, mask_*, loss_*) are
    compared at the mixed ratios (0 < r < 1) of ``inheritance.ratios`` only. The choices are the
    strategies registered for each pipeline (:func:`synthbias.mitigate.strategy_names`).
    """

    equilibrium: list[str] = Field(
        default_factory=lambda: ["debiased_finetune", "swap", "contrastive", "prompt"]
    )
    inheritance: list[str] = Field(
        default_factory=lambda: ["token", "mask_loss", "loss_weight", "swap", "contrastive"]
    )
    run_equilibrium: bool = True
    run_inheritance: bool = True
    families: dict[str, str] = Field(
        default_factory=lambda: {
            "rule": "rule.gender.stereotype_rate",
            "embedding": "embedding.gender.mean_abs_projection",
        }
    )
    budget: Literal["steps", "epochs"] = "steps"
    steps: Annotated[int, Field(ge=1)] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0])
    probe: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(max_length=64))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be non-empty and distinct, got {v}")
        return v

    @field_validator("families")
    @classmethod
    def _families(cls, v: dict[str, str]) -> dict[str, str]:
        v = {fam: canonical(m, f"mitigation.families.{fam}") for fam, m in v.items()}
        for fam, metric in v.items():
            try:
                orientation(metric)
            except KeyError as e:
                raise ValueError(f"family {fam!r}: {e.args[0]}") from None
        return v

    @field_validator("equilibrium")
    @classmethod
    def _eq(cls, v: list[str]) -> list[str]:
        return check_strategies(v, "equilibrium")

    @field_validator("inheritance")
    @classmethod
    def _inh(cls, v: list[str]) -> list[str]:
        return check_strategies(v, "inheritance")
