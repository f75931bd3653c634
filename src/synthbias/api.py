"""The public Python API; it mirrors the command line.

>>> import synthbias
>>> metrics = synthbias.measure(["The nurse said she was late."], axes=["gender"])
>>> result = synthbias.audit(df, text_field="sentence", reference="real.parquet",
...                          max={"rule.gender.stereotype_rate": 0.2}, out="audit/")
>>> result.passed, result.to_frame()
>>> results = synthbias.run("examples/equilibrium.yaml", out="runs/eq")
>>> synthbias.forecast("runs/eq", generations=1)["forecast"]["fixed_point"]
>>> synthbias.report("runs/eq")   # rebuild runs/eq/report.html
>>> recs = synthbias.api.generate(hf_dataset, backend="fake", n=20, out="gen1.jsonl")

Inputs (``data`` / ``reference``) are a list of strings, a pandas DataFrame (``text_field`` names
the column) or Series, a Hugging Face ``datasets.Dataset``, or a path: JSONL, CSV, TSV, Parquet,
or a folder saved with ``Dataset.save_to_disk``. A corpus synthbias did not write is as good as
one it did: only a text column is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.config import ExperimentConfig, check_inputs, load_config, parse_config
from synthbias.core.progress import progress_factory
from synthbias.core.records import Record, read_corpus, write_jsonl
from synthbias.core.registry import STUDIES, Lazy
from synthbias.core.store import check_output_folder
from synthbias.generate import load_backend
from synthbias.generate.prompts import prompt_templates, uses_occupation
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.report.html import build_report
from synthbias.report.tracking import log_to_mlflow
from synthbias.studies.dispatch import run_experiment
from synthbias.studies.equilibrium.generation import next_generation
from synthbias.studies.plan import PlanError, config_advice, plan_rows, read_results

if TYPE_CHECKING:
    import pandas as pd

    from synthbias.config import ExperimentConfig
    from synthbias.measure.result import MetricResult
    from synthbias.studies.audit.runner import AuditResult

Progress = bool | Callable[..., Any]

#: The measurement, audit and forecast code load on first use, so that importing the API (or the
#: CLI, which imports it) stays light: they import SciPy, the misalignment factors and the
#: studies' code.
measure_api = Lazy("synthbias.measure.api")
audit_runner = Lazy("synthbias.studies.audit.runner")
forecasting = Lazy("synthbias.studies.forecast")


def measure(
    data: Any,
    reference: Any = None,
    axes: Sequence[str] = ("gender",),
    families: Sequence[str] | None = None,
    text_field: str = "text",
    reference_text_field: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    as_frame: bool = False,
) -> dict[str, MetricResult] | pd.DataFrame:
    """Measure bias of ``data`` with every metric family that applies.

    Returns ``{metric name: MetricResult}`` (value, bootstrap CI, per-group, per-sample), or with
    ``as_frame=True`` a tidy DataFrame (one row per metric). With a ``reference`` the
    misalignment factors are measured too. See :func:`synthbias.measure.api.measure_corpus`.
    """

    src = audit_runner.load_texts(data, text_field=text_field)
    ref = (
        audit_runner.load_texts(reference, text_field=reference_text_field or text_field)
        if reference is not None
        else None
    )
    out = measure_api.measure_corpus(
        src.texts,
        axes=axes,
        reference=ref.texts if ref else None,
        families=families,
        n_resamples=n_resamples,
        seed=seed,
    )
    return metrics_frame(out) if as_frame else out


def metrics_frame(metrics: Mapping[str, MetricResult]) -> pd.DataFrame:
    """Tidy DataFrame of metric results: metric, value, ci_low, ci_high, n, per-group values."""
    import math

    import pandas as pd

    rows = []
    for name, m in metrics.items():
        row: dict[str, Any] = {
            "metric": name,
            "value": m.value,
            "ci_low": m.ci.low if m.ci else math.nan,
            "ci_high": m.ci.high if m.ci else math.nan,
            "n": m.n,
        }
        row.update({f"group:{g}": v for g, v in m.per_group.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def audit(
    data: Any,
    reference: Any = None,
    axes: Sequence[str] = ("gender",),
    families: Sequence[str] | None = None,
    max: Mapping[str, float] | Sequence[str] | None = None,  # noqa: A002 - mirrors --max
    min: Mapping[str, float] | Sequence[str] | None = None,  # noqa: A002 - mirrors --min
    out: str | Path | None = None,
    text_field: str = "text",
    reference_text_field: str | None = None,
    split: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    progress: Progress = False,
    mlflow: bool = False,
    mlflow_uri: str | None = None,
    overwrite: bool = False,
) -> AuditResult:
    """Audit a synthetic dataset: all measurement families that apply, the three misalignment
    factors against ``reference``, and a gate on ``max``/``min`` budgets
    (``{"rule.gender.stereotype_rate": 0.2}``).

    With ``out``, writes ``audit.json``, ``results.csv``, ``results.parquet``, ``samples.jsonl``
    and ``report.html`` there; a folder holding another kind of run is refused, and one holding
    an audit of other texts unless ``overwrite``. ``result.passed`` is False when a budget is
    breached; ``result.failures`` explains each. Raises
    :class:`synthbias.studies.audit.runner.AuditError` for unreadable input, an unknown budget
    key or a refused folder, before anything is measured.
    """
    if mlflow and out is None:
        raise ValueError("mlflow=True needs an out= folder to log")

    result = audit_runner.audit_corpus(
        data,
        reference=reference,
        axes=axes,
        families=families,
        max_budgets=max,
        min_budgets=min,
        text_field=text_field,
        reference_text_field=reference_text_field,
        split=split,
        n_resamples=n_resamples,
        seed=seed,
        progress=progress_factory(progress),
        out=out,
        overwrite=overwrite,
    )
    if out is not None:
        result.write(out)
        if mlflow:
            log_to_mlflow(out, tracking_uri=mlflow_uri)
    return result


def _config(config: ExperimentConfig | Mapping[str, Any] | str | Path) -> ExperimentConfig:
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config), source="python")
    return load_config(config)


def run(
    config: ExperimentConfig | Mapping[str, Any] | str | Path,
    out: str | Path = "runs/run",
    resume: bool = True,
    progress: Progress = False,
    mlflow: bool = False,
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Run an experiment (a config object, a dict, or a YAML path) into ``out``.

    Dispatches on the config's kind (:func:`synthbias.studies.dispatch.run_experiment`) and returns
    its ``results.json`` dict; the folder also gets ``report.html`` and ``results.parquet``.
    Before anything runs, ``out`` is refused when it holds another kind of run, and the files
    the config names (model, real data) are read (:func:`synthbias.config.check_inputs`).
    """

    cfg = _config(config)
    check_output_folder(out, cfg.kind)
    source = Path(config) if isinstance(config, str | Path) else None
    check_inputs(cfg, source, source.read_text(encoding="utf-8") if source else None)
    results = run_experiment(cfg, out, progress=progress_factory(progress), resume=resume)
    if mlflow:
        log_to_mlflow(out, tracking_uri=mlflow_uri)
    return results


