"""Replicate-level inference of the inheritance study, with fakes: per-replicate rows, headlines
over replicates (t-interval, MDE, Holm flags over the declared family), "not replicated" below 3,
and replicate i of every arm trained under the same seeds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from synthbias.config import parse_config
from synthbias.core.records import Record
from synthbias.generate.fake import FakeBackend
from synthbias.generate.protocol import TextLogprobs
from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.studies.inheritance.console import print_headlines
from synthbias.studies.inheritance.design import sweep_cells
from synthbias.studies.inheritance.replicates import headlines, ratio_slopes
from synthbias.studies.inheritance.runner import run_inheritance
from synthbias.tasks.builders import occupation_table

FEMALE = {"she", "her", "hers", "She", "Her"}
FEMALE_CODED = {o.name for o in occupation_table() if o.code(30, 70) == "female-coded"}


class SeedTrainer:
    """Records every call (augmented share, training seed, the augmentation's strengths and seeds,
    the mix seed) and writes it
    beside the 'adapter', so the loader can make each model answer a little differently."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, records: Sequence[Record], out_dir: Path, seed: int) -> dict[str, Any]:
        aug = [r for r in records if r.source == "augmented"]
        share = len(aug) / len(records)
        call = {
            "share": share,
            "seed": seed,
            "n": len(records),
            # what the fake is told about the draws behind its training set
            "strengths": sorted({r.meta["bias_spec"]["strength"] for r in aug}),
            "augment_seeds": sorted({r.seed for r in aug}),
            "mix_seeds": sorted({r.meta["mix"]["seed"] for r in records}),
        }
        self.calls.append(call)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "call.json").write_text(json.dumps(call))
        return call


class ShiftedFake(FakeBackend):
    """The fake model with female pronouns made likelier by ``shift`` nats after female-coded
    occupations (a stereotype-following shift: a uniform one cancels exactly in a pronoun
    sample balanced over occupation codes)."""

    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        out = super().logprobs(texts)
        for text, lp in zip(texts, out, strict=True):
            shift = self.shift if any(o in text for o in FEMALE_CODED) else 0.0
            lp.logprobs = [
                v + shift if t.strip(".,") in FEMALE else v
                for t, v in zip(lp.tokens, lp.logprobs, strict=True)
            ]
        return out


def shifted_loader(adapter_dir: Path | None) -> FakeBackend:
    """Models shift with their augmented share, plus a per-seed (run-to-run) term."""
    if adapter_dir is None:
        return FakeBackend()
    call = json.loads((adapter_dir / "call.json").read_text())
    noise = np.random.default_rng(call["seed"] + 17).normal(0, 0.3)
    return ShiftedFake(2.0 * call["share"] + noise)


