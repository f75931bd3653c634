"""Likelihood benchmarks: scoring helpers, CrowS-Pairs and StereoSet.

Fast tests use a word-table stub backend on tiny files written in the real formats, so every
formula is checked against numbers computed by hand. Tests marked ``slow`` run the embedded
SmolLM2 model on the real data in ``../shared/benchmarks`` (skipped when it is absent, an error
under CI), including the CrowS-Pairs check that our score equals an independent reference
computation on the same runtime.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from synthbias.generate.protocol import TextLogprobs
from synthbias.measure.likelihood import (
    CROWS_BIAS_TYPES,
    crows_pairs,
    crows_pairs_subset,
    icat,
    load_crows_pairs,
    resolve_data_file,
    score_benchmark,
    stereoset,
    stereoset_counts,
    stereoset_scores,
)
from synthbias.measure.result import MetricResult
from synthbias.measure.scoring import (
    ContinuationScore,
    conditional_logprobs,
    score_texts,
    split_whitespace,
    stratified_sample,
)

# ---------------------------------------------------------------------------------------------
# A stub backend: whitespace tokens, each scored from a word table (default -1)
# ---------------------------------------------------------------------------------------------


class WordBackend:
    """Deterministic backend whose log-prob of a word does not depend on its context."""

    name = "stub"
    model_id = "word-table"

    def __init__(self, table: dict[str, float] | None = None, default: float = -1.0) -> None:
        self.table = table or {}
        self.default = default
        self.calls: list[list[str]] = []

    def generate(self, prompts, params):  # pragma: no cover - not used
        raise NotImplementedError

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        self.calls.append(list(texts))
        out = []
        for t in texts:
            words = t.split()
            out.append(
                TextLogprobs(
                    tokens=words,
                    token_ids=[hash(w) % 10_000 for w in words],
                    logprobs=[self.table.get(w, self.default) for w in words],
                )
            )
        return out


# ---------------------------------------------------------------------------------------------
# scoring.py
# ---------------------------------------------------------------------------------------------


def test_split_whitespace_moves_trailing_space() -> None:
    assert split_whitespace("Q: who?\nA: ", "Bob") == ("Q: who?\nA:", " Bob")
    assert split_whitespace("ctx", " cont") == ("ctx", " cont")


def test_score_texts_dedupes_and_keeps_order() -> None:
    be = WordBackend({"b": -2.0})
    out = score_texts(be, ["a b", "a", "a b"], chunk_size=1)
    assert [o.total for o in out] == [-3.0, -1.0, -3.0]
    assert sum(len(c) for c in be.calls) == 2  # "a b" scored once
    with pytest.raises(TypeError):
        score_texts(be, "a b")


def test_conditional_logprobs_takes_continuation_tokens() -> None:
    be = WordBackend({"yes": -0.5, "no": -3.0, "maybe": -2.0, "so": -1.5})
    out = conditional_logprobs(be, [("Is it ?", " yes"), ("Is it ? ", "maybe so"), ("", "no")])
    assert [o.logprob for o in out] == [-0.5, -3.5, -3.0]
    assert [o.n_tokens for o in out] == [1, 2, 1]
    assert out[1].n_chars == len(" maybe so")
    assert all(o.aligned for o in out)
    s = ContinuationScore(logprob=-3.0, n_tokens=2, n_chars=6)
    assert s.normalized("none") == -3.0
    assert s.normalized("token") == -1.5
    assert s.normalized("char") == -0.5
    with pytest.raises(ValueError, match="normalization"):
        s.normalized("bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty continuation"):
        conditional_logprobs(be, [("ctx", "  ")])


def test_conditional_logprobs_flags_misaligned_boundary() -> None:
    class Merging(WordBackend):
        """Tokenises by characters but merges the pair 'e' + 'x' into one token."""

        def tokenize(self, text: str) -> list[int]:
            return [ord(c) for c in text.replace("ex", "\x01")]

        def logprobs(self, texts):
            return [
                TextLogprobs(
                    tokens=list(t.replace("ex", "\x01")),
                    token_ids=self.tokenize(t),
                    logprobs=[-1.0] * len(self.tokenize(t)),
                )
                for t in texts
            ]

    be = Merging()
    ok, bad = conditional_logprobs(be, [("ab", "cd"), ("abe", "xy")])
    assert ok.aligned and ok.n_tokens == 2
    # context "abe" tokenises to 3 ids, but in "abexy" the e merges with x: flagged, and the
    # harness split (whole[len(context_ids):]) is used since the stub cannot score ids
    assert not bad.aligned and bad.n_tokens == 1


def test_conditional_logprobs_rescores_ids_when_backend_can() -> None:
    class Merging(WordBackend):
        prefix_id = 0

        def tokenize(self, text: str) -> list[int]:
            return [ord(c) for c in text.replace("ex", "\x01")]

        def logprobs(self, texts):
            return [
                TextLogprobs(list(t), self.tokenize(t), [-1.0] * len(self.tokenize(t)))
                for t in texts
            ]

        def logprobs_ids(self, seqs):
            self.seen = [list(s) for s in seqs]
            return [[-2.0] * (len(s) - 1) for s in seqs]

    be = Merging()
    (bad,) = conditional_logprobs(be, [("abe", "xy")])
    assert be.seen == [[0, ord("a"), ord("b"), ord("e"), ord("x"), ord("y")]]
    assert not bad.aligned and bad.n_tokens == 2 and bad.logprob == -4.0


class PrefixBackend:
    """Characters as tokens ("ex" merges into one), each log-prob a function of all before it.

    ``score_tails`` works on token ids alone, so option scoring through it matches
    ``logprobs`` only if the caller builds the very sequences ``logprobs`` scores.
    """

    name = "stub-prefix"
    model_id = "prefix-hash"
    prefix_id = 1

    def __init__(self) -> None:
        self.tail_calls: list[tuple[list[list[int]], list[int]]] = []

    def generate(self, prompts, params):  # pragma: no cover - not used
        raise NotImplementedError

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text.replace("ex", "\x02")]

    @staticmethod
    def _lp(seq: Sequence[int], j: int) -> float:
        return -1.0 - (hash(tuple(seq[: j + 1])) % 1000) / 1000

    def logprobs(self, texts):
        out = []
        for t in texts:
            seq = [self.prefix_id, *self.tokenize(t)]
            lps = [self._lp(seq, j) for j in range(1, len(seq))]
            out.append(TextLogprobs([chr(x) for x in seq[1:]], seq[1:], lps))
        return out

    def score_tails(self, seqs, starts):
        self.tail_calls.append(([list(s) for s in seqs], list(starts)))
        return [
            [self._lp(s, j) for j in range(st, len(s))] for s, st in zip(seqs, starts, strict=True)
        ]


class PrefixIdsBackend(PrefixBackend):
    def logprobs_ids(self, seqs):
        return [[self._lp(s, j) for j in range(1, len(s))] for s in seqs]


@pytest.mark.parametrize("cls", [PrefixBackend, PrefixIdsBackend])
def test_shared_option_scoring_equals_per_option(cls) -> None:
    pairs = [
        ("Q: who? A:", " the man"),
        ("Q: who? A:", " the woman"),
        ("Q: who? A:", " unknown"),
        ("Is it te", "xt"),  # "e" + "x" merge across the boundary: misaligned
        ("", "A whole sentence."),
        ("Q: who? A: ", "x"),  # trailing space moves to the continuation
    ]
    be = cls()
    fast = conditional_logprobs(be, pairs, prefix_token="always")
    assert len(be.tail_calls) == 1
    slow = conditional_logprobs(be, pairs, share_prefix=False, prefix_token="always")
    assert len(be.tail_calls) == 1
    for a, b in zip(slow, fast, strict=True):
        assert (a.n_tokens, a.aligned, a.n_chars) == (b.n_tokens, b.aligned, b.n_chars)
        assert a.token_logprobs == b.token_logprobs and a.logprob == b.logprob
    assert [s.aligned for s in fast] == [True, True, True, False, True, True]


@pytest.mark.parametrize("cls", [PrefixBackend, PrefixIdsBackend])
def test_harness_rule_scores_the_harness_sequences(cls) -> None:
    """No prefix before a context; the misaligned split is the harness's (context ids + rest)."""
    pairs = [
        ("Q: who? A:", " the man"),
        ("Is it te", "xt"),  # "e" + "x" merge: harness keeps tokenize(ctx) + whole[len(ctx):]
        ("", "A whole sentence."),  # empty context: after the prefix token
        ("Q: who? A: ", "x"),
    ]
    be = cls()
    got = conditional_logprobs(be, pairs)  # the default rule is the harness's
    tok = be.tokenize
    want = []
    for ctx, cont in [("Q: who? A:", " the man"), ("Is it te", "xt"), ("", "A whole sentence.")]:
        if ctx:
            c, w = tok(ctx), tok(ctx + cont)
            seq, start = [*c, *w[len(c) :]], len(c)
        else:
            seq, start = [be.prefix_id, *tok(cont)], 1
        want.append([be._lp(seq, j) for j in range(start, len(seq))])
    c, w = tok("Q: who? A:"), tok("Q: who? A: x")
    want.append([be._lp([*c, *w[len(c) :]], j) for j in range(len(c), len(w))])
    assert [s.token_logprobs for s in got] == want
    assert [s.aligned for s in got] == [True, False, True, True]
    assert all(seq[0] != be.prefix_id for seq in be.tail_calls[0][0][:2])
    slow = conditional_logprobs(be, pairs, share_prefix=False)
    assert [s.token_logprobs for s in slow] == want
    with pytest.raises(ValueError, match="prefix_token"):
        conditional_logprobs(be, pairs, prefix_token="sometimes")  # type: ignore[arg-type]