def forecast(
    run_dir: str | Path,
    generations: int = 2,
    n_resamples: int | None = None,
    write: bool = True,
) -> dict[str, Any]:
    """Forecast the equilibrium of a recursive run from its first ``generations`` generations
    (see :func:`synthbias.studies.forecast.forecast_run`)."""

    return forecasting.forecast_run(
        run_dir, generations=generations, n_resamples=n_resamples, write=write
    )


def report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """(Re)build the HTML report of a run or audit folder from its stored results."""

    STUDIES.load()  # every study's report pages (a run folder may be of any kind)
    return build_report(run_dir, out=out)


def plan(
    run_dir: str | Path,
    effect: float | None = None,
    power: float = 0.8,
    alpha: float = 0.05,
) -> list[dict[str, Any]]:
    """Per headline cell of a pilot run (its folder or ``results.json``): the between-replicate
    SD (and the within-replicate item SD where the run stores item-level figures), the pilot's
    MDE, and the replicates and items per replicate that detect ``effect`` at ``power``
    (see :mod:`synthbias.studies.plan`). Without ``effect`` the paper's effects are used where
    the study has them (equilibrium), else :class:`~synthbias.studies.plan.PlanError`. A
    config file (no run yet) raises it too, naming the pilot command.
    """
    path = Path(run_dir)
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        advice = config_advice(load_config(path).model_dump(mode="json"), str(path), power, alpha)
        raise PlanError(
            f"{path} is a config: a plan needs a pilot run's variances; run "
            + " then ".join(advice["commands"])
        )
    return plan_rows(read_results(path), effect=effect, power=power, alpha=alpha)


# --------------------------------------------------------------------------- generate


def seed_records(data: Any, text_field: str = "text", split: str | None = None) -> list[Record]:
    """A seed corpus as records, from anything :func:`measure` reads.

    A corpus file keeps its provenance fields where it has them (a synthbias corpus: its
    generation, level, ids); any other input is real text at generation 0. Raises
    :class:`~synthbias.core.records.CorpusError` or
    :class:`~synthbias.studies.audit.runner.AuditError` (both ``ValueError``) naming the problem.
    """
    if isinstance(data, str | Path) and not Path(data).is_dir():
        return read_corpus(data, text_field=text_field)
    src = audit_runner.load_texts(data, text_field=text_field, split=split)
    if not src.texts:
        raise ValueError(f"{src.description}: no texts")
    return [Record(id=i, text=t, source="real") for i, t in zip(src.ids, src.texts, strict=True)]


