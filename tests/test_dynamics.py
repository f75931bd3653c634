import numpy as np
import pytest

from synthbias.dynamics import (
    SeedVocabulary,
    build_prompt,
    build_seed_corpus,
    clean_completion,
    fill_template,
    fit_equilibrium,
    fit_linear_map,
    next_generation,
    pct_change,
    prompt_templates,
    seed_templates,
)
from synthbias.generate.fake import FakeBackend
from synthbias.generate.protocol import SamplingParams

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
    trajs = [simulate(a, c, b0, 3) for b0 in (0.1, 0.3, 0.6)]
    fa, fc, fp = fit_linear_map(trajs)
    assert fa == pytest.approx(a) and fc == pytest.approx(c)
    assert fp == pytest.approx(0.3)
    # Low levels amplify, high levels decay towards it.
    assert trajs[0][-1] > trajs[0][0] and trajs[2][-1] < trajs[2][0]


def test_fit_needs_variation() -> None:
    with pytest.raises(ValueError):
        fit_linear_map([[0.2]])
    with pytest.raises(ValueError):
        fit_linear_map([[0.2, 0.2], [0.2, 0.3]])


@pytest.mark.parametrize("method", ["texts", "pairs"])
def test_bootstrap_ci_covers_true_equilibrium(method: str) -> None:
    rng = np.random.default_rng(0)
    a, c, n = 0.2, 0.6, 400  # b* = 0.5
    per_sample = []
    for b0 in (0.1, 0.3, 0.9):
        traj = simulate(a, c, b0, 3)
        per_sample.append([(rng.random(n) < b).astype(float) for b in traj])
    fit = fit_equilibrium(per_sample, method=method, n_resamples=300, seed=1)
    assert fit.stable and fit.n_points == 9
    assert abs(fit.fixed_point - 0.5) < 0.1
    assert fit.ci is not None and fit.ci.low <= fit.fixed_point <= fit.ci.high
    assert fit.ci.low < 0.5 < fit.ci.high
    assert fit.stable_share and fit.stable_share > 0.9
    d = fit.to_dict()
    assert d["ci"]["low"] == fit.ci.low


def test_unstable_map_reported() -> None:
    per_sample = [[np.full(10, v) for v in simulate(0.05, 1.2, b0, 2)] for b0 in (0.1, 0.2)]
    fit = fit_equilibrium(per_sample, n_resamples=20)
    assert not fit.stable


def test_seed_corpus_exact_share_and_provenance() -> None:
    recs = build_seed_corpus(0.3, 50, VOCAB, seed=4)
    kinds = [r.meta["seed_kind"] for r in recs]
    assert kinds.count("stereotypical") == 15 and len(recs) == 50
    assert all(r.generation == 0 and r.initial_level == 0.3 and r.source == "seed" for r in recs)
    assert len({r.id for r in recs}) == 50
    assert build_seed_corpus(0.3, 50, VOCAB, seed=4) == recs
    assert build_seed_corpus(0.3, 50, VOCAB, seed=5) != recs
    for r in recs:
        assert "{" not in r.text and r.text[0].isupper()
        occ = r.meta["occupation"]
        assert occ in r.text.lower()
        words = set(r.text.replace(",", " ").replace(".", " ").lower().split())
        gendered = words & {
            "he",
            "she",
            "him",
            "her",
            "his",
            "himself",
            "herself",
            "mary",
            "linda",
            "james",
            "robert",
        }
        if r.meta["seed_kind"] == "neutral":
            assert not gendered, r.text
        else:
            assert gendered, r.text
            female = bool(gendered & {"she", "her", "herself", "mary", "linda"})
            assert female == (dict(VOCAB.occupations)[occ] == "female"), r.text


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
