"""LoRA supervised fine-tuning of a causal LM on prompt/completion pairs.

Why our own loop instead of ``transformers.Trainer`` or TRL: bias-inheritance experiments need
control over exactly which tokens carry loss (the mask-based mitigation removes character spans of
a completion from the loss), per-example weights (loss-based mitigation), a hook for extra loss
terms (consistency losses between counterfactual twins) and bit-for-bit reproducibility from a
seed, on a 2-core CPU. A ~200-line loop gives all of that with nothing hidden.

Sequences are built the way the backends read them, so what is trained is what is later
generated or scored:

* ``text_format="raw"``: the HFBackend's prefix token (BOS, else EOS), the prompt's tokens, then
  the completion's tokens and (``append_eos``) EOS. Prompt and completion are tokenised
  separately, as at inference time where the prompt is encoded alone and the completion is
  generated token by token.
* ``text_format="chat"``: the tokenizer's own chat template with ``user=prompt``,
  ``assistant=completion``; the loss covers the assistant content and its end-of-turn token.

Loss: per-token cross-entropy on completion tokens only (prompt tokens and ``ignore_spans`` get
label -100), averaged per example, then a weighted mean over examples (``weight``). The base model
is a GGUF (converted once to a safetensors checkpoint, see
:func:`synthbias.generate.hf.converted_checkpoint`) or a local HF checkpoint folder; nothing is
ever downloaded. The adapter folder is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from synthbias.core.hashing import dir_fingerprint
from synthbias.generate.hf import converted_checkpoint
from synthbias.generate.models import default_model_path, model_fingerprint

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: Label of tokens that carry no loss (PyTorch's cross-entropy ``ignore_index``).
IGNORE_INDEX = -100
#: Written into every adapter folder next to the peft files.
META_FILE = "train_meta.json"
_META_VERSION = 1


@dataclass
class SFTExample:
    """One training pair.

    ``prompt`` is conditioned on but not trained; ``completion`` is trained except the character
    spans ``ignore_spans`` (half-open ``(start, end)`` offsets into ``completion``), which the
    mask-based mitigation uses to keep e.g. gendered words out of the loss. ``weight`` scales the
    example's loss (loss-based mitigation). ``meta`` is provenance, passed through to hooks.
    """

    prompt: str
    completion: str
    weight: float = 1.0
    ignore_spans: list[tuple[int, int]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


class LoRAConfig(BaseModel):
    """LoRA fine-tuning settings (unknown keys are an error).

    ``weight_normalization``: ``"batch"`` divides the weighted loss sum of a batch by the batch's
    weight sum (a weighted mean, the usual definition); ``"dataset"`` divides by the batch size
    times the dataset's mean weight, so down-weighted examples also keep less influence when a
    batch happens to hold only them (importance weighting across batches).
    """

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(128, ge=2)
    seed: int = 0
    n_threads: int | None = Field(None, ge=1)
    warmup_steps: int = Field(0, ge=0)
    lr_schedule: Literal["constant", "linear"] = "constant"
    extra_special_tokens: list[str] = Field(default_factory=list)
    text_format: Literal["raw", "chat"] = "raw"
    append_eos: bool = True
    weight_normalization: Literal["batch", "dataset"] = "batch"


@dataclass
class LoRAResult:
    """What :func:`train_lora` produced and how long it took."""

    adapter_dir: Path
    base_checkpoint: Path
    losses: list[float]
    steps: int
    seconds: float
    examples_per_s: float = 0.0
    n_examples: int = 0
    n_truncated_prompts: int = 0
    n_truncated_completions: int = 0
    added_tokens: dict[str, int] = field(default_factory=dict)
    extra_losses: list[float] = field(default_factory=list)
    #: labelled (loss-carrying) tokens trained on, summed over steps: with ``steps`` and the
    #: batch size this is the arm's training budget (equal-budget comparisons report it)
    n_tokens: int = 0


@dataclass
class EncodedExample:
    """Token ids and labels of one example (``labels[j] == -100``: no loss at position j)."""

    input_ids: list[int]
    labels: list[int]
    n_prompt_tokens: int
    prompt_truncated: bool = False
    completion_truncated: bool = False


# ---------------------------------------------------------------------------------------------
# Base model
# ---------------------------------------------------------------------------------------------


def resolve_base(
    base_model: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[Path, Path, str]:
    """``(source, checkpoint folder, fingerprint)`` of a base model.

    ``None`` is the embedded SmolLM2 GGUF; a ``.gguf`` is converted once to a safetensors
    checkpoint (cached); a folder is used as is. The fingerprint is the same ``model_id`` the
    HFBackend gives the base, so adapters can be checked against the model they are loaded on.
    """

    source = Path(base_model).expanduser() if base_model is not None else default_model_path()
    if source.is_file() and source.suffix == ".gguf":
        return source, converted_checkpoint(source, cache_dir), model_fingerprint(source)
    if source.is_dir():
        if not (source / "config.json").is_file():
            raise ValueError(f"{source} is not an HF checkpoint folder (no config.json)")
        return source, source, dir_fingerprint(source)
    if source.exists():
        raise ValueError(f"{source} is neither a .gguf file nor an HF checkpoint folder")
    raise FileNotFoundError(f"base model not found: {source} (nothing is downloaded)")


def prefix_token_id(tokenizer: Any) -> int:
    """The HFBackend's raw-prompt prefix token: BOS, else EOS."""
    for t in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if t is not None:
            return int(t)
    raise ValueError("tokenizer has neither BOS nor EOS")


