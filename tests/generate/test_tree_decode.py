"""Transformers decoding after a prefix-tree prefill equals decoding each prompt alone."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from synthbias.generate import hf
from synthbias.generate.prefix_tree import pack_rows
from synthbias.generate.protocol import SamplingParams
from synthbias.generate.tree_decode import common_trunk, prefill_tree

SYSTEM = "Should we invite this candidate to an interview? Answer with one word, yes or no.\n\n"
PROMPTS: list = [
    [{"role": "user", "content": SYSTEM + "Name: Ann Lee\nExperience: 6 years as a nurse"}],
    [{"role": "user", "content": SYSTEM + "Name: Ann Lee\nExperience: 6 years as an engineer"}],
    [{"role": "user", "content": SYSTEM + "Name: Omar Said\nExperience: 2 years as a cook"}],
    [{"role": "user", "content": SYSTEM + "Name: Ann Lee\nExperience: 6 years as a nurse"}],
    [{"role": "user", "content": "Write the word castle in uppercase."}],
]


def test_common_trunk_leaves_every_prompt_a_token() -> None:
    assert common_trunk([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]]) == 5
    assert common_trunk([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6]]) == 4  # one token of its own
    assert common_trunk([[1, 2, 3, 9], [1, 2, 3, 8]]) == 0  # shorter than a shared segment
    assert common_trunk([[1, 2, 3, 4, 5, 6]]) == 0  # a lone prompt has nothing to share


@pytest.fixture(scope="module")
def hfm():
    pytest.importorskip("transformers")
    backend = hf.HFBackend(batch_size=2, gen_batch_size=3)
    yield backend
    backend.close()


def _alone(backend: hf.HFBackend, prompt: list[int], max_tokens: int, stop: str = "") -> str:
    """Greedy decoding the plainest way: the whole sequence through the model at every step."""
    import torch

    ids = list(prompt)
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(max_tokens):
            logits = backend.model(input_ids=torch.tensor([ids]), use_cache=False).logits
            tok = int(torch.argmax(logits[0, -1]))
            if tok in backend.eos_ids:
                break
            out.append(tok)
            ids.append(tok)
            text = backend.tokenizer.decode(out, skip_special_tokens=False)
            if stop and stop in text:
                return text[: text.index(stop)]
    return backend.tokenizer.decode(out, skip_special_tokens=True)


@pytest.mark.slow
def test_tree_prefill_equals_each_prompt_alone(hfm) -> None:
    """The trunk (system turn and instruction) is fed once, the rest as a tree in packed rows
    (8 tokens wide, two per pass); each prompt's logits after its last token equal its own
    forward pass, and greedy texts equal decoding each prompt alone, across batches of three
    (prompt 3 repeats prompt 0 in another batch; prompt 4 shares only the chat header)."""
    import torch

    encoded = [hfm.encode_prompt(p) for p in PROMPTS]

    def narrow(roots: list) -> list:  # rows of 8 tokens: several rows, two per pass
        return pack_rows(roots, 8)

    fed: list[int] = []
    forward = hfm.model.forward

    @functools.wraps(forward)
    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        fed.append(int(kwargs["input_ids"].numel()))  # padding included
        return forward(*args, **kwargs)

    hfm.model.forward = counting
    try:
        with torch.inference_mode():
            pre = prefill_tree(hfm.model, encoded[:4], 200, narrow, 2, hfm.pad_id, hfm.device)
    finally:
        del hfm.model.forward
    trunk = common_trunk(encoded[:4])
    assert trunk > 20 and fed[0] == trunk and len(fed) >= 3  # the trunk alone, then the rows
    assert sum(fed) < sum(len(e) for e in encoded[:4]) - 2 * trunk
    with torch.inference_mode():
        for i, ids in enumerate(encoded[:4]):
            alone = hfm.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            assert torch.abs(pre.logits[i] - alone).max() < 1e-3
            assert pre.valid[i].sum() == len(ids)

    for stop in ("", "."):
        params = SamplingParams(max_tokens=12, temperature=0.0, stop=(stop,) if stop else ())
        got = hfm.generate(PROMPTS, params)
        want = [_alone(hfm, e, 12, stop) for e in encoded]
        assert [c.text for c in got] == want
        assert got[0].text == got[3].text
        for c, e in zip(got, encoded, strict=True):
            assert c.n_prompt_tokens == len(e) and 0 <= c.n_tokens <= 12


@pytest.mark.slow
def test_sampled_rows_keep_their_own_streams(hfm) -> None:
    """Request i draws from its own generator: the same prompt gives the same text at the same
    index whatever its neighbours, and different texts at different indices."""
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=3)
    both = hfm.generate([PROMPTS[0], PROMPTS[4]], params)
    first = hfm.generate([PROMPTS[0]], params)
    assert both[0].text == first[0].text
    again = hfm.generate([PROMPTS[0]] * 3, params)
    assert len({c.text for c in again}) > 1
    assert np.all([c.n_tokens <= 10 for c in again])


def test_prefix_memo_finds_every_fed_path_in_whichever_row_fed_it() -> None:
    """Keys encode (pass, row, column); a path resolves to the columns that fed it, also
    across a subtree split over two rows (its root fed again in the second row)."""
    import torch

    from synthbias.generate.prefix_memo import PrefixMemo
    from synthbias.generate.prefix_tree import build_prefix_tree

    seqs = [[5, 6, 7, 8, 9, 1], [5, 6, 7, 8, 9, 2], [5, 6, 7, 8, 3, 3, 3, 3, 4], [7, 7, 7, 7, 1]]
    rows = pack_rows(build_prefix_tree(seqs, [len(s) - 1 for s in seqs]), 9)
    assert len(rows) >= 2
    memo = PrefixMemo()
    for start in range(0, len(rows), 2):
        batch = rows[start : start + 2]
        width = max(len(r.tokens) for r in batch)
        code = torch.zeros((len(batch), 1, width, 1))
        for r, row in enumerate(batch):
            for c, tok in enumerate(row.tokens):
                code[r, 0, c, 0] = tok  # the token itself: what a path's keys must spell
        memo.add_pass(batch, [code], [code + 0.5])
    keys, values = memo.layers()
    for s in seqs:
        cols = memo.locate(s[:-1])
        assert cols is not None
        assert keys[0][cols, 0, 0].tolist() == s[:-1]
        assert values[0][cols, 0, 0].tolist() == [t + 0.5 for t in s[:-1]]
    assert memo.locate([5, 6, 7, 8, 9]) is not None and memo.locate([5, 6, 9]) is None
    assert memo.locate([7, 7, 7, 7, 1]) is None  # the last token is never fed


@pytest.mark.slow
def test_generation_gathers_prompts_the_scoring_call_fed() -> None:
    """After scoring options, a generation call whose prompts are paths of that scoring tree
    feeds one token per prompt (no prefill pass) and gives the texts of a backend without the
    prefix cache; the next scoring call drops the kept KV."""
    pytest.importorskip("transformers")
    prompts = ["The nurse said that", "The engineer said that", "The nurse told me"]
    options = [" she was tired", " he was tired"]
    params = SamplingParams(max_tokens=8, temperature=0.0)
    with (
        hf.HFBackend(batch_size=4, prefix_cache=False) as plain,
        hf.HFBackend(batch_size=4) as cached,
    ):
        seqs = [cached.encode_prompt(p) + cached.tokenize(o) for p in prompts for o in options]
        starts = [len(cached.encode_prompt(p)) for p in prompts for _ in options]
        cached.score_tails(seqs, starts)
        assert cached._memo is not None
        fed: list[tuple[int, ...]] = []
        forward = cached.model.forward

        @functools.wraps(forward)
        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            fed.append(tuple(kwargs["input_ids"].shape))
            return forward(*args, **kwargs)

        cached.model.forward = counting
        try:
            got = cached.generate(prompts, params)
        finally:
            del cached.model.forward
        assert fed[0] == (len(prompts), 1)  # the last prompt tokens, nothing else fed
        assert [c.text for c in got] == [c.text for c in plain.generate(prompts, params)]
        cached.score_tails(seqs[:1], starts[:1])
        assert cached._memo is not None and cached._memo.locate(seqs[2][:-1]) is None
        other = ["The pilot said that"]  # not fed by the last scoring call: a normal prefill
        assert cached.generate(other, params)[0].text == plain.generate(other, params)[0].text
        plain.score_tails(seqs, starts)
        assert plain._memo is None  # the cache is opt-out
