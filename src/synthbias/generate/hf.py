"""HF transformers backend: the same protocol as llama.cpp, on any local HF checkpoint or GGUF.

Why a second runtime: scores must not be an artefact of one inference engine. Running the same
weights through PyTorch (dequantised to float32) gives an independent check of the llama.cpp
numbers, and lets the toolkit score any local HF checkpoint (fine-tuned students included).

GGUF files are loaded through transformers' ``gguf_file=`` support, which dequantises every tensor
(40-100 s for SmolLM2-135M on 2 cores) and yields a model that refuses ``save_pretrained``. We
therefore convert once: the dequantised state dict, config (without its ``quantization_config``),
generation config and tokenizer are written as a plain safetensors checkpoint into a cache folder
(``$SYNTHBIAS_CACHE/hf`` or ``~/.cache/synthbias/hf``, one sub-folder ``<name>-<hash>`` per
source file) and every later load reads that folder in about a second. The folder is written
under a temporary name and renamed into place, so a crash or a concurrent writer never leaves a
half-written checkpoint behind. Nothing is ever downloaded: all loads are ``local_files_only``.

Scoring follows lm-evaluation-harness's ``HFLM`` for causal LMs: a text is tokenised without
special tokens and the *prefix token* is prepended, conditioned on but not scored. The prefix token
is ``prefix_token_id`` when given, else the tokenizer's ``bos_token_id``, else its
``eos_token_id`` (``HFLM.prefix_token_id``). This holds whether or not the tokenizer adds BOS by
itself. For the embedded SmolLM2-135M-Instruct (``add_bos_token`` false) that is id 1,
``<|im_start|>``: the GGUF's ``tokenizer.ggml.bos_token_id`` and the instruct tokenizer's
``bos_token``, which is also what :class:`~synthbias.generate.llamacpp.LlamaCppBackend` prepends,
so both runtimes score the same token sequence. (Base SmolLM2 checkpoints declare
``<|endoftext|>``, id 0, as BOS and get that instead.)

A LoRA adapter made by :func:`synthbias.train.sft.train_lora` (any peft LoRA folder) is applied
with ``adapter_path=``: the base loads as above, the embedding matrix is grown when the adapter
added tokens (the tokenizer then comes from the adapter folder), and the adapter is merged into
the weights so decoding costs the same as the base. ``model_id`` becomes
``<base id>+lora:<adapter hash>`` so caches never mix base and tuned scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbias.core.hashing import dir_fingerprint, stream_seed
from synthbias.generate.models import default_model_path, model_fingerprint
from synthbias.generate.prefix_memo import PrefixMemo
from synthbias.generate.prefix_tree import PackedRow, PrefixNode, build_prefix_tree, pack_rows
from synthbias.generate.protocol import (
    Completion,
    ContextLengthError,
    Message,
    Prompt,
    SamplingParams,
    TextLogprobs,
    encode_for_generation,
)
from synthbias.generate.tree_decode import (
    cache_keyword,
    decode,
    make_capture_cache,
    prefill_from_memo,
    prefill_tree,
    row_tensors,
)

log = logging.getLogger(__name__)

#: Environment variable naming the root of synthbias's caches (``hf/`` is created inside it).
CACHE_ENV_VAR = "SYNTHBIAS_CACHE"
#: Bumped when the layout of a converted checkpoint changes, so stale folders are not reused.
_CONVERSION_VERSION = 1
_MARKER = "synthbias_conversion.json"


def default_cache_dir() -> Path:
    """Root of converted checkpoints: ``$SYNTHBIAS_CACHE/hf`` or ``~/.cache/synthbias/hf``."""
    root = os.environ.get(CACHE_ENV_VAR, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "synthbias"
    return base / "hf"


def _torch() -> Any:
    import torch

    return torch


def converted_checkpoint(
    gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Folder of the plain safetensors checkpoint converted from ``gguf_path``, made if missing.

    The conversion dequantises to float32 (lossless with respect to the GGUF's values); the
    sub-folder name hashes the GGUF fingerprint and the conversion version, so another file (or
    a re-quantised one) never reuses a stale conversion.
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF model file not found: {gguf_path}")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    fp = model_fingerprint(gguf_path)
    digest = hashlib.sha256(f"{fp}|v{_CONVERSION_VERSION}".encode()).hexdigest()[:12]
    target = root / f"{gguf_path.stem}-{digest}"
    if (target / _MARKER).is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{gguf_path.stem}-", dir=root))
    try:
        _convert_gguf(gguf_path, tmp)
        (tmp / _MARKER).write_text(
            json.dumps(
                {"source": str(gguf_path), "fingerprint": fp, "version": _CONVERSION_VERSION},
                indent=2,
            )
        )
        tmp.chmod(0o755)  # mkdtemp makes it private; a cache folder is ordinary data
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (target exists and is non-empty): use theirs.
            if not (target / _MARKER).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF through transformers and save it as an ordinary HF checkpoint."""
    torch = _torch()
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a safetensors checkpoint (one-off, ~1 min)", gguf_path.name)
    kw = {"gguf_file": gguf_path.name, "local_files_only": True}
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kw)
    # save_pretrained refuses GGUF-quantised models; the dequantised tensors are plain float32,
    # so we write them directly (save_model drops the tied lm_head duplicate).
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)


