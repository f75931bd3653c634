"""A radix tree of token sequences to score, so that every shared prefix is fed to a model once.

Why: likelihood benchmarks and option scoring feed many sequences that share prefixes at more
than one depth (BBQ: a scenario's context is shared by its questions, each question by its three
answers; CrowS-Pairs: two sentences up to the first differing word; counterfactual profiles: an
instruction shared by every prompt). Grouping sequences by one shared context feeds the
context once per question; this tree feeds every distinct prefix once (the ``_distinct`` token
count of ``bench/roofline.py``). A runtime packs whole subtrees into rows and runs each row
once under a tree attention mask (:func:`pack_rows`; ``HFBackend.score_tails``).

The tree holds what to *feed* (a sequence's last token is never fed: nothing is scored after
it) and where to read a logits row: a :class:`Want` at offset ``k`` of a node's segment asks for
``log p(target | the path up to and including that token)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

#: Shortest segment worth sharing between several children: below it each child feeds the
#: tokens itself (a tree mask over a one-token node saves nothing and, at the root, a lone
#: prefix token run by itself moves later scores).
MIN_SEGMENT = 4


@dataclass(frozen=True)
class Want:
    """One log-probability to read: ``out[seq][index] = log p(target | path to offset)``."""

    offset: int
    seq: int
    index: int
    target: int


@dataclass
class PrefixNode:
    """A segment of tokens fed after its parent's path, what to read off it, and its children."""

    tokens: list[int]
    wants: list[Want] = field(default_factory=list)
    children: list[PrefixNode] = field(default_factory=list)

    def count(self) -> int:
        """Tokens fed for this node and everything below it."""
        return len(self.tokens) + sum(c.count() for c in self.children)


def build_prefix_tree(
    sequences: Sequence[Sequence[int]],
    starts: Sequence[int],
    min_segment: int = MIN_SEGMENT,
) -> list[PrefixNode]:
    """The radix tree of ``seq[:-1]`` over all sequences, with a :class:`Want` per scored token.

    Sequence ``i`` asks for ``log p(seq[j] | seq[:j])`` for ``j = starts[i] .. len(seq) - 1``,
    stored at index ``j - starts[i]``. Chains of single children become one segment; an inner
    node shorter than ``min_segment`` is pushed down into its children (each feeds those tokens
    itself, and the first child also reads the node's wants), so every shared segment is long
    enough to be worth sharing. Returns the root's children (the root feeds nothing).
    """
    if len(sequences) != len(starts):
        raise ValueError(f"{len(sequences)} sequences but {len(starts)} starts")
    # A plain trie first: one dict per token position, wants keyed by node.
    root: dict[int, dict] = {}
    wants_at: dict[int, list[Want]] = {}
    for i, (seq, st) in enumerate(zip(sequences, starts, strict=True)):
        if not 1 <= st <= len(seq):
            raise ValueError(f"sequence {i}: start {st} outside 1..{len(seq)}")
        node = root
        for p in range(len(seq) - 1):
            node = node.setdefault(seq[p], {})
            if p >= st - 1:
                wants_at.setdefault(id(node), []).append(Want(0, i, p - st + 1, int(seq[p + 1])))
    roots = [_compress(tok, child, wants_at) for tok, child in root.items()]
    return [n for r in roots for n in _push_down(r, min_segment)]


def _compress(token: int, node: dict, wants_at: dict[int, list[Want]]) -> PrefixNode:
    """Follow a chain of single children into one segment (iteratively: paths can be long)."""
    out = PrefixNode([token])
    out.wants.extend(wants_at.get(id(node), ()))
    while len(node) == 1:
        ((tok, node),) = node.items()
        k = len(out.tokens)
        out.tokens.append(tok)
        out.wants.extend(Want(k, w.seq, w.index, w.target) for w in wants_at.get(id(node), ()))
    out.children = [_compress(tok, child, wants_at) for tok, child in node.items()]
    return out


def _fold_into_children(node: PrefixNode) -> list[PrefixNode]:
    """New children with ``node``'s tokens prepended: each feeds them itself, the first also
    reads ``node``'s wants. ``node`` and its children are left unchanged."""
    n = len(node.tokens)
    out = []
    for j, child in enumerate(node.children):
        moved = [replace(w, offset=w.offset + n) for w in child.wants]
        wants = [*node.wants, *moved] if j == 0 else moved
        out.append(PrefixNode([*node.tokens, *child.tokens], wants, child.children))
    return out


def _push_down(node: PrefixNode, min_segment: int) -> list[PrefixNode]:
    """``node`` itself, or its children with its tokens prepended when it is too short to share."""
    node.children = [c for child in node.children for c in _push_down(child, min_segment)]
    if not node.children or len(node.tokens) >= min_segment:
        return [node]
    return _fold_into_children(node)


def shared_start(sequences: Sequence[Sequence[int]], keep: int, min_len: int) -> int:
    """Tokens every sequence starts with, leaving each at least ``keep`` of its own; 0 when
    that is under ``min_len`` (too short to be worth running once for all)."""
    limit = min(len(s) for s in sequences) - keep
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n if n >= min_len else 0


def fed_tokens(nodes: Sequence[PrefixNode]) -> int:
    """Tokens a runtime feeds to score the whole tree."""
    return sum(n.count() for n in nodes)


@dataclass
class PackedRow:
    """Several subtrees flattened into one row: tokens, positions and who sees whom.

    ``spans`` holds, per node, ``(start, end, visible)``: the node's tokens sit at columns
    ``start:end`` and each of them attends to the columns in ``visible`` (its ancestors' spans)
    and to the node's own tokens up to itself. ``wants`` are ``(column, Want)``.
    """

    tokens: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    spans: list[tuple[int, int, list[tuple[int, int]]]] = field(default_factory=list)
    wants: list[tuple[int, Want]] = field(default_factory=list)

    def add(self, node: PrefixNode, depth: int = 0, visible: list[tuple[int, int]] | None = None):
        """Append ``node``'s subtree in depth-first order."""
        seen = visible or []
        start = len(self.tokens)
        self.tokens.extend(node.tokens)
        self.positions.extend(range(depth, depth + len(node.tokens)))
        self.spans.append((start, len(self.tokens), seen))
        self.wants.extend((start + w.offset, w) for w in node.wants)
        below = [*seen, (start, len(self.tokens))]
        for child in node.children:
            self.add(child, depth + len(node.tokens), below)


def split_subtree(node: PrefixNode, cap: int) -> list[PrefixNode]:
    """Subtrees of at most ``cap`` tokens: a larger one's root is fed again by each child.

    ``node`` itself is never changed (the same tree is packed at several widths).
    """
    if node.count() <= cap or not node.children:
        return [node]
    return [t for child in _fold_into_children(node) for t in split_subtree(child, cap)]


def pack_rows(roots: Sequence[PrefixNode], width: int) -> list[PackedRow]:
    """Subtrees packed first-fit-decreasing into rows of ``width`` tokens (a longer one alone).

    Why: a row holding a whole subtree feeds each shared prefix once without any KV copy; the
    tree mask keeps every token to its own path, so packing unrelated subtrees side by side
    changes no number (beyond float32 rounding).
    """
    trees = sorted((t for r in roots for t in split_subtree(r, width)), key=lambda t: -t.count())
    rows: list[PackedRow] = []
    for tree in trees:
        n = tree.count()
        row = next((r for r in rows if len(r.tokens) + n <= width), None)
        if row is None:
            row = PackedRow()
            rows.append(row)
        row.add(tree)
    return rows
