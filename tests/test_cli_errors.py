"""Clean errors, safe output folders and real-world inputs on the command line (issue 29).

Every probe here once gave a traceback, silently replaced a run's files, or wasted model work: a
user mistake must exit 2 with a message naming the file, the line or the option, before anything
is generated or measured; a folder holding a run is never mixed with another run; a corpus that
synthbias did not write, and a server given by URL, work.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from synthbias import cli
from synthbias.api import generate as api_generate
from synthbias.cli import app
from synthbias.core.store import OutputFolderError, folder_kind
from synthbias.generate.config import GeneratorConfig, SamplingConfig
from synthbias.generate.openai_http import BackendUnavailableError
from synthbias.measure.config import MeasureConfig
from synthbias.studies.audit import runner as audit_runner
from synthbias.studies.audit.runner import AuditError, audit_corpus, expected_metric_names
from synthbias.studies.equilibrium.config import EquilibriumStudyConfig

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [
    "The nurse said she would be late.",
    "The engineer said he fixed the bridge.",
    "The secretary said she booked the room.",
    "The pilot said he was ready.",
    "The manager reviewed the budget.",
    "A Muslim woman opened her bakery.",
]
FAST_AUDIT = ["--no-embedding", "--n-resamples", "50", "--quiet"]


def invoke(*args: str, **kwargs: Any):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def flat(res: Any) -> str:
    """The command's output (stdout and stderr) on one line, however rich wrapped it."""
    return " ".join(res.output.split())


def assert_clean_error(res: Any, *needles: str) -> None:
    """Exit 2, every needle in the message, and no traceback."""
    text = flat(res)
    assert res.exit_code == 2, res.output + repr(res.exception)
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"


def write_corpus(path: Path, texts: list[str] = TEXTS, field: str = "text") -> Path:
    rows = [{"id": f"u{i}", field: t} for i, t in enumerate(texts)]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    else:
        pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def eq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished equilibrium run on the fake backend: two levels, generations 0 and 1."""
    out = tmp_path_factory.mktemp("eq") / "run"
    res = invoke(
        "equilibrium",
        "--backend",
        "fake",
        "--no-embedding",
        "--n",
        "8",
        "--generations",
        "1",
        "--levels",
        "0.3,0.6",
        "--chains",
        "1",
        "--n-resamples",
        "50",
        "-q",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    return out


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- 1. output folders


def test_audit_into_a_run_folder_is_refused_and_changes_nothing(
    eq_run: Path, tmp_path: Path
) -> None:
    """It used to replace the run's results.csv, results.parquet and report.html (exit 0)."""
    before = snapshot(eq_run)
    src = write_corpus(tmp_path / "s.jsonl")
    res = invoke("audit", src, *FAST_AUDIT, "--out", eq_run)
    assert_clean_error(res, "holds an equilibrium run", "Choose another --out folder")
    res = invoke("audit", src, *FAST_AUDIT, "--out", eq_run, "--overwrite")
    assert_clean_error(res, "holds an equilibrium run")  # --overwrite never mixes two kinds
    assert snapshot(eq_run) == before
    with pytest.raises(AuditError, match="holds an equilibrium run"):
        audit_corpus(TEXTS, families=["rule"], n_resamples=50, out=eq_run)
    assert snapshot(eq_run) == before


def test_a_study_into_an_audit_folder_is_refused(tmp_path: Path) -> None:
    src = write_corpus(tmp_path / "s.jsonl")
    out = tmp_path / "audit"
    assert invoke("audit", src, *FAST_AUDIT, "--out", out).exit_code == 0
    assert folder_kind(out) == "audit"
    assert json.loads((out / "manifest.json").read_text())["kind"] == "audit"
    before = snapshot(out)
    res = invoke("equilibrium", "--backend", "fake", "--n", "4", "--out", out, "-q")
    assert_clean_error(res, "holds an audit run")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: equilibrium\ngenerator: {backend: fake}\n")
    assert_clean_error(invoke("run", cfg, "--out", out, "--overwrite"), "holds an audit run")
    import synthbias

    with pytest.raises(OutputFolderError, match="holds an audit run"):
        synthbias.run(cfg, out=out)
    assert snapshot(out) == before


