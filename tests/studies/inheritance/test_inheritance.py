"""The bias-inheritance sweep with fakes: outputs, step caching and exact invalidation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from synthbias.config import parse_config
from synthbias.core.records import Record
from synthbias.generate.fake import FakeBackend
from synthbias.studies.inheritance.attribution import downstream_harm, harm_scores
from synthbias.studies.inheritance.runner import run_inheritance


class CountingTrainer:
    """Writes a marker 'adapter' recording the augmented share of its training set."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, records: Sequence[Record], out_dir: Path, seed: int) -> dict[str, Any]:
        share = sum(r.source == "augmented" for r in records) / len(records)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "share.txt").write_text(str(share))
        self.calls.append(share)
        return {"share": share, "n": len(records)}


def fake_loader(adapter_dir: Path | None) -> FakeBackend:
    return FakeBackend()


def _config(**over: Any):
    inh = {
        "bias_types": ["gender", "religion"],
        "n_real": 16,
        "n_augmented": 16,
        "ratios": [0.0, 0.5, 1.0],
        "tasks": ["topic_classification", "pronoun_completion"],
        "n_eval": 8,
        "misalignment": False,
    } | over
    return parse_config(
        {
            "name": "t",
            "kind": "inheritance",
            "generator": {"backend": "fake"},
            "measure": {"n_resamples": 100, "embedding": False},
            "inheritance": inh,
        }
    )


def test_sweep_outputs_and_caching(tmp_path: Path) -> None:
    trainer = CountingTrainer()
    cfg = _config()
    res = run_inheritance(
        cfg, tmp_path, backend=FakeBackend(), trainer=trainer, backend_loader=fake_loader
    )
    # r = 0 is shared by both bias types: 1 + 2 bias types x 2 ratios = 5 adapters
    assert sorted(trainer.calls) == [0.0, 0.5, 0.5, 1.0, 1.0]
    assert res["kind"] == "inheritance"
    conds = res["conditions"]
    assert len(conds) == 6
    assert {c["summary"]["augmented_share"] for c in conds} == {0.0, 0.5, 1.0}
    assert {c["adapter"] for c in conds if c["ratio"] == 0}.__len__() == 1
    import pandas as pd

    df = pd.read_csv(tmp_path / "results.csv")
    assert {"task", "bias_type", "ratio", "seed", "metric", "value", "ci_low", "ci_high"} <= set(
        df.columns
    )
    assert set(df["bias_type"]) == {"base", "gender", "religion"}
    assert set(df["task"]) == {"topic_classification", "pronoun_completion"}
    assert (tmp_path / "performance_by_ratio.png").stat().st_size > 1000
    assert "performance_by_ratio.png" in res["plots"]
    checks = json.loads((tmp_path / "checks.json").read_text())
    assert {c["bias_type"] for c in checks} == {"gender", "religion"}
    # 2 bias types x 4 dimensions, each biased arm against the control (here a strength-0 set
    # written for the check alone), and that control against the real data
    assert len(checks) == 16
    assert {(c["arm"], c["reference"]) for c in checks} == {("s1", "control"), ("check-s0", "real")}
    mixes = sorted(p.name for p in (tmp_path / "mixes").glob("*.jsonl"))
    assert "real-r0-s0.jsonl" in mixes and "gender-r0.5-s0.jsonl" in mixes
    first = [json.loads(line) for line in (tmp_path / "mixes" / "gender-r0.5-s0.jsonl").open()]
    assert {r["source"] for r in first} == {"real", "augmented"}
    assert all(r["meta"]["mix"]["ratio"] == 0.5 for r in first)

    # rerun: nothing retrained, same table
    again = CountingTrainer()
    res2 = run_inheritance(
        cfg, tmp_path, backend=FakeBackend(), trainer=again, backend_loader=fake_loader
    )
    assert again.calls == []
    assert pd.read_csv(tmp_path / "results.csv").equals(df)
    assert res2["conditions"] == res["conditions"]

    # a new ratio trains exactly the new sets; n_eval re-evaluates without retraining
    more = CountingTrainer()
    run_inheritance(
        _config(ratios=[0.0, 0.25, 0.5, 1.0], n_eval=10),
        tmp_path,
        backend=FakeBackend(),
        trainer=more,
        backend_loader=fake_loader,
    )
    assert sorted(more.calls) == [0.25, 0.25]


def test_harm_and_correlation_arithmetic() -> None:
    class Spec:
        def __init__(self, name: str) -> None:
            self.name, self.bias_related = name, True
            self.primary_metric, self.bias_metric = "acc", "gap"

    class T:
        def __init__(self, name: str) -> None:
            self.spec = Spec(name)

    table = []
    for ratio, gap in [(0.0, 0.1), (0.5, 0.3), (1.0, 0.6)]:
        for bt in ("gender", "religion"):
            table.append(
                dict(
                    bias_type=bt,
                    ratio=ratio,
                    seed=0,
                    task="t",
                    metric="gap",
                    value=gap + (0.05 * ratio if bt == "religion" else 0),
                )
            )
            table.append(
                dict(
                    bias_type=bt,
                    ratio=ratio,
                    seed=0,
                    task="t",
                    metric="acc",
                    value=0.9 - ratio / 10,
                )
            )
    harm = downstream_harm(table, [T("t")])
    g = {(h["bias_type"], h["ratio"]): h for h in harm}
    assert g[("gender", 0.5)]["bias_delta"] == pytest.approx(0.2)
    assert g[("religion", 1.0)]["bias_delta"] == pytest.approx(0.55)
    assert g[("gender", 1.0)]["performance_delta"] == pytest.approx(-0.1)
    # the r = 0 anchor is not a point of the attribution
    assert all(k[2] > 0 for k in harm_scores(harm))


