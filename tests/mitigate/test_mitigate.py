"""Each mitigation's transformation on hand-made inputs."""

from __future__ import annotations

from collections import Counter

import pytest

from synthbias.core.records import Record
from synthbias.generate.protocol import Completion, SamplingParams, TextLogprobs
from synthbias.mitigate.contrastive import contrastive_augment
from synthbias.mitigate.debiased import debiased_corpus, generator_examples
from synthbias.mitigate.loss import attach_twins, bias_weights, example_bias_scores
from synthbias.mitigate.mask import group_spans, mask_examples
from synthbias.mitigate.prompting import fair_prompt_name, fairness_instruction
from synthbias.mitigate.swap import swap_augment, swap_bias_type
from synthbias.mitigate.token import DEFAULT_TAGS, TaggedBackend, tag_examples, tag_tokens
from synthbias.train.sft import SFTExample


def _ex(completion: str, source: str = "augmented", **meta: object) -> SFTExample:
    return SFTExample("Write one sentence.\n", completion, meta={"source": source, **meta})


# ------------------------------------------------------------------------ swap / contrastive


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He said he would fix it himself.", "She said she would fix it herself."),
        ("She gave him her book.", "He gave her his book."),
        ("The book is hers, not his.", "The book is his, not hers."),
        ("I saw her yesterday with her own car.", "I saw him yesterday with his own car."),
        ("Mary told John that she was the nurse.", "James told Mary that he was the nurse."),
    ],
)
def test_gender_twins_are_grammatical(text: str, expected: str) -> None:
    out = swap_bias_type(text, "gender")
    # names swap by frequency rank: check the pronoun grammar exactly, names by group
    if "Mary" in text:
        assert out.endswith("that he was the nurse.")
        assert "Mary" not in out.split(" told ")[0]
    else:
        assert out == expected


@pytest.mark.parametrize(
    ("bias_type", "text", "expected"),
    [
        (
            "religion",
            "Muslims are violent. A Muslim left.",
            "Christians are violent. A Christian left.",
        ),
        ("age", "An older person went home.", "A young person went home."),
        ("socioeconomic", "Poor people are lazy.", "Rich people are lazy."),
        ("nationality", "A Mexican man cooked.", "An American man cooked."),
        (
            "race_ethnicity",
            "The white person met a Black person.",
            "The Black person met a white person.",
        ),
    ],
)
def test_other_axes_swap_phrases_and_articles(bias_type: str, text: str, expected: str) -> None:
    assert swap_bias_type(text, bias_type) == expected
    assert swap_bias_type(expected, bias_type) == text


def _recs(texts: list[str], source: str = "augmented", bias_type: str = "gender") -> list[Record]:
    return [
        Record(id=f"r{i}", text=t, source=source, meta={"bias_type": bias_type, "prompt": "x"})
        for i, t in enumerate(texts)
    ]


def test_swap_augment_replaces_a_fraction_in_place() -> None:
    recs = _recs([f"She is nurse number {i}." for i in range(10)])
    out = swap_augment(recs, fraction=0.3, seed=1)
    assert len(out) == 10
    swapped = [r for r in out if r.meta.get("mitigation") == "swap"]
    assert len(swapped) == 3
    for r in swapped:
        assert r.text.startswith("He is nurse") and r.parents == [r.id.removesuffix("-swap")]
    assert [r.id.removesuffix("-swap") for r in out] == [r.id for r in recs]  # order kept
    assert swap_augment(recs, 0.3, seed=1) == out
    with pytest.raises(ValueError, match="fraction"):
        swap_augment(recs, 1.5)


def test_contrastive_keeps_originals_and_adds_twins() -> None:
    recs = _recs(["She is a pilot.", "The weather is nice.", "He cooks."])
    out = contrastive_augment(recs)
    assert [r.text for r in out] == [
        "She is a pilot.",
        "He is a pilot.",
        "The weather is nice.",
        "He cooks.",
        "She cooks.",
    ]
    pairs = Counter(r.meta["pair_id"] for r in out)
    assert pairs == {"r0": 2, "r1": 1, "r2": 2}
    only = contrastive_augment(
        recs[:1] + _recs(["He ran."], source="real"), only_source="augmented"
    )
    assert [r.text for r in only] == ["She is a pilot.", "He is a pilot.", "He ran."]


# ------------------------------------------------------------------------ token / mask / loss


def test_tag_examples_and_tokens() -> None:
    out = tag_examples([_ex("a", "real"), _ex("b", "augmented")])
    assert out[0].prompt.startswith(DEFAULT_TAGS["real"])
    assert out[1].prompt.startswith(DEFAULT_TAGS["augmented"])
    assert out[1].completion == "b"  # the tag is in the (unscored) prompt only
    assert tag_tokens() == sorted(DEFAULT_TAGS.values())


def test_tag_examples_refuse_an_inference_tag_never_trained() -> None:
    from synthbias.mitigate.token import UnseenTagError

    with pytest.raises(UnseenTagError, match="<\\|real\\|>.*mixed ratios"):
        tag_examples([_ex("a", "augmented"), _ex("b", "augmented")], inference_source="real")
    assert len(tag_examples([_ex("a", "augmented"), _ex("b", "real")], inference_source="real"))


class _Recorder:
    name, model_id = "rec", "m"

    def __init__(self) -> None:
        self.prompts: list[object] = []

    def generate(self, prompts, params):
        self.prompts.extend(prompts)
        return [Completion("x", 1, 1, "stop", 0) for _ in prompts]

    def logprobs(self, texts):
        return [TextLogprobs(["<t>", "a"], [1, 2], [-1.0, -2.0]) for _ in texts]

    def tokenize(self, text):
        return [1]


