"""The mitigation study with the fake generator, a fake trainer and a fake probe: structure,
equal budgets, oriented metrics, paired intervals and the divergence rule."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest

from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.core.schema import ConfigError
from synthbias.generate.fake import FakeBackend
from synthbias.stats import two_way
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.inheritance.runner import LoRATrainer, run_inheritance
from synthbias.studies.mitigation import stats
from synthbias.studies.mitigation.probe import step_budget
from synthbias.studies.mitigation.runner import run_mitigation, sub_config
from synthbias.studies.mitigation.summary import format_headline


def _fake_trainer(records, out_dir: Path, seed: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"n_examples": len(records), "steps": None}


def _fake_probe(texts, out_dir, lora, steps, seed, measure) -> dict:
    """Per-occupation 'preference' from the corpus: share of texts with ' he ' plus seed noise."""
    rng = np.random.default_rng(seed)
    share = np.mean([" he " in f" {t.lower()} " for t in texts])
    per = share + 0.05 * rng.standard_normal(8)
    return {"per_sample": per.tolist(), "value": float(per.mean()), "steps": steps,
            "batch_size": lora["batch_size"], "n_tokens": 10 * steps}  # fmt: skip


def _fake_untuned(out_dir, measure, seed) -> dict:
    return {"per_sample": [0.1] * 8, "value": 0.1, "ci_low": 0.05, "ci_high": 0.15}


def _config(**extra) -> object:
    base = {
        "name": "m",
        "kind": "mitigation",
        "generator": {"backend": "fake"},
        "measure": {"embedding": False, "n_resamples": 200, "downstream": "last"},
        "study": {"levels": [0.3, 0.6], "generations": 2, "n": 24},
        "inheritance": {
            "bias_types": ["gender"],
            "n_real": 16,
            "n_augmented": 16,
            "ratios": [0.0, 0.5, 1.0],
            "tasks": ["topic_classification", "pronoun_completion"],
            "n_eval": 8,
            "misalignment": False,
        },
        "mitigation_study": {
            "equilibrium": ["swap", "contrastive+prompt"],
            "inheritance": ["mask_loss", "contrastive"],
            "seeds": [0, 1, 2],
        },
    }
    for k, v in extra.items():
        base[k] = base.get(k, {}) | v if isinstance(v, dict) else v
    return parse_config(base)


def _runners() -> dict:
    return {
        "equilibrium": functools.partial(run_equilibrium, backend=FakeBackend()),
        "inheritance": functools.partial(
            run_inheritance,
            backend=FakeBackend(),
            trainer=_fake_trainer,
            backend_loader=lambda d: FakeBackend(),
        ),
        "probe": _fake_probe,
        "untuned": _fake_untuned,
    }


def test_study_headline_budgets_and_sections(tmp_path: Path) -> None:
    res = run_mitigation(_config(), tmp_path, runners=_runners())
    assert set(res["sub_runs"]) == {
        "equilibrium/none",
        "equilibrium/swap",
        "equilibrium/contrastive+prompt",
        "inheritance/none",
        "inheritance/mask_loss",
        "inheritance/contrastive",
    }
    # equal budgets: every recursive arm, every level, every seed trained the same steps
    eq_budgets = [b for b in res["budgets"] if b["pipeline"] == "equilibrium"]
    assert {s for b in eq_budgets for s in b["steps_trained"]} == {eq_budgets[0]["steps"]}
    # the headline is the held-out probe, paired over 8 probes x 3 seeds, per strategy
    head = [r for r in res["headline"] if r["pipeline"] == "equilibrium"]
    assert {r["strategy"] for r in head} == {"swap", "contrastive+prompt"}
    assert all(r["n_seeds"] == 3 and r["n_probes"] == 8 for r in head)
    assert all("raw, unedited" in r["trained_on"] for r in head)
    for r in head:
        assert r["difference_ci_low"] <= r["difference"] <= r["difference_ci_high"]
        assert r["untuned"] == 0.1
        # what training added: the baseline-trained model minus the untuned one, paired
        assert r["baseline_minus_untuned"] == pytest.approx(r["baseline"] - 0.1)
        assert r["baseline_minus_untuned_ci_low"] <= r["baseline_minus_untuned"]
    # the fake probe's baseline-tuned model differs from the untuned one: no "untrained" note
    assert not any("not measurably" in n for n in res["notes"])
    # corpus metrics are properties of the training data, never the headline
    assert all(r["section"] == "properties of the training data" for r in res["properties"])
    assert not any(s["headline"] for s in res["summary"] if s["family"].startswith("rule"))
    # the training-time strategy was compared at the mixed ratio only
    inh = [r for r in res["headline"] if r["strategy"] == "mask_loss"]
    assert inh and {r["ratio"] for r in inh} == {0.5}
    # ratio study: each strategy vs none on the same task items, paired (from stored answers)
    ratio_rows = [r for r in res["headline"] if r["pipeline"] == "inheritance"]
    assert {r["family"] for r in ratio_rows} == {"task_bias", "control_cost"}
    for r in ratio_rows:
        assert r["ci_method"].startswith("paired bootstrap")
        assert r["difference_ci_low"] <= r["difference"] <= r["difference_ci_high"]
    lines = format_headline(res)
    assert any(line.startswith("Untuned model") for line in lines)
    assert any("equilibrium/swap" in line and "budget" in line for line in lines)
    assert (tmp_path / "mitigation_comparison.png").stat().st_size > 1000
    html = (tmp_path / "report.html").read_text()
    assert "Held-out behaviour (headline)" in html and "Properties of the training data" in html
    assert "paper (reported)" in html


def test_ratio_study_arms_get_the_same_step_budget() -> None:
    cfg = _config()
    entries = ["none", "mask_loss", "contrastive"]
    steps = {e: sub_config(cfg, "inheritance", e).inheritance.finetune.max_steps for e in entries}
    # default: the baseline's 2 epochs x ceil(16 / 8) batches, for every arm
    assert set(steps.values()) == {4}
    lora = {e: LoRATrainer(sub_config(cfg, "inheritance", e).inheritance) for e in entries}
    assert {t.lora_config(0).max_steps for t in lora.values()} == {4}
    epochs = _config(mitigation_study={"budget": "epochs"})
    assert sub_config(epochs, "inheritance", "contrastive").inheritance.finetune.max_steps is None


def test_step_budget_does_not_grow_with_a_doubled_corpus() -> None:
    lora = {"batch_size": 8, "epochs": 2}
    b = step_budget({"none": 32, "contrastive": 64}, lora, "steps")
    assert b["none"]["steps"] == b["contrastive"]["steps"] == 8
    e = step_budget({"none": 32, "contrastive": 64}, lora, "epochs")
    assert (e["none"]["steps"], e["contrastive"]["steps"]) == (8, 16)


def test_token_needs_a_mixed_ratio() -> None:
    cfg = _config(inheritance={"ratios": [0.0, 1.0]})
    with pytest.raises(ValueError, match="mixed ratios"):
        sub_config(cfg, "inheritance", "token")
    ok = sub_config(_config(), "inheritance", "token")
    assert ok.inheritance.ratios == [0.0, 0.5]  # never evaluated with a tag it never saw


def test_oriented_same_direction_is_not_divergence() -> None:
    # a male-positive term imbalance falls 0.4 -> 0.2 while a female-positive projection
    # rises -0.3 -> -0.1: raw signs move oppositely, but both say "less towards the majority"
    rng = np.random.default_rng(0)
    rows = []
    for metric, b, m in [
        ("rule.gender.gendered_term_imbalance", 0.4, 0.2),
        ("embedding.gender.mean_projection", -0.3, -0.1),
    ]:
        bo = stats.oriented(metric, b + 0.02 * rng.standard_normal(200), b)
        mo = stats.oriented(metric, m + 0.02 * rng.standard_normal(200), b)
        br, mr = two_way.independent_replicates(bo, mo, 500, seed=1)
        rows.append(
            {"pipeline": "equilibrium", "strategy": "swap", "metric": metric}
            | stats.compare(bo.mean(), mo.mean(), br, mr)
        )
    assert all(r["difference_ci_high"] < 0 for r in rows)
    assert stats.divergence_flags(rows) == []
    # a real divergence (one oriented change up, one down, both CIs excluding 0) is flagged
    up = dict(rows[1], difference=0.2, difference_ci_low=0.1, difference_ci_high=0.3)
    flags = stats.divergence_flags([rows[0], up])
    assert [f["flag"] for f in flags] == ["disagree"]
    # a change whose CI includes 0 is not a direction
    flat = dict(rows[1], difference=0.05, difference_ci_low=-0.1, difference_ci_high=0.2)
    assert stats.divergence_flags([rows[0], flat]) == []


def test_paired_bootstrap_cancels_probe_difficulty() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 1.0, 40)  # shared by both arms: same probes
    b = np.vstack([difficulty + 0.5 + 0.05 * rng.standard_normal(40) for _ in range(3)])
    m = np.vstack([difficulty + 0.3 + 0.05 * rng.standard_normal(40) for _ in range(3)])
    br, mr = two_way.paired_replicates(b, m, 1000, seed=0)
    c = stats.compare(b.mean(), m.mean(), br, mr)
    assert c["difference_ci_high"] < 0  # the 0.2 drop is resolved despite sd-1 probe spread
    assert 0 < c["detectable_change"] < 0.2  # and the design's power says so
    ur_b, ur_m = two_way.independent_replicates(b.ravel(), m.ravel(), 1000, seed=0)
    u = stats.compare(b.mean(), m.mean(), ur_b, ur_m)
    assert u["difference_ci_high"] - u["difference_ci_low"] > 3 * (
        c["difference_ci_high"] - c["difference_ci_low"]
    )
    with pytest.raises(ValueError, match="same seeds x probes"):
        two_way.paired_replicates(b, m[:2], 10)


def test_reduction_undefined_when_baseline_ci_includes_zero() -> None:
    rng = np.random.default_rng(1)
    b = rng.normal(0.0, 1.0, (1, 30))
    m = b - 0.1
    br, mr = two_way.paired_replicates(b, m, 500, seed=0)
    c = stats.compare(b.mean(), m.mean(), br, mr)
    assert c["baseline_ci_low"] < 0 < c["baseline_ci_high"]
    assert math.isnan(c["reduction"]) and c["reduction_status"].startswith("undefined")
    assert c["difference"] == pytest.approx(-0.1)


def test_pooling_averages_replicates_not_bounds() -> None:
    rng = np.random.default_rng(2)
    a = (1.0, 0.5, 1.0 + 0.1 * rng.standard_normal(2000), 0.5 + 0.1 * rng.standard_normal(2000))
    c = (3.0, 1.0, 3.0 + 0.1 * rng.standard_normal(2000), 1.0 + 0.1 * rng.standard_normal(2000))
    p = stats.pooled([a, c])
    assert p["baseline"] == pytest.approx(2.0) and p["n"] == 2
    # independent levels: the pooled CI is narrower than the average of the two levels' CIs
    one = stats.compare(*a)
    width = p["difference_ci_high"] - p["difference_ci_low"]
    assert width < 0.85 * (one["difference_ci_high"] - one["difference_ci_low"])


def test_orientation_is_required() -> None:
    assert stats.orientation("coreference.bias.pro_anti_gap").sign == 1
    assert stats.orientation("hiring_decision.bias.invite_gap").meaning.startswith("away")
    with pytest.raises(KeyError, match="no orientation"):
        stats.orientation("rule.something_new")
    with pytest.raises(ConfigError, match="no orientation"):
        parse_config({"kind": "mitigation", "mitigation_study": {"families": {"x": "rule.zz"}}})


def test_unknown_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mitigation_study.equilibrium.*unknown strategy 'tag'"):
        parse_config({"kind": "mitigation", "mitigation_study": {"equilibrium": ["tag"]}})


def test_note_when_training_did_not_move_the_probe_model() -> None:
    from synthbias.studies.mitigation.runner import untrained_notes

    row = {"level": 0.6, "steps_baseline": 4, "baseline_minus_untuned": 0.001}
    flat = row | {"baseline_minus_untuned_ci_low": -0.5, "baseline_minus_untuned_ci_high": 0.5}
    moved = row | {"baseline_minus_untuned_ci_low": 0.1, "baseline_minus_untuned_ci_high": 0.5}
    (note,) = untrained_notes([flat])
    assert "not measurably different" in note and "4 steps" in note
    assert untrained_notes([moved]) == []


def test_stratified_bootstrap_keeps_both_groups() -> None:
    # probes 0-1 female-coded (+1 each), 2-3 male-coded (-1 each): one seed, baseline 0 everywhere
    b = np.zeros((1, 4))
    m = np.array([[1.0, 1.0, -1.0, -1.0]])
    strata = ["female", "female", "male", "male"]
    _, mr = two_way.paired_replicates(b, m, 500, seed=0, strata=strata)
    # every stratified replicate draws 2 female and 2 male probes: the mean is exactly 0
    assert np.allclose(mr, 0.0)
    # unstratified draws can take 3 or 4 probes of one group: the mean is not always 0
    _, mu = two_way.paired_replicates(b, m, 500, seed=0)
    assert np.abs(mu).max() >= 0.5
    with pytest.raises(ValueError, match="one label per probe"):
        two_way.paired_replicates(b, m, 10, strata=strata[:3])
    with pytest.raises(ValueError, match="stratum 'male' has 1"):
        two_way.paired_replicates(b, m, 10, strata=["female"] * 3 + ["male"])


def test_probe_trains_on_raw_generator_output_not_edited_corpus(tmp_path: Path) -> None:
    seen: dict[str, list[list[str]]] = {}

    def recording_probe(texts, out_dir, lora, steps, seed, measure) -> dict:
        arm = Path(out_dir).parent.name
        seen.setdefault(arm, []).append(list(texts))
        return _fake_probe(texts, out_dir, lora, steps, seed, measure)

    runners = _runners() | {"probe": recording_probe}
    res = run_mitigation(_config(), tmp_path, runners=runners)
    for arm in ("swap", "contrastive+prompt"):
        run = tmp_path / "equilibrium" / arm
        raw = sorted(run.rglob("raw-gen-2.jsonl"))
        assert len(raw) == 2, f"{arm}: raw-gen-2 corpora {raw}"
        raw_texts = {r.text for p in raw for r in read_jsonl(p) if r.text.strip()}
        edited = {r.text for p in run.rglob("gen-2.jsonl") for r in read_jsonl(p)}
        assert edited - raw_texts  # the strategy really edited the corpus it passed on
        trained = {t for texts in seen[arm] for t in texts}
        assert trained and trained <= raw_texts
        assert not (trained & (edited - raw_texts))
    assert res["headline"]


def test_rerun_reuses_every_arm_and_counts_its_steps(tmp_path: Path) -> None:
    """The mitigation study is a sequence of cached arms (each a study of cached steps): a
    rerun of the same config generates, trains and evaluates nothing again."""
    first = run_mitigation(_config(), tmp_path, runners=_runners())
    assert first["steps"]["arms"]["ran"] == 6 and "headline" in first["steps"]
    assert set(first["arm_steps"]) == set(first["sub_runs"])
    assert first["arm_steps"]["equilibrium/swap"]["generate"]["ran"] > 0
    # the arms share the inheritance cache: an arm trains only the sets it changes
    assert first["arm_steps"]["inheritance/none"]["train"]["ran"] > 0
    again = run_mitigation(_config(), tmp_path, runners=_runners())
    for arm, counts in again["arm_steps"].items():
        for step in ("seed", "generate", "augment", "train", "evaluate"):
            if step in counts:
                assert counts[step]["ran"] == 0, (arm, step, counts[step])
    assert again["headline"] == first["headline"]


def test_console_flags_a_zero_width_interval() -> None:
    """A control task at accuracy 1.0 in both arms gives [+0.000, +0.000]: the console says
    that is not an informative CI instead of printing it as a certain zero."""
    row = {
        "family": "control_cost",
        "strategy": "swap",
        "metric": "topic_classification.accuracy",
        "difference": 0.0,
        "difference_ci_low": 0.0,
        "difference_ci_high": 0.0,
    }
    wide = {**row, "strategy": "token", "difference_ci_low": -0.1, "difference_ci_high": 0.1}
    lines = format_headline({"summary": [row, wide]})
    swap = next(line for line in lines if line.startswith("  swap"))
    token = next(line for line in lines if line.startswith("  token"))
    assert "not an informative CI" in swap and "not an informative CI" not in token
