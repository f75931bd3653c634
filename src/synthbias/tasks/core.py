"""Tasks: items from a builder or a file, one batched model call, metrics with CIs.

Classification scores every option's verbalizer as a continuation of the prompt with
:func:`~synthbias.measure.scoring.conditional_logprobs` (all items and options in one call) and
takes the best-scoring one, under lm-evaluation-harness's prefix rule by default (no prefix
token before a context unless the tokenizer adds BOS; ``prefix_token="always"`` gives the earlier
rule; see :mod:`synthbias.measure.scoring`), so a task that mirrors a harness task (bbq_qa) scores
its options as the harness would. Generation sends all prompts in one ``backend.generate`` call with
the task's sampling settings (seeded; greedy by default) and parses the outputs; a generation
task with ``options`` also scores them by log-prob as a secondary signal that does not depend on
the model producing parseable text.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.generate.protocol import Backend, Prompt, SamplingParams
from synthbias.measure.result import MetricResult
from synthbias.measure.scoring import (
    DEFAULT_PREFIX_RULE,
    PrefixRule,
    check_prefix_rule,
    conditional_logprobs,
    stratified_sample,
)
from synthbias.stats.resampling import half_width, min_detectable_effect
from synthbias.tasks.benchmarks import LOADERS, copy_rows, load_benchmark
from synthbias.tasks.builders import BUILDERS, Row
from synthbias.tasks.metrics import METRICS, EvalContext
from synthbias.tasks.parsers import PARSERS, PREPARERS
from synthbias.tasks.spec import TASKS_DIR, DataSpec, TaskError, TaskSpec, parse_spec, read_yaml

ProgressFn = Callable[[int, int], None]


class TaskSizeError(TaskError):
    """A task size at which the headline metric is undefined; names the task and the minimum."""


@dataclass
class TaskItem:
    """One rendered item: its prompt, gold label (classification), group and raw fields."""

    id: str
    prompt: str
    fields: dict[str, Any]
    label: str | None = None
    group: str | None = None
    cluster: str | None = None
    stratum: str | None = None


@dataclass
class TaskResult:
    """A task's metrics (name -> MetricResult) and per-item records for the sample browser."""

    task: str
    kind: str
    bias_related: bool
    axis: str | None
    metrics: dict[str, MetricResult]
    records: list[dict[str, Any]]
    primary_metric: str
    bias_metric: str | None
    n_items: int
    seed: int
    seconds: float
    model: dict[str, Any] = field(default_factory=dict)
    #: evaluation details: calibration scores, misaligned option tokenisations, ...
    info: dict[str, Any] = field(default_factory=dict)
    #: where the items came from ("templates: ..." or "benchmark: ...")
    item_source: str = ""

    @property
    def primary(self) -> MetricResult:
        return self.metrics[self.primary_metric]

    @property
    def bias(self) -> MetricResult | None:
        return self.metrics[self.bias_metric] if self.bias_metric else None

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``{task, metric, value, ci_low, ci_high, n}``, one per metric.

        A gap over several axes also gets one row per axis, named ``metric[axis]``.
        """
        out = []
        for name, m in self.metrics.items():
            null = m.meta.get("null") or {}
            out.append(
                {
                    "task": self.task,
                    "metric": name,
                    "value": m.value,
                    "ci_low": m.ci.low if m.ci else math.nan,
                    "ci_high": m.ci.high if m.ci else math.nan,
                    "n": m.n,
                    "null": null.get("mean", math.nan),
                }
            )
            per_axis = m.meta.get("per_axis") or {}
            if len(per_axis) > 1:
                for axis, d in per_axis.items():
                    out.append(
                        {"task": self.task, "metric": f"{name}[{axis}]", "null": math.nan, **d}
                    )
        return out

    def to_dict(self, include_samples: bool = False) -> dict[str, Any]:
        return {
            "task": self.task,
            "kind": self.kind,
            "bias_related": self.bias_related,
            "axis": self.axis,
            "primary_metric": self.primary_metric,
            "bias_metric": self.bias_metric,
            "n_items": self.n_items,
            "seed": self.seed,
            "seconds": self.seconds,
            "model": self.model,
            "info": self.info,
            "item_source": self.item_source,
            "metrics": {k: m.to_dict(include_samples) for k, m in self.metrics.items()},
            "records": self.records,
        }


# ================================================================================ file data
_SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json"}


def _resolve_path(raw: str, base: Path | None) -> Path:
    p = Path(raw).expanduser()
    if p.is_absolute():
        cands = [p]
    else:
        cands = ([base / p] if base is not None else []) + [Path.cwd() / p]
    for c in cands:
        if c.is_file():
            return c
    raise TaskError(f"data.path: file not found: {raw} (looked at {', '.join(map(str, cands))})")


def _raw_records(path: Path, fmt: str) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as fh:
        if fmt in ("csv", "tsv"):
            return list(csv.DictReader(fh, delimiter="," if fmt == "csv" else "\t"))
        if fmt == "jsonl":
            return [json.loads(line) for line in fh if line.strip()]
        data = json.load(fh)
    if isinstance(data, dict):
        for v in data.values():  # {"data": [...]} or {"examples": [...]}
            if isinstance(v, list):
                data = v
                break
    if not isinstance(data, list):
        raise TaskError(f"{path}: JSON must hold a list of records")
    return data


def read_file_rows(
    spec: DataSpec,
    base: Path | None = None,
    prepare: Callable[[Row], Row] | None = None,
) -> list[Row]:
    """Rows of a user data file, mapped to task fields (see :class:`DataSpec`).

    ``prepare`` (the task's preparer) runs on each mapped row before ``where`` filters, so
    derived fields such as coreference's ``condition`` can be filtered on.
    """
    assert spec.path is not None
    path = _resolve_path(spec.path, base)
    fmt = spec.format or _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise TaskError(f"{path}: unknown file format; set data.format to csv/tsv/jsonl/json")
    extract = {c: re.compile(rx) for c, rx in spec.extract.items()}
    term_rx = None
    if spec.group_terms:
        terms = sorted(spec.group_terms, key=len, reverse=True)
        term_rx = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\b", re.I)
        term_group = {t.lower(): g for t, g in spec.group_terms.items()}
    rows: list[Row] = []
    unmapped: set[str] = set()
    for i, rec in enumerate(_raw_records(path, fmt)):
        row: Row = dict(rec)
        for column, rx in extract.items():
            m = rx.search(str(row.get(column, "")))
            if m is None:
                raise TaskError(f"{path}: record {i}: data.extract.{column} does not match")
            row.update(m.groupdict())
        for task_field, column in spec.fields.items():
            if column not in row:
                raise TaskError(
                    f"{path}: data.fields.{task_field}: no column {column!r} "
                    f"(columns: {', '.join(map(str, row))})"
                )
            row[task_field] = row[column]
        if spec.label_map and "label" in row:
            raw = str(row["label"])
            if raw not in spec.label_map:
                unmapped.add(raw)
                continue
            row["label"] = spec.label_map[raw]
        if not row.get("group") and term_rx is not None:
            m = term_rx.search(str(row.get(spec.group_field, "")))
            row["group"] = term_group[m.group(1).lower()] if m else "none"
        if prepare is not None:
            row = prepare(row)
        if any(str(row.get(k)) not in allowed for k, allowed in spec.where.items()):
            continue
        row["id"] = str(row.get("id") or f"{path.stem}:{i}")
        rows.append(row)
    if unmapped:
        raise TaskError(f"{path}: data.label_map has no entry for {sorted(unmapped)}")
    return rows


# ================================================================================ the task
class Task:
    """A loaded task: its spec, item pool and evaluation."""

    def __init__(
        self, spec: TaskSpec, source: Path | None = None, data_dir: str | Path | None = None
    ) -> None:
        self.spec = spec
        self.source = source
        #: benchmark root; used when the task has a ``benchmark`` section
        self.data_dir = Path(data_dir) if data_dir is not None else None

    @property
    def uses_benchmark(self) -> bool:
        return self.data_dir is not None and self.spec.benchmark is not None

    @property
    def item_source(self) -> str:
        """Where the items come from, for results and reports."""
        if self.uses_benchmark:
            assert self.spec.benchmark is not None
            b = self.spec.benchmark
            return f"{LOADERS[b.loader].describe(b.params)} from {self.data_dir}"
        d = self.spec.data
        if d.builder is not None:
            return f"templates: synthbias builder {d.builder}"
        return f"file: {d.path}"

    @property
    def prompt_template(self) -> str:
        b = self.spec.benchmark
        if self.uses_benchmark and b is not None and b.prompt is not None:
            return b.prompt
        return self.spec.prompt

    @property
    def chat(self) -> bool:
        b = self.spec.benchmark
        if self.uses_benchmark and b is not None and b.chat is not None:
            return b.chat
        return self.spec.chat

    def __repr__(self) -> str:
        return f"Task({self.spec.name!r}, kind={self.spec.kind!r}, source={str(self.source)!r})"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path = "<dict>") -> Task:
        return cls(parse_spec(data, source), Path(source) if Path(str(source)).is_file() else None)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def bias_related(self) -> bool:
        return self.spec.bias_related

    def _where(self) -> str:
        return str(self.source) if self.source else self.spec.name

    @functools.cached_property
    def pool(self) -> list[Row]:
        """Every item row the task's data defines, in a fixed order."""
        if self.uses_benchmark:
            assert self.spec.benchmark is not None and self.data_dir is not None
            b = self.spec.benchmark
            rows = copy_rows(load_benchmark(b.loader, self.data_dir, b.params))
            if not rows:
                raise TaskError(f"{self._where()}: benchmark {b.loader}: no items")
            return rows
        d = self.spec.data
        prep = None
        if self.spec.prepare:
            fn, params = PREPARERS[self.spec.prepare], self.spec.params

            def prep(row: Row) -> Row:
                return fn(row, params)

        if d.builder is not None:
            try:
                rows = BUILDERS[d.builder].fn(dict(d.params))
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, TaskError):
                    raise
                raise TaskError(f"{self._where()}: data.params: {exc!r}") from exc
        else:
            base = self.source.parent if self.source else None
            try:
                rows = read_file_rows(d, base, prep)
            except TaskError as exc:
                raise TaskError(f"{self._where()}: {exc}") from exc
        if d.builder is not None and prep is not None:
            rows = [prep(r) for r in rows]
        if d.path is not None:
            keys = d.stratify if d.stratify is not None else ["label", "group"]
            for r in rows:
                r.setdefault("stratum", "/".join(str(r.get(k)) for k in keys))
        if not rows:
            raise TaskError(f"{self._where()}: data: no items")
        return rows

    def render(self, template: str, row: Row, key: str = "prompt") -> str:
        try:
            return template.format_map(row)
        except (KeyError, AttributeError, IndexError) as exc:
            fields = ", ".join(k for k in row if k not in ("stratum", "cluster"))
            raise TaskError(
                f"{self._where()}: {key}: item {row.get('id')!r} has no field {exc} "
                f"(fields: {fields})"
            ) from None

    def _item(self, row: Row) -> TaskItem:
        label = row.get("label")
        if self.spec.kind == "classification":
            assert self.spec.options is not None
            if label is None or str(label) not in self.spec.options:
                raise TaskError(
                    f"{self._where()}: item {row.get('id')!r}: gold label {label!r} is not an "
                    f"option ({', '.join(self.spec.options)}); map it with data.label_map"
                )
        return TaskItem(
            id=str(row["id"]),
            prompt=self.render(self.prompt_template, row),
            fields={k: v for k, v in row.items() if k not in ("stratum", "cluster")},
            label=None if label is None else str(label),
            group=None if row.get("group") is None else str(row["group"]),
            cluster=None if row.get("cluster") is None else str(row["cluster"]),
            stratum=None if row.get("stratum") is None else str(row["stratum"]),
        )

    def _cluster_strata(self) -> tuple[int, int, int, bool]:
        """(pool size, number of clusters, number of strata, clustered) of the pool."""
        pool = self.pool
        clustered = any(r.get("cluster") is not None for r in pool)
        if clustered:
            first: dict[str, str] = {}
            for i, r in enumerate(pool):
                first.setdefault(str(r.get("cluster") or f"#{i}"), str(r.get("stratum")))
            return len(pool), len(first), len(set(first.values())), True
        strata = {str(r.get("stratum")) for r in pool}
        return len(pool), len(pool), len(strata), False

    def min_size(self) -> int:
        """The smallest ``n`` at which every stratum is complete and can be resampled.

        Clustered (counterfactual) tasks need two whole clusters per stratum (e.g. two
        templates with every identity for each toxicity label; two profiles per axis: one
        makes the metric defined, the second gives its bootstrap something to vary); other
        tasks two items per stratum (a group mean and its spread).
        """
        n_pool, n_clusters, n_strata, clustered = self._cluster_strata()
        if clustered:
            # items() draws ceil(n * K / N) clusters with equal quotas over strata
            need = min(n_clusters, 2 * n_strata)
            return min(n_pool, math.floor((need - 1) * n_pool / n_clusters) + 1)
        return min(n_pool, 2 * n_strata)

    def check_size(self, n: int | None) -> None:
        """Raise :class:`TaskSizeError` when ``n`` items leave a stratum incomplete."""
        if n is None:
            return
        need = self.min_size()
        if n < need:
            _, _, n_strata, clustered = self._cluster_strata()
            unit = "two whole counterfactual clusters" if clustered else "two items"
            metric = self.spec.bias_metric or self.spec.primary_metric
            raise TaskSizeError(
                f"task {self.name}: {n} items is too few for {metric} "
                f"({self.item_source}): it needs {unit} in each of its {n_strata} strata, i.e. at "
                f"least {need} items (set tasks.sizes.{self.name}: {need} or more)"
            )

    def items(self, n: int | None = None, seed: int = 0) -> list[TaskItem]:
        """A seeded sample of ``n`` items balanced over strata (all items when ``n`` is None).

        Strata get equal quotas (:func:`stratified_sample`, ``equal``). Counterfactual tasks
        sample whole clusters (a sentence with all its group variants), so ``n`` is rounded to
        whole clusters: ``ceil(n / mean cluster size)`` of them.
        """
        if n is not None and n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        pool = self.pool
        if n is None or n >= len(pool):
            chosen = list(range(len(pool)))
        elif any(r.get("cluster") is not None for r in pool):
            members: dict[str, list[int]] = {}
            for i, r in enumerate(pool):
                members.setdefault(str(r.get("cluster") or f"#{i}"), []).append(i)
            keys = list(members)
            strata = [str(pool[members[k][0]].get("stratum")) for k in keys]
            k = max(1, math.ceil(n * len(keys) / len(pool) - 1e-9))
            picked = stratified_sample(strata, k, seed, "equal")
            chosen = sorted(i for j in picked for i in members[keys[j]])
        else:
            chosen = stratified_sample([str(r.get("stratum")) for r in pool], n, seed, "equal")
        return [self._item(pool[i]) for i in chosen]

    # ------------------------------------------------------------------------------ evaluate
    @property
    def option_prompt(self) -> str | None:
        """The context the options are scored after (generation tasks; ``None``: the prompt)."""
        b = self.spec.benchmark
        if self.uses_benchmark and b is not None and b.option_prompt is not None:
            return b.option_prompt
        return self.spec.option_prompt

    def _option_context(self, row: dict[str, Any]) -> str:
        template = self.option_prompt
        if self.spec.kind == "generation" and template:
            own = template is self.spec.option_prompt
            return self.render(template, row, "option_prompt" if own else "benchmark.option_prompt")
        return self.render(self.prompt_template, row)

    def _option_pairs(
        self, items: list[TaskItem], calibration: bool = False
    ) -> list[tuple[str, str]]:
        """(context, continuation) for every item x option, plus the content-free row."""
        assert self.spec.options is not None
        rows: list[dict[str, Any]] = [it.fields for it in items]
        if calibration:
            rows.append(_ContentFree())
        pairs = []
        for row in rows:
            context = self._option_context(row)
            for label, verbalizer in self.spec.options.items():
                cont = self.render(verbalizer, row, f"options.{label}")
                if not cont[:1].isspace() and not context[-1:].isspace():
                    cont = " " + cont
                pairs.append((context, cont))
        return pairs

    def evaluate(
        self,
        backend: Backend,
        n: int | None = None,
        seed: int = 0,
        n_resamples: int = 1000,
        progress: ProgressFn | None = None,
        prefix_token: PrefixRule = DEFAULT_PREFIX_RULE,
    ) -> TaskResult:
        """Run the model on ``items(n, seed)`` and compute every metric of the task.

        ``prefix_token`` is the prefix rule of option scoring (default the harness's).
        """
        t0 = time.perf_counter()
        rule = check_prefix_rule(prefix_token)
        spec = self.spec
        self.check_size(n)
        items = self.items(n, seed)
        ctx = EvalContext(spec=spec, items=items, seed=seed, n_resamples=n_resamples)
        info: dict[str, Any] = {}
        if spec.options:
            ctx.labels = list(spec.options)
            pairs = self._option_pairs(items, calibration=spec.calibrate)
            scored = conditional_logprobs(backend, pairs, progress=progress, prefix_token=rule)
            scores = np.array([s.normalized(spec.normalize) for s in scored]).reshape(
                -1, len(ctx.labels)
            )
            if spec.calibrate:
                info["calibration"] = dict(zip(ctx.labels, scores[-1].tolist(), strict=True))
                scores = scores[:-1] - scores[-1]
            ctx.scores = scores
            info["n_misaligned"] = sum(not s.aligned for s in scored)
            info["prefix_token"] = rule
        if spec.kind == "classification":
            assert ctx.scores is not None
            ctx.pred = [ctx.labels[j] for j in np.argmax(ctx.scores, axis=1)]
        else:
            assert spec.sampling is not None and spec.parser is not None
            s = spec.sampling
            params = SamplingParams(
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                top_k=s.top_k,
                seed=seed,
                stop=tuple(s.stop),
            )
            prompts: list[Prompt] = [
                [{"role": "user", "content": it.prompt}] if self.chat else it.prompt for it in items
            ]
            if progress is not None:
                progress(0, len(prompts))
            outs = backend.generate(prompts, params)
            if progress is not None:
                progress(len(prompts), len(prompts))
            ctx.outputs = [o.text for o in outs]
            parse = PARSERS[spec.parser]
            ctx.parsed = [
                parse(o, it, spec.params) for o, it in zip(ctx.outputs, items, strict=True)
            ]
        metrics: dict[str, MetricResult] = {}
        for name in spec.metrics:
            res = METRICS[name].fn(ctx)
            res.name = name
            res.meta.setdefault("task", spec.name)
            metrics[name] = res
        info["headline"] = headline_info(metrics, spec.bias_metric or spec.primary_metric)
        rate = parse_rate(metrics)
        if rate is not None:
            info["parse_rate"] = rate
        return TaskResult(
            task=spec.name,
            kind=spec.kind,
            bias_related=spec.bias_related,
            axis=spec.axis,
            metrics=metrics,
            records=_records(ctx),
            primary_metric=spec.primary_metric,
            bias_metric=spec.bias_metric,
            n_items=len(items),
            seed=seed,
            seconds=round(time.perf_counter() - t0, 3),
            model={
                "runtime": getattr(backend, "name", type(backend).__name__),
                "model_id": getattr(backend, "model_id", None),
            },
            info=info,
            item_source=self.item_source,
        )


