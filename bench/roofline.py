"""The roofline line of every bench (issue 28): achieved FLOP/s as a share of a measured peak.

Why one module: every bench reports the same figure, FLOPs per token x tokens / seconds, as a
share of the rate a plain fp32 ``torch.mm`` reaches on the same cores in the same run, so the
definition (what counts as a token, what the peak is) lives here once and the figures are
comparable across benches.

The model: FLOPs per token = 2 x parameters (one multiply and one add per weight), with the
parameters counted as the model holds them (SmolLM2 ties its output head to the token
embedding, so the head is counted once, as the matmul it is, and the embedding lookup not at
all). This is an upper bound wherever logits are computed at only some positions (option
scoring, pair-shared scoring and llama.cpp's ``logits`` flags skip the vocabulary head,
576 x 49,152 of SmolLM2's 134.5 M weights, at unscored positions), and where a runtime shares a
common prefix (the tokens counted by the benches are those a plain per-sequence run would feed);
attention's own context-length term is left out, which matters little at these lengths. Read the
share as "how close to a plain matmul the runtime gets", not as an exact utilisation: with
prefix sharing it can pass 100 %. Where the benches see the token ids (option and task
scoring), a second, ``_distinct`` figure counts each distinct prefix of a call once
(:func:`fed_tokens`), the least a prefix-sharing runtime must feed.

Scripts in ``bench/`` import it as ``from roofline import ...`` (a script's folder is on
``sys.path``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def matmul_peak(threads: int | None = None, size: int = 1536, reps: int = 8) -> float:
    """Measured fp32 GFLOP/s of a plain square matmul (best of ``reps``), a few seconds.

    ``threads``: torch intra-op threads for the measurement (``None``: torch's default); the
    previous setting is restored afterwards, so the measurement changes nothing for the bench.
    """
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(reps):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best / 1e9


def model_flops_per_token(n_params: int) -> int:
    """FLOPs of one token through the model: 2 x parameters (an upper bound, see above)."""
    return 2 * int(n_params)


def gguf_parameters(path: str | os.PathLike[str] | None = None) -> int:
    """Parameters of a GGUF model from its header's tensor table (no weights read).

    ``None``: the embedded model (:func:`~synthbias.generate.models.default_model_path`);
    for SmolLM2-135M this is 134,515,008, the same as the HF checkpoint's ``parameters()``.
    """
    from synthbias.generate.models import default_model_path
    from synthbias.train.adapter import read_gguf_header

    header = read_gguf_header(Path(path) if path is not None else default_model_path())
    return sum(math.prod(ne) for ne, _, _ in header.tensors.values())


def count_parameters(backend: Any = None) -> int:
    """Parameters of a backend's model: the torch model's (HF), else its GGUF header's.

    A llama.cpp backend with a LoRA applied at run time is counted without the adapter's
    low-rank matrices (a fraction of a percent of the work at rank 8-16).
    """
    model = getattr(backend, "model", None)
    if model is not None and hasattr(model, "parameters"):
        return sum(p.numel() for p in model.parameters())
    return gguf_parameters(getattr(backend, "model_path", None))


def fed_tokens(sequences: Iterable[Sequence[int]]) -> tuple[int, int]:
    """Tokens that scoring ``sequences`` feeds: (each sequence alone, each distinct prefix once).

    A scored sequence feeds all its tokens but the last (whose successor is not scored). The
    first count is the work of a runtime that runs every sequence alone; the second that of one
    sharing every common prefix (the nodes of a trie of the fed tokens: sorted, each sequence
    adds its length less its common prefix with the one before). The runtimes here lie between
    (llama.cpp groups by common prefix, ``score_tails`` runs a prompt once for its options).
    """
    fed = sorted(list(q[:-1]) for q in sequences)
    alone = sum(len(q) for q in fed)
    distinct, prev = 0, []
    for q in fed:
        common = 0
        for a, b in zip(prev, q, strict=False):
            if a != b:
                break
            common += 1
        distinct += len(q) - common
        prev = q
    return alone, distinct


#: Backend methods whose calls feed tokens to the model.
MODEL_CALLS = ("score_tails", "logprobs", "logprobs_ids", "generate")


def tokens_fed(
    key: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> tuple[int, int]:
    """Tokens one model call fed: (every sequence alone, each distinct prefix once).

    Scored id sequences (``score_tails``, ``logprobs_ids``; ``logprobs``: the prefix token and
    the text's tokens): all but the last token (:func:`fed_tokens`); ``generate``: prompt plus
    generated tokens of each completion, both counts (the prompt ids are not seen here, so a
    shared system turn counts once per prompt).
    """
    if key in ("score_tails", "logprobs_ids"):
        return fed_tokens(args[0] if args else kwargs["sequences"])
    if key == "logprobs":
        return fed_tokens([[-1, *r.token_ids] for r in result])
    if key == "generate":
        n = sum(c.n_prompt_tokens + c.n_tokens for c in result)
        return n, n
    return 0, 0


class CountTokens:
    """Count the tokens a backend's model calls feed, and time them, while in a ``with`` block.

    Wraps the backend's :data:`MODEL_CALLS` on the instance (removed again on exit); only the
    outermost call counts (``score_tails`` may call ``logprobs_ids`` inside). ``alone`` and
    ``distinct`` add up :func:`tokens_fed`; ``seconds`` holds the seconds inside each call
    kind. The counting runs after each call returns, outside the timed span.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.alone = 0
        self.distinct = 0
        self.seconds: dict[str, float] = {}
        self._depth = 0
        self._wrapped: list[str] = []

    def _wrap(self, fn: Any, key: str) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._depth += 1
            try:
                result = fn(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    spent = time.perf_counter() - start
                    self.seconds[key] = self.seconds.get(key, 0.0) + spent
            if self._depth == 0:
                alone, distinct = tokens_fed(key, args, kwargs, result)
                self.alone += alone
                self.distinct += distinct
            return result

        return counted

    def __enter__(self) -> CountTokens:
        for key in MODEL_CALLS:
            fn = getattr(self.backend, key, None)
            if callable(fn) and key not in vars(self.backend):
                setattr(self.backend, key, self._wrap(fn, key))
                self._wrapped.append(key)
        return self

    def __exit__(self, *exc: object) -> None:
        for key in self._wrapped:
            delattr(self.backend, key)
        self._wrapped.clear()


def roofline(flops_per_token: float, tokens: int, seconds: float, peak_gflops: float) -> dict:
    """FLOPs per token x tokens / seconds, and its share of the measured matmul rate."""
    rate = flops_per_token * tokens / seconds / 1e9
    return {"gflops": round(rate, 2), "share_of_matmul_peak": round(rate / peak_gflops, 3)}


def describe(line: dict) -> str:
    """The printed form of a :func:`roofline` result."""
    return (
        f"roofline {line['gflops']:.2f} GFLOP/s = "
        f"{100 * line['share_of_matmul_peak']:.1f} % of the fp32 matmul peak"
    )
