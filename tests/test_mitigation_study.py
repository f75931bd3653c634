"""The mitigation study with the fake generator and a fake trainer: structure and arithmetic."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest

from synthbias.config import parse_config
from synthbias.experiment import run_equilibrium
from synthbias.generate.fake import FakeBackend
from synthbias.inheritance import run_inheritance
from synthbias.mitigation_study import divergence_flags, run_mitigation, summarise


def _fake_trainer(records, out_dir: Path, seed: int) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {"n": len(records)}


def test_study_runs_every_strategy_and_compares(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "name": "m",
            "kind": "mitigation",
            "generator": {"backend": "fake"},
            "measure": {"embedding": False, "n_resamples": 100},
            "study": {"levels": [0.3, 0.6], "generations": 1, "n": 24},
            "inheritance": {
                "bias_types": ["gender"],
                "n_real": 16,
                "n_augmented": 16,
                "ratios": [0.0, 1.0],
                "tasks": ["topic_classification", "pronoun_completion"],
                "n_eval": 8,
                "misalignment": False,
            },
            "mitigation_study": {
                "equilibrium": ["swap", "contrastive+prompt"],
                "inheritance": ["mask_loss", "swap"],
            },
        }
    )
    runners = {
        "equilibrium": functools.partial(run_equilibrium, backend=FakeBackend()),
        "inheritance": functools.partial(
            run_inheritance,
            backend=FakeBackend(),
            trainer=_fake_trainer,
            backend_loader=lambda d: FakeBackend(),
        ),
    }
    res = run_mitigation(cfg, tmp_path, runners=runners)
    assert set(res["sub_runs"]) == {
        "equilibrium/none",
        "equilibrium/swap",
        "equilibrium/contrastive+prompt",
        "inheritance/none",
        "inheritance/mask_loss",
        "inheritance/swap",
    }
    import pandas as pd

    comp = pd.read_csv(tmp_path / "comparison.csv")
    eq = comp[comp["pipeline"] == "equilibrium"]
    assert set(eq["strategy"]) == {"swap", "contrastive+prompt"}
    assert set(eq["family"]) == {"rule"}  # embedding off, no downstream family here
    assert set(eq["level"]) == {0.3, 0.6}
    for r in eq.itertuples():
        expected = (abs(r.baseline) - abs(r.mitigated)) / abs(r.baseline)
        assert r.reduction == pytest.approx(expected)
    inh = comp[comp["pipeline"] == "inheritance"]
    # one bias task and one control: both families, for both strategies, at the ratio > 0
    assert set(inh["family"]) == {"task_bias", "control_cost"}
    assert set(inh["strategy"]) == {"mask_loss", "swap"} and set(inh["ratio"]) == {1.0}
    for r in inh.itertuples():
        if r.family == "control_cost":  # change of the control's primary metric
            assert r.reduction == pytest.approx(r.mitigated - r.baseline)
        elif r.baseline:  # relative reduction of |bias|; NaN only for a zero baseline
            expected = (abs(r.baseline) - abs(r.mitigated)) / abs(r.baseline)
            assert r.reduction == pytest.approx(expected)
        else:
            assert math.isnan(r.reduction)
    assert (tmp_path / "summary.csv").exists()
    assert (tmp_path / "mitigation_comparison.png").stat().st_size > 1000


def test_summary_and_divergence_flags() -> None:
    rows = []
    for fam, red, lo, hi in [("rule", 0.9, 0.8, 1.0), ("embedding", -0.3, -0.5, -0.1)]:
        for level in (0.1, 0.6):
            rows.append(
                dict(
                    pipeline="equilibrium",
                    strategy="contrastive",
                    family=fam,
                    level=level,
                    generation=3,
                    reduction=red + (0.05 if level == 0.1 else 0),
                    ci_low=lo,
                    ci_high=hi,
                )
            )
    rows.append(
        dict(
            pipeline="equilibrium",
            strategy="prompt",
            family="rule",
            level=0.1,
            generation=3,
            reduction=0.2,
            ci_low=-0.1,
            ci_high=0.5,
        )
    )
    rows.append(
        dict(
            pipeline="equilibrium",
            strategy="prompt",
            family="embedding",
            level=0.1,
            generation=3,
            reduction=-0.1,
            ci_low=-0.4,
            ci_high=0.2,
        )
    )
    summary = summarise(rows)
    c = {(s["strategy"], s["family"]): s for s in summary}
    assert c[("contrastive", "rule")]["reduction"] == pytest.approx(0.925)
    assert c[("contrastive", "rule")]["reduction_lowest_level"] == pytest.approx(0.95)
    flags = {f["strategy"]: f["flag"] for f in divergence_flags(summary)}
    assert flags == {"contrastive": "disagree", "prompt": "point-estimates-disagree"}
    assert not math.isnan(c[("prompt", "rule")]["ci_low"])


def test_unknown_strategy_is_a_config_error() -> None:
    from synthbias.config import ConfigError

    with pytest.raises(ConfigError, match="mitigation_study.equilibrium.*unknown strategy 'tag'"):
        parse_config({"kind": "mitigation", "mitigation_study": {"equilibrium": ["tag"]}})
