"""Shared test fixtures: paths to the real benchmark data, and skipping rules.

Tests that need ``../shared/benchmarks`` skip with a clear message when it is absent, except under
CI (``CI`` set), where its absence is an error so real checks never turn into silent skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

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
