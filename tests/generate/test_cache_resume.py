"""Request cache (SQLite, WAL) and resuming killed runs.

Fast tests use the fake backend behind a counter. The ``slow`` test kills a real run of the
embedded llama.cpp model (``synthbias run`` in a subprocess) with SIGKILL mid-generation, runs
the same command again and compares with an uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from cores import CORES
from fakes import CountingBackend
from weights import PIPELINE_WEIGHTS

from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.core.steps import Steps
from synthbias.generate import FakeBackend, SamplingParams
from synthbias.generate.cache import CachedBackend, RequestStore, request_key
from synthbias.generate.protocol import Completion
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import generation_settings, make_backend, run_equilibrium
from synthbias.studies.equilibrium.steps import LazyBackend, generate, seed_corpus

PROMPTS = [f"Write about worker {i}." for i in range(10)]


class CountingMany(CountingBackend):
    """... that also runs many calls at once (as RayBackend does)."""

    def generate_many(self, calls, on_done=None):
        out = []
        for k, (prompts, params) in enumerate(calls):
            out.append(self.generate(prompts, params))
            if on_done is not None:
                on_done(k, out[-1])
        return out


def _texts(outs: list[Completion]) -> list[str]:
    return [c.text for c in outs]


def test_rerun_does_no_repeated_work(tmp_path: Path) -> None:
    params = SamplingParams(max_tokens=12, seed=3)
    ref = _texts(FakeBackend().generate(PROMPTS, params))
    inner = CountingBackend()
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        assert (cached.name, cached.model_id) == ("fake", "fake-v1")
        assert _texts(cached.generate(PROMPTS, params)) == ref
        assert inner.generated == 10
    inner2 = CountingBackend()
    with CachedBackend(inner2, tmp_path / "c.sqlite") as again:  # a new process, same file
        assert _texts(again.generate(PROMPTS, params)) == ref
        assert inner2.generated == 0 and again.stats == {"hits": 10, "misses": 0, "computed": 0}
        # another seed, params or model is another request
        again.generate(PROMPTS[:2], SamplingParams(max_tokens=12, seed=4))
        again.generate(PROMPTS[:2], SamplingParams(max_tokens=11, seed=3))
        assert inner2.generated == 4
    with CachedBackend(CountingBackend("fake-v2"), tmp_path / "c.sqlite") as other:
        other.generate(PROMPTS[:1], params)
        assert other.stats["misses"] == 1


def test_partial_cache_keeps_request_indices(tmp_path: Path) -> None:
    params = SamplingParams(max_tokens=12, seed=8)
    ref = _texts(FakeBackend().generate(PROMPTS, params))
    inner = CountingBackend()
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        cached.generate(PROMPTS[:4], params)  # indices 0..3
        inner.generated = 0
        assert _texts(cached.generate(PROMPTS, params)) == ref
        # no generate_indexed on the fake: regenerated up to the last missing index
        assert inner.generated == 10 and cached.stats["computed"] == 14
        assert cached.store.count() == 10


def test_generate_many_through_cache(tmp_path: Path) -> None:
    fake = FakeBackend()
    calls = [(PROMPTS[i : i + 3], SamplingParams(max_tokens=9, seed=i)) for i in range(0, 10, 3)]
    ref = [_texts(fake.generate(p, s)) for p, s in calls]
    inner = CountingMany()
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        cached.generate(*calls[1])
        done: list[int] = []
        got = cached.generate_many(calls, on_done=lambda k, outs: done.append(k))
        assert [_texts(g) for g in got] == ref and sorted(done) == [0, 1, 2, 3]
        assert inner.generated == 3 + 7  # call 1 came from the cache
        assert [_texts(g) for g in cached.generate_many(calls)] == ref
        assert inner.generated == 10


def test_logprobs_cached_and_deduplicated(tmp_path: Path) -> None:
    texts = [
        "The nurse said she was tired.",
        "The pilot said he was late.",
        "The nurse said she was tired.",
    ]
    inner = CountingBackend()
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        got = cached.logprobs(texts)
        assert inner.scored == 2
        assert got == FakeBackend().logprobs(texts)
        assert cached.logprobs(texts[:2]) == got[:2] and inner.scored == 2


def test_store_is_wal_and_readable_while_written(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = RequestStore(path)
    reader = sqlite3.connect(path)
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    key = request_key("fake", "m", "generate", "p", {"seed": 0}, 0)
    store.put_many([(key, "generate", "fake", "m", {"text": "x"})])
    # a reader inside an open read transaction keeps its snapshot while the writer commits
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
    store.put_many([(key + "2", "generate", "fake", "m", {"text": "y"})])
    assert reader.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
    reader.execute("COMMIT")
    assert reader.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 2
    assert store.get_many([key, "absent"]) == {key: {"text": "x"}}
    store.put_many([(key, "generate", "fake", "m", {"text": "changed"})])  # first write wins
    assert store.get_many([key])[key] == {"text": "x"}
    reader.close()
    store.close()
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="not a usable request cache"):
        RequestStore(bad)


def _fake_cfg(cache: str = "run", n: int = 12):
    return parse_config(
        {
            # keep: no on-topic regeneration, so request counts are exactly n per generation
            "study": {"levels": [0.3], "generations": 2, "n": n, "on_topic": "keep"},
            "generator": {"backend": "fake", "batch_size": 4, "cache": cache},
            "measure": {"embedding": False, "n_resamples": 50},
        }
    )


def test_equilibrium_rerun_hits_cache(tmp_path: Path, monkeypatch) -> None:
    cfg = _fake_cfg()
    out = tmp_path / "run"
    first = run_equilibrium(cfg, out)
    gen2 = (out / "corpora/level-0.3/gen-2.jsonl").read_text()
    (out / "corpora/level-0.3/gen-2.jsonl").unlink()
    db = sqlite3.connect(out / "cache.sqlite")
    assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 24
    again = run_equilibrium(cfg, out)
    assert (out / "corpora/level-0.3/gen-2.jsonl").read_text() == gen2
    assert again["levels"] == first["levels"]
    hits, computed = db.execute(
        "SELECT SUM(hits), SUM(computed) FROM calls WHERE id > (SELECT MAX(id) - 3 FROM calls)"
    ).fetchone()
    assert (hits, computed) == (12, 0)  # the last three calls: generation 2 from the cache
    db.close()
    # shared: one user-wide file; off: none
    monkeypatch.setenv("SYNTHBIAS_CACHE", str(tmp_path / "user"))
    b = make_backend(_fake_cfg("shared").generator, run_dir=tmp_path / "x")
    assert isinstance(b, CachedBackend) and b.path == tmp_path / "user" / "requests.sqlite"
    b.close()
    assert isinstance(make_backend(_fake_cfg("off").generator, run_dir=tmp_path / "y"), FakeBackend)
    assert isinstance(make_backend(_fake_cfg("run").generator), FakeBackend)  # no run folder


def test_equilibrium_steps_take_level_and_chain(tmp_path: Path) -> None:
    """A level, a chain and a generation are arguments of the ``seed`` and ``generate`` steps:
    called for chain 1 alone, in another folder, they write byte for byte the corpora the whole
    run wrote; the run also counts ``fit`` and ``summarise``."""
    data = _fake_cfg(cache="off").model_dump(mode="json")
    data["study"]["chains"] = 2
    cfg = parse_config(data)
    study = cfg.study
    steps = run_equilibrium(cfg, tmp_path / "run")["steps"]
    assert list(steps) == ["seed", "generate", "measure", "fit", "summarise"]
    assert (steps["seed"]["ran"], steps["generate"]["ran"], steps["measure"]["ran"]) == (2, 4, 1)

    alone, own = tmp_path / "alone", Steps()
    measurer = GenderMeasurer(cfg.measure)
    vocab = measurer.seed_vocabulary()
    corpus = seed_corpus(
        own,
        alone,
        0.3,
        1,
        n=study.n,
        vocab=vocab,
        seed=cfg.seed,
        remainder=study.seed_remainder,
        check=measurer.check_seed_corpus,
    )
    backend = LazyBackend(None, lambda: make_backend(cfg.generator, seed=cfg.seed))
    settings = generation_settings(cfg, measurer, vocab)
    for k in (1, 2):
        corpus = generate(own, alone, 0.3, 1, k, corpus, backend, settings)
    for k in (0, 1, 2):
        rel = f"corpora/level-0.3/chain-1/gen-{k}.jsonl"
        assert (alone / rel).read_bytes() == (tmp_path / "run" / rel).read_bytes()
    assert not (alone / "corpora/level-0.3/gen-1.jsonl").exists()  # chain 0 was not asked for


# ---------------------------------------------------------------------------------------------
# kill -9 a real run and resume it
# ---------------------------------------------------------------------------------------------

N_TEXTS = 16
CONFIG = {
    "kind": "equilibrium",
    "name": "resume-test",
    "seed": 5,
    "study": {"levels": [0.3], "generations": 2, "n": N_TEXTS, "on_topic": "keep"},
    "sampling": {"max_tokens": 16, "temperature": 0.8},
    "generator": {
        "backend": "llamacpp",
        "batch_size": 4,
        "n_ctx": 512,
        "n_threads": CORES,
        "options": {
            "weights": PIPELINE_WEIGHTS
        },  # faster copy of the same weights (tests/conftest.py)
    },
    "measure": {"embedding": False, "n_resamples": 50},
}


def _run(cfg: Path, out: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("synthbias")
    cmd = [str(exe), "run", str(cfg), "--out", str(out), "--quiet"]
    # one heavy process at a time (this one only polls), so the child picks its own OpenMP policy
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return int(con.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def _corpora(out: Path) -> dict[str, list[tuple[str, str]]]:
    return {
        str(p.relative_to(out)): [(r.id, r.text) for r in read_jsonl(p)]
        for p in sorted(out.glob("corpora/level-*/gen-*.jsonl"))
    }


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill9_mid_generation_then_resume(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    killed, full = tmp_path / "killed", tmp_path / "full"
    total = 2 * N_TEXTS  # requests of the whole run (no empty completion retried at this seed)

    proc = _run(cfg, killed)
    db = killed / "cache.sqlite"
    deadline = time.monotonic() + 300
    while _rows(db) < 10:  # some chunks done: kill in the middle of generation 1
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no cache rows after 300 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _rows(db)
    assert 10 <= done_before < total
    gen1_written = (killed / "corpora/level-0.3/gen-1.jsonl").exists()
    assert not (killed / "results.json").exists()
    for p in killed.glob("corpora/level-*/gen-*.jsonl"):  # what exists is complete
        assert len(read_jsonl(p)) == N_TEXTS

    rerun = _run(cfg, killed)
    assert rerun.wait(timeout=400) == 0, rerun.stdout.read().decode()[-3000:]
    ref = _run(cfg, full)
    assert ref.wait(timeout=400) == 0, ref.stdout.read().decode()[-3000:]

    got, want = _corpora(killed), _corpora(full)
    assert list(got) == ["corpora/level-0.3/gen-0.jsonl", "corpora/level-0.3/gen-1.jsonl",
                         "corpora/level-0.3/gen-2.jsonl"]  # fmt: skip
    assert got == want  # identical ids and texts: nothing lost, nothing duplicated
    for rows in got.values():
        assert len(rows) == len({i for i, _ in rows}) == N_TEXTS
    r_killed = json.loads((killed / "results.json").read_text())
    r_full = json.loads((full / "results.json").read_text())
    assert r_killed["levels"] == r_full["levels"]

    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        pids = [p for (p,) in con.execute("SELECT DISTINCT pid FROM calls ORDER BY id")]
        hits, computed = con.execute(
            "SELECT SUM(hits), SUM(computed) FROM calls WHERE pid = ?", (pids[-1],)
        ).fetchone()
    with sqlite3.connect(full / "cache.sqlite") as con:
        full_computed = con.execute("SELECT SUM(computed) FROM calls").fetchone()[0]
    assert rows == full_computed  # one row per request, none duplicated
    # everything committed before the kill was reused (but generation 1's rows when its corpus
    # was already written: the rerun reads that file instead)...
    assert hits == done_before - (N_TEXTS if gen1_written else 0)
    assert computed + hits == full_computed and computed < full_computed  # ...not redone
    print(
        f"killed after {done_before}/{full_computed} requests; "
        f"rerun: {hits} hits, {computed} generated"
    )


def test_equilibrium_steps_rerun_only_what_changed(tmp_path: Path) -> None:
    """The study's steps (seed, generate, measure, …) are counted in ``results["steps"]``:
    a config that adds a generation or a level, or changes only measurement, reuses every
    stored corpus and generates only the new ones; a config that changes the corpora
    themselves is refused, naming the folder."""
    out = tmp_path / "run"
    cfg = _fake_cfg(cache="off")
    first = run_equilibrium(cfg, out)["steps"]
    assert list(first)[:3] == ["seed", "generate", "measure"]
    assert (first["seed"]["ran"], first["generate"]["ran"]) == (1, 2)

    data = cfg.model_dump(mode="json")
    data["study"]["generations"] = 3
    data["measure"]["n_resamples"] = 60
    more = run_equilibrium(parse_config(data), out)["steps"]
    assert (more["seed"]["ran"], more["seed"]["reused"]) == (0, 1)
    assert (more["generate"]["ran"], more["generate"]["reused"]) == (1, 2)

    data["study"]["levels"] = [0.3, 0.6]
    level = run_equilibrium(parse_config(data), out)["steps"]
    assert (level["seed"]["ran"], level["seed"]["reused"]) == (1, 1)
    assert (level["generate"]["ran"], level["generate"]["reused"]) == (3, 3)

    data["study"]["n"] = 8  # other corpora: not resumable
    with pytest.raises(FileExistsError, match=str(out)):
        run_equilibrium(parse_config(data), out)
