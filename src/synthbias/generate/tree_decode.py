"""Decoding on transformers after a prefix-tree prefill: prompts share their common prefixes.

Why: the generating evaluation tasks are mostly prefill (hiring_decision: 34 counterfactual
profiles of ~100 tokens each, answered in one or two tokens), and transformers fp32 feeds
prompt tokens ~1.6x faster than llama.cpp's f32 kernels on these CPUs (``bench/generation.py``).
The prompts run as a radix tree in packed rows under a tree attention mask, exactly like option
scoring (:mod:`synthbias.generate.prefix_tree`), so a shared chat system turn or profile head
is fed once; each prompt's path is then gathered into its own slot of a preallocated KV cache
and all prompts decode together, one token per step, finished ones dropped from the batch.

Every sequence sees only its own path and its own tokens, at its own positions, so a
completion equals the one decoded alone up to float32 rounding (greedy outputs agree with
llama.cpp's f32 path on every evaluation prompt measured; ``bench/evaluation.py``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthbias.generate.prefix_memo import PrefixMemo, flat_columns
from synthbias.generate.prefix_tree import (
    MIN_SEGMENT,
    PackedRow,
    PrefixNode,
    build_prefix_tree,
    shared_start,
)


def _torch() -> Any:
    import torch

    return torch


def cache_keyword(model: Any) -> str:
    """The name a model's ``forward`` takes its KV cache under (``cache`` from transformers 5.x
    on, ``past_key_values`` before)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def row_tensors(batch: Sequence[PackedRow], pad_id: int) -> tuple[Any, Any, Any, Any]:
    """Token ids, positions, 4D tree mask and wanted-logits mask of a batch of packed rows.

    Each token sees its ancestors' spans and its own segment up to itself; its position is its
    depth in the tree. Padding attends to itself only.
    """
    torch = _torch()
    width = max(len(r.tokens) for r in batch)
    k = len(batch)
    ids = torch.full((k, width), pad_id, dtype=torch.long)
    pos = torch.zeros((k, width), dtype=torch.long)
    see = torch.zeros((k, 1, width, width), dtype=torch.bool)
    see[:, 0] = torch.eye(width, dtype=torch.bool)
    keep = torch.zeros((k, width), dtype=torch.bool)
    for r, row in enumerate(batch):
        n = len(row.tokens)
        ids[r, :n] = torch.tensor(row.tokens, dtype=torch.long)
        pos[r, :n] = torch.tensor(row.positions, dtype=torch.long)
        for a, b, visible in row.spans:
            for va, vb in visible:
                see[r, 0, a:b, va:vb] = True
            see[r, 0, a:b, a:b] = torch.ones((b - a, b - a), dtype=torch.bool).tril()
        for col, _ in row.wants:
            keep[r, col] = True
    return ids, pos, see, keep


@functools.cache
def _base_cache() -> type:
    """transformers' ``DynamicCache``, imported on first use: the caches below subclass it so
    the model accepts them; they are defined once, on the first call of their factory."""
    from transformers import DynamicCache

    return DynamicCache


def make_slot_cache(capacity: int) -> Any:
    """A KV cache of ``capacity`` columns, written in place (no concatenation per step).

    All rows write the same column range at each forward pass, so a step costs one slice
    assignment per layer instead of a copy of the whole cache. Tensors are allocated on the
    first write, from the shapes the model passes. ``advance`` moves the write head after a
    forward pass; ``select`` keeps some rows (finished sequences leave the batch).
    """
    return _slot_cache_class()(capacity)


