"""The equilibrium study's config section (``study:``) and its mitigation block."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from synthbias.core.registry import Lazy
from synthbias.core.schema import StrictModel
from synthbias.generate.prompts import prompt_templates
from synthbias.measure.names import canonical
from synthbias.train.config import FinetuneConfig

#: Checks strategy names against the registered mitigations (:mod:`synthbias.mitigate`, loaded
#: on first use: it imports the measurement code).
check_strategies = Lazy("synthbias.mitigate:check_strategies")


class EquilibriumMitigationConfig(StrictModel):
    """Mitigations of the recursive study (composable; see :mod:`synthbias.mitigate`).

    ``debiased_finetune``: the generator is LoRA-tuned on a balanced corpus (the pooled
    generation-0 corpora, balanced by ``debias_method``) before it generates; ``swap``: after
    each generation a ``swap_fraction`` of its texts is replaced by gender-swapped twins (CDA);
    ``contrastive``: every generated text's twin is added; ``prompt``: the fairness variant
    (``<prompt>_fair``) of the generation prompt. The choices are the strategies registered for
    the ``equilibrium`` pipeline (:func:`synthbias.mitigate.strategy_names`).
    """

    strategies: list[str] = Field(default_factory=list)
    swap_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    debias_method: Literal["swap", "filter"] = "swap"
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(max_length=192))

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, v: list[str]) -> list[str]:
        return check_strategies(v, "equilibrium", combine=False)


class EquilibriumLoopConfig(StrictModel):
    """The grid of ``kind: equilibrium_loop`` (:mod:`synthbias.studies.equilibrium.loop`): one
    equilibrium run per ``regimes`` × ``real_shares`` cell at ``study.levels`` for
    ``study.generations``, after a generation-0 → 1 run at ``study.levels`` +
    ``calibration_levels`` that the one-generation prediction is fitted on (generation 1 of
    ``study.levels`` is that run's, copied into every cell: it does not depend on the cell).
    ``window``: the last generations whose mean is the observed level compared with the
    prediction."""

    real_shares: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5]
    )
    regimes: list[Literal["replace", "accumulate"]] = Field(
        default_factory=lambda: ["replace", "accumulate"]
    )
    calibration_levels: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(default_factory=list)
    window: Annotated[int, Field(ge=1, le=50)] = 3

    @field_validator("real_shares", "regimes")
    @classmethod
    def _nonempty_distinct(cls, v: list) -> list:
        if not v or len(set(v)) != len(v):
            raise ValueError(f"needs at least one value, all distinct; got {v}")
        return v


class EquilibriumStudyConfig(StrictModel):
    """Recursive generation from seed corpora at several initial bias levels.

    ``levels`` are the shares b0 of generation-0 texts that pair a gender-coded occupation with its
    stereotyped gender; the rest (``seed_remainder``) pair it with the other gender (``anti``)
    or have no gendered referent (``neutral``). ``chains`` independent replicate chains run per
    level. ``fit_metric`` is the metric the equilibrium is fitted on: by default (issue 27) the
    code-balanced share ``rule.gender.code_balanced_stereotype_share``, ½[P(stereo |
    male-coded) + P(stereo | female-coded)], which a generator's global he/she lean cannot
    move (see :mod:`synthbias.measure.direction`). It is undefined for a chain's generation
    whose texts pair only one code: the fit then stops with an error naming the ``n`` it needs
    (no silent fallback). The pooled share stereo / (stereo + anti),
    ``rule.gender.conditional_stereotype_share``, the default before, is reported beside it as
    a secondary figure and can be chosen here.
    ``fit_ci`` is read by older configs and no longer changes the fit (its interval comes from
    the chains, below). Every generated text
    is checked to be on topic (names an occupation and refers to a person; when the prompt wrote
    the text's opening, "The {occupation} said that", what the model wrote after it must refer
    to a person: a pronoun, a name or a person noun); ``on_topic:
    regenerate`` samples an off-topic text again up to ``on_topic_retries`` times and draws
    few-shot examples only from on-topic texts, ``keep`` keeps what the generator wrote. A
    generation whose off-topic share exceeds ``max_off_topic`` or that has fewer than
    ``min_pairings`` coded pairings (over its chains) makes the fit "not interpretable".

    Chains are the replicates. A generation's headline is the mean over its chains with an
    interval from their spread (``inference: t``, or ``two_stage``: chains, then texts within
    each drawn chain; see :mod:`synthbias.stats.replicates`); below 3 chains it is "not
    replicated" and the text-level bootstrap CI (``fit_ci``) is a secondary figure. The map is
    fitted with generation 0 fixed by design (:func:`synthbias.stats.fixed_point.fit_map`):
    ``fit_from: 1`` uses only generation ≥ 1 transitions (model → model). ``seed_source: model``
    starts every chain from texts the model wrote (a pilot generation from a balanced seed),
    relabelled by gender swaps so a share b0 of their pairings are stereotypical, so generation 0
    is model text too.

    Real data in the loop (issue 31): ``real_share`` ρ is the share of every generated corpus's
    few-shot examples drawn from the chain's generation 0 (the fixed real / seed corpus), the
    rest from the synthetic pool; ``regime: replace`` takes that pool from generation k alone,
    ``accumulate`` from generations 0..k pooled. The defaults (0, replace) are the pure
    recursion, with today's corpora. ``loop`` is read by ``kind: equilibrium_loop`` only.

    ``workers`` and ``scale`` say where the chains are generated, never what they hold (see
    :mod:`~synthbias.studies.equilibrium.chains`): ``workers: 1`` (the default) generates them
    one after another in this process; ``N`` runs each (level, chain) pair as a unit on a local
    pool of N processes with cores/N threads each, ``auto`` one process per core (at most one
    per unit); ``scale: ray`` sends every unit to Ray (the run folder must be shared).
    """

    levels: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=lambda: [0.1, 0.3, 0.6]
    )
    generations: Annotated[int, Field(ge=1, le=100)] = 3
    n: Annotated[int, Field(ge=2, le=1_000_000)] = 100
    chains: Annotated[int, Field(ge=1, le=1000)] = 1
    k_shots: Annotated[int, Field(ge=1, le=20)] = 3
    prompt: str = "work_occupation_said"
    seed_remainder: Literal["anti", "neutral"] = "anti"
    fit_metric: str = "rule.gender.code_balanced_stereotype_share"
    fit_ci: Literal["chains", "texts", "pairs"] = "chains"
    on_topic: Literal["regenerate", "keep"] = "regenerate"
    on_topic_retries: Annotated[int, Field(ge=0, le=20)] = 3
    max_off_topic: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    min_pairings: Annotated[int, Field(ge=1)] = 30
    inference: Literal["t", "two_stage"] = "t"
    fit_from: Literal[0, 1] = 0
    seed_source: Literal["template", "model"] = "template"
    real_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    regime: Literal["replace", "accumulate"] = "replace"
    loop: EquilibriumLoopConfig = Field(default_factory=EquilibriumLoopConfig)
    #: chains generated side by side (:mod:`synthbias.core.parallel`): ``1`` one after another
    #: in this process (the default), ``N`` on a local pool of N processes, ``auto`` one per core
    workers: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = 1
    #: where the chains run: ``local`` (this machine) or ``ray`` (one Ray task per chain)
    scale: Literal["local", "ray"] = "local"
    mitigation: EquilibriumMitigationConfig = Field(default_factory=EquilibriumMitigationConfig)

    @field_validator("fit_metric")
    @classmethod
    def _fit_metric_name(cls, v: str) -> str:
        return canonical(v, "study.fit_metric")

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, v: str) -> str:
        known = sorted(prompt_templates())
        if v not in known:
            raise ValueError(f"unknown prompt template {v!r}; choose one of {', '.join(known)}")
        return v

    @model_validator(mode="after")
    def _model_seeds(self) -> EquilibriumStudyConfig:
        if self.seed_source != "model":
            return self
        if self.seed_remainder != "anti":
            raise ValueError(
                "seed_source: model relabels paired texts; it needs seed_remainder: anti"
            )
        if "debiased_finetune" in self.mitigation.strategies:
            raise ValueError(
                "seed_source: model and the debiased_finetune mitigation cannot be combined (the "
                "tuned generator learns from the seed corpora that the pilot would write)"
            )
        return self

    @field_validator("levels")
    @classmethod
    def _levels_nonempty(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one level is required")
        if len(set(v)) != len(v):
            raise ValueError(f"levels must be distinct, got {v}")
        return v
