"""`synthbias forecast`: the equilibrium from the first generation(s) of a recursive run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_report import FAKE_SENTENCES
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.config import load_config, parse_config
from synthbias.generate.fake import FakeBackend
from synthbias.measure.direction import CODE_BALANCED, CONDITIONAL, DIRECTION_STATS
from synthbias.measure.rules import GenderRuleScorer
from synthbias.studies.equilibrium.fit import fit_bias_map
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.forecast import ForecastError, forecast_lines, forecast_run

LEVELS = ("0.1", "0.3", "0.6")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three levels, one chain, two generations: three transitions per generation."""
    out = tmp_path_factory.mktemp("eq-forecast")
    cfg = parse_config(
        {
            "generator": {"backend": "fake"},
            "study": {
                "levels": [0.1, 0.3, 0.6],
                "generations": 2,
                "n": 16,
                "on_topic": "keep",
                "fit_metric": CONDITIONAL,  # the fake sentences rarely pair the prompt's job
            },
            "measure": {"embedding": False, "n_resamples": 100},
        }
    )
    run_equilibrium(cfg, out, backend=FakeBackend(sentences=FAKE_SENTENCES))
    return out


def pairing_codes(path: Path) -> np.ndarray:
    """+1 stereotypical, -1 anti, 0 unpaired, straight from the rule scorer's labels."""
    recs = [json.loads(ln) for ln in path.read_text().splitlines()]
    texts = [r["text"] for r in recs]
    occ = [r["meta"].get("prompt_occupation") for r in recs]  # the study attaches to it
    sign = {"stereotypical": 1, "anti": -1}
    scores = GenderRuleScorer().score_texts(texts, prompt_occupations=occ if any(occ) else None)
    return np.array([sign.get(s.label, 0) for s in scores])


def test_forecast_from_first_generation(run_dir: Path) -> None:
    fc = forecast_run(run_dir, generations=1, n_resamples=200)
    assert fc["generations_used"] == 1 and fc["levels"] == [0.1, 0.3, 0.6]
    # The study's own fit (generation 0 fixed), from the corpora's per-text rule labels.
    stat = DIRECTION_STATS[CONDITIONAL]
    trajs = [
        [float(stat(pairing_codes(run_dir / "corpora" / f"level-{lv}" / f"gen-{k}.jsonl")))]
        for lv in LEVELS
        for k in (0, 1)
    ]
    trajs = [trajs[i] + trajs[i + 1] for i in range(0, len(trajs), 2)]
    ref = fit_bias_map(trajs, [0.1, 0.3, 0.6])
    assert fc["fit_metric"] == CONDITIONAL
    f = fc["forecast"]
    assert f["n_points"] == 3
    assert f["a"] == pytest.approx(ref["a"]) and f["c"] == pytest.approx(ref["c"])
    assert f["fixed_point"] == pytest.approx(ref["fixed_point"])
    # one chain per level: three chains in all, so the fit is replicated (jackknife over them)
    assert f["slope"]["status"] == "replicated" and f["n_chains"] == 3
    if f["ci"] is not None:  # a share's interval stays a share
        assert 0 <= f["ci"]["low"] <= f["ci"]["high"] <= 1
    else:
        assert f["fixed_point_interval"]["status"] in ("unbounded", "outside bounds", "unstable")
    # Projection: generation 2 from the map (kept within [0, 1]), beside the run's observed.
    results = json.loads((run_dir / "results.json").read_text())
    for traj, lv in zip(fc["trajectories"], results["levels"], strict=True):
        g1 = traj["observed"][-1]["value"]
        projected = pytest.approx(min(1.0, max(0.0, f["a"] + f["c"] * g1)))
        assert traj["projected"] == [{"generation": 2, "value": projected}]
        actual = lv["generations"][2]["metrics"][CONDITIONAL]["value"]
        assert traj["actual"] == [{"generation": 2, "value": pytest.approx(actual)}]
    assert fc["full_fit"]["n_points"] == 6
    assert json.loads((run_dir / "forecast.json").read_text())["generations_used"] == 1


