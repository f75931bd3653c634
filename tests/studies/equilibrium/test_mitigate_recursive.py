"""Mitigations inside the recursive (equilibrium) study, with the fake generator."""

from __future__ import annotations

from pathlib import Path

from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.generate.fake import FakeBackend
from synthbias.studies.equilibrium.runner import run_equilibrium


def _cfg(strategies: list[str]):
    return parse_config(
        {
            "generator": {"backend": "fake"},
            "study": {
                "levels": [0.3],
                "generations": 2,
                "n": 20,
                "mitigation": {"strategies": strategies, "swap_fraction": 0.5},
            },
            "measure": {"embedding": False, "n_resamples": 100},
        }
    )


class RecordingFake(FakeBackend):
    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[str] = []

    def generate(self, prompts, params):
        self.prompts.extend(str(p) for p in prompts)
        return super().generate(prompts, params)


def test_swap_and_contrastive_applied_after_each_generation(tmp_path: Path) -> None:
    res = run_equilibrium(_cfg(["swap", "contrastive"]), tmp_path, backend=FakeBackend())
    gen1 = read_jsonl(tmp_path / "corpora" / "level-0.3" / "gen-1.jsonl")
    raw1 = read_jsonl(tmp_path / "corpora" / "level-0.3" / "raw-gen-1.jsonl")
    assert len(raw1) == 20
    swapped = [r for r in gen1 if r.meta.get("mitigation") == "swap"]
    twins = [r for r in gen1 if r.meta.get("mitigation") == "contrastive"]
    assert swapped and twins
    assert len(gen1) == 20 + len(twins)
    # every pair differs only by gender: the rule metric sees mirror labels
    by_pair: dict[str, list[str]] = {}
    for r in gen1:
        by_pair.setdefault(r.meta["pair_id"], []).append(r.text)
    assert all(len(v) <= 2 for v in by_pair.values())
    assert res["levels"][0]["generations"][1]["n"] == len(gen1)


def test_prompt_engineering_uses_fair_prompt(tmp_path: Path) -> None:
    rec = RecordingFake()
    run_equilibrium(_cfg(["prompt"]), tmp_path, backend=rec)
    assert rec.prompts and all("any gender can do any job" in p for p in rec.prompts)
    plain = RecordingFake()
    run_equilibrium(_cfg([]), tmp_path / "plain", backend=plain)
    assert not any("any gender can do any job" in p for p in plain.prompts)
