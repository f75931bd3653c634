"""SplitBackend: one model, scoring on one runtime and generation on another."""

from __future__ import annotations

import pytest

from synthbias.generate import FakeBackend
from synthbias.generate.protocol import SamplingParams, TailScorer, is_indexed
from synthbias.generate.split import SplitBackend
from synthbias.measure.scoring import conditional_logprobs


class _Scorer(FakeBackend):
    """A fake tail scorer (words as token ids) that must never be asked to generate."""

    prefix_id = 0

    def tokenize(self, text: str) -> list[int]:
        return [1 + sum(map(ord, w)) % 997 for w in text.split()]

    def score_tails(self, sequences, starts):  # type: ignore[no-untyped-def]
        return [[-0.01 * t for t in s[st:]] for s, st in zip(sequences, starts, strict=True)]

    def generate(self, prompts, params):  # type: ignore[no-untyped-def]
        raise AssertionError("generation went to the scorer")


def test_calls_go_to_their_runtime_and_the_generator_loads_once_on_demand() -> None:
    made: list[FakeBackend] = []

    def make() -> FakeBackend:
        made.append(FakeBackend())
        return made[-1]

    split = SplitBackend(_Scorer(), make, generator_name="fake-gen", why="test")
    assert isinstance(split, TailScorer) and is_indexed(split)
    assert split.name == f"{_Scorer.name}+fake-gen"
    assert split.runtimes == {"scoring": _Scorer.name, "generation": "fake-gen", "why": "test"}
    pairs = [("The nurse said", " she"), ("The nurse said", " he")]
    scored, direct = conditional_logprobs(split, pairs), conditional_logprobs(_Scorer(), pairs)
    assert [s.logprob for s in scored] == [s.logprob for s in direct]
    assert made == []  # scoring alone never builds the generator
    params = SamplingParams(max_tokens=4, temperature=0.0, seed=0)
    first = split.generate(["Once upon a time"], params)
    again = split.generate_indexed(["Once upon a time"], params, [0])
    assert len(made) == 1 and first[0].text == again[0].text
    split.close()
    assert split._generator is None


def test_missing_attributes_fail_plainly() -> None:
    split = SplitBackend(FakeBackend(), FakeBackend)
    with pytest.raises(AttributeError, match="no_such_thing"):
        split.no_such_thing  # noqa: B018


class _GreedyScorer(_Scorer):
    """A scorer that also decodes greedily (and refuses to sample)."""

    def generate(self, prompts, params):  # type: ignore[no-untyped-def]
        assert params.temperature <= 0, "sampling went to the scorer"
        return FakeBackend().generate(prompts, params)


def test_greedy_generation_goes_to_the_scorer_when_asked() -> None:
    made: list[FakeBackend] = []

    def make() -> FakeBackend:
        made.append(FakeBackend())
        return made[-1]

    split = SplitBackend(_GreedyScorer(), make, generator_name="gen", greedy_on_scorer=True)
    assert split.runtimes["generation"] == f"gen (greedy: {_Scorer.name})"
    greedy = SamplingParams(max_tokens=4, temperature=0.0, seed=0)
    assert split.runtime_for(greedy) is split.scorer
    split.generate(["Once upon a time"], greedy)
    split.generate_indexed(["Once upon a time"], greedy, [3])
    assert made == []  # greedy decoding never builds the generator
    sampled = SamplingParams(max_tokens=4, temperature=0.7, seed=0)
    split.generate(["Once upon a time"], sampled)
    assert len(made) == 1 and split.runtime_for(sampled) is made[0]
    plain = SplitBackend(_Scorer(), make)  # the default: every generation on the generator
    plain.generate(["Once upon a time"], greedy)
    assert len(made) == 2
