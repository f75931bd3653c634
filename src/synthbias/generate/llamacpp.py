"""The embedded generator: llama.cpp through llama-cpp-python's low-level API.

Why low-level: the high-level ``llama_cpp.Llama`` decodes one sequence at a time. Here up to
``batch_size`` sequences share one context (one ``seq_id`` and one KV stream each) and every
decode step advances all of them, which amortises the per-decode overhead and memory traffic and
gives the threads larger matrices to split. A prompt prefix shared by every sequence of a batch
(the chat template's system turn, a common instruction) is decoded once and copied to the other
sequences (``llama_memory_seq_cp``), and kept for the next call, like llama.cpp's prompt cache.
Scoring does the same per item (:meth:`LlamaCppBackend.score_tails`): a prompt is decoded once,
without logits, and copied to each of its options' sequences.

Sampling is done in numpy on each sequence's logits row with a random stream seeded from
``(params.seed, request index)``. Together with the decode discipline described at
``_decode_once``, a completion depends on its prompt, the seed and its index in the call, not on
which other prompts share its batch: greedy outputs match one-prompt-at-a-time calls exactly.

A GGUF LoRA adapter (``lora_path``, e.g. from :func:`synthbias.train.adapter.export_gguf_lora`)
is loaded with ``llama_adapter_lora_init`` and applied to the context at ``lora_scale``; llama.cpp
adds it at run time on top of the (quantised) base weights, and ``model_id`` names it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthbias.core.hashing import file_hash
from synthbias.generate.models import (
    WIDENED_WEIGHTS,
    default_model_path,
    model_cache_dir,
    model_fingerprint,
    widened_model_name,
)
from synthbias.generate.prefix_tree import shared_start
from synthbias.generate.protocol import (
    Completion,
    ContextLengthError,
    Message,
    Prompt,
    SamplingParams,
    TextLogprobs,
    encode_for_generation,
)

_BACKEND_READY = False


def _llama_cpp() -> Any:
    """Import llama-cpp-python lazily so the rest of the package works without it."""
    try:
        import llama_cpp
        import llama_cpp.llama_chat_format  # noqa: F401  (Jinja2ChatFormatter)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "LlamaCppBackend needs llama-cpp-python: pip install llama-cpp-python==0.3.36"
        ) from err
    return llama_cpp


# ggml log levels (ggml.h): 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous line.
_GGML_LOG_ERROR, _GGML_LOG_CONT = 4, 5
_log_state = {"verbose": False, "level": 0}
_log_callback: Any = None  # the ctypes callback must stay referenced while installed


def _configure_logging(lc: Any, verbose: bool) -> None:
    """Route llama.cpp's log: everything when verbose, else errors only (process-wide).

    llama-cpp-python's own callback maps the current ggml levels wrongly (it prints warnings
    and hides errors), so a small replacement is installed once.
    """
    global _log_callback
    _log_state["verbose"] = verbose
    if _log_callback is not None:
        return

    def _on_log(level: int, text: bytes | None, _user_data: Any) -> None:
        if level != _GGML_LOG_CONT:
            _log_state["level"] = level
        if text and (_log_state["verbose"] or _log_state["level"] >= _GGML_LOG_ERROR):
            sys.stderr.write(text.decode("utf-8", errors="replace"))

    _log_callback = lc.llama_log_callback(_on_log)
    lc.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _use_extra_buffers(lc: Any, wanted: bool | None) -> bool:
    """Whether to let llama.cpp use its extra CPU buffer types (see ``extra_buffers``)."""
    if wanted is not None:
        return wanted
    info = lc.llama_print_system_info().decode("utf-8", errors="replace")
    return "AMX_INT8 = 1" not in info


def guard_high_level_llama() -> None:
    """Make llama-cpp-python's own ``Llama`` class (its server, reference loops in tests and
    benchmarks) load models as this backend does on AMX CPUs: without the extra buffer types
    whose AMX matmul segfaults (see ``extra_buffers``). Process-wide and idempotent."""
    lc = _llama_cpp().llama_cpp
    if getattr(lc.llama_model_default_params, "_synthbias_guard", False):
        return
    original = lc.llama_model_default_params

    def model_params() -> Any:
        params = original()
        params.use_extra_bufts = _use_extra_buffers(lc, None)
        return params

    model_params._synthbias_guard = True  # type: ignore[attr-defined]
    lc.llama_model_default_params = model_params


def widen_model(
    path: str | os.PathLike[str], weights: str, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A copy of a quantised GGUF with its weights dequantised to ``weights`` (f32 or f16).

    Why: on CPUs without a working AMX path, llama.cpp multiplies f32/f16 matrices with its
    tiled sgemm, about twice as fast in prompt processing (scoring) as Q4_1 x Q8_1 dot products
    here (bench/likelihood.py). The weights are the same numbers; the activations are no longer
    rounded to 8 bits, so scores move slightly (a different runtime, like the fp32 transformers
    path). Derived locally with ``llama_model_quantize`` (about a second; 540 MB for SmolLM2 in
    f32), written atomically and reused; nothing is downloaded.
    """
    lc = _llama_cpp()
    src = Path(path)
    folder = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    target = folder / widened_model_name(src, weights)
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    params = lc.llama_model_quantize_default_params()
    params.ftype = lc.LLAMA_FTYPE_ALL_F32 if weights == "f32" else lc.LLAMA_FTYPE_MOSTLY_F16
    params.allow_requantize = True
    params.nthread = available_cores()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        rc = lc.llama_model_quantize(str(src).encode("utf-8"), str(tmp).encode("utf-8"), params)
        if rc != 0 or not tmp.is_file():
            raise RuntimeError(f"llama_model_quantize({src} -> {weights}) returned {rc}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity / container limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _free_native(lc: Any, handles: dict[str, Any]) -> None:
    """Free native objects, context before model. Runs from close() or at interpreter exit."""
    if handles.get("batch") is not None:
        lc.llama_batch_free(handles.pop("batch"))
    if handles.get("ctx") is not None:
        lc.llama_free(handles.pop("ctx"))
    if handles.get("lora") is not None:  # after the context using it, before its model
        lc.llama_adapter_lora_free(handles.pop("lora"))
    if handles.get("model") is not None:
        lc.llama_model_free(handles.pop("model"))


# ---------------------------------------------------------------------------------------------
# Sampling (pure numpy, one row at a time so a row's draw never depends on its neighbours)
# ---------------------------------------------------------------------------------------------


def sample_token(
    logits: np.ndarray,
    temperature: float,
    top_k: int,
    top_p: float,
    rng: np.random.Generator,
) -> int:
    """Draw one token id from a logits row.

    Order as in transformers and vLLM: temperature, then top-k, then top-p (nucleus over the
    top-k-renormalised distribution). ``temperature == 0`` is greedy and consumes no randomness.
    The nucleus is found on a growing top-m slice (argpartition) instead of sorting the whole
    vocabulary, which keeps a 49k-token row well under a millisecond.
    """
    if temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    z -= z.max()
    n = z.size
    k = top_k if 0 < top_k < n else n
    if k == n and top_p >= 1.0:  # plain softmax sampling: no ordering needed
        cum = np.cumsum(np.exp(z))
        return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), n - 1))
    if k < n:
        cand = np.argpartition(z, n - k)[n - k :]
        cand = cand[np.argsort(-z[cand], kind="stable")]
        p = np.exp(z[cand])
        p /= p.sum()
    else:
        e = np.exp(z)
        total = e.sum()
        m = min(n, 256)
        while True:  # grow the slice until it holds the nucleus
            cand = np.argpartition(z, n - m)[n - m :] if m < n else np.arange(n)
            cand = cand[np.argsort(-z[cand], kind="stable")]
            p = e[cand] / total
            if m == n or p.sum() >= top_p:
                break
            m = min(n, m * 4)
    if top_p < 1.0:  # p is relative to the (top-k) distribution, so top_p is absolute here
        keep = int(np.searchsorted(np.cumsum(p), top_p, side="left")) + 1
        cand, p = cand[:keep], p[:keep]
    cum = np.cumsum(p)
    j = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return int(cand[min(j, cand.size - 1)])


