"""Stand-ins shared by the unit tests: encoders without a model, and counting/word-table
backends. Real-model tests use the session fixtures in ``conftest.py`` instead.

Every fake records what it was asked (``calls``), so tests can check caching and batching.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from synthbias.generate import FakeBackend
from synthbias.generate.protocol import Completion, Prompt, SamplingParams, TextLogprobs

# ------------------------------------------------------------------------------------ encoders


class _RecordingEncoder:
    model_id = "fake"
    #: float32 like the real encoder; float64 where a test recomputes a statistic from the
    #: returned rows and compares to 1e-12.
    dtype: type = np.float32

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vector(t) for t in texts]).astype(self.dtype)

    def vector(self, text: str) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError


class TableEncoder(_RecordingEncoder):
    """Returns hand-constructed vectors from a table (a missing text is a ``KeyError``)."""

    def __init__(self, vectors: Mapping[str, np.ndarray], model_id: str = "fake") -> None:
        super().__init__()
        self.vectors = dict(vectors)
        self.model_id = model_id

    def vector(self, text: str) -> np.ndarray:
        return np.asarray(self.vectors[text], dtype=float)


class HashEncoder(_RecordingEncoder):
    """Deterministic pseudo-random unit vectors, seeded by the text's SHA-1 (no model)."""

    dtype = np.float64

    def __init__(self, dim: int = 16, model_id: str = "hash-encoder") -> None:
        super().__init__()
        self.dim = dim
        self.model_id = model_id

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:4], "little")
        v = np.random.default_rng(seed).normal(size=self.dim)
        return v / np.linalg.norm(v)


class KeywordEncoder(_RecordingEncoder):
    """One dimension per keyword set: 1.0 when the lower-cased text contains one of its
    keywords, else ``background``; rows are unit length."""

    dtype = np.float64

    def __init__(
        self, dims: Sequence[Sequence[str]], background: float = 0.1, model_id: str = "keywords"
    ) -> None:
        super().__init__()
        self.dims = [tuple(k.lower() for k in d) for d in dims]
        self.background = background
        self.model_id = model_id

    def vector(self, text: str) -> np.ndarray:
        low = text.lower()
        v = np.array([1.0 if any(k in low for k in d) else self.background for d in self.dims])
        return v / np.linalg.norm(v)


# ------------------------------------------------------------------------------------ backends


class CountingBackend:
    """The fake backend behind counters of generated prompts and scored texts."""

    name = "fake"

    def __init__(self, model_id: str = "fake-v1") -> None:
        self.fake = FakeBackend(model_id=model_id)
        self.model_id = model_id
        self.generated = 0
        self.scored = 0

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        self.generated += len(prompts)
        return self.fake.generate(prompts, params)

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        self.scored += len(texts)
        return self.fake.logprobs(texts)


class WordBackend:
    """Whitespace tokens, each scored from a word table (``default`` otherwise), context-free;
    ``generate`` answers ``answer(prompt_text)``."""

    name = "stub"
    model_id = "word-table"

    def __init__(
        self, table: Mapping[str, float] | None = None, default: float = -1.0, answer=None
    ) -> None:
        self.table = dict(table or {})
        self.default = default
        self.answer = answer or (lambda text: "")
        self.calls: list[list[str]] = []

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        out = []
        for p in prompts:
            text = p if isinstance(p, str) else " ".join(m["content"] for m in p)
            out.append(Completion(self.answer(text), 1, 1, "stop", params.seed))
        return out

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        self.calls.append(list(texts))
        return [
            TextLogprobs(
                tokens=t.split(),
                token_ids=[sum(map(ord, w)) for w in t.split()],
                logprobs=[self.table.get(w, self.default) for w in t.split()],
            )
            for t in texts
        ]