def _config(**over: Any):
    inh = {
        "bias_types": ["gender"],
        "n_real": 16,
        "n_augmented": 16,
        "ratios": [0.0, 0.5, 1.0],
        "tasks": ["topic_classification", "pronoun_completion"],
        "n_eval": 8,
        "misalignment": False,
        "control": True,
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


def _run(tmp_path: Path, **over: Any) -> tuple[dict[str, Any], SeedTrainer]:
    trainer = SeedTrainer()
    res = run_inheritance(
        _config(**over),
        tmp_path,
        backend=FakeBackend(),
        trainer=trainer,
        backend_loader=shifted_loader,
    )
    return res, trainer


def test_replicates_expand_to_seeds_and_must_agree() -> None:
    assert InheritanceStudyConfig(replicates=5).seeds == [0, 1, 2, 3, 4]
    assert InheritanceStudyConfig(seeds=[3, 7]).n_replicates == 2
    assert InheritanceStudyConfig(replicates=2, seeds=[3, 7]).seeds == [3, 7]
    with pytest.raises(ValidationError, match="replicates"):
        InheritanceStudyConfig(replicates=3, seeds=[0, 1])
    assert InheritanceStudyConfig().seeds == [0]  # the default keeps one replicate


def test_every_arm_of_a_replicate_shares_its_seed() -> None:
    study = InheritanceStudyConfig(replicates=3, control=True, bias_types=["gender"])
    cells = sweep_cells(study)
    for i, seed in enumerate(study.seeds):
        mine = [c for c in cells if c.replicate == i]
        assert {c.seed for c in mine} == {seed}
        # its own real-only set, its own control and biased sets at every ratio > 0
        assert {(c.arm, c.ratio) for c in mine} == {
            ("real", 0.0),
            ("s1", 0.5),
            ("s1", 1.0),
            ("control", 0.5),
            ("control", 1.0),
        }


def test_three_replicates_give_t_headlines_and_adjusted_flags(tmp_path: Path) -> None:
    res, trainer = _run(tmp_path, replicates=3)

    # replicate i of the control arm trained with the same seed as of the biased arm, and each
    # replicate has its own real-only model: 5 adapters per replicate
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for c in trainer.calls:
        by_seed.setdefault(c["seed"], []).append(c)
    assert sorted(by_seed) == [0, 1, 2]
    for seed, calls in by_seed.items():
        assert sorted(c["share"] for c in calls) == [0.0, 0.5, 0.5, 1.0, 1.0]
        # biased (strength 1) and control (strength 0) sets at both ratios, all drawn under
        # this replicate's seed: augmentation, mix and training
        mixed = [c for c in calls if c["share"] > 0]
        assert sorted(c["strengths"][0] for c in mixed) == [0.0, 0.0, 1.0, 1.0]
        assert all(c["augment_seeds"] == [seed] for c in mixed)
        assert all(c["mix_seeds"] == [seed] for c in calls)
    # the augmentation is drawn per replicate
    assert {c["seed"] for c in res["augmentation_checks"]} == {0, 1, 2}

    rep = res["replication"]
    assert rep["n_replicates"] == 3 and rep["status"] == "replicated"
    assert rep["adjustment"] == "Holm" and rep["inference"] == "t"
    # pronoun_completion × gender × (s1 vs real-only, s1 vs control, control vs real-only) × 2
    assert rep["family_size"] == 6 == len(res["headlines"])

    rows = res["replicate_effects"]
    assert len(rows) == 3 * 6
    assert {r["replicate"] for r in rows} == {0, 1, 2}
    assert all("item_ci_low" in r and "item_draws" not in r for r in rows)
    for h in res["headlines"]:
        assert h["status"] == "replicated" and h["method"] == "t over replicates"
        assert h["n_replicates"] == 3 and len(h["per_replicate"]) == 3
        assert h["estimate"] == pytest.approx(np.mean(h["per_replicate"]))
        assert h["ci_low"] <= h["estimate"] <= h["ci_high"]
        assert h["mde_80"] is not None and h["p_adjusted"] >= h["p_value"]
        assert h["family_size"] == 6 and h["adjustment"] == "Holm"
        assert h["item_level"]["note"].startswith("item-level CI")
    # the replicates differ (run-to-run term), so the intervals have width
    assert any(h["ci_high"] > h["ci_low"] for h in res["headlines"])
    assert len(res["ratio_slopes"]) == 3
    assert all(s["status"] == "replicated" for s in res["ratio_slopes"])
    for name in ("headlines.csv", "replicate_effects.csv"):
        assert (tmp_path / name).is_file()
    html = (tmp_path / "report.html").read_text()
    assert "Replicate-level headlines" in html and "family of 6" in html


def test_one_replicate_is_not_replicated(tmp_path: Path) -> None:
    res, _ = _run(tmp_path)
    assert res["replication"]["status"] == "not replicated"
    assert res["replication"]["family_size"] == 0
    for h in res["headlines"]:
        assert h["status"] == "not replicated"
        assert h["ci_low"] is None and h["mde_80"] is None and h["detected"] is False
        assert h["item_level"]["ci_low"] is not None  # the item-level CI stays, as secondary
    from rich.console import Console

    console = Console(record=True, width=160)
    print_headlines(res, console)
    text = console.export_text()
    assert "not replicated" in text and "item-level" in text


def test_headlines_two_stage_and_bh() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(5):
        for ratio in (0.5, 1.0):
            draws = rng.normal(0.2 * ratio + 0.05 * i, 0.05, 200)
            rows.append(
                {
                    "task": "t",
                    "bias_type": "gender",
                    "arm": "s1",
                    "ratio": ratio,
                    "reference": "control",
                    "replicate": i,
                    "metric": "gap",
                    "delta": float(draws.mean()),
                    "item_draws": draws,
                }
            )
    heads = headlines(rows, 5, method="two_stage", adjust="bh")
    assert len(heads) == 2
    for h in heads:
        assert h["method"].startswith("two-stage") and h["adjustment"] == "Benjamini-Hochberg"
        assert h["ci_low"] < h["estimate"] < h["ci_high"]
    (slope,) = ratio_slopes(rows, 5)
    assert slope["estimate"] > 0 and slope["n_replicates"] == 5
