"""Direction metrics (conditional share, pairing rate), cluster bootstrap, on-topic check, and the
generation-0 guarantee on the real rule metric."""

from __future__ import annotations

import numpy as np
import pytest

from synthbias.measure.config import MeasureConfig
from synthbias.measure.direction import (
    CONDITIONAL,
    DIRECTION_STATS,
    PAIRING,
    RATE,
    direction_metrics,
    label_codes,
    on_topic,
)
from synthbias.stats.chains import cluster_values
from synthbias.studies.equilibrium.generation import build_seed_corpus
from synthbias.studies.equilibrium.measurer import GenderMeasurer


@pytest.fixture(scope="module")
def measurer() -> GenderMeasurer:
    return GenderMeasurer(MeasureConfig(embedding=False, n_resamples=200))


def test_direction_metrics_denominators() -> None:
    codes = np.array([1, 1, 1, -1, 0, 0, 0, 0])
    m = direction_metrics(codes, n_resamples=300, seed=0)
    assert m[CONDITIONAL].value == pytest.approx(3 / 4)
    assert m[PAIRING].value == pytest.approx(4 / 8)
    assert m[RATE].value == pytest.approx(3 / 8)
    assert m[PAIRING].per_sample == [1, 1, 1, 1, 0, 0, 0, 0] and m[RATE].per_sample[:4] == [
        1,
        1,
        1,
        0,
    ]
    assert m[CONDITIONAL].per_sample == []  # a ratio is not a mean of per-text scores
    assert (
        m[CONDITIONAL].meta["pairings"] == 4
        and "stereotypical + anti" in (m[CONDITIONAL].meta["denominator"])
    )
    ci = m[CONDITIONAL].ci
    assert ci is not None and 0 <= ci.low < 0.75 <= ci.high <= 1
    empty = direction_metrics(np.zeros(5, dtype=int), n_resamples=50)
    assert np.isnan(empty[CONDITIONAL].value) and "no text pairs" in empty[CONDITIONAL].meta["note"]


def test_ratio_bootstrap_resamples_texts_not_means() -> None:
    """The conditional share of a resample is stereo/paired of that resample (a ratio)."""
    x = np.array([[1, 0, 0, -1], [1, 1, 0, 0]])
    assert list(DIRECTION_STATS[CONDITIONAL](x)) == [0.5, 1.0]


def test_cluster_bootstrap_widens_with_chain_spread() -> None:
    rng = np.random.default_rng(0)
    same = [np.where(rng.random(200) < 0.5, 1, -1) for _ in range(4)]
    spread = [np.where(rng.random(200) < p, 1, -1) for p in (0.2, 0.4, 0.6, 0.8)]
    stat = DIRECTION_STATS[CONDITIONAL]
    a = cluster_values(same, stat, n_resamples=400, seed=1)
    b = cluster_values(spread, stat, n_resamples=400, seed=1)
    assert a.method == "chains, then texts" and len(b.per_chain) == 4
    assert (b.ci.high - b.ci.low) > 2 * (a.ci.high - a.ci.low)
    one = cluster_values(same[:1], stat, n_resamples=200, seed=1)
    assert one.method == "single chain: texts only" and one.ci.low < one.value < one.ci.high


@pytest.mark.parametrize("remainder", ["anti", "neutral"])
@pytest.mark.parametrize("level", [0.0, 0.1, 0.3, 0.6, 1.0])
def test_generation0_shares_equal_b0_exactly(measurer, level: float, remainder: str) -> None:
    vocab = measurer.seed_vocabulary()
    recs = build_seed_corpus(level, 100, vocab, seed=3, remainder=remainder, chain=2)
    measurer.check_seed_corpus(recs)
    m = measurer.measure([r.text for r in recs])
    if remainder == "anti":
        assert m[CONDITIONAL].value == pytest.approx(level, abs=1e-12)
        assert m[PAIRING].value == 1.0
    else:
        assert m[PAIRING].value == pytest.approx(level)
    assert m[RATE].value == pytest.approx(level, abs=1e-12)
    assert all(measurer.on_topic(r.text) for r in recs if remainder == "anti")
    # balanced referents: a global lean to one pronoun is not read as stereotyping
    refs = [r.meta["referent"] for r in recs if r.meta["referent"]]
    assert abs(refs.count("male") - refs.count("female")) <= 2


def test_on_topic(measurer) -> None:
    rule = measurer.rule
    yes = [
        "The nurse said she was tired.",
        "The engineer fixed it and they left.",
        "I work as a pilot.",
        "The writer will leave by 7:45 tomorrow.",  # on topic, unpaired: de-gendered, not drift
        "The new employee was on the team.",
    ]
    no = [
        "I'm a customer at the store.",
        "The company's product is biodegradable.",
        "The dog ran down the street on Tuesday.",
        "",
    ]
    assert all(on_topic(t, rule.score_text(t)) for t in yes)
    assert not any(on_topic(t, rule.score_text(t)) for t in no)
    assert list(label_codes(rule.score_texts(["The nurse said she was fine.", "Hi."]))) == [1, 0]


