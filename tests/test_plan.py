"""``synthbias plan`` and ``synthbias.api.plan``: the design a target effect needs, from a pilot.

The needed replicates and items are checked against :mod:`synthbias.stats.power` by hand, from
the per-replicate values and item figures a pilot stores: a small fake equilibrium run (chains
with binomial counts), a hand-made inheritance results dict (per-replicate deltas with item
CIs) and a mitigation one (per-replicate differences only). A config without a run gets the
pilot command; every bad input exits 2 with a message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from synthbias import api
from synthbias.cli import app
from synthbias.config import parse_config
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.stats.power import between_component, mde, plan_items, plan_replicates
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.plan import PlanError, plan_rows

EQ_CONFIG = {
    "generator": {"backend": "fake"},
    "study": {
        "levels": [0.1, 0.3, 0.6],
        "generations": 1,
        "n": 12,
        "chains": 3,
        "fit_metric": "rule.gender.conditional_stereotype_share",
    },
    "measure": {"embedding": False, "n_resamples": 60},
}


def invoke(*args: Any) -> Any:
    return CliRunner().invoke(app, ["plan", *[str(a) for a in args]])


def flat(res: Any) -> str:
    return " ".join(res.output.split())


def assert_clean_error(res: Any, *needles: str) -> None:
    assert res.exit_code == 2, res.output + repr(res.exception)
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in flat(res), f"{needle!r} not in: {flat(res)}"


@pytest.fixture(scope="module")
def eq_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("plan-eq")
    cfg = parse_config(EQ_CONFIG)
    return out, run_equilibrium(cfg, out, backend=FakeBackend(sentences=FAKE_SENTENCES))


def _by_hand(values: list[float], within: float | None, items: int | None, target: float):
    sd = float(np.std(values, ddof=1))
    if within is None:
        return sd, plan_replicates(target, sd), None
    between = between_component(sd, within, items)  # type: ignore[arg-type]
    need = plan_replicates(target, between, within, items)
    by_items = plan_items(target, between, within, len(values))
    return sd, need, by_items


# --------------------------------------------------------------------------- equilibrium


def test_equilibrium_paper_targets_match_plan_replicates(eq_run: tuple[Path, dict]) -> None:
    out, res = eq_run
    rows = api.plan(out)
    assert {r["cell"].split(",")[0] for r in rows} == {"b0 = 0.1", "b0 = 0.6"}
    metric = res["fit_metric"]
    for row in rows:
        level = 0.1 if row["cell"].startswith("b0 = 0.1") else 0.6
        assert row["target"] == pytest.approx(0.036 if level == 0.1 else -0.156)
        assert "the paper's" in row["target_source"]
        lv = next(x for x in res["levels"] if math.isclose(x["level"], level))
        g = lv["generations"][1]
        values = [v for v in g["metrics"][metric]["per_chain"] if v is not None]
        chains = [c for c in g["chains"] if c["pairings"]]
        shares = [c["stereotypical"] / c["pairings"] for c in chains]
        within = math.sqrt(np.mean([p * (1 - p) for p in shares]))
        items = round(np.mean([c["pairings"] for c in chains]))
        sd, need, by_items = _by_hand(values, within, items, row["target"])
        assert row["replicates"] == len(values) == 3
        assert row["sd"] == pytest.approx(sd) and row["within_sd"] == pytest.approx(within)
        assert row["replicates_needed"] == need.replicates
        assert row["items_needed"] == by_items.items  # type: ignore[union-attr]
        assert row["mde_pilot"] == pytest.approx(mde(sd / math.sqrt(3), df=2))
    json.dumps(rows)


def test_equilibrium_effect_applies_to_every_cell(eq_run: tuple[Path, dict]) -> None:
    out, _ = eq_run
    rows = api.plan(out / "results.json", effect=-0.2, power=0.9)
    assert len(rows) == 3 and all(r["target"] == -0.2 for r in rows)
    assert all(r["target_source"] == "--effect" and r["power"] == 0.9 for r in rows)
    res = invoke(out, "--effect", "0.2")
    assert res.exit_code == 0, res.output
    text = flat(res)
    assert "b0 = 0.3, gen 1" in text and "R needed" in text and "SD within" in text


def test_cli_prints_the_paper_label(eq_run: tuple[Path, dict]) -> None:
    res = invoke(eq_run[0])
    assert res.exit_code == 0, res.output
    assert "the paper's (Gemma-2-2b-it)" in flat(res) and "b0 = 0.3" not in flat(res)


# --------------------------------------------------------------------------- inheritance


def _inheritance_results() -> dict[str, Any]:
    cells = {
        ("stereo", "gender", "biased", 0.5, "control"): [0.05, 0.11, 0.02, 0.08],
        ("hiring", "gender", "biased", 0.5, "real-only"): [0.01, -0.03, 0.04, 0.00],
    }
    heads, effects = [], []
    for (task, bt, arm, ratio, ref), deltas in cells.items():
        key = {"task": task, "bias_type": bt, "arm": arm, "ratio": ratio, "reference": ref}
        heads.append(key | {"metric": f"{task}.gap", "per_replicate": deltas})
        for i, d in enumerate(deltas):
            half = 0.03 + 0.01 * i
            effects.append(
                key
                | {"replicate": i, "seed": i, "metric": f"{task}.gap", "delta": d}
                | {"item_ci_low": d - half, "item_ci_high": d + half, "n_items": 200}
            )
    return {
        "kind": "inheritance",
        "config": {"measure": {"ci_level": 0.95}},
        "headlines": heads,
        "replicate_effects": effects,
    }


def test_inheritance_rows_match_plan_replicates() -> None:
    results = _inheritance_results()
    rows = plan_rows(results, effect=0.05)
    assert [r["cell"] for r in rows] == [
        "stereo · gender · biased vs control · ratio 0.5",
        "hiring · gender · biased vs real-only · ratio 0.5",
    ]
    z = sps.norm.ppf(0.975)
    for row, head in zip(rows, results["headlines"], strict=True):
        halves = [0.03 + 0.01 * i for i in range(4)]
        within = math.sqrt(np.mean([(h / z) ** 2 * 200 for h in halves]))
        sd, need, by_items = _by_hand(head["per_replicate"], within, 200, 0.05)
        assert row["within_sd"] == pytest.approx(within) and row["items"] == 200
        assert row["sd"] == pytest.approx(sd)
        assert row["between_sd"] == pytest.approx(between_component(sd, within, 200))
        assert row["replicates_needed"] == need.replicates
        assert row["items_needed"] == by_items.items  # type: ignore[union-attr]
        assert row["item_unit"] == "task items"


def test_inheritance_needs_an_effect(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="--effect"):
        plan_rows(_inheritance_results())
    (tmp_path / "results.json").write_text(json.dumps(_inheritance_results()))
    assert_clean_error(invoke(tmp_path), "a target effect is required", "--effect")
    res = invoke(tmp_path, "--effect", "0.05")
    assert res.exit_code == 0, res.output
    assert "stereo · gender · biased vs control" in flat(res)


def test_mitigation_takes_the_sd_whole() -> None:
    per = [-0.41, -0.22, -0.35, -0.50, -0.30]
    results = {
        "kind": "mitigation",
        "summary": [
            {"pipeline": "equilibrium", "strategy": "swap", "metric": "probe", "headline": True}
            | {"per_replicate": per},
            {"pipeline": "equilibrium", "strategy": "swap", "metric": "emb", "headline": False},
        ],
    }
    (row,) = plan_rows(results, effect=-0.2)
    assert row["replicates_needed"] == plan_replicates(0.2, float(np.std(per, ddof=1))).replicates
    assert row["within_sd"] is None and "no item-level figure" in row["note"]


# --------------------------------------------------------------------------- a config, bad input


def test_config_without_a_run_prints_the_pilot_command(tmp_path: Path) -> None:
    cfg = tmp_path / "pilot.yaml"
    cfg.write_text(
        parse_config(EQ_CONFIG | {"study": EQ_CONFIG["study"] | {"chains": 5}}).to_yaml()
    )
    res = invoke(cfg)
    assert res.exit_code == 0, res.output
    text = flat(res)
    assert f"synthbias run {cfg} --out runs/pilot-pilot" in text
    assert "synthbias plan runs/pilot-pilot" in text
    assert f"= {mde(1 / math.sqrt(5), df=4):.2f} × SD_between" in text and "R = 5" in text
    with pytest.raises(PlanError, match="synthbias run"):
        api.plan(cfg)


def test_bad_input_exits_2(tmp_path: Path) -> None:
    assert_clean_error(invoke(tmp_path / "nope"), "no such file or folder")
    assert_clean_error(invoke(tmp_path), "no results.json")
    (tmp_path / "results.json").write_text(json.dumps({"kind": "audit"}))
    assert_clean_error(invoke(tmp_path, "--effect", "0.1"), "no replicates to plan")
    (tmp_path / "results.json").write_text("{not json")
    assert_clean_error(invoke(tmp_path), "not readable JSON")
    (tmp_path / "results.json").write_text(json.dumps(_inheritance_results()))
    assert_clean_error(invoke(tmp_path, "--effect", "0.1", "--power", "1.5"), "--power")
    assert_clean_error(invoke(tmp_path, "--effect", "0"), "--effect must be a non-zero")
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: equilibrium\nstudy: {chains: -1}\n")
    assert_clean_error(invoke(bad))
