"""Generation with retries: texts that fail a check are sampled again, each retry at its own seed,
so a rerun reproduces exactly the same texts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from synthbias.generate.protocol import Backend, Prompt, SamplingParams


def generate_with_retries(
    backend: Backend,
    prompts: Sequence[Prompt],
    params: SamplingParams,
    clean: Callable[[int, str], str],
    chunk_seed: Callable[[int, int], int],
    stop: tuple[str, ...] = (),
    chunk_size: int = 32,
    max_retries: int = 2,
    on_progress: Callable[[int], None] | None = None,
    accept: Callable[[str], bool] | None = None,
) -> tuple[list[str], list[str], list[int]]:
    """Generate one cleaned text per prompt, in chunks, regenerating failed ones.

    ``clean(i, completion)`` turns request ``i``'s raw completion into its text (empty = failed);
    with ``accept``, a non-empty text it rejects also counts as failed. Failed requests are
    sampled again with a fresh seed (``chunk_seed(attempt, start)``) up to ``max_retries`` times.
    Returns (texts, raw completions, attempts); a request that never succeeds keeps its last
    non-empty text (or stays empty), so counts are exact and the failure visible.
    """
    n = len(prompts)
    texts, raw, attempts = [""] * n, [""] * n, [0] * n
    ok = [False] * n
    todo = list(range(n))
    for attempt in range(max_retries + 1):
        for start in range(0, len(todo), chunk_size):
            idx = todo[start : start + chunk_size]
            p = SamplingParams(
                **{
                    **params.to_dict(),
                    "seed": chunk_seed(attempt, start),
                    "stop": tuple(params.stop) + stop,
                }
            )
            outs = backend.generate([prompts[i] for i in idx], p)
            for i, out in zip(idx, outs, strict=True):
                text = clean(i, out.text)
                attempts[i] = attempt + 1
                if text or not texts[i]:  # keep an earlier non-empty text over an empty one
                    raw[i], texts[i] = out.text, text
                ok[i] = bool(text) and (accept is None or accept(text))
            if on_progress and attempt == 0:
                on_progress(len(idx))
        todo = [i for i in todo if not ok[i]]
        if not todo:
            break
    return texts, raw, attempts
