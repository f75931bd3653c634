"""The weights that pipeline tests run: the locally dequantised f32 copy of the embedded GGUF.

Named once so every end-to-end test of a pipeline (the e2e studies, kill -9 resume, the ten tasks,
augmentation) uses the same copy; tests of the llama.cpp backend itself and the reference
equality checks keep the stored quantised file. Why f32: tests/conftest.py (Weights).
"""

from __future__ import annotations

PIPELINE_WEIGHTS = "f32"
