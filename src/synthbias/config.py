"""Experiment configuration: pydantic schemas, YAML in, validated, round-trips to YAML.

Unknown keys and bad values are errors that name the key path and, when the config came from a
YAML file, the file and line — a typo in a sweep config must never run silently with defaults.
For the same reason a config file must name its study (``kind:``): an empty file once ran the
whole default study (900 texts on the real model). :func:`check_inputs` reads the files a config
names (the model, the real data) before a run writes anything, so a missing or broken one is an
error naming the config line, not a traceback after the run folder was set up.

Importing this module loads the sections' light modules only, no study code (see
:mod:`synthbias.studies`): the studies are registered by name and load when a run starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    ValidationError,
    field_validator,
)

from synthbias.core.hashing import stable_hash
from synthbias.core.records import CorpusError, read_corpus
from synthbias.core.registry import BACKENDS, STUDIES
from synthbias.core.schema import ConfigError, StrictModel
from synthbias.core.yaml import read_yaml_mapping, yaml_line  # re-exported
from synthbias.generate.config import GeneratorConfig, SamplingConfig
from synthbias.measure.config import MeasureConfig
from synthbias.studies.dispatch import experiment_kinds
from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
from synthbias.studies.mitigation.config import MitigationStudyConfig
from synthbias.studies.sections import AttributionStudyConfig, InheritanceStudyConfig, TasksConfig


class ExperimentConfig(StrictModel):
    """A whole experiment as run by ``synthbias run CONFIG.yaml``.

    ``kind`` picks the study, one registered in :data:`synthbias.core.registry.STUDIES`:
    ``equilibrium`` (recursive generation, section ``study``), ``inheritance`` (bias-ratio
    fine-tuning sweep, section ``inheritance``) or ``mitigation`` (both, once per strategy of
    ``mitigation_study``).
    """

    name: str = "equilibrium"
    kind: str = "equilibrium"
    seed: int = 0
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    study: EquilibriumStudyConfig = Field(default_factory=EquilibriumStudyConfig)
    inheritance: InheritanceStudyConfig = Field(default_factory=InheritanceStudyConfig)
    mitigation_study: MitigationStudyConfig = Field(default_factory=MitigationStudyConfig)
    #: the factorial attribution study's section (``kind: attribution``)
    attribution: AttributionStudyConfig = Field(default_factory=AttributionStudyConfig)
    measure: MeasureConfig = Field(default_factory=MeasureConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        return STUDIES.check(v, experiment_kinds())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def content_hash(self) -> str:
        """Stable hash of everything that changes results (for caching and resume)."""
        data = self.model_dump(mode="json")
        if self.tasks == TasksConfig():  # keeps the hashes of configs without the section
            data.pop("tasks", None)
        # The sections of the other study kinds do not change results: leave them out, so that
        # editing one never invalidates a run.
        for key in _unused_sections(self.kind):
            data.pop(key, None)
        # How requests are cached, spread or retried does not change what they return.
        for key in _RESULT_NEUTRAL_GENERATOR_KEYS:
            data["generator"].pop(key, None)
        return stable_hash(data, 16)


_RESULT_NEUTRAL_GENERATOR_KEYS = ("cache", "ray", "concurrency", "timeout", "max_retries")


def _unused_sections(kind: str) -> set[str]:
    """Config sections of other studies that a run of ``kind`` never reads."""
    study = STUDIES.meta(kind)
    used = {study["section"], *study["uses"]}
    return {STUDIES.meta(k)["section"] for k in experiment_kinds()} - used


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config; it must name its study (``kind:``)."""
    data, text = read_yaml_mapping(path, ConfigError)
    if "kind" not in data:
        kinds = " | ".join(experiment_kinds())
        what = "is empty" if not data else "has no 'kind:' key"
        raise ConfigError(
            f"{path}:1: the config {what}; an experiment config names its study first, "
            f"e.g. `kind: equilibrium` (one of {kinds}; see examples/*.yaml)"
        )
    return parse_config(data, source=Path(path), text=text)


#: Backends whose ``model_path`` is a local file or folder (vLLM's may be a hub name).
_LOCAL_MODEL_BACKENDS = ("llamacpp", "hf")


def check_inputs(
    config: ExperimentConfig, source: str | Path | None = None, text: str | None = None
) -> None:
    """Check the files ``config`` names before a run starts: the generator's model file and
    ``inheritance.real_data`` (read whole, as the run would). A problem is a
    :class:`ConfigError` naming the config file and line (``source``, ``text``: where the
    config came from), the key, and what is wrong with the file (its own file:line).
    """
    problems: list[tuple[list[str], str]] = []
    gen = config.generator
    local = BACKENDS.canonical(gen.backend) in _LOCAL_MODEL_BACKENDS
    if gen.model_path and local and not Path(gen.model_path).expanduser().exists():
        problems.append((["generator", "model_path"], f"no such file: {gen.model_path}"))
    study = STUDIES.meta(config.kind)
    real = config.inheritance.real_data
    if real and "inheritance" in (study["section"], *study["uses"]):
        try:
            read_corpus(real)
        except CorpusError as exc:
            problems.append((["inheritance", "real_data"], str(exc)))
    # the attribution study reads its own real_data (attribution section)
    if config.kind == "attribution" and config.attribution.real_data:
        try:
            read_corpus(config.attribution.real_data)
        except CorpusError as exc:
            problems.append((["attribution", "real_data"], str(exc)))
    if problems:
        lines = [f"{_where(source, text, loc)}: {msg}" for loc, msg in problems]
        raise ConfigError("\n".join(lines))


def _where(source: str | Path | None, text: str | None, loc: list[str]) -> str:
    """``file:line: dotted.key`` of a config key (``config`` when it came from no file)."""
    where = str(source) if source else "config"
    line = yaml_line(text, loc) if text else None
    return (f"{where}:{line}" if line else where) + f": {'.'.join(loc)}"


def parse_config(
    data: dict[str, Any], source: str | Path | None = None, text: str | None = None
) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            key = _where(source, text, loc) if loc else f"{source or 'config'}: <root>"
            lines.append(f"{key}: {msg} (got {err.get('input')!r})")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines)) from exc
