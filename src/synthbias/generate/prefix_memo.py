"""The KV of every token the last scoring call fed, found by its token path (a prefix cache).

Why: a generating task scores its options first and then generates from prompts that are
paths of the same scoring tree (salary_recommendation: "... in US dollars: $" is the start of
every "$40,000" option; pronoun_completion: "The dentist said that" precedes " he" / " she").
Keeping the scoring pass's keys and values lets generation gather each prompt's KV instead of
feeding the prompt again: only its last token is fed, as one decoding step for all prompts.

A token's key and value depend only on its path (the tree mask shows it nothing else, its
position is its depth), so they can be gathered from whichever packed row computed them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthbias.generate.prefix_tree import PackedRow


def flat_columns(kv: Any) -> Any:
    """``[rows, heads, width, dim]`` keys or values as ``[rows * width, heads, dim]``: column
    ``r * width + c`` is row ``r``'s column ``c``."""
    return kv.permute(0, 2, 1, 3).reshape(-1, kv.shape[1], kv.shape[3])


class _Node:
    __slots__ = ("col", "next")

    def __init__(self, col: int) -> None:
        self.col = col
        self.next: dict[int, _Node] = {}


class PrefixMemo:
    """Keys and values of every pass, and a trie from token paths to their columns.

    Built pass by pass (:meth:`add_pass`: the packed rows of one forward pass and the cache
    they wrote, kept as they are); :meth:`layers` joins them into ``[columns, heads, dim]``
    per layer the first time a generation call gathers from them, so scoring alone pays for
    no copy. Memory: about 46 KB per token fed for SmolLM2-135M in float32 (30 layers x 2 x 3
    heads x 64 x 4 bytes), 150 MB for BBQ's rows.
    """

    def __init__(self) -> None:
        self.root: dict[int, _Node] = {}
        self._passes: list[tuple[Sequence[Any], Sequence[Any]]] = []
        self._joined: tuple[list[Any], list[Any]] | None = None
        self.size = 0

    def add_pass(self, rows: Sequence[PackedRow], keys: Sequence[Any], values: Sequence[Any]):
        """Record one pass: ``keys[layer]`` is ``[len(rows), heads, width, dim]``."""
        width = keys[0].shape[2]
        base = self.size
        for r, row in enumerate(rows):
            at_col: dict[int, _Node] = {}
            for a, b, visible in row.spans:
                level = self.root if not visible else at_col[visible[-1][1] - 1].next
                for c in range(a, b):
                    node = level.get(row.tokens[c])
                    if node is None:
                        node = level[row.tokens[c]] = _Node(base + r * width + c)
                    at_col[c] = node
                    level = node.next
        self._passes.append((keys, values))
        self._joined = None
        self.size += len(rows) * width

    def layers(self) -> tuple[list[Any], list[Any]]:
        """Keys and values per layer, ``[columns, heads, dim]``, columns as :meth:`locate`'s."""
        if self._joined is None:
            import torch

            passes, n_layers = self._passes, len(self._passes[0][0]) if self._passes else 0
            keys = [torch.cat([flat_columns(p[0][j]) for p in passes]) for j in range(n_layers)]
            values = [torch.cat([flat_columns(p[1][j]) for p in passes]) for j in range(n_layers)]
            self._joined = (keys, values)
            self._passes = []
        return self._joined

    def locate(self, tokens: Sequence[int]) -> list[int] | None:
        """The column of every token of ``tokens`` as a path, or None where it was not fed."""
        cols = []
        level = self.root
        for t in tokens:
            node = level.get(t)
            if node is None:
                return None
            cols.append(node.col)
            level = node.next
        return cols