def test_config_validation_names_key() -> None:
    from synthbias.core.schema import ConfigError

    with pytest.raises(ConfigError, match="inheritance.bias_types.*unknown bias types"):
        parse_config({"kind": "inheritance", "inheritance": {"bias_types": ["caste"]}})
    with pytest.raises(ConfigError, match="inheritance.ratios"):
        parse_config({"kind": "inheritance", "inheritance": {"ratios": [0.5, 0.5]}})
    with pytest.raises(ConfigError, match="inheritance.finetune.rank: unknown key"):
        parse_config({"kind": "inheritance", "inheritance": {"finetune": {"rank": 4}}})


class KeyedFakeTrainer:
    """The real trainer's cache keys and example building, with the training faked."""

    def __init__(self, study) -> None:
        from synthbias.studies.inheritance.training import LoRATrainer, training_examples

        self.real = LoRATrainer(study)
        self.study = study
        self.build = training_examples
        self.calls: list[list] = []

    def key(self, records, seed):
        return self.real.key(records, seed)

    def __call__(self, records, out_dir: Path, seed: int) -> dict[str, Any]:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.calls.append(self.build(records, self.study))
        return {"n": len(records)}


def test_mitigations_in_the_ratio_pipeline(tmp_path: Path) -> None:
    shared = tmp_path / "cache"
    base_cfg = _config(bias_types=["gender"], ratios=[0.0, 1.0])
    t0 = KeyedFakeTrainer(base_cfg.inheritance)
    run_inheritance(
        base_cfg,
        tmp_path / "none",
        backend=FakeBackend(),
        trainer=t0,
        backend_loader=fake_loader,
        cache_dir=shared,
    )
    assert len(t0.calls) == 2

    # mask_loss changes only the augmented examples: the r = 0 adapter is reused
    cfg = _config(
        bias_types=["gender"],
        ratios=[0.0, 1.0],
        mitigation={"strategies": ["mask_loss", "contrastive"]},
    )
    t1 = KeyedFakeTrainer(cfg.inheritance)
    run_inheritance(
        cfg,
        tmp_path / "mask",
        backend=FakeBackend(),
        trainer=t1,
        backend_loader=fake_loader,
        cache_dir=shared,
    )
    assert len(t1.calls) == 1
    (examples,) = t1.calls
    assert any(e.ignore_spans for e in examples)  # group terms masked out of the loss
    mix = [json.loads(x) for x in (tmp_path / "mask" / "mixes" / "gender-r1-s0.jsonl").open()]
    twins = [r for r in mix if r["meta"].get("mitigation") == "contrastive"]
    assert twins and len(mix) == 16 + len(twins)

    # token tags every example, the real ones too: both adapters are new
    cfg = _config(bias_types=["gender"], ratios=[0.0, 1.0], mitigation={"strategies": ["token"]})
    t2 = KeyedFakeTrainer(cfg.inheritance)
    run_inheritance(
        cfg,
        tmp_path / "token",
        backend=FakeBackend(),
        trainer=t2,
        backend_loader=fake_loader,
        cache_dir=shared,
    )
    assert len(t2.calls) == 2
    assert all(e.prompt.startswith("<|") for ex in t2.calls for e in ex)
    assert t2.real.lora_config(0).extra_special_tokens == ["<|augmented|>", "<|real|>"]


def test_control_arm_and_strength_sweep(tmp_path: Path) -> None:
    trainer = CountingTrainer()
    cfg = _config(
        bias_types=["gender"],
        ratios=[0.0, 0.5],
        strength=[0.5, 1.0],
        control=True,
        fallback=["prompt", "opening"],
    )
    assert cfg.inheritance.strength == [0.5, 1.0]
    res = run_inheritance(
        cfg, tmp_path, backend=FakeBackend(), trainer=trainer, backend_loader=fake_loader
    )
    arms = {(c["arm"], c["ratio"]) for c in res["conditions"]}
    assert arms == {("real", 0.0), ("s0.5", 0.5), ("s1", 0.5), ("control", 0.5)}
    # every arm is mixed with the same real examples at the same ratio and seed
    real_ids = {
        arm: sorted(
            json.loads(x)["id"]
            for x in (tmp_path / "mixes" / f"gender-{arm}-r0.5-s0.jsonl").open()
            if json.loads(x)["source"] == "real"
        )
        for arm in ("s0.5", "s1", "control")
    }
    assert real_ids["s1"] == real_ids["control"] == real_ids["s0.5"]
    # the control arm is written with the same rungs and exemplar count, at strength 0
    checks = [c for c in res["augmentation_checks"] if c["arm"] == "control"]
    assert {c["requested_strength"] for c in checks} == {0.0}
    methods = {(c["arm"], c["dimension"]): c["method"] for c in res["augmentation_checks"]}
    assert all(methods[("control", d)] == methods[("s1", d)] for _, d in methods)
    # dose-response over strengths 0 (control), 0.5, 1 per dimension
    assert {d["dimension"] for d in res["dose_response"]} == set(cfg.inheritance.dimensions)
    assert all(d["strengths"] == [0.0, 0.5, 1.0] for d in res["dose_response"])
    # each biased arm against the real-only model and the control arm at the same ratio
    refs = {(e["arm"], e["reference"]) for e in res["arm_effects"]}
    assert {("s1", "real-only"), ("s1", "control"), ("control", "real-only")} <= refs
    assert ("control", "control") not in refs
    assert res["attribution"] == []  # misalignment off: no factors to attribute
    from synthbias.studies.inheritance.attribution import summary_lines

    text = "\n".join(summary_lines(res))
    assert "Dose-response" in text and "vs control" in text and "[opening]" in text


