"""Conformance: BBQ and CrowS-Pairs scores equal lm-evaluation-harness's recipe item by item.

The reference below is written from the harness's source (``lm_eval/api/model.py``
``loglikelihood`` and ``_encode_pair``, ``lm_eval/models/huggingface.py`` ``tok_encode`` and
``_loglikelihood_tokens``), not imported from it, and runs the same weights in plain
transformers:

- a non-empty context's trailing whitespace moves to the continuation; context and
  context + continuation are encoded with the tokenizer's own special-token behaviour (SmolLM2
  adds no BOS); the continuation's tokens are ``whole[len(context_tokens):]``;
- an empty context is replaced by the prefix token (BOS, else EOS) and the continuation is
  encoded without special tokens;
- the model sees ``(context + continuation)[:-1]``, right-padded in length-sorted batches of 32
  with no attention mask (causal attention keeps padding out of earlier positions); the score is
  the sum of the continuation tokens' log-softmax over the full vocabulary, in float32.

Each check compares synthbias's default path (:func:`conditional_logprobs` on the transformers
backend) with it: every option's score within 1e-4 nats and no flipped decision. The fast tests
use 20 BBQ items per category (3 categories) and 20 CrowS-Pairs pairs; the ``slow`` one uses
``SYNTHBIAS_CONFORMANCE_N`` items per category (set it to run the table, e.g. 1,000) and
``SYNTHBIAS_CONFORMANCE_CROWS`` pairs (default all) and prints the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from synthbias.measure import qa
from synthbias.measure.likelihood import (
    crows_pairs_subset,
    load_crows_pairs,
    load_stereoset,
    stereoset_counts,
)
from synthbias.measure.qa import bbq, bbq_pairs, bbq_sample
from synthbias.measure.scoring import conditional_logprobs, stratified_sample, sum_logprob

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

CATEGORIES = ("Gender_identity", "Religion", "Race_ethnicity")
TOL = 1e-4


@pytest.fixture(scope="module")
def hf_backend():
    from synthbias.generate.hf import HFBackend

    backend = HFBackend(batch_size=32)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def reference(hf_backend):
    """The same checkpoint folder, loaded by plain transformers (float32, CPU)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(hf_backend.checkpoint_dir)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, local_files_only=True
    ).eval()
    return tok, model


def harness_encode(tok: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) as the harness's ``loglikelihood`` makes them."""
    prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if context == "":
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        return ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok(context + continuation)["input_ids"]
    ctx = tok(context)["input_ids"]
    return ctx, whole[len(ctx) :]


def harness_loglikelihood(
    reference: tuple[Any, Any],
    requests: Sequence[tuple[str, str]],
    batch_size: int = 32,
    sum64: bool = False,
) -> list[float]:
    """Summed continuation log-prob of each ``(context, continuation)``, harness recipe.

    The harness sums the float32 token log-probs in float32; ``sum64`` sums the same values in
    float64 (synthbias's arithmetic), which isolates the sum's own rounding: on a long sentence
    (totals of -100 to -300 nats, where a float32 ulp is 8e-6 to 3e-5) it alone reaches ~2e-4.
    """
    tok, model = reference
    enc = [harness_encode(tok, c, x) for c, x in requests]
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i][0]) - len(enc[i][1]))
    out = [0.0] * len(enc)
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            inps = [(enc[i][0] + enc[i][1])[:-1] for i in idx]
            width = max(len(x) for x in inps)
            batch = torch.zeros((len(idx), width), dtype=torch.long)
            for r, x in enumerate(inps):
                batch[r, : len(x)] = torch.tensor(x)
            logp = torch.log_softmax(model(batch).logits.float(), dim=-1)
            for r, i in enumerate(idx):
                cont = enc[i][1]
                end = len(inps[r])
                rows = logp[r, end - len(cont) : end]
                picked = rows.gather(-1, torch.tensor(cont)[:, None])
                out[i] = float(picked.double().sum() if sum64 else picked.sum())
    return out


