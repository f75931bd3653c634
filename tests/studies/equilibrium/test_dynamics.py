import numpy as np
import pytest

from synthbias.generate.fake import FakeBackend
from synthbias.generate.prompts import (
    build_prompt,
    clean_completion,
    fill_template,
    prompt_templates,
    seed_templates,
    uses_occupation,
)
from synthbias.generate.protocol import SamplingParams
from synthbias.measure.direction import DIRECTION_STATS
from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
from synthbias.studies.equilibrium.fit import (
    chain_trajectories,
    fit_bias_map,
    fixed_point_text,
    map_text,
    pct_change,
)
from synthbias.studies.equilibrium.generation import (
    SeedVocabulary,
    build_seed_corpus,
    next_generation,
)

VOCAB = SeedVocabulary(
    occupations=[("nurse", "female"), ("engineer", "male"), ("secretary", "female")],
    names={"female": ["Mary", "Linda"], "male": ["James", "Robert"]},
)


def simulate(a: float, c: float, b0: float, k: int) -> list[float]:
    traj = [b0]
    for _ in range(k):
        traj.append(a + c * traj[-1])
    return traj


def test_linear_map_recovers_known_fixed_point() -> None:
    a, c = 0.15, 0.5  # fixed point 0.3
    levels = (0.1, 0.3, 0.6)
    trajs = [simulate(a, c, b0, 3) for b0 in levels for _ in range(3)]
    fit = fit_bias_map(trajs, [b0 for b0 in levels for _ in range(3)])
    assert fit["a"] == pytest.approx(a) and fit["c"] == pytest.approx(c)
    assert fit["fixed_point"] == pytest.approx(0.3)
    assert fit["stable"] and fit["n_points"] == 27 and fit["n_chains"] == 9
    # Low levels amplify, high levels decay towards it.
    assert trajs[0][-1] > trajs[0][0] and trajs[-1][-1] < trajs[-1][0]


def test_fit_needs_variation() -> None:
    assert "note" in fit_bias_map([[0.2]], [0.2])
    assert "not identified" in fit_bias_map([[0.2, 0.2], [0.2, 0.3]], [0.2, 0.2])["note"]


def _chain_data(a: float, c: float, levels, chains: int, n: int, gens: int, sd: float, seed: int):
    """Per level and chain, pairing codes per generation from the map with a chain effect
    (sd) on top, every text paired with probability 1/2; generation 0 at the design level."""
    rng = np.random.default_rng(seed)

    def corpus(share: float) -> np.ndarray:
        share = min(max(share, 0.0), 1.0)
        paired = rng.random(n) < 0.5
        return np.where(paired, np.where(rng.random(n) < share, 1, -1), 0)

    data = []
    for b0 in levels:
        lv = []
        for _ in range(chains):
            u = rng.normal(0, sd)
            b, traj = b0, [np.where(np.arange(n) < round(b0 * n), 1, -1)]
            for _k in range(gens):
                b = a + c * b + u
                traj.append(corpus(b))
                b = float(DIRECTION_STATS[CONDITIONAL](traj[-1]))  # the next model learns this
            lv.append(traj)
        data.append(lv)
    return data


CONDITIONAL = "rule.gender.conditional_stereotype_share"


@pytest.mark.parametrize(("a", "c", "first"), [(0.2, 0.6, 0), (0.45, 0.1, 0), (0.2, 0.6, 1)])
def test_fake_chains_with_known_map_cover_the_truth(a: float, c: float, first: int) -> None:
    """A known map with chain effects and text noise: c's and b*'s intervals contain the truth
    (generation 0 fixed, chains the replicates)."""
    levels = (0.1, 0.3, 0.6)
    data = _chain_data(a, c, levels, chains=6, n=400, gens=4, sd=0.01, seed=3)
    trajs = chain_trajectories(data, DIRECTION_STATS[CONDITIONAL])
    fit = fit_bias_map(trajs, [b0 for b0 in levels for _ in range(6)], first_generation=first)
    s = fit["slope"]
    assert s["status"] == "replicated" and s["ci_low"] <= c <= s["ci_high"]
    assert s["mde_80"] > 0 and fit["first_generation"] == first
    b_star = a / (1 - c)
    if fit["ci"] is not None:
        assert fit["ci"]["low"] <= b_star <= fit["ci"]["high"]
        assert 0 <= fit["ci"]["low"] <= fit["ci"]["high"] <= 1
    else:
        assert fit["fixed_point_interval"]["status"] == "unbounded"


