"""The mitigation study's config section (``mitigation_study:``): which strategies run in which
pipeline, the probe and the training budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
)

from synthbias.core.registry import STUDIES, Lazy
from synthbias.core.schema import StrictModel
from synthbias.measure.names import canonical
from synthbias.studies.mitigation.stats import orientation
from synthbias.train.config import FinetuneConfig

#: Checks strategy names against the registered mitigations (:mod:`synthbias.mitigate`, loaded
#: on first use: it imports the measurement code).
check_strategies = Lazy("synthbias.mitigate:check_strategies")


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

    **Replicates** (``seeds`` is the replicate axis of the probe; no separate ``replicates``
    key): in the recursive study a replicate is one (chain, probe seed) cell, chain ``c`` of
    ``study.chains`` and seed ``s`` of ``seeds`` (the probe model's training seed: ``s`` on
    chain 0, one derived from both on later chains), the same cell in every arm, so
    R = ``study.chains`` x ``len(seeds)`` (prefer chains: cells of one chain share its
    corpus); in the ratio study a replicate is one seed of
    ``inheritance.seeds`` (``inheritance.replicates``). A strategy's headline is the mean over
    replicates of the paired per-replicate difference strategy - baseline with a t-interval
    (``inference: t``) or a two-stage bootstrap over replicates and probes (``two_stage``), its
    80 %-power MDE and a ``detected`` flag adjusted (``adjust``: Holm or Benjamini-Hochberg) over
    the family of every strategy x headline family; below 3 replicates "not replicated".

    **Scoring** (``scoring``): every arm of the ratio study is scored by one backend on one set
    of weights. ``auto``: ``inheritance.eval_backend`` / ``eval_weights``, except that a
    ``token`` arm (its adapter adds tokens, which a llama.cpp LoRA cannot) puts every arm on
    transformers (merged, float32); ``llamacpp`` or ``hf`` name the backend for all arms
    (``llamacpp`` with a ``token`` arm is an error). The recursive study's probe models and the
    untuned model are all scored in llama.cpp on the native GGUF weights.
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
    inference: Literal["t", "two_stage"] = "t"
    adjust: Literal["holm", "bh"] = "holm"
    scoring: Literal["auto", "llamacpp", "hf"] = "auto"
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
        # the orientations are registered by the code the study runs (its metric families)
        STUDIES.entry("mitigation").load()
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
