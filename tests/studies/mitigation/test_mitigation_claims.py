"""The mitigation study's figures mean what they say (issue 27 items 10-13, issue 26's mitigation
part): held-out probes, one scoring backend for all arms, the reduction of what the data did,
seeded probe occupations, and headlines over replicates. Fake generator, trainer and probe."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_mitigation_study import _config, _fake_untuned, _runners

from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.generate.fake import FakeBackend
from synthbias.lexicon import load_lexicon
from synthbias.stats import two_way
from synthbias.stats.replicates import replicate_estimate
from synthbias.studies.inheritance import training
from synthbias.studies.mitigation import stats
from synthbias.studies.mitigation.runner import (
    arm_scoring,
    run_mitigation,
    scoring_backend,
    sub_config,
    summarise,
)
from synthbias.studies.mitigation.summary import HEADLINE_FAMILY, format_headline, paper_comparison
from synthbias.studies.probe import (
    PREFERENCE,
    default_pronoun_templates,
    generation_openings,
    probe_set,
    sample_occupations,
    seed_overlap,
    select_occupations,
)

TEMPLATES = ("After the meeting, the {occ} explained that", "The {occ} was late today because")


def _probe(texts, out_dir, lora, steps, seed, measure) -> dict:
    """As the study's fake probe, plus a per-template preference (the second template leans
    0.2 nats further towards the stereotype)."""
    rng = np.random.default_rng(seed)
    share = np.mean([" he " in f" {t.lower()} " for t in texts])
    per = share + 0.05 * rng.standard_normal(8)
    v = float(per.mean())
    return {"per_sample": per.tolist(), "value": v, "steps": steps,
            "per_template": {TEMPLATES[0]: v - 0.1, TEMPLATES[1]: v + 0.1},
            "batch_size": lora["batch_size"], "n_tokens": 10 * steps}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """One replicated run: 2 chains x 2 probe seeds = 4 replicate cells per recursive arm."""
    seen: list[str] = []
    texts_of: dict[str, list[str]] = {}

    def recording(texts, out_dir, lora, steps, seed, measure) -> dict:
        seen.append(str(out_dir))
        texts_of[str(out_dir)] = list(texts)
        return _probe(texts, out_dir, lora, steps, seed, measure)

    cfg = _config(
        study={"levels": [0.3, 0.6], "generations": 2, "n": 24, "chains": 2},
        mitigation_study={"equilibrium": ["swap"], "inheritance": ["token"], "seeds": [0, 1]},
    )
    out = tmp_path_factory.mktemp("claims")
    res = run_mitigation(cfg, out, runners=_runners() | {"probe": recording})
    res["_texts_of"] = texts_of
    res["_out"] = out
    return res, seen


# --------------------------------------------------------------------------- 10: held out


def test_probes_never_begin_with_a_generation_opening() -> None:
    assert "The {occ} said that" in generation_openings()
    # today's check looked at seed templates only: the prompt's opening passed as held out
    assert seed_overlap(["The {occ} said that"]) == ["The {occ} said that"]
    assert seed_overlap(["the {Occ}  said that, honestly,"]) != []
    templates = default_pronoun_templates()
    assert seed_overlap(templates) == []
    openings = [o.lower() for o in generation_openings()]
    assert not [t for t in templates if any(t.lower().startswith(o) for o in openings)]


def test_results_per_template(run) -> None:
    res, _ = run
    rows = [t for t in res["per_template"] if t["strategy"] == "swap"]
    assert {t["template"] for t in rows} == set(TEMPLATES)
    assert all(t["n_replicates"] == 4 and t["ci_low"] <= t["difference"] for t in rows)
    head = next(s for s in res["summary"] if s["strategy"] == "swap" and s.get("headline"))
    # the template offsets are the same in both arms: each template's difference is the headline's
    for t in rows:
        assert t["difference"] == pytest.approx(head["replicated_difference"])
    assert any(line.startswith("Per probe template") for line in format_headline(res))


# --------------------------------------------------------------------------- 11: one backend


def test_every_ratio_arm_is_scored_by_the_same_backend(monkeypatch, tmp_path: Path) -> None:
    """The inheritance loader scores an adapter that added tokens in transformers; every other
    arm of the same comparison must then be scored there too (not llama.cpp on Q4_1)."""
    used: dict[str, str] = {}
    added = {"token": {"<real>": 1}}
    arm = {"arm": ""}
    monkeypatch.setattr(
        training, "read_train_meta", lambda d: {"added_tokens": added.get(arm["arm"])}
    )
    monkeypatch.setattr(
        training,
        "load_eval_model",
        lambda d, backend, *a, **kw: used.__setitem__(arm["arm"], backend) or FakeBackend(),
    )
    cfg = _config(mitigation_study={"inheritance": ["token", "swap"]})
    for entry in ("none", "token", "swap"):
        arm["arm"] = entry
        sub = sub_config(cfg, "inheritance", entry)
        training.DefaultBackendLoader(sub.inheritance, sub.generator)(tmp_path)
    assert used == {"none": "hf", "token": "hf", "swap": "hf"}
    settings = [arm_scoring(sub_config(cfg, "inheritance", e), e) for e in used]
    assert all(s == settings[0] for s in settings)
    # without a token arm the configured backend (auto: the default) scores every arm
    plain = _config(mitigation_study={"inheritance": ["swap"]})
    assert scoring_backend(plain) == "auto"
    backends = {sub_config(plain, "inheritance", e).inheritance.eval_backend for e in used}
    assert backends == {"auto"}
    bad = _config(mitigation_study={"inheritance": ["token"], "scoring": "llamacpp"})
    with pytest.raises(ValueError, match="same backend"):
        scoring_backend(bad)


def test_results_record_one_scoring_setting_per_pipeline(run) -> None:
    res, _ = run
    ratio = res["scoring"]["ratio"]
    assert ratio["backend"] == "hf" and set(ratio["arms"]) == {"none", "token"}
    assert {tuple(sorted(a.items())) for a in ratio["arms"].values()} == {
        (("backend", "hf"), ("weights", ratio["weights"]))
    }
    assert {r["backend"] for r in ratio["recorded"].values()} == {"hf"}
    rec = res["scoring"]["recursive"]
    assert all(a == rec["untuned"] for a in rec["arms"].values())


# --------------------------------------------------------------------------- 12: reduction


def test_reduction_of_what_the_data_added() -> None:
    # untuned 0.9 nats, baseline-trained 1.0, mitigated 0.95: the data added 0.1 and the
    # edit removed half of it, though only 5 % of the total
    rng = np.random.default_rng(0)
    u = np.full((1, 40), 0.9) + 0.01 * rng.standard_normal(40)
    b = u + 0.1
    m = u + 0.05
    br, mr = two_way.paired_replicates(b, m, 500, seed=0)
    _, ur = two_way.paired_replicates(b, u, 500, seed=0)
    c = stats.compare(b.mean(), m.mean(), br, mr)
    a = stats.added_reduction(b.mean(), m.mean(), u.mean(), br, mr, ur)
    assert c["reduction"] == pytest.approx(0.05, abs=0.002)
    assert a["reduction_of_added"] == pytest.approx(0.5)
    assert a["reduction_of_added_ci_low"] <= 0.5 <= a["reduction_of_added_ci_high"]
    # training added nothing measurable: the reduction of the added part is undefined
    flat = stats.added_reduction(1.0, 0.9, 1.0, br * 0 + 1.0, mr, br * 0 + 1.0)
    assert math.isnan(flat["reduction_of_added"])


def test_paper_comparison_labels_both_reductions(run) -> None:
    row = {
        "pipeline": "equilibrium",
        "strategy": "contrastive",
        "family": HEADLINE_FAMILY,
        "metric": PREFERENCE,
        "difference": -0.5,
        "difference_ci_low": -0.6,
        "difference_ci_high": -0.4,
        "reduction": 0.3,
        "reduction_ci_low": 0.2,
        "reduction_ci_high": 0.4,
        "reduction_of_added": 0.9,
        "reduction_of_added_ci_low": 0.8,
        "reduction_of_added_ci_high": 1.0,
    }
    (paper, _) = paper_comparison([row])
    assert "of what the data added (b - m)/(b - u): +0.90" in paper["ours (95% CI)"]
    assert "of the total bias (b - m)/b" in paper["ours (95% CI)"]
    # the verdict is for the paper's quantity (the total) only: 0.91 is outside [0.2, 0.4]
    assert paper["verdict"].startswith("not reproduced") and "(b - m)/b" in paper["verdict"]
    # in a run, the added reduction uses the untuned model (0.1) of the paired replicates
    res, _ = run
    head = next(s for s in res["summary"] if s["strategy"] == "swap" and s.get("headline"))
    b, m = head["baseline"], head["mitigated"]
    assert head["added_by_baseline_data"] == pytest.approx(b - 0.1)
    if head["reduction_of_added_status"] == "defined":
        assert head["reduction_of_added"] == pytest.approx((b - m) / (b - 0.1))


# --------------------------------------------------------------------------- 13: occupations


def test_probe_occupations_are_a_seeded_sample_per_code() -> None:
    mc = parse_config({"measure": {"downstream_occupations": 10}}).measure
    occ, _, lo, hi = probe_set(mc)
    assert sorted(occ.values()) == ["female"] * 5 + ["male"] * 5
    assert probe_set(mc)[0] == occ  # seeded: the same set every call
    table = select_occupations(lo=lo, hi=hi)
    first = {g: [o for o, og in table.items() if og == g][:5] for g in ("female", "male")}
    assert set(occ) != {o for names in first.values() for o in names}  # not table order
    # every coded occupation can be drawn: over seeds, the sample reaches the table's end
    names = {f"job{i:02d}": "female" if i % 2 else "male" for i in range(40)}
    drawn = set().union(*(sample_occupations(names, 6, seed=s) for s in range(30)))
    assert len(drawn) > 30
    assert sample_occupations(names, None) == names
    assert load_lexicon().axis("gender").occupations is not None


# --------------------------------------------------------------------------- 26: replicates


def test_headline_is_the_mean_over_replicate_cells(run) -> None:
    res, seen = run
    head = next(s for s in res["summary"] if s["strategy"] == "swap" and s.get("headline"))
    assert head["n_replicates"] == 4 and head["replication_status"] == "replicated"
    ref = replicate_estimate(head["per_replicate"])
    assert head["replicated_difference"] == pytest.approx(ref.estimate)
    assert head["replicated_ci_low"] == pytest.approx(ref.ci_low)
    assert head["mde_80"] == pytest.approx(ref.mde_80)
    assert head["adjustment"] == "Holm" and head["family_size"] >= 1
    assert isinstance(head["detected"], bool)
    # every (chain, seed) cell trained in both arms: chain 1 too, not only chain 0
    for arm in ("none", "swap"):
        dirs = [d for d in seen if f"/{arm}/" in d]
        assert any("chain-1" in d for d in dirs) and len(dirs) == 2 * 4  # 2 levels x 4 cells
    assert res["replication"]["recursive"]["n_replicates"] == 4
    # chain 1's probe models trained on chain 1's raw generator output
    raw = res["_out"] / "equilibrium" / "swap" / "corpora" / "level-0.6" / "chain-1"
    raw_texts = {r.text for r in read_jsonl(raw / "raw-gen-2.jsonl")}
    (d,) = [d for d in seen if "level-0.6/swap/chain-1/seed-0" in d]
    assert set(res["_texts_of"][d]) <= raw_texts
    # the old paired bootstrap stays, named as the secondary figure
    row = next(r for r in res["headline"] if r["strategy"] == "swap")
    assert "secondary" in row["ci_method"]


def test_below_three_replicates_is_not_replicated(tmp_path: Path) -> None:
    runners = _runners() | {"probe": _probe, "untuned": _fake_untuned}
    cfg = _config(
        study={"levels": [0.3], "generations": 2, "n": 16},
        mitigation_study={"equilibrium": ["swap"], "seeds": [0, 1], "run_inheritance": False},
    )
    res = run_mitigation(cfg, tmp_path, runners=runners)
    head = next(s for s in res["summary"] if s.get("headline"))
    assert head["n_replicates"] == 2 and head["replication_status"] == "not replicated"
    assert head["replicated_ci_low"] is None and head["mde_80"] is None
    assert head["detected"] is False
    assert any("not replicated" in line for line in format_headline(res))


def test_flags_are_adjusted_over_the_family() -> None:
    rng = np.random.default_rng(0)
    reps: dict = {}
    replicates: dict = {}
    for k, shift in enumerate([0.3, 0.02, 0.0]):
        key = ("equilibrium", f"s{k}", HEADLINE_FAMILY, PREFERENCE)
        d = shift + 0.01 * rng.standard_normal((5, 6))
        reps[key] = [(1.0, 1.0 + shift, np.full(50, 1.0), np.full(50, 1.0 + shift))]
        replicates[("items", *key)] = [d]
    out = summarise(reps, 0.95, replicates)
    assert [r["family_size"] for r in out] == [3, 3, 3]
    raw = sorted(r["p_value"] for r in out)
    adj = sorted(r["p_adjusted"] for r in out)
    assert adj[0] == pytest.approx(min(1.0, 3 * raw[0]))  # Holm: the smallest times 3
    assert out[0]["detected"] and not out[2]["detected"]
    two = summarise(reps, 0.95, replicates, inference="two_stage", adjust="bh")
    assert all(r["inference"].startswith("two-stage") for r in two)
    assert {r["adjustment"] for r in two} == {"Benjamini-Hochberg"}
    assert two[0]["replicated_ci_low"] > 0.25
