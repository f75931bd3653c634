"""vLLM offline backend.

The adapter logic (prompt rendering, per-request seeds, log-prob extraction, cache integration)
is tested on a stand-in ``vllm`` module everywhere; the real engine runs only with vLLM and a
CUDA GPU (``pip install 'synthbias[vllm]'``) and is skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from synthbias.generate import SamplingParams, load_backend
from synthbias.generate.cache import CachedBackend
from synthbias.generate.openai_http import request_seed


@dataclass
class _SP:
    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    stop: list[str] | None = None
    prompt_logprobs: int | None = None


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Out:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _Req:
    outputs: list[_Out]
    prompt_logprobs: list[Any] | None = None


class _Tok:
    bos_token_id = 1
    eos_token_id = 2

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [10 + len(w) for w in text.split()]
        return ([self.bos_token_id] if add_special_tokens else []) + ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(f"w{i}" for i in ids)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True) -> str:
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}> {m['content']} " for m in messages) + "<assistant>"


@dataclass
class _LLM:
    kwargs: dict = field(default_factory=dict)
    calls: list = field(default_factory=list)

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls = []

    def get_tokenizer(self) -> _Tok:
        return _Tok()

    def generate(self, inputs, sampling_params, use_tqdm=True):
        sps = (
            sampling_params
            if isinstance(sampling_params, list)
            else [sampling_params] * len(inputs)
        )
        self.calls.append((inputs, sps))
        out = []
        for inp, sp in zip(inputs, sps, strict=True):
            ids = inp["prompt_token_ids"]
            text = f"seed={sp.seed} top_k={sp.top_k} n={len(ids)}"
            plp = None
            if sp.prompt_logprobs is not None:
                plp = [None] + [{t: _Logprob(-0.1 * t)} for t in ids[1:]]
            out.append(_Req([_Out(text, [7] * 3, "length")], plp))
        return out


@pytest.fixture
def stub_vllm(monkeypatch) -> types.ModuleType:
    mod = types.ModuleType("vllm")
    mod.LLM = _LLM  # type: ignore[attr-defined]
    mod.SamplingParams = _SP  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    return mod


def test_adapter_on_stand_in_engine(stub_vllm, tmp_path: Path) -> None:
    llm = load_backend("vllm", model_path="org/some-model", dtype="bfloat16", max_model_len=512)
    assert llm.name == "vllm" and llm.model_id == "org/some-model"
    assert llm.llm.kwargs == {
        "model": "org/some-model", "dtype": "bfloat16", "seed": 0, "max_model_len": 512,
    }  # fmt: skip
    chat = [{"role": "user", "content": "Describe a nurse."}]
    params = SamplingParams(max_tokens=5, seed=3)
    outs = llm.generate([chat, "The pilot said"], params)
    for i, c in enumerate(outs):
        assert c.text.startswith(f"seed={request_seed(3, i)} top_k=-1")
        assert (c.n_tokens, c.finish_reason, c.seed) == (3, "length", 3)
    inputs, sps = llm.llm.calls[-1]
    # chat: the template's text without an extra BOS; raw text: the tokenizer's BOS added
    assert inputs[0]["prompt_token_ids"][0] != 1 and inputs[1]["prompt_token_ids"][0] == 1
    assert sps[0].max_tokens == 5 and sps[0].stop is None

    lp = llm.logprobs(["The doctor said he was late."])[0]
    assert lp.token_ids == _Tok().encode("The doctor said he was late.", add_special_tokens=False)
    assert lp.logprobs == pytest.approx([-0.1 * t for t in lp.token_ids])
    assert llm.llm.calls[-1][0][0]["prompt_token_ids"][0] == 1  # conditioned on BOS

    # the cache asks the engine only for the missing requests, at their own indices
    with CachedBackend(llm, tmp_path / "c.sqlite") as cached:
        cached.generate(["a b", "c d"], params)
        full = cached.generate(["a b", "c d", "e f g"], params)
        inputs, sps = llm.llm.calls[-1]
        assert len(inputs) == 1 and sps[0].seed == request_seed(3, 2)
        assert full[2].text.startswith(f"seed={request_seed(3, 2)}")


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_missing_vllm_says_how_to_install() -> None:
    with pytest.raises(ImportError, match=r"synthbias\[vllm\]"):
        load_backend("vllm", model_path="x")


def _gpu_vllm_missing() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'synthbias[vllm]')"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    return None


@pytest.mark.slow
@pytest.mark.skipif(_gpu_vllm_missing() is not None, reason=str(_gpu_vllm_missing()))
def test_real_engine_matches_transformers() -> None:
    from synthbias.generate.hf import converted_checkpoint
    from synthbias.generate.models import default_model_path

    ckpt = converted_checkpoint(default_model_path())
    llm = load_backend(
        "vllm", model_path=str(ckpt), dtype="float32", gpu_memory_utilization=0.3, max_model_len=512
    )
    params = SamplingParams(max_tokens=16, temperature=0.8, seed=1)
    chat = [[{"role": "user", "content": f"Describe a {o}."}] for o in ("nurse", "pilot")]
    first = [c.text for c in llm.generate(chat, params)]
    assert all(first) and first == [c.text for c in llm.generate(chat, params)]
    texts = ["The doctor said he was late.", "The nurse said she was tired."]
    got = llm.logprobs(texts)
    ref = load_backend("hf", model_path=str(ckpt)).logprobs(texts)
    for g, r in zip(got, ref, strict=True):
        assert g.token_ids == r.token_ids
        assert g.total == pytest.approx(r.total, abs=0.05)
