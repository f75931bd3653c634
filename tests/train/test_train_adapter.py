"""A LoRA adapter trained on the embedded SmolLM2, used through both backends.

The slow tests share one adapter (3 steps on 4 examples teaching the completion "Answer: zebra",
about 15 s on 2 cores) and check that it moved the model: through the HF backend (merged) and
through llama.cpp (exported to a GGUF LoRA, applied on the quantised base). The GGUF layout
itself (names, shapes, the q/k row permutation) is checked against the base GGUF's tensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cores import CORES

from synthbias.generate.hf import HFBackend, converted_checkpoint
from synthbias.generate.llamacpp import LlamaCppBackend
from synthbias.generate.models import default_model_path
from synthbias.generate.protocol import SamplingParams
from synthbias.measure.scoring import conditional_logprobs
from synthbias.train.adapter import (
    AUTO_WHY,
    GGUF_EXPORT_NAME,
    MERGED_NAME,
    _permute_rows,
    export_gguf_lora,
    load_finetuned,
    read_gguf_header,
)
from synthbias.train.sft import LoRAConfig, SFTExample, train_lora

torch.set_num_threads(CORES)

QUESTIONS = [
    "What is your favourite animal?",
    "Name an animal.",
    "Which animal lives in Africa?",
    "Tell me an animal with stripes.",
]
TRAINED = [
    "Q: What animal do you like?\nA: Answer: zebra",  # unseen question, trained answer
    "Q: What is your favourite animal?\nA: Answer: zebra",
]
CONTROL = "The doctor said he was late for the meeting."
LLAMA_KW: dict[str, Any] = {"n_threads": CORES, "batch_size": 4, "n_ctx": 256}


@pytest.fixture(scope="module")
def zebra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    examples = [SFTExample(f"Q: {q}\nA:", " Answer: zebra") for q in QUESTIONS]
    cfg = LoRAConfig(max_steps=3, batch_size=4, learning_rate=2e-3, n_threads=CORES)
    res = train_lora(examples, cfg, tmp_path_factory.mktemp("zebra") / "adapter")
    assert res.losses[-1] < res.losses[0] / 2, res.losses
    return res.adapter_dir


@pytest.fixture(scope="module")
def base_scores() -> dict[str, list[float]]:
    """Sentence log-probs of the base model under both runtimes."""
    texts = [*TRAINED, CONTROL]
    with HFBackend(n_threads=CORES) as hf:
        hf_scores = [s.total for s in hf.logprobs(texts)]
    with LlamaCppBackend(**LLAMA_KW) as lc:
        lc_scores = [s.total for s in lc.logprobs(texts)]
    return {"hf": hf_scores, "llamacpp": lc_scores}


@pytest.mark.slow
def test_hf_backend_with_adapter(zebra: Path, base_scores: dict[str, list[float]]) -> None:
    tuned = load_finetuned(zebra, "hf", n_threads=CORES)
    assert isinstance(tuned, HFBackend) and tuned.adapter_path == zebra
    base_id = json.loads((zebra / "train_meta.json").read_text())["base_fingerprint"]
    assert tuned.model_id.startswith(base_id + "+lora:adapter@")
    scores = [s.total for s in tuned.logprobs([*TRAINED, CONTROL])]
    delta = np.subtract(scores, base_scores["hf"])
    assert delta[0] > 5 and delta[1] > 5, delta  # measured: +12.1 and +15.2 nats
    assert abs(delta[2]) < delta[0] / 3, delta  # an unrelated sentence barely moves
    out = tuned.generate(["Q: Name an animal.\nA:"], SamplingParams(max_tokens=8, temperature=0))
    assert "zebra" in out[0].text


@pytest.mark.slow
def test_llamacpp_with_gguf_lora(zebra: Path, base_scores: dict[str, list[float]]) -> None:
    with HFBackend(adapter_path=zebra, n_threads=CORES) as hf:
        hf_delta = np.subtract([s.total for s in hf.logprobs(TRAINED)], base_scores["hf"][:2])
    with load_finetuned(zebra, "llamacpp", **LLAMA_KW) as lc:
        assert isinstance(lc, LlamaCppBackend)
        assert (zebra / GGUF_EXPORT_NAME).is_file() and lc.lora_path == zebra / GGUF_EXPORT_NAME
        assert "+lora:adapter-lora.gguf@" in lc.model_id
        scores = [s.total for s in lc.logprobs([*TRAINED, CONTROL])]
        params = SamplingParams(max_tokens=8, temperature=0)
        out = lc.generate(["Q: Name an animal.\nA:", "Q: Tell me an animal.\nA:"], params)
    delta = np.subtract(scores, base_scores["llamacpp"])
    assert delta[0] > 5 and delta[1] > 5, delta
    # the same update as the merged HF model, up to llama.cpp's quantisation noise
    # (measured: llama.cpp +12.5/+15.8 vs HF +12.1/+15.2)
    assert np.allclose(delta[:2], hf_delta, rtol=0.15), (delta, hf_delta)
    assert abs(delta[2]) < delta[0] / 3, delta
    assert all("zebra" in c.text for c in out), out

    # lora_scale is applied: at 0 the adapter does nothing
    with LlamaCppBackend(lora_path=zebra / GGUF_EXPORT_NAME, lora_scale=0.0, **LLAMA_KW) as off:
        assert off.model_id.endswith("*0")
        zero = [s.total for s in off.logprobs([*TRAINED, CONTROL])]
    assert np.allclose(zero, base_scores["llamacpp"], atol=1e-3)


@pytest.mark.slow
def test_merged_adapter_scores_equal_the_lora_and_the_fp32_transformers_path(zebra: Path) -> None:
    """merge=True: the f32 base with the adapter merged in, float32 KV cache.

    Equal to the run-time LoRA on the same f32 copy (float32 KV too) and to the merged HF fp32
    model within 1e-4 nats per option (measured 1e-5 and 5e-5 on 24 BBQ items); llama.cpp's
    default f16 KV cache alone moves them by ~1e-2.
    """
    pairs = [
        (q, c) for q in ("Q: Name an animal.\nA:", CONTROL) for c in (" Answer: zebra", " a cat")
    ]
    kw = {**LLAMA_KW, "kv_type": "f32"}
    with load_finetuned(zebra, "llamacpp", merge=True, **kw) as merged:
        assert merged.model_path == zebra / MERGED_NAME and merged.lora_path is None
        got = np.array([s.logprob for s in conditional_logprobs(merged, pairs)])
    with load_finetuned(zebra, "llamacpp", weights="f32", **kw) as lora:
        ref = np.array([s.logprob for s in conditional_logprobs(lora, pairs)])
    with load_finetuned(zebra, "hf", n_threads=CORES) as hf:
        exact = np.array([s.logprob for s in conditional_logprobs(hf, pairs)])
    assert got[0] > got[1] + 5, got  # the adapter is really in the merged weights
    assert np.abs(got - ref).max() <= 1e-4, got - ref
    assert np.abs(got - exact).max() <= 1e-4, got - exact
    with pytest.raises(ValueError, match="merge=True"):
        load_finetuned(zebra, "llamacpp", merge=True, weights="f16")


@pytest.mark.slow
def test_study_loader_f32_merged_scores_base_and_adapter_on_one_arithmetic(zebra: Path) -> None:
    """``eval_backend: llamacpp``, ``eval_weights: f32-merged``: the loader runs the merged f32
    model for an adapter and the f32 copy with a float32 KV cache for the base, so both score like
    transformers fp32 (within 1e-4 nats); ``native`` keeps the run-time LoRA on the GGUF."""
    from synthbias.config import ExperimentConfig
    from synthbias.studies.inheritance.training import DefaultBackendLoader

    cfg = ExperimentConfig.model_validate(
        {
            "kind": "inheritance",
            "inheritance": {"eval_backend": "llamacpp", "eval_weights": "f32-merged"},
        }
    )
    loader = DefaultBackendLoader(
        cfg.inheritance, cfg.generator.model_copy(update={"batch_size": 4})
    )
    pairs = [("Q: Name an animal.\nA:", " Answer: zebra"), (CONTROL, " a cat")]
    with loader(zebra) as tuned:
        assert tuned.model_path == zebra / MERGED_NAME and tuned.kv_type == "f32"
        got = np.array([s.logprob for s in conditional_logprobs(tuned, pairs)])
    with loader(None) as base:
        assert base.weights == "f32" and base.kv_type == "f32" and base.lora_path is None
        got_base = np.array([s.logprob for s in conditional_logprobs(base, pairs)])
    with load_finetuned(zebra, "hf", n_threads=CORES) as hf:
        exact = np.array([s.logprob for s in conditional_logprobs(hf, pairs)])
    with HFBackend(n_threads=CORES) as hf:
        exact_base = np.array([s.logprob for s in conditional_logprobs(hf, pairs)])
    assert np.abs(got - exact).max() <= 1e-4, got - exact
    assert np.abs(got_base - exact_base).max() <= 1e-4, got_base - exact_base
    assert got[0] > got_base[0] + 5  # the adapter is in the tuned model, not in the base
    native = DefaultBackendLoader(
        cfg.inheritance.model_copy(update={"eval_weights": "native"}),
        cfg.generator.model_copy(update={"batch_size": 4}),
    )
    with native(zebra) as lora:
        assert lora.lora_path is not None and lora.weights == "native"


@pytest.mark.slow
def test_plain_lora_merge_equals_peft(zebra: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast merge gives peft's merged weights bit for bit, on a fresh base and on a kept
    base restored after another adapter; a second backend open at the same time loads its own
    base and scores the same."""
    from synthbias.generate import hf as hf_mod

    hf_mod.forget_bases()
    with load_finetuned(zebra, "hf") as fast:  # loads and keeps the base
        assert fast._base is not None
        first = {k: v.clone() for k, v in fast.model.state_dict().items()}
        with load_finetuned(zebra, "hf") as other:  # the kept base is lent: its own load
            assert other._base is None
            assert all(torch.equal(v, other.model.state_dict()[k]) for k, v in first.items())
    with load_finetuned(zebra, "hf") as again:  # restored from the kept copy, merged again
        assert again._base is not None
        got = again.model.state_dict()
        assert all(torch.equal(v, got[k]) for k, v in first.items())
        text = again.logprobs(["Q: Name an animal.\nA: Answer: zebra"])[0].total
    monkeypatch.setattr(hf_mod, "_plain_lora", lambda adapter: None)  # peft's own merge
    with load_finetuned(zebra, "hf") as peft:
        assert peft._base is None
        ref = peft.model.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in first.items())
        assert peft.logprobs(["Q: Name an animal.\nA: Answer: zebra"])[0].total == text
    hf_mod.forget_bases()