def bbq_table(items: Any, ours: np.ndarray, ref: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per category: items, max |Δ| over options, flipped answers (ours vs reference)."""
    cats = items["category"].to_numpy()
    table = {}
    for cat in dict.fromkeys(cats):
        m = cats == cat
        table[cat] = {
            "items": int(m.sum()),
            "max_abs_diff": float(np.abs(ours[m] - ref[m]).max()),
            "flips": int((ours[m].argmax(1) != ref[m].argmax(1)).sum()),
        }
    return table


def compare_bbq(
    backend: Any,
    reference: Any,
    benchmarks: Path,
    per_category: int,
    categories: Sequence[str] = CATEGORIES,
) -> dict:
    df = bbq_sample(benchmarks, categories, per_category * len(categories), seed=0)
    pairs = bbq_pairs(df)
    ours = np.array([s.logprob for s in conditional_logprobs(backend, pairs)]).reshape(-1, 3)
    ref = np.array(harness_loglikelihood(reference, pairs)).reshape(-1, 3)
    return {"table": bbq_table(df, ours, ref), "ours": ours, "ref": ref, "items": df}


def compare_crows(backend: Any, reference: Any, benchmarks: Path, limit: int | None) -> dict:
    df = crows_pairs_subset(load_crows_pairs(benchmarks), limit, seed=0)
    texts = df["sent_more"].tolist() + df["sent_less"].tolist()
    ours = np.array(sum_logprob(backend, texts))
    requests = [("", t) for t in texts]
    ref = np.array(harness_loglikelihood(reference, requests))
    ref64 = np.array(harness_loglikelihood(reference, requests, sum64=True))
    n = len(df)
    return {
        "pairs": n,
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "max_abs_diff_f64_sum": float(np.abs(ours - ref64).max()),
        "f32_sum_rounding": float(np.abs(ref - ref64).max()),
        "flips": int(((ours[:n] > ours[n:]) != (ref[:n] > ref[n:])).sum()),
        "pct_ours": float(100 * (ours[:n] > ours[n:]).mean()),
        "pct_ref": float(100 * (ref[:n] > ref[n:]).mean()),
    }


def stereoset_paper_scores(reference: tuple[Any, Any], sentences: Sequence[str]) -> list[float]:
    """Mean token log-prob of each sentence, StereoSet's own generative-model code.

    ``eval_generative_models.py`` (intrasentence): the first token's probability from the
    model run on the start token alone, every later token's from the bare sentence (no start
    token in its context); the score is the mean over all tokens (log base 2 there, nats here:
    the same ranking).
    """
    tok, model = reference
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    ids = [tok(x, add_special_tokens=False)["input_ids"] for x in sentences]
    out = [0.0] * len(ids)
    with torch.inference_mode():
        first = torch.log_softmax(model(torch.tensor([[start]])).logits[0, -1].float(), dim=-1)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for b in range(0, len(order), 32):
            idx = order[b : b + 32]
            width = max(len(ids[i]) for i in idx)
            batch = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                batch[r, : len(ids[i])] = torch.tensor(ids[i])
            logp = torch.log_softmax(model(batch).logits.float(), dim=-1)
            for r, i in enumerate(idx):
                x = ids[i]
                rest = logp[r, : len(x) - 1].gather(-1, torch.tensor(x[1:])[:, None])
                out[i] = (float(first[x[0]]) + float(rest.sum())) / len(x)
    return out


def compare_stereoset(backend: Any, reference: Any, benchmarks: Path, limit: int) -> dict:
    """Intrasentence clusters: our default scores beside the StereoSet paper's code."""
    full = load_stereoset(benchmarks, ("intrasentence",))
    idx = stratified_sample((full["split"] + "/" + full["bias_type"]).tolist(), limit, seed=0)
    df = full.iloc[idx].reset_index(drop=True)
    texts = [r[k] for _, r in df.iterrows() for k in ("stereotype", "anti-stereotype", "unrelated")]
    scored = conditional_logprobs(backend, [("", t) for t in texts], prefix_token="always")
    ours = np.array([x.normalized("token") for x in scored]).reshape(-1, 3)
    ref = np.array(stereoset_paper_scores(reference, texts)).reshape(-1, 3)
    pro_o, rel_o = stereoset_counts(ours[:, 0], ours[:, 1], ours[:, 2])
    pro_r, rel_r = stereoset_counts(ref[:, 0], ref[:, 1], ref[:, 2])
    return {
        "items": len(df),
        "max_abs_diff": float(np.abs(ours - ref).max()),
        "flips": int((pro_o != pro_r).sum()),
        "related_flips": int((rel_o != rel_r).sum()),
        "ss_ours": float(100 * np.mean(pro_o)),
        "ss_ref": float(100 * np.mean(pro_r)),
    }


