"""Task definitions as validated YAML: what a downstream task is, separate from how it is scored.

A task file says where its items come from (a built-in template ``builder`` or a user ``path``
such as a local copy of a benchmark), how each item becomes a prompt, how the model answers
(scored options for classification, sampled text plus a parser for generation) and which metrics
summarise the answers. Everything is checked when the file is loaded; an error names the file,
the line and the key (the same convention as :mod:`synthbias.config`: :mod:`synthbias.core.yaml` is
reused).
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from synthbias.core.yaml import read_yaml_mapping, yaml_line
from synthbias.tasks.benchmarks import LOADERS
from synthbias.tasks.builders import BUILDERS
from synthbias.tasks.common import TASKS_DIR, TEMPLATES_DIR, TaskError  # noqa: F401 (re-exported)
from synthbias.tasks.metrics import METRICS
from synthbias.tasks.parsers import PARSERS, PREPARERS

_AXES_DIR = Path(__file__).resolve().parents[1] / "lexicon" / "data" / "axes"

FILE_FORMATS = ("csv", "tsv", "jsonl", "json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Where items come from: exactly one of ``builder`` (+ ``params``) or ``path``.

    File form (a user's own data, e.g. a benchmark copy): ``fields`` renames file columns to the
    task's field names (``{task_field: column}``; other columns are kept as they are),
    ``extract`` splits a column by a regex with named groups into new fields (applied first, so
    ``fields`` may name them), ``label_map`` maps raw gold values to option labels,
    ``group_terms`` (``{term: group}``) gives each row the group of the longest term found (whole
    words, case-insensitive) in ``group_field`` when the file has no ``group`` column ("none"
    when no term is found), ``where`` keeps rows whose (mapped) field value is in a list, and
    ``stratify`` names the fields that ``Task.items`` balances over (default: label and group;
    fields made by the task's ``prepare`` step may be used).
    A relative ``path`` is resolved against the task file's folder, then the working directory.
    """

    builder: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    path: str | None = None
    format: Literal["csv", "tsv", "jsonl", "json"] | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    extract: dict[str, str] = Field(default_factory=dict)
    label_map: dict[str, str] = Field(default_factory=dict)
    group_terms: dict[str, str] = Field(default_factory=dict)
    group_field: str = "text"
    where: dict[str, list[str]] = Field(default_factory=dict)
    stratify: list[str] | None = None

    @field_validator("extract")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for col, pattern in v.items():
            try:
                rx = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"extract.{col} is not a regex: {exc}") from exc
            if not rx.groupindex:
                raise ValueError(f"extract.{col} needs named groups, e.g. (?P<field>...)")
        return v

    @field_validator("label_map", mode="before")
    @classmethod
    def _str_keys(cls, v: Any) -> Any:
        """YAML reads ``0: occupation`` with an int key; gold values are compared as text."""
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items()}
        return v

    @field_validator("where", mode="before")
    @classmethod
    def _where_lists(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: [str(x) for x in (x if isinstance(x, list) else [x])] for k, x in v.items()}
        return v


class BenchmarkSpec(_Strict):
    """Real items for the task when a benchmark root is given (``tasks.data_dir``).

    ``loader`` names a :mod:`synthbias.tasks.benchmarks` loader, ``params`` its options;
    ``prompt`` / ``chat`` / ``option_prompt`` replace the task's own when the benchmark's items
    need another framing (e.g. BOLD's sentence openings are completed as plain text, and its
    scored options follow the opening). Without a data dir the task keeps its template ``data``.
    """

    loader: str
    params: dict[str, Any] = Field(default_factory=dict)
    prompt: str | None = None
    chat: bool | None = None
    option_prompt: str | None = None

    @field_validator("prompt", "option_prompt")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            template_fields(v)
        return v