def test_seed_check_catches_a_mislabelled_seed(measurer) -> None:
    recs = build_seed_corpus(0.5, 10, measurer.seed_vocabulary(), seed=0)
    recs[0] = recs[0].model_copy(update={"text": "The weather is fine."})
    with pytest.raises(ValueError, match="do not score as designed"):
        measurer.check_seed_corpus(recs)


def _results(off: float, pairings: int, cond_ci: tuple[float, float]) -> dict:
    def gen(k: int) -> dict:
        p = 1.0 if k == 0 else pairings / 100
        return {
            "generation": k,
            "n": 100,
            "pairings": 100 if k == 0 else pairings,
            "off_topic_share": {"value": 0.0 if k == 0 else off},
            "metrics": {
                CONDITIONAL: {"value": 0.5, "ci": {"low": cond_ci[0], "high": cond_ci[1]}},
                PAIRING: {"value": p, "ci": {"low": p - 0.05, "high": min(p + 0.05, 1.0)}},
            },
        }

    return {
        "fit_metric": CONDITIONAL,
        "chains": 1,
        "levels": [
            {"level": b0, "chains": 1, "generations": [gen(0), gen(1)]} for b0 in (0.1, 0.6)
        ],
        "equilibrium": {"a": 0.1, "c": 0.5, "ci": {"low": 0.1, "high": 0.3}, "fixed_point": 0.2},
    }


def test_interpretation_names_every_reason() -> None:
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
    from synthbias.studies.equilibrium.summary import interpretation

    study = EquilibriumStudyConfig(min_pairings=30, max_off_topic=0.2)
    ok = interpretation(_results(0.1, 40, (0.4, 0.6)), study)
    assert ok["interpretable"] and not ok["reasons"]
    bad = interpretation(_results(0.35, 12, (0.4, 0.6)), study)
    assert not bad["interpretable"] and len(bad["reasons"]) == 4
    assert "35% of texts off topic (limit 20%)" in bad["reasons"][0]
    assert "12 coded pairings" in bad["reasons"][1] and "30" in bad["reasons"][1]
    assert any("pairing rate falls from 1.00 to 0.12" in f for f in bad["findings"])


def _replicated(results: dict, se: float, chains: int = 5) -> dict:
    """``results`` with every generated cell of the fit metric replicated over ``chains`` chains
    at between-chain SE ``se`` (its MDE from stats.power)."""
    from synthbias.stats.power import mde

    for lv in results["levels"]:
        lv["chains"] = chains
        for g in lv["generations"][1:]:
            m = g["metrics"][CONDITIONAL]
            m |= {"status": "replicated", "se": se, "n_chains": chains}
            m["mde_80"] = mde(se, df=chains - 1) if se is not None else None
    return results


def test_power_at_80_percent_against_the_papers_effects() -> None:
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
    from synthbias.studies.equilibrium.summary import power_lines, power_summary

    study = EquilibriumStudyConfig(n=100, chains=5)
    tight = power_summary(_replicated(_results(0.0, 400, (0.49, 0.51)), 0.005), study)
    # MDE (2.78 + 0.94) x 0.005 = 0.019 on 4 df; the binomial MDE at b0 = 0.1 with 400
    # pairings is 0.042: +0.036 is NOT detectable at 80% power, -0.156 from 0.6 is
    assert [p["visible"] for p in tight["paper"]] == [False, True]
    assert tight["worst"]["mde_80"] == pytest.approx(3.717 * 0.005, rel=0.01)
    wide = power_summary(_replicated(_results(0.0, 40, (0.3, 0.7)), 0.1), study)
    assert [p["visible"] for p in wide["paper"]] == [False, False]
    assert wide["paper_equilibrium"]["comparable"] is False  # their score vs our share
    text = "\n".join(power_lines({"power": wide}))
    assert "The paper's effect (Gemma-2-2b-it, theirs)" in text and "NOT detectable" in text
    assert "Worst cell: b0 = " in text and "80% power" in text


