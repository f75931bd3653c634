"""End to end on the real embedded model: augment -> mix -> LoRA fine-tune -> evaluate a task.

Small on purpose (one bias type, ratios 0 and 1, a biased and a control arm, a few training
steps, one task); the example
config examples/inheritance.yaml is the ~20-minute version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner
from weights import PIPELINE_WEIGHTS

from synthbias.cli import app
from synthbias.config import load_config
from synthbias.core.records import read_jsonl
from synthbias.studies.inheritance.training import DefaultBackendLoader

pytestmark = pytest.mark.slow

MIX = "gender-s1-r1-s0.jsonl"  # the biased arm's r = 1 mix (the control arm has its own)

CONFIG = {
    "name": "e2e",
    "kind": "inheritance",
    "generator": {
        "backend": "llamacpp",
        "batch_size": 16,
        "n_ctx": 512,
        "options": {"weights": PIPELINE_WEIGHTS},
    },
    "sampling": {"max_tokens": 24},
    "measure": {"n_resamples": 200},
    "inheritance": {
        "bias_types": ["gender"],
        "n_real": 16,
        "n_augmented": 16,
        "ratios": [0.0, 1.0],
        "control": True,
        "tasks": ["coreference"],
        "n_eval": 12,
        "finetune": {"max_steps": 3, "batch_size": 4, "learning_rate": 0.003, "max_length": 48},
    },
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inh")
    cfg_path = root / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(CONFIG))
    out = root / "out"
    res = CliRunner().invoke(app, ["run", str(cfg_path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "Bias inheritance" in res.output
    return cfg_path, out


def test_outputs_and_provenance(run: tuple[Path, Path]) -> None:
    _, out = run
    res = json.loads((out / "results.json").read_text())
    assert res["kind"] == "inheritance"
    # the augmented set actually used: the r = 1 mix (the fallback ladder caches one file per
    # dimension and rung under augmented/)
    aug = read_jsonl(out / "mixes" / MIX)
    assert len(aug) == 16 and all(r.text for r in aug)
    assert all(
        r.source == "augmented" and r.meta["bias_spec"]["bias_type"] == "gender" for r in aug
    )
    checks = json.loads((out / "checks.json").read_text())
    assert {c["dimension"] for c in checks} == {
        "explicit",
        "implicit_role",
        "representation",
        "value",
    }
    assert all(isinstance(c["carried"], bool) for c in checks)
    # "carried" is decided against the control arm (same templates, bias removed), which is
    # itself checked against the real data; at 4 texts per dimension little is decidable, so
    # no dimension is required to be carried here. Each check says how much the model wrote.
    assert {(c["arm"], c["reference"]) for c in checks} == {("s1", "control"), ("control", "real")}
    assert all(0 < c["model_share"] <= 1 for c in checks)
    assert all(c["carried_by_construction"] == (c["method"] == "filter") for c in checks)
    # the rung was chosen on its own batch, never the texts trained on and checked
    assert all(t["batch"] == "rung-choice" for t in res["fallback_ladder"])
    assert all("batch" not in r.meta["bias_spec"] for r in aug)
    mix = read_jsonl(out / "mixes" / MIX)
    assert {r.source for r in mix} == {"augmented"}
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    assert set(df["bias_type"]) == {"base", "gender"}
    assert set(df["task"]) == {"coreference"}
    assert {"accuracy", "bias.pro_anti_gap", "bias.pro_anti_gap_p"} <= set(df["metric"])
    mis = res["misalignment"]
    assert "gender|s1|1.0|0" in mis and "distribution.mmd2" in mis["gender|s1|1.0|0"]
    assert (out / "bias_by_ratio.png").exists()


def test_paired_deltas_per_arm_and_vs_control(run: tuple[Path, Path]) -> None:
    """The biased and the control arm at r = 1 are two models with their own paired change
    from the real-only model, and the biased arm's change from the control arm (the bias
    effect proper) has a finite paired CI although the headline is a gap, not a mean."""
    _, out = run
    res = json.loads((out / "results.json").read_text())
    deltas = {(d["arm"], d["ratio"]): d for d in res["paired_deltas"]}
    assert set(deltas) == {("s1", 1.0), ("control", 1.0)}
    adapters = {c["arm"]: c["adapter"] for c in res["conditions"]}
    assert len(set(adapters.values())) == 3  # real-only, biased and control: three models
    effects = {(e["arm"], e["reference"]): e for e in res["arm_effects"]}
    assert set(effects) == {("s1", "real-only"), ("control", "real-only"), ("s1", "control")}
    for e in effects.values():
        assert e["metric"] == "bias.pro_anti_gap_p" and e["resampling"] == "paired; whole clusters"
        assert e["ci_low"] <= e["delta"] <= e["ci_high"] and e["half_width"] >= 0
    answers = res["task_answers"][0]
    assert {d["arm"] for d in answers["deltas"]} == {"s1", "control"}
    assert (out / "arm_effects.csv").exists() and (out / "bias_change_by_ratio.png").exists()


def test_one_replicate_headlines_say_not_replicated(run: tuple[Path, Path]) -> None:
    """One seed is one replicate: every headline is the per-replicate change, labelled "not
    replicated" with no interval or flag, and the item-level CI is kept beside it."""
    _, out = run
    res = json.loads((out / "results.json").read_text())
    assert res["replication"]["n_replicates"] == 1 and not res["replication"]["replicated"]
    heads = {(h["arm"], h["reference"]): h for h in res["headlines"]}
    assert set(heads) == {("s1", "real-only"), ("control", "real-only"), ("s1", "control")}
    for key, h in heads.items():
        assert h["status"] == "not replicated" and h["ci_low"] is None and not h["detected"]
        effect = next(e for e in res["arm_effects"] if (e["arm"], e["reference"]) == key)
        assert h["estimate"] == pytest.approx(effect["delta"])
        assert h["item_level"]["ci_low"] == pytest.approx(effect["ci_low"])
    assert len(res["replicate_effects"]) == 3
    assert "not replicated" in (out / "report.html").read_text()


def test_adapter_changed_the_model(run: tuple[Path, Path]) -> None:
    cfg_path, out = run
    cfg = load_config(cfg_path)
    res = json.loads((out / "results.json").read_text())
    adapter = next(c["adapter"] for c in res["conditions"] if c["ratio"] == 1.0)
    loader = DefaultBackendLoader(cfg.inheritance, cfg.generator)
    train_texts = [f"{r.meta['prompt']}\n{r.text}" for r in read_jsonl(out / "mixes" / MIX)][:6]
    base = loader(None)
    try:
        before = [lp.total for lp in base.logprobs(train_texts)]
    finally:
        base.close()
    tuned = loader(out / "adapters" / adapter)
    try:
        after = [lp.total for lp in tuned.logprobs(train_texts)]
    finally:
        tuned.close()
    assert (out / "adapters" / adapter / "adapter_config.json").exists()
    # training raised the likelihood of its own data: the adapter changed the model's outputs
    assert sum(after) > sum(before) + 1.0, (before, after)


def test_rerun_reuses_every_step(run: tuple[Path, Path]) -> None:
    cfg_path, out = run
    res = CliRunner().invoke(app, ["run", str(cfg_path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    t = json.loads((out / "results.json").read_text())["timing"]
    assert t["augment_seconds"] == 0 and t["train_seconds"] == 0 and t["eval_seconds"] == 0
