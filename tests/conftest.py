"""Shared test fixtures: paths to the real benchmark data, skipping rules, and the real models.

The real MiniLM encoder and the llama.cpp model load once per session (``encoder``,
``llama_backend``), not once per test file; fakes for unit tests live in ``tests/fakes.py``.

Weights. Tests of the llama.cpp backend itself, and checks against a reference runtime, use the
quantised GGUF as stored (the default). End-to-end tests whose subject is a pipeline, not the
model's arithmetic (the e2e studies, kill -9 resume, the ten tasks, augmentation), run the locally
dequantised f32 copy of the same weights (``weights: f32``, named once in tests/weights.py; see
``widen_model``): on CPUs without a working AMX path its prompt processing is about 2.3x faster and
batched decoding no slower (measured 2026-12-03: 16 prompts x 74 tokens 3.96 s vs 1.74 s; 12
prompts, 32 new tokens 4.69 s vs 3.09 s).

Layout. ``tests/`` mirrors ``src/synthbias/``: a folder per package (``core``, ``stats``,
``lexicon``, ``generate``, ``measure``, ``train``, ``tasks``, ``mitigate``, ``report``,
``studies/<study>``), the entry points' tests (API, CLI, config, the structure map) at the top.

Workers. ``make test`` runs two pytest-xdist workers (``-n 2 --dist loadfile``): each is pinned to
its share of the cores before torch or llama.cpp loads and is handed whole files, the longest first
(``LONGEST_FILES``), then the other files with real-model tests. Tests that set a thread count use
``cores.CORES``, the cores of their own worker. ``make test TEST_WORKERS=0`` runs everything in one
process.

Tests that need ``../shared/benchmarks`` skip with a clear message when it is absent, except under
CI (``CI`` set), where its absence is an error so real checks never turn into silent skips.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tests mirror the package (tests/core, tests/measure, tests/studies/equilibrium, ...), and
# some test modules share fixtures by importing one another (``from test_report import
# small_run``) or the helpers at this level (``fakes``, ``weights``, ``cores``): every test folder
# is importable by module name, whichever file pytest collects first. Test file names are unique.
_TESTS = Path(__file__).resolve().parent
for _folder in sorted({p.parent for p in _TESTS.rglob("test_*.py")} | {_TESTS}, reverse=True):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _pin_xdist_worker() -> None:
    """Under pytest-xdist, give each worker its own share of the cores (worker i of n: cores
    i, i + n, ...) and as many OpenMP threads, before torch or llama.cpp loads.

    Why: real-model tests size their thread pools from the cores they may use
    (``available_cores``); two workers each spinning two threads on two cores would fight at
    every OpenMP barrier. Pinned, each worker's llama.cpp and torch run on their own core and
    the suite's single-threaded stretches (imports, subprocess start-up, plotting, servers)
    overlap with the other worker's model work.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    index = int(worker[2:])
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cpus = sorted(os.sched_getaffinity(0))
    share = cpus[index % len(cpus) :: max(1, min(count, len(cpus)))]
    os.sched_setaffinity(0, share)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, str(len(share)))


_pin_xdist_worker()

# Before any test module loads torch or llama.cpp: synthbias picks the OpenMP wait policy from how
# busy the cores are (libgomp reads it once, at load; see synthbias.core.cpu).
import synthbias  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(os.environ.get("SYNTHBIAS_BENCHMARKS", ROOT.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def benchmarks() -> Path:
    if not BENCHMARKS.is_dir():
        msg = f"benchmark data folder not found at {BENCHMARKS} (set SYNTHBIAS_BENCHMARKS)"
        if os.environ.get("CI"):
            pytest.fail(msg + " — required under CI")
        pytest.skip(msg)
    return BENCHMARKS


@pytest.fixture(scope="session")
def encoder():
    """The packaged all-MiniLM-L6-v2 encoder, shared by every test that needs the real one.

    Its model loads lazily on the first ``encode``; its in-memory cache is keyed by text, so
    sharing it changes no result.
    """
    from synthbias.measure.embedding import Encoder

    return Encoder()


@pytest.fixture(scope="session")
def llama_backend():
    """The embedded SmolLM2 model on llama.cpp (``n_ctx=512``, default batch), loaded once.

    Tests must not close it or change its settings; one that needs other settings builds its
    own backend.
    """
    pytest.importorskip("llama_cpp")
    from synthbias.generate.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=512)
    yield backend
    backend.close()


#: The longest files, longest first (seconds per file on one core of two, 2026-12-03: 101 down to
#: 19). A stale list only unbalances the two workers a little; it never changes a result.
LONGEST_FILES = (
    "test_tasks_real.py",
    "test_e2e_mitigation.py",
    "test_e2e_inheritance.py",
    "test_downstream.py",
    "test_likelihood.py",
    "test_cache_resume.py",
    "test_hf_backend.py",
    "test_ray.py",
    "test_http_backend.py",
    "test_e2e_equilibrium.py",
    "test_backend.py",
    "test_augment.py",
    "test_mitigation_study.py",
    "test_mitigate_training.py",
    "test_store.py",
    "test_mitigation_budget.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first (:data:`LONGEST_FILES`), then other files with real-model (``slow``)
    tests, then the rest; each file's tests keep their order.

    Why: ``make test`` hands whole files to two pytest-xdist workers in collection order; long
    files first and the many quick ones last keep one worker from finishing minutes before the
    other (longest jobs first). Order within a file, and so its module fixtures, is kept.
    """
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def key(item: pytest.Item) -> int:
        if item.path.name in rank:
            return rank[item.path.name]
        return len(rank) + (item.path not in slow_files)

    items.sort(key=key)
