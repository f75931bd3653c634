"""End to end on the real embedded model: pool -> arms -> checks -> LoRA -> evaluate -> effects.

Tiny on purpose (the half fraction's 4 arms, one replicate, 16 texts, 2 training steps, one
task at its smallest size): it proves the pipeline runs on the real generator, trainer and
evaluator and prints its answer; one replicate gives no interval, so the answer must say
"not replicated". examples/attribution.yaml is the 2-core-hour version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from weights import PIPELINE_WEIGHTS

from synthbias.cli import app
from synthbias.core.records import read_jsonl
from synthbias.studies.attribution.manipulate import real_like_sentences

pytestmark = pytest.mark.slow

CONFIG = {
    "name": "e2e-attribution",
    "kind": "attribution",
    "generator": {
        "backend": "llamacpp",
        "batch_size": 16,
        "n_ctx": 512,
        "options": {"weights": PIPELINE_WEIGHTS},
    },
    "sampling": {"max_tokens": 24},
    "measure": {"n_resamples": 100},
    "attribution": {
        "bias_type": "gender",
        "design": "half",
        "n_real": 16,
        "n_augmented": 16,
        "replicates": 1,
        "tasks": ["hiring_decision"],
        "n_eval": 2,
        "check_resamples": 50,
        "eval_weights": PIPELINE_WEIGHTS,
        "finetune": {"max_steps": 2, "batch_size": 4, "learning_rate": 0.003, "max_length": 48},
    },
}


def test_attribution_end_to_end(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(cfg), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Which misalignment factor drives the bias" in res.output
    assert "not replicated" in res.output
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "attribution"
    assert results["design"]["arms"] == ["v0-g0-d1", "v0-g1-d0", "v1-g0-d0", "v1-g1-d1"]
    # the arms are edits of one generated pool: same parents, same count
    arms = {a: read_jsonl(out / "arms" / f"{a}-s0.jsonl") for a in results["design"]["arms"]}
    parents = {a: [r.parents[0] for r in recs] for a, recs in arms.items()}
    assert len({tuple(p) for p in parents.values()}) == 1 and len(parents["v0-g1-d0"]) == 16
    # distribution: the generator's sentences (d1) instead of the real-like ones (d0)
    real_like = set(real_like_sentences())
    assert all(r.meta["filler"] and r.meta["filler"] not in real_like for r in arms["v0-g0-d1"])
    assert all(r.meta["filler"] in real_like for r in arms["v0-g1-d0"])
    # every arm was trained and evaluated; the signed metric is a number for each
    assert {r["arm"] for r in results["per_replicate"]} == set(arms)
    assert all(isinstance(r["value"], float) for r in results["per_replicate"])
    assert [c["factor"] for c in results["factor_checks"]] == [
        "values",
        "group_data",
        "distribution",
    ]
    assert results["answers"][0].startswith("hiring_decision (bias.p_yes_signed")
    assert (out / "report.html").is_file()
