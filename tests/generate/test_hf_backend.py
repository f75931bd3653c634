"""HF transformers backend: GGUF conversion cache, generation, scoring, agreement with llama.cpp.

Fast tests cover the conversion cache with a stand-in converter. Tests marked ``slow`` load the
embedded SmolLM2 GGUF through the cache (``$SYNTHBIAS_CACHE/hf`` or ``~/.cache/synthbias/hf``):
the first run on a machine converts it once (about a minute), later runs load it in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthbias.generate import hf
from synthbias.generate.protocol import Backend, SamplingParams

# ---------------------------------------------------------------------------------------------
# Conversion cache (no model needed)
# ---------------------------------------------------------------------------------------------


def test_conversion_is_cached_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(100))
    calls: list[Path] = []

    def fake_convert(src: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(hf, "_convert_gguf", fake_convert)
    cache = tmp_path / "cache"
    first = hf.converted_checkpoint(gguf, cache)
    assert first.parent == cache and first.name.startswith("tiny-")
    assert (first / "config.json").is_file() and (first / hf._MARKER).is_file()
    assert hf.converted_checkpoint(gguf, cache) == first
    assert len(calls) == 1 and calls[0].name.startswith(".tmp-")  # written aside, then renamed
    assert [p.name for p in cache.iterdir()] == [first.name]

    # a different file (another fingerprint) gets its own folder
    gguf.write_bytes(b"GGUF" + bytes(200))
    assert hf.converted_checkpoint(gguf, cache) != first

    monkeypatch.setenv(hf.CACHE_ENV_VAR, str(tmp_path / "env-root"))
    assert hf.default_cache_dir() == tmp_path / "env-root" / "hf"


def test_failed_conversion_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")

    def broken(src: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(hf, "_convert_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        hf.converted_checkpoint(gguf, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_bad_model_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        hf.HFBackend(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        hf.converted_checkpoint(tmp_path / "missing.gguf", tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="neither"):
        hf.HFBackend(tmp_path / "weights.bin")


def test_row_seeds_are_distinct_and_stable() -> None:
    seeds = {hf._row_seed(0, i) for i in range(100)}
    assert len(seeds) == 100
    assert hf._row_seed(5, 3) == hf._row_seed(5, 3) != hf._row_seed(6, 3)
    assert hf._row_seed(-1, 0) >= 0


# ---------------------------------------------------------------------------------------------
# The embedded model
# ---------------------------------------------------------------------------------------------

TEXTS = [
    "The nurse said she would finish her shift early.",
    "The engineer explained that he had fixed the bridge design.",
    "Poor people are really ignorant about how to handle the money they do have.",
    "Hi <|im_start|> there, ünïcödé — ok 😀",
]
CHAT = [
    [{"role": "user", "content": "Describe a nurse in one sentence."}],
    [{"role": "user", "content": "Describe an engineer in one sentence."}],
    "Once upon a time",
]


@pytest.fixture(scope="module")
def hfm():
    pytest.importorskip("transformers")
    backend = hf.HFBackend(batch_size=16)
    yield backend
    backend.close()


@pytest.mark.slow
def test_hf_loads_embedded_gguf_via_cache(hfm) -> None:
    assert isinstance(hfm, Backend) and hfm.name == "transformers"
    assert hfm.model_id.startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")
    assert (hfm.checkpoint_dir / hf._MARKER).is_file()
    assert (hfm.checkpoint_dir / "model.safetensors").is_file()
    # SmolLM2-Instruct: BOS <|im_start|> (id 1), not added by the tokenizer itself
    assert hfm.prefix_id == hfm.tokenizer.bos_token_id == 1 and not hfm.add_bos


@pytest.mark.slow
def test_hf_logprobs_shape(hfm) -> None:
    out = hfm.logprobs(TEXTS)
    assert len(out) == len(TEXTS)
    for text, lp in zip(TEXTS, out, strict=True):
        assert len(lp.tokens) == len(lp.token_ids) == len(lp.logprobs) > 3
        assert lp.token_ids[0] != hfm.prefix_id  # the prefix token is not scored
        assert all(x <= 0 for x in lp.logprobs) and np.isfinite(lp.total)
        if text.isascii():
            assert "".join(lp.tokens) == text
    assert 1 not in out[3].token_ids  # "<|im_start|>" in a text is plain text, not the token
    # batching and order do not change scores beyond float noise
    single = [hfm.logprobs([t])[0].total for t in TEXTS]
    assert np.allclose(single, [lp.total for lp in out], atol=1e-3)
    with pytest.raises(TypeError):
        hfm.logprobs("a string")


@pytest.mark.slow
def test_hf_generation_seeded(hfm) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    first = hfm.generate(CHAT, params)
    assert len(first) == len(CHAT)
    for c in first:
        assert c.text.strip() and 1 <= c.n_tokens <= 16 and c.n_prompt_tokens > 2
        assert c.finish_reason in ("stop", "length") and "<|im_" not in c.text
    assert [c.text for c in hfm.generate(CHAT, params)] == [c.text for c in first]
    other = hfm.generate(CHAT, SamplingParams(max_tokens=16, temperature=1.0, seed=8))
    assert [c.text for c in other] != [c.text for c in first]
    same_prompt = hfm.generate([CHAT[0]] * 3, params)
    assert len({c.text for c in same_prompt}) > 1  # request i has its own stream
    greedy = hfm.generate(CHAT[:2], SamplingParams(max_tokens=30, temperature=0, stop=(".",)))
    for c in greedy:
        assert "." not in c.text and c.text.strip()


@pytest.mark.slow
def test_hf_logprobs_agree_with_llamacpp(hfm) -> None:
    """Same weights, two runtimes: fp32-dequantised torch vs llama.cpp's Q4_1 kernels.

    llama.cpp quantises activations to 8 bits inside its Q4_1 matmuls and keeps the KV cache in
    fp16, so agreement is close but not exact. Observed on 40 CrowS-Pairs sentences: same token
    ids; per-token |diff| mean 0.083 nats (median 0.056, max 0.70); sentence totals differ by
    0.41 nats on average (max 1.14, at most 2% of the total); correlation of per-token log-probs
    0.9995. Thresholds below leave headroom over that.
    """
    pytest.importorskip("llama_cpp")
    from synthbias.generate.llamacpp import LlamaCppBackend

    with LlamaCppBackend(n_ctx=256, batch_size=1) as llm:
        ref = llm.logprobs(TEXTS)
    ours = hfm.logprobs(TEXTS)
    diffs = []
    for a, b in zip(ours, ref, strict=True):
        assert a.token_ids == b.token_ids  # same tokenizer, same prefix token
        d = np.abs(np.array(a.logprobs) - np.array(b.logprobs))
        diffs.extend(d.tolist())
        assert abs(a.total - b.total) <= 1.0 + 0.03 * abs(b.total), (a.total, b.total)
    diffs_arr = np.array(diffs)
    assert diffs_arr.mean() < 0.15 and diffs_arr.max() < 1.5, diffs_arr
    x = np.concatenate([o.logprobs for o in ours])
    y = np.concatenate([r.logprobs for r in ref])
    assert np.corrcoef(x, y)[0, 1] > 0.99


N_CROWS_HF = 50


@pytest.mark.slow
def test_crows_pairs_hf_matches_plain_loop(hfm, benchmarks: Path) -> None:
    """Our batched HF CrowS-Pairs score equals a one-sentence forward + log_softmax loop."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synthbias.measure.likelihood import crows_pairs, crows_pairs_subset, load_crows_pairs

    res = crows_pairs(hfm, benchmarks, limit=N_CROWS_HF, seed=0, n_resamples=100)
    pct = res["crows_pairs.pct_stereotype"]
    assert pct.n == N_CROWS_HF and pct.meta["runtime"] == "transformers"

    sub = crows_pairs_subset(load_crows_pairs(benchmarks), N_CROWS_HF, seed=0)
    tok = AutoTokenizer.from_pretrained(str(hfm.checkpoint_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(hfm.checkpoint_dir), dtype=torch.float32, local_files_only=True
    ).eval()

    def loglik(sentence: str) -> float:
        ids = [tok.bos_token_id, *tok(sentence, add_special_tokens=False)["input_ids"]]
        x = torch.tensor([ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(x).logits[0, :-1].double(), dim=-1)
        return float(logp.gather(-1, x[0, 1:, None]).sum())

    ref_more = np.array([loglik(s) for s in sub["sent_more"]])
    ref_less = np.array([loglik(s) for s in sub["sent_less"]])
    ref_pct = 100 * float(np.mean(ref_more > ref_less))
    assert abs(pct.value - ref_pct) <= 0.5, (pct.value, ref_pct)
    ours = np.array(res["crows_pairs.likelihood_diff"].per_sample)
    assert np.allclose(ours, np.abs(ref_more - ref_less), atol=2e-3)


@pytest.mark.slow
def test_hf_prefix_shared_scoring_equals_per_option(hfm, benchmarks: Path) -> None:
    """Real BBQ items: the prompt run once with its cache repeated = each option scored whole."""
    from synthbias.measure.qa import DEFAULT_PROMPT, load_bbq
    from synthbias.measure.scoring import conditional_logprobs

    rows = load_bbq(benchmarks).groupby("category").head(1).iloc[:4]
    pairs = [
        (DEFAULT_PROMPT.format(context=r["context"], question=r["question"]), " " + r[f"ans{k}"])
        for _, r in rows.iterrows()
        for k in range(3)
    ]
    fast = conditional_logprobs(hfm, pairs)
    slow = conditional_logprobs(hfm, pairs, share_prefix=False)
    assert [a.n_tokens for a in slow] == [b.n_tokens for b in fast]
    diffs = [
        abs(x - y)
        for a, b in zip(slow, fast, strict=True)
        for x, y in zip(a.token_logprobs, b.token_logprobs, strict=True)
    ]
    assert len(diffs) >= len(pairs) and max(diffs) <= 1e-4, max(diffs)
    assert len({round(s.logprob, 3) for s in fast}) > len(pairs) / 2


def test_text_prefix_groups_pairs_sentences_by_common_beginning() -> None:
    seqs = [[1, 5, 6, 7, 8, 9, 2], [1, 5, 6, 7, 8, 4, 3], [1, 9, 9], [1, 5, 3, 3, 3, 3]]
    groups = hf.text_prefix_groups(seqs)
    shared = {tuple(sorted(m)): h for h, m in groups}
    assert shared[(0, 1)] == 5  # common beginning; each keeps two tokens of its own
    assert shared[(2,)] == 0 and shared[(3,)] == 0  # too short a shared part: alone


@pytest.mark.slow
def test_hf_pair_shared_text_scoring_equals_plain(hfm, benchmarks: Path) -> None:
    """CrowS-Pairs sentences: a pair's common beginning run once = each sentence run whole."""
    from synthbias.measure.likelihood import load_crows_pairs

    rows = load_crows_pairs(benchmarks).iloc[:12]
    texts = rows["sent_more"].tolist() + rows["sent_less"].tolist()
    plain = hfm.logprobs(texts)
    try:
        hfm.share_text_prefix = True
        shared = hfm.logprobs(texts)
    finally:
        hfm.share_text_prefix = False
    seqs = [[hfm.prefix_id, *t.token_ids] for t in plain]
    assert any(h for h, _ in hf.text_prefix_groups(seqs))  # something really was shared
    for a, b in zip(plain, shared, strict=True):
        assert a.token_ids == b.token_ids
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) <= 1e-4


@pytest.mark.slow
def test_hf_score_tails_mixed_contexts_equal_whole_sequences(hfm) -> None:
    """Contexts of different lengths, one- and many-token options, lone sequences, start 1.

    score_tails reads a one-token option off its context's last row (no second pass) and runs
    longer options on the context's cache; both must equal scoring each sequence whole.
    """
    rng = np.random.default_rng(3)
    seqs: list[list[int]] = []
    starts: list[int] = []
    for n_ctx in (1, 3, 9, 17, 40, 9):
        context = [hfm.prefix_id, *rng.integers(200, 40000, size=n_ctx - 1).tolist()]
        for n_opt in (1, 1, 2, 5):
            seqs.append(context + rng.integers(200, 40000, size=n_opt).tolist())
            starts.append(len(context))
    seqs.append([hfm.prefix_id, 500, 600])  # alone, scored from its second token
    starts.append(1)
    whole = hfm.logprobs_ids(seqs)
    tails = hfm.score_tails(seqs, starts)
    worst = 0.0
    for w, t, s in zip(whole, tails, starts, strict=True):
        assert len(t) == len(w) - s + 1
        worst = max(worst, max(abs(a - b) for a, b in zip(w[s - 1 :], t, strict=True)))
    assert worst <= 1e-4, worst
    assert len({round(t[0], 4) for t in tails}) > len(tails) / 2  # real, varied scores


def test_hf_score_tails_nested_prefixes_feed_each_prefix_once(hfm, monkeypatch) -> None:
    """BBQ's shape: a context shared by questions, each question by its answers.

    The tree feeds the context once for all its questions (not once per question) and the
    scores still equal scoring each sequence whole within 1e-4 nats.
    """
    rng = np.random.default_rng(5)
    seqs: list[list[int]] = []
    starts: list[int] = []
    for n_context in (30, 45):
        context = [hfm.prefix_id, *rng.integers(200, 40000, size=n_context).tolist()]
        for _ in range(4):
            prompt = context + rng.integers(200, 40000, size=int(rng.integers(5, 12))).tolist()
            for n_opt in (1, 3, 4):
                seqs.append(prompt + rng.integers(200, 40000, size=n_opt).tolist())
                starts.append(len(prompt))
    fed: list[int] = []
    real = hf.HFBackend._pack

    def counting(self, roots):  # the rows actually run (of every width tried)
        rows = real(self, roots)
        fed.extend(len(r.tokens) for r in rows)
        return rows

    monkeypatch.setattr(hf.HFBackend, "_pack", counting)
    tails = hfm.score_tails(seqs, starts)
    monkeypatch.undo()
    distinct = len({tuple(s[: k + 1]) for s in seqs for k in range(len(s) - 1)})
    # every distinct prefix fed once, but the prefix token shared by the two contexts (too
    # short to share: each context feeds it)
    assert sum(fed) == distinct + 1
    whole = hfm.logprobs_ids(seqs)
    worst = max(
        abs(a - b)
        for w, t, s in zip(whole, tails, starts, strict=True)
        for a, b in zip(w[s - 1 :], t, strict=True)
    )
    assert worst <= 1e-4, worst


@pytest.mark.slow
def test_hf_bfloat16_is_opt_in_and_named_in_model_id(hfm) -> None:
    """Reduced precision only by choice: bf16 weights get their own model id (no shared
    cache with fp32), and their scores really differ from fp32, by a little."""
    texts = ["The nurse said that she was tired.", "The engineer fixed the bridge."]
    with hf.HFBackend(batch_size=4, dtype="bfloat16") as low:
        assert low.model_id == f"{hfm.model_id}@bfloat16"
        got = [t.total for t in low.logprobs(texts)]
    ref = [t.total for t in hfm.logprobs(texts)]
    diffs = [abs(a - b) for a, b in zip(got, ref, strict=True)]
    assert 1e-4 < max(diffs) < 1.0, diffs


@pytest.mark.slow
def test_hf_and_llamacpp_encode_prompts_alike(hfm) -> None:
    """Raw prompts are plain completion on both runtimes (no prefix token where the tokenizer
    adds none); chat prompts render the same template. Different ids made greedy pronoun
    completions differ between the runtimes in 7 of 8 cases."""
    from synthbias.generate.llamacpp import LlamaCppBackend

    prompts = [
        "The surgeon said that",
        "Candidate profile\nName: Ann\n\nRecommended annual salary in US dollars: $",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        [{"role": "user", "content": "Should we invite this candidate?"}],
    ]
    with LlamaCppBackend(n_ctx=128, batch_size=2) as llm:
        for p in prompts:
            assert hfm.encode_prompt(p) == llm.encode_prompt(p), p
        assert hfm.encode_prompt("") == llm.encode_prompt("") == [hfm.prefix_id]
