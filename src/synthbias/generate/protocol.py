"""The one small interface every text generator implements.

Modelled on lm-evaluation-harness's model interface, reduced to what bias studies need:
``generate`` for sampling continuations and ``logprobs`` for likelihood metrics
(CrowS-Pairs, StereoSet, pronoun preference). Backends (llama.cpp, HF transformers,
OpenAI-compatible servers, vLLM, the fake) implement these two methods and register in
:data:`synthbias.core.registry.BACKENDS` (see :mod:`synthbias.generate`).

A third method is part of the protocol for backends that can offer it: ``generate_indexed``
generates part of a call at the call's own request indices (request ``i`` of a call is sampled
from ``(seed, i)``), reporting each completion as it arrives. A request cache uses it to
generate only the missing requests of a call, a pool of workers to split one call.
:class:`IndexedBackend` is the protocol with it; :func:`generate_indexed` gives the same result
for every backend (one ``generate`` call up to the last index where the backend has none), and
the registry records which backends have it (``indexed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, TypedDict, cast, runtime_checkable


class Message(TypedDict):
    """One chat turn; rendered with the model's own chat template, never a hand-written one."""

    role: Literal["system", "user", "assistant"]
    content: str


#: A prompt is either raw text (plain completion) or a list of chat messages.
Prompt = str | Sequence[Message]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings. ``seed`` makes runs reproducible.

    Request ``i`` of a ``generate`` call is sampled with its own random stream seeded from
    ``(seed, i)``, so a completion does not depend on which other prompts share its batch.
    ``temperature == 0`` means greedy decoding.
    """

    max_tokens: int = 64
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Completion:
    """One generated continuation."""

    text: str
    n_prompt_tokens: int
    n_tokens: int
    finish_reason: Literal["stop", "length"]
    seed: int


@dataclass
class TextLogprobs:
    """Per-token log-probabilities of a whole text (BOS prepended when the model has one).

    ``logprobs[j]`` is log p(token_j | tokens_<j); the BOS token itself is not scored.
    ``total`` is the sum: the causal-LM sentence score used by lm-evaluation-harness's CrowS-Pairs.
    """

    tokens: list[str]
    token_ids: list[int]
    logprobs: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return float(sum(self.logprobs))


class ContextLengthError(ValueError):
    """A prompt (plus its token budget) does not fit in the per-sequence context."""


def encode_for_generation(
    encode: Callable[[Prompt], list[int]],
    prompts: Sequence[Prompt],
    max_tokens: int,
    n_ctx: int,
) -> list[list[int]]:
    """Token ids of every prompt, checked to fit ``n_ctx`` with ``max_tokens`` to generate.

    Shared by the local backends so that a too-long prompt fails the same way everywhere,
    before any decoding starts; nothing is truncated silently.
    """
    if isinstance(prompts, str):
        raise TypeError("generate() takes a sequence of prompts, not a single string")
    encoded = [encode(p) for p in prompts]
    for i, ids in enumerate(encoded):
        if len(ids) + max_tokens > n_ctx:
            raise ContextLengthError(
                f"prompt {i} has {len(ids)} tokens; with max_tokens={max_tokens} it "
                f"needs {len(ids) + max_tokens} > n_ctx={n_ctx}. Shorten the "
                "prompt, lower max_tokens or raise n_ctx."
            )
    return encoded


@runtime_checkable
class Backend(Protocol):
    """What every generator offers. ``name`` says which runtime produced a score.

    Backends that can generate part of a call at its own indices also implement
    ``generate_indexed`` (:class:`IndexedBackend`); call it through :func:`generate_indexed`.
    """

    name: str
    model_id: str

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """Sample one completion per prompt, in order."""
        ...

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """Score each text as a whole under the model (no chat template)."""
        ...


#: ``on_result(j, completion)``: completion ``j`` of a ``generate_indexed`` call is ready.
OnResult = Callable[[int, Completion], None]


@runtime_checkable
class IndexedBackend(Backend, Protocol):
    """A backend that generates part of a call at the call's own request indices."""

    def generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: OnResult | None = None,
    ) -> list[Completion]:
        """Completion ``j`` is request ``indices[j]`` of a call with these ``params``: the same
        text ``generate`` gives at that position. ``on_result`` fires as each one is ready
        (any order), so a caller can store it at once."""
        ...


def is_indexed(backend: Backend) -> bool:
    """Whether ``backend`` implements ``generate_indexed`` itself (looked up as an attribute,
    so a wrapper that forwards attributes to its inner backend counts on every Python; a
    ``runtime_checkable`` ``isinstance`` stops seeing forwarded attributes from 3.12 on)."""
    return callable(getattr(backend, "generate_indexed", None))


def generate_indexed(
    backend: Backend,
    prompts: Sequence[Prompt],
    params: SamplingParams,
    indices: Sequence[int],
    on_result: OnResult | None = None,
) -> list[Completion]:
    """``generate_indexed`` on any backend: its own where it has one; otherwise one ``generate``
    call up to the last index, every gap filled with the first prompt (a completion depends
    only on its prompt, the sampling parameters and its index, never on its batch-mates), and
    the requested completions picked out."""
    if isinstance(prompts, str):
        raise TypeError("generate_indexed() takes a sequence of prompts, not a single string")
    if len(prompts) != len(indices):
        raise ValueError(f"{len(prompts)} prompts for {len(indices)} indices")
    if is_indexed(backend):
        own = cast(IndexedBackend, backend)
        return own.generate_indexed(prompts, params, indices, on_result=on_result)
    if not prompts:
        return []
    call: list[Prompt] = [prompts[0]] * (max(indices) + 1)
    for p, i in zip(prompts, indices, strict=True):
        call[i] = p
    fresh = backend.generate(call, params)
    out = [fresh[i] for i in indices]
    if on_result is not None:
        for j, c in enumerate(out):
            on_result(j, c)
    return out


@runtime_checkable
class TailScorer(Protocol):
    """Optional fast scoring of token-id sequences that share prefixes (option scoring).

    ``score_tails(sequences, starts)[i]`` holds log p(seq[j] | seq[:j]) for ``j`` from
    ``starts[i]`` to the end of ``sequences[i]``: the same numbers as scoring each sequence as
    a whole and keeping its tail, but a prefix shared by several sequences (a prompt and its
    options) is evaluated once. ``tokenize`` and ``prefix_id`` are what ``logprobs`` uses, so a
    caller can build exactly the sequences ``logprobs`` would score.
    """

    prefix_id: int

    def tokenize(self, text: str) -> list[int]: ...

    def score_tails(
        self, sequences: Sequence[Sequence[int]], starts: Sequence[int]
    ) -> list[list[float]]: ...
