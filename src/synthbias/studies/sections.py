"""The config sections that a config reads without loading their study's code: the
inheritance study's (``inheritance:``, with its mitigation strategies), the attribution study's
(``attribution:``) and the downstream tasks' (``tasks:``).

Why here and not in the study's package: importing :mod:`synthbias.studies.inheritance` (or
:mod:`~synthbias.studies.attribution`, which reuses its pieces) loads its report pages, and they
load the task code (:mod:`synthbias.tasks` imports every task metric, SciPy and the
misalignment factors); :mod:`synthbias.tasks` itself is heavy for the same reason. A config, or
``synthbias --help``, needs none of that. ``synthbias.studies.inheritance.config`` and
``synthbias.studies.attribution.config`` re-export these classes. The validators that need the
task or mitigation registries load them on first use (:class:`~synthbias.core.registry.Lazy`).

The attribution section: why a section of its own: the design is a 2 x 2 x 2 factorial at one
bias ratio for one bias type, not the inheritance sweep (bias types x ratios x strengths), and
its knobs are the levels of the three manipulated factors. The training, evaluation and data
settings mean the same as in ``inheritance:`` and are handed to the inheritance study's trainer
and model loader through :meth:`AttributionStudyConfig.as_inheritance`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from synthbias.core.registry import Lazy
from synthbias.core.schema import ReplicatedSection, StrictModel
from synthbias.lexicon.bias_types import DIMENSIONS, bias_types
from synthbias.train.config import EvalWeights, FinetuneConfig

#: The registered task names (importing :mod:`synthbias.tasks` registers them).
list_tasks = Lazy("synthbias.tasks:list_tasks")
#: Checks strategy names against the registered mitigations (:mod:`synthbias.mitigate`).
check_strategies = Lazy("synthbias.mitigate:check_strategies")


class TasksConfig(StrictModel):
    """Downstream task items and sizes (inheritance and mitigation runs).

    ``data_dir`` is a benchmark root (the layout of ``../shared/benchmarks``): tasks with a
    ``benchmark`` section then draw real items from it (WinoBias/Winogender, BBQ, Jigsaw
    templates, CrowS-Pairs/StereoSet, BOLD); ``None`` keeps our templates. ``sizes`` gives
    items per task (default: the study's ``n_eval``); a size below a task's minimum (where its
    headline metric is undefined) is an error naming the task and the minimum. Both are
    checked when a run starts (a relative ``data_dir`` is read from the working directory),
    before any generation or training.
    """

    data_dir: str | None = None
    sizes: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(default_factory=dict)

    @field_validator("sizes")
    @classmethod
    def _known_sizes(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(set(v) - set(list_tasks()))
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {', '.join(list_tasks())}")
        return v


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


def known_dimensions(v: list[str]) -> list[str]:
    """Bias dimensions of a section: non-empty, each a packaged dimension."""
    bad = [d for d in v if d not in DIMENSIONS]
    if bad or not v:
        raise ValueError(f"unknown dimensions {bad or v}; choose from {', '.join(DIMENSIONS)}")
    return v


class InheritanceStudyConfig(ReplicatedSection):
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
    #: ``auto``: the fastest exact path for this machine (train.adapter.load_eval_model): on a
    #: CPU option scoring on transformers fp32 (each shared prefix fed once) and generation on
    #: llama.cpp with ``eval_weights`` (``native`` read as ``f32``); with CUDA transformers for
    #: both. ``llamacpp`` or ``hf`` run everything on one runtime.
    eval_backend: Literal["auto", "llamacpp", "hf"] = "auto"
    #: llama.cpp evaluation weights: ``native`` (the quantised GGUF as stored) or a locally
    #: dequantised ``f32`` / ``f16`` copy of it, about 2x faster on CPU (generate/llamacpp.py:
    #: widen_model); scores differ slightly, since activations are no longer 8-bit.
    #: ``f32-merged``: the f32 copy with each adapter merged into its weights once
    #: (train.adapter.merged_gguf) and a float32 KV cache: no LoRA nodes at run time (about
    #: 1.2x fewer CPU seconds) and scores equal to transformers fp32 within 1e-4 nats (the
    #: default f16 KV cache moves them by up to 0.016 nats; bench/evaluation.py).
    eval_weights: EvalWeights = "native"
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
        return known_dimensions(v)

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


class AttributionStudyConfig(ReplicatedSection):
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
    eval_backend: Literal["auto", "llamacpp", "hf"] = "auto"
    eval_weights: EvalWeights = "native"
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
        return known_dimensions(v)

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