# ---------------------------------------------------------------------------------------------
# Examples -> tokens
# ---------------------------------------------------------------------------------------------


def validate_examples(examples: Sequence[SFTExample]) -> None:
    """Raise ``ValueError`` naming the first bad example."""
    if len(examples) == 0:
        raise ValueError("no training examples")
    for i, ex in enumerate(examples):
        if not isinstance(ex, SFTExample):
            raise TypeError(f"example {i} is a {type(ex).__name__}, not an SFTExample")
        if not ex.completion:
            raise ValueError(f"example {i} has an empty completion: nothing to train on")
        if not math.isfinite(ex.weight) or ex.weight < 0:
            raise ValueError(f"example {i} has weight {ex.weight}; weights must be finite and >= 0")
        for span in ex.ignore_spans:
            a, b = span
            if not (0 <= a <= b <= len(ex.completion)):
                raise ValueError(
                    f"example {i}: ignore span {span} is outside its completion "
                    f"(length {len(ex.completion)})"
                )


def _ignored(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Whether each token's character range overlaps one of ``spans`` (half-open)."""
    out = []
    for s, e in offsets:
        e = max(e, s + 1)  # zero-width tokens (EOS appended by us) count as one char wide
        out.append(any(s < b and a < e for a, b in spans if b > a))
    return out


def encode_example(tokenizer: Any, example: SFTExample, cfg: LoRAConfig) -> EncodedExample:
    """Token ids and labels of one example (see the module docstring for the layout).

    A sequence longer than ``cfg.max_length`` loses prompt tokens from the left (the first,
    prefix/BOS token is kept); if the completion alone does not fit, it is cut at the end. Both
    are flagged on the result and counted by :func:`train_lora`.
    """
    if cfg.text_format == "raw":
        prefix = prefix_token_id(tokenizer)
        prompt_ids = list(tokenizer(example.prompt, add_special_tokens=False)["input_ids"])
        if not prompt_ids or prompt_ids[0] != prefix:
            prompt_ids = [prefix, *prompt_ids]
        enc = tokenizer(example.completion, add_special_tokens=False, return_offsets_mapping=True)
        comp_ids = list(enc["input_ids"])
        offsets = [tuple(o) for o in enc["offset_mapping"]]
        spans = list(example.ignore_spans)
        if cfg.append_eos:
            if tokenizer.eos_token_id is None:
                raise ValueError("append_eos needs a tokenizer with an EOS token")
            comp_ids.append(int(tokenizer.eos_token_id))
            offsets.append((len(example.completion), len(example.completion)))
    else:
        prompt_ids, comp_ids, offsets, spans = _encode_chat(tokenizer, example)
    ignore = _ignored(offsets, spans)
    labels = [IGNORE_INDEX if ig else t for t, ig in zip(comp_ids, ignore, strict=True)]

    prompt_cut = completion_cut = False
    budget = cfg.max_length
    if len(prompt_ids) + len(comp_ids) > budget:
        if len(comp_ids) > budget - 1:
            comp_ids, labels = comp_ids[: budget - 1], labels[: budget - 1]
            completion_cut = True
            prompt_cut = len(prompt_ids) > 1
            prompt_ids = prompt_ids[:1]
        else:
            keep = budget - len(comp_ids) - 1  # prompt tokens kept after the first one
            prompt_ids = (
                [prompt_ids[0], *prompt_ids[len(prompt_ids) - keep :]] if keep else [prompt_ids[0]]
            )
            prompt_cut = True
    return EncodedExample(
        input_ids=prompt_ids + comp_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + labels,
        n_prompt_tokens=len(prompt_ids),
        prompt_truncated=prompt_cut,
        completion_truncated=completion_cut,
    )


def _encode_chat(
    tokenizer: Any, example: SFTExample
) -> tuple[list[int], list[int], list[tuple[int, int]], list[tuple[int, int]]]:
    """Chat layout: rendered prompt ids; assistant content + end-of-turn ids with offsets."""
    if not tokenizer.chat_template:
        raise ValueError("text_format='chat' needs a tokenizer with a chat template")
    user = {"role": "user", "content": example.prompt}
    prompt_text = tokenizer.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [user, {"role": "assistant", "content": example.completion}], tokenize=False
    )
    if not full.startswith(prompt_text):
        raise ValueError("the chat template does not render the prompt as a prefix of the dialogue")
    suffix = full[len(prompt_text) :]
    start = suffix.find(example.completion)
    if start < 0:
        raise ValueError("the chat template changed the completion text (e.g. stripped it)")
    end = start + len(example.completion)
    eos = tokenizer.eos_token
    k = suffix.find(eos, end) if eos else -1
    suffix = suffix[: k + len(eos)] if k >= 0 else suffix  # nothing after the end of turn
    ids = list(tokenizer(prompt_text, add_special_tokens=True)["input_ids"])
    bos = tokenizer.bos_token_id
    if len(ids) >= 2 and ids[0] == ids[1] == bos:  # template wrote BOS and the tokenizer too
        ids = ids[1:]
    enc = tokenizer(suffix, add_special_tokens=False, return_offsets_mapping=True)
    spans = [(a + start, b + start) for a, b in example.ignore_spans]
    spans.append((0, start))  # template text before the content (none for most templates)
    return ids, list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]], spans


