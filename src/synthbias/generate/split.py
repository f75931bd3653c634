"""One model on two runtimes: log-probabilities from one, generation from the other.

Why: on these CPUs the runtimes win at different work. Transformers fp32 with the prefix tree
(:mod:`synthbias.generate.prefix_tree`) scores options and sentence pairs exactly (the
lm-evaluation-harness recipe, float32 KV) and fastest, and feeds prompts ~1.6x faster than
llama.cpp's f32 kernels, so greedy generation, mostly prefill in the evaluation tasks (long
counterfactual profiles, answers of 1-16 tokens), runs there too when ``greedy_on_scorer``
(:mod:`synthbias.generate.tree_decode`). Sampled generation of long texts is decode-bound, where
llama.cpp's step and its numpy sampler win (``bench/evaluation.py``: story generation 8 s vs
20 s). A :class:`SplitBackend` holds the same weights in both and sends each call where it is
cheapest; the generator is loaded on first use, so an evaluation without sampled generation
never loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from synthbias.generate.protocol import (
    Completion,
    OnResult,
    Prompt,
    SamplingParams,
    TextLogprobs,
)
from synthbias.generate.protocol import generate_indexed as _generate_indexed


class SplitBackend:
    """Scoring calls go to ``scorer``, generation to ``make_generator()`` (built once, lazily),
    greedy generation (temperature 0) to ``scorer`` when ``greedy_on_scorer``.

    Attributes a scoring caller reads (``tokenize``, ``prefix_id``, ``add_bos``,
    ``logprobs_ids``, ``device``...) are the scorer's, so option scoring builds exactly the
    token sequences the scorer would score alone. ``runtimes`` says which runtime does what
    and why; it is recorded with every evaluation.
    """

    def __init__(
        self,
        scorer: Any,
        make_generator: Callable[[], Any],
        generator_name: str = "llamacpp",
        why: str = "",
        greedy_on_scorer: bool = False,
    ) -> None:
        self.scorer = scorer
        self._make_generator = make_generator
        self._generator: Any = None
        self.greedy_on_scorer = greedy_on_scorer
        scoring = str(getattr(scorer, "name", type(scorer).__name__))
        self.name = f"{scoring}+{generator_name}"
        self.model_id = getattr(scorer, "model_id", None)
        generation = f"{generator_name} (greedy: {scoring})" if greedy_on_scorer else generator_name
        self.runtimes = {"scoring": scoring, "generation": generation, "why": why}

    def __repr__(self) -> str:
        return f"SplitBackend(scorer={self.scorer!r}, generator={self._generator!r})"

    # -- scoring (the scorer's own methods and attributes) -----------------------------------
    @property
    def prefix_id(self) -> int:
        return int(self.scorer.prefix_id)

    def tokenize(self, text: str) -> list[int]:
        return list(self.scorer.tokenize(text))

    def score_tails(
        self, sequences: Sequence[Sequence[int]], starts: Sequence[int]
    ) -> list[list[float]]:
        return self.scorer.score_tails(sequences, starts)

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        return self.scorer.logprobs(texts)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "scorer":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.scorer, name)

    # -- generation ------------------------------------------------------------------------------
    @property
    def generator(self) -> Any:
        """The generation runtime, loaded on first use."""
        if self._generator is None:
            self._generator = self._make_generator()
        return self._generator

    def runtime_for(self, params: SamplingParams) -> Any:
        """The runtime that generates under ``params``."""
        if self.greedy_on_scorer and params.temperature <= 0:
            return self.scorer
        return self.generator

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        return self.runtime_for(params).generate(prompts, params)

    def generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        return _generate_indexed(self.runtime_for(params), prompts, params, indices, on_result)

    def close(self) -> None:
        """Close both runtimes (the generator only if it was loaded)."""
        for part in (self._generator, self.scorer):
            close = getattr(part, "close", None)
            if callable(close):
                close()
        self._generator = None

    def __enter__(self) -> SplitBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
