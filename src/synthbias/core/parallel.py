"""Run independent units of a study (its replicates) side by side: inline, on a local process
pool sized to the cores, or on Ray.

Why: a study's replicates share nothing but their inputs, and each one's steps are cached on
disk under content keys, so they can run in any order and in any process. On a machine with
more cores than one model uses well (a 135M-parameter model scales poorly past a few threads),
N workers with cores/N threads each finish R replicates sooner than one worker with every
core; on a cluster, Ray spreads them over machines that share the run folder.

* :func:`resolve_workers`: ``workers: N | auto`` -> a number (``auto``: one per core, at most
  one per unit); :func:`threads_per_worker`: the cores each worker's torch and llama.cpp get.
* :func:`run_units`: ``fn(unit)`` for every unit, results in the units' order. One worker runs
  inline in this process (nothing is pickled: today's behaviour); more run in a ``spawn``
  process pool whose workers set their thread counts before torch or llama.cpp load, and die
  with their parent (a ``kill -9`` of the run leaves no worker writing behind it). ``scale:
  ray`` sends each unit to Ray as a task asking for ``threads`` CPUs (Ray is imported only
  then; without it the error says how to install it).

Each unit must be resumable on its own (its steps cached, writes atomic): a killed run loses at
most the step each worker had in progress, and a rerun reuses everything stored.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any, Literal, TypeVar

U = TypeVar("U")
R = TypeVar("R")

Scale = Literal["local", "ray"]
#: Environment variables that size a worker's thread pools (OpenMP: torch and llama.cpp's
#: libgomp; MKL and OpenBLAS where torch uses them).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Linux prctl option: a signal sent to this process when its parent dies.
_PR_SET_PDEATHSIG = 1


class ParallelError(RuntimeError):
    """A bad ``workers`` / ``scale`` setting, or a backend (Ray) that is not installed."""


def usable_cores() -> int:
    """CPU cores this process may run on (respects affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | str, n_units: int, cores: int | None = None) -> int:
    """The number of workers: ``workers`` itself, or for ``"auto"`` one per core; never more
    than there are units, never fewer than 1."""
    cores = cores or usable_cores()
    if workers == "auto":
        n = cores
    elif isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1:
        n = workers
    else:
        raise ParallelError(f"workers must be a whole number >= 1 or 'auto', got {workers!r}")
    return max(1, min(n, max(1, n_units)))


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each worker's share of the cores (at least one thread)."""
    return max(1, (cores or usable_cores()) // max(1, workers))


def set_worker_threads(threads: int) -> None:
    """Size this process's thread pools to ``threads``: the environment torch and libgomp read
    when they load, and torch's pool if torch is already loaded. llama.cpp takes its thread count
    as an argument: callers pass :func:`worker_threads` to the backends they build."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    os.environ["SYNTHBIAS_WORKER_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def worker_threads() -> int | None:
    """The thread count this process was given as a worker of :func:`run_units`, else None."""
    value = os.environ.get("SYNTHBIAS_WORKER_THREADS")
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (best effort elsewhere)."""
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)  # pragma: no cover


def _init_worker(threads: int) -> None:
    _die_with_parent()
    set_worker_threads(threads)


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ParallelError(
            "scale: ray needs the Ray package, which is not installed: pip install "
            "'synthbias[ray]' (or set scale: local)"
        ) from err
    return ray


def run_units(
    fn: Callable[[U], R],
    units: Sequence[U],
    *,
    workers: int = 1,
    threads: int | None = None,
    scale: Scale = "local",
    on_done: Callable[[int, R], Any] | None = None,
) -> list[R]:
    """``fn(unit)`` for every unit, the results in the units' order.

    ``workers`` 1 runs inline; more use a local process pool (``fn`` and the units must then
    pickle: module-level functions and classes) whose workers run ``threads`` threads each
    (default: the cores shared out). ``scale="ray"`` sends every unit to Ray instead (joining
    the cluster of ``RAY_ADDRESS`` or starting a local one). ``on_done(index, result)`` is
    called in this process as each unit finishes. The first failing unit's error is raised
    after the pool stops.
    """
    if scale not in ("local", "ray"):
        raise ParallelError(f"scale must be 'local' or 'ray', got {scale!r}")
    threads = threads or threads_per_worker(workers)
    if scale == "ray":
        return _run_ray(fn, units, threads, on_done)
    if workers <= 1 or len(units) <= 1:
        results = []
        for i, unit in enumerate(units):
            results.append(fn(unit))
            if on_done is not None:
                on_done(i, results[-1])
        return results
    return _run_pool(fn, units, workers, threads, on_done)


def _run_pool(
    fn: Callable[[U], R],
    units: Sequence[U],
    workers: int,
    threads: int,
    on_done: Callable[[int, R], Any] | None,
) -> list[R]:
    context = multiprocessing.get_context("spawn")  # no torch / llama threads forked mid-state
    results: dict[int, R] = {}
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures: dict[Future[R], int] = {pool.submit(fn, u): i for i, u in enumerate(units)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in done:
                if fut.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise fut.exception()  # type: ignore[misc]
                results[futures[fut]] = fut.result()
                if on_done is not None:
                    on_done(futures[fut], results[futures[fut]])
    return [results[i] for i in range(len(units))]


def _ray_call(fn: Callable[[U], R], unit: U, threads: int) -> R:
    """A unit on a Ray worker, with its thread count set first."""
    set_worker_threads(threads)
    return fn(unit)


def _run_ray(
    fn: Callable[[U], R],
    units: Sequence[U],
    threads: int,
    on_done: Callable[[int, R], Any] | None,
) -> list[R]:
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"))
    remote = ray.remote(num_cpus=threads)(_ray_call)
    refs = [remote.remote(fn, u, threads) for u in units]
    index = {ref: i for i, ref in enumerate(refs)}
    results: dict[int, R] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        for ref in done:
            results[index[ref]] = ray.get(ref)
            if on_done is not None:
                on_done(index[ref], results[index[ref]])
    return [results[i] for i in range(len(units))]