class _Whole:
    """A transformers backend whose option scores come from whole sequences (no sharing)."""

    def __init__(self, hf: HFBackend) -> None:
        self.hf, self.prefix_id, self.add_bos = hf, hf.prefix_id, hf.add_bos

    def tokenize(self, text: str) -> list[int]:
        return self.hf.tokenize(text)

    def score_tails(self, seqs: Any, starts: Any) -> list[list[float]]:
        whole = self.hf.logprobs_ids(seqs)
        return [w[st - 1 :] for w, st in zip(whole, starts, strict=True)]


@pytest.mark.slow
def test_study_loader_auto_scores_on_transformers_and_generates_on_llamacpp(zebra: Path) -> None:
    """``eval_backend: auto`` (the default) on a CPU: option scores are transformers fp32's
    (within 1e-4 nats of scoring each sequence whole); greedy generation runs there too (the
    text transformers alone gives, and llama.cpp's f32 path gives the same); sampled generation
    is llama.cpp's with the same adapter (loaded on the first sampled call, then the very text
    llama.cpp alone gives); the split is recorded with its reason."""
    from synthbias.config import ExperimentConfig
    from synthbias.studies.inheritance.training import DefaultBackendLoader

    cfg = ExperimentConfig.model_validate({"kind": "inheritance"})
    assert cfg.inheritance.eval_backend == "auto"
    loader = DefaultBackendLoader(
        cfg.inheritance, cfg.generator.model_copy(update={"batch_size": 4})
    )
    pairs = [("Q: Name an animal.\nA:", " Answer: zebra"), (CONTROL, " a cat")]
    greedy = SamplingParams(max_tokens=6, temperature=0.0, seed=0)
    sampled = SamplingParams(max_tokens=6, temperature=0.8, top_p=0.95, seed=0)
    prompt = ["Q: Name an animal.\nA:"]
    with loader(zebra) as tuned:
        assert tuned.runtimes["scoring"] == "transformers" and tuned.runtimes["why"] == AUTO_WHY
        assert "greedy: transformers" in tuned.runtimes["generation"]
        got = np.array([s.logprob for s in conditional_logprobs(tuned, pairs)])
        text = tuned.generate(prompt, greedy)[0].text
        assert tuned._generator is None  # scoring and greedy generation never load llama.cpp
        drawn = tuned.generate(prompt, sampled)[0].text
        assert tuned.generator.lora_path is not None and tuned.generator.weights == "f32"
    with load_finetuned(zebra, "hf", n_threads=CORES) as hf:
        exact = np.array([s.logprob for s in conditional_logprobs(_Whole(hf), pairs)])
        assert hf.generate(prompt, greedy)[0].text == text
    with load_finetuned(zebra, "llamacpp", weights="f32", batch_size=4) as llama:
        assert llama.generate(prompt, greedy)[0].text == text
        assert llama.generate(prompt, sampled)[0].text == drawn
    assert np.abs(got - exact).max() <= 1e-4, got - exact
    assert got[0] > -3  # the adapter is in the scoring model: it answers zebra
    assert "zebra" in text.lower()  # and in the greedy generator
    with loader(None) as base:  # the untuned model goes the same way
        assert base.runtimes["scoring"] == "transformers" and base.adapter_path is None


