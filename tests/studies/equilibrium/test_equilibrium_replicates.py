"""The equilibrium study with chains as replicates (issue 26) and a safe start (issue 29, items
4 and 11), on the fake backend."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from synthbias.config import parse_config
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.measure.direction import CONDITIONAL
from synthbias.studies.equilibrium import print_summary
from synthbias.studies.equilibrium.runner import run_equilibrium

BASE = {
    "generator": {"backend": "fake"},
    # the fake backend's canned sentences pair the prompt's occupation too rarely for the
    # code-balanced default: the pooled share is fitted here
    "study": {
        "levels": [0.1, 0.3, 0.6],
        "generations": 2,
        "n": 12,
        "chains": 3,
        "fit_metric": CONDITIONAL,
    },
    "measure": {"embedding": False, "n_resamples": 60},
}


class Unreachable(FakeBackend):
    """A server that never answers: the start fails at the first generated corpus."""

    def generate(self, prompts, params):  # type: ignore[no-untyped-def]
        raise ConnectionRefusedError("nothing listens at http://127.0.0.1:9/v1")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eq-reps")
    cfg = parse_config(BASE)
    return out, run_equilibrium(cfg, out, backend=FakeBackend(sentences=FAKE_SENTENCES))


def test_generation_headline_is_over_chains(run: tuple[Path, dict]) -> None:
    _, res = run
    for lv in res["levels"]:
        for g in lv["generations"]:
            m = g["metrics"][CONDITIONAL]
            assert len(m["per_chain"]) == 3  # the per-chain values are kept
            if m["value"] is None:
                continue
            assert m["status"] in ("replicated", "not replicated")
            assert "text_ci" in m and "within-run" in m["text_ci_method"]
            if m["status"] == "replicated":
                assert m["ci"]["low"] <= m["value"] <= m["ci"]["high"]
                assert m["mde_80"] is not None and "t over replicates" in m["ci_method"]


def test_fit_reports_slope_first_and_a_share_interval(run: tuple[Path, dict]) -> None:
    _, res = run
    eq = res["equilibrium"]
    assert eq["first_generation"] == 0 and eq["n_chains"] == 9
    # a transition into a fake corpus without a pairing of the prompt's job is left out
    assert eq["n_points"] + eq["transitions_left_out"] == 18 and eq["n_points"] >= 15
    assert eq["slope"]["status"] == "replicated" and eq["slope"]["ci_low"] is not None
    fp = eq["fixed_point_interval"]
    if eq["ci"] is not None:
        assert 0 <= eq["ci"]["low"] <= eq["ci"]["high"] <= 1
    else:
        assert fp["status"] in ("unbounded", "outside bounds", "unstable")
    assert res["inference"] == "t" and res["fit_from"] == 0


def test_console_sentences(run: tuple[Path, dict]) -> None:
    out, res = run
    buf = io.StringIO()
    print_summary(res, Console(file=buf, width=250), out)
    text = buf.getvalue()
    assert "slope c = " in text and text.index("slope c = ") < text.index("b* = ")
    assert "+ -" not in text and "±0.00 " not in text
    assert "Power at 80%" in text and "The paper's effect" in text
    assert "fit and report" in text  # the total names what it includes
    t = res["timing"]
    assert t["total_seconds"] >= t["step_seconds"]["fit"] + t["step_seconds"]["report"]
    stored = json.loads((out / "results.json").read_text())
    assert stored["timing"]["total_seconds"] == t["total_seconds"]


def test_fit_from_generation_one_and_two_stage(tmp_path: Path, run: tuple[Path, dict]) -> None:
    """``fit_from: 1`` and ``inference: two_stage`` change no corpus: the run reuses them."""
    src, _ = run
    cfg = parse_config(BASE | {"study": BASE["study"] | {"fit_from": 1, "inference": "two_stage"}})
    res = run_equilibrium(cfg, src, backend=FakeBackend(sentences=FAKE_SENTENCES))
    assert res["timing"]["texts_generated"] == 0
    eq = res["equilibrium"]
    assert eq.get("first_generation") == 1 or "note" in eq
    if "a" in eq:
        assert eq["n_points"] + eq["transitions_left_out"] == 9
    m = res["levels"][0]["generations"][1]["metrics"][CONDITIONAL]
    assert m["status"] != "replicated" or "two-stage" in m["ci_method"]


def test_missing_model_file_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = parse_config(
        BASE | {"generator": {"backend": "llamacpp", "model_path": str(tmp_path / "no.gguf")}}
    )
    with pytest.raises(FileNotFoundError, match="generator.model_path"):
        run_equilibrium(cfg, out)
    assert not out.exists() or not any(out.iterdir())
    # the corrected config runs in the same folder
    res = run_equilibrium(parse_config(BASE), out, backend=FakeBackend(sentences=FAKE_SENTENCES))
    assert res["timing"]["texts_generated"] > 0


def test_failed_start_does_not_pin_the_folder(tmp_path: Path) -> None:
    """A server that never answered: manifest and seed corpora were written, no generated
    corpus; a rerun with another config takes the folder."""
    out = tmp_path / "run"
    bad = parse_config(BASE | {"seed": 7})
    with pytest.raises(ConnectionRefusedError):
        run_equilibrium(bad, out, backend=Unreachable())
    assert (out / "manifest.json").exists()  # the half-written start
    res = run_equilibrium(parse_config(BASE), out, backend=FakeBackend(sentences=FAKE_SENTENCES))
    assert res["config"]["seed"] == 0 and res["timing"]["texts_generated"] > 0
    # a folder with generated work stays pinned
    with pytest.raises(FileExistsError, match="different config"):
        run_equilibrium(bad, out, backend=FakeBackend(sentences=FAKE_SENTENCES))


def test_model_seeds_are_relabelled_model_texts(tmp_path: Path) -> None:
    """``seed_source: model``: generation 0 is pilot texts the model wrote, relabelled by gender
    swaps to exactly the designed share; the fit then starts from model text."""
    study = BASE["study"] | {"levels": [0.2, 0.6], "seed_source": "model", "n": 10}
    cfg = parse_config(BASE | {"study": study})
    out = tmp_path / "run"
    res = run_equilibrium(cfg, out, backend=FakeBackend(sentences=FAKE_SENTENCES))
    pilots = sorted((out / "corpora" / "pilot").glob("chain-*.jsonl"))
    assert len(pilots) == 3
    pilot_ids = {json.loads(line)["id"] for p in pilots for line in p.read_text().splitlines()}
    for lv in res["levels"]:
        g0 = lv["generations"][0]
        assert g0["metrics"][CONDITIONAL]["value"] == pytest.approx(lv["level"])
        assert g0["pairings"] == 30  # every relabelled text is paired
    seed = [
        json.loads(x) for x in (out / "corpora/level-0.2/gen-0.jsonl").read_text().split("\n") if x
    ]
    assert all(r["meta"]["seed_source"] == "model" and r["parents"][0] in pilot_ids for r in seed)
    assert res["seed_source"] == "model" and "a" in res["equilibrium"]
    # a rerun reuses the pilot: nothing is generated again
    again = run_equilibrium(cfg, out, backend=FakeBackend(sentences=FAKE_SENTENCES))
    assert again["timing"]["texts_generated"] == 0


def test_model_seeds_need_anti_remainder() -> None:
    from synthbias.core.schema import ConfigError

    with pytest.raises(ConfigError, match="seed_remainder: anti"):
        parse_config(
            BASE | {"study": BASE["study"] | {"seed_source": "model", "seed_remainder": "neutral"}}
        )