def test_two_chains_are_not_replicated() -> None:
    data = _chain_data(0.2, 0.6, (0.1, 0.6), chains=1, n=200, gens=3, sd=0.0, seed=1)
    trajs = chain_trajectories(data, DIRECTION_STATS[CONDITIONAL])
    fit = fit_bias_map(trajs, [0.1, 0.6])
    assert fit["status"] == "not replicated" and fit["ci"] is None
    assert fit["slope"]["ci_low"] is None and fit["slope"]["mde_80"] is None
    assert "not replicated" in fixed_point_text(fit)


def test_slope_ci_reaching_one_makes_b_star_unbounded() -> None:
    """A map near c = 1 with chain noise: c's CI reaches 1 and b* is reported as unbounded."""
    rng = np.random.default_rng(0)
    levels = (0.2, 0.4, 0.6)
    trajs, starts = [], []
    for b0 in levels:
        for _ in range(4):
            b, traj = b0, [b0]
            for _k in range(3):
                b = 0.01 + 0.98 * b + rng.normal(0, 0.05)
                traj.append(b)
            trajs.append(traj)
            starts.append(b0)
    fit = fit_bias_map(trajs, starts)
    assert fit["slope"]["ci_high"] >= 1
    assert fit["fixed_point_interval"]["status"] == "unbounded" and fit["ci"] is None
    assert "unbounded" in fixed_point_text(fit)


def test_map_text_writes_the_sign_once() -> None:
    assert map_text(0.12, -0.0001) == "b_(k+1) = 0.120 + 0.000·b_k"
    assert map_text(0.12, -0.25) == "b_(k+1) = 0.120 − 0.250·b_k"
    assert "+ -" not in map_text(0.1, -0.3)


FEMALE_WORDS = {"she", "her", "herself", "mary", "linda"}
MALE_WORDS = {"he", "him", "his", "himself", "james", "robert"}


def _referent(text: str) -> str | None:
    words = set(text.replace(",", " ").replace(".", " ").lower().split())
    female, male = bool(words & FEMALE_WORDS), bool(words & MALE_WORDS)
    assert not (female and male), text
    return "female" if female else "male" if male else None


@pytest.mark.parametrize("remainder", ["anti", "neutral"])
def test_seed_corpus_exact_share_and_provenance(remainder: str) -> None:
    recs = build_seed_corpus(0.3, 50, VOCAB, seed=4, remainder=remainder)
    kinds = [r.meta["seed_kind"] for r in recs]
    assert kinds.count("stereotypical") == 15 and kinds.count(remainder) == 35
    assert all(r.generation == 0 and r.initial_level == 0.3 and r.source == "seed" for r in recs)
    assert len({r.id for r in recs}) == 50
    assert build_seed_corpus(0.3, 50, VOCAB, seed=4, remainder=remainder) == recs
    assert build_seed_corpus(0.3, 50, VOCAB, seed=5, remainder=remainder) != recs
    codes = dict(VOCAB.occupations)
    for r in recs:
        assert "{" not in r.text and r.text[0].isupper()
        occ = r.meta["occupation"]
        assert occ in r.text.lower() and r.meta["occupation_code"] == codes[occ]
        ref = _referent(r.text)
        assert ref == r.meta["referent"], r.text
        if r.meta["seed_kind"] == "neutral":
            assert ref is None
        elif r.meta["seed_kind"] == "stereotypical":
            assert ref == codes[occ], r.text
        else:
            assert ref is not None and ref != codes[occ], r.text


def test_seed_corpus_balances_codes_and_referents() -> None:
    """Within each kind, male- and female-coded occupations (and so referents) are balanced."""
    recs = build_seed_corpus(0.6, 100, VOCAB, seed=0)
    for kind, count in (("stereotypical", 60), ("anti", 40)):
        sub = [r for r in recs if r.meta["seed_kind"] == kind]
        assert len(sub) == count
        male_coded = sum(r.meta["occupation_code"] == "male" for r in sub)
        male_ref = sum(r.meta["referent"] == "male" for r in sub)
        assert male_coded == count // 2 and male_ref == count // 2
    odd = build_seed_corpus(0.1, 30, VOCAB, seed=0)  # 3 stereotypical: 2 + 1
    sub = [r for r in odd if r.meta["seed_kind"] == "stereotypical"]
    assert sorted(sum(r.meta["occupation_code"] == g for r in sub) for g in ("male", "female")) == [
        1,
        2,
    ]


def test_chains_are_independent_replicates() -> None:
    a = build_seed_corpus(0.3, 40, VOCAB, seed=0, chain=0)
    b = build_seed_corpus(0.3, 40, VOCAB, seed=0, chain=1)
    assert [r.text for r in a] != [r.text for r in b]
    assert all(r.id.startswith("b0.3-c1-g0-") for r in b) and not set(map(str, a)) & set(
        map(str, b)
    )
    assert sum(r.meta["seed_kind"] == "stereotypical" for r in b) == 12


