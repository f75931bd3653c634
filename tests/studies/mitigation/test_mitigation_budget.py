"""Equal training budgets on the real embedded model: optimizer steps are counted by a torch
hook on every ``optimizer.step`` call, not read from a config."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from synthbias.config import parse_config
from synthbias.core.records import Record

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def count_optimizer_steps() -> Iterator[list[int]]:
    """Counts every ``torch.optim.Optimizer.step`` call made inside the block."""
    import torch.optim.optimizer as topt

    calls = [0]

    def hook(opt, args, kwargs) -> None:
        calls[0] += 1

    handle = topt.register_optimizer_step_post_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def _records() -> list[Record]:
    real = [f"The {o} finished the shift early." for o in ("clerk", "baker", "guard", "tutor")]
    aug = [
        "He is the engineer, and she is only his assistant.",
        "The nurse said she would stay late.",
        "He fixed the engine while she watched.",
        "The pilot said he was tired.",
    ]
    out = [Record(id=f"r{i}", text=t, source="real") for i, t in enumerate(real)]
    out += [
        Record(id=f"a{i}", text=t, source="augmented", meta={"bias_type": "gender"})
        for i, t in enumerate(aug)
    ]
    return out


def test_ratio_study_arms_train_the_same_optimizer_steps(tmp_path: Path) -> None:
    from synthbias.studies.inheritance.runner import LoRATrainer, apply_data_mitigations
    from synthbias.studies.mitigation.runner import sub_config

    cfg = parse_config(
        {
            "kind": "mitigation",
            "inheritance": {
                "bias_types": ["gender"],
                "n_real": 8,
                "n_augmented": 8,
                "ratios": [0.5],
                "finetune": {"epochs": 1, "batch_size": 4, "max_length": 32},
            },
        }
    )
    counts, sizes = {}, {}
    for entry in ("none", "contrastive"):
        study = sub_config(cfg, "inheritance", entry).inheritance
        recs = apply_data_mitigations(_records(), study, seed=0)
        sizes[entry] = len(recs)
        with count_optimizer_steps() as calls:
            info = LoRATrainer(study)(recs, tmp_path / entry, seed=0)
        counts[entry] = calls[0]
        assert info["steps"] == calls[0] and info["n_tokens"] > 0
    assert sizes["contrastive"] > sizes["none"]  # the corpus did double its augmented part ...
    # ... and under budget: steps both arms still took the baseline's 1 x ceil(8 / 4) steps
    assert counts == {"none": 2, "contrastive": 2}
    assert math.ceil(sizes["contrastive"] / 4) > 2  # epochs would have given it more


def test_probe_arms_same_seed_and_budget(tmp_path: Path) -> None:
    """Two recursive-study arms (a corpus and its contrastive doubling) tuned with the same seed
    and step budget, then probed on held-out pronoun contexts."""
    from synthbias.mitigate.contrastive import contrastive_augment
    from synthbias.studies.mitigation.probe import lora_settings, step_budget, train_and_probe

    cfg = parse_config(
        {
            "kind": "mitigation",
            "measure": {
                "n_resamples": 100,
                "downstream_occupations": 4,
                "downstream_templates": 1,
            },
            "mitigation_study": {"probe": {"epochs": 1, "batch_size": 4, "max_length": 32}},
        }
    )
    base = _records()
    arms = {
        "none": [r.text for r in base],
        "contrastive": [r.text for r in contrastive_augment(base, bias_type="gender")],
    }
    lora = lora_settings(cfg.mitigation_study.probe)
    budget = step_budget({e: len(t) for e, t in arms.items()}, lora, "steps")
    out = {}
    for e, texts in arms.items():
        with count_optimizer_steps() as calls:
            out[e] = train_and_probe(
                texts, tmp_path / e, lora, budget[e]["steps"], seed=0, measure=cfg.measure
            )
        assert calls[0] == out[e]["steps"] == budget["none"]["steps"] == 2
        assert len(out[e]["per_sample"]) == 4 and np.isfinite(out[e]["per_sample"]).all()
    assert out["contrastive"]["n_texts"] > out["none"]["n_texts"]
    assert out["none"]["n_tokens"] > 0 and out["contrastive"]["n_tokens"] > 0
