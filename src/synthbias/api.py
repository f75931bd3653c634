"""The public Python API; it mirrors the command line.

>>> import synthbias
>>> metrics = synthbias.measure(["The nurse said she was late."], axes=["gender"])
>>> result = synthbias.audit(df, text_field="sentence", reference="real.parquet",
...                          max={"rule.gender.stereotype_rate": 0.2}, out="audit/")
>>> result.passed, result.to_frame()
>>> results = synthbias.run("examples/equilibrium.yaml", out="runs/eq")
>>> synthbias.forecast("runs/eq", generations=1)["forecast"]["fixed_point"]
>>> synthbias.report("runs/eq")   # rebuild runs/eq/report.html

Inputs (``data`` / ``reference``) are a list of strings, a pandas DataFrame (``text_field`` names
the column) or Series, a Hugging Face ``datasets.Dataset``, or a path: JSONL, CSV, TSV, Parquet,
or a folder saved with ``Dataset.save_to_disk``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.config import ExperimentConfig, load_config, parse_config
from synthbias.core.progress import progress_factory
from synthbias.measure.api import measure_corpus
from synthbias.report.html import build_report
from synthbias.report.tracking import log_to_mlflow
from synthbias.studies.audit.runner import audit_corpus, load_texts
from synthbias.studies.dispatch import run_experiment
from synthbias.studies.forecast import forecast_run

if TYPE_CHECKING:
    import pandas as pd

    from synthbias.config import ExperimentConfig
    from synthbias.measure.result import MetricResult
    from synthbias.studies.audit.runner import AuditResult

Progress = bool | Callable[..., Any]


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

    src = load_texts(data, text_field=text_field)
    ref = (
        load_texts(reference, text_field=reference_text_field or text_field)
        if reference is not None
        else None
    )
    out = measure_corpus(
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
) -> AuditResult:
    """Audit a synthetic dataset: all measurement families that apply, the three misalignment
    factors against ``reference``, and a gate on ``max``/``min`` budgets
    (``{"rule.gender.stereotype_rate": 0.2}``).

    With ``out``, writes ``audit.json``, ``results.csv``, ``results.parquet``, ``samples.jsonl``
    and ``report.html`` there. ``result.passed`` is False when a budget is breached;
    ``result.failures`` explains each. Raises :class:`synthbias.studies.audit.runner.AuditError`
    for unreadable
    input or an unknown budget key.
    """

    result = audit_corpus(
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
        cache=Path(out) / "measure_cache" if out is not None else None,
    )
    if out is not None:
        result.write(out)
        if mlflow:
            log_to_mlflow(out, tracking_uri=mlflow_uri)
    elif mlflow:
        raise ValueError("mlflow=True needs an out= folder to log")
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
    its
    ``results.json`` dict; the folder also gets ``report.html`` and ``results.parquet``.
    """

    cfg = _config(config)
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

    return forecast_run(run_dir, generations=generations, n_resamples=n_resamples, write=write)


def report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """(Re)build the HTML report of a run or audit folder from its stored results."""

    return build_report(run_dir, out=out)