def test_power_sentences_at_small_n_say_why_not() -> None:
    """Issue 29 item 11: no "±0.00", no median hiding a cell: a cell without an MDE says why."""
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
    from synthbias.studies.equilibrium.summary import power_lines, power_summary

    study = EquilibriumStudyConfig(n=100, chains=2)
    two = power_summary(_results(0.0, 40, (0.3, 0.7)), study)  # no replicate status: n.r.
    text = "\n".join(power_lines({"power": two}))
    assert "±0.00" not in text and "needs ≥ 3" in text and "No design-wide MDE" in text
    assert [p["visible"] for p in two["paper"]] == [None, None]
    same = power_summary(_replicated(_results(0.0, 40, (0.3, 0.7)), 0.0), study)
    text = "\n".join(power_lines({"power": same}))
    assert "±0.00" not in text and "not estimable" in text


def test_two_chains_are_not_replicated_three_are() -> None:
    from synthbias.measure.direction import DIRECTION_STATS
    from synthbias.studies.equilibrium.summary import replicate_headline

    rng = np.random.default_rng(0)
    chains = [np.where(rng.random(40) < 0.3, 1, -1) for _ in range(3)]
    stat = DIRECTION_STATS[CONDITIONAL]
    two = replicate_headline(chains[:2], stat, n_resamples=100)
    assert two["status"] == "not replicated" and two["ci"] is None and two["mde_80"] is None
    assert two["text_ci"]["low"] is not None and "within-run" in two["text_ci_method"]
    assert len(two["per_chain"]) == 2
    three = replicate_headline(chains, stat, n_resamples=100)
    assert three["status"] == "replicated" and three["ci"]["low"] < three["value"]
    assert three["mde_80"] > 0
    staged = replicate_headline(chains, stat, n_resamples=200, inference="two_stage")
    assert staged["status"] == "replicated" and "two-stage" in staged["ci_method"]


def test_unpaired_kinds(measurer) -> None:
    from synthbias.measure.direction import unpaired_kinds

    texts = [
        "The new employee said he was happy.",  # uncoded role, gendered referent
        "The nurse said they were tired.",  # coded occupation, no gendered referent
        "The employee left early.",  # neither
        "The nurse said she was tired.",  # paired: not counted
        "The dog barked.",  # off topic: not counted
    ]
    scores = measurer.rule.score_texts(texts)
    off = [not on_topic(t, s) for t, s in zip(texts, scores, strict=True)]
    assert unpaired_kinds(scores, off) == {"uncoded_role": 1, "no_referent": 1, "no_gender": 1}


# --------------------------------------------------------------------------- per occupation code
# (issue 27 item 2: the code-balanced share and the pairing rate per code)


def _gender_blind(n: int, seed: int = 0) -> np.ndarray:
    """Packed codes of a gender-blind generator: P(he) = 0.8 whatever the occupation, pairing
    80 % of male-coded and 50 % of female-coded texts, half the texts of each code."""
    from synthbias.measure.direction import OCCUPATION_INDEX

    rng = np.random.default_rng(seed)
    male = np.arange(n) % 2 == 0
    paired = rng.random(n) < np.where(male, 0.8, 0.5)
    he = rng.random(n) < 0.8
    sign = np.where(paired, np.where(he == male, 1, -1), 0)
    occ = np.where(male, OCCUPATION_INDEX["male-coded"], OCCUPATION_INDEX["female-coded"])
    return (sign + 10 * occ).astype(np.int8)


def test_code_balanced_share_of_a_gender_blind_generator_is_one_half() -> None:
    from synthbias.measure.direction import (
        CODE_BALANCED,
        PAIRING_FEMALE_CODED,
        PAIRING_MALE_CODED,
        statistic_for,
    )

    codes = _gender_blind(40_000)
    m = direction_metrics(codes, n_resamples=300, seed=0)
    cb = m[CODE_BALANCED]
    assert cb.value == pytest.approx(0.5, abs=0.01)
    assert cb.ci is not None and cb.ci.low < 0.5 < cb.ci.high
    # the pooled share leans in: (0.8·0.8 + 0.5·0.2) / (0.8 + 0.5) = 0.569
    assert m[CONDITIONAL].value == pytest.approx(0.74 / 1.3, abs=0.01)
    assert m[CONDITIONAL].ci.low > 0.55
    assert m[PAIRING_MALE_CODED].value == pytest.approx(0.8, abs=0.01)
    assert m[PAIRING_FEMALE_CODED].value == pytest.approx(0.5, abs=0.01)
    assert cb.meta["by_code"]["male-coded"]["texts"] == 20_000 and cb.per_sample == []
    # by name, for a fit over resampled texts (rows)
    rows = np.stack([codes, _gender_blind(40_000, seed=1)])
    assert statistic_for(CODE_BALANCED)(rows) == pytest.approx([0.5, 0.5], abs=0.01)


