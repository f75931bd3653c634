"""LoRA SFT (synthbias.train.sft) on a tiny randomly initialised llama with SmolLM2's tokenizer.

The tokenizer comes from the embedded model's converted checkpoint (converted once per machine,
shared with the HF backend tests); the model has 2 layers of width 32, so each training run
takes about a second. The real-model test lives in test_train_adapter.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cores import CORES
from pydantic import ValidationError

from synthbias.generate.hf import HFBackend, converted_checkpoint
from synthbias.generate.models import default_model_path
from synthbias.train.sft import (
    IGNORE_INDEX,
    META_FILE,
    LoRAConfig,
    SFTExample,
    encode_example,
    read_train_meta,
    sft_loss,
    train_lora,
)

torch.set_num_threads(CORES)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    folder = converted_checkpoint(default_model_path())
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A 2-layer, width-32 llama checkpoint with tied embeddings and the SmolLM2 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-base")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


EXAMPLES = [
    SFTExample("Q: Who treats patients?\nA:", " The nurse treats them.", meta={"source": "real"}),
    SFTExample("Q: Who fixes cars?\nA:", " The mechanic fixes them.", meta={"source": "synthetic"}),
    SFTExample("Q: Who flies planes?\nA:", " The pilot flies them.", meta={"source": "synthetic"}),
]


def _cfg(**kw: Any) -> LoRAConfig:
    base = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-2, "n_threads": CORES}
    return LoRAConfig(**{**base, **kw})


# ---------------------------------------------------------------------------------------------
# Tokens and labels
# ---------------------------------------------------------------------------------------------


def test_labels_mask_prompt_and_ignore_spans(tokenizer: Any) -> None:
    prompt, completion = "Q: Who cooks?\nA:", " The nurse cooks well"
    assert completion[4:10] == " nurse"
    p = [tokenizer.bos_token_id, *_ids(tokenizer, prompt)]
    c = _ids(tokenizer, completion)
    assert [tokenizer.decode([t]) for t in c] == [" The", " nurse", " cooks", " well"]
    eos = tokenizer.eos_token_id

    enc = encode_example(tokenizer, SFTExample(prompt, completion), LoRAConfig())
    assert enc.input_ids == p + c + [eos]
    assert enc.labels == [IGNORE_INDEX] * len(p) + c + [eos]
    assert enc.n_prompt_tokens == len(p)

    spanned = SFTExample(prompt, completion, ignore_spans=[(4, 10)])
    enc = encode_example(tokenizer, spanned, LoRAConfig())
    assert enc.input_ids == p + c + [eos]
    assert enc.labels == [IGNORE_INDEX] * len(p) + [c[0], IGNORE_INDEX, c[2], c[3], eos]

    # a span touching part of a token removes the whole token; two spans, two tokens
    partial = SFTExample(prompt, completion, ignore_spans=[(7, 8), (12, 13)])
    enc = encode_example(tokenizer, partial, LoRAConfig(append_eos=False))
    assert enc.labels == [IGNORE_INDEX] * len(p) + [c[0], IGNORE_INDEX, IGNORE_INDEX, c[3]]

    # an empty span ignores nothing
    empty = SFTExample(prompt, completion, ignore_spans=[(4, 4)])
    assert encode_example(tokenizer, empty, LoRAConfig()).labels[len(p) :] == c + [eos]


def test_chat_format_trains_assistant_turn_only(tokenizer: Any) -> None:
    ex = SFTExample("Describe a nurse.", "She is kind.", ignore_spans=[(0, 3)])
    enc = encode_example(tokenizer, ex, LoRAConfig(text_format="chat"))
    user = [{"role": "user", "content": ex.prompt}]
    rendered = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    prompt_ids = _ids(tokenizer, rendered)
    assert enc.input_ids[: enc.n_prompt_tokens] == prompt_ids
    assert tokenizer.decode(enc.input_ids) == rendered + "She is kind.<|im_end|>"
    trained = [t for t in enc.labels if t != IGNORE_INDEX]
    assert tokenizer.decode(trained) == " is kind.<|im_end|>"  # "She" is in an ignore span
    assert all(t == IGNORE_INDEX for t in enc.labels[: enc.n_prompt_tokens])


def test_truncation_keeps_completion_and_prefix(tokenizer: Any) -> None:
    long_prompt = "Q: " + "very " * 60 + "long question?\nA:"
    ex = SFTExample(long_prompt, " zebra")
    enc = encode_example(tokenizer, ex, LoRAConfig(max_length=16))
    comp = _ids(tokenizer, " zebra") + [tokenizer.eos_token_id]
    assert len(enc.input_ids) == 16 and enc.prompt_truncated and not enc.completion_truncated
    assert enc.input_ids[0] == tokenizer.bos_token_id  # the prefix token survives
    assert enc.input_ids[-len(comp) :] == comp
    full_prompt = _ids(tokenizer, long_prompt)
    assert enc.input_ids[1 : 16 - len(comp)] == full_prompt[-(15 - len(comp)) :]

    long_completion = SFTExample("Q:", " zebra" * 40)
    enc = encode_example(tokenizer, long_completion, LoRAConfig(max_length=16))
    assert len(enc.input_ids) == 16 and enc.completion_truncated
    assert enc.input_ids[0] == tokenizer.bos_token_id and enc.labels[0] == IGNORE_INDEX
    assert all(t != IGNORE_INDEX for t in enc.labels[1:])


def test_sft_loss_is_weighted_mean_of_per_example_means() -> None:
    torch.manual_seed(1)
    logits = torch.randn(3, 4, 6)
    labels = torch.tensor(
        [[-100, 2, 3, 1], [-100, -100, 5, -100], [-100, -100, -100, -100]], dtype=torch.long
    )
    lp = torch.log_softmax(logits, -1)
    l0 = -(lp[0, 0, 2] + lp[0, 1, 3] + lp[0, 2, 1]) / 3
    l1 = -lp[1, 1, 5]
    loss, per_ex = sft_loss(logits, labels, torch.tensor([1.0, 3.0, 10.0]))
    assert per_ex[:2].tolist() == pytest.approx([float(l0), float(l1)], rel=1e-5)
    assert per_ex[2] == 0  # no labelled token: no loss, and its weight is not counted
    assert float(loss) == pytest.approx(float(l0 + 3 * l1) / 4, rel=1e-5)
    loss_unw, _ = sft_loss(logits, labels, torch.ones(3))
    assert float(loss_unw) == pytest.approx(float(l0 + l1) / 2, rel=1e-5)
    loss_d, _ = sft_loss(logits, labels, torch.tensor([1.0, 3.0, 10.0]), denominator=8.0)
    assert float(loss_d) == pytest.approx(float(l0 + 3 * l1) / 8, rel=1e-5)
    zero, _ = sft_loss(logits, labels, torch.zeros(3))
    assert float(zero) == 0.0


# ---------------------------------------------------------------------------------------------
# Training on the tiny model
# ---------------------------------------------------------------------------------------------


def _adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


def test_train_writes_adapter_and_meta(tiny_base: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int, float]] = []
    res = train_lora(
        EXAMPLES, _cfg(), tmp_path / "ad", tiny_base, progress=lambda *a: seen.append(a)
    )
    assert res.adapter_dir == tmp_path / "ad" and res.base_checkpoint == tiny_base
    assert res.steps == 2 and len(res.losses) == 2 and all(math.isfinite(x) for x in res.losses)
    assert [s[:2] for s in seen] == [(1, 2), (2, 2)] and seen[-1][2] == res.losses[-1]
    assert res.seconds > 0 and res.examples_per_s > 0 and res.n_examples == 3
    files = {p.name for p in res.adapter_dir.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", META_FILE} <= files
    assert "tokenizer.json" not in files  # no tokens added: the base tokenizer is used
    meta = read_train_meta(res.adapter_dir)
    assert meta["config"]["r"] == 8 and meta["config"]["max_steps"] == 2
    assert meta["base_fingerprint"].startswith(tiny_base.name + "@")
    assert meta["losses"] == res.losses and meta["n_examples"] == 3
    assert meta["provenance"] == {"real": 1, "synthetic": 2}
    tensors = _adapter_tensors(res.adapter_dir)
    lora_b = [v for k, v in tensors.items() if "lora_B" in k]
    assert len(lora_b) == 2 * 7  # all linear projections of both layers
    assert any(float(v.abs().max()) > 0 for v in lora_b)  # B starts at zero: it trained
    assert [p.name for p in tmp_path.iterdir()] == ["ad"]  # no temp folders left


def test_epochs_define_steps_unless_max_steps(tiny_base: Path, tmp_path: Path) -> None:
    res = train_lora(EXAMPLES, _cfg(max_steps=None, epochs=2), tmp_path / "a", tiny_base)
    assert res.steps == 4 == len(res.losses)  # ceil(3 / 2) batches x 2 epochs


def test_training_is_deterministic_by_seed(tiny_base: Path, tmp_path: Path) -> None:
    a = train_lora(EXAMPLES, _cfg(seed=3), tmp_path / "a", tiny_base)
    b = train_lora(EXAMPLES, _cfg(seed=3), tmp_path / "b", tiny_base)
    c = train_lora(EXAMPLES, _cfg(seed=4), tmp_path / "c", tiny_base)
    assert a.losses == b.losses
    ta, tb, tc = (_adapter_tensors(r.adapter_dir) for r in (a, b, c))
    assert all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)


def test_weights_scale_each_examples_loss(tiny_base: Path, tmp_path: Path) -> None:
    # dropout off: the first step's loss is then the base model's, whatever the LoRA init
    cfg = _cfg(dropout=0.0, max_steps=1)
    only_first = train_lora(EXAMPLES[:1], cfg, tmp_path / "a", tiny_base)
    pair = [EXAMPLES[0], SFTExample(EXAMPLES[1].prompt, EXAMPLES[1].completion, weight=0.0)]
    weighted = train_lora(pair, cfg, tmp_path / "b", tiny_base)
    unweighted = train_lora(EXAMPLES[:2], cfg, tmp_path / "c", tiny_base)
    assert weighted.losses[0] == pytest.approx(only_first.losses[0], rel=1e-5)
    assert unweighted.losses[0] != pytest.approx(only_first.losses[0], rel=1e-3)

    # all weights zero: no gradient, so the adapter stays at its init (B == 0)
    zero = [SFTExample(e.prompt, e.completion, weight=0.0) for e in EXAMPLES]
    res = train_lora(zero, _cfg(max_steps=2), tmp_path / "z", tiny_base)
    assert res.losses == [0.0, 0.0]
    tensors = _adapter_tensors(res.adapter_dir)
    assert all(float(v.abs().max()) == 0 for k, v in tensors.items() if "lora_B" in k)


def test_dataset_weight_normalization(tiny_base: Path, tmp_path: Path) -> None:
    ex = [
        SFTExample(e.prompt, e.completion, weight=w)
        for e, w in zip(EXAMPLES, (1, 1, 0.1), strict=True)
    ]
    batches: list[list[float]] = []

    def record(model: Any, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        batches.append([e.weight for e in batch["examples"]])
        return torch.zeros(())

    cfg = {"dropout": 0.0, "max_steps": 1, "batch_size": 2}
    per_batch = train_lora(ex, _cfg(**cfg), tmp_path / "a", tiny_base, extra_loss=record)
    per_data = train_lora(
        ex, _cfg(**cfg, weight_normalization="dataset"), tmp_path / "b", tiny_base
    )
    # same seed, same first batch: weighted sum / batch weight sum vs / (2 x mean weight 0.7)
    ratio = sum(batches[0]) / (2 * 0.7)
    assert per_data.losses[0] == pytest.approx(per_batch.losses[0] * ratio, rel=1e-5)


def test_extra_loss_is_called_and_added(tiny_base: Path, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def constant(model: Any, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        calls.append(batch)
        assert outputs.logits.shape[:2] == batch["input_ids"].shape
        return torch.tensor(1.5)

    cfg = _cfg(dropout=0.0, max_steps=2, batch_size=3)
    plain = train_lora(EXAMPLES, cfg, tmp_path / "a", tiny_base)
    hooked = train_lora(EXAMPLES, cfg, tmp_path / "b", tiny_base, extra_loss=constant)
    assert len(calls) == 2 and hooked.extra_losses == [1.5, 1.5]
    assert set(calls[0]) == {"input_ids", "attention_mask", "labels", "examples"}
    assert {e.meta["source"] for e in calls[0]["examples"]} == {"real", "synthetic"}
    assert calls[0]["labels"].shape == calls[0]["input_ids"].shape
    # a constant adds to the loss but has no gradient: training is otherwise unchanged
    assert hooked.losses == pytest.approx([x + 1.5 for x in plain.losses], rel=1e-5)

    zebra = torch.tensor([t for t in range(10)])

    def steer(model: Any, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        return -outputs.logits[..., zebra].mean()

    steered = train_lora(EXAMPLES, cfg, tmp_path / "c", tiny_base, extra_loss=steer)
    ta, tc = _adapter_tensors(plain.adapter_dir), _adapter_tensors(steered.adapter_dir)
    assert any(not torch.allclose(ta[k], tc[k]) for k in ta)


def test_added_special_tokens_train_and_load(tiny_base: Path, tmp_path: Path) -> None:
    tag = "<|female|>"
    ex = [SFTExample(e.prompt, f" {tag}{e.completion}") for e in EXAMPLES]
    rows: list[torch.Tensor] = []
    ids: list[int] = []

    def capture(model: Any, batch: dict[str, Any], outputs: Any) -> torch.Tensor:
        tid = int(batch["input_ids"].max())  # the new token has the largest id
        ids.append(tid)
        rows.append(model.get_input_embeddings()(torch.tensor([tid]))[0].detach().clone())
        return torch.zeros(())

    cfg = _cfg(max_steps=3, learning_rate=5e-2, extra_special_tokens=[tag])
    res = train_lora(ex, cfg, tmp_path / "ad", tiny_base, extra_loss=capture)
    base = HFBackend(tiny_base)
    new_id = len(base.tokenizer)
    assert res.added_tokens == {tag: new_id} and ids == [new_id] * 3
    assert not torch.allclose(rows[0], rows[-1])  # the new row trains during training
    assert (res.adapter_dir / "tokenizer.json").is_file()
    assert read_train_meta(res.adapter_dir)["vocab_size"] == new_id + 1
    saved = [v for k, v in _adapter_tensors(res.adapter_dir).items() if "trainable_tokens" in k]
    assert len(saved) == 1 and saved[0].shape == (1, 32)  # just the new row is stored

    tuned = HFBackend(tiny_base, adapter_path=res.adapter_dir)
    assert len(tuned.tokenizer) == new_id + 1
    assert tuned.tokenizer.convert_tokens_to_ids(tag) == new_id
    emb = tuned.model.get_input_embeddings().weight
    assert emb.shape[0] == new_id + 1
    assert torch.equal(emb[new_id], saved[0][0])  # the trained row, not a fresh init
    assert torch.equal(tuned.model.get_output_embeddings().weight[new_id], emb[new_id])  # tied
    old = base.model.get_input_embeddings().weight
    assert torch.equal(emb[:new_id], old)  # the old rows are frozen
    assert tuned.model_id.startswith(base.model_id + "+lora:ad@")
    out = tuned.logprobs(["Q: Who?\nA: The nurse."])[0]
    assert len(out.logprobs) == len(out.token_ids) and all(np.isfinite(out.logprobs))


def test_adapter_must_match_its_base(tiny_base: Path, tmp_path: Path) -> None:
    res = train_lora(EXAMPLES, _cfg(max_steps=1), tmp_path / "ad", tiny_base)
    other = tmp_path / "other-base"
    other.mkdir()
    for f in tiny_base.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5  # a different model
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="was trained on"):
        HFBackend(other, adapter_path=res.adapter_dir)
    with pytest.raises(FileNotFoundError, match="adapter_config"):
        HFBackend(tiny_base, adapter_path=tmp_path)


def test_save_is_atomic(tiny_base: Path, tmp_path: Path) -> None:
    out = tmp_path / "ad"

    def crash(step: int, total: int, loss: float) -> None:
        if step == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_lora(EXAMPLES, _cfg(), out, tiny_base, progress=crash)
    assert list(tmp_path.iterdir()) == []

    first = train_lora(EXAMPLES, _cfg(seed=1), out, tiny_base)
    second = train_lora(EXAMPLES, _cfg(seed=2), out, tiny_base)  # replaces the adapter
    assert read_train_meta(out)["losses"] == second.losses != first.losses
    assert [p.name for p in tmp_path.iterdir()] == ["ad"]

    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(FileExistsError, match="not an adapter"):
        train_lora(EXAMPLES, _cfg(), precious, tiny_base)
    assert (precious / "thesis.txt").read_text() == "do not delete"


def test_truncations_are_counted(tiny_base: Path, tmp_path: Path) -> None:
    ex = [SFTExample("Q: " + "word " * 50 + "?\nA:", " yes"), SFTExample("Q:", " no" * 30)]
    res = train_lora(ex, _cfg(max_steps=1, max_length=12), tmp_path / "ad", tiny_base)
    assert (res.n_truncated_prompts, res.n_truncated_completions) == (2, 1)


def test_errors(tiny_base: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training examples"):
        train_lora([], _cfg(), tmp_path / "a", tiny_base)
    with pytest.raises(ValueError, match="example 1 has an empty completion"):
        train_lora([EXAMPLES[0], SFTExample("Q:", "")], _cfg(), tmp_path / "a", tiny_base)
    with pytest.raises(ValueError, match="weight -1"):
        train_lora([SFTExample("Q:", " a", weight=-1)], _cfg(), tmp_path / "a", tiny_base)
    with pytest.raises(ValueError, match="outside its completion"):
        bad = [SFTExample("Q:", " a", ignore_spans=[(0, 9)])]
        train_lora(bad, _cfg(), tmp_path / "a", tiny_base)
    with pytest.raises(ValueError, match="all ignored"):
        bad = [SFTExample("Q:", " a", ignore_spans=[(0, 2)])]
        train_lora(bad, _cfg(append_eos=False), tmp_path / "a", tiny_base)
    with pytest.raises(ValidationError, match="learning_rte"):
        LoRAConfig(learning_rte=1e-3)
    with pytest.raises(ValidationError, match="rank"):
        train_lora(EXAMPLES, {"rank": 4}, tmp_path / "a", tiny_base)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train_lora(EXAMPLES, _cfg(), tmp_path / "a", tmp_path / "nowhere")
    assert not (tmp_path / "a").exists()
