"""Cores this test process may use, for tests that set thread counts explicitly.

Under pytest-xdist each worker is pinned to its share of the cores (tests/conftest.py), so a test
asking for two threads on a one-core share would only make them contend.
"""

from __future__ import annotations

import os

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
