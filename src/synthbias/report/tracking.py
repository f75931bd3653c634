"""Optional MLflow logging of a run or audit folder (``pip install 'synthbias[mlflow]'``).

Logs the flattened config as parameters, the metrics of the tidy results table (with the
generation as the step where there is one), the equilibrium fit or the gate verdict, and the
folder's report, results and plots as artifacts. The tracking URI is ``tracking_uri``, else
``MLFLOW_TRACKING_URI``, else MLflow's default (``./mlruns``).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthbias.measure.names import ALIASES
from synthbias.report.html import VALUE_COLUMNS, load_results, run_kind

ARTIFACTS = (
    "report.html",
    "results.json",
    "audit.json",
    "results.csv",
    "results.parquet",
    "forecast.json",
    "config.yaml",
)
_BAD_KEY = re.compile(r"[^\w\-./ ]")
MAX_PARAMS = 200


class TrackingError(RuntimeError):
    """MLflow is not installed or logging failed."""


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(
            "--mlflow needs the optional 'mlflow' package: pip install 'synthbias[mlflow]'"
        ) from exc
    return mlflow


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _key(s: str) -> str:
    return _BAD_KEY.sub("_", s)[:250]


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def collect_metrics(run_dir: Path, results: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(key, value, step) triples to log."""
    out: list[tuple[str, float, int]] = []
    eq = results.get("equilibrium") or {}
    for k in ("a", "c", "fixed_point", "stable_share"):
        if _finite(eq.get(k)) is not None:
            out.append((f"equilibrium.{k}", float(eq[k]), 0))
    ci = eq.get("ci") or {}
    for k in ("low", "high"):
        if _finite(ci.get(k)) is not None:
            out.append((f"equilibrium.ci_{k}", float(ci[k]), 0))
    gate = results.get("gate") or {}
    if "passed" in gate:
        out.append(("gate.passed", float(bool(gate["passed"])), 0))
    if results.get("kind") == "audit":
        for name, m in (results.get("metrics") or {}).items():
            if _finite(m.get("value")) is not None:
                out.append((_key(name), float(m["value"]), 0))
        return out
    table = None
    for name in ("results.parquet", "results.csv"):
        f = run_dir / name
        if f.is_file():
            import pandas as pd

            table = pd.read_parquet(f) if name.endswith("parquet") else pd.read_csv(f)
            break
    if table is None or not {"metric", "value"} <= set(table.columns):
        return out

    # a table written before the metric rename: old names as the new ones (where a table has
    # both, as old equilibrium tables do for the stereotype rate, the canonical rows stay)
    present = set(table["metric"])
    table = table[[ALIASES.get(n) not in present for n in table["metric"]]]
    table = table.assign(metric=[ALIASES.get(n, n) for n in table["metric"]])
    step_col = next((c for c in ("generation", "step", "epoch") if c in table.columns), None)
    ids = [c for c in table.columns if c not in VALUE_COLUMNS and c not in ("metric", step_col)]
    for row in table.to_dict("records"):
        v = _finite(row["value"])
        if v is None:
            continue
        suffix = "/".join(f"{c}_{row[c]}" for c in ids)
        step = int(row[step_col]) if step_col and _finite(row[step_col]) is not None else 0
        out.append((_key(f"{row['metric']}/{suffix}" if suffix else str(row["metric"])), v, step))
    return out


def log_to_mlflow(
    run_dir: str | Path,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
) -> str:
    """Log the folder to MLflow; returns the MLflow run id."""

    mlflow = _mlflow()
    run_dir = Path(run_dir)
    results, _ = load_results(run_dir)
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if uri.startswith("file:") or (uri and "://" not in uri):
        # Asked for a local file store explicitly: recent MLflow wants this opt-in for it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        return _log(mlflow, run_dir, results, tracking_uri, experiment, run_name)
    except TrackingError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow raises many types; report them alike
        raise TrackingError(f"MLflow logging failed: {type(exc).__name__}: {exc}") from exc


def _log(
    mlflow: Any,
    run_dir: Path,
    results: dict[str, Any],
    tracking_uri: str | None,
    experiment: str | None,
    run_name: str | None,
) -> str:

    kind = run_kind(results)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment or f"synthbias-{kind}")
    cfg = results.get("config") or {}
    params = {_key(k): str(v)[:500] for k, v in flatten(cfg).items()} | {
        _key(f"info.{k}"): str(v)[:500] for k, v in (results.get("info") or {}).items()
    }
    params["kind"] = kind
    if results.get("synthbias_version"):
        params["synthbias_version"] = str(results["synthbias_version"])
    with mlflow.start_run(run_name=run_name or cfg.get("name") or run_dir.name) as active:
        items = list(params.items())[:MAX_PARAMS]
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))
        mlflow.set_tags({"synthbias.kind": kind, "synthbias.run_dir": str(run_dir.resolve())})
        metrics = collect_metrics(run_dir, results)
        from mlflow.entities import Metric

        client = mlflow.tracking.MlflowClient()
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, s) for k, v, s in metrics]
        for i in range(0, len(batch), 900):
            client.log_batch(active.info.run_id, metrics=batch[i : i + 900])
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name))
        for png in sorted(run_dir.glob("*.png")):
            mlflow.log_artifact(str(png), artifact_path="plots")
        return active.info.run_id
