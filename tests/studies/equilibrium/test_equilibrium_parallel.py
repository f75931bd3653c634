"""The equilibrium study's chains on worker processes (``study.workers``, issue 26 item 6): the
same corpora and results as one process, one generator per worker, and a resume that
regenerates only what is missing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from weights import PIPELINE_WEIGHTS

from synthbias.config import parse_config
from synthbias.generate.fake import FakeBackend
from synthbias.measure.direction import CONDITIONAL
from synthbias.studies.equilibrium import chains as chains_mod
from synthbias.studies.equilibrium.chains import ChainJob, release_generator, run_chain
from synthbias.studies.equilibrium.runner import run_equilibrium

FAKE = {
    "generator": {"backend": "fake"},
    # the fake backend's canned sentences pair the prompt's occupation too rarely for the
    # code-balanced default: the pooled share is fitted here
    "study": {
        "levels": [0.1, 0.6],
        "generations": 2,
        "n": 10,
        "chains": 2,
        "fit_metric": CONDITIONAL,
    },
    "measure": {"embedding": False, "n_resamples": 60},
}

#: What may differ between two runs of the same study: how and when it ran.
RUN_ONLY = ("config", "config_hash", "timing", "environment", "steps", "parallel")


def config(workers: int | str = 1, base: dict[str, Any] = FAKE) -> Any:
    return parse_config({**base, "study": {**base["study"], "workers": workers}})


def corpora(out: Path) -> dict[str, bytes]:
    """Every stored corpus of a run folder, by its path inside it."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted((out / "corpora").glob("level-*/**/gen-*.jsonl"))
    }


def science(results: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in results.items() if k not in RUN_ONLY}


def counts(results: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {name: (c["ran"], c["reused"]) for name, c in results["steps"].items()}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, dict[str, Any]]]:
    """The fake study with one worker and with two."""
    runs = {}
    for workers in (1, 2):
        out = tmp_path_factory.mktemp(f"eq-workers-{workers}")
        runs[workers] = out, run_equilibrium(config(workers), out)
    return runs


def test_two_workers_write_the_same_corpora_and_results(pair) -> None:
    (one, res1), (two, res2) = pair[1], pair[2]
    assert res1["parallel"]["workers"] == 1 and res1["parallel"]["threads_per_worker"] is None
    assert res2["parallel"]["workers"] == 2 and "inline" not in res2["parallel"]
    files = corpora(one)
    assert len(files) == 2 * 2 * 3  # levels x chains x generations 0..2
    assert corpora(two) == files
    assert science(res2) == science(res1)
    assert res2["model"] == res1["model"] == {"backend": "fake", "model_id": "fake-v1"}
    # the workers' step counts join the run's; loading their corpora is not counted again
    assert counts(res2) == counts(res1)
    assert res2["steps"]["generate"]["ran"] == 2 * 2 * 2
    assert res2["timing"]["texts_generated"] == res1["timing"]["texts_generated"] == 8 * 10


def test_a_worker_opens_the_generator_once(tmp_path: Path, monkeypatch) -> None:
    """A worker's later units reuse the generator its first unit opened (run here, inline)."""
    opened: list[int] = []

    def opener(cfg, out, seeds):  # type: ignore[no-untyped-def]
        opened.append(1)
        return FakeBackend()

    monkeypatch.setattr(chains_mod, "open_generator", opener)
    cfg = config(1)
    run_equilibrium(cfg, tmp_path)  # stores every seed corpus
    for f in (tmp_path / "corpora").glob("level-*/**/gen-*.jsonl"):
        if f.name != "gen-0.jsonl":
            f.unlink()
    assert opened == []  # the runner's generator is built by make_backend, not this opener
    try:
        for level in cfg.study.levels:
            for r in range(cfg.study.chains):
                job = ChainJob(cfg, tmp_path, level, r, resume=True, measure=cfg.measure)
                res = run_chain(job)
                assert res.counts["generate"].ran == 2 and res.texts == 2 * 10
                assert res.model == {"backend": "fake", "model_id": "fake-v1"}
    finally:
        release_generator()
    assert opened == [1]  # four units, one generator


