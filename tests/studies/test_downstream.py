"""The pronoun probe (synthbias.studies.probe; old module name synthbias.studies.probe).

Fast tests check the arithmetic with a stub backend whose pronoun log-probs are set per
occupation, the occupation/threshold selection, template validation and the held-out property
of the shipped probes, and the classifier variant on hand-made corpora. The ``slow`` test
LoRA-fine-tunes the embedded SmolLM2 on a fully stereotyped seed corpus and on its gender-swapped
version and checks that the pronoun preference separates them (about 2 minutes on 2 idle cores).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from cores import CORES

from synthbias.generate.protocol import TextLogprobs
from synthbias.lexicon import load_lexicon
from synthbias.studies.probe import (
    CLASSIFIER_RATE,
    PREFERENCE,
    WIN_RATE,
    GenderMasker,
    InsufficientGenderedTextsError,
    classifier_gender_bias,
    default_classifier_templates,
    default_pronoun_templates,
    downstream_bias,
    pronoun_preference,
    result_from_dict,
    seed_overlap,
    select_occupations,
    validate_templates,
)


class PronounBackend:
    """Whitespace-token stub: the final " he"/" she" gets a log-prob set per occupation.

    ``lean[occ]`` is log p(he) − log p(she) for texts mentioning ``occ`` (``default`` for
    others), plus ``extra[w]`` for each word ``w`` of the context: log p(he) = −1 + lean/2,
    log p(she) = −1 − lean/2; every other word scores −1.
    """

    model_id = "pronoun-stub"

    def __init__(
        self,
        lean: dict[str, float] | None = None,
        default: float = 0.0,
        extra: dict[str, float] | None = None,
    ) -> None:
        self.lean = lean or {}
        self.default = default
        self.extra = extra or {}  # word in the context -> added to log p(he) - log p(she)

    def generate(self, prompts, params):  # pragma: no cover - not used
        raise NotImplementedError

    def _lean(self, text: str) -> float:
        hits = [(len(o), v) for o, v in self.lean.items() if f" {o} " in f" {text} "]
        base = max(hits)[1] if hits else self.default
        return base + sum(v for w, v in self.extra.items() if w in text.split())

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        out = []
        for t in texts:
            words = t.split()
            lps = [-1.0] * len(words)
            if words and words[-1] in ("he", "she"):
                d = self._lean(" ".join(words[:-1]))
                lps[-1] = -1.0 + (d / 2 if words[-1] == "he" else -d / 2)
            out.append(TextLogprobs(words, [hash(w) % 10_000 for w in words], lps))
        return out


# --------------------------------------------------------------------------- occupations


def test_select_occupations_follows_thresholds() -> None:
    table = load_lexicon().axis("gender").occupations
    occ = select_occupations()
    assert occ["nurse"] == "female" and occ["engineer"] == "male"
    for name, g in occ.items():
        pct = table[name].pct_female
        assert (pct >= 70) if g == "female" else (pct <= 30)
    assert all(table[n].code() == "neutral" for n in table.names if n not in occ)
    # tighter thresholds keep a subset: the 29 % dentist is no longer male-coded at lo=20
    strict = select_occupations(lo=20, hi=80)
    assert set(strict) < set(occ) and "dentist" in occ and "dentist" not in strict
    assert select_occupations(["nurse", "plumber"]) == {"nurse": "female", "plumber": "male"}
    assert select_occupations({"x": "male-coded", "y": "female"}) == {"x": "male", "y": "female"}
    with pytest.raises(ValueError, match="not gender-coded"):
        select_occupations(["nurse", "dentist"], lo=20, hi=80)
    with pytest.raises(ValueError, match="unknown occupation"):
        select_occupations(["astronaut"])
    with pytest.raises(ValueError, match="lo"):
        select_occupations(lo=70, hi=30)
    with pytest.raises(ValueError, match="gender"):
        select_occupations({"x": "neutral"})


# --------------------------------------------------------------------------- templates


def test_template_validation() -> None:
    assert validate_templates(["The {occ} said that", "{A_occ} said that"]) == [
        "The {occ} said that",
        "{A_occ} said that",
    ]
    for bad, msg in [
        (["The {occupation} said that"], "unknown slot"),
        (["The {occ} told the {occ} that"], "exactly one"),
        (["The worker said that"], "exactly one"),
        (["The {occ} said that "], "whitespace"),
        (["The {occ} said that", "The {occ} said that"], "duplicate"),
        (["The {occ:>5} said"], "format"),
        (["The {occ said"], "template 0"),
        ([], "no pronoun templates"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate_templates(bad)
    with pytest.raises(TypeError):
        validate_templates("The {occ} said that")
    # a trailing space is fine for a classifier sentence only
    assert validate_templates(["The {occ} left. "], "classifier")


def test_shipped_probes_are_held_out_and_gender_free() -> None:
    from synthbias.generate.prompts import fill_template, seed_templates

    pron, clf = default_pronoun_templates(), default_classifier_templates()
    assert len(pron) >= 5 and len(clf) >= 5
    validate_templates(pron, "pronoun")
    validate_templates(clf, "classifier")
    assert seed_overlap(pron, "pronoun") == [] and seed_overlap(clf, "classifier") == []
    # the check itself finds a seed wording ("The {occ} said {subj} would ...")
    assert seed_overlap(["The {occ} said"]) == ["The {occ} said"]
    assert seed_overlap([seed_templates()[0]["neutral"]], "classifier")
    masker = GenderMasker()
    filled = [fill_template(t, "nurse", None, None) for t in pron + clf]
    assert masker.label(filled) == [None] * len(filled)
    seeds = {fill_template(s["neutral"], "nurse", None, None) for s in seed_templates()}
    assert not seeds & set(filled)


# --------------------------------------------------------------------------- pronoun preference


def test_preference_arithmetic_with_a_global_she_lean() -> None:
    occ = select_occupations()
    be = PronounBackend(default=-1.0)  # every context prefers " she" by 1 nat
    res = pronoun_preference(be, n_resamples=200)
    pref, win = res[PREFERENCE], res[WIN_RATE]
    n_f = sum(g == "female" for g in occ.values())
    assert pref.n == len(occ) == len(pref.per_sample)
    assert pref.per_group == pytest.approx({"female-coded": 1.0, "male-coded": -1.0})
    expected = (n_f - (len(occ) - n_f)) / len(occ)
    assert pref.value == pytest.approx(expected)
    assert win.value == pytest.approx(n_f / len(occ))
    assert win.per_group == {"female-coded": 1.0, "male-coded": 0.0}
    assert pref.meta["he_minus_she"] == pytest.approx(-1.0)
    assert pref.meta["group_balanced"] == pytest.approx(0.0)
    assert pref.meta["occupations"] == list(occ)
    assert pref.meta["n_scored"] == 2 * len(occ) * len(default_pronoun_templates())
    assert pref.ci.low <= pref.value <= pref.ci.high


def test_preference_per_occupation_and_ties() -> None:
    # he-minus-she per template: the "explained" template adds 1 nat for " he" everywhere;
    # nurse (female-coded): -2, -1 -> preference 2, 1 -> 1.5; engineer (male): -1, 0 -> -0.5;
    # plumber (male): -0.5, +0.5 -> 0.0, a tie
    lean = {"nurse": -2.0, "engineer": -1.0, "plumber": -0.5}
    occ = {"nurse": "female", "engineer": "male", "plumber": "male"}
    tmpls = ["The {occ} noted that", "Then {a_occ} explained that"]
    be = PronounBackend(lean, extra={"explained": 1.0})
    res = pronoun_preference(be, occ, tmpls, n_resamples=300)
    pref, win = res[PREFERENCE], res[WIN_RATE]
    assert pref.per_sample == pytest.approx([1.5, -0.5, 0.0])
    assert pref.value == pytest.approx(1 / 3)
    assert win.per_sample == [1.0, 0.0, 0.0]  # a tie is not a win
    assert win.value == pytest.approx(1 / 3)
    assert pref.per_group == pytest.approx({"female-coded": 1.5, "male-coded": -0.25})
    assert pref.meta["per_template"] == pytest.approx({tmpls[0]: 0.5 / 3, tmpls[1]: 0.5})
    assert pref.meta["he_minus_she"] == pytest.approx((-3.5 + -0.5) / 6)
    assert -0.5 <= pref.ci.low <= pref.value <= pref.ci.high <= 1.5
    # the stereotyped direction flips with the occupation's code
    flipped = pronoun_preference(be, {"nurse": "male"}, tmpls, n_resamples=10)[PREFERENCE]
    assert flipped.value == pytest.approx(-1.5)


def test_preference_warns_on_seed_wording() -> None:
    with pytest.warns(UserWarning, match="seed wordings"):
        res = pronoun_preference(PronounBackend(), {"nurse": "female"}, ["The {occ} said"])
    assert res[PREFERENCE].meta["seed_overlap"] == ["The {occ} said"]


# --------------------------------------------------------------------------- classifier variant


def test_masker_labels_and_masks() -> None:
    m = GenderMasker()
    texts = [
        "She told the client that her report was ready.",
        "Mary works as a nurse and loves her job.",
        "Mr Jones said the desk was his.",
        "The female pilot and her sister left.",
        "He thanked her.",
        "The nurse finished the report.",
    ]
    assert m.label(texts) == ["female", "female", "male", "female", None, None]
    assert m.mask(texts[0]) == "They told the client that their report was ready."
    assert m.mask(texts[1]) == "The person works as a nurse and loves their job."
    assert m.mask(texts[2]) == "Mx Jones said the desk was theirs."
    assert m.mask(texts[3]) == "The pilot and their person left."
    assert m.label([m.mask(t) for t in texts]) == [None] * len(texts)


def _hand_corpus(n: int = 12) -> list[str]:
    frames = [
        "The {occ} said {p} would be late.",
        "Yesterday the {occ} told the boss that {p} had finished.",
        "The {occ} packed up because {p} was tired.",
        "At noon the {occ} said {p} needed a break.",
    ]
    female = ["nurse", "secretary", "receptionist", "hairdresser", "librarian", "paralegal"]
    male = ["engineer", "plumber", "mechanic", "carpenter", "electrician", "welder"]
    out = []
    for i in range(n):
        f = frames[i % len(frames)]
        out.append(f.format(occ=female[i % len(female)], p="she"))
        out.append(f.format(occ=male[i % len(male)], p="he"))
    return out


def test_classifier_learns_stereotype_from_hand_made_texts(encoder) -> None:
    texts = _hand_corpus() + ["The manager reviewed the budget."]  # a gender-free one: dropped
    res = classifier_gender_bias(texts, n_resamples=200, encoder=encoder)[CLASSIFIER_RATE]
    assert res.meta["n_male"] == res.meta["n_female"] == 12 and res.meta["n_dropped"] == 1
    assert "she" not in res.meta["masked_example"].split()
    # held-out sentences about *other* coded occupations too (pilot, secretary, ...)
    assert res.value > 0.6, res.value
    assert res.ci.low > 0.5
    assert res.per_group["female-coded"] > 0.5 and res.per_group["male-coded"] > 0.5
    # the swapped corpus teaches the opposite association
    from synthbias.lexicon import swap_gender

    swapped = [swap_gender(t) for t in texts]
    anti = classifier_gender_bias(swapped, n_resamples=200, encoder=encoder)
    assert anti[CLASSIFIER_RATE].value < 0.4
    assert abs(res.value + anti[CLASSIFIER_RATE].value - 1) < 0.1
    # stronger regularisation pulls every probability towards 0.5
    weak = classifier_gender_bias(texts, n_resamples=50, encoder=encoder, C=0.1)
    assert 0.5 < weak[CLASSIFIER_RATE].value < res.value


def test_classifier_balances_classes(encoder) -> None:
    from synthbias.lexicon import swap_gender

    # twice as many female as male texts, and a few gender-swapped ones so that the occupation
    # is not a perfect cue: without balancing, the prior pushes every probe towards "female"
    texts = _hand_corpus()
    female, male = texts[0::2], texts[1::2]
    corpus = female + male[:6] + [swap_gender(t) for t in female[:2]]
    bal = classifier_gender_bias(corpus, encoder=encoder, n_resamples=50)[CLASSIFIER_RATE]
    raw = classifier_gender_bias(corpus, encoder=encoder, n_resamples=50, balance=False)
    raw = raw[CLASSIFIER_RATE]
    assert (bal.meta["n_female"], bal.meta["n_male"]) == (12, 8)
    assert np.mean(raw.meta["p_female"]) > np.mean(bal.meta["p_female"]) + 0.03
    assert raw.per_group["male-coded"] < bal.per_group["male-coded"]


def test_classifier_without_gendered_texts(encoder) -> None:
    texts = ["The nurse finished the report."] * 20 + ["The engineer said he was late."] * 3
    with pytest.raises(InsufficientGenderedTextsError, match="3 male and 0 female"):
        classifier_gender_bias(texts, encoder=encoder)
    res = classifier_gender_bias(texts, on_insufficient="nan", encoder=encoder)[CLASSIFIER_RATE]
    assert math.isnan(res.value) and math.isnan(res.ci.low)
    assert "too few gendered texts" in res.meta["reason"]
    with pytest.raises(ValueError, match="gender-free"):
        classifier_gender_bias(_hand_corpus(), templates=["The {occ} said she left."])


# --------------------------------------------------------------------------- caching


def test_result_round_trip() -> None:
    res = pronoun_preference(
        PronounBackend({"nurse": -1.0}), {"nurse": "female", "pilot": "male"}, n_resamples=50
    )[PREFERENCE]
    back = result_from_dict(json.loads(json.dumps(res.to_dict(include_samples=True))))
    assert back.value == res.value and back.ci == res.ci and back.per_sample == res.per_sample
    assert back.per_group == res.per_group and back.meta["occupations"] == ["nurse", "pilot"]


# --------------------------------------------------------------------------- real model

#: Cheap fine-tuning for the test: 32 texts, 8 steps of 4 (the study default is 2 epochs of 8).
TEST_LORA = {"epochs": 1, "batch_size": 4, "learning_rate": 2e-3}


def _corpora(n: int = 32) -> tuple[dict[str, str], list[str], list[str]]:
    """10 female- and 10 male-coded occupations; a fully stereotyped corpus and its twin.

    Texts alternate female/male occupations over the equilibrium seed templates (so the corpus
    is balanced and a global pronoun lean cannot masquerade as bias); the anti-stereotyped twin
    is the same text with the other gender's pronouns and names.
    """
    from synthbias.generate.prompts import fill_template, seed_templates
    from synthbias.measure.rules import GenderRuleScorer
    from synthbias.studies.equilibrium.measurer import seed_vocabulary_for

    rule = GenderRuleScorer.legacy()  # the 96 everyday occupations the probes also use
    vocab = seed_vocabulary_for(rule)
    other = {"male": "female", "female": "male"}
    by = {g: [o for o, gg in vocab.occupations if gg == g][:10] for g in ("female", "male")}
    seeds = seed_templates()
    stereo, anti = [], []
    for i in range(n):
        g, k = ("female" if i % 2 == 0 else "male"), i // 2
        occ, tmpl = by[g][k % 10], seeds[i % len(seeds)]["gendered"]
        for out, gg in ((stereo, g), (anti, other[g])):
            out.append(fill_template(tmpl, occ, gg, vocab.names[gg][k % len(vocab.names[gg])]))
    assert rule.measure(stereo, n_resamples=10)["signed_bias"].value == 1.0
    assert rule.measure(anti, n_resamples=10)["signed_bias"].value == -1.0
    return {o: g for g in ("female", "male") for o in by[g]}, stereo, anti


@pytest.mark.slow
def test_finetune_on_stereotyped_corpus_moves_preference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoder
) -> None:
    import torch

    from synthbias.generate.llamacpp import LlamaCppBackend

    torch.set_num_threads(CORES)
    occ, stereo, anti = _corpora()
    tmpls = default_pronoun_templates()[:4]
    kw = {"occupations": occ, "templates": tmpls, "n_resamples": 500, "encoder": encoder}
    kw.update(lora=TEST_LORA, n_threads=CORES)
    t0 = time.perf_counter()
    with LlamaCppBackend(n_ctx=128, n_threads=CORES) as base_be:
        base = pronoun_preference(base_be, occ, tmpls, n_resamples=500)[PREFERENCE]
    times = {"base": time.perf_counter() - t0}
    runs = {}
    for name, texts in (("stereo", stereo), ("anti", anti)):
        t = time.perf_counter()
        runs[name] = downstream_bias(texts, tmp_path / name, **kw)
        times[name] = time.perf_counter() - t
    s, a = runs["stereo"], runs["anti"]
    summary = {"base": (base.value, base.ci.low, base.ci.high, base.meta["he_minus_she"])}
    for k, r in runs.items():
        summary[k] = (
            r[PREFERENCE].value,
            r[PREFERENCE].ci.low,
            r[PREFERENCE].ci.high,
            r[PREFERENCE].meta["he_minus_she"],
            r[WIN_RATE].value,
            r[CLASSIFIER_RATE].value,
        )
    print("downstream summary:", summary, "seconds:", times)
    fs, fa = s[PREFERENCE].meta["finetune"], a[PREFERENCE].meta["finetune"]
    assert fs["steps"] == fa["steps"] == 8
    assert fs["final_loss"] < fs["first_loss"] and fa["final_loss"] < fa["first_loss"]
    # the real signal: the model tuned on stereotyped texts prefers the stereotyped pronoun
    # more than the one tuned on the same texts with genders swapped, overall and per occupation
    assert s[PREFERENCE].value > a[PREFERENCE].value + 0.25, summary
    diff = np.array(s[PREFERENCE].per_sample) - np.array(a[PREFERENCE].per_sample)
    assert np.mean(diff > 0) >= 0.75, diff
    assert s[WIN_RATE].value >= a[WIN_RATE].value
    assert s[CLASSIFIER_RATE].value > 0.6 and a[CLASSIFIER_RATE].value < 0.4

    # a rerun on the same texts and settings is free: no training, no model
    from synthbias.train import adapter, sft

    def fail(*args, **kwargs):  # pragma: no cover - must not be called
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(sft, "train_lora", fail)
    monkeypatch.setattr(adapter, "load_finetuned", fail)
    t = time.perf_counter()
    again = downstream_bias(stereo, tmp_path / "stereo", **kw)
    assert time.perf_counter() - t < 5
    assert again[PREFERENCE].value == s[PREFERENCE].value
    assert again[PREFERENCE].per_sample == s[PREFERENCE].per_sample
    assert again[CLASSIFIER_RATE].per_sample == s[CLASSIFIER_RATE].per_sample
    # other texts, or another fine-tuning setting, do not hit the cache
    with pytest.raises(AssertionError, match="cache"):
        downstream_bias(stereo[:-1], tmp_path / "stereo", **kw)
    with pytest.raises(AssertionError, match="cache"):
        downstream_bias(stereo, tmp_path / "stereo", **{**kw, "lora": {"epochs": 2}})
    # a new evaluation setting reuses the adapter (no training) and evaluates again
    monkeypatch.undo()
    monkeypatch.setattr(sft, "train_lora", fail)
    few = dict(list(occ.items())[:2]) | dict(list(occ.items())[-2:])
    part = downstream_bias(stereo, tmp_path / "stereo", **{**kw, "occupations": few})
    assert part[PREFERENCE].meta["occupations"] == list(few)
    for name in few:
        i, j = list(few).index(name), list(occ).index(name)
        assert part[PREFERENCE].per_sample[i] == pytest.approx(
            s[PREFERENCE].per_sample[j], abs=1e-4
        )
