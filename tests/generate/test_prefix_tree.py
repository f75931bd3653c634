"""The radix tree that option and pair scoring walk: each distinct prefix fed once."""

from __future__ import annotations

import numpy as np
import pytest

from synthbias.generate.prefix_tree import build_prefix_tree, fed_tokens, pack_rows


def _walk(nodes, path=()):
    for n in nodes:
        here = (*path, *n.tokens)
        yield here, n
        yield from _walk(n.children, here)


def _wants(nodes):
    """Every (seq, index) -> (fed path, target), read back off the tree."""
    got = {}
    for path, node in _walk(nodes):
        base = len(path) - len(node.tokens)
        for w in node.wants:
            assert (w.seq, w.index) not in got
            got[(w.seq, w.index)] = (path[: base + w.offset + 1], w.target)
    return got


@pytest.mark.parametrize("min_segment", [1, 4])
def test_tree_asks_for_every_scored_token_with_its_exact_prefix(min_segment: int) -> None:
    rng = np.random.default_rng(0)
    seqs, starts = [], []
    for _ in range(5):
        ctx = [1, *rng.integers(2, 6, size=int(rng.integers(2, 9))).tolist()]
        for _ in range(3):
            seqs.append(ctx + rng.integers(2, 6, size=int(rng.integers(1, 5))).tolist())
            starts.append(len(ctx))
    seqs.append([1, 7])
    starts.append(1)
    tree = build_prefix_tree(seqs, starts, min_segment=min_segment)
    want = {
        (i, j - st): (tuple(s[:j]), s[j])
        for i, (s, st) in enumerate(zip(seqs, starts, strict=True))
        for j in range(st, len(s))
    }
    assert _wants(tree) == want
    distinct = len({tuple(s[: k + 1]) for s in seqs for k in range(len(s) - 1)})
    if min_segment == 1:
        assert fed_tokens(tree) == distinct  # a pure radix tree: nothing fed twice
    else:
        assert distinct <= fed_tokens(tree) <= sum(len(s) - 1 for s in seqs)
        for _path, node in _walk(tree):
            assert not node.children or len(node.tokens) >= min_segment


def test_short_shared_segment_is_fed_by_each_child() -> None:
    """Two options sharing only their first token: that token is not a node of its own."""
    ctx = [1, 10, 11, 12, 13, 14]
    seqs = [ctx + [20, 21, 23], ctx + [20, 22, 24], ctx + [30, 31]]
    (root,) = build_prefix_tree(seqs, [len(ctx)] * 3)
    assert root.tokens == ctx and len(root.wants) == 3  # every option's first token
    assert sorted(c.tokens for c in root.children) == [[20, 21], [20, 22], [30]]
    first = next(c for c in root.children if c.tokens[-1] == 21)
    # the pushed-down node's row (after token 20) is read by its first child for both options
    assert sorted((w.seq, w.offset) for w in first.wants) == [(0, 0), (0, 1), (1, 0)]


def test_bad_start_names_the_sequence() -> None:
    with pytest.raises(ValueError, match="sequence 1: start 5"):
        build_prefix_tree([[1, 2, 3], [1, 2]], [1, 5])


def test_packing_keeps_every_want_and_leaves_the_tree_alone() -> None:
    rng = np.random.default_rng(1)
    seqs, starts = [], []
    for _ in range(12):
        ctx = [1, *rng.integers(2, 50, size=int(rng.integers(10, 60))).tolist()]
        for _ in range(4):
            seqs.append(ctx + rng.integers(2, 50, size=int(rng.integers(1, 6))).tolist())
            starts.append(len(ctx))
    tree = build_prefix_tree(seqs, starts)
    before = fed_tokens(tree)
    expected = _wants(tree)
    for width in (16, 64, 256):
        rows = pack_rows(tree, width)
        assert fed_tokens(tree) == before  # packing at one width does not change the tree
        got = {}
        for row in rows:
            for col, w in row.wants:
                # the path a want reads: its column's visible spans, then its own span
                a, b, visible = next(s for s in row.spans if s[0] <= col < s[1])
                path = [t for va, vb in visible for t in row.tokens[va:vb]]
                path += row.tokens[a : col + 1]
                assert row.positions[col] == len(path) - 1
                got[(w.seq, w.index)] = (tuple(path), w.target)
        assert got == expected
