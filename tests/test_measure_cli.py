"""The measurement entry point and `synthbias measure` on hand-made corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.measure.api import MeasureError, measure_corpus

TEXTS = [
    "The nurse said she would stay late.",
    "The engineer fixed his car before he left.",
    "The secretary said he was busy.",
    "A Muslim family moved next door to the Christian man.",
]


def test_measure_corpus_rule_and_lexical() -> None:
    res = measure_corpus(
        TEXTS, axes=["gender", "religion"], families=["rule", "lexical"], n_resamples=100
    )
    assert res["rule.gender.stereotype_rate"].value == pytest.approx(0.5)
    assert res["rule.gender.signed_bias"].value == pytest.approx(0.25)
    rel = res["lexical.religion.representation"]
    assert rel.per_group["muslim"] == pytest.approx(0.5)
    assert rel.per_group["christian"] == pytest.approx(0.5)
    assert not any(k.startswith("embedding") for k in res)


def test_measure_corpus_errors() -> None:
    with pytest.raises(MeasureError, match="unknown axis 'gendr'.*gender"):
        measure_corpus(TEXTS, axes=["gendr"])
    with pytest.raises(MeasureError, match="unknown metric family 'vibes'"):
        measure_corpus(TEXTS, families=["vibes"])
    with pytest.raises(MeasureError, match="reference"):
        measure_corpus(TEXTS, families=["misalignment"])
    with pytest.raises(MeasureError, match="no texts"):
        measure_corpus([])


def test_cli_measure_csv_writes_json(tmp_path: Path) -> None:
    import pandas as pd

    pd.DataFrame({"sentence": TEXTS}).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "m.json"
    res = CliRunner().invoke(
        app,
        [
            "measure",
            str(tmp_path / "c.csv"),
            "--text-field",
            "sentence",
            "--axes",
            "gender,religion",
            "--metrics",
            "rule,lexical",
            "--n-resamples",
            "100",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "rule.gender.stereotype_rate" in res.output
    data = json.loads(out.read_text())
    assert data["n"] == 4
    assert data["metrics"]["rule.gender.stereotype_rate"]["value"] == pytest.approx(0.5)
    assert len(data["metrics"]["rule.gender.stereotype_rate"]["per_sample"]) == 4


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (b"", [], "empty"),
        (b'{"txt": "a"}\n', [], "missing field 'text'"),
        (b'{"text": "\xff"}\n', [], "not valid UTF-8"),
        (b'{"text": "a"}\n', ["--axes", "colour"], "unknown axis 'colour'"),
    ],
)
def test_cli_measure_bad_input(
    tmp_path: Path, content: bytes, args: list[str], message: str
) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_bytes(content)
    res = CliRunner().invoke(app, ["measure", str(p), "--metrics", "rule,lexical", *args])
    assert res.exit_code == 2
    assert message in res.output.replace("\n", " ")


def test_cli_measure_long_text(tmp_path: Path) -> None:
    p = tmp_path / "long.jsonl"
    p.write_text(json.dumps({"text": "The nurse said she was tired. " * 20_000}) + "\n")
    res = CliRunner().invoke(
        app, ["measure", str(p), "--metrics", "rule,lexical", "--n-resamples", "50"]
    )
    assert res.exit_code == 0, res.output


def test_cli_bench_bias_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench-bias", "embedded", "--suite", "nope"])
    assert res.exit_code == 2 and "unknown suite nope" in res.output
    res = CliRunner().invoke(app, ["bench-bias", "embedded", "--data", str(tmp_path / "none")])
    assert res.exit_code == 2 and "data folder not found" in res.output
    res = CliRunner().invoke(app, ["bench-bias", str(tmp_path / "m.gguf"), "--data", str(tmp_path)])
    assert res.exit_code == 2 and "model not found" in res.output


@pytest.mark.slow
def test_cli_bench_bias_real_model(benchmarks: Path, tmp_path: Path) -> None:
    out = tmp_path / "bb.json"
    res = CliRunner().invoke(
        app,
        [
            "bench-bias",
            "embedded",
            "--suite",
            "crows_pairs",
            "--data",
            str(benchmarks),
            "--limit",
            "30",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["runtime"] == "transformers" and data["scoring_backend"]["backend"] == "hf"
    m = data["metrics"]["crows_pairs.pct_stereotype"]
    assert m["n"] == 30 and 0 <= m["value"] <= 100


@pytest.mark.slow
def test_cli_bench_bias_bf16_is_opt_in_and_recorded(benchmarks: Path, tmp_path: Path) -> None:
    """--backend hf --weights bf16: reduced precision only when named, and the results say so."""
    out = tmp_path / "bf16.json"
    args = ["bench-bias", "embedded", "--suite", "crows_pairs", "--data", str(benchmarks)]
    res = CliRunner().invoke(
        app, [*args, "--limit", "12", "--backend", "hf", "--weights", "bf16", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["scoring_backend"]["weights"].startswith("bf16")
    assert "chosen explicitly" in data["scoring_backend"]["reason"]
    res = CliRunner().invoke(app, [*args, "--backend", "llamacpp", "--weights", "bf16"])
    assert res.exit_code == 2 and "--weights" in res.output  # llama.cpp has no bf16 path