def collate(
    encoded: Sequence[EncodedExample], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, attention_mask, labels)`` tensors (dynamic padding)."""
    import torch

    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE_INDEX, dtype=torch.long)
    for r, e in enumerate(encoded):
        n = len(e.input_ids)
        ids[r, :n] = torch.tensor(e.input_ids)
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(e.labels)
    return ids, mask, labels


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------


def sft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    denominator: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, per-example mean CE)`` for next-token prediction.

    ``logits[:, j]`` predicts ``labels[:, j + 1]``. Each example's loss is the mean CE over its
    labelled tokens; the batch loss is ``sum(w_i * l_i) / denominator``, by default the weight
    sum of the examples that have labelled tokens (a weighted mean). Examples without labelled
    tokens contribute nothing.
    """
    import torch.nn.functional as F

    targets = labels[:, 1:]
    logits = logits[:, :-1].float()
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    ).view(targets.shape)
    counts = (targets != IGNORE_INDEX).sum(1)
    per_example = ce.sum(1) / counts.clamp(min=1)
    w = weights.to(per_example.dtype) * (counts > 0)
    if denominator is None:
        denominator = w.sum()
    if float(denominator) <= 0:
        return (per_example * 0).sum(), per_example.detach()
    return (w * per_example).sum() / denominator, per_example.detach()


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

ExtraLoss = Callable[[Any, dict[str, Any], Any], "torch.Tensor"]
Progress = Callable[[int, int, float], None]