def test_forecast_uses_all_available_generations(run_dir: Path) -> None:
    fc = forecast_run(run_dir, generations=5, n_resamples=100, write=False)
    assert fc["generations_used"] == 2 and fc["forecast"]["n_points"] == 6
    assert fc["forecast"]["fixed_point"] == pytest.approx(
        json.loads((run_dir / "results.json").read_text())["equilibrium"]["fixed_point"]
    )
    assert fc["full_fit"] is None  # nothing beyond what the forecast used


def test_forecast_on_a_run_still_in_progress(run_dir: Path, tmp_path: Path) -> None:
    """Only config.yaml and generations 0-1 written so far: the forecast still works."""
    part = tmp_path / "partial"
    shutil.copy(run_dir / "config.yaml", part.mkdir() or part / "config.yaml")
    for lv in LEVELS:
        (part / "corpora" / f"level-{lv}").mkdir(parents=True)
        for k in (0, 1):
            name = f"level-{lv}/gen-{k}.jsonl"
            shutil.copy(run_dir / "corpora" / name, part / "corpora" / name)
    fc = forecast_run(part, n_resamples=100)
    assert fc["generations_used"] == 1 and fc["full_fit"] is None
    assert [p["generation"] for p in fc["trajectories"][0]["projected"]] == [2]


def test_forecast_cli(run_dir: Path) -> None:
    res = CliRunner().invoke(app, ["forecast", str(run_dir), "--generations", "1"])
    assert res.exit_code == 0, res.output
    fc = json.loads((run_dir / "forecast.json").read_text())
    assert f"b* = {fc['forecast']['fixed_point']:.3f}" in res.output
    assert "Full run (6 transitions)" in res.output
    # The report picks the forecast up.
    assert "Forecast from the first generations" in (run_dir / "report.html").read_text()


def test_forecast_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ForecastError, match="no config.yaml"):
        forecast_run(tmp_path)
    only0 = tmp_path / "only0"
    only0.mkdir()
    shutil.copy(run_dir / "config.yaml", only0 / "config.yaml")
    (only0 / "corpora" / "level-0.1").mkdir(parents=True)
    shutil.copy(run_dir / "corpora/level-0.1/gen-0.jsonl", only0 / "corpora/level-0.1/gen-0.jsonl")
    with pytest.raises(ForecastError, match="need generations 0 and 1"):
        forecast_run(only0)
    res = CliRunner().invoke(app, ["forecast", str(only0)])
    assert res.exit_code == 2 and "levels without generation 1: 0.1, 0.3, 0.6" in res.output


def test_forecast_measures_each_corpus_once_and_only_new_or_changed_ones_again(
    run_dir: Path, tmp_path: Path
) -> None:
    """The forecast's steps: ``measure`` is cached per corpus content, ``fit`` and ``project``
    always run; counts of what ran and what was reused are in the forecast file."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("forecast_cache"))
    corpora = sorted((run / "corpora").rglob("gen-*.jsonl"))
    gen01 = [p for p in corpora if p.stem in ("gen-0", "gen-1")]
    assert len(gen01) >= 4 and len(corpora) > len(gen01)

    first = forecast_run(run, generations=1, n_resamples=100, write=False)
    assert first["steps"]["measure"] == {
        **first["steps"]["measure"],
        "ran": len(gen01),
        "reused": 0,
    }
    assert first["steps"]["fit"]["ran"] == 1 and first["steps"]["project"]["ran"] == 1

    again = forecast_run(run, generations=1, n_resamples=100, write=False)
    assert (again["steps"]["measure"]["ran"], again["steps"]["measure"]["reused"]) == (
        0,
        len(gen01),
    )
    assert again["forecast"] == first["forecast"]  # cached values give the same fit

    # one more generation: only its corpora are measured
    more = forecast_run(run, generations=2, n_resamples=100, write=False)
    n_new = sum(p.stem == "gen-2" for p in corpora)
    assert (more["steps"]["measure"]["ran"], more["steps"]["measure"]["reused"]) == (
        n_new,
        len(gen01),
    )

    # an edited corpus is measured again (the key is its content, not its name)
    edited = gen01[0]
    lines = edited.read_text().splitlines()
    edited.write_text("\n".join(lines[:-1]) + "\n")
    after = forecast_run(run, generations=1, n_resamples=100, write=False)
    assert (after["steps"]["measure"]["ran"], after["steps"]["measure"]["reused"]) == (
        1,
        len(gen01) - 1,
    )


def test_forecast_too_small_to_fit_says_so(run_dir: Path, tmp_path: Path) -> None:
    """Two levels and one generation are two transitions: too few for an interval; the forecast
    gives the line's point values, labelled not replicated, and says what an interval needs."""
    part = tmp_path / "two"
    shutil.copy(run_dir / "config.yaml", part.mkdir() or part / "config.yaml")
    for lv in ("0.1", "0.6"):
        (part / "corpora" / f"level-{lv}").mkdir(parents=True)
        for k in (0, 1):
            name = f"level-{lv}/gen-{k}.jsonl"
            shutil.copy(run_dir / "corpora" / name, part / "corpora" / name)
    f = forecast_run(part, generations=1, write=False)["forecast"]
    assert f["status"] == "not replicated" and f["ci"] is None and f["n_points"] == 2
    assert "needs ≥ 3 transitions" in f["method"]