def test_plan_prefix_groups_shares_prompts_not_instructions() -> None:
    from synthbias.generate.llamacpp import plan_prefix_groups

    instr = list(range(100, 110))
    a = [1, *instr, 20, 21, 22, 23, 24]  # prompt A (start 16) with two options
    seqs = [a + [7, 8], a + [9], [1, *instr, 30, 31, 32, 33, 34, 35, 5, 6], [1, 2, 3]]
    starts = [16, 16, 17, 3]  # the last has nothing to score
    groups = plan_prefix_groups(seqs, starts)
    shared = {tuple(m): c for c, m in groups}
    assert shared[(0, 1)] == len(a) - 1  # leaves each option two tokens of its own
    assert shared[(2,)] == 0  # same instruction, different prompt: not grouped
    assert all(3 not in m for _, m in groups)
    pairs = [[1, 5, 6, 7, 8, 9], [1, 5, 6, 7, 8, 4], [1, 5, 2]]
    assert sorted(plan_prefix_groups(pairs, [1, 1, 1])) == [(0, [2]), (4, [1, 0])]


def test_stratified_sample() -> None:
    strata = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    idx = stratified_sample(strata, 10, seed=1)
    assert idx == sorted(idx) and len(set(idx)) == 10
    assert [strata[i] for i in idx].count("a") == 6
    assert stratified_sample(strata, 10, seed=1) == idx
    assert stratified_sample(strata, 10, seed=2) != idx
    eq = stratified_sample(strata, 30, seed=0, allocation="equal")
    assert [strata[i] for i in eq].count("c") == 10  # equal share capped, rest spread
    assert sorted([strata[i] for i in eq].count(s) for s in "ab") == [10, 10]
    assert stratified_sample(strata, None) == list(range(100))
    assert stratified_sample(strata, 500) == list(range(100))


