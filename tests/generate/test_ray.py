"""Distributed generation on a local Ray instance (2 CPUs) equals the single-process run.

Skips when Ray is not installed (``pip install 'synthbias[ray]'``), except under CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthbias.config import parse_config
from synthbias.generate import FakeBackend, SamplingParams
from synthbias.generate.cache import CachedBackend
from synthbias.generate.ray import BackendSpec, RayBackend, generate_corpus, generate_corpus_dataset
from synthbias.studies.equilibrium.runner import make_backend, run_equilibrium

PROMPTS = [f"Write one sentence about worker {i}." for i in range(23)]
CHAT = [[{"role": "user", "content": f"Describe a {o}."}] for o in ("nurse", "pilot", "chef")]


@pytest.fixture(scope="module")
def ray_local() -> Iterator[object]:
    try:
        import ray
    except ImportError:
        msg = "Ray is not installed: pip install 'synthbias[ray]'"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024 * 1024,
        runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def _texts(outs) -> list[str]:
    return [c.text for c in outs]


def test_actor_pool_equals_single_process(ray_local, tmp_path: Path) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.9, seed=11)
    single = generate_corpus(PROMPTS + CHAT, params, FakeBackend(), chunk_size=4)
    cached = make_backend(
        parse_config({"generator": {"backend": "fake", "ray": {"num_actors": 2}}}).generator,
        run_dir=tmp_path,
    )
    assert isinstance(cached, CachedBackend) and isinstance(cached.inner, RayBackend)
    with cached:
        pool = cached.inner
        assert (pool.name, pool.model_id) == ("fake", "fake-v1")
        seen: list[int] = []
        got = generate_corpus(PROMPTS + CHAT, params, pool, chunk_size=4, on_progress=seen.append)
        assert _texts(got) == _texts(single) and sum(seen) == len(PROMPTS) + len(CHAT)
        # a plain call equals the same call on one backend; scores split over actors
        assert _texts(pool.generate(PROMPTS, params)) == _texts(
            FakeBackend().generate(PROMPTS, params)
        )
        assert pool.logprobs(PROMPTS[:5]) == FakeBackend().logprobs(PROMPTS[:5])
        # through the driver-side cache: chunks fan out once, then come from the store
        for _ in range(2):
            assert _texts(generate_corpus(PROMPTS + CHAT, params, cached, chunk_size=4)) == _texts(
                single
            )
        assert cached.stats["computed"] == len(PROMPTS) + len(CHAT)
    # chunk seeds differ from chunk to chunk, so chunking is part of the result
    assert _texts(single) != _texts(FakeBackend().generate(PROMPTS + CHAT, params))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own configuration
def test_ray_data_equals_single_process(ray_local) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.9, seed=2)
    single = generate_corpus(PROMPTS + CHAT, params, FakeBackend(), chunk_size=5)
    got = generate_corpus_dataset(
        PROMPTS + CHAT, params, BackendSpec("fake"), chunk_size=5, num_actors=2
    )
    assert _texts(got) == _texts(single)
    assert [c.n_tokens for c in got] == [c.n_tokens for c in single]


def test_equilibrium_on_ray_equals_local(ray_local, tmp_path: Path) -> None:
    def cfg(ray: dict | None):
        gen: dict = {"backend": "fake", "batch_size": 4}
        if ray is not None:
            gen["ray"] = ray
        return parse_config(
            {
                "study": {"levels": [0.1, 0.6], "generations": 2, "n": 10},
                "generator": gen,
                "measure": {"embedding": False, "n_resamples": 50},
            }
        )

    local = run_equilibrium(cfg(None), tmp_path / "local")
    distributed = run_equilibrium(cfg({"num_actors": 2, "num_cpus": 1}), tmp_path / "ray")
    assert (tmp_path / "ray" / "cache.sqlite").is_file()  # the driver-side cache was used
    for a in sorted((tmp_path / "local").glob("corpora/*/*.jsonl")):
        b = tmp_path / "ray" / a.relative_to(tmp_path / "local")
        assert a.read_text() == b.read_text()
    assert local["levels"] == distributed["levels"]


@pytest.mark.slow
def test_llamacpp_actors_equal_single_process(ray_local) -> None:
    from synthbias.generate import load_backend

    kwargs = {"n_threads": 1, "batch_size": 4, "n_ctx": 256}
    params = SamplingParams(max_tokens=8, temperature=0.8, seed=4)
    prompts = CHAT * 3
    local = load_backend("llamacpp", **kwargs)
    try:
        single = generate_corpus(prompts, params, local, chunk_size=3)
    finally:
        local.close()
    with RayBackend(BackendSpec("llamacpp", kwargs), num_actors=2) as pool:
        assert pool.name == "llama.cpp" and pool.model_id.startswith("SmolLM2")
        got = generate_corpus(prompts, params, pool, chunk_size=3)
    assert _texts(got) == _texts(single) and all(t.strip() for t in _texts(got))