class SamplingSpec(_Strict):
    """Decoding settings of a generation task (``temperature: 0`` is greedy)."""

    max_tokens: int = Field(64, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    stop: list[str] = Field(default_factory=list)


class TaskSpec(_Strict):
    """One downstream task. See the packaged ``tasks/data/*.yaml`` for worked examples.

    ``options`` maps each label to the verbalizer scored as a continuation of the prompt
    (classification), or to the continuations of a secondary log-prob score of a generation
    task (e.g. P(" yes") for hiring), scored after ``option_prompt`` (default: ``prompt``).
    Prompts and verbalizers are ``str.format`` templates over the item's fields. ``chat: true``
    sends a generation prompt as one user turn through the model's chat template; option scoring
    never uses the chat template (log-probs are on plain text). ``calibrate: true`` applies
    contextual calibration (Zhao et al. 2021, "Calibrate before use"): each option's score on the
    prompt with every field set to "N/A" is subtracted, removing the model's label prior (needs
    verbalizers without fields). ``params`` tune the metrics
    (thresholds, gap aggregation); each metric documents the keys it reads.
    """

    name: str
    kind: Literal["classification", "generation"]
    bias_related: bool
    axis: str | None = None
    description: str = ""
    data: DataSpec
    benchmark: BenchmarkSpec | None = None
    prompt: str
    chat: bool = True
    options: dict[str, str] | None = None
    option_prompt: str | None = None
    normalize: Literal["none", "token", "char"] = "none"
    calibrate: bool = False
    sampling: SamplingSpec | None = None
    parser: str | None = None
    prepare: str | None = None
    metrics: list[str]
    primary_metric: str
    bias_metric: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _snake(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", v):
            raise ValueError(f"task name must be lower_snake_case, got {v!r}")
        return v

    @field_validator("axis")
    @classmethod
    def _known_axis(cls, v: str | None) -> str | None:
        if v is None:
            return v
        known = sorted(p.stem for p in _AXES_DIR.glob("*.yaml"))
        if v not in known:
            raise ValueError(f"unknown axis {v!r}; known axes: {', '.join(known)}")
        return v

    @field_validator("prompt", "option_prompt")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None:
            template_fields(v)
        return v

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("options need at least two labels")
        for label, verbalizer in v.items():
            if not re.fullmatch(r"[A-Za-z0-9_]+", label):
                raise ValueError(f"option label {label!r} must be letters, digits or _")
            if not verbalizer.strip():
                raise ValueError(f"option {label!r} has an empty verbalizer")
            template_fields(verbalizer)
        return v

    def fields_used(self) -> set[str]:
        """Item fields the prompt, option prompt and verbalizers refer to."""
        out = template_fields(self.prompt)
        if self.option_prompt:
            out |= template_fields(self.option_prompt)
        for v in (self.options or {}).values():
            out |= template_fields(v)
        return out


def template_fields(template: str) -> set[str]:
    """Top-level field names of a ``str.format`` template (raises ``ValueError`` if malformed)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {template!r}: {exc}") from exc
    out = set()
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name or name.isdigit():
            raise ValueError(f"template {template!r}: use named fields like {{text}}, not {{}}")
        out.add(re.split(r"[.\[]", name, maxsplit=1)[0])
    return out


def read_yaml(path: Path) -> tuple[dict[str, Any], str]:
    """A task file's mapping and text, with YAML syntax errors reported at their line."""
    return read_yaml_mapping(path, TaskError, "task file")


def _where(source: str, text: str | None, loc: list[str]) -> str:
    line = yaml_line(text, loc) if text else None
    return f"{source}:{line}" if line else source


def parse_spec(
    data: dict[str, Any], source: str | Path = "task", text: str | None = None
) -> TaskSpec:
    """Validate a task mapping; every problem is reported as ``file:line: key: message``."""
    source = str(source)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            key = ".".join(loc) or "<root>"
            lines.append(f"{_where(source, text, loc)}: {key}: {msg} (got {err.get('input')!r})")
        raise TaskError("invalid task:\n  " + "\n  ".join(lines)) from exc
    problems = check_spec(spec)
    if problems:
        lines = [f"{_where(source, text, loc)}: {'.'.join(loc)}: {msg}" for loc, msg in problems]
        raise TaskError("invalid task:\n  " + "\n  ".join(lines))
    return spec


def check_spec(spec: TaskSpec) -> list[tuple[list[str], str]]:
    """Cross-field checks (known builder, metric, parser; kind-specific keys)."""

    out: list[tuple[list[str], str]] = []
    d = spec.data
    if (d.builder is None) == (d.path is None):
        out.append((["data"], "give exactly one of 'builder' or 'path'"))
    if d.builder is not None:
        if d.builder not in BUILDERS:
            out.append((["data", "builder"], f"unknown builder; known: {', '.join(BUILDERS)}"))
        file_keys = [
            k
            for k in ("format", "fields", "extract", "label_map", "group_terms", "where")
            if getattr(d, k)
        ]
        if file_keys:
            out.append((["data", file_keys[0]], "file options need 'path', not 'builder'"))
        elif d.builder in BUILDERS:
            missing = spec.fields_used() - set(BUILDERS[d.builder].fields)
            if missing:
                out.append(
                    (
                        ["prompt"],
                        f"fields {sorted(missing)} are not made by builder {d.builder!r} "
                        f"(it makes {sorted(BUILDERS[d.builder].fields)})",
                    )
                )
    if d.path is not None and d.params:
        out.append((["data", "params"], "'params' belong to a builder, not to a file"))
    if spec.kind == "classification":
        if not spec.options:
            out.append((["options"], "a classification task needs options (label: verbalizer)"))
        for key in ("sampling", "parser", "option_prompt"):
            if getattr(spec, key) is not None:
                out.append(([key], "only for generation tasks"))
        if spec.benchmark is not None and spec.benchmark.option_prompt is not None:
            out.append((["benchmark", "option_prompt"], "only for generation tasks"))
    else:
        if spec.sampling is None:
            out.append((["sampling"], "a generation task needs sampling settings"))
        if spec.parser is None:
            out.append((["parser"], f"a generation task needs a parser: {', '.join(PARSERS)}"))
        elif spec.parser not in PARSERS:
            out.append((["parser"], f"unknown parser; known: {', '.join(PARSERS)}"))
    if spec.calibrate:
        if not spec.options:
            out.append((["calibrate"], "calibration needs options"))
        elif any(template_fields(v) for v in spec.options.values()):
            out.append((["calibrate"], "calibration needs verbalizers without {fields}"))
    if spec.benchmark is not None:
        if spec.benchmark.loader not in LOADERS:
            out.append((["benchmark", "loader"], f"unknown loader; known: {', '.join(LOADERS)}"))
    if spec.prepare is not None and spec.prepare not in PREPARERS:
        out.append((["prepare"], f"unknown preparer; known: {', '.join(PREPARERS)}"))
    for i, m in enumerate(spec.metrics):
        if m not in METRICS:
            out.append((["metrics", str(i)], f"unknown metric {m!r}; known: {', '.join(METRICS)}"))
            continue
        need = METRICS[m]
        if spec.kind not in need.kinds:
            out.append((["metrics", str(i)], f"metric {m!r} is for {'/'.join(need.kinds)} tasks"))
        if need.parser is not None and spec.parser != need.parser:
            out.append((["metrics", str(i)], f"metric {m!r} needs parser {need.parser!r}"))
        if need.options and not spec.options:
            out.append((["metrics", str(i)], f"metric {m!r} needs options to score"))
        if need.labels and spec.options and not set(need.labels) <= set(spec.options):
            out.append((["metrics", str(i)], f"metric {m!r} needs option labels {need.labels}"))
        if need.check is not None and spec.options:
            problem = need.check(spec)
            if problem:
                out.append((["options"], f"metric {m!r}: {problem}"))
    if spec.primary_metric not in spec.metrics:
        out.append((["primary_metric"], "must be one of the task's metrics"))
    if spec.bias_metric is not None and spec.bias_metric not in spec.metrics:
        out.append((["bias_metric"], "must be one of the task's metrics"))
    if spec.bias_related and spec.bias_metric is None:
        out.append((["bias_metric"], "a bias-related task needs a bias metric"))
    if not spec.bias_related and spec.bias_metric is not None:
        out.append((["bias_metric"], "a control task (bias_related: false) has no bias metric"))
    return out
