"""Cores this test process may use, for tests that set thread counts explicitly.

Under pytest-xdist each worker is pinned to its share of the cores (tests/conftest.py), so a test
asking for two threads on a one-core share would only make them contend. Counted by the backend's
own ``available_cores`` (affinity-aware), so tests and the default thread pools agree.
"""

from __future__ import annotations

from synthbias.generate.llamacpp import available_cores

CORES = available_cores()
