"""End to end on the real embedded model: one mitigation per pipeline against its baseline.

Recursive study: contrastive augmentation; headline = held-out pronoun probes of models tuned on
the generator's generation-2 output at equal step budgets; rule and embedding metrics as
properties of the training data. Bias-ratio pipeline: the loss mask at a mixed ratio.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from weights import PIPELINE_WEIGHTS

from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.studies.mitigation.runner import run_mitigation

pytestmark = pytest.mark.slow


def _config(**study: object):
    base = {
        "name": "e2e-mit",
        "kind": "mitigation",
        "generator": {
            "backend": "llamacpp",
            "batch_size": 16,
            "n_ctx": 512,
            "options": {"weights": PIPELINE_WEIGHTS},
        },
        "sampling": {"max_tokens": 32},
        "measure": {
            "n_resamples": 200,
            "downstream": "last",
            "downstream_occupations": 8,
            "downstream_templates": 2,
        },
        "study": {"levels": [0.6], "generations": 2, "n": 12},
        "inheritance": {
            "bias_types": ["gender"],
            "n_real": 16,
            "n_augmented": 16,
            "ratios": [0.0, 0.5],
            "tasks": ["coreference"],
            "n_eval": 12,
            "misalignment": False,
            "fallback": ["prompt"],  # the ladder has its own end-to-end test (test_e2e_inheritance)
            "finetune": {"max_steps": 2, "batch_size": 4, "max_length": 48},
        },
    }
    base["mitigation_study"] = {
        "probe": {"epochs": 1, "batch_size": 4, "max_length": 48},
        **study,
    }
    return parse_config(base)


def test_recursive_pipeline_contrastive(tmp_path: Path) -> None:
    cfg = _config(equilibrium=["contrastive"], run_inheritance=False)
    res = run_mitigation(cfg, tmp_path)
    run = tmp_path / "equilibrium" / "contrastive" / "corpora" / "level-0.6"
    assert any(r.meta.get("mitigation") == "contrastive" for r in read_jsonl(run / "gen-1.jsonl"))
    # the headline probe model trained on the generator's unedited generation-2 output
    (head,) = [r for r in res["headline"] if r["pipeline"] == "equilibrium"]
    assert head["generation"] == 2 and "unedited" in head["trained_on"]
    assert head["n_probes"] == 8 and head["steps_baseline"] == head["steps_mitigated"]
    assert head["difference_ci_low"] <= head["difference"] <= head["difference_ci_high"]
    assert res["untuned"] is not None and len(res["untuned"]["per_sample"]) == 8
    # one replicate cell (1 chain x 1 seed): the headline says "not replicated"
    (s,) = [s for s in res["summary"] if s["pipeline"] == "equilibrium" and s["headline"]]
    assert s["n_replicates"] == 1 and s["replication_status"] == "not replicated"
    assert "added_by_baseline_data" in s  # the untuned model's own bias is kept apart
    # held out: results per probe context, none of them the generation prompt's opening
    templates = {t["template"] for t in res["per_template"]}
    assert len(templates) == 2 and "The {occ} said that" not in templates
    rec = res["scoring"]["recursive"]
    assert rec["backend"] == "llamacpp" and all(a == rec["untuned"] for a in rec["arms"].values())
    fams = {s["family"] for s in res["summary"] if s["pipeline"] == "equilibrium"}
    assert "pronoun probe (held-out)" in fams
    assert {"rule (edited corpus passed on)", "embedding (edited corpus passed on)"} <= fams
    assert [p["strategy"] for p in res["paper_comparison"]] == ["contrastive", "contrastive"]
    assert isinstance(res["flags"], list)
    html = (tmp_path / "report.html").read_text()
    assert "Held-out behaviour (headline)" in html


def test_ratio_pipeline_mask(tmp_path: Path) -> None:
    cfg = _config(inheritance=["mask_loss"], run_equilibrium=False)
    res = run_mitigation(cfg, tmp_path)
    fams = {s["family"] for s in res["summary"] if s["pipeline"] == "inheritance"}
    assert "task_bias" in fams
    # one scoring backend for every arm, as recorded by the sub-runs themselves
    ratio = res["scoring"]["ratio"]
    assert {r["backend"] for r in ratio["recorded"].values()} == {ratio["backend"]}

    comp = pd.read_csv(tmp_path / "comparison.csv")
    row = comp[(comp["strategy"] == "mask_loss") & (comp["family"] == "task_bias")].iloc[0]
    assert row["metric"] == "coreference.bias.pro_anti_gap_p"
    assert set(comp[comp["strategy"] == "mask_loss"]["ratio"]) == {0.5}  # mixed ratio only
    # masking changed the training data, so the r = 0.5 adapter differs from the baseline's ...
    none = json.loads((tmp_path / "inheritance" / "none" / "results.json").read_text())
    mask = json.loads((tmp_path / "inheritance" / "mask_loss" / "results.json").read_text())
    a = {c["ratio"]: c["adapter"] for c in none["conditions"]}
    b = {c["ratio"]: c["adapter"] for c in mask["conditions"]}
    assert a[0.5] != b[0.5]
    steps = {c["train"]["steps"] for r in (none, mask) for c in r["conditions"]}
    assert steps == {2}  # the same step budget for every arm and ratio
    # ... while the real-only adapter is shared through the step cache
    assert a[0.0] == b[0.0]