@functools.cache
def _slot_cache_class() -> type:
    class SlotCache(_base_cache()):  # type: ignore[misc]
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.keys: list[Any] = []
            self.values: list[Any] = []

        def update(
            self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
        ) -> tuple[Any, Any]:
            torch = _torch()
            if layer_idx == len(self.keys):
                b, h, _, d = key_states.shape
                dv = value_states.shape[-1]
                kw = {"dtype": key_states.dtype, "device": key_states.device}
                self.keys.append(torch.zeros((b, h, self.capacity, d), **kw))
                self.values.append(torch.zeros((b, h, self.capacity, dv), **kw))
            end = self.length + key_states.shape[-2]
            if end > self.capacity:
                raise RuntimeError(f"KV slots full: {end} > {self.capacity}")
            self.keys[layer_idx][:, :, self.length : end] = key_states
            self.values[layer_idx][:, :, self.length : end] = value_states
            return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

        def get_seq_length(self, layer_idx: int | None = 0) -> int:
            return self.length

        def advance(self, n: int) -> None:
            self.length += n

        def select(self, rows: Any) -> None:
            self.keys = [k[rows] for k in self.keys]
            self.values = [v[rows] for v in self.values]

    return SlotCache


def make_capture_cache() -> Any:
    """A cache that only keeps a reference to each layer's keys and values (no copy).

    For a forward pass over complete rows (scoring): attention sees exactly the tensors it
    would see without a cache, and the pass's KV stays available afterwards
    (:class:`~synthbias.generate.prefix_memo.PrefixMemo`).
    """
    return _capture_cache_class()()


@functools.cache
def _capture_cache_class() -> type:
    class CaptureCache(_base_cache()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.keys: list[Any] = []
            self.values: list[Any] = []

        def update(
            self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any
        ) -> tuple[Any, Any]:
            if layer_idx != len(self.keys):
                raise RuntimeError("a capture cache holds one forward pass")
            self.keys.append(key_states)
            self.values.append(value_states)
            return key_states, value_states

        def get_seq_length(self, layer_idx: int | None = 0) -> int:
            return 0

    return CaptureCache


@dataclass
class Prefilled:
    """Each prompt's KV in its own cache row (columns ``0..len-1``, the rest masked) and the
    logits row after its last token."""

    cache: Any
    valid: Any  # bool [n, capacity]: the columns each row may attend to
    logits: Any  # float [n, vocab]
    head: int  # first free column, the same for every row


def common_trunk(prompts: Sequence[Sequence[int]], min_len: int = MIN_SEGMENT) -> int:
    """Tokens every prompt starts with, leaving each at least one of its own (0 if < ``min_len``).

    Why: a trunk shared by all prompts (a chat system turn, an instruction) roots a subtree too
    large for one packed row, and splitting it would feed the trunk again in every row; it is
    fed once instead and every row attends to its cached KV.
    """
    return shared_start(prompts, keep=1, min_len=min_len) if len(prompts) > 1 else 0


def prefill_tree(
    model: Any,
    prompts: Sequence[Sequence[int]],
    capacity: int,
    pack: Callable[[list[PrefixNode]], list[PackedRow]],
    rows_per_pass: int,
    pad_id: int,
    device: Any,
) -> Prefilled:
    """Feed the prompts' prefix tree and gather each prompt's path into a slot of its own.

    The trunk common to all prompts (:func:`common_trunk`) is fed once; the rest of the tree
    runs in packed rows (``pack``: ``HFBackend._pack`` picks the row width), ``rows_per_pass``
    rows per forward pass into a scratch cache that starts with the trunk's KV. Every prompt
    whose last token sits in those rows copies its path's columns (trunk, ancestors, then its
    own segment) into row ``i`` of the decode cache.
    """
    torch = _torch()
    n = len(prompts)
    head = max(len(p) for p in prompts)
    if head > capacity:
        raise ValueError(f"a prompt of {head} tokens does not fit {capacity} KV slots")
    arg = cache_keyword(model)
    trunk = common_trunk(prompts)
    trunk_kv: Any = None
    if trunk:
        trunk_kv = make_slot_cache(trunk)
        ids = torch.tensor([list(prompts[0][:trunk])], dtype=torch.long, device=device)
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{arg: trunk_kv})
    tails = [[*p[trunk:], 0] for p in prompts]
    rows = pack(build_prefix_tree(tails, [len(t) - 1 for t in tails]))
    out = make_slot_cache(capacity)
    valid = torch.zeros((n, capacity), dtype=torch.bool, device=device)
    first: Any = None
    for start in range(0, len(rows), rows_per_pass):
        batch = rows[start : start + rows_per_pass]
        ids, pos, see, keep = row_tensors(batch, pad_id)
        k, width = ids.shape
        scratch = make_slot_cache(trunk + width)
        if trunk:
            for kk, vv in zip(trunk_kv.keys, trunk_kv.values, strict=True):
                scratch.keys.append(_with_room(kk, k, trunk + width))
                scratch.values.append(_with_room(vv, k, trunk + width))
            scratch.length = trunk
            see = torch.cat([torch.ones((k, 1, width, trunk), dtype=torch.bool), see], dim=-1)
        logits = model(
            input_ids=ids.to(device),
            attention_mask=see.to(device),
            position_ids=(pos + trunk).to(device),
            use_cache=True,
            logits_to_keep=keep.to(device),
            **{arg: scratch},
        ).logits
        logits = logits.float().reshape(-1, logits.shape[-1])
        if first is None:
            first = torch.zeros((n, logits.shape[-1]), dtype=torch.float32, device=device)
        src: list[int] = []  # flat (row, column) of every gathered path token
        dst_row: list[int] = []
        dst_col: list[int] = []
        row_of = {(r, c): j for j, (r, c) in enumerate(keep.nonzero().tolist())}
        span = trunk + width
        for r, row in enumerate(batch):
            span_of = {}
            for a, b, visible in row.spans:
                for c in range(a, b):
                    span_of[c] = (a, visible)
            for col, want in row.wants:
                a, visible = span_of[col]
                own = [c for va, vb in visible for c in range(va, vb)] + list(range(a, col + 1))
                path = list(range(trunk)) + [trunk + c for c in own]
                i = want.seq
                src.extend(r * span + c for c in path)
                dst_row.extend([i] * len(path))
                dst_col.extend(range(len(path)))
                valid[i, : len(path)] = True
                first[i] = logits[row_of[(r, col)]]
        _scatter(
            out,
            [flat_columns(kk) for kk in scratch.keys],
            [flat_columns(vv) for vv in scratch.values],
            torch.tensor(src, device=device),
            torch.tensor(dst_row, device=device),
            torch.tensor(dst_col, device=device),
            n,
        )
    out.length = head
    return Prefilled(cache=out, valid=valid, logits=first, head=head)