def adapter_fingerprint(adapter_dir: str | os.PathLike[str]) -> str:
    """Identity of a LoRA adapter folder: a hash of its config, weights and tokenizer files.

    The whole weight file is hashed (a few MB): two trainings of the same shape differ only in
    their values, which a header hash would miss.
    """
    path = Path(adapter_dir)
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        f = path / name
        if f.is_file():
            h.update(name.encode())
            h.update(f.read_bytes())
    for f in sorted(path.glob("tokenizer*")) + sorted(path.glob("special_tokens_map.json")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return f"{path.name}@{h.hexdigest()[:12]}"


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def _check_adapter(adapter: Path, base_id: str, checkpoint: Path) -> None:
    """Refuse an adapter trained on another base (as recorded in its ``train_meta.json``)."""
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    meta_file = adapter / "train_meta.json"
    if not meta_file.is_file():
        return  # an adapter made elsewhere: nothing recorded to check against
    meta = json.loads(meta_file.read_text())

    def digest(fingerprint: str) -> str:  # content hash only: moving or renaming is fine
        return fingerprint.rsplit("@", 1)[-1]

    recorded = {
        digest(f) for f in (meta.get("base_fingerprint"), meta.get("checkpoint_fingerprint")) if f
    }
    current = {digest(base_id), digest(dir_fingerprint(checkpoint))}
    if recorded and not recorded & current:
        raise ValueError(
            f"adapter {adapter} was trained on {meta.get('base_fingerprint')} "
            f"({meta.get('base_model')}), not on {base_id}"
        )


#: adapter_config.json settings that make a LoRA more than ``W + B @ A * alpha / r`` on plain
#: linear layers: any of them set sends the merge through peft.
_LORA_VARIANTS = (
    "use_dora",
    "use_rslora",
    "fan_in_fan_out",
    "modules_to_save",
    "alpha_pattern",
    "rank_pattern",
    "layer_replication",
    "trainable_token_indices",
    "target_parameters",
    "lora_bias",
    "use_qalora",
    "use_bdlora",
    "alora_invocation_tokens",
    "arrow_config",
    "velora_config",
    "kasa_config",
    "monteclora_config",
)


def _plain_lora(adapter: Path) -> tuple[dict[str, dict[str, Any]], float] | None:
    """``({module: {"A": a, "B": b}}, alpha / r)`` of a plain LoRA, or None (leave it to peft)."""
    from safetensors.torch import load_file

    cfg = json.loads((adapter / "adapter_config.json").read_text())
    weights = adapter / "adapter_model.safetensors"
    if cfg.get("peft_type") != "LORA" or cfg.get("bias", "none") != "none":
        return None
    if any(cfg.get(k) for k in _LORA_VARIANTS) or not weights.is_file():
        return None
    state = load_file(str(weights))
    prefix, pairs = "base_model.model.", {}
    for key in state:
        for part in (".lora_A.weight", ".lora_B.weight"):
            if key.startswith(prefix) and key.endswith(part):
                pairs.setdefault(key[len(prefix) : -len(part)], {})[part[6]] = state[key]
                break
        else:
            return None
    if any(set(ab) != {"A", "B"} for ab in pairs.values()):
        return None
    return pairs, float(cfg["lora_alpha"]) / int(cfg["r"])


def merge_plain_lora(model: Any, adapter: Path, plan: Any = None) -> bool:
    """Merge a plain LoRA into ``model`` in place as peft does; False (nothing done) if not plain.

    Why: peft's ``merge_and_unload`` took ~4-6 s for SmolLM2's 210 LoRA modules on 2 cores,
    about as long as scoring a task, while the same arithmetic (``W += (B @ A) * alpha / r``,
    peft's formula and order; bit-identical weights, test ``test_plain_lora_merge_equals_peft``)
    takes well under a second. Anything else (DoRA, rsLoRA, saved modules, added tokens, a key
    this does not recognise) is left to peft. ``plan``: :func:`_plain_lora` of ``adapter``
    when the caller has already read it.
    """
    torch = _torch()
    plan = plan if plan is not None else _plain_lora(adapter)
    if plan is None:
        return False
    pairs, scaling = plan
    modules = dict(model.named_modules())
    for name, ab in pairs.items():
        layer = modules.get(name)
        if not isinstance(layer, torch.nn.Linear):
            return False
        if (ab["B"].shape[0], ab["A"].shape[1]) != tuple(layer.weight.shape):
            return False
    # One scratch buffer for every delta: fresh memory per module (424 MB in all here) was
    # most of the merge's time on these machines (first-touch page faults).
    size = max(modules[name].weight.numel() for name in pairs)
    scratch: dict[tuple[Any, Any], Any] = {}
    with torch.no_grad():
        for name, ab in pairs.items():
            weight = modules[name].weight
            key = (weight.device, weight.dtype)
            if key not in scratch:
                scratch[key] = torch.empty(size, device=weight.device, dtype=weight.dtype)
            delta = scratch[key][: weight.numel()].view(weight.shape)
            b, a = (ab[x].to(device=weight.device, dtype=weight.dtype) for x in "BA")
            torch.matmul(b, a, out=delta)
            weight.data += delta.mul_(scaling)
    return True


class _Base:
    """A base model kept in memory for the next adapter: tokenizer, model, pristine weights.

    Why: a study evaluates many adapters of one base (arms x ratios x replicates). Loading the
    base again for each one rereads and re-faults 540 MB (1-2 s here); restoring the weights
    from a kept copy into the same memory and merging the next adapter takes a fraction of it.
    One model is lent at a time; a second concurrent request loads its own.
    """

    def __init__(self, tokenizer: Any, model: Any) -> None:
        self.tokenizer, self.model = tokenizer, model
        self.pristine = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.lent_to: object | None = None  # the borrowing backend's token

    def release(self, token: object) -> None:
        if self.lent_to is token:
            self.lent_to = None

    def restore(self) -> Any:
        torch = _torch()
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                p.data.copy_(self.pristine[n])
        return self.model


#: Kept bases by checkpoint folder (float32, CPU); :func:`forget_bases` empties it.
_BASES: dict[str, _Base] = {}
_BASES_LOCK = threading.Lock()


def forget_bases() -> None:
    """Drop every kept base model (their memory is freed once no backend uses them)."""
    _BASES.clear()


def _merge_adapter(model: Any, tokenizer: Any, adapter: Path) -> Any:
    """Apply a peft LoRA adapter (growing the vocabulary if it added tokens) and merge it."""
    from peft import PeftModel

    grows = len(tokenizer) > model.get_input_embeddings().num_embeddings
    if not grows and merge_plain_lora(model, adapter):
        return model
    if grows:
        # New rows are overwritten by the adapter's trained values, so their init is irrelevant.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    return peft_model.merge_and_unload()


def _row_seed(seed: int, index: int) -> int:
    """64-bit seed for request ``index``: independent streams per (seed, index)."""
    return stream_seed(seed, index, bits=63)


class HFBackend:
    """Transformers causal LM behind the backend protocol (``generate`` and ``logprobs``).

    Args:
        model_path: a local HF checkpoint folder or a ``.gguf`` file; ``None`` loads the
            embedded SmolLM2 GGUF (:func:`~synthbias.generate.models.default_model_path`).
        device: torch device (``"cpu"``, ``"cuda"``...).
        dtype: torch dtype name for the weights (``"float32"``, ``"bfloat16"``...).
        batch_size: rows per forward pass when scoring and when feeding prompts.
        gen_batch_size: prompts decoded together (each holds a KV slot of its prompt plus
            ``max_tokens``).
        prefix_cache: keep the keys and values of the last ``score_tails`` call, so that a
            generation call whose prompts it fed gathers them instead of feeding them again
            (:mod:`synthbias.generate.prefix_memo`; ~46 KB per token fed, freed by the next
            scoring call or ``close``).
        cache_dir: where GGUF conversions live (default :func:`default_cache_dir`).
        prefix_token_id: token prepended to scored texts and raw prompts; default BOS, else EOS
            (see the module docstring).
        n_threads: torch intra-op threads; ``None`` leaves torch's default.
        share_text_prefix: let ``logprobs`` run the common beginning of texts once (a
            CrowS-Pairs pair's shared words; see :meth:`logprobs`).
        adapter_path: a peft LoRA adapter folder to merge into the base (see the module
            docstring); checked against the base recorded in its ``train_meta.json``.
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 16,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        gen_batch_size: int = 64,
        prefix_cache: bool = True,
        prefix_token_id: int | None = None,
        n_threads: int | None = None,
        adapter_path: str | os.PathLike[str] | None = None,
        share_text_prefix: bool = False,
    ) -> None:
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if gen_batch_size < 1:
            raise ValueError(f"gen_batch_size must be >= 1, got {gen_batch_size}")
        source = Path(model_path).expanduser() if model_path is not None else default_model_path()
        if source.is_file() and source.suffix == ".gguf":
            self.model_id = model_fingerprint(source)
            folder = converted_checkpoint(source, cache_dir)
        elif source.is_dir():
            self.model_id = dir_fingerprint(source)
            folder = source
        elif source.exists():
            raise ValueError(f"{source} is neither a .gguf file nor an HF checkpoint folder")
        else:
            raise FileNotFoundError(f"model not found: {source}")
        self.model_path = source
        self.checkpoint_dir = folder
        if n_threads:
            torch.set_num_threads(n_threads)
        try:
            torch_dtype = getattr(torch, dtype)
        except AttributeError as err:
            raise ValueError(f"unknown torch dtype {dtype!r}") from err
        self.device = torch.device(device)
        self.dtype = dtype
        self.batch_size = batch_size
        self.gen_batch_size = gen_batch_size
        self.prefix_cache = prefix_cache
        self._memo: PrefixMemo | None = None
        self.share_text_prefix = share_text_prefix
        adapter = Path(adapter_path).expanduser() if adapter_path is not None else None
        if adapter is not None:
            _check_adapter(adapter, self.model_id, folder)
        tok_dir = adapter if adapter is not None and _has_tokenizer(adapter) else folder
        self.adapter_path = adapter
        self._base: _Base | None = None
        plan = None
        if adapter is not None and tok_dir == folder and dtype == "float32":
            plan = _plain_lora(adapter) if self.device.type == "cpu" else None
            self._base = self._borrow_base(folder) if plan is not None else None
        if self._base is not None:
            self.tokenizer = self._base.tokenizer
            self.model = self._base.restore()
            if not merge_plain_lora(self.model, adapter, plan):  # pragma: no cover - checked
                raise RuntimeError(f"{adapter}: plain LoRA merge failed")
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
            # An adapter is merged in float32 and the sum rounded once to ``dtype`` (merging
            # in bf16 would round the base, the update and their sum).
            load_dtype = torch.float32 if adapter is not None else torch_dtype
            self.model = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=load_dtype, local_files_only=True
            )
            if adapter is not None:
                self.model = _merge_adapter(self.model, self.tokenizer, adapter)
        if adapter is not None:
            self.model_id = f"{self.model_id}+lora:{adapter_fingerprint(adapter)}"
        if dtype != "float32":
            self.model_id = f"{self.model_id}@{dtype}"  # reduced precision never shares a cache
        self.model = self.model.to(device=self.device, dtype=torch_dtype)
        self.model.eval()

        tok = self.tokenizer
        if prefix_token_id is not None:
            self.prefix_id: int = int(prefix_token_id)
        elif tok.bos_token_id is not None:
            self.prefix_id = int(tok.bos_token_id)
        elif tok.eos_token_id is not None:
            self.prefix_id = int(tok.eos_token_id)
        else:
            raise ValueError("tokenizer has neither BOS nor EOS; pass prefix_token_id")
        self.add_bos: bool = bool(getattr(tok, "add_bos_token", False))
        eos: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        for e in (tok.eos_token_id, gen_eos):
            if isinstance(e, int):
                eos.add(e)
            elif isinstance(e, (list, tuple)):
                eos.update(int(x) for x in e)
        self.eos_ids: frozenset[int] = frozenset(eos)
        pad = tok.pad_token_id
        self.pad_id: int = int(pad if pad is not None else (tok.eos_token_id or 0))
        self.n_ctx: int = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)

    def __repr__(self) -> str:
        return (
            f"HFBackend(model_id={self.model_id!r}, device={str(self.device)!r}, "
            f"dtype={self.dtype!r}, batch_size={self.batch_size})"
        )

    def close(self) -> None:
        """Drop the model so its memory can be freed (present so backends are interchangeable).

        A kept base (:class:`_Base`) goes back to the cache for the next adapter.
        """
        self.model = None  # type: ignore[assignment]
        self._memo = None
        base, self._base = getattr(self, "_base", None), None
        if base is not None:
            base.release(self._token)

    def _borrow_base(self, folder: Path) -> _Base | None:
        """The kept base of ``folder`` (loaded and kept on first use), or None while it is lent.

        It goes back on :meth:`close`, or when this backend is garbage-collected unclosed.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch = _torch()
        with _BASES_LOCK:  # threads of one process may load models side by side
            base = _BASES.get(str(folder))
            if base is not None and base.lent_to is not None:
                return None
            if base is None:
                tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    str(folder), dtype=torch.float32, local_files_only=True
                )
                base = _BASES[str(folder)] = _Base(tok, model.eval())
            self._token = token = object()
            base.lent_to = token
        weakref.finalize(self, base.release, token)
        return base

    def __enter__(self) -> HFBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens -----------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` alone: no special tokens added, special-token text not parsed."""
        enc = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        return list(enc["input_ids"])

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=False)

    def render_chat(self, messages: Sequence[Message]) -> str:
        """Render messages with the tokenizer's own chat template, ready for the assistant."""
        if not self.tokenizer.chat_template:
            raise ValueError(f"{self.model_path.name} has no chat template; pass raw prompts")
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise TypeError(f"chat messages need 'role' and 'content', got {m!r}")
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Prompt token ids, as LlamaCppBackend does it.

        Raw strings are plain completion: the text with BOS only where the tokenizer adds one
        itself (SmolLM2's adds none; lm-evaluation-harness's ``generate_until`` encodes the
        same way), special-token text parsed so a pre-rendered chat prompt works; an empty
        prompt is conditioned on the prefix token. Message lists: the rendered chat template,
        with BOS only where the tokenizer adds it itself. (Until 2026-12-06 raw prompts got
        the prefix token prepended here but not on llama.cpp, so greedy completions differed
        between the runtimes: 12.5 % of pronoun completions identical, now 100 %.)
        """
        if isinstance(prompt, str):
            ids = (
                list(self.tokenizer(prompt, add_special_tokens=True)["input_ids"]) if prompt else []
            )
            if not ids:
                ids = [self.prefix_id]
        else:
            ids = list(
                self.tokenizer(self.render_chat(prompt), add_special_tokens=True)["input_ids"]
            )
            bos = self.tokenizer.bos_token_id
            if len(ids) >= 2 and ids[0] == ids[1] == bos:  # template wrote BOS too
                ids = ids[1:]
        if not ids:
            raise ValueError("empty prompt")
        return ids

    # -- scoring ----------------------------------------------------------------------------------

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """log p(token_j | prefix token, tokens_<j) for each text (lm-eval-harness recipe).

        With ``share_text_prefix``, texts that begin alike (sorted, grouped by common prefix
        of at least :data:`MIN_SHARED` tokens: the two sentences of a CrowS-Pairs pair) run
        their shared beginning once; its KV cache is repeated for the members, which run only
        their own rest (:meth:`shared_logprobs_ids`). Otherwise :meth:`logprobs_ids`.
        """
        if isinstance(texts, str):
            raise TypeError("logprobs() takes a sequence of texts, not a single string")
        seqs = [[self.prefix_id, *self.tokenize(t)] for t in texts]
        if self.share_text_prefix:
            scores = self.shared_logprobs_ids(seqs)
        else:
            scores = self.logprobs_ids(seqs)
        return [
            TextLogprobs(
                tokens=[self.tokenizer.decode([t]) for t in seq[1:]],
                token_ids=list(seq[1:]),
                logprobs=sc,
            )
            for seq, sc in zip(seqs, scores, strict=True)
        ]

    def logprobs_ids(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """Per-token log-probs of token-id sequences; the first token is conditioned on only.

        Sequences are sorted by length and right-padded in batches of ``batch_size``. No
        attention mask is passed, as in lm-evaluation-harness: causal attention already keeps
        padding after a sequence from affecting it, and the unmasked causal kernel is the
        harness's (and faster). Log-probs are ``log_softmax`` over the full vocabulary in
        float32, the harness's arithmetic: logit − logsumexp is closer to a float64 result but
        differs from the harness by up to 3e-4 nats on a 40-token sentence.
        """
        torch = _torch()
        out: list[list[float]] = [[] for _ in sequences]
        for i, s in enumerate(sequences):
            if len(s) < 1:
                raise ValueError(f"sequence {i} is empty")
            if len(s) > self.n_ctx:
                raise ContextLengthError(f"sequence {i} has {len(s)} tokens > context {self.n_ctx}")
        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = [i for i in order[start : start + self.batch_size] if len(sequences[i]) > 1]
                if not idx:
                    continue
                # A sequence's last token is never fed (nothing is scored after it): the
                # harness feeds (context + continuation)[:-1], so batches of the same texts
                # have the same shapes as its own and give the same float32 numbers.
                width = max(len(sequences[i]) for i in idx) - 1
                ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
                target = torch.zeros((len(idx), width), dtype=torch.long)
                for r, i in enumerate(idx):
                    s = list(sequences[i])
                    ids[r, : len(s) - 1] = torch.tensor(s[:-1], dtype=torch.long)
                    target[r, : len(s) - 1] = torch.tensor(s[1:], dtype=torch.long)
                logits = self.model(input_ids=ids.to(self.device)).logits.float()
                target = target.to(self.device)
                lp = torch.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1))
                lp = lp.squeeze(-1).double().cpu().numpy()
                for r, i in enumerate(idx):
                    out[i] = [float(x) for x in lp[r, : len(sequences[i]) - 1]]
        return out

    def shared_logprobs_ids(self, sequences: Sequence[Sequence[int]]) -> list[list[float]]:
        """:meth:`logprobs_ids` with common beginnings run once (:func:`text_prefix_groups`).

        A group's shared head runs once with its logits kept (they score the head's tokens and
        each member's first own token); the members' rests run as one batch on the repeated
        KV cache. Equal to :meth:`logprobs_ids` up to float32 rounding (≤ 1e-4 nats measured).
        """
        out: list[list[float]] = [[] for _ in sequences]
        for i, s in enumerate(sequences):
            if len(s) > self.n_ctx:
                raise ContextLengthError(f"sequence {i} has {len(s)} tokens > context {self.n_ctx}")
        groups = text_prefix_groups(sequences)
        alone = [m[0] for h, m in groups if not h]
        for i, lp in zip(alone, self.logprobs_ids([sequences[i] for i in alone]), strict=True):
            out[i] = lp
        torch = _torch()
        batch: list[tuple[list[int], list[int]]] = []
        with torch.inference_mode():
            for h, members in groups:
                for k in range(0, len(members) if h else 0, self.batch_size):
                    part = members[k : k + self.batch_size]
                    if batch and sum(len(m) for _, m in batch) + len(part) > self.batch_size:
                        self._score_groups(batch, sequences, out, with_head=True)
                        batch = []
                    batch.append((list(sequences[part[0]][:h]), part))
            if batch:
                self._score_groups(batch, sequences, out, with_head=True)
        return out

    def score_tails(
        self, sequences: Sequence[Sequence[int]], starts: Sequence[int]
    ) -> list[list[float]]:
        """log p(seq[j] | seq[:j]) for ``j = starts[i] ..`` of each sequence, every prefix fed once.

        The sequences form a radix tree (:func:`~synthbias.generate.prefix_tree.build_prefix_tree`):
        a BBQ context is fed once for its questions, each question once for its answers, a
        prompt once for its options. Whole subtrees run in packed rows under a tree attention
        mask (:meth:`_score_tree`), with logits only at the positions some sequence scores, so
        a one-token option costs nothing beyond its context's last row. An empty context (the
        prefix token alone) is scored whole. Equal to scoring whole sequences up to float32
        rounding (tests ``*score_tails*``; lm-evaluation-harness conformance within 1e-4 nats).
        """
        if len(sequences) != len(starts):
            raise ValueError(f"{len(sequences)} sequences but {len(starts)} starts")
        self._memo = None  # the previous call's keys and values are not kept past this one
        out: list[list[float]] = [[] for _ in sequences]
        tree: list[int] = []
        for i, (seq, st) in enumerate(zip(sequences, starts, strict=True)):
            if not 1 <= st <= len(seq):
                raise ValueError(f"sequence {i}: start {st} outside 1..{len(seq)}")
            if len(seq) > self.n_ctx:
                raise ContextLengthError(
                    f"sequence {i} has {len(seq)} tokens > context {self.n_ctx}"
                )
            if st < len(seq):
                out[i] = [0.0] * (len(seq) - st)
                tree.append(i)
        # A context of the prefix token alone (an empty context) runs whole: a one-token
        # forward pass over the attention-sink token moved later scores by up to 5e-4 nats.
        alone = [i for i in tree if starts[i] < 2]
        for i, lp in zip(alone, self.logprobs_ids([sequences[i] for i in alone]), strict=True):
            out[i] = lp[starts[i] - 1 :]
        rest = [i for i in tree if starts[i] >= 2]
        roots = build_prefix_tree([sequences[i] for i in rest], [starts[i] for i in rest])
        torch = _torch()
        with torch.inference_mode():
            self._score_tree(roots, out, rest)
        return out

    def _score_tree(
        self, roots: list[PrefixNode], out: list[list[float]], index: list[int]
    ) -> None:
        """Score a prefix tree in packed rows: one forward pass per row batch.

        A row holds whole subtrees flattened depth first (:func:`pack_rows`); a 4D attention
        mask lets each token see its own path only (ancestors' segments and its own segment
        up to itself) and its position is its depth, so every shared prefix is fed once and
        no KV rows are copied. Padding attends to itself only. ``index`` maps the tree's
        sequence numbers to ``out``. With ``prefix_cache`` the passes' keys and values are
        kept (:class:`~synthbias.generate.prefix_memo.PrefixMemo`) until the next scoring call,
        for a generation call whose prompts this tree already fed.
        """
        torch = _torch()
        dev = self.device
        rows = self._pack(roots)
        memo = PrefixMemo() if self.prefix_cache else None
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            ids, pos, see, keep = row_tensors(batch, self.pad_id)
            kv = make_capture_cache() if memo is not None else None
            extra = {cache_keyword(self.model): kv} if kv is not None else {}
            logits = self.model(
                input_ids=ids.to(dev),
                attention_mask=see.to(dev),
                position_ids=pos.to(dev),
                use_cache=kv is not None,
                logits_to_keep=keep.to(dev),
                **extra,
            ).logits
            if memo is not None:
                memo.add_pass(batch, kv.keys, kv.values)
            lp = torch.log_softmax(logits.float().reshape(-1, logits.shape[-1]), dim=-1)
            row_of = {(r, c): j for j, (r, c) in enumerate(keep.nonzero().tolist())}
            for r, row in enumerate(batch):
                for col, w in row.wants:
                    out[index[w.seq]][w.index] = float(lp[row_of[(r, col)], w.target])
        self._memo = memo

    def _pack(self, roots: list[PrefixNode]) -> list[PackedRow]:
        """Rows for :meth:`_score_tree` at the row width of least estimated work.

        Work per batch: rows x width tokens through the linear layers, plus attention that
        grows with the width (its share per token ~ width x 4 x hidden x layers over the
        linear FLOPs); wider rows pack subtrees tighter but attend over more columns.
        """
        cfg = self.model.config
        hidden = getattr(cfg, "hidden_size", 576)
        layers = getattr(cfg, "num_hidden_layers", 30)
        linear = 2 * sum(p.numel() for p in self.model.parameters()) / max(layers, 1)
        best: tuple[float, list[PackedRow]] | None = None
        for width in ROW_WIDTHS:
            rows = sorted(pack_rows(roots, width), key=lambda r: len(r.tokens))
            cost = 0.0
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                w = max(len(r.tokens) for r in batch)
                cost += len(batch) * w * (1 + 4 * w * hidden / linear)
            if best is None or cost < best[0]:
                best = (cost, rows)
        return best[1] if best else []

    def _score_groups(
        self,
        groups: list[tuple[list[int], list[int]]],
        sequences: Sequence[Sequence[int]],
        out: list[list[float]],
        with_head: bool = False,
    ) -> None:
        """Heads as one right-padded batch (cache kept), then every member's tail in one batch.

        Row ``r`` of the tail batch continues head ``g(r)``: the cache rows are selected with
        repeats (``batch_select_indices``), head padding is masked out and position ids restart
        after each head's real length, so each tail sees exactly its own head. With
        ``with_head`` each member's scores start at its second token (whole-text scoring): the
        head's logits score the head's tokens and the member's first token after it.
        """
        torch = _torch()
        dev = self.device
        wh = max(len(h) for h, _ in groups)
        hids = torch.full((len(groups), wh), self.pad_id, dtype=torch.long)
        hmask = torch.zeros((len(groups), wh), dtype=torch.long)
        for g, (h, _) in enumerate(groups):
            hids[g, : len(h)] = torch.tensor(h, dtype=torch.long)
            hmask[g, : len(h)] = 1
        from transformers import DynamicCache

        cache = DynamicCache()
        res = self.model(
            input_ids=hids.to(dev),
            attention_mask=hmask.to(dev),
            use_cache=True,
            **{cache_keyword(self.model): cache},
        )
        rows = [(g, i) for g, (_, members) in enumerate(groups) for i in members]
        head_lps: dict[int, list[float]] = {}
        if with_head:
            hlp = torch.log_softmax(res.logits.float(), dim=-1)
            for g, i in rows:
                n_head = len(groups[g][0])
                tgt = torch.tensor(list(sequences[i][1 : n_head + 1]), device=dev)
                row = hlp[g, torch.arange(n_head, device=dev), tgt]
                head_lps[i] = [float(x) for x in row.double().cpu().numpy()]
            del hlp
        del res
        tails = [list(sequences[i][len(groups[g][0]) :]) for g, i in rows]
        heads = [g for g, _ in rows]
        lens = [len(groups[g][0]) for g in heads]
        for (_, i), lp in zip(
            rows, self._tail_logprobs(cache, hmask, heads, lens, tails), strict=True
        ):
            out[i] = [*head_lps.get(i, []), *lp]

    def _tail_logprobs(
        self,
        cache: Any,
        head_mask: Any,
        heads: list[int],
        head_lens: list[int],
        tails: list[list[int]],
    ) -> list[list[float]]:
        """log p(tail[j] | head, tail[:j]) for ``j >= 1`` of each tail, on the heads' KV cache.

        Row ``r`` continues head ``heads[r]``: the cache rows are selected with repeats
        (``batch_select_indices``), the head's padding stays masked (``head_mask``, left or
        right padded) and positions continue after its real length ``head_lens[r]``.
        """
        torch = _torch()
        dev = self.device
        cache.batch_select_indices(torch.tensor(heads, device=dev))
        wh, wt = head_mask.shape[1], max(len(t) for t in tails) - 1
        ids = torch.full((len(tails), wt), self.pad_id, dtype=torch.long)
        target = torch.zeros((len(tails), wt), dtype=torch.long)
        mask = torch.cat([head_mask[heads], torch.zeros((len(tails), wt), dtype=torch.long)], 1)
        pos = torch.zeros((len(tails), wt), dtype=torch.long)
        for r, (n_head, t) in enumerate(zip(head_lens, tails, strict=True)):
            n = len(t) - 1
            ids[r, :n] = torch.tensor(t[:-1], dtype=torch.long)
            target[r, :n] = torch.tensor(t[1:], dtype=torch.long)
            mask[r, wh : wh + n] = 1
            pos[r] = torch.arange(n_head, n_head + wt)
        logits = self.model(
            input_ids=ids.to(dev),
            attention_mask=mask.to(dev),
            position_ids=pos.to(dev),
            **{cache_keyword(self.model): cache},
        ).logits.float()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, target.to(dev).unsqueeze(-1))
        lp = lp.squeeze(-1).double().cpu().numpy()
        return [[float(x) for x in lp[r, : len(t) - 1]] for r, t in enumerate(tails)]

    # -- generation -------------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """Sample one completion per prompt, ``gen_batch_size`` prompts decoded together.

        The prompts' shared prefixes are fed once (:mod:`synthbias.generate.tree_decode`:
        prefix-tree prefill, then each prompt decodes in its own KV slot; finished ones leave
        the batch). Request ``i`` draws from its own ``torch.Generator`` seeded from
        ``(params.seed, i)``, so its text does not depend on the other prompts in its batch (up
        to float32 rounding). Sampling order as in transformers: temperature, top-k, top-p.
        """
        encoded = encode_for_generation(self.encode_prompt, prompts, params.max_tokens, self.n_ctx)
        results: list[Completion] = []
        for start in range(0, len(encoded), self.gen_batch_size):
            rows = list(range(start, min(start + self.gen_batch_size, len(encoded))))
            results.extend(self._generate_batch([encoded[i] for i in rows], rows, params))
        return results

    def _generate_batch(
        self, prompts: list[list[int]], rows: list[int], params: SamplingParams
    ) -> list[Completion]:
        torch = _torch()
        gens = [torch.Generator().manual_seed(_row_seed(params.seed, i)) for i in rows]

        def choose(logits: Any, live: list[int]) -> list[int]:
            if params.temperature <= 0:
                return [int(t) for t in torch.argmax(logits, dim=-1).tolist()]
            cpu = logits.cpu()
            return [_sample_row(cpu[j], params, gens[i]) for j, i in enumerate(live)]

        def accept(row: Any, tok: int) -> None:
            if tok in self.eos_ids:
                row.finish = "stop"
                return
            row.out.append(tok)
            if params.stop:
                text = self.tokenizer.decode(row.out, skip_special_tokens=False)
                hits = [h for h in (text.find(s) for s in params.stop if s) if h >= 0]
                if hits:
                    row.cut, row.finish = min(hits), "stop"
                    return
            if len(row.out) >= params.max_tokens:
                row.finish = "length"

        capacity = max(len(p) for p in prompts) + params.max_tokens
        with torch.inference_mode():
            pre = None
            if self._memo is not None:
                pre = prefill_from_memo(self.model, self._memo, prompts, capacity, self.device)
            if pre is None:
                pre = prefill_tree(
                    self.model,
                    prompts,
                    capacity,
                    self._pack,
                    self.batch_size,
                    self.pad_id,
                    self.device,
                )
            done = decode(
                self.model,
                pre,
                [len(p) for p in prompts],
                params.max_tokens,
                choose,
                accept,
                self.device,
            )
        completions = []
        for prompt, row in zip(prompts, done, strict=True):
            text = self.tokenizer.decode(row.out, skip_special_tokens=True)
            if row.cut is not None:
                text = self.tokenizer.decode(row.out, skip_special_tokens=False)[: row.cut]
            completions.append(
                Completion(
                    text=text,
                    n_prompt_tokens=len(prompt),
                    n_tokens=len(row.out),
                    finish_reason="stop" if row.finish == "stop" else "length",
                    seed=params.seed,
                )
            )
        return completions


#: Fewest shared tokens worth running a text prefix once (as on llama.cpp).
MIN_SHARED = 4

#: Row widths tried when packing a prefix tree (:meth:`HFBackend._pack`); a subtree wider
#: than the row is split below its root, a single longer sequence gets a row of its own.
ROW_WIDTHS = (128, 192, 256, 384, 512)


def text_prefix_groups(
    seqs: Sequence[Sequence[int]], min_shared: int = MIN_SHARED
) -> list[tuple[int, list[int]]]:
    """``(shared head length, members)`` for whole-text scoring; head 0 means scored alone.

    Sequences are visited in lexicographic order; one joins the current group while the
    common prefix stays at least ``min_shared`` tokens and at least half of what the group
    shared. The head leaves every member two tokens of its own (one to feed, one to score).
    """
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    raw: list[tuple[int, list[int]]] = []
    for i in order:
        if raw:
            lcp, members = raw[-1]
            a, b = seqs[members[0]], seqs[i]
            k = 0
            while k < min(len(a), len(b), lcp) and a[k] == b[k]:
                k += 1
            if k >= min_shared and (len(members) == 1 or 2 * k >= lcp):
                raw[-1] = (k, [*members, i])
                continue
        raw.append((len(seqs[i]), [i]))
    out: list[tuple[int, list[int]]] = []
    for lcp, members in raw:
        head = min(lcp, *(len(seqs[j]) - 2 for j in members))
        if len(members) < 2 or head < min_shared:
            out.extend((0, [j]) for j in members)
        else:
            out.append((head, members))
    return out


def _sample_row(logits: Any, params: SamplingParams, gen: Any) -> int:
    """One token from a logits row: greedy at temperature 0, else temperature/top-k/top-p."""
    torch = _torch()
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    z = logits.double() / params.temperature
    if 0 < params.top_k < z.numel():
        kth = torch.topk(z, params.top_k).values[-1]
        z = z.masked_fill(z < kth, float("-inf"))
    probs = torch.softmax(z, dim=-1)
    if params.top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        cum = torch.cumsum(sp, 0)
        keep = int(torch.searchsorted(cum, torch.tensor(params.top_p, dtype=cum.dtype))) + 1
        keep = max(1, min(keep, sp.numel()))
        probs = torch.zeros_like(probs).scatter(0, si[:keep], sp[:keep])
    return int(torch.multinomial(probs, 1, generator=gen))
