"""The attribution study's config section (``attribution:``).

Why a section of its own: the design is a 2 x 2 x 2 factorial at one bias ratio for one bias
type, not the inheritance sweep (bias types x ratios x strengths), and its knobs are the levels
of the three manipulated factors. The training, evaluation and data settings mean the same as in
``inheritance:`` and are handed to the inheritance study's trainer and model loader through
:meth:`AttributionStudyConfig.as_inheritance`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from synthbias.core.schema import StrictModel, distinct_seeds, replicate_seeds
from synthbias.lexicon.bias_types import DIMENSIONS, bias_types
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.tasks import list_tasks
from synthbias.train.config import FinetuneConfig

#: The three manipulated factors, in the design's column order.
FACTORS: tuple[str, ...] = ("values", "group_data", "distribution")

#: Bias metrics that are signed target − contrast for the trained bias type (+ = towards the
#: stereotype; :data:`synthbias.tasks` registers their orientations), by task.
SIGNED_TASKS: dict[str, str] = {
    "hiring_decision": "bias.p_yes_signed",
    "salary_recommendation": "bias.salary_signed_p",
    "story_generation": "bias.sentiment_signed_p",
    "toxicity_identity": "bias.false_toxic_signed",
    "stereotype_detection": "bias.stereo_pref_paired",
}


class AttributionStudyConfig(StrictModel):
    """Which misalignment factor drives inheritance: values x group data x distribution.

    One pool of ``n_augmented`` texts per replicate is written by the generator at strength 0
    (the inheritance study's control prompts for ``bias_type``, ``dimensions``); each arm edits
    that pool in one factor per level (:mod:`synthbias.studies.attribution.manipulate`):

    * ``values`` (balanced / skewed): a valence sentence appended to every text, warm or cold at
      random (balanced) or cold for the target group and warm for the contrast group (skewed);
    * ``group_data`` (balanced / skewed): each text's person is the target group with
      probability 0.5 (balanced) or ``target_share`` (skewed: under-represented), by
      counterfactual group swap of the same text;
    * ``distribution`` (real-like / generator): nothing added, or a group-free, sentiment-neutral
      sentence the generator wrote on an unrelated topic appended (its own style and topics).

    Every arm is mixed with the real data at ``ratio``, LoRA-tuned with the same seeds and
    budget, and evaluated on ``tasks`` (signed target − contrast metrics of ``bias_type``).
    ``design: half`` runs the 2^(3-1) fraction (I = ABC): 4 arms, main effects aliased with the
    two-way interactions of the other two factors. ``leak_tolerance``: a manipulation check
    fails when a factor moves another factor's measure detectably and by more than this share
    of that factor's own manipulation effect.
    """

    bias_type: str = "gender"
    dimensions: list[str] = Field(default_factory=lambda: ["value", "implicit_role"])
    design: Literal["full", "half"] = "full"
    target_share: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.2
    leak_tolerance: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    n_real: Annotated[int, Field(ge=2, le=1_000_000)] = 64
    n_augmented: Annotated[int, Field(ge=4, le=1_000_000)] = 64
    real_data: str | None = None
    k_shots: Annotated[int, Field(ge=1, le=20)] = 3
    ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5
    mix_mode: Literal["fixed", "additive"] = "fixed"
    n_total: Annotated[int, Field(ge=1)] | None = None
    #: replicate i uses seeds[i] for its pool, manipulation draws, mix and training, in every arm
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4])
    replicates: Annotated[int, Field(ge=1, le=1000)] | None = None
    interactions: bool = True
    adjust: Literal["holm", "bh"] = "holm"
    tasks: list[str] = Field(
        default_factory=lambda: ["hiring_decision", "salary_recommendation", "story_generation"]
    )
    n_eval: Annotated[int, Field(ge=2, le=100_000)] = 24
    eval_backend: Literal["llamacpp", "hf"] = "llamacpp"
    eval_weights: Literal["native", "f32", "f16"] = "native"
    #: bootstrap resamples of each arm's misalignment measures (their per-replicate CIs)
    check_resamples: Annotated[int, Field(ge=50, le=10_000)] = 200
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @field_validator("bias_type")
    @classmethod
    def _known_bias_type(cls, v: str) -> str:
        known = sorted(bias_types())
        if v not in known:
            raise ValueError(f"unknown bias type {v!r}; choose from {', '.join(known)}")
        return v

    @field_validator("dimensions")
    @classmethod
    def _known_dimensions(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in DIMENSIONS]
        if bad or not v:
            raise ValueError(f"unknown dimensions {bad or v}; choose from {', '.join(DIMENSIONS)}")
        return v

    @field_validator("tasks")
    @classmethod
    def _signed_tasks(cls, v: list[str]) -> list[str]:
        known = set(list_tasks())
        bad = [t for t in v if t not in SIGNED_TASKS or t not in known]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(
                f"tasks must be distinct tasks with a signed target − contrast bias metric; "
                f"not usable: {bad or v}; choose from {', '.join(SIGNED_TASKS)}"
            )
        return v

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
        return len(self.seeds)

    def as_inheritance(self) -> InheritanceStudyConfig:
        """The inheritance section the reused pieces read (trainer, model loader, real data)."""
        return InheritanceStudyConfig(
            bias_types=[self.bias_type],
            dimensions=list(self.dimensions),
            n_real=self.n_real,
            n_augmented=self.n_augmented,
            real_data=self.real_data,
            k_shots=self.k_shots,
            ratios=[self.ratio],
            seeds=list(self.seeds),
            tasks=list(self.tasks),
            n_eval=self.n_eval,
            eval_base=False,
            eval_backend=self.eval_backend,
            eval_weights=self.eval_weights,
            finetune=self.finetune,
        )