def test_harness_encoding_moves_whitespace_and_uses_prefix_for_empty_context(reference) -> None:
    tok, _ = reference
    ctx, cont = harness_encode(tok, "Q: who?\nA: ", "Bob")
    assert tok.decode(ctx) == "Q: who?\nA:" and tok.decode(cont) == " Bob"
    ctx, cont = harness_encode(tok, "", "A sentence.")
    assert ctx == [tok.bos_token_id] and tok.decode(cont) == "A sentence."
    assert not tok("x")["input_ids"][0] == tok.bos_token_id  # SmolLM2 adds no BOS itself


def test_bbq_matches_harness_recipe(
    hf_backend, reference, benchmarks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bbq() itself (its scores captured on the way) against the reference, 20 per category."""
    captured = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        captured.append(conditional_logprobs(*args, **kwargs))
        return captured[-1]

    monkeypatch.setattr(qa, "conditional_logprobs", spy)
    got = bbq(hf_backend, benchmarks, categories=CATEGORIES, limit=60, n_resamples=10)
    df = bbq_sample(benchmarks, CATEGORIES, 60, seed=0)
    ours = np.array([s.logprob for s in captured[0]]).reshape(-1, 3)
    ref = np.array(harness_loglikelihood(reference, bbq_pairs(df))).reshape(-1, 3)
    for cat, row in bbq_table(df, ours, ref).items():
        assert row["items"] == 20, (cat, row)
        assert row["max_abs_diff"] <= TOL and row["flips"] == 0, (cat, row)
    pred = ref.argmax(1)
    assert got["bbq.s_dis"].meta["prefix_token"] == "harness"
    ambig = (df["context_condition"] == "ambig").to_numpy()
    correct = (pred == df["label"].to_numpy()).astype(float)
    assert got["bbq.acc_ambig"].per_sample == correct[ambig].tolist()
    assert got["bbq.acc_disambig"].per_sample == correct[~ambig].tolist()


def test_bbq_old_rule_differs_from_harness(hf_backend, benchmarks: Path) -> None:
    """The ``always`` rule stays available and really scores other sequences."""
    pairs = bbq_pairs(bbq_sample(benchmarks, CATEGORIES[:1], 4, seed=0))
    new = [s.logprob for s in conditional_logprobs(hf_backend, pairs)]
    old = [s.logprob for s in conditional_logprobs(hf_backend, pairs, prefix_token="always")]
    assert max(abs(a - b) for a, b in zip(new, old, strict=True)) > 1e-2


def test_stereoset_intrasentence_beside_its_paper_code(hf_backend, reference, benchmarks) -> None:
    """Our intrasentence scores keep the prefix token in context; the paper's code does not.

    The row is real (scores close, decisions mostly shared) and the recipes really differ.
    """
    row = compare_stereoset(hf_backend, reference, benchmarks, 30)
    assert row["items"] == 30
    assert 1e-4 < row["max_abs_diff"] < 2.0, row
    assert row["flips"] <= 10, row


def test_crows_pairs_matches_harness_recipe(hf_backend, reference, benchmarks: Path) -> None:
    row = compare_crows(hf_backend, reference, benchmarks, limit=20)
    assert row["pairs"] == 20
    assert crows_conforms(row), row


def crows_conforms(row: dict[str, Any]) -> bool:
    """0 flips, and the same token log-probs: within TOL of the reference summed in float64,
    and of the harness's float32 sum up to that sum's own rounding."""
    return (
        row["flips"] == 0
        and row["max_abs_diff_f64_sum"] <= TOL
        and row["max_abs_diff"] <= TOL + row["f32_sum_rounding"]
    )


@pytest.mark.slow
@pytest.mark.skipif(
    "SYNTHBIAS_CONFORMANCE_N" not in os.environ,
    reason="the full table (about an hour on 2 cores) runs on request: "
    "SYNTHBIAS_CONFORMANCE_N=1000 pytest tests/measure/test_conformance.py -k table -s",
)
def test_conformance_table(hf_backend, reference, benchmarks: Path) -> None:
    """The README's table: BBQ × 3 categories at ``SYNTHBIAS_CONFORMANCE_N`` items, CrowS-Pairs.

    One BBQ category at a time, then StereoSet, then CrowS-Pairs; with
    ``SYNTHBIAS_CONFORMANCE_OUT`` set the table so far is written there (JSON, and the markdown
    beside it) after each row, so a long run keeps what it has measured.
    """
    n = int(os.environ["SYNTHBIAS_CONFORMANCE_N"])
    n_crows = os.environ.get("SYNTHBIAS_CONFORMANCE_CROWS")  # pairs; default all 1,508
    out = os.environ.get("SYNTHBIAS_CONFORMANCE_OUT")
    rows: list[dict[str, Any]] = []
    for cat in CATEGORIES:
        row = compare_bbq(hf_backend, reference, benchmarks, n, categories=(cat,))["table"][cat]
        rows.append({"benchmark": f"BBQ {cat}", **row})
        _write_table(out, rows)
    n_ss = int(os.environ.get("SYNTHBIAS_CONFORMANCE_STEREOSET", "300"))
    ss = compare_stereoset(hf_backend, reference, benchmarks, n_ss)
    rows.append({"benchmark": "StereoSet intrasentence vs its paper's code", **ss})
    _write_table(out, rows)
    crows = compare_crows(hf_backend, reference, benchmarks, int(n_crows) if n_crows else None)
    rows.append({"benchmark": "CrowS-Pairs", "items": crows["pairs"], **crows})
    _write_table(out, rows)
    print("\n" + table_markdown(rows))
    for row in rows:
        if row["benchmark"].startswith("StereoSet"):
            continue  # a documented difference of recipe, measured, not a conformance claim
        if row["benchmark"] == "CrowS-Pairs":
            assert crows_conforms(row), row
            continue
        assert row["max_abs_diff"] <= TOL and row["flips"] == 0, row


def table_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The conformance rows as a markdown table (denominators: items or pairs, options)."""
    lines = [
        "| benchmark | items | max abs diff (nats) | decision flips |",
        "|---|---|---|---|",
    ]
    for row in rows:
        extra = ""
        if "pct_ours" in row:
            extra = f" (% stereotype: ours {row['pct_ours']:.2f}, harness {row['pct_ref']:.2f})"
            if "max_abs_diff_f64_sum" in row:
                extra += (
                    f"; vs the same log-probs summed in float64 {row['max_abs_diff_f64_sum']:.2e}"
                    f" (the harness's float32 sum alone moves totals by up to "
                    f"{row['f32_sum_rounding']:.2e})"
                )
        if "ss_ours" in row:
            extra = (
                f" SS (pro decisions), {row['related_flips']} LMS (related counts); SS ours "
                f"{row['ss_ours']:.2f}, paper's code {row['ss_ref']:.2f}; nats per token"
            )
        lines.append(
            f"| {row['benchmark']} | {row['items']} | {row['max_abs_diff']:.2e} | "
            f"{row['flips']}{extra} |"
        )
    return "\n".join(lines)


def _write_table(out: str | None, rows: Sequence[dict[str, Any]]) -> None:
    if not out:
        return
    Path(out).write_text(json.dumps({"tolerance_nats": TOL, "rows": list(rows)}, indent=2))
    Path(out).with_suffix(".md").write_text(table_markdown(rows) + "\n")