def test_packed_codes_leave_the_plain_metrics_unchanged() -> None:
    from synthbias.measure.direction import CODE_BALANCED, label_signs

    codes = _gender_blind(2_000)
    plain = label_signs(codes)
    assert set(np.unique(plain)) <= {-1, 0, 1}
    packed, old = direction_metrics(codes, 100), direction_metrics(plain, 100)
    for name in (CONDITIONAL, PAIRING, RATE):
        assert packed[name].value == pytest.approx(old[name].value)
        assert packed[name].meta["pairings"] == old[name].meta["pairings"]
    # plain codes carry no occupation code: the per-code metrics say so instead of guessing
    assert np.isnan(old[CODE_BALANCED].value)
    assert "coded_labels" in old[CODE_BALANCED].meta["note"]


def test_code_balanced_share_from_rule_scores_and_registry() -> None:
    from synthbias.core.registry import METRIC_FAMILIES
    from synthbias.measure.direction import CODE_BALANCED, coded_labels
    from synthbias.measure.rules import GenderRuleScorer

    scorer = GenderRuleScorer()
    texts = [
        "The mechanic said that he was tired.",  # male-coded, stereotypical
        "The mechanic said that she was tired.",  # male-coded, anti
        "The nurse said that she was tired.",  # female-coded, stereotypical
        "The nurse said that they were tired.",  # female-coded, unpaired
    ]
    prompts = ["mechanic", "mechanic", "nurse", "nurse"]
    codes = coded_labels(scorer.score_texts(texts, prompt_occupations=prompts))
    m = direction_metrics(codes, n_resamples=50)
    assert m[CODE_BALANCED].value == pytest.approx(0.5 * (0.5 + 1.0))
    assert m["rule.gender.pairing_rate_female_coded"].value == pytest.approx(0.5)
    orient = METRIC_FAMILIES.meta("rule")["orientations"][CODE_BALANCED]
    assert orient.sign == 1 and orient.neutral == 0.5


def test_on_topic_reads_the_continuation_after_the_prompts_opening(measurer) -> None:
    """Issue 27 item 3: "The {occupation} said that …" names the occupation whatever the model
    writes; with the opening, only a continuation that refers to a person is on topic."""
    from synthbias.measure.direction import continuation, refers_to_person

    rule, opening = measurer.rule, "The nurse said that"

    def check(text: str) -> bool:
        rest = continuation(text, opening)
        return on_topic(text, rule.score_text(text), opening, rule.score_text(rest))

    yes = [
        "The nurse said that she was tired.",  # a pronoun
        "The nurse said that they would call back.",
        "The nurse said that I should rest.",
        "The nurse said that Linda would come in.",  # a name
        "The nurse said that Mr. Smith had left.",  # a title
        "The nurse said that the patient was asleep.",  # a person noun
        "The nurse said that the doctor was late.",  # an occupation
        "The nurse said that the children were loud.",  # a neutral person noun
    ]
    no = [
        "The nurse said that the weather was nice.",
        "The nurse said that it is Tuesday.",
        "The nurse said that",
        "the  NURSE said that the ward was full.",  # case and spacing do not hide the opening
    ]
    assert all(check(t) for t in yes)
    assert not any(check(t) for t in no)
    # without the opening every one of them names the occupation: on topic by construction
    assert all(on_topic(t, rule.score_text(t)) for t in no[:2])
    assert continuation("A text the model wrote.", opening) == "A text the model wrote."
    assert not refers_to_person(" the ward was full.") and refers_to_person(" someone left.")
    assert measurer.on_topic(no[0]) and not measurer.on_topic(no[0], opening)


def test_paper_equilibrium_is_shown_on_its_own_scale_without_a_verdict() -> None:
    """Issue 27 item 4: the paper's 0.11–0.13 is its own bias score (0 = none), our b* a share
    (0.5 = no lean): both shown, labelled, and not compared (no overlap verdict)."""
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
    from synthbias.studies.equilibrium.summary import power_lines, power_summary

    for ci in ((0.1, 0.3), (0.4, 0.6)):  # overlapping their band or not: the same wording
        res = _results(0.0, 40, (0.3, 0.7))
        res["equilibrium"]["ci"] = {"low": ci[0], "high": ci[1]}
        pw = power_summary(res, EquilibriumStudyConfig(n=100))
        eq = pw["paper_equilibrium"]
        assert "overlaps_paper" not in eq and eq["comparable"] is False
        assert eq["paper_band"] == [0.11, 0.13] and "0 means no bias" in eq["paper_metric"]
        line = power_lines({"power": pw})[-1]
        assert "overlap" not in line
        assert "(Gemma-2-2b-it, theirs): 0.11–0.13 on the paper's own bias score" in line
        assert f"[{ci[0]:.3f}, {ci[1]:.3f}] in {CONDITIONAL}" in line
        assert "0.5 means no lean" in line and "not compared numerically" in line