def test_seed_corpus_needs_both_codes() -> None:
    only_female = SeedVocabulary(occupations=[("nurse", "female")], names=VOCAB.names)
    with pytest.raises(ValueError, match="male-coded"):
        build_seed_corpus(0.5, 10, only_female)
    with pytest.raises(ValueError, match="remainder"):
        build_seed_corpus(0.5, 10, VOCAB, remainder="other")


def test_templates_fill_cleanly() -> None:
    for t in seed_templates():
        for g in ("male", "female"):
            text = fill_template(t["gendered"], "engineer", g, "Sam")
            assert "{" not in text
        assert "{" not in fill_template(t["neutral"], "engineer", None, None)
    assert fill_template("{name} is {a_occ}.", "engineer", "male", "Sam") == "Sam is an engineer."


def test_clean_completion() -> None:
    assert clean_completion('  4. "The nurse smiled."\n\n5. Next') == "The nurse smiled."
    assert clean_completion("Here is a new text:\nThe pilot landed.") == "The pilot landed."
    assert clean_completion("Sure! Here's one: The cook laughed.") == "The cook laughed."
    assert clean_completion("   \n ") == ""


def test_prompts_are_data() -> None:
    tpl = prompt_templates()
    assert {"self_instruct", "self_instruct_fair", "self_instruct_chat"} <= set(tpl)
    msgs = build_prompt(["A.", "B."], tpl["self_instruct_chat"])
    assert msgs[-1]["role"] == "user" and "1. A.\n2. B." in msgs[-1]["content"]
    assert "gender" in build_prompt(["A."], tpl["self_instruct_chat_fair"])[-1]["content"]
    raw = build_prompt(["A.", "B."], tpl["self_instruct"])
    assert isinstance(raw, str) and raw.endswith("1. A.\n2. B.\n3.")
    assert "gender" in build_prompt(["A."], tpl["self_instruct_fair"])
    assert tpl["self_instruct"]["stop"] == ["\n"]
    # the task-keeping prompts say nothing about gender
    genderless = {"he", "she", "his", "her", "him", "gender", "they", "their", "them"}
    plain = build_prompt(["A."], tpl["work_person_the"])
    assert plain.endswith("1. A.\n2. The") and "job" in plain
    assert not genderless & set(plain.lower().split())
    # the study's default names an occupation per text, and still no gender
    default = EquilibriumStudyConfig().prompt
    assert default == "work_occupation_said" and uses_occupation(tpl[default])
    text = build_prompt(["A."], tpl[default], "engineer")
    assert text.endswith("1. A.\n2. The engineer said that") and "about an engineer." in text
    assert not genderless & set(text.lower().replace(".", " ").split())
    with pytest.raises(ValueError, match="names an occupation"):
        build_prompt(["A."], tpl[default])
    assert not uses_occupation(tpl["work_person_the"])


def test_named_occupations_are_balanced_and_recorded() -> None:
    """A template with an {occ} slot gets one occupation per new text, half male- and half
    female-coded; the text starts with the rendered start and keeps the draw in meta."""
    prev = build_seed_corpus(0.3, 20, VOCAB, seed=0)
    tpl = prompt_templates()["work_occupation_said"]
    be = FakeBackend()
    params = SamplingParams(max_tokens=30, seed=0)
    with pytest.raises(ValueError, match="pass vocab"):
        next_generation(prev, be, params, n=4, generation=1, prompt=tpl)
    recs = next_generation(prev, be, params, n=30, generation=1, prompt=tpl, vocab=VOCAB)
    codes = [r.meta["prompt_occupation_code"] for r in recs]
    assert codes.count("male") == codes.count("female") == 15
    for r in recs:
        occ = r.meta["prompt_occupation"]
        assert dict(VOCAB.occupations)[occ] == r.meta["prompt_occupation_code"]
        assert r.text.startswith(f"The {occ} said that")  # the model continues the start
    again = next_generation(prev, be, params, n=30, generation=1, prompt=tpl, vocab=VOCAB)
    assert [r.meta["prompt_occupation"] for r in again] == [
        r.meta["prompt_occupation"] for r in recs
    ]
    other = next_generation(prev, be, params, n=30, generation=1, prompt=tpl, vocab=VOCAB, chain=1)
    assert [r.meta["prompt_occupation"] for r in other] != [
        r.meta["prompt_occupation"] for r in recs
    ]