def token_logprob(row: np.ndarray, target: int) -> float:
    """log softmax(row)[target]; exp and sum in float32 (error ~1e-6), the rest in float64."""
    mx = float(row.max())
    total = float(np.exp(row - np.float32(mx)).sum(dtype=np.float64))
    return float(row[target]) - mx - float(np.log(total))


# ---------------------------------------------------------------------------------------------
# Backend
# ---------------------------------------------------------------------------------------------


@dataclass
class _Seq:
    """Decoding state of one request inside a batch."""

    index: int
    prompt: list[int]
    rng: np.random.Generator
    out: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    finish: str | None = None
    cut: int | None = None  # character index of the first stop string, if one matched

    @property
    def next_pos(self) -> int:
        """Position of the last sampled token, which is the next one to feed."""
        return len(self.prompt) + len(self.out) - 1


@dataclass
class _Entry:
    token: int
    pos: int
    seq: int
    output: bool


class LlamaCppBackend:
    """Batched llama.cpp generator and scorer (implements ``protocol.Backend``).

    Args:
        model_path: GGUF file; ``None`` loads :func:`~synthbias.generate.models.default_model_path`.
        n_ctx: per-sequence context (prompt + completion tokens). Prompts that do not fit raise
            :class:`ContextLengthError`; nothing is truncated silently.
        n_threads: CPU threads; default all cores available to the process.
        batch_size: sequences decoded together (also the context's ``n_seq_max``).
        n_batch: most tokens submitted in one ``llama_decode`` (prompt prefill is chunked by it).
        share_prefix: decode a prefix shared by all prompts of a batch only once, and keep it
            cached for the next call (a loop over prompts with one system turn reuses it).
        share_text_prefix: let ``logprobs`` decode the common beginning of texts (a sentence
            pair) once (:meth:`score_tails`). Same scores (full CrowS-Pairs identical) and a
            quarter fewer tokens there, but more, smaller decodes: it was not faster on 2
            shared CPU cores (bench/likelihood.py), so it is off by default.
        kv_type: KV-cache precision, ``"f16"`` (llama.cpp's default) or ``"f32"``. The cache is
            allocated up front: ``n_ctx * batch_size`` cells of 23 KiB (f16) or 46 KiB (f32)
            for SmolLM2, i.e. 0.75 GiB at the default 1024 x 32 in f16.
        verbose: let llama.cpp's own log through (it is silenced below ERROR otherwise).
        lora_path: a GGUF LoRA adapter file applied on top of the model.
        lora_scale: multiplier of the adapter's effect (1.0: as trained).
        extra_buffers: let llama.cpp place weights in its extra CPU buffer types (AMX, repacked
            layouts). ``None``: on, except on CPUs with AMX, where llama.cpp 0.3.36's AMX matmul
            segfaults on the first decode (ggml-org/llama.cpp#20824; seen on this project's
            Sapphire Rapids machines with the Q4_1 SmolLM2).
        weights: ``"native"`` runs the file as stored; ``"f32"`` / ``"f16"`` run a locally
            dequantised copy (:func:`widen_model`): about 2x faster scoring on CPUs where
            llama.cpp's quantised matmul is the bottleneck, with slightly different scores.

    Not thread-safe: one context is reused by every call. Close it (or use ``with``) to free the
    native memory promptly; it is also freed at interpreter exit.
    """

    name = "llama.cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 1024,
        n_threads: int | None = None,
        batch_size: int = 32,
        n_batch: int = 512,
        share_prefix: bool = True,
        share_text_prefix: bool = False,
        kv_type: Literal["f16", "f32"] = "f16",
        verbose: bool = False,
        lora_path: str | os.PathLike[str] | None = None,
        lora_scale: float = 1.0,
        extra_buffers: bool | None = None,
        weights: Literal["native", "f32", "f16"] = "native",
    ) -> None:
        lc = _llama_cpp()
        self._lc = lc
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if batch_size > lc.llama_max_parallel_sequences():
            raise ValueError(
                f"batch_size {batch_size} exceeds llama.cpp's limit of "
                f"{lc.llama_max_parallel_sequences()} parallel sequences"
            )
        if n_ctx < 8:
            raise ValueError(f"n_ctx must be >= 8, got {n_ctx}")
        if kv_type not in ("f32", "f16"):
            raise ValueError(f"kv_type must be 'f32' or 'f16', got {kv_type!r}")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not self.model_path.is_file():
            raise FileNotFoundError(f"model file not found: {self.model_path}")
        if weights != "native" and weights not in WIDENED_WEIGHTS:
            raise ValueError(f"weights must be 'native', 'f32' or 'f16', got {weights!r}")
        self.weights = weights
        self.lora_path = Path(lora_path) if lora_path is not None else None
        self.lora_scale = float(lora_scale)
        if self.lora_path is not None and not self.lora_path.is_file():
            raise FileNotFoundError(f"LoRA adapter file not found: {self.lora_path}")
        self.n_threads = n_threads or available_cores()
        self.batch_size = batch_size
        self.share_prefix = share_prefix
        self.share_text_prefix = share_text_prefix
        self.kv_type = kv_type
        self.verbose = verbose
        self.extra_buffers = extra_buffers

        _configure_logging(lc, verbose)
        global _BACKEND_READY
        if not _BACKEND_READY:
            lc.llama_backend_init()
            _BACKEND_READY = True
        #: The GGUF file actually loaded (``model_path`` widened when ``weights`` asks).
        self.loaded_path = (
            self.model_path if weights == "native" else widen_model(self.model_path, weights)
        )
        self.model_id = model_fingerprint(self.loaded_path)

        self._handles: dict[str, Any] = {}
        self._finalizer = weakref.finalize(self, _free_native, lc, self._handles)

        mparams = lc.llama_model_default_params()
        mparams.use_extra_bufts = _use_extra_buffers(lc, extra_buffers)
        model = lc.llama_model_load_from_file(str(self.loaded_path).encode("utf-8"), mparams)
        if not model:
            raise ValueError(f"llama.cpp could not load model {self.model_path}")
        self._handles["model"] = model
        self._model = model
        self._vocab = lc.llama_model_get_vocab(model)
        self.n_vocab: int = lc.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train: int = lc.llama_model_n_ctx_train(model)
        if n_ctx > self.n_ctx_train:
            raise ValueError(
                f"n_ctx {n_ctx} exceeds the model's training context {self.n_ctx_train}"
            )
        self.n_ctx = n_ctx

        cparams = lc.llama_context_default_params()
        # One KV stream per sequence (not unified): each token then attends only to its own
        # sequence's cells. With a unified cache every query scans the whole batch's cells (the
        # others masked), which at 32 sequences roughly doubled the cost of a decode step here.
        # Sharing a prefix then costs a buffer copy per sequence (llama_memory_seq_cp).
        cparams.kv_unified = False
        cparams.n_seq_max = batch_size
        cparams.n_ctx = n_ctx * batch_size
        cparams.n_batch = max(n_batch, batch_size)
        cparams.n_ubatch = cparams.n_batch
        cparams.n_threads = self.n_threads
        cparams.n_threads_batch = self.n_threads
        cparams.no_perf = True
        # No flash attention: its CPU kernel switches between tiled, per-row and split-KV code
        # paths with the batch shape and thread count, so a completion would depend on its batch
        # companions; it also moved SmolLM2 sentence log-probs by up to 0.8 nats.
        cparams.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        kv_ggml_type = lc.GGML_TYPE_F32 if kv_type == "f32" else lc.GGML_TYPE_F16
        cparams.type_k = kv_ggml_type
        cparams.type_v = kv_ggml_type
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context (out of memory?)")
        self._handles["ctx"] = ctx
        self._ctx = ctx
        if lc.llama_n_ctx_seq(ctx) < n_ctx:  # llama.cpp rounds per-sequence sizes
            raise RuntimeError(
                f"llama.cpp gave {lc.llama_n_ctx_seq(ctx)} cells per sequence, asked for {n_ctx}"
            )
        if self.lora_path is not None:
            self._apply_lora(self.lora_path, self.lora_scale)
        self._mem = lc.llama_get_memory(ctx)
        self.n_batch: int = int(cparams.n_batch)
        self._handles["batch"] = lc.llama_batch_init(self.n_batch, 0, 1)
        self._batch = self._handles["batch"]

        self.bos_id: int = lc.llama_vocab_bos(self._vocab)
        self.eos_id: int = lc.llama_vocab_eos(self._vocab)
        self.add_bos: bool = bool(lc.llama_vocab_get_add_bos(self._vocab))
        #: Token every scored text is conditioned on: BOS, or EOS when the model has none
        #: (lm-evaluation-harness's prefix token for an empty context).
        self.prefix_id: int = self.bos_id if self.bos_id >= 0 else self.eos_id
        self._eog = np.array(
            [bool(lc.llama_vocab_is_eog(self._vocab, t)) for t in range(self.n_vocab)]
        )
        self._pieces: dict[int, bytes] = {}
        self._cached: list[int] = []  # tokens whose KV sits in sequence 0 (prompt cache)
        raw_template = lc.llama_model_chat_template(model, None)
        #: The model's own chat template (GGUF ``tokenizer.chat_template``), or None.
        self.chat_template: str | None = raw_template.decode("utf-8") if raw_template else None
        self._formatter: Any = None

    def _apply_lora(self, path: Path, scale: float) -> None:
        """Load a GGUF LoRA for this model and set it on the context; name it in model_id."""
        lc = self._lc
        adapter = lc.llama_adapter_lora_init(self._model, str(path).encode("utf-8"))
        if not adapter:
            raise ValueError(
                f"llama.cpp could not load the LoRA adapter {path} for {self.model_path.name} "
                "(wrong architecture or tensor shapes? run with verbose=True for details)"
            )
        self._handles["lora"] = adapter
        adapters = (lc.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(scale)
        if lc.llama_set_adapters_lora(self._ctx, adapters, 1, scales) != 0:
            raise RuntimeError(f"llama.cpp could not apply the LoRA adapter {path}")
        # Hash the whole (small) file: adapters of one shape differ only in their values.
        digest = file_hash(path, 12)
        self.model_id = f"{self.model_id}+lora:{path.name}@{digest}"
        if scale != 1.0:
            self.model_id += f"*{scale:g}"

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context and the model now (idempotent)."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> LlamaCppBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("LlamaCppBackend is closed")

    def __repr__(self) -> str:
        return (
            f"LlamaCppBackend(model_id={self.model_id!r}, n_ctx={self.n_ctx}, "
            f"batch_size={self.batch_size}, n_threads={self.n_threads})"
        )

    # -- tokens and templates -------------------------------------------------------------------

    def tokenize(
        self, text: str, *, add_special: bool = False, parse_special: bool = False
    ) -> list[int]:
        """llama.cpp tokenisation; ``add_special`` follows the model's add-BOS flag."""
        self._check_open()
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (self._lc.llama_token * cap)()
        n = self._lc.llama_tokenize(
            self._vocab, data, len(data), buf, cap, add_special, parse_special
        )
        if n < 0:
            cap = -n
            buf = (self._lc.llama_token * cap)()
            n = self._lc.llama_tokenize(
                self._vocab, data, len(data), buf, cap, add_special, parse_special
            )
            if n < 0:
                raise RuntimeError(f"llama_tokenize failed ({n}) on {text[:80]!r}")
        return list(buf[:n])

    def token_bytes(self, token: int) -> bytes:
        """Raw bytes of one token (special tokens render as empty)."""
        piece = self._pieces.get(token)
        if piece is None:
            buf = ctypes.create_string_buffer(64)
            n = self._lc.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = self._lc.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            piece = buf.raw[:n]
            self._pieces[token] = piece
        return piece

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", errors="replace")

    def _token_text(self, token: int) -> str:
        return self._lc.llama_vocab_get_text(self._vocab, token).decode("utf-8", errors="replace")

    def render_chat(self, messages: Sequence[Message]) -> str:
        """Render messages with the model's GGUF chat template, ready for the assistant's turn."""
        if self.chat_template is None:
            raise ValueError(
                f"{self.model_path.name} has no tokenizer.chat_template; pass raw string prompts"
            )
        if self._formatter is None:
            fmt = self._lc.llama_chat_format.Jinja2ChatFormatter
            self._formatter = fmt(
                template=self.chat_template,
                eos_token=self._token_text(self.eos_id) if self.eos_id >= 0 else "",
                bos_token=self._token_text(self.bos_id) if self.bos_id >= 0 else "",
                add_generation_prompt=True,
            )
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise TypeError(f"chat messages need 'role' and 'content', got {m!r}")
        return self._formatter(messages=[dict(m) for m in messages]).prompt

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Token ids fed for a prompt.

        Raw strings are plain completion: the text as is, with BOS only where the model's
        tokenizer adds one (as llama.cpp's own completion does), and special tokens parsed so an
        already-rendered chat prompt works. Message lists are rendered with the model's chat
        template. An empty raw prompt is conditioned on the prefix token.
        """
        if isinstance(prompt, str):
            text = prompt
        else:
            text = self.render_chat(prompt)
        ids = self.tokenize(text, add_special=True, parse_special=True)
        if len(ids) >= 2 and ids[0] == ids[1] == self.bos_id:  # BOS written by template and added
            ids = ids[1:]
        if not ids and self.prefix_id >= 0:
            ids = [self.prefix_id]
        if not ids:
            raise ValueError("empty prompt and the model has neither BOS nor EOS")
        return ids

    # -- decoding core --------------------------------------------------------------------------
    #
    # Batch invariance. llama.cpp's CPU kernels pick a different code path when a sequence has a
    # single token in a micro-batch (mat-vec) than when it has several (tiled sgemm); the tiny
    # rounding differences are then amplified by 8-bit activation quantisation into logit changes
    # of ~0.3 on this model. So (1) prompt tokens are always decoded in runs of >= 2 per
    # sequence, cut the same way whatever else is in the batch, (2) generation steps are always
    # 1 token per sequence, and (3) runs of equal length share a decode, because with one KV
    # stream per sequence llama.cpp splits a decode into micro-batches with an equal number of
    # tokens per sequence and consecutive sequence ids (split_equal), which would otherwise cut
    # runs unpredictably and fragment generation steps.

    def _decode_once(
        self, entries: Sequence[_Entry], on_output: Callable[[_Entry, np.ndarray], None]
    ) -> None:
        """One ``llama_decode``; ``on_output`` gets each requested logits row.

        The row is a view into llama.cpp's buffer, valid only during the callback.
        """
        lc, b = self._lc, self._batch
        if not entries:
            return
        assert len(entries) <= self.n_batch
        for i, e in enumerate(entries):
            b.token[i] = e.token
            b.pos[i] = e.pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = e.seq
            b.logits[i] = e.output
        b.n_tokens = len(entries)
        rc = lc.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(
                f"llama_decode returned {rc} ({len(entries)} tokens); "
                "1 = no KV slot: lower batch_size or raise n_ctx"
            )
        for i, e in enumerate(entries):
            if e.output:
                ptr = lc.llama_get_logits_ith(self._ctx, i)
                on_output(e, np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)))

    def _split_run(self, run: list[_Entry]) -> list[list[_Entry]]:
        """Cut a run longer than ``n_batch`` into pieces, none of a single token."""
        n = self.n_batch
        pieces = [run[i : i + n] for i in range(0, len(run), n)]
        if len(pieces) > 1 and len(pieces[-1]) == 1:
            pieces[-1] = [pieces[-2].pop(), *pieces[-1]]
        return pieces

    def _prefill(
        self, runs: list[list[_Entry]], on_output: Callable[[_Entry, np.ndarray], None]
    ) -> None:
        """Decode runs (consecutive positions of one sequence each), equal lengths together."""
        split = [self._split_run(r) for r in runs if r]
        for k in range(max((len(p) for p in split), default=0)):
            by_len: dict[int, list[list[_Entry]]] = {}
            for pieces in split:
                if k < len(pieces):
                    by_len.setdefault(len(pieces[k]), []).append(pieces[k])
            for group in by_len.values():
                group.sort(key=lambda piece: piece[0].seq)
                chunk: list[_Entry] = []
                for piece in group:
                    if len(chunk) + len(piece) > self.n_batch:
                        self._decode_once(chunk, on_output)
                        chunk = []
                    chunk.extend(piece)
                self._decode_once(chunk, on_output)

    def _clear(self) -> None:
        """Empty the KV cache (and forget the cached prefix)."""
        self._lc.llama_memory_clear(self._mem, True)
        self._cached = []

    def _load_prefix(self, prefix: list[int]) -> None:
        """Put ``prefix`` in sequence 0's KV cells, reusing what the previous call left there.

        Successive calls usually share the chat template's system turn; like llama.cpp's own
        prompt cache, only the part after the longest common prefix is decoded again.
        """
        reuse = 0
        limit = min(len(self._cached), len(prefix))
        while reuse < limit and self._cached[reuse] == prefix[reuse]:
            reuse += 1
        if len(prefix) - reuse == 1:
            reuse -= 1  # never decode a lone token (see "Batch invariance")
        if reuse <= 0:
            self._clear()
        else:
            self._lc.llama_memory_seq_rm(self._mem, 0, reuse, -1)
        self._cached = []
        self._prefill(
            [[_Entry(prefix[p], p, 0, False) for p in range(reuse, len(prefix))]], _no_row
        )
        self._cached = list(prefix)

    # -- generation -----------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """Sample one completion per prompt, ``batch_size`` sequences per decode step."""
        self._check_open()
        encoded = encode_for_generation(self.encode_prompt, prompts, params.max_tokens, self.n_ctx)
        seed = params.seed & 0xFFFF_FFFF_FFFF_FFFF
        results: list[Completion] = []
        for start in range(0, len(encoded), self.batch_size):
            seqs = [
                _Seq(index=i, prompt=encoded[i], rng=np.random.default_rng([seed, i]))
                for i in range(start, min(start + self.batch_size, len(encoded)))
            ]
            self._generate_batch(seqs, params)
            results.extend(self._completion(s, params) for s in seqs)
        return results

    def _generate_batch(self, seqs: list[_Seq], params: SamplingParams) -> None:
        """Prefill (shared prefix once, then each prompt's own tokens) and decode to the end.

        Sequence ``j`` starts in KV slot ``j``; when sequences finish, live ones are moved down
        (``llama_memory_seq_cp``) so every step feeds slots 0..n_live-1, one micro-batch.
        """
        shared = self._shared_prefix([s.prompt for s in seqs]) if self.share_prefix else 0
        slots: list[_Seq | None] = list(seqs)
        mem, lc = self._mem, self._lc
        done = False
        try:
            if shared:
                self._load_prefix(seqs[0].prompt[:shared])
                for j in range(1, len(seqs)):
                    lc.llama_memory_seq_cp(mem, 0, j, -1, -1)
            else:
                self._clear()

            def step(e: _Entry, row: np.ndarray) -> None:
                seq = slots[e.seq]
                assert seq is not None
                self._accept(seq, row, params)

            runs = [
                [
                    _Entry(s.prompt[p], p, j, p == len(s.prompt) - 1)
                    for p in range(shared, len(s.prompt))
                ]
                for j, s in enumerate(seqs)
            ]
            self._prefill(runs, step)
            while True:
                self._compact(slots)
                live = [
                    _Entry(s.out[-1], s.next_pos, j, True)
                    for j, s in enumerate(slots)
                    if s is not None and s.finish is None
                ]
                if not live:
                    break
                self._decode_once(live, step)
            done = True
        finally:
            if done and shared:  # keep the shared prefix for the next call, drop the rest
                lc.llama_memory_seq_rm(mem, 0, shared, -1)
                for j in range(1, len(seqs)):
                    lc.llama_memory_seq_rm(mem, j, -1, -1)
            else:
                self._clear()

    def _compact(self, slots: list[_Seq | None]) -> None:
        """Move live sequences from the highest slots into freed low ones."""

        def live(j: int) -> bool:
            seq = slots[j]
            return seq is not None and seq.finish is None

        hi = len(slots) - 1
        for lo in range(len(slots)):
            if live(lo):
                continue
            while hi > lo and not live(hi):
                hi -= 1
            if hi <= lo:
                return
            self._lc.llama_memory_seq_cp(self._mem, hi, lo, -1, -1)
            self._lc.llama_memory_seq_rm(self._mem, hi, -1, -1)
            slots[lo], slots[hi] = slots[hi], None

    @staticmethod
    def _shared_prefix(prompts: list[list[int]]) -> int:
        """Tokens common to all prompts, leaving each at least two of its own to decode.

        For a single prompt that is all but its last two tokens, so a loop of one-prompt calls
        still reuses the cached system turn. Below two tokens nothing is shared.
        """
        return shared_start(prompts, keep=2, min_len=2)

    def _accept(self, s: _Seq, row: np.ndarray, params: SamplingParams) -> None:
        """Sample the next token of ``s`` and apply EOS/EOT, stop strings and max_tokens."""
        tok = sample_token(row, params.temperature, params.top_k, params.top_p, s.rng)
        if self._eog[tok]:
            s.finish = "stop"
            return
        s.out.append(tok)
        s.text += self.token_bytes(tok)
        if params.stop:
            text = s.text.decode("utf-8", errors="ignore")
            hits = [text.find(stop) for stop in params.stop if stop]
            hits = [h for h in hits if h >= 0]
            if hits:
                s.cut, s.finish = min(hits), "stop"
                return
        if len(s.out) >= params.max_tokens:
            s.finish = "length"

    @staticmethod
    def _completion(s: _Seq, params: SamplingParams) -> Completion:
        text = s.text.decode("utf-8", errors="replace")
        if s.cut is not None:
            text = s.text.decode("utf-8", errors="ignore")[: s.cut]
        return Completion(
            text=text,
            n_prompt_tokens=len(s.prompt),
            n_tokens=len(s.out),
            finish_reason="length" if s.finish == "length" else "stop",
            seed=params.seed,
        )

    # -- scoring --------------------------------------------------------------------------------

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """log p(token_j | prefix token, tokens_<j) for every token of each text.

        The lm-evaluation-harness causal-LM recipe (CrowS-Pairs): no chat template, special
        tokens in the text are not parsed, the prefix token (BOS) is conditioned on but not
        scored. Up to ``batch_size`` texts share each decode.
        """
        self._check_open()
        if isinstance(texts, str):
            raise TypeError("logprobs() takes a sequence of texts, not a single string")
        if self.prefix_id < 0:
            raise ValueError("model has neither BOS nor EOS to condition the first token on")
        ids = [[self.prefix_id, *self.tokenize(t)] for t in texts]
        for i, seq in enumerate(ids):
            if len(seq) > self.n_ctx:
                raise ContextLengthError(
                    f"text {i} has {len(seq)} tokens (with BOS) > n_ctx={self.n_ctx}"
                )
        if self.share_text_prefix:
            tails = self.score_tails(ids, [1] * len(ids))
            return [self._text_logprobs(seq, sc) for seq, sc in zip(ids, tails, strict=True)]
        return self._logprobs_plain(ids)

    def _text_logprobs(self, seq: list[int], scores: Sequence[float]) -> TextLogprobs:
        return TextLogprobs(
            tokens=[self.token_bytes(t).decode("utf-8", errors="replace") for t in seq[1:]],
            token_ids=list(seq[1:]),
            logprobs=[float(x) for x in scores],
        )

    def _logprobs_plain(self, ids: list[list[int]]) -> list[TextLogprobs]:
        """Each whole text decoded as one run, ``batch_size`` texts of similar length per call.

        The default (``share_text_prefix=False``) and the reference that :meth:`score_tails`
        is checked and benchmarked against.
        """
        scores = [np.zeros(len(seq) - 1, dtype=np.float64) for seq in ids]
        # Texts of one length decode together (see "Batch invariance"), so batches are formed
        # over the texts sorted by length: a decode then holds many runs, not one or two.
        by_length = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(ids), self.batch_size):
            group = by_length[start : start + self.batch_size]
            # A text's last token is never fed (nothing is scored after it), unless the run
            # would then be a single token.
            runs = [
                [
                    _Entry(ids[i][p], p, j, p < len(ids[i]) - 1)
                    for p in range(max(len(ids[i]) - 1, 2))
                ]
                for j, i in enumerate(group)
                if len(ids[i]) > 1  # an empty text has nothing to score
            ]

            def score(e: _Entry, row: np.ndarray, group: list[int] = group) -> None:
                i = group[e.seq]
                scores[i][e.pos] = token_logprob(row, ids[i][e.pos + 1])

            self._clear()
            try:
                self._prefill(runs, score)
            finally:
                self._clear()
        return [self._text_logprobs(seq, sc) for seq, sc in zip(ids, scores, strict=True)]

    def score_tails(
        self, sequences: Sequence[Sequence[int]], starts: Sequence[int]
    ) -> list[list[float]]:
        """log p(seq[j] | seq[:j]) for ``j = starts[i] .. len(seq) - 1`` of every id sequence.

        Why: option scoring and pair benchmarks score many sequences that share long prefixes
        (one prompt and its options; two sentences that differ in one word). Sequences are
        grouped by common prefix (:func:`plan_prefix_groups`); a group's shared prefix is
        decoded once, with logits only at positions that some member scores, and its KV cells
        are copied (``llama_memory_seq_cp``) to every member, which then decodes only its own
        rest. No logits are computed for unscored positions and a sequence's last token is
        never fed. The per-token numbers equal scoring each sequence alone: every run keeps
        at least two tokens (see "Batch invariance" above).
        """
        self._check_open()
        seqs = [list(s) for s in sequences]
        if len(seqs) != len(starts):
            raise ValueError(f"{len(seqs)} sequences but {len(starts)} starts")
        for i, (seq, st) in enumerate(zip(seqs, starts, strict=True)):
            if not 1 <= st <= len(seq):
                raise ValueError(f"sequence {i}: start {st} outside 1..{len(seq)}")
            if len(seq) > self.n_ctx:
                raise ContextLengthError(f"sequence {i} has {len(seq)} tokens > n_ctx={self.n_ctx}")
        scores = [
            np.zeros(len(seq) - st, dtype=np.float64) for seq, st in zip(seqs, starts, strict=True)
        ]
        groups = plan_prefix_groups(seqs, starts)
        wave: list[tuple[int, list[int]]] = []
        for shared, members in groups:
            if wave and sum(len(m) for _, m in wave) + len(members) > self.batch_size:
                self._score_wave(wave, seqs, starts, scores)
                wave = []
            if len(members) > self.batch_size:  # one group larger than the slots: split it
                for k in range(0, len(members), self.batch_size):
                    self._score_wave(
                        [(shared, members[k : k + self.batch_size])], seqs, starts, scores
                    )
                continue
            wave.append((shared, members))
        if wave:
            self._score_wave(wave, seqs, starts, scores)
        return [[float(x) for x in sc] for sc in scores]

    def _score_wave(
        self,
        wave: list[tuple[int, list[int]]],
        seqs: list[list[int]],
        starts: Sequence[int],
        scores: list[np.ndarray],
    ) -> None:
        """Decode groups whose members fit in the slots: shared prefixes, copies, then rests."""
        slot_of: dict[int, int] = {}
        first_slot: list[int] = []
        for _, members in wave:
            first_slot.append(len(slot_of))
            for i in members:
                slot_of[i] = len(slot_of)
        member_at = {slot: i for i, slot in slot_of.items()}
        group_at = {first_slot[g]: g for g in range(len(wave))}

        def head_row(e: _Entry, row: np.ndarray) -> None:
            for i in wave[group_at[e.seq]][1]:
                if starts[i] - 1 <= e.pos:
                    scores[i][e.pos - starts[i] + 1] = token_logprob(row, seqs[i][e.pos + 1])

        def own_row(e: _Entry, row: np.ndarray) -> None:
            i = member_at[e.seq]
            scores[i][e.pos - starts[i] + 1] = token_logprob(row, seqs[i][e.pos + 1])

        heads = []
        for g, (shared, members) in enumerate(wave):
            if shared:
                first = min(starts[i] for i in members) - 1
                seq0 = seqs[members[0]]
                heads.append([_Entry(seq0[p], p, first_slot[g], p >= first) for p in range(shared)])
        rests = []
        for shared, members in wave:
            for i in members:
                seq, end = seqs[i], max(len(seqs[i]) - 1, shared + 2)
                rests.append(
                    [
                        _Entry(seq[p], p, slot_of[i], starts[i] - 1 <= p <= len(seq) - 2)
                        for p in range(shared, end)
                    ]
                )
        self._clear()
        try:
            self._prefill(heads, head_row)
            for g, (shared, members) in enumerate(wave):
                for i in members[1:] if shared else ():
                    self._lc.llama_memory_seq_cp(self._mem, first_slot[g], slot_of[i], -1, -1)
            self._prefill(rests, own_row)
        finally:
            self._clear()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


#: Fewest shared tokens worth a group (a prefix decode plus KV copies per member).
MIN_SHARED = 4


def plan_prefix_groups(
    seqs: Sequence[Sequence[int]], starts: Sequence[int], min_shared: int = MIN_SHARED
) -> list[tuple[int, list[int]]]:
    """Group sequences by common prefix: ``(shared length, member indices)`` per group.

    Sequences are visited in lexicographic order; one joins the current group when it shares
    at least ``min_shared`` tokens with it, the shared part still covers every member's
    unscored head (``start - 1`` tokens: options of one prompt group, different prompts with a
    common instruction do not) and it keeps at least half of what the group shared. The shared
    length leaves each member two tokens of its own to decode (single-token runs take another
    kernel path), and a group that ends up with one member or fewer than two shared tokens
    shares nothing (length 0). Sequences with nothing to score are left out.
    """
    order = sorted((i for i in range(len(seqs)) if starts[i] < len(seqs[i])), key=seqs.__getitem__)
    raw: list[tuple[int, list[int]]] = []
    for i in order:
        if raw:
            lcp, members = raw[-1]
            new = min(lcp, common_prefix(seqs[members[0]], seqs[i]))
            head = max(starts[j] - 1 for j in (*members, i))
            if new >= max(min_shared, head) and (len(members) == 1 or 2 * new >= lcp):
                raw[-1] = (new, [*members, i])
                continue
        raw.append((len(seqs[i]), [i]))
    out: list[tuple[int, list[int]]] = []
    for lcp, members in raw:
        shared = min(lcp, *(len(seqs[j]) - 2 for j in members))
        if len(members) < 2 or shared < 2:
            out.extend((0, [j]) for j in members)
        else:
            out.append((shared, members))
    out.sort(key=lambda g: (g[0], min(len(seqs[j]) for j in g[1])))
    return out


def _no_row(e: _Entry, row: np.ndarray) -> None:  # pragma: no cover - never requested
    raise AssertionError("unexpected logits row")