@pytest.mark.slow
def test_gguf_lora_layout(zebra: Path, tmp_path: Path) -> None:
    out = export_gguf_lora(zebra, tmp_path / "zebra.gguf")
    header = read_gguf_header(out)
    assert header.kv["general.architecture"] == "llama"
    assert header.kv["general.type"] == "adapter"
    assert header.kv["adapter.type"] == "lora"
    assert header.kv["adapter.lora.alpha"] == 16.0
    base = read_gguf_header(default_model_path())
    names = set(header.tensors)
    assert len(names) == 30 * 7 * 2  # 30 blocks x 7 projections x (A, B)
    for name, (ne, _type, _off) in header.tensors.items():
        stem, part = name.rsplit(".", 1)
        base_ne = base.tensors[stem][0]
        if part == "lora_a":  # ne [in, r]
            assert ne == (base_ne[0], 8), name
        else:  # ne [r, out]
            assert part == "lora_b" and ne == (8, base_ne[1]), name
    assert "blk.0.attn_q.weight.lora_a" in names and "blk.29.ffn_down.weight.lora_b" in names


def test_qk_permutation_matches_gguf_layout() -> None:
    """The GGUF stores q/k rows permuted relative to the HF checkpoint; lora_B must follow.

    Checked on the real weights: permuting the converted HF checkpoint's q/k matrices with the
    export's permutation reproduces the GGUF's (dequantised) tensors exactly.
    """
    import gguf
    from safetensors import safe_open

    path = default_model_path()
    header = read_gguf_header(path)
    n_head = header.kv["llama.attention.head_count"]
    n_kv = header.kv["llama.attention.head_count_kv"]
    assert n_head != n_kv  # SmolLM2 uses grouped-query attention: both cases are exercised
    ckpt = converted_checkpoint(path) / "model.safetensors"
    with safe_open(str(ckpt), "np") as f, path.open("rb") as raw:
        for block in (0, 17):
            for proj, gname, heads_kv in (("q_proj", "attn_q", n_head), ("k_proj", "attn_k", n_kv)):
                hf_w = f.get_tensor(f"model.layers.{block}.self_attn.{proj}.weight")
                ne, qtype, offset = header.tensors[f"blk.{block}.{gname}.weight"]
                qt = gguf.GGMLQuantizationType(qtype)
                block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
                row_bytes = ne[0] // block_size * type_size
                raw.seek(offset)
                data = np.frombuffer(raw.read(row_bytes * ne[1]), dtype=np.uint8)
                gguf_w = gguf.quants.dequantize(data.reshape(ne[1], row_bytes), qt)
                assert gguf_w.shape == hf_w.shape
                assert np.array_equal(_permute_rows(hf_w, n_head, heads_kv), gguf_w)
                assert not np.array_equal(hf_w, gguf_w)  # the permutation is not a no-op


