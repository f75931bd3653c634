"""Issue 27, items 3 and 4, on the fake backend: the on-topic check reads what the model wrote
after the prompt's opening, generation 0 says when it cannot hold b0 exactly, and the paper's
equilibrium is shown on its own scale, not compared with ours."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from synthbias.config import parse_config
from synthbias.generate.fake import FakeBackend
from synthbias.generate.protocol import SamplingParams
from synthbias.measure.config import MeasureConfig
from synthbias.measure.direction import CONDITIONAL
from synthbias.studies.equilibrium import print_summary
from synthbias.studies.equilibrium.generation import (
    build_seed_corpus,
    next_generation,
    seed_count,
    text_opening,
)
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.equilibrium.summary import power_lines, seed_share_notes, seed_shares

#: A model that writes nothing about anyone after "The {occupation} said that".
UNRELATED = (" the weather was nice today.",)
ABOUT_SOMEONE = (" she would be late.", " they would call Linda.", " the patient had left.")


@pytest.fixture(scope="module")
def measurer() -> GenderMeasurer:
    return GenderMeasurer(MeasureConfig(embedding=False, n_resamples=60))


def _generation(measurer: GenderMeasurer, sentences: tuple[str, ...], retries: int = 1):
    vocab = measurer.seed_vocabulary()
    prev = build_seed_corpus(0.5, 8, vocab, seed=0)
    return next_generation(
        prev,
        FakeBackend(sentences=sentences),
        SamplingParams(max_tokens=20, seed=0),
        n=6,
        generation=1,
        prompt="work_occupation_said",
        accept=measurer.on_topic,
        max_retries=retries,
        vocab=vocab,
    )


def test_the_opening_alone_is_not_on_topic(measurer: GenderMeasurer) -> None:
    recs = _generation(measurer, UNRELATED)
    for r in recs:
        occ = r.meta["prompt_occupation"]
        assert r.meta["opening"] == f"The {occ} said that" == text_opening(r)
        assert r.text.startswith(r.meta["opening"]) and "weather" in r.text
        assert not r.meta["accepted"] and r.meta["attempts"] == 2  # rejected, redrawn, kept
    assert list(measurer.per_text(recs, CONDITIONAL)["off_topic"]) == [1.0] * len(recs)
    # the whole text names the occupation: only the opening-aware check sees it is off topic
    assert all(measurer.on_topic(r.text) for r in recs)
    good = _generation(measurer, ABOUT_SOMEONE)
    assert all(r.meta["accepted"] for r in good)
    assert list(measurer.per_text(good, CONDITIONAL)["off_topic"]) == [0.0] * len(good)


def test_text_opening_of_a_text_stored_without_one(measurer: GenderMeasurer) -> None:
    recs = _generation(measurer, UNRELATED)
    for r in recs:
        del r.meta["opening"]
        assert text_opening(r) == f"The {r.meta['prompt_occupation']}"
    assert list(measurer.per_text(recs, CONDITIONAL)["off_topic"]) == [1.0] * len(recs)


def test_seed_shares_say_when_b0_is_not_exact() -> None:
    assert seed_count(0.25, 10) == 2 and seed_count(0.3, 10) == 3 and seed_count(0.1, 30) == 3
    shares = seed_shares([0.25, 0.3, 0.1], 10)
    assert [s["exact"] for s in shares] == [False, True, True]
    assert shares[0]["realised"] == pytest.approx(0.2) and shares[0]["stereotypical"] == 2
    notes = seed_share_notes({"seed_shares": shares})
    assert len(notes) == 1 and "b0 = 0.25 is not a whole number of texts at n = 10" in notes[0]
    assert "realised share of 0.200" in notes[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("eq-topic")
    cfg = parse_config(
        {
            "generator": {"backend": "fake"},
            "study": {"levels": [0.25, 0.5], "generations": 1, "n": 10, "on_topic": "keep"},
            "measure": {"embedding": False, "n_resamples": 60},
        }
    )
    return out, run_equilibrium(cfg, out, backend=FakeBackend(sentences=UNRELATED))


def test_run_counts_the_opening_plus_unrelated_words_off_topic(run: tuple[Path, dict]) -> None:
    _, res = run
    for lv in res["levels"]:
        gen1 = lv["generations"][1]
        assert gen1["off_topic_share"]["value"] == pytest.approx(1.0)  # was 0.00
    assert any("100% of texts off topic" in r for r in res["interpretation"]["reasons"])


def test_run_reports_the_realised_seed_share(run: tuple[Path, dict]) -> None:
    out, res = run
    by_level = {s["level"]: s for s in res["seed_shares"]}
    assert not by_level[0.25]["exact"] and by_level[0.5]["exact"]
    gen0 = res["levels"][0]["generations"][0]["metrics"][CONDITIONAL]["value"]
    assert gen0 == pytest.approx(by_level[0.25]["realised"]) == pytest.approx(0.2)
    buf = io.StringIO()
    print_summary(res, Console(file=buf, width=250), out)
    text = buf.getvalue()
    assert "Note: b0 = 0.25 is not a whole number of texts at n = 10" in text
    assert "b0 = 0.5 is not" not in text


def test_paper_equilibrium_is_on_its_own_scale_not_compared(run: tuple[Path, dict]) -> None:
    _, res = run
    row = res["power"]["paper_equilibrium"]
    assert "overlaps_paper" not in row and row["comparable"] is False
    assert row["paper_band"] == [0.11, 0.13] and "0 means no bias" in row["paper_metric"]
    assert "0.5 means no lean" in row["our_metric"]
    line = power_lines(res)[-1]
    assert "overlap" not in line
    assert "The paper's equilibrium (Gemma-2-2b-it, theirs): 0.11–0.13" in line
    assert "not compared numerically" in line and "0.5 means no lean" in line