def _check_out_dir(out: Path) -> None:
    """Refuse to replace a non-empty folder that is not an adapter (protects user data)."""
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out} exists and is not a folder")
        if any(out.iterdir()) and not (
            (out / META_FILE).is_file() or (out / "adapter_config.json").is_file()
        ):
            raise FileExistsError(f"{out} is a non-empty folder that is not an adapter; refusing")


def train_lora(
    examples: Sequence[SFTExample],
    cfg: LoRAConfig | dict[str, Any] | None = None,
    out_dir: str | os.PathLike[str] = "adapter",
    base_model: str | os.PathLike[str] | None = None,
    extra_loss: ExtraLoss | None = None,
    progress: Progress | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> LoRAResult:
    """Fine-tune a LoRA adapter on ``examples`` and save it to ``out_dir``.

    ``extra_loss(model, batch, outputs)`` is added to each step's loss; ``batch`` holds
    ``input_ids``, ``attention_mask``, ``labels`` and ``examples`` (that batch's
    :class:`SFTExample` list), ``outputs`` the model's forward output. ``progress(step, total,
    loss)`` is called after every step. An existing adapter in ``out_dir`` is replaced only once
    the new one is complete.
    """
    import torch

    cfg = cfg if isinstance(cfg, LoRAConfig) else LoRAConfig.model_validate(cfg or {})
    validate_examples(examples)
    out = Path(out_dir).expanduser()
    _check_out_dir(out)
    source, checkpoint, fingerprint = resolve_base(base_model, cache_dir)

    prev_threads = torch.get_num_threads()
    if cfg.n_threads:
        torch.set_num_threads(cfg.n_threads)
    try:
        return _train(examples, cfg, out, source, checkpoint, fingerprint, extra_loss, progress)
    finally:
        torch.set_num_threads(prev_threads)


def _train(
    examples: Sequence[SFTExample],
    cfg: LoRAConfig,
    out: Path,
    source: Path,
    checkpoint: Path,
    fingerprint: str,
    extra_loss: ExtraLoss | None,
    progress: Progress | None,
) -> LoRAResult:
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    added: dict[str, int] = {}
    if cfg.extra_special_tokens:
        before = len(tokenizer)
        # Added as ordinary (non-special) tokens: backends tokenize data with
        # split_special_tokens=True (so text can never inject a control token), and that must
        # not split the tags the model was trained with into pieces at inference.
        tokenizer.add_tokens(list(cfg.extra_special_tokens), special_tokens=False)
        for t in cfg.extra_special_tokens:
            tid = int(tokenizer.convert_tokens_to_ids(t))
            if tid >= before:
                added[t] = tid
    encoded = [encode_example(tokenizer, ex, cfg) for ex in examples]
    n_prompt_cut = sum(e.prompt_truncated for e in encoded)
    n_comp_cut = sum(e.completion_truncated for e in encoded)
    if n_prompt_cut or n_comp_cut:
        log.warning(
            "max_length=%d: truncated %d prompts (from the left) and %d completions",
            cfg.max_length,
            n_prompt_cut,
            n_comp_cut,
        )
    if all(all(x == IGNORE_INDEX for x in e.labels) for e in encoded):
        raise ValueError("no example has a completion token left to train on (all ignored)")
    pad_id = tokenizer.pad_token_id
    pad_id = int(pad_id if pad_id is not None else (tokenizer.eos_token_id or 0))

    torch.manual_seed(cfg.seed)
    model = _load_model(AutoModelForCausalLM, checkpoint)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    vocab_size = int(model.get_input_embeddings().num_embeddings)
    peft_kwargs: dict[str, Any] = {}
    if added:
        # Only the new rows train (peft TrainableTokens); with tied embeddings the LM head
        # follows them. The adapter then stores just those rows, not the whole matrix.
        peft_kwargs["trainable_token_indices"] = sorted(added.values())
    target = cfg.target_modules
    lcfg = PeftLoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=target if isinstance(target, str) else list(target),
        task_type="CAUSAL_LM",
        **peft_kwargs,
    )
    with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        model = get_peft_model(model, lcfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    n = len(examples)
    per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * per_epoch

    def lr_at(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return cfg.learning_rate * (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "linear":
            span = max(1, total - cfg.warmup_steps)
            return cfg.learning_rate * max(0.0, 1 - (step - cfg.warmup_steps) / span)
        return cfg.learning_rate

    has_labels = np.array([any(x != IGNORE_INDEX for x in e.labels) for e in encoded])
    weights_all = np.array([ex.weight for ex in examples], dtype=np.float64)
    mean_w = float(weights_all[has_labels].mean()) if has_labels.any() else 1.0

    rng = np.random.default_rng(cfg.seed)

    def batches() -> Any:
        # A fresh shuffle per epoch; the last batch of an epoch may be smaller.
        while True:
            perm = rng.permutation(n).tolist()
            for s in range(0, n, cfg.batch_size):
                yield perm[s : s + cfg.batch_size]

    losses: list[float] = []
    extras: list[float] = []
    seen = 0
    n_tokens = 0
    t0 = time.perf_counter()
    for step, idx in zip(range(total), batches(), strict=False):
        batch_ex = [examples[i] for i in idx]
        ids, mask, labels = collate([encoded[i] for i in idx], pad_id)
        w = torch.tensor([ex.weight for ex in batch_ex], dtype=torch.float32)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        outputs = model(input_ids=ids, attention_mask=mask)
        denom = len(idx) * mean_w if cfg.weight_normalization == "dataset" else None
        loss, _ = sft_loss(outputs.logits, labels, w, denom)
        if extra_loss is not None:
            batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
            batch["examples"] = batch_ex
            extra = extra_loss(model, batch, outputs)
            extras.append(float(extra.detach()))
            loss = loss + extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        seen += len(idx)
        n_tokens += int((labels[:, 1:] != IGNORE_INDEX).sum())
        if progress is not None:
            progress(step + 1, total, losses[-1])
    seconds = time.perf_counter() - t0

    result = LoRAResult(
        adapter_dir=out,
        base_checkpoint=checkpoint,
        losses=losses,
        steps=total,
        seconds=seconds,
        examples_per_s=seen / seconds if seconds > 0 else 0.0,
        n_examples=n,
        n_truncated_prompts=n_prompt_cut,
        n_truncated_completions=n_comp_cut,
        added_tokens=added,
        extra_losses=extras,
        n_tokens=n_tokens,
    )
    meta = {
        "format_version": _META_VERSION,
        "config": cfg.model_dump(),
        "base_model": str(source),
        "base_fingerprint": fingerprint,
        "base_checkpoint": str(checkpoint),
        "checkpoint_fingerprint": dir_fingerprint(checkpoint),
        "vocab_size": vocab_size,
        "added_tokens": added,
        "n_examples": n,
        "n_truncated_prompts": n_prompt_cut,
        "n_truncated_completions": n_comp_cut,
        "provenance": dict(Counter(str(ex.meta.get("source", "unknown")) for ex in examples)),
        "losses": losses,
        "extra_losses": extras,
        "steps": total,
        "batch_size": cfg.batch_size,
        "n_tokens": n_tokens,
        "seconds": seconds,
        "examples_per_s": result.examples_per_s,
    }
    _save_atomic(model, tokenizer if added else None, meta, out)
    return result


def _load_model(auto_cls: Any, checkpoint: Path) -> Any:
    """float32 weights from a local folder, without transformers' loading progress bar."""
    import torch
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return auto_cls.from_pretrained(str(checkpoint), dtype=torch.float32, local_files_only=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _save_atomic(model: Any, tokenizer: Any, meta: dict[str, Any], out: Path) -> None:
    """Write adapter (+ tokenizer) + meta under a temporary name, then rename into ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out.name}-", dir=out.parent))
    old: Path | None = None
    try:
        model.save_pretrained(str(tmp), save_embedding_layers=False)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        tmp.chmod(0o755)
        if out.exists():
            old = out.with_name(f".old-{out.name}-{uuid.uuid4().hex[:8]}")
            os.rename(out, old)
        os.rename(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)


def read_train_meta(adapter_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``train_meta.json`` of an adapter folder (``{}`` for adapters made elsewhere)."""
    path = Path(adapter_dir) / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}