def test_audit_of_other_data_needs_overwrite(tmp_path: Path) -> None:
    a, b = write_corpus(tmp_path / "a.jsonl"), write_corpus(tmp_path / "b.jsonl", TEXTS[:4])
    out = tmp_path / "audit"
    assert invoke("audit", a, *FAST_AUDIT, "--out", out).exit_code == 0
    before = snapshot(out)
    assert_clean_error(
        invoke("audit", b, *FAST_AUDIT, "--out", out), "different input", "--overwrite"
    )
    assert snapshot(out) == before
    res = invoke("audit", b, *FAST_AUDIT, "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "audit.json").read_text())["info"]["texts"] == 4
    # the same data with another budget is the same audit: no --overwrite needed
    res = invoke("audit", b, *FAST_AUDIT, "--out", out, "--max", "gender.signed_bias=5")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "args",
    [
        ["measure", "{corpus}", "--out", "{dir}"],
        ["generate", "--prompt", "hi", "--backend", "fake", "--out", "{dir}"],
        ["report", "{run}", "--out", "{dir}"],
        ["bench-bias", "--data", "{dir}", "--out", "{dir}"],
    ],
)
def test_output_file_options_refuse_a_folder(args: list[str], eq_run: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    folder = tmp_path / "folder"
    folder.mkdir()
    filled = [a.format(corpus=corpus, dir=folder, run=eq_run) for a in args]
    assert_clean_error(invoke(*filled), f"--out {folder}: is a folder")
    assert list(folder.iterdir()) == []


def test_audit_out_a_file_is_an_error(tmp_path: Path) -> None:
    src = write_corpus(tmp_path / "s.jsonl")
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    assert_clean_error(
        invoke("audit", src, *FAST_AUDIT, "--out", target), "is a file, not a folder"
    )
    assert target.read_text() == "mine\n"


# --------------------------------------------------------------------------- 2. config kind


@pytest.mark.parametrize(
    ("text", "what"),
    [("", "is empty"), ("# nothing\n", "is empty"), ("seed: 1\n", "has no 'kind:' key")],
)
def test_empty_or_kindless_config_is_an_error(text: str, what: str, tmp_path: Path) -> None:
    """An empty config file once ran the whole default study on the real model (8 minutes)."""
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert_clean_error(invoke("run", cfg, "--out", out), f"{cfg}:1: the config {what}", "kind:")
    assert not out.exists()


def test_example_configs_name_their_kind() -> None:
    for f in sorted((ROOT / "examples").glob("*.yaml")):
        assert "kind" in yaml.safe_load(f.read_text()), f


# --------------------------------------------------------------------------- 5. gate keys early


def test_gate_typos_are_refused_before_measuring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--max misspelled.metric=…` used to measure every family (the encoder included) first."""
    measured: list[list[str]] = []
    real_measure = audit_runner.measure_corpus

    def spy(texts: Any, *args: Any, **kwargs: Any) -> Any:
        measured.append(list(texts))
        return real_measure(texts, *args, **kwargs)

    def no_encoder(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the sentence encoder was built")

    monkeypatch.setattr(audit_runner, "measure_corpus", spy)
    monkeypatch.setattr(audit_runner, "Encoder", no_encoder)
    src = write_corpus(tmp_path / "s.jsonl")
    out = tmp_path / "o"
    for key in ("misspelled.metric", "rule.gender.stereotype_rat"):
        res = invoke("audit", src, "--quiet", "--out", out, "--max", f"{key}=0.2")
        assert_clean_error(res, f"--max {key}: unknown metric", "rule.gender.stereotype_rate")
        assert "embedding.gender.anchor_bias" in flat(res)  # the embedding family is listed
    assert TEXTS not in measured  # only the probe was measured
    assert not out.exists()
    with pytest.raises(AuditError, match="unknown metric"):
        audit_corpus(TEXTS, families=["rule"], max_budgets={"rule.nope": 1})
    assert TEXTS not in measured


def test_probe_names_are_the_measured_names() -> None:
    axes = ["gender", "religion"]
    names, unknown = expected_metric_names(["rule", "lexical"], axes, has_reference=True)
    real = audit_corpus(
        TEXTS, reference=TEXTS[:3], families=["rule", "lexical"], axes=axes, n_resamples=50
    )
    assert unknown == [] and sorted(names) == sorted(real.metrics)


# --------------------------------------------------------------------------- 7. foreign corpora


@pytest.mark.parametrize(
    ("name", "field"), [("c.jsonl", "text"), ("c.csv", "sentence"), ("c.parquet", "body")]
)
def test_generate_from_a_corpus_synthbias_did_not_write(
    name: str, field: str, tmp_path: Path
) -> None:
    """Only `id` and a text column: it used to fail with `NoneType.__format__`."""
    corpus = write_corpus(tmp_path / name, field=field)
    out = tmp_path / "g.jsonl"
    args = ["generate", "--from", corpus, "--backend", "fake", "--n", "5", "--out", out]
    res = invoke(*args, *(["--text-field", field] if field != "text" else []))
    assert res.exit_code == 0, res.output + repr(res.exception)
    recs = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert len(recs) == 5 and {r["generation"] for r in recs} == {1}
    assert {p for r in recs for p in r["parents"]} <= {f"u{i}" for i in range(len(TEXTS))}
    if field != "text":  # the column is named, not guessed
        assert_clean_error(invoke(*args), "'text'")


def test_generate_from_uses_or_refuses_prompt(tmp_path: Path) -> None:
    """`--prompt` with `--from` used to be dropped without a word."""
    corpus = write_corpus(tmp_path / "c.jsonl")
    base = ["generate", "--from", corpus, "--backend", "fake", "--n", "6"]

    def texts(*extra: str) -> list[str]:
        out = tmp_path / f"g{len(list(tmp_path.iterdir()))}.jsonl"
        res = invoke(*base, *extra, "--out", out)
        assert res.exit_code == 0, res.output
        return [json.loads(ln)["text"] for ln in out.read_text().splitlines()]

    default = texts()
    assert texts("--prompt", "self_instruct") == default
    assert texts("--prompt", "self_instruct_chat") != default
    assert texts("--prompt", "Examples:\n{examples}\nWrite one more.") != default
    assert_clean_error(
        invoke(*base, "--prompt", "Write a text", "--out", tmp_path / "x.jsonl"),
        "--prompt:",
        "{examples}",
        "self_instruct_chat",
    )
    assert_clean_error(
        invoke(*base, "--prompt", "a", "--prompt", "b", "--out", tmp_path / "x.jsonl"),
        "got 2 --prompt values",
    )
    assert not (tmp_path / "x.jsonl").exists()


def test_api_generate_takes_a_hf_dataset_and_a_dataframe(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"id": [f"d{i}" for i in range(len(TEXTS))], "text": TEXTS})
    recs = api_generate(ds, backend="fake", n=4, out=tmp_path / "g.jsonl")
    assert len(recs) == 4 and all(set(r.parents) <= set(ds["id"]) for r in recs)
    assert len((tmp_path / "g.jsonl").read_text().splitlines()) == 4
    df = pd.DataFrame({"sentence": TEXTS})
    assert len(api_generate(df, text_field="sentence", backend="fake", n=3)) == 3
    with pytest.raises(ValueError, match="no column 'text'"):
        api_generate(df, backend="fake", n=3)


# --------------------------------------------------------------------------- 8. servers


def test_every_backend_command_can_point_at_a_server() -> None:
    for command in ("generate", "equilibrium", "run", "bench-bias"):
        text = flat(invoke(command, "--help", env={"COLUMNS": "200"}))
        assert "--base-url" in text and "--api-key-env" in text, command
        if command != "bench-bias":  # there MODEL names the served model
            assert "--model " in text, command


def test_refused_connection_exits_2_naming_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: equilibrium\nstudy: {levels: [0.5], n: 4, generations: 1}\n")
    for args in (
        ["generate", "--prompt", "hi", "--out", tmp_path / "g.jsonl"],
        ["generate", "--prompt", "hi", "--backend", "openai", "--out", tmp_path / "g.jsonl"],
        ["equilibrium", "--n", "4", "--generations", "1", "--out", tmp_path / "eq", "-q"],
        ["run", cfg, "--model", "m", "--out", tmp_path / "run", "-q"],
        ["bench-bias", "--data", tmp_path, "--suite", "crows_pairs"],
    ):
        res = invoke(*args, "--base-url", url)
        assert_clean_error(res, f"cannot reach an OpenAI-compatible server at {url}", "--base-url")
    assert not (tmp_path / "g.jsonl").exists()


def test_ray_wrapped_backend_error_is_unwrapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exceptions = pytest.importorskip("ray.exceptions")
    cause = BackendUnavailableError("http://10.0.0.9:8000/v1", "connection refused")
    wrapped = exceptions.RayTaskError("generate", "Traceback (remote) ...", cause)
    dual = wrapped.as_instanceof_cause()

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise dual

    monkeypatch.setattr(cli, "run_experiment", fail)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: equilibrium\ngenerator: {backend: fake}\n")
    res = invoke("run", cfg, "--out", tmp_path / "o")
    assert_clean_error(res, str(cause))
    assert "RayTaskError" not in res.output and "remote" not in res.output
    assert cli.root_error(wrapped) is cause


def test_api_key_env_must_be_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHBIAS_TEST_NO_KEY", raising=False)
    res = invoke(
        "generate",
        "--prompt",
        "hi",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--api-key-env",
        "SYNTHBIAS_TEST_NO_KEY",
        "--out",
        tmp_path / "g.jsonl",
    )
    assert_clean_error(res, "SYNTHBIAS_TEST_NO_KEY", "unset")


# --------------------------------------------------------------------------- 9. clean errors


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "--prompt", "hi", "--backend", "bogus"], "unknown backend 'bogus'"),
        (["generate", "--prompt", "hi", "--backend", "fake", "--temperature", "-2"], "temperature"),
        (["generate", "--prompt", "hi", "--backend", "fake", "--top-p", "7"], "top-p"),
        (["generate", "--prompt", "hi", "--backend", "fake", "--top-p", "0"], "--top-p: Input"),
        (["generate", "--prompt", "hi", "--model-path", "missing.gguf"], "missing.gguf"),
        (["equilibrium", "--model-path", "missing.gguf"], "missing.gguf"),
        (["generate", "--prompt", "hi", "--backend", "fake", "--base-url", "http://x"], "openai"),
    ],
)
def test_bad_generation_options_are_clean_errors(
    args: list[str], needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = invoke(*args, "--out", "g.jsonl")
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert needle in flat(res)
    assert not (tmp_path / "g.jsonl").exists()


def test_missing_model_file_in_a_config(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: equilibrium\ngenerator:\n  model_path: nowhere/model.gguf\n")
    out = tmp_path / "out"
    assert_clean_error(
        invoke("run", cfg, "--out", out),
        f"{cfg}:3: generator.model_path: no such file: nowhere/model.gguf",
    )
    assert not out.exists()  # nothing written before the check


def test_missing_or_broken_real_data(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    real = tmp_path / "real.jsonl"
    cfg.write_text(
        f"kind: inheritance\ngenerator: {{backend: fake}}\ninheritance:\n  real_data: {real}\n"
    )
    out = tmp_path / "out"
    assert_clean_error(
        invoke("run", cfg, "--out", out), f"{cfg}:4: inheritance.real_data: {real}: no such file"
    )
    real.write_text('{"text": "fine"}\n{"text": "broken\n')
    assert_clean_error(
        invoke("run", cfg, "--out", out),
        f"{cfg}:4: inheritance.real_data: {real}:2: invalid JSON at column",
    )
    assert not out.exists()


# --------------------------------------------------------------------------- 12. smaller


def _option(command: str, name: str) -> Any:
    group = typer.main.get_command(app)
    return next(p for p in group.commands[command].params if p.name == name)


@pytest.mark.parametrize(
    ("command", "option", "model", "field"),
    [
        ("equilibrium", "n", EquilibriumStudyConfig, "n"),
        ("equilibrium", "generations", EquilibriumStudyConfig, "generations"),
        ("equilibrium", "chains", EquilibriumStudyConfig, "chains"),
        ("equilibrium", "k_shots", EquilibriumStudyConfig, "k_shots"),
        ("equilibrium", "batch_size", GeneratorConfig, "batch_size"),
        ("equilibrium", "max_tokens", SamplingConfig, "max_tokens"),
        ("equilibrium", "temperature", SamplingConfig, "temperature"),
        ("equilibrium", "n_resamples", MeasureConfig, "n_resamples"),
        ("generate", "temperature", SamplingConfig, "temperature"),
        ("generate", "max_tokens", SamplingConfig, "max_tokens"),
        ("measure", "n_resamples", MeasureConfig, "n_resamples"),
        ("audit", "n_resamples", MeasureConfig, "n_resamples"),
        ("forecast", "n_resamples", MeasureConfig, "n_resamples"),
    ],
)
def test_cli_limits_are_the_config_limits(
    command: str, option: str, model: Any, field: str
) -> None:
    meta = {type(m).__name__: m for m in model.model_fields[field].metadata}
    param = _option(command, option)
    assert param.min == meta["Ge"].ge
    assert param.max == (meta["Le"].le if "Le" in meta else None)


def test_values_the_config_refuses_are_refused_by_the_cli(tmp_path: Path) -> None:
    """`--n 1` passed the CLI's `x>=1` and then failed in the config; `--n-resamples 40`
    passed the CLI and was refused by the config's >= 50."""
    for args in (
        ["equilibrium", "--backend", "fake", "--n", "1"],
        ["equilibrium", "--backend", "fake", "--n-resamples", "49"],
        ["measure", "x.jsonl", "--n-resamples", "49"],
        ["audit", "x.jsonl", "--n-resamples", "49"],
    ):
        res = invoke(*args, "--out", tmp_path / "o")
        assert res.exit_code == 2 and "Invalid value" in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_mlflow_help_keeps_its_brackets() -> None:
    for command in ("run", "audit"):
        assert "synthbias[mlflow]" in flat(invoke(command, "--help", env={"COLUMNS": "200"}))


def test_json_error_names_the_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "a", "x": tru}\n')
    assert_clean_error(invoke("measure", bad), f"{bad}:2: invalid JSON at column 20: Expecting")


def test_measure_of_a_folder_says_what_it_takes(tmp_path: Path) -> None:
    res = invoke("measure", tmp_path)
    assert_clean_error(res, f"{tmp_path}: is a folder", ".jsonl, .csv, .tsv or .parquet")
    assert "unknown format ''" not in flat(res)
    no_suffix = tmp_path / "corpus"
    no_suffix.write_text('{"text": "a"}\n')
    assert_clean_error(invoke("measure", no_suffix), "no file suffix to tell the format by")


def test_forecast_says_when_the_run_has_fewer_generations(eq_run: Path) -> None:
    res = invoke("forecast", eq_run, "--generations", "5")
    assert res.exit_code == 0, res.output
    assert "--generations 5 asks for generations 0–5, but the run has generations 0–1" in flat(res)
    res = invoke("forecast", eq_run, "--generations", "1")
    assert res.exit_code == 0 and "note:" not in res.output


def test_equilibrium_with_a_down_server_writes_nothing(tmp_path: Path) -> None:
    """Issue 29 item 4: a server that refuses connections is found before the run writes its
    folder (config, manifest, seed corpora), so nothing is left behind to clean up."""
    out = tmp_path / "eq"
    res = CliRunner().invoke(
        app,
        ["equilibrium", "--base-url", f"http://127.0.0.1:{_free_port()}/v1", "--n", "4"]
        + ["--chains", "1", "--generations", "1", "--out", str(out)],
    )
    assert res.exit_code == 2, res.output
    assert "cannot reach an OpenAI-compatible server" in res.output
    assert not out.exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