# ---------------------------------------------------------------------------------------------
# CrowS-Pairs, hand-computed
# ---------------------------------------------------------------------------------------------

CROWS_HEADER = [
    "",
    "sent_more",
    "sent_less",
    "stereo_antistereo",
    "bias_type",
    "annotations",
    "anon_writer",
    "anon_annotators",
]


def _write_crows(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CROWS_HEADER)
        for i, (more, less, d, t) in enumerate(rows):
            w.writerow([i, more, less, d, t, "[]", "a0", "[]"])
    return path


def test_crows_pairs_hand_computed(tmp_path: Path) -> None:
    path = _write_crows(
        tmp_path / "crows_pairs_anonymized.csv",
        [
            ("the S1", "the L1", "stereo", "gender"),  # -1 vs -3: more wins, diff 2
            ("the S2", "the L2", "stereo", "gender"),  # -4 vs -2: less wins, diff 2
            ("the S3", "the L3", "antistereo", "age"),  # -1 vs -2: more wins (direction unused)
            ("the S4", "the L4", "stereo", "age"),  # tie: not stereotypical
        ],
    )
    table = {"S1": -1, "L1": -3, "S2": -4, "L2": -2, "S3": -1, "L3": -2, "S4": -5, "L4": -5}
    res = crows_pairs(WordBackend(table), tmp_path, n_resamples=200)
    pct, diff = res["crows_pairs.pct_stereotype"], res["crows_pairs.likelihood_diff"]
    assert isinstance(pct, MetricResult)
    assert pct.value == pytest.approx(50.0)
    assert pct.per_sample == [1.0, 0.0, 1.0, 0.0]
    assert pct.per_group == {"gender": 50.0, "age": 50.0}
    assert pct.n == 4 and pct.meta["n_ties"] == 1 and pct.meta["runtime"] == "stub"
    assert pct.meta["pct_stereotype_by_direction"] == pytest.approx(
        {"antistereo": 100.0, "stereo": 100 / 3}
    )
    assert 0 <= pct.ci.low <= pct.value <= pct.ci.high <= 100
    assert diff.value == pytest.approx((2 + 2 + 1 + 0) / 4)
    assert diff.per_group == {"gender": 2.0, "age": 0.5}
    assert pct.meta["mean_signed_diff"] == pytest.approx((2 - 2 + 1 + 0) / 4)
    # the file itself and the benchmarks root work too
    assert crows_pairs(WordBackend(table), path)["crows_pairs.pct_stereotype"].value == 50.0