def test_check_strengths_enter_only_the_dose_response(tmp_path: Path) -> None:
    trainer = CountingTrainer()
    cfg = _config(
        bias_types=["gender"], ratios=[0.0, 1.0], check_strengths=[0.5], fallback=["prompt"]
    )
    res = run_inheritance(
        cfg, tmp_path, backend=FakeBackend(), trainer=trainer, backend_loader=fake_loader
    )
    assert len(trainer.calls) == 2  # r = 0 and the strength-1 arm at r = 1
    assert all(d["strengths"] == [0.0, 0.5, 1.0] for d in res["dose_response"])
    assert {c["arm"] for c in res["augmentation_checks"]} == {"s1", "check-s0", "check-s0.5"}


def test_strength_config_validation() -> None:
    from synthbias.core.schema import ConfigError

    assert _config(strength=0.7).inheritance.strength == [0.7]
    with pytest.raises(ConfigError, match="inheritance.strength"):
        _config(strength=[1.0, 1.0])
    with pytest.raises(ConfigError, match="inheritance.fallback"):
        _config(fallback=["opening"])


def test_changed_config_reruns_only_the_steps_whose_inputs_changed(tmp_path: Path) -> None:
    """The study is a sequence of named, cached steps; ``results["steps"]`` counts the units
    each step ran and reused, and a changed config re-runs only what its inputs changed."""
    kw = {"backend": FakeBackend(), "backend_loader": fake_loader}
    first = run_inheritance(_config(), tmp_path, trainer=CountingTrainer(), **kw)["steps"]
    # at least 2 bias types x 4 dimensions (more where the fake text climbs the fallback
    # ladder); 5 distinct training sets, evaluated with the untuned base model
    assert list(first) == ["augment", "train", "evaluate", "compare", "replicates"]
    n_aug = first["augment"]["ran"]
    assert n_aug >= 8 and first["augment"]["reused"] == 0
    assert (first["train"]["ran"], first["evaluate"]["ran"]) == (5, 6)

    same = run_inheritance(_config(), tmp_path, trainer=CountingTrainer(), **kw)["steps"]
    assert [same[s]["ran"] for s in ("augment", "train", "evaluate")] == [0, 0, 0]
    assert [same[s]["reused"] for s in ("augment", "train", "evaluate")] == [n_aug, 5, 6]

    # more evaluation items (above every task's minimum): every model is evaluated again,
    # nothing generated or trained
    sized = run_inheritance(_config(n_eval=16), tmp_path, trainer=CountingTrainer(), **kw)
    steps = sized["steps"]
    assert (steps["augment"]["ran"], steps["train"]["ran"]) == (0, 0)
    assert (steps["evaluate"]["ran"], steps["evaluate"]["reused"]) == (6, 0)

    # a new ratio: only its two training sets (one per bias type) are trained and evaluated
    ratio = run_inheritance(
        _config(n_eval=16, ratios=[0.0, 0.25, 0.5, 1.0]), tmp_path, trainer=CountingTrainer(), **kw
    )["steps"]
    assert ratio["augment"]["ran"] == 0
    assert (ratio["train"]["ran"], ratio["train"]["reused"]) == (2, 5)
    assert (ratio["evaluate"]["ran"], ratio["evaluate"]["reused"]) == (2, 6)


def test_resumed_run_keeps_its_generator(tmp_path: Path) -> None:
    """A rerun that reuses every augmented set never loads the generator, yet results.json still
    names the backend and model that wrote the sets (kept beside them in generator.json)."""
    cfg = _config(bias_types=["gender"], ratios=[0.0, 1.0])
    first = run_inheritance(cfg, tmp_path, trainer=CountingTrainer(), backend_loader=fake_loader)
    assert first["generator"]["backend"] == "fake" and first["generator"]["model_id"]
    again = run_inheritance(cfg, tmp_path, trainer=CountingTrainer(), backend_loader=fake_loader)
    assert again["steps"]["augment"]["ran"] == 0
    assert again["generator"] == first["generator"]
