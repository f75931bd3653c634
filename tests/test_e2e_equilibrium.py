"""End to end on the real embedded model: the equilibrium study through the CLI, small."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.corpus import read_jsonl

pytestmark = pytest.mark.slow

STOPWORDS = {
    "the",
    "a",
    "an",
    "is",
    "was",
    "and",
    "to",
    "of",
    "in",
    "for",
    "at",
    "with",
    "on",
    "he",
    "she",
    "i",
    "my",
    "his",
    "her",
    "they",
    "their",
    "as",
    "it",
    "has",
    "who",
}


def looks_english(text: str) -> bool:
    words = re.findall(r"[A-Za-z']+", text)
    if len(words) < 3:
        return False
    ascii_share = sum(ch.isascii() for ch in text) / len(text)
    return ascii_share > 0.95 and any(w.lower() in STOPWORDS for w in words)


SMALL = ["equilibrium", "--levels", "0.1,0.6", "--generations", "1", "--n", "12"]
SMALL += ["--max-tokens", "48", "--n-resamples", "200", "--quiet"]


def run_small(out: Path):
    """The small study on the real model, through the CLI."""
    return CliRunner().invoke(app, [*SMALL, "--out", str(out)])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eq")
    res = run_small(out)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Equilibrium of rule.stereotype_rate" in res.output
    return out


def test_output_folder(run_dir: Path) -> None:
    for name in (
        "results.json",
        "results.csv",
        "bias_by_generation.png",
        "config.yaml",
        "manifest.json",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "bias_by_generation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"]["backend"] == "llama.cpp"
    assert "SmolLM2" in results["model"]["model_id"]
    levels = {lv["level"]: lv for lv in results["levels"]}
    assert set(levels) == {0.1, 0.6}
    for b0, lv in levels.items():
        g0, g1 = lv["generations"]
        assert g0["metrics"]["rule.stereotype_rate"]["value"] == pytest.approx(round(b0 * 12) / 12)
        for m in g1["metrics"].values():
            assert "value" in m and "ci" in m
        assert "embedding.anchor_bias" in g1["metrics"]
        assert "rule.stereotype_rate" in g1["pct_change"]
    eq = results["equilibrium"]
    assert eq["n_points"] == 2 and "a" in eq and "c" in eq


def test_generated_texts_are_english_with_provenance(run_dir: Path) -> None:
    gen0 = {r.id for r in read_jsonl(run_dir / "corpora" / "level-0.6" / "gen-0.jsonl")}
    recs = read_jsonl(run_dir / "corpora" / "level-0.6" / "gen-1.jsonl")
    assert len(recs) == 12
    english = [looks_english(r.text) for r in recs]
    assert all(r.text.strip() for r in recs)
    assert sum(english) >= 10, [r.text for r in recs]
    for r in recs:
        assert r.generation == 1 and r.source == "synthetic" and r.initial_level == 0.6
        assert r.parents and set(r.parents) <= gen0


def test_rerun_resumes_without_regenerating(run_dir: Path) -> None:
    before = (run_dir / "corpora" / "level-0.1" / "gen-1.jsonl").read_text()
    res = run_small(run_dir)
    assert res.exit_code == 0, res.output
    assert "Generated 0 texts" in res.output
    assert (run_dir / "corpora" / "level-0.1" / "gen-1.jsonl").read_text() == before


def test_changed_config_refuses_to_mix(run_dir: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "equilibrium",
            "--levels",
            "0.1,0.6",
            "--generations",
            "1",
            "--n",
            "13",
            "--out",
            str(run_dir),
            "--quiet",
            "--no-embedding",
        ],
    )
    assert res.exit_code == 2
    assert "different config" in res.output
