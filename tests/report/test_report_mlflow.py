"""Optional MLflow logging (`--mlflow`) into a local file store. Skips when mlflow is not
installed (it is an optional extra: pip install 'synthbias[mlflow]')."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import small_run
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.report.tracking import TrackingError, collect_metrics, log_to_mlflow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory.mktemp("eq-mlflow"), generations=1)


def test_metrics_to_log(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    metrics = collect_metrics(run_dir, results)
    keys = {k for k, _, _ in metrics}
    assert "equilibrium.fixed_point" in keys
    assert "rule.gender.stereotype_rate/level_0.1" in keys
    steps = {s for k, _, s in metrics if k == "rule.gender.stereotype_rate/level_0.1"}
    assert steps == {0, 1}  # the generation is the step


def test_missing_mlflow_is_a_clear_error(run_dir: Path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(TrackingError, match=r"synthbias\[mlflow\]"):
        log_to_mlflow(run_dir)


def test_log_run_and_audit_to_file_store(run_dir: Path, tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    uri = (tmp_path / "mlruns").as_uri()
    run_id = log_to_mlflow(run_dir, tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    run = mlflow.get_run(run_id)
    assert run.data.params["kind"] == "equilibrium"
    assert run.data.params["study.n"] == "16"
    assert "equilibrium.fixed_point" in run.data.metrics
    client = mlflow.tracking.MlflowClient(uri)
    history = client.get_metric_history(run_id, "rule.gender.stereotype_rate/level_0.1")
    assert sorted(m.step for m in history) == [0, 1]
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.html", "results.json", "results.parquet", "plots"} <= arts

    src = tmp_path / "s.jsonl"
    src.write_text('{"text": "The nurse said she was late."}\n{"text": "He fixed it."}\n')
    res = CliRunner().invoke(
        app,
        [
            "audit",
            str(src),
            "--no-embedding",
            "--n-resamples",
            "60",
            "--quiet",
            "--out",
            str(tmp_path / "aud"),
            "--mlflow",
            "--mlflow-uri",
            uri,
            "--max",
            "rule.gender.stereotype_rate=1",
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "logged to MLflow run" in res.output
    exp = client.get_experiment_by_name("synthbias-audit")
    runs = client.search_runs([exp.experiment_id])
    assert runs and runs[0].data.metrics["gate.passed"] == 1.0
    assert "rule.gender.stereotype_rate" in runs[0].data.metrics


def test_run_command_logs_to_mlflow(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    from synthbias.config import parse_config

    cfg = parse_config(
        {
            "generator": {"backend": "fake"},
            "study": {
                # three levels: the fit needs three transitions, and with referents attached to
                # the prompt occupation the fake backend pairs few texts (none of one code)
                "levels": [0.1, 0.3, 0.6],
                "generations": 1,
                "n": 12,
                "fit_metric": "rule.gender.conditional_stereotype_share",
            },
            "measure": {"embedding": False, "n_resamples": 60},
        }
    )
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    uri = (tmp_path / "mlruns").as_uri()
    res = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp_path / "c.yaml"),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
            "--mlflow",
            "--mlflow-uri",
            uri,
        ],
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    client = mlflow.tracking.MlflowClient(uri)
    exp = client.get_experiment_by_name("synthbias-equilibrium")
    (run,) = client.search_runs([exp.experiment_id])
    assert "equilibrium.c" in run.data.metrics