#: metrics that say how often a generation task's free text could be used: (name, True when the
#: metric is the unusable share). gendered_rate: pronoun continuations naming he or she.
PARSE_METRICS = (("unparseable_rate", True), ("gendered_rate", False))


def parse_rate(metrics: dict[str, Any]) -> float | None:
    """Share of a generation task's answers its free-text metrics can use, or ``None``.

    ``metrics`` maps names to :class:`MetricResult` or to plain values."""
    for name, inverse in PARSE_METRICS:
        if name in metrics:
            m = metrics[name]
            v = float(m.value if isinstance(m, MetricResult) else m)
            return 1.0 - v if inverse else v
    return None


def headline_info(metrics: dict[str, MetricResult], name: str) -> dict[str, Any]:
    """The headline metric's value, CI half-width, smallest detectable effect and null.

    ``form`` says whether the headline is computed from option log-probabilities or from
    answers (argmax choices / parsed text); ``degenerate`` is true when the bootstrap CI has zero
    width (every resample gives the same value, e.g. a model answering every item alike), which
    is not an informative interval."""
    m = metrics[name]
    hw = half_width(m.ci.low, m.ci.high) if m.ci else math.nan
    null = m.meta.get("null") or {}
    return {
        "metric": name,
        "form": METRICS[name].form if name in METRICS else "answers",
        "degenerate": bool(m.ci is not None and math.isfinite(hw) and hw <= 1e-12),
        "value": m.value,
        "ci_low": m.ci.low if m.ci else math.nan,
        "ci_high": m.ci.high if m.ci else math.nan,
        "half_width": hw,
        "min_detectable_effect": min_detectable_effect(hw),
        "null": null.get("mean", math.nan),
        "null_q95": null.get("q95", math.nan),
        "n": m.n,
    }