def test_next_generation_with_fake_backend() -> None:
    prev = build_seed_corpus(0.6, 20, VOCAB, seed=0)
    be = FakeBackend()
    params = SamplingParams(max_tokens=30, seed=0)
    recs = next_generation(prev, be, params, n=25, generation=1, k_shots=3, seed=0, chunk_size=7)
    assert len(recs) == 25
    ids = {r.id for r in prev}
    for r in recs:
        assert r.text and r.generation == 1 and r.source == "synthetic"
        assert len(r.parents) == 3 and set(r.parents) <= ids
        assert r.initial_level == 0.6
    again = next_generation(prev, be, params, n=25, generation=1, k_shots=3, seed=0, chunk_size=7)
    assert [r.text for r in again] == [r.text for r in recs]


def test_pct_change() -> None:
    assert pct_change(0.15, 0.1) == pytest.approx(50.0)
    assert pct_change(0.05, 0.1) == pytest.approx(-50.0)
    assert pct_change(0.1, 0.0) is None


def test_clean_completion_real_shapes() -> None:
    raw = (
        "Here's a short text about a person at work, in the same style as the previous ones:"
        "\n\nThe new secretary introduces themselves to the team on Monday, and the carpenter "
        "is proud of himself."
    )
    assert clean_completion(raw).startswith("The new secretary introduces")
    raw = (
        "I'll try to be more specific. Here's a new text:\n\n\"Shelter, my friend. I'm "
        "working late tonight. I've got a meeting, so I was hoping to get a little"
    )
    assert clean_completion(raw) == "Shelter, my friend. I'm working late tonight."
    assert (
        clean_completion("The nurse smiled. She left. Then more.") == "The nurse smiled. She left."
    )
    assert clean_completion("The nurse smiled and", max_sentences=2) == "The nurse smiled and"
    assert (
        clean_completion('"Dr. Lee operated. Mr. Ng left. Bye."')
        == "Dr. Lee operated. Mr. Ng left."
    )


class _Scripted:
    """A backend that answers from a script per attempt (to test the retry loop)."""

    name = "scripted"
    model_id = "scripted"

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.calls = 0

    def generate(self, prompts, params):
        from synthbias.generate.protocol import Completion

        out = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return [
            Completion(
                text=out[i % len(out)],
                n_prompt_tokens=1,
                n_tokens=1,
                finish_reason="stop",
                seed=params.seed,
            )
            for i in range(len(prompts))
        ]


def test_rejected_texts_are_regenerated_then_kept_and_flagged() -> None:
    prev = build_seed_corpus(0.5, 10, VOCAB, seed=0)
    params = SamplingParams(max_tokens=20, seed=0)
    accept = lambda t, _opening: "nurse" in t  # noqa: E731
    be = _Scripted([["off topic."], ["The nurse said she was fine."]])
    recs = next_generation(prev, be, params, n=4, generation=1, accept=accept, max_retries=2)
    assert be.calls == 2 and all(r.meta["accepted"] and r.meta["attempts"] == 2 for r in recs)
    be = _Scripted([["off topic."]])
    recs = next_generation(prev, be, params, n=4, generation=1, accept=accept, max_retries=1)
    assert be.calls == 2  # the budget: one try plus one retry
    assert all(r.text == "Off topic." or r.text == "off topic." for r in recs)
    assert not any(r.meta["accepted"] for r in recs)


def test_shots_come_from_eligible_texts() -> None:
    prev = build_seed_corpus(0.5, 10, VOCAB, seed=0)
    for i, r in enumerate(prev):
        r.meta["on_topic"] = i < 4
    keep = {r.id for r in prev[:4]}
    recs = next_generation(
        prev,
        FakeBackend(),
        SamplingParams(max_tokens=20, seed=0),
        n=12,
        generation=1,
        k_shots=3,
        eligible=lambda r: r.meta["on_topic"],
    )
    assert all(set(r.parents) <= keep for r in recs)


def test_fit_leaves_out_transitions_without_pairings() -> None:
    levels = (0.1, 0.3, 0.9)
    data = _chain_data(0.2, 0.6, levels, chains=3, n=300, gens=3, sd=0.0, seed=0)
    data[0][0][2] = np.zeros(300, dtype=int)  # a corpus without pairings: its value is undefined
    trajs = chain_trajectories(data, DIRECTION_STATS[CONDITIONAL])
    fit = fit_bias_map(trajs, [b0 for b0 in levels for _ in range(3)])
    assert fit["transitions_left_out"] == 2 and fit["n_points"] == 25
    assert abs(fit["fixed_point"] - 0.5) < 0.1