def test_forecast_gives_the_one_generation_prediction(run_dir: Path) -> None:
    """The forecast carries the loop study's prediction from generation 0 → 1 (issue 31): the
    map, b* for the run's regime and real share, the Taori–Hashimoto bound, the check's record."""
    fc = forecast_run(run_dir, generations=1, write=False)
    og = fc["one_generation"]
    # the map from generation 0 -> 1 with x = the share generation 0 realises (round(n·b0)/n,
    # fixed by design): the study's fit when its design levels are those shares
    stat = DIRECTION_STATS[CONDITIONAL]
    trajs = [
        [
            float(stat(pairing_codes(run_dir / "corpora" / f"level-{lv}" / f"gen-{k}.jsonl")))
            for k in (0, 1)
        ]
        for lv in LEVELS
    ]
    assert [t[0] for t in trajs] == [2 / 16, 5 / 16, 10 / 16]  # n = 16: not 0.1, 0.3, 0.6
    ref = fit_bias_map(trajs, [t[0] for t in trajs])
    assert og["fit"]["a"] == pytest.approx(ref["a"]) and og["fit"]["c"] == pytest.approx(ref["c"])
    (row,) = og["per_level"]  # real share 0: one b*, whatever the real level
    assert og["regime"] == "replace" and og["real_share"] == 0.0
    assert row["b_star"]["estimate"] == pytest.approx(ref["fixed_point"])
    assert row["bound"]["bound"] is None and "Taori & Hashimoto" in row["bound"]["source"]
    text = "\n".join(forecast_lines(fc))
    assert "One-generation prediction" in text and "loop check" in text


def test_forecast_of_an_undefined_code_balanced_share_names_the_size(
    tmp_path: Path, run_dir: Path
) -> None:
    shutil.copytree(run_dir / "corpora", tmp_path / "corpora")
    gen1 = tmp_path / "corpora" / "level-0.1" / "gen-1.jsonl"
    recs = [json.loads(x) for x in gen1.read_text().splitlines()]
    for r in recs:  # no female-coded prompt's text pairs its job any more
        if r["meta"]["prompt_occupation_code"] == "female":
            r["text"] = f"The {r['meta']['prompt_occupation']} said that the rain stopped."
    gen1.write_text("".join(json.dumps(r) + "\n" for r in recs))
    cfg = load_config(run_dir / "config.yaml")
    study = cfg.study.model_copy(update={"fit_metric": CODE_BALANCED})
    (tmp_path / "config.yaml").write_text(cfg.model_copy(update={"study": study}).to_yaml())
    with pytest.raises(ForecastError, match=r"b0 = 0.1, chain 0, generation 1: no paired fem"):
        forecast_run(tmp_path, generations=1, write=False)
