"""``scoring_backend: auto`` as bench-bias's default: the choice is made, used and recorded.

The CLI checks run the real embedded model (a few CrowS-Pairs pairs); the order check of
``score_texts`` uses a recording fake backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.generate.protocol import TextLogprobs
from synthbias.measure.scoring import (
    ScoringChoice,
    choose_scoring_backend,
    load_scoring_backend,
    score_texts,
)


class RecordingBackend:
    """Scores a text as minus its length in characters; records what it was sent, in order."""

    name = "recording"
    model_id = "recording"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        self.sent.extend(texts)
        return [TextLogprobs(tokens=[t], token_ids=[len(t)], logprobs=[-len(t)]) for t in texts]


def test_score_texts_sends_longest_first_and_answers_in_input_order() -> None:
    backend = RecordingBackend()
    texts = ["bb", "a", "dddd", "ccc", "a", "eeeee"]
    got = score_texts(backend, texts, chunk_size=2)
    assert backend.sent == ["eeeee", "dddd", "ccc", "bb", "a"]  # each distinct text once
    assert [lp.total for lp in got] == [-2, -1, -4, -3, -1, -5]
    assert got[1] is got[4]


def test_load_scoring_backend_names_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="no scoring runtime 'vllm'"):
        load_scoring_backend(ScoringChoice("vllm", "cpu", "f32", "test"))


def _bench_bias(benchmarks: Path, out: Path, *extra: str) -> dict:
    args = ["bench-bias", "--suite", "crows_pairs", "--data", str(benchmarks)]
    res = CliRunner().invoke(app, [*args, "--limit", "6", "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    assert "scoring backend:" in res.output
    return json.loads(out.read_text())


@pytest.mark.slow
def test_bench_bias_default_is_the_automatic_choice_and_records_it(
    benchmarks: Path, tmp_path: Path
) -> None:
    data = _bench_bias(benchmarks, tmp_path / "auto.json")
    expected = choose_scoring_backend()
    assert data["scoring_backend"] == {"requested": "auto", **expected.to_dict()}
    assert expected.weights == "f32" and expected.reason
    runtime = {"hf": "transformers", "llamacpp": "llama.cpp"}[expected.backend]
    assert data["runtime"] == runtime and data["weights"] == "f32"
    assert data["metrics"]["crows_pairs.pct_stereotype"]["n"] == 6


@pytest.mark.slow
def test_bench_bias_explicit_backend_stays_and_is_recorded_as_explicit(
    benchmarks: Path, tmp_path: Path
) -> None:
    data = _bench_bias(benchmarks, tmp_path / "llama.json", "--backend", "llamacpp")
    rec = data["scoring_backend"]
    assert data["runtime"] == "llama.cpp" and rec["backend"] == "llama.cpp"
    assert rec["requested"] == "llamacpp" and rec["weights"] == "native"
    assert "explicitly" in rec["reason"]