def prefill_from_memo(
    model: Any, memo: PrefixMemo, prompts: Sequence[Sequence[int]], capacity: int, device: Any
) -> Prefilled | None:
    """Each prompt's KV gathered from ``memo``, its last token fed; None unless every prompt
    but its last token was fed by the scoring call ``memo`` kept.

    Row ``i`` holds its first ``len - 1`` tokens in columns ``0..len-2`` and its last token in
    column ``head - 1`` (free in every row), at position ``len - 1``: one decoding step for all
    prompts instead of a prefill.
    """
    torch = _torch()
    if not memo.size or any(len(p) < 2 for p in prompts):
        return None
    found = [memo.locate(p[:-1]) for p in prompts]
    if any(cols is None for cols in found):
        return None
    n = len(prompts)
    head = max(len(p) for p in prompts)
    if head > capacity:
        raise ValueError(f"a prompt of {head} tokens does not fit {capacity} KV slots")
    src = torch.tensor([c for cols in found for c in cols or ()], device=device)
    rows = torch.tensor(
        [i for i, p in enumerate(prompts) for _ in range(len(p) - 1)], device=device
    )
    cols = torch.tensor([j for p in prompts for j in range(len(p) - 1)], device=device)
    out = make_slot_cache(capacity)
    valid = torch.zeros((n, capacity), dtype=torch.bool, device=device)
    valid[rows, cols] = True
    _scatter(out, *memo.layers(), src, rows, cols, n)
    out.length = head - 1
    valid[:, head - 1] = True
    ids = torch.tensor([[p[-1]] for p in prompts], device=device)
    pos = torch.tensor([[len(p) - 1] for p in prompts], device=device)
    res = model(
        input_ids=ids,
        attention_mask=valid[:, None, None, :head],
        position_ids=pos,
        use_cache=True,
        logits_to_keep=1,
        **{cache_keyword(model): out},
    )
    out.advance(1)
    return Prefilled(cache=out, valid=valid, logits=res.logits[:, -1, :].float(), head=head)


