"""Log-likelihood helpers shared by the likelihood benchmarks (CrowS-Pairs, StereoSet, BBQ).

Every backend scores whole texts (``Backend.logprobs``: per-token log-probs after the prefix/BOS
token). Benchmarks need two things on top: batched, deduplicated scoring of many texts, and the
*conditional* log-probability of a continuation given a context (an answer given a question, a
sentence given the previous one). The latter follows lm-evaluation-harness's ``_encode_pair``:

1. trailing whitespace of the context moves to the front of the continuation, so a BPE tokenizer
   sees " answer" (one word-initial token) rather than a dangling space token;
2. the whole text ``context + continuation`` is scored once; its first ``len(tokenize(context))``
   tokens are the context and the rest are the continuation;
3. that split is *verified*: the context's own tokenisation must be a prefix of the whole text's
   tokenisation. When a merge across the boundary breaks this (rare with byte-level BPE), the
   continuation's separately tokenised ids are scored directly after the context's ids when the
   backend can score token ids (``logprobs_ids``, e.g. :class:`~synthbias.generate.hf.HFBackend`);
   otherwise the harness's split ``whole[len(context_ids):]`` is used. Either way the item is
   flagged (``aligned=False``) and benchmarks report how many were.

Backends that can score token-id tails (:class:`~synthbias.generate.protocol.TailScorer`:
llama.cpp and HF) get the same token sequences through ``score_tails``: a context shared by
several options is evaluated once and only option tokens are projected to logits, with the same
scores as the whole-text path (0 difference on llama.cpp, ~1e-5 nats on HF; see
bench/option_scoring.py).

Which sequences are scored is the *prefix rule* (``prefix_token``):

- ``harness`` (the default): lm-evaluation-harness's recipe exactly. With a context, the
  sequence is ``tokenize(context) + tokenize(context + continuation)[len(tokenize(context)):]``
  with no prefix token, unless the tokenizer adds BOS itself (``backend.add_bos``; then BOS
  starts it, as the harness's ``tok_encode`` would put it there); the first context token is
  only conditioned on. A misaligned boundary keeps the harness's split (no rescoring). With an
  empty context the continuation is scored after the prefix token (the harness's empty-context
  rule, CrowS-Pairs). Scores then equal the harness's item by item
  (tests/measure/test_conformance.py:
  BBQ and CrowS-Pairs on SmolLM2 within 1e-4 nats, no flipped decision). Needs a backend that
  scores token ids (``score_tails``, i.e. llama.cpp and HF); other backends fall back to
  ``always`` with a warning.
- ``always``: the earlier rule. Every scored sequence starts with the backend's prefix token,
  exactly as ``Backend.logprobs`` does for whole texts, so the first context token is scored in
  the same conditions as a sentence start; misaligned boundaries are rescored as described
  above. BBQ answers differ from the harness's on ~12 % of items under this rule (issue 28).

:func:`choose_scoring_backend` is ``scoring_backend: auto``: the fastest exact (fp32) runtime on
the machine, with the reason, for results files to record.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from synthbias.generate import load_backend
from synthbias.generate.protocol import Backend, TailScorer, TextLogprobs

#: How a continuation's log-prob is normalised before options are compared.
#: ``none``: summed log-prob (lm-eval-harness ``acc``); ``token``: mean per token (log of the
#: geometric-mean token probability, StereoSet's generative-model scoring); ``char``: summed
#: log-prob per character of the continuation (harness ``acc_norm``).
Normalization = Literal["none", "token", "char"]
NORMALIZATIONS: tuple[str, ...] = ("none", "token", "char")

ProgressFn = Callable[[int, int], None]

#: Which prefix token a conditional score is computed after (see the module docstring).
PrefixRule = Literal["harness", "always"]
PREFIX_RULES: tuple[str, ...] = ("harness", "always")
DEFAULT_PREFIX_RULE: PrefixRule = "harness"

log = logging.getLogger(__name__)


@dataclass
class ContinuationScore:
    """log p(continuation | context), with what is needed to normalise it."""

    logprob: float
    n_tokens: int
    n_chars: int
    token_logprobs: list[float] = field(default_factory=list)
    #: False when the context's tokens were not a prefix of the whole text's tokens.
    aligned: bool = True

    def normalized(self, how: Normalization = "none") -> float:
        """The score used to rank options (see :data:`Normalization`)."""
        if how == "none":
            return self.logprob
        if how == "token":
            return self.logprob / self.n_tokens if self.n_tokens else -math.inf
        if how == "char":
            return self.logprob / self.n_chars if self.n_chars else -math.inf
        raise ValueError(f"unknown normalization {how!r}; choose one of {NORMALIZATIONS}")


def check_normalization(how: str) -> Normalization:
    if how not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {how!r}; choose one of {NORMALIZATIONS}")
    return how  # type: ignore[return-value]


def check_prefix_rule(rule: str) -> PrefixRule:
    if rule not in PREFIX_RULES:
        raise ValueError(f"unknown prefix_token rule {rule!r}; choose one of {PREFIX_RULES}")
    return rule  # type: ignore[return-value]


def score_texts(
    backend: Backend,
    texts: Sequence[str],
    *,
    chunk_size: int = 256,
    progress: ProgressFn | None = None,
) -> list[TextLogprobs]:
    """``backend.logprobs`` over many texts: each distinct text once, in chunks.

    Chunks bound memory and let ``progress(done, total)`` report; the backend batches within a
    chunk. For a backend that shares text prefixes (``share_text_prefix``) texts are sent in
    sorted order, so texts that share a beginning (the two sentences of a CrowS-Pairs pair, a
    StereoSet cluster) land in the same chunk and the common part is decoded once. Otherwise
    they are sent longest first (by tokens, or characters for a backend without ``tokenize``),
    so each chunk's padded batches hold texts of about one length, as a plain length-sorted
    loop over all texts has them (the chunk only bounds memory; every text is scored on its
    own). Returned in input order (duplicates share one result object).
    """
    if isinstance(texts, str):
        raise TypeError("score_texts() takes a sequence of texts, not a single string")
    unique = list(dict.fromkeys(texts))
    if getattr(backend, "share_text_prefix", False) is True:
        unique.sort()
    else:
        tok = getattr(backend, "tokenize", None)
        # By tokens where the backend can count them: a chunk then holds texts of one token
        # length, as a plain length-sorted loop's batches do (by characters, CrowS-Pairs ran
        # 5-16 % slower than that loop: more padding per batch).
        unique.sort(key=(lambda t: len(tok(t))) if callable(tok) else len, reverse=True)
    scored: dict[str, TextLogprobs] = {}
    for start in range(0, len(unique), chunk_size):
        chunk = unique[start : start + chunk_size]
        for text, lp in zip(chunk, backend.logprobs(chunk), strict=True):
            scored[text] = lp
        if progress is not None:
            progress(min(start + chunk_size, len(unique)), len(unique))
    return [scored[t] for t in texts]


def sum_logprob(backend: Backend, texts: Sequence[str], **kw: Any) -> list[float]:
    """Summed log-prob of each whole text after the prefix token (CrowS-Pairs' sentence score)."""
    return [lp.total for lp in score_texts(backend, texts, **kw)]


def split_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the continuation (harness ``_encode_pair``)."""
    n = len(context) - len(context.rstrip())
    if n:
        return context[:-n], context[-n:] + continuation
    return context, continuation


def _context_ids(backend: Backend, contexts: Sequence[str], **kw: Any) -> dict[str, list[int]]:
    """Token ids of each context, by the backend's tokenizer when it exposes one.

    ``tokenize(text)`` on both built-in backends adds no special tokens and does not parse
    special-token text, matching what ``logprobs`` scores. Backends without it get their
    contexts scored (slower, but uses only the protocol).
    """
    unique = [c for c in dict.fromkeys(contexts) if c]
    tok = getattr(backend, "tokenize", None)
    if callable(tok):
        return {c: list(tok(c)) for c in unique}
    scored = score_texts(backend, unique, **kw)
    return {c: list(lp.token_ids) for c, lp in zip(unique, scored, strict=True)}


def conditional_logprobs(
    backend: Backend,
    pairs: Sequence[tuple[str, str]],
    *,
    chunk_size: int = 256,
    progress: ProgressFn | None = None,
    share_prefix: bool = True,
    prefix_token: PrefixRule = DEFAULT_PREFIX_RULE,
) -> list[ContinuationScore]:
    """log p(continuation | context) for each ``(context, continuation)`` pair.

    An empty context means the continuation is scored after the prefix token alone (the
    harness's empty-context rule). ``prefix_token`` picks whether a non-empty context is
    preceded by the prefix token (``always``) or scored as the harness does (``harness``);
    see the module docstring, also for the alignment check and fallbacks. Each distinct
    whole text is scored once.

    With ``share_prefix`` and a backend that can score tails
    (:class:`~synthbias.generate.protocol.TailScorer`: llama.cpp and HF), the same token
    sequences are built and only their continuation tokens are scored, so a context shared by
    several options is evaluated once and no logits are computed for it
    (:func:`shared_conditional_logprobs`). ``share_prefix=False`` scores every whole text
    (the per-option reference path).
    """
    rule = check_prefix_rule(prefix_token)
    norm = [split_whitespace(c, x) for c, x in pairs]
    for i, (_, x) in enumerate(norm):
        if not x.strip():
            raise ValueError(f"pair {i}: empty continuation")
    if rule == "harness":
        if isinstance(backend, TailScorer):
            return harness_conditional_logprobs(
                backend, norm, chunk_size=chunk_size, progress=progress, share_prefix=share_prefix
            )
        log.warning(
            "%s cannot score token ids; conditional scores use prefix_token='always'",
            getattr(backend, "name", type(backend).__name__),
        )
    if share_prefix and isinstance(backend, TailScorer):
        return shared_conditional_logprobs(backend, norm, chunk_size=chunk_size, progress=progress)
    ctx_ids = _context_ids(backend, [c for c, _ in norm], chunk_size=chunk_size)
    wholes = score_texts(
        backend, [c + x for c, x in norm], chunk_size=chunk_size, progress=progress
    )
    out: list[ContinuationScore | None] = [None] * len(norm)
    redo: list[int] = []
    for i, ((ctx, cont), whole) in enumerate(zip(norm, wholes, strict=True)):
        cids = ctx_ids.get(ctx, [])
        n = len(cids)
        aligned = list(whole.token_ids[:n]) == cids and len(whole.token_ids) > n
        if not aligned and callable(getattr(backend, "logprobs_ids", None)):
            redo.append(i)
            continue
        lps = [float(x) for x in whole.logprobs[n:]]
        out[i] = ContinuationScore(float(sum(lps)), len(lps), len(cont), lps, aligned)
    if redo:
        out_redo = _rescore_ids(backend, [norm[i] for i in redo], ctx_ids)
        for i, score in zip(redo, out_redo, strict=True):
            out[i] = score
    return [s for s in out if s is not None]


def harness_token_pairs(
    backend: TailScorer, pairs: Sequence[tuple[str, str]]
) -> tuple[list[list[int]], list[int], list[bool]]:
    """Token sequences, continuation starts and alignment flags under the harness's rule.

    ``pairs`` are already whitespace-normalised. Non-empty context: ``[BOS if the tokenizer
    adds it] + tokenize(context) + tokenize(context + continuation)[len(tokenize(context)):]``
    (``_encode_pair``). Empty context: ``[prefix] + tokenize(continuation)``, or the
    continuation alone with its first token as the context when it already starts with the
    prefix token (the harness's ``loglikelihood``).
    """
    prefix = int(backend.prefix_id)
    head = [prefix] if getattr(backend, "add_bos", False) is True and prefix >= 0 else []
    ctx_ids = {c: list(backend.tokenize(c)) for c in dict.fromkeys(c for c, _ in pairs) if c}
    seqs: list[list[int]] = []
    starts: list[int] = []
    aligned: list[bool] = []
    for i, (ctx, cont) in enumerate(pairs):
        if ctx:
            cids = ctx_ids[ctx]
            whole = list(backend.tokenize(ctx + cont))
            ok = whole[: len(cids)] == cids
            seq = [*head, *cids, *whole[len(cids) :]]
            start = len(head) + len(cids)
        else:
            xids = list(backend.tokenize(cont))
            ok = True
            seq = xids if prefix < 0 or xids[:1] == [prefix] else [prefix, *xids]
            start = 1
        if start < 1 or start >= len(seq):
            raise ValueError(f"pair {i}: nothing to score after the context")
        seqs.append(seq)
        starts.append(start)
        aligned.append(ok)
    return seqs, starts, aligned


def harness_conditional_logprobs(
    backend: TailScorer,
    pairs: Sequence[tuple[str, str]],
    *,
    chunk_size: int = 256,
    progress: ProgressFn | None = None,
    share_prefix: bool = True,
) -> list[ContinuationScore]:
    """:func:`conditional_logprobs` under ``prefix_token='harness'`` (see the module docstring).

    The token sequences come from :func:`harness_token_pairs`; ``score_tails`` evaluates a
    context shared by several options once (its scores equal whole-sequence scoring to float
    rounding). ``share_prefix=False`` scores whole sequences through ``logprobs_ids`` where the
    backend has it (the reference path).
    """
    seqs, starts, aligned = harness_token_pairs(backend, pairs)
    whole = getattr(backend, "logprobs_ids", None)
    if share_prefix or not callable(whole):
        return _score_token_pairs(backend, pairs, seqs, starts, aligned, chunk_size, progress)
    out = []
    for start in range(0, len(seqs), chunk_size):
        part = range(start, min(start + chunk_size, len(seqs)))
        for i, lp in zip(part, whole([seqs[i] for i in part]), strict=True):
            lps = [float(x) for x in lp[starts[i] - 1 :]]
            out.append(
                ContinuationScore(float(sum(lps)), len(lps), len(pairs[i][1]), lps, aligned[i])
            )
        if progress is not None:
            progress(part.stop, len(seqs))
    return out


def _score_token_pairs(
    backend: TailScorer,
    pairs: Sequence[tuple[str, str]],
    seqs: list[list[int]],
    starts: list[int],
    aligned: list[bool],
    chunk_size: int,
    progress: ProgressFn | None,
) -> list[ContinuationScore]:
    """``score_tails`` in chunks of about ``chunk_size`` that keep a context's options together."""
    by_ctx: dict[str, list[int]] = {}
    for i, (ctx, _) in enumerate(pairs):
        by_ctx.setdefault(ctx, []).append(i)
    chunks: list[list[int]] = [[]]
    for members in by_ctx.values():
        if chunks[-1] and len(chunks[-1]) + len(members) > chunk_size:
            chunks.append([])
        chunks[-1].extend(members)
    out: list[ContinuationScore | None] = [None] * len(pairs)
    done = 0
    for chunk in chunks:
        tails = backend.score_tails([seqs[i] for i in chunk], [starts[i] for i in chunk])
        for i, lps in zip(chunk, tails, strict=True):
            lps = [float(x) for x in lps]
            out[i] = ContinuationScore(float(sum(lps)), len(lps), len(pairs[i][1]), lps, aligned[i])
        done += len(chunk)
        if progress is not None:
            progress(done, len(pairs))
    return [s for s in out if s is not None]


def shared_conditional_logprobs(
    backend: TailScorer,
    pairs: Sequence[tuple[str, str]],
    *,
    chunk_size: int = 256,
    progress: ProgressFn | None = None,
) -> list[ContinuationScore]:
    """:func:`conditional_logprobs` (``prefix_token='always'``) through ``score_tails``.

    ``pairs`` are already whitespace-normalised. Token sequences are exactly the per-option
    path's: ``[prefix, *tokenize(context + continuation)]`` with the continuation starting
    after ``len(tokenize(context))`` tokens, or, for a misaligned boundary on a backend with
    ``logprobs_ids``, ``[prefix, *tokenize(context), *tokenize(continuation)]``; so the
    scores match it to rounding (checked in bench/option_scoring.py and the tests). Pairs are
    sent in chunks of about ``chunk_size`` that keep a context's options together.
    """
    prefix = int(backend.prefix_id)
    head = [prefix] if prefix >= 0 else []
    rescore = callable(getattr(backend, "logprobs_ids", None))
    ctx_ids = {c: list(backend.tokenize(c)) for c in dict.fromkeys(c for c, _ in pairs) if c}
    seqs: list[list[int]] = []
    starts: list[int] = []
    aligned: list[bool] = []
    for ctx, cont in pairs:
        cids = ctx_ids.get(ctx, [])
        whole = list(backend.tokenize(ctx + cont))
        ok = whole[: len(cids)] == cids and len(whole) > len(cids)
        if not ok and rescore:
            xids = list(backend.tokenize(cont))
            if not head and not cids:
                raise ValueError("cannot score a continuation with neither context nor prefix")
            seq = [*head, *cids, *xids]
            start = len(seq) - len(xids)
        else:
            seq = [*head, *whole]
            start = min(len(head) + len(cids), len(seq))
        if start < 1:
            raise ValueError("cannot score a first token without a prefix token")
        seqs.append(seq)
        starts.append(start)
        aligned.append(ok)
    return _score_token_pairs(backend, pairs, seqs, starts, aligned, chunk_size, progress)


def _rescore_ids(
    backend: Any, pairs: Sequence[tuple[str, str]], ctx_ids: dict[str, list[int]]
) -> list[ContinuationScore]:
    """Score separately tokenised continuation ids right after the context ids."""
    prefix = getattr(backend, "prefix_id", None)
    head = [int(prefix)] if prefix is not None and prefix >= 0 else []
    seqs, spans = [], []
    for ctx, cont in pairs:
        cids = ctx_ids.get(ctx, [])
        xids = list(backend.tokenize(cont))
        if not head and not cids:
            raise ValueError("cannot score a continuation with neither context nor prefix token")
        seqs.append([*head, *cids, *xids])
        spans.append(len(xids))
    scores = backend.logprobs_ids(seqs)
    out = []
    for (_, cont), lp, k in zip(pairs, scores, spans, strict=True):
        lps = [float(x) for x in lp[len(lp) - k :]] if k else []
        out.append(ContinuationScore(float(sum(lps)), len(lps), len(cont), lps, aligned=False))
    return out


@dataclass(frozen=True)
class ScoringChoice:
    """Which runtime scores log-probabilities, on what weights, and why (for results files)."""

    backend: str
    device: str
    weights: str
    reason: str
    batch_size: int = 32

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "device": self.device,
            "weights": self.weights,
            "reason": self.reason,
            "batch_size": self.batch_size,
        }


#: Seconds of one probe per candidate: ``{"hf": 1.2, "llamacpp-f32": 1.9}`` (lower wins).
ProbeTimes = dict[str, float]


def choose_scoring_backend(
    *, cuda: bool | None = None, probe: Callable[[], ProbeTimes] | None = None
) -> ScoringChoice:
    """``scoring_backend: auto``: the fastest *exact* (fp32 weights) path on this machine.

    By rule, then by measurement: CUDA present → transformers on ``cuda`` (fp32); on CPUs,
    ``probe`` (a tiny timed scoring of a few sentences per candidate, e.g. ``hf`` and
    ``llamacpp-f32``) picks the fastest when given; without one, batched transformers fp32,
    which measured 2.3× faster than llama.cpp Q4_1 on CrowS-Pairs and equal to a plain
    transformers loop on 2 CPU cores (issue 28). The probe's result is cached per process
    (:func:`_probe_once`). Quantised weights are never chosen: they change scores.
    """
    if cuda is None:
        cuda = _cuda_available()
    if cuda:
        return ScoringChoice("hf", "cuda", "f32", "CUDA present: transformers fp32 on the GPU")
    if probe is not None:
        times = _probe_once(probe)
        if times:
            best = min(times, key=times.__getitem__)
            shown = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(times.items()))
            backend, _, weights = best.partition("-")
            return ScoringChoice(
                backend, "cpu", weights or "f32", f"fastest in a timed probe ({shown})"
            )
    return ScoringChoice(
        "hf",
        "cpu",
        "f32",
        "CPU without a measured faster path: batched transformers fp32 (length-sorted batches "
        "of 32), 2.3x llama.cpp Q4_1 on CrowS-Pairs (issue 28)",
    )


def explicit_choice(backend: Backend, requested: str, weights: str = "native") -> ScoringChoice:
    """The :class:`ScoringChoice` record of a runtime the user named (no automatic choice)."""
    device = str(getattr(backend, "device", "cpu"))
    return ScoringChoice(
        str(getattr(backend, "name", requested)),
        device,
        weights,
        f"chosen explicitly ({requested!r}); not the automatic choice",
        int(getattr(backend, "batch_size", 1) or 1),
    )


def load_scoring_backend(
    choice: ScoringChoice, model_path: str | None = None, n_threads: int | None = None
) -> Backend:
    """Build the runtime ``choice`` names for ``model_path`` (``None``: the embedded model).

    ``hf``: transformers in float32 on ``choice.device`` (a GGUF is dequantised once to a
    cached fp32 checkpoint, lossless with respect to its values), ``choice.batch_size`` texts
    per padded batch. ``llamacpp``: the GGUF with ``choice.weights`` (``f32``: a local
    dequantised copy).
    """
    if choice.backend == "hf":
        return load_backend(
            "hf",
            model_path=model_path,
            device=choice.device,
            dtype="float32",
            batch_size=choice.batch_size,
            n_threads=n_threads,
        )
    if choice.backend == "llamacpp":
        kw: dict[str, Any] = {"model_path": model_path} if model_path else {}
        return load_backend("llamacpp", weights=choice.weights, n_threads=n_threads, **kw)
    raise ValueError(f"no scoring runtime {choice.backend!r}; choose hf or llamacpp")


_PROBES: dict[int, ProbeTimes] = {}


def _probe_once(probe: Callable[[], ProbeTimes]) -> ProbeTimes:
    """Run ``probe`` once per process (keyed by the function) and keep its timings."""
    key = id(probe)
    if key not in _PROBES:
        _PROBES[key] = dict(probe())
    return _PROBES[key]


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def stratified_sample(
    strata: Sequence[Any],
    limit: int | None,
    seed: int = 0,
    allocation: Literal["proportional", "equal"] = "proportional",
) -> list[int]:
    """Row indices of a seeded subsample of at most ``limit`` rows, spread over strata.

    ``proportional`` keeps each stratum's share (largest-remainder rounding); ``equal`` gives
    every stratum the same quota, handing what small strata cannot use to the others. Indices
    come back sorted, so a subsample keeps the file order; ``limit=None`` (or a limit at least the
    number of rows) returns every row.
    """
    import numpy as np

    n = len(strata)
    if limit is None or limit >= n:
        return list(range(n))
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    keys = list(groups)
    sizes = np.array([len(groups[k]) for k in keys])
    if allocation == "proportional":
        exact = sizes * limit / n
        quota = np.floor(exact).astype(int)
        for j in np.argsort(-(exact - quota), kind="stable")[: limit - int(quota.sum())]:
            quota[j] += 1
    elif allocation == "equal":
        quota = np.zeros(len(keys), dtype=int)
        left = limit
        while left > 0:
            open_ = [j for j in range(len(keys)) if quota[j] < sizes[j]]
            share, extra = divmod(left, len(open_))
            for r, j in enumerate(open_):
                add = min(share + (1 if r < extra else 0), sizes[j] - quota[j])
                quota[j] += add
                left -= add
    else:
        raise ValueError(f"unknown allocation {allocation!r}")
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for k, q in zip(keys, quota, strict=True):
        if q:
            picked.extend(int(i) for i in rng.choice(groups[k], size=int(q), replace=False))
    return sorted(picked)
