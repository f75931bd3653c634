"""The Python API mirrors the CLI: synthbias.measure / audit / run / forecast / report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import synthbias
from synthbias.generate.fake import FAKE_SENTENCES

TEXTS = list(FAKE_SENTENCES[:10])
RULE = dict(families=["rule", "lexical"], n_resamples=60)


def test_import_is_light() -> None:
    code = (
        "import sys, synthbias; heavy = [m for m in ('numpy', 'pandas', 'torch', 'matplotlib') "
        "if m in sys.modules]; print(heavy); assert callable(synthbias.measure)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_callable_modules_keep_working_as_modules() -> None:
    import synthbias.measure.api  # noqa: F401 - the subpackage is loaded first
    import synthbias.report.html  # noqa: F401 - a submodule is an attribute once imported
    from synthbias.measure import MetricResult

    assert callable(synthbias.measure) and callable(synthbias.audit)
    assert synthbias.measure.api.measure_corpus is not None
    assert synthbias.studies.audit.runner.AuditError and synthbias.report.html.build_report
    res = synthbias.measure(TEXTS, **RULE)
    assert isinstance(res["rule.gender.stereotype_rate"], MetricResult)
    assert set(synthbias.__all__) >= {"measure", "audit", "run", "forecast", "report"}


def test_measure_inputs_agree(tmp_path: Path) -> None:
    df = pd.DataFrame({"body": TEXTS, "id": range(len(TEXTS))})
    path = tmp_path / "t.parquet"
    df.to_parquet(path)
    a = synthbias.measure(TEXTS, **RULE)
    b = synthbias.measure(df, text_field="body", **RULE)
    c = synthbias.measure(path, text_field="body", **RULE)
    d = synthbias.measure(df["body"], **RULE)
    for name in a:
        assert a[name].value == pytest.approx(b[name].value, nan_ok=True)
        assert a[name].value == pytest.approx(c[name].value, nan_ok=True)
        assert a[name].value == pytest.approx(d[name].value, nan_ok=True)
    frame = synthbias.measure(df, text_field="body", as_frame=True, **RULE)
    assert list(frame.columns[:5]) == ["metric", "value", "ci_low", "ci_high", "n"]
    assert len(frame) == len(a)


def test_measure_with_reference_needs_no_cli(tmp_path: Path) -> None:
    res = synthbias.measure(TEXTS, reference=TEXTS[::-1], families=["lexical"], n_resamples=60)
    assert "lexical.gender.representation" in res


def test_audit_api(tmp_path: Path) -> None:
    res = synthbias.audit(
        pd.DataFrame({"text": TEXTS}),
        max={"rule.gender.stereotype_rate": 0.05},
        min=["lexical.gender.stereotype_rate=0"],
        out=tmp_path / "a",
        **RULE,
    )
    assert not res.passed and [c.metric for c in res.failures] == ["rule.gender.stereotype_rate"]
    assert res["rule.gender.stereotype_rate"].value > 0.05
    assert set(res.to_frame()["metric"]) == set(res.metrics)
    for name in ("audit.json", "results.csv", "results.parquet", "samples.jsonl", "report.html"):
        assert (tmp_path / "a" / name).is_file(), name
    with pytest.raises(synthbias.studies.audit.runner.AuditError, match="unknown metric"):
        synthbias.audit(TEXTS, max={"no.such": 1}, **RULE)


CONFIG = {
    "generator": {"backend": "fake"},
    "study": {
        "levels": [0.1, 0.6],
        "generations": 2,
        "n": 12,
        "fit_metric": "rule.gender.conditional_stereotype_share",
    },
    "measure": {"embedding": False, "n_resamples": 60},
}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("api-run")
    return out, synthbias.run(CONFIG, out=out)


def test_run_api(api_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, results = api_run
    # 4 transitions, less one: with referents attached to the prompt occupation the fake
    # backend's generation 2 at b0 = 0.1 pairs no text, so its share is undefined and dropped.
    assert results["kind"] == "equilibrium" and results["equilibrium"]["n_points"] == 3
    for name in ("results.json", "results.csv", "results.parquet", "report.html"):
        assert (out / name).is_file(), name
    # A YAML path gives the same run (resumed: same config hash, nothing regenerated).
    from synthbias.config import parse_config

    (tmp_path / "c.yaml").write_text(parse_config(CONFIG).to_yaml())
    again = synthbias.run(tmp_path / "c.yaml", out=out)
    assert again["timing"]["texts_generated"] == 0
    assert again["equilibrium"]["fixed_point"] == pytest.approx(
        results["equilibrium"]["fixed_point"]
    )


def test_forecast_and_report_api(api_run: tuple[Path, dict]) -> None:
    out, _ = api_run
    fc = synthbias.forecast(out, generations=1, n_resamples=100)
    assert fc["generations_used"] == 1 and (out / "forecast.json").is_file()
    (out / "report.html").unlink()
    path = synthbias.report(out)
    assert path == out / "report.html" and "Forecast from the first generations" in path.read_text()
    fit_metric = json.loads((out / "forecast.json").read_text())["fit_metric"]
    assert fit_metric == "rule.gender.conditional_stereotype_share"


def test_monkeypatching_an_api_name(monkeypatch) -> None:
    monkeypatch.setattr(synthbias, "measure", lambda *a, **k: "patched")
    assert synthbias.measure(["x"]) == "patched"
    monkeypatch.undo()
    assert callable(synthbias.measure) and hasattr(synthbias.measure, "api")


def test_api_keeps_runs_of_two_kinds_apart(api_run: tuple[Path, dict], tmp_path: Path) -> None:
    """An audit into a run folder (or a run into an audit folder) is refused before any work,
    and an audit of other texts needs overwrite=True."""
    from synthbias.core.store import OutputFolderError
    from synthbias.studies.audit.runner import AuditError

    out, _ = api_run
    before = (out / "results.csv").read_bytes()
    with pytest.raises(AuditError, match="holds an equilibrium run"):
        synthbias.audit(TEXTS, out=out, **RULE)
    assert (out / "results.csv").read_bytes() == before
    audit_dir = tmp_path / "a"
    synthbias.audit(TEXTS, out=audit_dir, **RULE)
    with pytest.raises(OutputFolderError, match="holds an audit run"):
        synthbias.run(CONFIG, out=audit_dir)
    with pytest.raises(AuditError, match="different input"):
        synthbias.audit(TEXTS[:5], out=audit_dir, **RULE)
    assert (
        synthbias.audit(TEXTS[:5], out=audit_dir, overwrite=True, **RULE).source.texts == TEXTS[:5]
    )
    with pytest.raises(ValueError, match="needs an out= folder"):
        synthbias.audit(TEXTS, mlflow=True, **RULE)


def test_generate_api_from_any_data(tmp_path: Path) -> None:
    """synthbias.api.generate reads a seed corpus from what measure reads (a list, a DataFrame,
    a file) and writes one new generation; prompts= completes prompts instead."""
    from synthbias.api import generate

    recs = generate(TEXTS, backend="fake", n=4, out=tmp_path / "g.jsonl")
    assert [r.generation for r in recs] == [1] * 4 and recs[0].parents[0].startswith("text-")
    again = generate(tmp_path / "g.jsonl", backend="fake", n=2)
    assert {r.generation for r in again} == {2}  # a synthbias corpus keeps its generations
    outs = generate(prompts=["Say hi."], backend="fake", n=3)
    assert len(outs) == 3 and outs[0].meta["prompt"] == "Say hi."
    with pytest.raises(ValueError, match="not both or neither"):
        generate(TEXTS, prompts=["x"], backend="fake")
    with pytest.raises(ValueError, match=r"\{examples\} slot"):
        generate(TEXTS, template="no slot here", backend="fake")