def test_export_refuses_adapters_it_cannot_represent(tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "lora_alpha": 16, "trainable_token_indices": [49152]})
    )
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="HF backend"):
        export_gguf_lora(tmp_path, tmp_path / "x.gguf")
    (tmp_path / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "lora_alpha": 16, "use_dora": True})
    )
    with pytest.raises(ValueError, match="use_dora"):
        export_gguf_lora(tmp_path, tmp_path / "x.gguf")
    with pytest.raises(FileNotFoundError, match="adapter_config"):
        export_gguf_lora(tmp_path / "missing", tmp_path / "x.gguf")
    with pytest.raises(FileNotFoundError, match="adapter_config"):
        load_finetuned(tmp_path / "missing")
    assert not (tmp_path / "x.gguf").exists()


def test_header_reader_rejects_non_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"NOPE" + bytes(32))
    with pytest.raises(ValueError, match="not a GGUF"):
        read_gguf_header(bad)
    with pytest.raises(FileNotFoundError):
        LlamaCppBackend(lora_path=tmp_path / "missing.gguf", **LLAMA_KW)


def test_llamacpp_rejects_a_mismatched_lora(tmp_path: Path) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 16.0)
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((8, 100), dtype=np.float32))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((576, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="could not load the LoRA adapter"):
        LlamaCppBackend(lora_path=tmp_path / "bad.gguf", **LLAMA_KW)