def test_crows_pairs_limit_is_stratified_and_seeded(tmp_path: Path) -> None:
    rows = [(f"m{i}", f"l{i}", "stereo", CROWS_BIAS_TYPES[i % 3]) for i in range(30)]
    _write_crows(tmp_path / "crows_pairs_anonymized.csv", rows)
    df = load_crows_pairs(tmp_path)
    sub = crows_pairs_subset(df, 9, seed=0)
    assert len(sub) == 9 and sub["bias_type"].value_counts().tolist() == [3, 3, 3]
    res = crows_pairs(WordBackend(), tmp_path, limit=9, n_resamples=50)
    assert res["crows_pairs.pct_stereotype"].n == 9


def test_missing_data_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="crows_pairs_anonymized.csv"):
        crows_pairs(WordBackend(), tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="dev.json"):
        stereoset(WordBackend(), tmp_path)
    with pytest.raises(FileNotFoundError, match="bbq"):
        score_benchmark(WordBackend(), "bbq", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark suite"):
        score_benchmark(WordBackend(), "winobias", tmp_path)
    p = resolve_data_file(_write_crows(tmp_path / "x.csv", []), "crows_pairs", "any.csv")
    assert p.name == "x.csv"


# ---------------------------------------------------------------------------------------------
# StereoSet, hand-computed
# ---------------------------------------------------------------------------------------------


def test_stereoset_formulas_by_hand() -> None:
    # cluster scores: (stereo, anti, unrelated)
    s = np.array([[-1, -2, -3], [-2, -1, -1.5], [-1, -1, -0.5], [-3, -2, -1]], dtype=float)
    pro, related = stereoset_counts(s[:, 0], s[:, 1], s[:, 2])
    assert pro.tolist() == [1, 0, 0, 0]  # a tie counts as anti-stereotype
    assert related.tolist() == [2, 1, 0, 0]
    terms = np.array([0, 0, 1, 1])
    # term 0: SS 50, LMS 75; term 1: SS 0, LMS 0 -> macro SS 25, LMS 37.5
    lms, ss, ic = stereoset_scores(terms, pro, related, "term")
    assert (lms, ss) == (37.5, 25.0)
    assert ic == pytest.approx(37.5 * 25 / 50)
    lms_c, ss_c, _ = stereoset_scores(terms, pro, related, "cluster")
    assert (lms_c, ss_c) == (37.5, 25.0)
    # uneven term sizes: macro and micro differ
    lms_t, ss_t, _ = stereoset_scores(np.array([0, 0, 0, 1]), pro, related, "term")
    assert ss_t == pytest.approx((100 / 3 + 0) / 2)
    assert lms_t == pytest.approx((100 * 3 / 6 + 0) / 2)
    assert icat(100, 50) == 100 and icat(100, 100) == 0 and icat(80, 60) == pytest.approx(64)


def _write_stereoset(path: Path) -> Path:
    def cluster(cid, target, bias_type, context, st, an, un):
        sents = [
            {"sentence": st, "id": cid + "s", "labels": [], "gold_label": "stereotype"},
            {"sentence": an, "id": cid + "a", "labels": [], "gold_label": "anti-stereotype"},
            {"sentence": un, "id": cid + "u", "labels": [], "gold_label": "unrelated"},
        ]
        return {"id": cid, "target": target, "bias_type": bias_type, "context": context,
                "sentences": sents}  # fmt: skip

    data = {
        "version": "1.0-dev",
        "data": {
            "intrasentence": [
                cluster("c1", "nurse", "profession", "The nurse was BLANK.",
                        "The nurse was ST1.", "The nurse was AN1.", "The nurse was UN1."),
                cluster("c2", "Ghana", "race", "Ghana is BLANK.",
                        "Ghana is ST2 ST2b.", "Ghana is AN2.", "Ghana is UN2."),
            ],
            "intersentence": [
                cluster("c3", "nurse", "profession", "I met a nurse.",
                        "ST3 here.", "AN3 here.", "UN3 here."),
            ],
        },
    }  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    (path / "dev.json").write_text(json.dumps(data))
    return path


def test_stereoset_end_to_end_by_hand(tmp_path: Path) -> None:
    _write_stereoset(tmp_path / "stereoset")
    table = {
        "ST1.": -1, "AN1.": -3, "UN1.": -2,        # pro 1, related 1 (only stereo beats unrel)
        "ST2": -1, "ST2b.": -5, "AN2.": -2, "UN2.": -4,  # token mean: stereo -3 < anti -2
        "ST3": -2, "AN3": -1, "UN3": -6,           # pro 0, related 2
    }  # fmt: skip
    # intrasentence c1 (4 words, 3 shared at -1): stereo -4/4, anti -6/4, unrel -5/4
    # c2 (per-token mean over all tokens): stereo (-1-1-1-5)/4=-2, anti (-1-1-2)/3, unrel -2
    #   -> stereo < anti (pro 0); stereo vs unrel tie (not related); anti > unrel: related 1
    # intersentence c3 (continuation only): stereo -3/2, anti -2/2, unrel -7/2
    res = stereoset(WordBackend(table), tmp_path, n_resamples=100)
    ss, lms, ic = res["stereoset.ss"], res["stereoset.lms"], res["stereoset.icat"]
    # terms: nurse {c1: pro 1 rel 1, c3: pro 0 rel 2} -> SS 50, LMS 75; Ghana {pro 0, rel 1}
    # -> SS 0, LMS 50. Macro: SS 25, LMS 62.5
    assert ss.value == pytest.approx(25.0)
    assert lms.value == pytest.approx(62.5)
    assert ic.value == pytest.approx(62.5 * 25 / 50)
    assert ss.per_group == {"profession": 50.0, "race": 0.0}
    assert lms.per_group == {"profession": 75.0, "race": 50.0}
    assert ss.per_sample == [1.0, 0.0, 0.0] and lms.per_sample == [0.5, 0.5, 1.0]
    assert res["stereoset.intrasentence.ss"].value == pytest.approx(50.0)
    assert res["stereoset.intersentence.lms"].value == pytest.approx(100.0)
    assert ss.meta["normalize"] == "token" and ss.meta["n_misaligned"] == 0
    # summed log-probs instead: c2 stereo -8 < anti -4, unrel -6: pro 0, related 1 (anti)
    raw = stereoset(WordBackend(table), tmp_path, normalize="none", n_resamples=10)
    assert raw["stereoset.ss"].value == pytest.approx(25.0)


# ---------------------------------------------------------------------------------------------
# Real data, real model
# ---------------------------------------------------------------------------------------------

#: Pairs in the llama.cpp reference check. 60 by default (about 1,800 tokens scored twice, ~17 s
#: on 2 quiet cores; every CrowS-Pairs bias type is in the stratified subset) to keep the default
#: suite short; ``SYNTHBIAS_CROWS_CHECK_N=300`` runs the 300-pair
#: check of issue 3 (~260 s, passed when measured), and bench/likelihood.py scores the full sets.
N_CROWS_CHECK = int(os.environ.get("SYNTHBIAS_CROWS_CHECK_N", "60"))


@pytest.fixture(scope="module")
def llm(llama_backend):
    return llama_backend  # the session's model (conftest), LlamaCppBackend(n_ctx=512)


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    mx = logits.max(axis=1, keepdims=True)
    return logits - mx - np.log(np.exp(logits - mx).sum(axis=1, keepdims=True))


def _pct(ll_more: Sequence[float], ll_less: Sequence[float]) -> float:
    return 100 * float(np.mean([m > s for m, s in zip(ll_more, ll_less, strict=True)]))


@pytest.mark.slow
def test_crows_pairs_llamacpp_matches_reference(llm, benchmarks: Path) -> None:
    """Our batched llama.cpp score equals a one-sentence-at-a-time llama_cpp.Llama loop."""
    import llama_cpp

    res = crows_pairs(llm, benchmarks, limit=N_CROWS_CHECK, seed=0, n_resamples=200)
    pct = res["crows_pairs.pct_stereotype"]
    assert pct.n == N_CROWS_CHECK and pct.meta["runtime"] == "llama.cpp"
    assert set(pct.per_group) == set(CROWS_BIAS_TYPES)

    sub = crows_pairs_subset(load_crows_pairs(benchmarks), N_CROWS_CHECK, seed=0)
    from synthbias.generate.llamacpp import guard_high_level_llama

    guard_high_level_llama()  # AMX CPUs: as our backend loads the model
    ref = llama_cpp.Llama(
        model_path=str(llm.model_path), logits_all=True, n_ctx=256, n_batch=256, verbose=False
    )
    try:
        bos = ref.token_bos()

        def loglik(sentence: str) -> float:
            ids = [bos, *ref.tokenize(sentence.encode("utf-8"), add_bos=False, special=False)]
            ref.reset()
            ref.eval(ids)
            lp = _log_softmax_rows(np.asarray(ref.scores[: len(ids)]))
            return float(sum(lp[j - 1, ids[j]] for j in range(1, len(ids))))

        ref_more = [loglik(s) for s in sub["sent_more"]]
        ref_less = [loglik(s) for s in sub["sent_less"]]
    finally:
        ref.close()
    ref_pct = _pct(ref_more, ref_less)
    assert abs(pct.value - ref_pct) <= 0.5, (pct.value, ref_pct)
    ours = np.array(res["crows_pairs.likelihood_diff"].per_sample)
    theirs = np.abs(np.array(ref_more) - np.array(ref_less))
    assert np.max(np.abs(ours - theirs)) < 0.05


@pytest.mark.slow
def test_stereoset_real_data_smoke(llm, benchmarks: Path) -> None:
    res = stereoset(llm, benchmarks, limit=32, seed=0, n_resamples=100)
    assert {"stereoset.ss", "stereoset.lms", "stereoset.icat"} <= set(res)
    assert {"stereoset.intrasentence.ss", "stereoset.intersentence.icat"} <= set(res)
    ss, lms = res["stereoset.ss"], res["stereoset.lms"]
    assert ss.n == 32 and {"gender", "profession", "race"} <= set(ss.per_group)
    assert set(ss.per_group) <= {"gender", "profession", "race", "religion"}
    assert 0 <= ss.value <= 100 and 0 <= lms.value <= 100
    assert lms.value > 55, "an LM should prefer meaningful options over unrelated ones"
    assert ss.meta["n_misaligned"] <= 3
    assert ss.ci is not None and ss.ci.low <= ss.value <= ss.ci.high
    assert math.isclose(res["stereoset.icat"].value, icat(lms.value, ss.value))


def _bbq_pairs(benchmarks: Path, n: int) -> list[tuple[str, str]]:
    from synthbias.measure.qa import DEFAULT_PROMPT, load_bbq

    df = load_bbq(benchmarks)
    strata = (df["category"] + "/" + df["context_condition"]).tolist()
    rows = df.iloc[stratified_sample(strata, n, 0, "equal")]
    return [
        (DEFAULT_PROMPT.format(context=r["context"], question=r["question"]), " " + r[f"ans{k}"])
        for _, r in rows.iterrows()
        for k in range(3)
    ]


@pytest.mark.slow
def test_llamacpp_prefix_shared_scoring_equals_per_option(llm, benchmarks: Path) -> None:
    """Real BBQ items and CrowS-Pairs sentences: shared-prefix scores = one run per text."""
    pairs = _bbq_pairs(benchmarks, 4)
    fast = conditional_logprobs(llm, pairs, prefix_token="always")
    try:
        slow = conditional_logprobs(llm, pairs, share_prefix=False, prefix_token="always")
        crows = load_crows_pairs(benchmarks).iloc[:6]
        texts = crows["sent_more"].tolist() + crows["sent_less"].tolist()
        plain = llm.logprobs(texts)
        llm.share_text_prefix = True
        shared = llm.logprobs(texts)
    finally:
        llm.share_text_prefix = False
    assert [a.n_tokens for a in slow] == [b.n_tokens for b in fast]
    diffs = [
        abs(x - y)
        for a, b in zip(slow, fast, strict=True)
        for x, y in zip(a.token_logprobs, b.token_logprobs, strict=True)
    ]
    assert len(diffs) > 3 * len(pairs) / 2 and max(diffs) <= 1e-4, max(diffs)
    assert len({round(s.logprob, 3) for s in fast}) > len(pairs) / 2  # real, distinct scores
    for a, b in zip(plain, shared, strict=True):
        assert a.token_ids == b.token_ids
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs, strict=True)) <= 1e-4


def test_choose_scoring_backend_rules_and_probe() -> None:
    from synthbias.measure.scoring import choose_scoring_backend

    gpu = choose_scoring_backend(cuda=True)
    assert (gpu.backend, gpu.device, gpu.weights) == ("hf", "cuda", "f32")
    cpu = choose_scoring_backend(cuda=False)
    assert (cpu.backend, cpu.device, cpu.weights) == ("hf", "cpu", "f32") and cpu.reason
    calls = []

    def probe() -> dict[str, float]:
        calls.append(1)
        return {"hf": 2.0, "llamacpp-f32": 1.5}

    first = choose_scoring_backend(cuda=False, probe=probe)
    again = choose_scoring_backend(cuda=False, probe=probe)
    assert (first.backend, first.weights) == ("llamacpp", "f32") and "probe" in first.reason
    assert again == first and len(calls) == 1  # measured once per process
    assert set(first.to_dict()) == {"backend", "device", "weights", "reason", "batch_size"}