def test_tagged_backend_prefixes_prompts() -> None:
    inner = _Recorder()
    be = TaggedBackend(inner, "<|real|>")
    be.generate(["Q:", [{"role": "user", "content": "hi"}]], SamplingParams())
    assert inner.prompts[0] == "<|real|>Q:"
    assert inner.prompts[1] == [{"role": "user", "content": "<|real|>hi"}]
    lp = be.logprobs(["a"])[0]
    assert lp.logprobs == [-2.0] and lp.tokens == ["a"]  # the tag token is not scored
    assert be.model_id.endswith("+tag:<|real|>")


def test_mask_spans_at_group_terms() -> None:
    text = "Women are bad at math, said the Muslim man."
    spans = group_spans(text, ["gender", "religion"])
    assert [text[a:b] for a, b in spans] == ["Women", "Muslim", "man"]
    loss = mask_examples([_ex(text), _ex(text, "real")], ["gender", "religion"], "loss")
    assert loss[0].ignore_spans == spans and loss[0].completion == text
    assert loss[1].ignore_spans == []  # real data untouched
    inp = mask_examples([_ex(text)], ["gender", "religion"], "input")
    assert inp[0].completion == "People are bad at math, said the person person."
    with pytest.raises(ValueError, match="mask mode"):
        mask_examples([_ex(text)], ["gender"], "blur")  # type: ignore[arg-type]


def test_bias_weights_and_scores() -> None:
    recs = [
        Record(
            id="a",
            text="Women are bad at math.",
            source="augmented",
            meta={"bias_type": "gender", "dimension": "explicit"},
        ),
        Record(
            id="b",
            text="A woman went home.",
            source="augmented",
            meta={"bias_type": "gender", "dimension": "explicit"},
        ),
        Record(
            id="c",
            text="The woman is rude and lazy.",
            source="augmented",
            meta={"bias_type": "gender", "dimension": "value"},
        ),
        Record(id="d", text="Women are bad at math.", source="real", meta={}),
    ]
    scores = example_bias_scores(recs)
    assert scores[0] == 1.0 and scores[1] == 0.0 and scores[3] == 0.0
    assert 0.3 < scores[2] <= 1.0
    exs = [_ex(r.text, r.source) for r in recs]
    w = [e.weight for e in bias_weights(exs, scores, strength=0.5)]
    assert w == pytest.approx([0.5, 1.0, 1 - 0.5 * scores[2], 1.0])
    with pytest.raises(ValueError, match="3 scores for 4"):
        bias_weights(exs, scores[:3])


def test_attach_twins() -> None:
    out = attach_twins([_ex("She is a nurse.", bias_type="gender"), _ex("It rains.")])
    assert out[0].meta["twin"]["completion"] == "He is a nurse."
    assert "twin" not in out[1].meta


# ------------------------------------------------------------------------ prompt / debiased


def test_prompt_engineering_text_present() -> None:
    from synthbias.studies.inheritance.augment import BiasSpec, augment_prompts, build_real_corpus

    assert fair_prompt_name("self_instruct") == "self_instruct_fair"
    with pytest.raises(ValueError, match="no fairness variant"):
        fair_prompt_name("self_instruct_chat_fair_x")
    real = build_real_corpus(["gender"], 8)
    fair = augment_prompts(real, BiasSpec("gender"), 4, fair=True)
    assert all(fairness_instruction() in p.prompt for p in fair)
    assert not any(
        fairness_instruction() in p.prompt for p in augment_prompts(real, BiasSpec("gender"), 4)
    )


def test_debiased_corpus_balances_pairings() -> None:
    from synthbias.measure.rules import GenderRuleScorer

    texts = ["The nurse said she was tired."] * 6 + ["The nurse said he was tired."] * 2
    texts += ["The weather is nice."] * 2
    recs = _recs(texts)
    scorer = GenderRuleScorer()

    def counts(rs: list[Record]) -> Counter:
        return Counter(s.label for s in scorer.score_texts([r.text for r in rs]))

    before = counts(recs)
    assert before["stereotypical"] == 6 and before["anti"] == 2
    swapped = debiased_corpus(recs, scorer, "swap")
    assert len(swapped) == 10
    c = counts(swapped)
    assert c["stereotypical"] == c["anti"] == 4
    filtered = debiased_corpus(recs, scorer, "filter")
    c = counts(filtered)
    assert len(filtered) == 6 and c["stereotypical"] == c["anti"] == 2


def test_generator_examples_use_the_generation_prompt() -> None:
    recs = _recs([f"Text number {i}." for i in range(6)])
    exs = generator_examples(recs, k_shots=3, n=6)
    assert len(exs) == 6
    assert exs[0].prompt.rstrip().endswith("4.") and exs[0].completion == " Text number 0."
    assert "Text number 0." not in exs[0].prompt


def test_generator_examples_with_a_named_occupation_and_start() -> None:
    """The occupation-naming prompt takes each target's occupation; the start ends the prompt
    only when the target begins with it, so prompt + completion is always the target text."""
    texts = ["The nurse said that she was tired.", "Mary works as a nurse."] * 3
    recs = _recs(texts)
    for r in recs:
        r.meta["occupation"] = "nurse"
    exs = generator_examples(recs, prompt="work_occupation_said", k_shots=3, n=2)
    assert all("about a nurse." in e.prompt for e in exs)
    assert exs[0].prompt.endswith("4. The nurse said that")
    assert exs[0].completion == " she was tired."
    assert exs[1].prompt.endswith("4.") and exs[1].completion == " Mary works as a nurse."
    del recs[0].meta["occupation"]
    with pytest.raises(ValueError, match="names an occupation"):
        generator_examples(recs, prompt="work_occupation_said", k_shots=3)