class _ContentFree(dict):  # type: ignore[type-arg]
    """Item fields for contextual calibration: every field reads "N/A"."""

    def __missing__(self, key: str) -> str:
        return "N/A"


def _jsonable(x: Any) -> Any:
    if isinstance(x, tuple):
        return list(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def _records(ctx: EvalContext) -> list[dict[str, Any]]:
    out = []
    for i, it in enumerate(ctx.items):
        rec: dict[str, Any] = {"id": it.id, "group": it.group, "prompt": it.prompt}
        if ctx.pred is not None:
            rec["choice"] = ctx.pred[i]
            rec["gold"] = it.label
            rec["correct"] = ctx.pred[i] == it.label
        if ctx.outputs is not None:
            rec["output"] = ctx.outputs[i]
            rec["parsed"] = _jsonable(ctx.parsed[i]) if ctx.parsed is not None else None
            rec["gold"] = it.fields.get("gold", it.label)
        if ctx.scores is not None:
            rec["option_scores"] = {
                lab: float(v) for lab, v in zip(ctx.labels, ctx.scores[i], strict=True)
            }
        out.append(rec)
    return out


# ================================================================================ registry
def list_tasks() -> list[str]:
    """Names of the packaged tasks (``tasks/data/*.yaml``)."""
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def task_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        return p
    cand = TASKS_DIR / f"{name_or_path}.yaml"
    if not cand.is_file():
        raise TaskError(f"unknown task {str(name_or_path)!r}; packaged: {', '.join(list_tasks())}")
    return cand


def load_task(
    name_or_path: str | Path,
    overrides: dict[str, Any] | None = None,
    data_dir: str | Path | None = None,
) -> Task:
    """A packaged task by name, or a task YAML by path.

    ``overrides`` replaces top-level keys before validation (``params`` is merged), e.g.
    ``load_task("coreference", {"data": {"path": "my_winogender.tsv", ...}})`` to run a task on
    one's own copy of a benchmark. ``data_dir`` (a benchmark root such as
    ``../shared/benchmarks``) makes a task with a ``benchmark`` section draw its real items
    from there instead of the templates.
    """
    path = task_path(name_or_path)
    data, text = read_yaml(path)
    source: str = str(path)
    if overrides:
        data = dict(data)
        for k, v in overrides.items():
            if k == "params" and isinstance(v, dict):
                data["params"] = {**(data.get("params") or {}), **v}
            else:
                data[k] = v
        source += " (with overrides)"
        text = ""
    return Task(parse_spec(data, source, text or None), path, data_dir)


def evaluate_tasks(
    tasks: Sequence[Task | str | Path],
    backend: Backend,
    n: int | None = None,
    seed: int = 0,
    n_resamples: int = 1000,
    progress: Callable[[str, int, int], None] | None = None,
    data_dir: str | Path | None = None,
) -> list[TaskResult]:
    """Evaluate several tasks on one backend; ``progress(task, done, total)`` if given."""
    out = []
    for t in tasks:
        task = t if isinstance(t, Task) else load_task(t, data_dir=data_dir)
        cb = None
        if progress is not None:
            name = task.name

            def cb(done: int, total: int, name: str = name) -> None:
                progress(name, done, total)

        out.append(task.evaluate(backend, n=n, seed=seed, n_resamples=n_resamples, progress=cb))
    return out
