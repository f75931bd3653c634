"""Shared test fixtures: paths to the real benchmark data, skipping rules, and the real models.

The real MiniLM encoder and the llama.cpp model load once per session (``encoder``,
``llama_backend``), not once per test file; fakes for unit tests live in ``tests/fakes.py``.

Weights. Tests of the llama.cpp backend itself, and checks against a reference runtime, use the
quantised GGUF as stored (the default). End-to-end tests whose subject is a pipeline, not the
model's arithmetic (the e2e studies, kill -9 resume, the ten tasks, augmentation), run the locally
dequantised f32 copy of the same weights (``weights: f32``, see ``widen_model``): on CPUs without
a working AMX path its prompt processing is about 2.3x faster and batched decoding no slower
(measured 2026-12-03: 16 prompts x 74 tokens 3.96 s vs 1.74 s; 12 prompts, 32 new tokens
4.69 s vs 3.09 s).

Tests that need ``../shared/benchmarks`` skip with a clear message when it is absent, except under
CI (``CI`` set), where its absence is an error so real checks never turn into silent skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
