"""The inheritance study's config section (``inheritance:``) and its mitigation strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from synthbias.core.schema import StrictModel, distinct_seeds, replicate_seeds
from synthbias.lexicon.bias_types import DIMENSIONS, bias_types
from synthbias.mitigate import check_strategies
from synthbias.tasks import list_tasks
from synthbias.train.config import FinetuneConfig


class InheritanceMitigationConfig(StrictModel):
    """Mitigations of the bias-ratio pipeline (composable; see :mod:`synthbias.mitigate`).

    ``token``: source tags as new special tokens (evaluated in transformers with the real tag);
    ``mask_loss`` / ``mask_input``: group terms of augmented examples out of the loss / replaced
    by ``mask_word``; ``loss_weight``: augmented examples down-weighted by their measured bias
    (``weight_strength``); ``loss_consistency``: a twin-consistency loss term
    (``consistency_weight``); ``swap``: a ``swap_fraction`` of the augmented examples replaced by
    group-swapped twins; ``contrastive``: every augmented example's twin added; ``prompt``: a
    fairness instruction in the augmentation prompts. The choices are the strategies registered
    for the ``inheritance`` pipeline (:func:`synthbias.mitigate.strategy_names`).
    """

    strategies: list[str] = Field(default_factory=list)
    swap_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    weight_strength: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    consistency_weight: Annotated[float, Field(ge=0.0)] = 1.0
    mask_word: str = "person"

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, v: list[str]) -> list[str]:
        return check_strategies(v, "inheritance", combine=False)


class InheritanceStudyConfig(StrictModel):
    """The bias-inheritance sweep: bias type x bias ratio x seed (ACL 2026 paper).

    For each bias type the generator writes ``n_augmented`` examples under the bias spec
    (``dimensions`` in equal shares, ``strength`` = share of biased few-shot slots); training
    sets mix them with ``n_real`` real examples at each ratio (``mix_mode``: fixed total size or
    additive, see :mod:`synthbias.train.mix`); the embedded model is LoRA-tuned on each set and
    evaluated on ``tasks`` with ``n_eval`` items each. ``real_data`` points at a JSONL / CSV /
    Parquet file of real examples (a ``text`` column, optional ``prompt``) instead of the
    synthbias-built seed set. ``eval_base`` also evaluates the untuned model, as a reference.
    """

    bias_types: list[str] = Field(default_factory=lambda: ["gender", "religion"])
    dimensions: list[str] = Field(
        default_factory=lambda: ["explicit", "implicit_role", "representation", "value"]
    )
    #: requested bias strength(s): one value, or a list for a dose-response sweep
    strength: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=lambda: [1.0])
    #: extra strengths written and checked for the dose-response only (not mixed or trained on)
    check_strengths: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list)
    #: add a control arm: the same prompts and exemplar count at strength 0, same ratios/seeds
    control: bool = False
    #: fallback ladder climbed per dimension until the augmentation carries it (augment.METHODS)
    fallback: list[Literal["prompt", "exemplars", "opening", "filter"]] = Field(
        default_factory=lambda: ["prompt", "exemplars", "opening", "filter"]
    )
    #: regenerations of a biased text that fails its dimension's measure (``filter`` rung)
    filter_retries: Annotated[int, Field(ge=0, le=20)] = 4
    n_real: Annotated[int, Field(ge=2, le=1_000_000)] = 64
    n_augmented: Annotated[int, Field(ge=2, le=1_000_000)] = 64
    real_data: str | None = None
    k_shots: Annotated[int, Field(ge=1, le=20)] = 3
    ratios: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: [0.0, 0.5, 1.0]
    )
    mix_mode: Literal["fixed", "additive"] = "fixed"
    n_total: Annotated[int, Field(ge=1)] | None = None
    #: one replicate per seed: replicate i uses ``seeds[i]`` for its augmentation draw, mix draw
    #: and training seed, in every arm (see ``replicates``)
    seeds: list[int] = Field(default_factory=lambda: [0])
    #: number of replicates R: ``replicates: 5`` alone means ``seeds: [0, 1, 2, 3, 4]``; given
    #: with ``seeds`` it must equal their number; left out, R = len(seeds)
    replicates: Annotated[int, Field(ge=1, le=1000)] | None = None
    #: headline interval over replicates: ``t`` (mean ± t·SE of the per-replicate estimates) or
    #: ``two_stage`` (replicates, then items within each; stats/replicates.py)
    inference: Literal["t", "two_stage"] = "t"
    #: multiple-comparison adjustment of the "detected" flags over the run's family of cells
    adjust: Literal["holm", "bh"] = "holm"
    #: replicates run side by side (:mod:`synthbias.core.parallel`): ``1`` one after another in
    #: this process (the default), ``N`` on a local pool of N processes with cores/N threads
    #: each, ``auto`` one process per core (at most one per replicate)
    workers: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = 1
    #: where replicates run: ``local`` (this machine) or ``ray`` (one Ray task per replicate,
    #: on the cluster of ``RAY_ADDRESS`` or a local Ray; the run folder must be shared)
    scale: Literal["local", "ray"] = "local"
    tasks: list[str] | None = None
    n_eval: Annotated[int, Field(ge=2, le=100_000)] = 24
    eval_base: bool = True
    eval_backend: Literal["llamacpp", "hf"] = "llamacpp"
    #: llama.cpp evaluation weights: ``native`` (the quantised GGUF as stored) or a locally
    #: dequantised ``f32`` / ``f16`` copy of it, about 2x faster on CPU (generate/llamacpp.py:
    #: widen_model); scores differ slightly, since activations are no longer 8-bit.
    eval_weights: Literal["native", "f32", "f16"] = "native"
    misalignment: bool = True
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    mitigation: InheritanceMitigationConfig = Field(default_factory=InheritanceMitigationConfig)

    @field_validator("bias_types")
    @classmethod
    def _known_bias_types(cls, v: list[str]) -> list[str]:
        known = sorted(bias_types())
        bad = [b for b in v if b not in known]
        if bad:
            raise ValueError(f"unknown bias types {bad}; choose from {', '.join(known)}")
        if not v or len(set(v)) != len(v):
            raise ValueError(f"bias_types must be non-empty and distinct, got {v}")
        return v

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DIMENSIONS]
        if bad or not v:
            raise ValueError(f"unknown dimensions {bad or v}; choose from {', '.join(DIMENSIONS)}")
        return v

    @field_validator("strength", mode="before")
    @classmethod
    def _strength_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, int | float) else v

    @field_validator("strength")
    @classmethod
    def _strengths(cls, v: list[float]) -> list[float]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"strength must be one value or a non-empty distinct list, got {v}")
        return sorted(v)

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, v: list[str]) -> list[str]:
        if not v or v[0] != "prompt" or len(set(v)) != len(v):
            raise ValueError(f"fallback must start with prompt and not repeat a rung, got {v}")
        return v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"ratios must be non-empty and distinct, got {v}")
        return sorted(v)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return distinct_seeds(v)

    @model_validator(mode="before")
    @classmethod
    def _replicate_seeds(cls, data: Any) -> Any:
        return replicate_seeds(data)

    @property
    def n_replicates(self) -> int:
        """R: one replicate per seed."""
        return len(self.seeds)

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v

        known = list_tasks()
        bad = [t for t in v if t not in known and Path(t).suffix not in (".yaml", ".yml")]
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {', '.join(known)}")
        return v