def test_a_backend_object_runs_inline_with_a_note(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="synthbias.studies.equilibrium.chains"):
        res = run_equilibrium(config(2), tmp_path, backend=FakeBackend())
    assert res["parallel"]["workers"] == 1
    assert "backend object" in res["parallel"]["inline"]
    assert any("backend object" in r.getMessage() for r in caplog.records)


def test_resume_regenerates_only_the_missing_corpus(pair, tmp_path: Path) -> None:
    """A folder written with one worker resumes with two (the corpora's key ignores the worker
    count); only the deleted generation is written again, identical to before."""
    _, res1 = pair[1]
    out = tmp_path / "run"
    run_equilibrium(config(1), out)
    before = corpora(out)
    missing = out / "corpora" / "level-0.6" / "chain-1" / "gen-2.jsonl"
    missing.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "corpora").glob("level-*/**/gen-*.jsonl")}
    res = run_equilibrium(config(2), out)
    assert corpora(out) == before
    for p, ns in stamps.items():
        assert p.stat().st_mtime_ns == ns, p  # untouched
    assert res["steps"]["generate"] == {**res["steps"]["generate"], "ran": 1, "reused": 7}
    # one pending chain: no pool for a single unit
    assert res["parallel"]["workers"] == 1
    assert science(res) == science(res1)


def test_resume_with_several_missing_chains_uses_the_pool(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_equilibrium(config(1), out)
    before = corpora(out)
    gone = [
        out / "corpora" / "level-0.1" / "chain-1" / "gen-2.jsonl",
        out / "corpora" / "level-0.6" / "gen-1.jsonl",
        out / "corpora" / "level-0.6" / "gen-2.jsonl",
    ]
    for p in gone:
        p.unlink()
    res = run_equilibrium(config(2), out)
    assert corpora(out) == before
    assert res["parallel"]["workers"] == 2
    assert (res["steps"]["generate"]["ran"], res["steps"]["generate"]["reused"]) == (3, 5)


def test_model_seeds_pilot_here_chains_in_workers(tmp_path: Path) -> None:
    """``seed_source: model``: this process writes the pilots (opening the generator), frees
    it, and the workers generate the chains; the same corpora as one process."""
    model_seeds = {**FAKE, "study": {**FAKE["study"], "seed_source": "model", "levels": [0.2]}}
    runs = {w: run_equilibrium(config(w, model_seeds), tmp_path / f"w{w}") for w in (1, 2)}
    assert runs[2]["parallel"]["workers"] == 2
    assert corpora(tmp_path / "w2") == corpora(tmp_path / "w1")
    pilots = [(tmp_path / f"w{w}" / "corpora" / "pilot").glob("*.jsonl") for w in (1, 2)]
    one, two = ({p.name: p.read_bytes() for p in ps} for ps in pilots)
    assert one == two and len(one) == 2
    assert science(runs[2]) == science(runs[1])
    assert counts(runs[2]) == counts(runs[1])


# --------------------------------------------------------------------------- the real model

REAL = {
    "seed": 0,
    "generator": {"backend": "llamacpp", "batch_size": 8, "options": {"weights": PIPELINE_WEIGHTS}},
    "sampling": {"max_tokens": 24, "temperature": 0.8, "top_p": 0.95},
    "study": {
        "levels": [0.3],
        "generations": 1,
        "n": 6,
        "chains": 2,
        "min_pairings": 1,
        "fit_metric": CONDITIONAL,
    },
    "measure": {"embedding": False, "n_resamples": 60},
}


@pytest.mark.slow
def test_real_model_two_workers_equal_one(tmp_path: Path) -> None:
    """The embedded model writes the same texts in two worker processes (one thread each) as
    in one process: every draw is seeded by (run seed, level, chain, generation)."""
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        runs[workers] = out, run_equilibrium(config(workers, REAL), out)
    (one, res1), (two, res2) = runs[1], runs[2]
    assert res2["parallel"]["workers"] == 2 and res2["parallel"]["threads_per_worker"] >= 1
    assert corpora(two) == corpora(one)
    assert res2["model"] == res1["model"] and res1["model"]["backend"] == "llama.cpp"
    assert science(res2) == science(res1)
