"""End to end on the real embedded model: the equilibrium study through the CLI, small."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner
from weights import PIPELINE_WEIGHTS

from synthbias.cli import app
from synthbias.core.records import read_jsonl
from synthbias.measure.direction import CONDITIONAL, PAIRING

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


N = 32
MIN_PAIRINGS = 12  # the default prompt pairs about 2/3 of 32 texts (README)
CONFIG = f"""
kind: equilibrium
seed: 0
generator: {{backend: llamacpp, batch_size: 32, options: {{weights: {PIPELINE_WEIGHTS}}}}}
sampling: {{max_tokens: 40, temperature: 0.8, top_p: 0.95}}
study:
  levels: [0.1, 0.6]
  generations: 1
  n: {N}
  chains: 1
  min_pairings: {MIN_PAIRINGS}
measure: {{embedding: false, n_resamples: 200}}
"""


def run_small(out: Path, config: str = CONFIG):
    """One short chain per level on the real model, through the CLI."""
    path = out.parent / f"{out.name}.yaml"
    path.write_text(config)
    return CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--quiet"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eq")
    res = run_small(out)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "pooled" in res.output and "code-balanced" in res.output  # headers wrap at 80
    assert "Power at 80%" in res.output
    assert "n.r." in res.output  # one chain per level: not replicated
    assert ("Fit not interpretable, because" in res.output) or ("Fit of " in res.output)
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
        # generation 0: every text paired, a share b0 of them stereotypical, exactly
        cond = g0["metrics"][CONDITIONAL]
        assert cond["value"] == pytest.approx(round(b0 * N) / N, abs=1e-12)
        assert g0["pairings"] == N and g0["metrics"][PAIRING]["value"] == 1.0
        assert g0["off_topic_share"]["value"] == 0.0
        # generation 1: the conditional share rests on at least min_pairings pairings
        assert g1["pairings"] >= MIN_PAIRINGS, g1["chains"]
        assert g1["metrics"][CONDITIONAL]["value"] is not None
        m1 = g1["metrics"][CONDITIONAL]
        # one chain: not replicated, no interval; the text-level CI is the secondary figure
        assert m1["status"] == "not replicated" and m1["ci"] is None
        ci = m1["text_ci"]
        assert ci["low"] <= m1["value"] <= ci["high"]
        assert g1["chains"][0]["pairings"] == g1["pairings"]
    eq = results["equilibrium"]
    assert eq["n_points"] == 2 and "a" in eq and "c" in eq
    assert eq["status"] == "not replicated" and eq["ci"] is None
    assert results["interpretation"]["single_chain"]
    interp = results["interpretation"]
    assert interp["interpretable"] == (not interp["reasons"])
    assert results["power"]["paper"][0]["effect"].startswith("from b0 = 0.1")


def test_generated_texts_on_topic_at_the_measured_rate(run_dir: Path) -> None:
    """The stored off-topic share is what the on-topic check says about the stored texts, and
    regeneration keeps most texts on the task."""
    from synthbias.measure.config import MeasureConfig
    from synthbias.studies.equilibrium.generation import text_opening
    from synthbias.studies.equilibrium.measurer import GenderMeasurer

    measurer = GenderMeasurer(MeasureConfig(embedding=False))
    results = json.loads((run_dir / "results.json").read_text())
    for lv in results["levels"]:
        recs = read_jsonl(run_dir / "corpora" / f"level-{lv['level']:g}" / "gen-1.jsonl")
        off = [not measurer.on_topic(r.text, text_opening(r)) for r in recs]
        assert [not r.meta["on_topic"] for r in recs] == off
        g1 = lv["generations"][1]
        assert g1["off_topic_share"]["value"] == pytest.approx(sum(off) / len(off))
        assert g1["off_topic_share"]["count"] == sum(off)
        assert sum(off) / len(off) <= 0.5, [r.text for r in recs if not r.meta["on_topic"]]
        # the default prompt names one occupation per text, half male- and half female-coded
        codes = [r.meta["prompt_occupation_code"] for r in recs]
        assert codes.count("male") == codes.count("female") == N // 2
        assert all(r.text.startswith(f"The {r.meta['prompt_occupation']} said") for r in recs)
        assert all(
            r.meta["opening"] == f"The {r.meta['prompt_occupation']} said that" for r in recs
        )
        # a text kept off topic used up its retry budget (1 try + on_topic_retries)
        assert all(r.meta["attempts"] == 4 for r in recs if not r.meta["on_topic"])


def test_generated_texts_are_english_with_provenance(run_dir: Path) -> None:
    gen0 = {r.id for r in read_jsonl(run_dir / "corpora" / "level-0.6" / "gen-0.jsonl")}
    recs = read_jsonl(run_dir / "corpora" / "level-0.6" / "gen-1.jsonl")
    assert len(recs) == N
    english = [looks_english(r.text) for r in recs]
    assert all(r.text.strip() for r in recs)
    assert sum(english) >= N - 3, [r.text for r in recs]
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
    res = run_small(run_dir, CONFIG.replace(f"n: {N}", f"n: {N + 1}"))
    assert res.exit_code == 2
    assert "different config" in res.output


LOOP_CONFIG = f"""
kind: equilibrium_loop
seed: 0
generator: {{backend: llamacpp, batch_size: 32, options: {{weights: {PIPELINE_WEIGHTS}}}}}
sampling: {{max_tokens: 40, temperature: 0.8, top_p: 0.95}}
study:
  levels: [0.2]
  generations: 2
  n: 12
  chains: 3
  loop: {{real_shares: [0.0, 0.5], regimes: [replace], calibration_levels: [0.8], window: 1}}
measure: {{embedding: false, n_resamples: 100}}
"""


def test_loop_on_the_embedded_model(tmp_path: Path) -> None:
    """Real data in the loop (issue 31), small, on the real model: the one-generation
    prediction beside the observed level of every cell, with the bound and the plot."""
    out = tmp_path / "loop"
    res = run_small(out, LOOP_CONFIG)
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Real data in the loop" in res.output and "Taori & Hashimoto" in res.output
    loop = json.loads((out / "loop.json").read_text())
    assert loop["one_generation"]["n_chains"] == 6
    assert [c["real_share"] for c in loop["cells"]] == [0.0, 0.5]
    for cell in loop["cells"]:
        assert 0 <= cell["observed_window"]["estimate"] <= 1
        assert cell["predicted_window"]["ci_low"] <= cell["predicted_window"]["ci_high"]
    assert (out / "loop_trajectories.png").read_bytes()[:4] == b"\x89PNG"
    # generation 1 is the gen01 run's in both cells; generation 2 differs once real data mixes in
    a, b = (
        out / "cells" / c / "corpora/level-0.2/gen-1.jsonl"
        for c in ("replace-rho0", "replace-rho0.5")
    )
    assert a.read_bytes() == b.read_bytes()
    mixed = read_jsonl(out / "cells/replace-rho0.5/corpora/level-0.2/gen-2.jsonl")
    assert sum(r.meta["real_shots"] for r in mixed) == round(0.5 * 12 * 3)