def _scatter(
    out: Any, keys: Sequence[Any], values: Sequence[Any], src: Any, rows: Any, cols: Any, n: int
) -> None:
    """Copy columns ``src`` of each layer's ``[columns, heads, dim]`` keys and values into slots
    ``(rows, cols)`` of ``out``, a slot cache of ``n`` rows (allocated on first use)."""
    if not out.keys:
        for k, v in zip(keys, values, strict=True):
            out.keys.append(k.new_zeros((n, k.shape[1], out.capacity, k.shape[2])))
            out.values.append(v.new_zeros((n, v.shape[1], out.capacity, v.shape[2])))
    for layer, (k, v) in enumerate(zip(keys, values, strict=True)):
        out.keys[layer][rows, :, cols] = k[src]
        out.values[layer][rows, :, cols] = v[src]


def _with_room(trunk: Any, rows: int, capacity: int) -> Any:
    """The trunk's KV ``[1, h, t, d]`` copied into ``rows`` rows of ``capacity`` columns."""
    out = trunk.new_zeros((rows, trunk.shape[1], capacity, trunk.shape[3]))
    out[:, :, : trunk.shape[2]] = trunk
    return out


@dataclass
class _Row:
    """Decoding state of one prompt."""

    prompt_len: int
    out: list[int] = field(default_factory=list)
    finish: str | None = None
    cut: int | None = None


def decode(
    model: Any,
    pre: Prefilled,
    prompt_lens: Sequence[int],
    max_tokens: int,
    choose: Callable[[Any, list[int]], list[int]],
    accept: Callable[[_Row, int], None],
    device: Any,
) -> list[_Row]:
    """Decode every prompt to the end, one token per step; finished rows leave the batch.

    ``choose(logits, live)`` picks the next token of each live row (``logits`` row ``j`` is
    prompt ``live[j]``'s); ``accept`` appends it and sets ``finish`` (EOS, stop string,
    ``max_tokens``). A sequence's token ``s`` sits at column ``head + s`` and position
    ``prompt_len + s``.
    """
    torch = _torch()
    rows = [_Row(n) for n in prompt_lens]
    live = list(range(len(rows)))
    logits, valid, cache = pre.logits, pre.valid, pre.cache
    arg = cache_keyword(model)
    for step in range(max_tokens):
        toks = choose(logits, live)
        for i, tok in zip(live, toks, strict=True):
            accept(rows[i], tok)
        keep = [j for j, i in enumerate(live) if rows[i].finish is None]
        if not keep:
            break
        if len(keep) < len(live):
            idx = torch.tensor(keep, device=device)
            cache.select(idx)
            valid = valid[idx]
            live = [live[j] for j in keep]
        col = pre.head + step
        valid[:, col] = True
        ids = torch.tensor([[rows[i].out[-1]] for i in live], device=device)
        pos = torch.tensor([[rows[i].prompt_len + step] for i in live], device=device)
        res = model(
            input_ids=ids,
            attention_mask=valid[:, None, None, : col + 1],
            position_ids=pos,
            use_cache=True,
            logits_to_keep=1,
            **{arg: cache},
        )
        cache.advance(1)
        logits = res.logits[:, -1, :].float()
    return rows
