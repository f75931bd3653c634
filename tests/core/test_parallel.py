"""The executor of independent units (core/parallel.py): worker counts, thread shares, order of
results inline and on a process pool, errors, worker threads, and Ray (missing, and a stand-in)."""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import pytest

from synthbias.core.parallel import (
    ParallelError,
    resolve_workers,
    run_units,
    threads_per_worker,
    worker_threads,
)


def square_with_env(x: int) -> tuple[int, int, str | None, str | None]:
    """A unit run in a worker: its value, process id and thread settings."""
    return x * x, os.getpid(), os.environ.get("OMP_NUM_THREADS"), str(worker_threads())


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("unit 3 failed")
    return x


def test_resolve_workers_and_threads() -> None:
    assert resolve_workers(1, 5, cores=8) == 1
    assert resolve_workers(4, 5, cores=8) == 4
    assert resolve_workers(4, 2, cores=8) == 2  # never more workers than units
    assert resolve_workers("auto", 5, cores=2) == 2
    assert resolve_workers("auto", 3, cores=16) == 3
    assert resolve_workers("auto", 0, cores=4) == 1
    for bad in (0, -1, "many", True, 1.5):
        with pytest.raises(ParallelError, match="workers must be"):
            resolve_workers(bad, 5, cores=2)  # type: ignore[arg-type]
    assert threads_per_worker(2, cores=2) == 1
    assert threads_per_worker(3, cores=16) == 5
    assert threads_per_worker(4, cores=2) == 1


def test_inline_keeps_order_and_process() -> None:
    done: list[int] = []
    out = run_units(square_with_env, [3, 1, 2], on_done=lambda i, r: done.append(i))
    assert [r[0] for r in out] == [9, 1, 4]
    assert {r[1] for r in out} == {os.getpid()}  # one worker: this process, nothing pickled
    assert done == [0, 1, 2]


def test_pool_keeps_order_and_sets_worker_threads() -> None:
    done: list[int] = []
    out = run_units(
        square_with_env, list(range(6)), workers=2, threads=1, on_done=lambda i, r: done.append(i)
    )
    assert [r[0] for r in out] == [x * x for x in range(6)]
    pids = {r[1] for r in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert {r[2] for r in out} == {"1"} and {r[3] for r in out} == {"1"}
    assert sorted(done) == list(range(6))
    assert os.environ.get("SYNTHBIAS_WORKER_THREADS") is None  # the parent's are untouched


def test_pool_raises_a_units_error() -> None:
    with pytest.raises(ValueError, match="unit 3 failed"):
        run_units(fail_on_three, [1, 2, 3, 4], workers=2, threads=1)
    with pytest.raises(ValueError, match="unit 3 failed"):
        run_units(fail_on_three, [1, 2, 3, 4])


def test_bad_scale_is_refused() -> None:
    with pytest.raises(ParallelError, match="scale must be"):
        run_units(square_with_env, [1], scale="slurm")  # type: ignore[arg-type]


def test_ray_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ParallelError, match="pip install 'synthbias\\[ray\\]'"):
        run_units(square_with_env, [1, 2], scale="ray")


def _fake_ray() -> tuple[types.ModuleType, dict[str, Any]]:
    """A stand-in for Ray with its call pattern: init, remote(num_cpus=...), wait, get."""
    seen: dict[str, Any] = {"init": 0, "num_cpus": None, "waits": 0}
    ray = types.ModuleType("ray")

    class Ref:
        def __init__(self, value: Any) -> None:
            self.value = value

    def remote(num_cpus: int):  # noqa: ANN202
        seen["num_cpus"] = num_cpus

        def wrap(fn):  # noqa: ANN001, ANN202
            return types.SimpleNamespace(remote=lambda *a: Ref(fn(*a)))

        return wrap

    def wait(refs: list[Ref], num_returns: int) -> tuple[list[Ref], list[Ref]]:
        seen["waits"] += 1
        return refs[-num_returns:], refs[:-num_returns]  # finish out of order

    ray.is_initialized = lambda: seen["init"] > 0  # type: ignore[attr-defined]
    ray.init = lambda address=None: seen.__setitem__("init", seen["init"] + 1)  # type: ignore[attr-defined]
    ray.remote = remote  # type: ignore[attr-defined]
    ray.wait = wait  # type: ignore[attr-defined]
    ray.get = lambda ref: ref.value  # type: ignore[attr-defined]
    return ray, seen


def test_ray_tasks_ask_for_their_threads_and_keep_order(monkeypatch: pytest.MonkeyPatch) -> None:
    ray, seen = _fake_ray()
    monkeypatch.setitem(sys.modules, "ray", ray)
    # the stand-in runs tasks here, so the thread settings land in this process: restored after
    for var in (
        "SYNTHBIAS_WORKER_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
    ):
        monkeypatch.setenv(var, "0")
    monkeypatch.setitem(sys.modules, "torch", None)
    done: list[int] = []
    out = run_units(
        square_with_env, [1, 2, 3], scale="ray", threads=2, on_done=lambda i, r: done.append(i)
    )
    assert [r[0] for r in out] == [1, 4, 9]
    assert seen["init"] == 1 and seen["num_cpus"] == 2 and seen["waits"] == 3
    assert done == [2, 1, 0]  # reported as they finish, returned in the units' order
    assert {r[2] for r in out} == {"2"}  # the task set its threads before running
