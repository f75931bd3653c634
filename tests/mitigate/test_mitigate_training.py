"""Training-time and generator mitigations on the real embedded model (a few LoRA steps each)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from synthbias.core.records import Record
from synthbias.generate.protocol import SamplingParams
from synthbias.train.sft import LoRAConfig, SFTExample, train_lora

pytestmark = pytest.mark.slow

LORA = {"max_steps": 2, "batch_size": 4, "max_length": 48, "learning_rate": 2e-3}


def _examples() -> list[SFTExample]:
    texts = ["She works as a nurse.", "He works as a pilot.", "Women are bad at math."] * 2
    return [
        SFTExample(
            "Write one sentence about a person.\n",
            t,
            meta={"source": "augmented" if i % 2 else "real", "bias_type": "gender"},
        )
        for i, t in enumerate(texts)
    ]


def test_token_tags_train_and_run_tagged(tmp_path: Path) -> None:
    from synthbias.mitigate.token import DEFAULT_TAGS, TaggedBackend, tag_examples, tag_tokens
    from synthbias.train.adapter import load_finetuned

    cfg = LoRAConfig(**LORA, extra_special_tokens=tag_tokens())
    res = train_lora(tag_examples(_examples()), cfg, tmp_path / "tok")
    assert set(res.added_tokens) == set(tag_tokens())
    model = load_finetuned(tmp_path / "tok", "hf")
    try:
        be = TaggedBackend(model, DEFAULT_TAGS["real"])
        assert len(model.tokenize(DEFAULT_TAGS["real"])) == 1  # one new token, not pieces
        (lp,) = be.logprobs(["She works as a nurse."])
        assert all(math.isfinite(v) for v in lp.logprobs)
        (out,) = be.generate(["Write one sentence about a person.\n"], SamplingParams(max_tokens=8))
        assert out.n_tokens >= 1
    finally:
        model.close()


def test_consistency_loss_is_added(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from synthbias.mitigate.loss import ConsistencyLoss, attach_twins
    from synthbias.train.sft import resolve_base

    cfg = LoRAConfig(**LORA)
    _, checkpoint, _ = resolve_base(None)
    tok = AutoTokenizer.from_pretrained(str(checkpoint), local_files_only=True)
    res = train_lora(
        attach_twins(_examples()), cfg, tmp_path / "cons", extra_loss=ConsistencyLoss(tok, cfg, 1.0)
    )
    assert len(res.extra_losses) == res.steps == 2
    assert all(math.isfinite(v) and v >= 0 for v in res.extra_losses)
    assert any(v > 0 for v in res.extra_losses)  # twins are not equally likely to begin with


def test_debiased_generator_finetune_generates(tmp_path: Path) -> None:
    from synthbias.generate import load_backend
    from synthbias.mitigate.debiased import debiased_corpus, finetune_generator

    texts = ["The nurse said she was tired."] * 6 + ["The engineer said he was late."] * 2
    recs = [Record(id=f"r{i}", text=t) for i, t in enumerate(texts)]
    balanced = debiased_corpus(recs)
    assert sum("he was" in r.text and "she" not in r.text for r in balanced) > 2
    gguf = finetune_generator(balanced, tmp_path / "gen", LORA)
    assert gguf.is_file()
    be = load_backend("llamacpp", n_ctx=512, batch_size=2, lora_path=gguf)
    try:
        outs = be.generate(["1. The cook said she was busy.\n2."], SamplingParams(max_tokens=12))
        assert outs[0].n_tokens >= 1
    finally:
        be.close()