def prompt_template(template: str | None) -> dict[str, Any]:
    """The prompt template of a generation from a corpus: a name of
    ``generate/templates/prompts.yaml`` (``None``: ``self_instruct``), or a text with an
    ``{examples}`` slot (sent as the user message; ``{next}`` is the number of the new text).

    Raises ``ValueError`` saying what is accepted, for anything else or a template that names an
    occupation per text (only the equilibrium study draws those).
    """
    named = prompt_templates()
    if template is None or template in named:
        chosen = named[template or "self_instruct"]
    elif "{examples}" in template:
        chosen = {"user": template}
    else:
        raise ValueError(
            f"prompt template {template!r}: give a template name ({', '.join(named)}) or a text "
            "with an {examples} slot where the few-shot examples go"
        )
    if uses_occupation(chosen):
        raise ValueError(
            f"prompt template {template!r} names an occupation for each text, which only the "
            "equilibrium study draws; choose another template"
        )
    return chosen


def generate(
    data: Any = None,
    prompts: Sequence[str] | None = None,
    out: str | Path | None = None,
    n: int = 10,
    k_shots: int = 3,
    template: str | None = None,
    text_field: str = "text",
    split: str | None = None,
    backend: str | Backend = "llamacpp",
    seed: int = 0,
    max_tokens: int = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    progress: Progress = False,
    **backend_kwargs: Any,
) -> list[Record]:
    """Generate texts with a backend, as ``synthbias generate`` does.

    With ``data`` (a seed corpus: anything :func:`measure` reads, a ``datasets.Dataset``
    included; see :func:`seed_records`), ``n`` new texts are written self-instruct style, each
    from ``k_shots`` examples of it, with ``template`` (:func:`prompt_template`): one new
    generation. With ``prompts``, each prompt is completed ``n`` times. ``backend`` is a
    registered name (built with ``backend_kwargs``, e.g. ``base_url=``, ``model_path=``) or a
    backend object. The records are returned, and written to ``out`` (JSONL) when given.
    Everything is checked before the backend is built.
    """
    if (data is None) == (not prompts):
        raise ValueError("give either data= (a seed corpus) or prompts=, not both or neither")
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    if out is not None and Path(out).is_dir():
        raise ValueError(f"out={out} is a folder; give a .jsonl file name")
    previous = seed_records(data, text_field, split) if data is not None else []
    chosen = prompt_template(template) if data is not None else None
    be = load_backend(backend, **backend_kwargs) if isinstance(backend, str) else backend
    bar_factory = progress_factory(progress)
    if chosen is not None:
        bar = bar_factory("generating", n) if bar_factory else None
        recs = generate_from_corpus(
            previous,
            be,
            params,
            n=n,
            k_shots=k_shots,
            template=chosen,
            seed=seed,
            on_progress=bar.update if bar else None,
        )
        if bar:
            bar.close()
    else:
        recs = generate_from_prompts(list(prompts or []), be, params, n=n, seed=seed)
    if out is not None:
        write_jsonl(recs, out)
    return recs


def generate_from_corpus(
    previous: Sequence[Record],
    backend: Backend,
    params: SamplingParams,
    n: int,
    k_shots: int = 3,
    template: Mapping[str, Any] | None = None,
    seed: int = 0,
    on_progress: Callable[[int], None] | None = None,
) -> list[Record]:
    """One new generation (the corpus's latest generation + 1) from ``previous``."""
    generation = max(r.generation for r in previous) + 1
    return next_generation(
        previous,
        backend,
        params,
        n=n,
        generation=generation,
        k_shots=k_shots,
        prompt=dict(template) if template is not None else "self_instruct",
        seed=seed,
        on_progress=on_progress,
    )


def generate_from_prompts(
    prompts: Sequence[str], backend: Backend, params: SamplingParams, n: int, seed: int = 0
) -> list[Record]:
    """Each prompt completed ``n`` times, as user messages; records ``gen-00000``, ..."""
    repeated = [p for p in prompts for _ in range(n)]
    outs = backend.generate([[{"role": "user", "content": p}] for p in repeated], params)
    return [
        Record(
            id=f"gen-{i:05d}",
            text=o.text.strip(),
            source="synthetic",
            generation=1,
            seed=seed,
            meta={"prompt": p, "finish_reason": o.finish_reason},
        )
        for i, (p, o) in enumerate(zip(repeated, outs, strict=True))
    ]
