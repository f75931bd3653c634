"""Experiment configuration: pydantic schemas, YAML in, validated, round-trips to YAML.

Unknown keys and bad values are errors that name the key path and, when the config came from a
YAML file, the file and line — a typo in a sweep config must never run silently with defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from synthbias.core.hashing import stable_hash
from synthbias.core.yaml import read_yaml_mapping, yaml_line  # re-exported


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RayConfig(_Strict):
    """Distribute generation over Ray actors (``pip install synthbias[ray]``).

    ``address``: ``None`` starts a local Ray instance, ``auto`` or ``ray://host:port`` joins a
    cluster. Each of ``num_actors`` actors holds one backend and reserves ``num_cpus`` CPUs and
    ``num_gpus`` GPUs.
    """

    address: str | None = None
    num_actors: Annotated[int, Field(ge=1, le=4096)] = 2
    num_cpus: Annotated[float, Field(ge=0)] = 1.0
    num_gpus: Annotated[float, Field(ge=0)] = 0.0


class GeneratorConfig(_Strict):
    """Which backend generates text. ``model_path=None`` means the embedded SmolLM2 GGUF.

    ``n_ctx`` is the context of each sequence (prompt + completion); the backend allocates
    ``n_ctx * batch_size`` KV cells, so keep it near the longest prompt plus ``max_tokens``.

    Backends: ``llamacpp`` (embedded), ``hf`` (transformers; ``device``, ``dtype``), ``openai``
    (any OpenAI-compatible server at ``base_url``, serving ``model``; the API key is read from
    the environment variable *named* by ``api_key_env``; ``endpoint``, ``concurrency``,
    ``timeout``, ``max_retries``), ``vllm`` (offline engine, GPU; ``dtype``) and ``fake``.
    ``options`` are extra keyword arguments for the backend's constructor.

    ``cache``: every request is stored in SQLite so reruns and resumed runs redo no work —
    ``run`` (``<run dir>/cache.sqlite``), ``shared`` (``$SYNTHBIAS_CACHE/requests.sqlite``,
    default ``~/.cache/synthbias``) or ``off``. ``ray`` distributes generation over actors.
    """

    backend: Literal["llamacpp", "hf", "openai", "vllm", "fake"] = "llamacpp"
    model_path: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=512)] = 32
    n_ctx: Annotated[int, Field(ge=256, le=131072)] = 1024
    n_threads: Annotated[int, Field(ge=1)] | None = None
    device: str = "cpu"
    dtype: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    endpoint: Literal["auto", "chat", "completion"] = "auto"
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 4
    timeout: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0, le=100)] = 8
    options: dict[str, Any] = Field(default_factory=dict)
    cache: Literal["run", "shared", "off"] = "run"
    ray: RayConfig | None = None

    @model_validator(mode="after")
    def _backend_needs(self) -> GeneratorConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (e.g. http://127.0.0.1:8000/v1)")
        if self.backend == "vllm" and not self.model_path:
            raise ValueError("backend 'vllm' needs model_path (an HF checkpoint or GGUF file)")
        return self


class SamplingConfig(_Strict):
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 64
    temperature: Annotated[float, Field(ge=0.0, le=5.0)] = 0.8
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 0.95
    top_k: Annotated[int, Field(ge=0)] = 0


class RuleMetricConfig(_Strict):
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
        from synthbias.measure.rules import resolve_preset

        given = self.model_fields_set
        lo = self.male_coded_max_pct if "male_coded_max_pct" in given else None
        hi = self.female_coded_min_pct if "female_coded_min_pct" in given else None
        preset, lo, hi = resolve_preset(self.preset, lo, hi)
        # write through __dict__: assignment would re-run this validator
        self.__dict__.update(preset=preset, male_coded_max_pct=lo, female_coded_min_pct=hi)
        return self


class MeasureConfig(_Strict):
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


class FinetuneConfig(_Strict):
    """LoRA fine-tuning of the downstream model (see :mod:`synthbias.train.sft`).

    ``base_model=None`` fine-tunes the embedded SmolLM2 (the generator's own weights); a path
    names another GGUF file or local HF checkpoint folder.
    """

    base_model: str | None = None
    r: Annotated[int, Field(ge=1, le=256)] = 8
    alpha: Annotated[float, Field(gt=0)] = 16.0
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    learning_rate: Annotated[float, Field(gt=0.0, le=1.0)] = 1e-3
    epochs: Annotated[int, Field(ge=1, le=100)] = 2
    max_steps: Annotated[int, Field(ge=1)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=512)] = 8
    max_length: Annotated[int, Field(ge=16, le=8192)] = 96

    def lora_settings(self) -> dict[str, Any]:
        """The fields :class:`synthbias.train.sft.LoRAConfig` takes (everything but the base)."""
        return self.model_dump(exclude={"base_model"})


class EquilibriumMitigationConfig(_Strict):
    """Mitigations of the recursive study (composable; see :mod:`synthbias.mitigate`).

    ``debiased_finetune``: the generator is LoRA-tuned on a balanced corpus (the pooled
    generation-0 corpora, balanced by ``debias_method``) before it generates; ``swap``: after
    each generation a ``swap_fraction`` of its texts is replaced by gender-swapped twins (CDA);
    ``contrastive``: every generated text's twin is added; ``prompt``: the fairness variant
    (``<prompt>_fair``) of the generation prompt.
    """

    strategies: list[Literal["debiased_finetune", "swap", "contrastive", "prompt"]] = Field(
        default_factory=list
    )
    swap_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    debias_method: Literal["swap", "filter"] = "swap"
    finetune: FinetuneConfig = Field(default_factory=lambda: FinetuneConfig(max_length=192))


class EquilibriumStudyConfig(_Strict):
    """Recursive generation from seed corpora at several initial bias levels.

    ``levels`` are the shares b0 of generation-0 texts that pair a gender-coded occupation with its
    stereotyped gender; the rest (``seed_remainder``) pair it with the other gender (``anti``)
    or have no gendered referent (``neutral``). ``chains`` independent replicate chains run per
    level. ``fit_metric`` is the metric the equilibrium is fitted on (default the conditional
    stereotype share, see :mod:`synthbias.direction`); ``fit_ci`` chooses its bootstrap:
    ``chains`` (chains, then texts within them), ``texts`` (texts within fixed chains) or
    ``pairs`` (the (b_k, b_k+1) transitions). Every generated text is checked to be on topic
    (names an occupation, refers to a person); ``on_topic: regenerate`` samples an off-topic text
    again up to ``on_topic_retries`` times and draws few-shot examples only from on-topic texts,
    ``keep`` keeps what the generator wrote. A generation whose off-topic share exceeds
    ``max_off_topic`` or that has fewer than ``min_pairings`` coded pairings (over its chains)
    makes the fit "not interpretable".
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
    fit_metric: str = "rule.gender.conditional_stereotype_share"
    fit_ci: Literal["chains", "texts", "pairs"] = "chains"
    on_topic: Literal["regenerate", "keep"] = "regenerate"
    on_topic_retries: Annotated[int, Field(ge=0, le=20)] = 3
    max_off_topic: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    min_pairings: Annotated[int, Field(ge=1)] = 30
    mitigation: EquilibriumMitigationConfig = Field(default_factory=EquilibriumMitigationConfig)

    @field_validator("fit_metric")
    @classmethod
    def _fit_metric_name(cls, v: str) -> str:
        from synthbias.measure.names import canonical

        return canonical(v, "study.fit_metric")

    @field_validator("prompt")
    @classmethod
    def _known_prompt(cls, v: str) -> str:
        from synthbias.dynamics import prompt_templates

        known = sorted(prompt_templates())
        if v not in known:
            raise ValueError(f"unknown prompt template {v!r}; choose one of {', '.join(known)}")
        return v

    @field_validator("levels")
    @classmethod
    def _levels_nonempty(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("at least one level is required")
        if len(set(v)) != len(v):
            raise ValueError(f"levels must be distinct, got {v}")
        return v


InheritanceStrategy = Literal[
    "token",
    "mask_loss",
    "mask_input",
    "loss_weight",
    "loss_consistency",
    "swap",
    "contrastive",
    "prompt",
]


class InheritanceMitigationConfig(_Strict):
    """Mitigations of the bias-ratio pipeline (composable; see :mod:`synthbias.mitigate`).

    ``token``: source tags as new special tokens (evaluated in transformers with the real tag);
    ``mask_loss`` / ``mask_input``: group terms of augmented examples out of the loss / replaced
    by ``mask_word``; ``loss_weight``: augmented examples down-weighted by their measured bias
    (``weight_strength``); ``loss_consistency``: a twin-consistency loss term
    (``consistency_weight``); ``swap``: a ``swap_fraction`` of the augmented examples replaced by
    group-swapped twins; ``contrastive``: every augmented example's twin added; ``prompt``: a
    fairness instruction in the augmentation prompts.
    """

    strategies: list[InheritanceStrategy] = Field(default_factory=list)
    swap_fraction: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5
    weight_strength: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    consistency_weight: Annotated[float, Field(ge=0.0)] = 1.0
    mask_word: str = "person"


class InheritanceStudyConfig(_Strict):
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
    seeds: list[int] = Field(default_factory=lambda: [0])
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
        from synthbias.augment import bias_types

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
        from synthbias.augment import DIMENSIONS

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
        if not v or len(set(v)) != len(v):
            raise ValueError(f"seeds must be non-empty and distinct, got {v}")
        return v

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        from synthbias.tasks import list_tasks

        known = list_tasks()
        bad = [t for t in v if t not in known and Path(t).suffix not in (".yaml", ".yml")]
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {', '.join(known)}")
        return v


_EQ_STRATEGIES = ("debiased_finetune", "swap", "contrastive", "prompt")
_INH_STRATEGIES: tuple[str, ...] = get_args(InheritanceStrategy)


class MitigationStudyConfig(_Strict):
    """Every mitigation (and none) in the pipeline where it applies, same seeds as the baseline.

    Each entry runs one strategy alone; ``a+b`` stacks strategies. The headline of every
    strategy is held-out behaviour: in the recursive study the pronoun probe of a model
    LoRA-tuned (``probe``) on the generator's last-generation output, once per ``seeds`` entry;
    in the ratio study the task bias metrics. ``budget``: ``steps`` (default) gives every arm the
    same optimizer steps (``steps``, default the baseline's epochs x batches) and batch size;
    ``epochs`` the same passes over its own data. ``families`` names the corpus metrics reported
    as properties of the training data. Training-time strategies (token, mask_*, loss_*) are
    compared at the mixed ratios (0 < r < 1) of ``inheritance.ratios`` only.
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
        from synthbias.measure.names import canonical
        from synthbias.mitigate.stats import orientation

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
        return _check_strategies(v, _EQ_STRATEGIES)

    @field_validator("inheritance")
    @classmethod
    def _inh(cls, v: list[str]) -> list[str]:
        return _check_strategies(v, _INH_STRATEGIES)


def _check_strategies(v: list[str], known: tuple[str, ...]) -> list[str]:
    for entry in v:
        bad = [p for p in entry.split("+") if p not in known]
        if bad or not entry:
            raise ValueError(f"unknown strategy {entry!r}; choose from {', '.join(known)}")
    if len(set(v)) != len(v):
        raise ValueError(f"strategies must be distinct, got {v}")
    return v


class TasksConfig(_Strict):
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
        from synthbias.tasks import list_tasks

        bad = sorted(set(v) - set(list_tasks()))
        if bad:
            raise ValueError(f"unknown tasks {bad}; choose from {', '.join(list_tasks())}")
        return v


class ExperimentConfig(_Strict):
    """A whole experiment as run by ``synthbias run CONFIG.yaml``.

    ``kind`` picks the study: ``equilibrium`` (recursive generation, section ``study``),
    ``inheritance`` (bias-ratio fine-tuning sweep, section ``inheritance``) or ``mitigation``
    (both, once per strategy of ``mitigation_study``).
    """

    name: str = "equilibrium"
    kind: Literal["equilibrium", "inheritance", "mitigation"] = "equilibrium"
    seed: int = 0
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    study: EquilibriumStudyConfig = Field(default_factory=EquilibriumStudyConfig)
    inheritance: InheritanceStudyConfig = Field(default_factory=InheritanceStudyConfig)
    mitigation_study: MitigationStudyConfig = Field(default_factory=MitigationStudyConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def content_hash(self) -> str:
        """Stable hash of everything that changes results (for caching and resume)."""
        data = self.model_dump(mode="json")
        if self.tasks == TasksConfig():  # keeps the hashes of configs without the section
            data.pop("tasks", None)
        # The section of the other study kind does not change results: leave it out, so that
        # editing it never invalidates a run.
        if self.kind != "mitigation":
            data.pop("mitigation_study", None)
            data.pop("inheritance" if self.kind == "equilibrium" else "study", None)
        # How requests are cached, spread or retried does not change what they return.
        for key in _RESULT_NEUTRAL_GENERATOR_KEYS:
            data["generator"].pop(key, None)
        return stable_hash(data, 16)


_RESULT_NEUTRAL_GENERATOR_KEYS = ("cache", "ray", "concurrency", "timeout", "max_retries")


class ConfigError(ValueError):
    """Invalid configuration; the message names file, line and key."""


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config."""
    data, text = read_yaml_mapping(path, ConfigError)
    return parse_config(data, source=Path(path), text=text)


def parse_config(
    data: dict[str, Any], source: str | Path | None = None, text: str | None = None
) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            key = ".".join(loc) or "<root>"
            where = str(source) if source else "config"
            line = yaml_line(text, loc) if text else None
            if line:
                where += f":{line}"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            lines.append(f"{where}: {key}: {msg} (got {err.get('input')!r})")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from exc
