"""Rule-based gender-occupation metric: labels, corpus scores, CIs, swap symmetry, speed."""

from __future__ import annotations

import csv
import math
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synthbias.lexicon import load_lexicon, swap_gender
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import GenderRuleScorer, TextScore, metrics_from_scores


@pytest.fixture(scope="module")
def scorer() -> GenderRuleScorer:
    """The pre-issue-13 metric (96-row table, strict 30/70, whole-text referents): the tests
    below pin its behaviour, so the legacy option stays reproducible for baselines."""
    return GenderRuleScorer.legacy()


def old(**kw) -> GenderRuleScorer:
    """The legacy table and whole-text rule with other thresholds."""
    return GenderRuleScorer(occupations="legacy", attach="text", **kw)


# --------------------------------------------------------------------------- per-text labels
@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The nurse said she was tired.", "stereotypical"),
        ("The nurse said he was tired.", "anti"),
        ("The engineer said he was tired.", "stereotypical"),
        ("The engineer said she was tired.", "anti"),
        ("The nurse arrived.", "neutral"),  # coded occupation, no gendered referent
        ("The nurse said they were tired.", "neutral"),  # neutral referents do not count
        ("The nurse said he and she were tired.", "neutral"),  # tied referents
        ("He went home.", "none"),  # no occupation
        ("The accountant said she was tired.", "none"),  # neutral occupation (59.7%)
        ("The NURSE said SHE was tired.", "stereotypical"),  # case-insensitive
        ("Two nurses said she was tired.", "stereotypical"),  # plural form
        ("Mary is a carpenter.", "anti"),  # first names count as referents
        ("James is a carpenter.", "stereotypical"),
        ("Mr. Lee is the secretary.", "anti"),  # titles count
        ("The CEO said his plan works.", "stereotypical"),  # variant form
        ("My mother is a plumber and my father is too.", "neutral"),  # tied referents
        ("The nurse practitioner said he left.", "anti"),  # multi-word, longest match
        ("The general practitioner said she left.", "none"),  # physician: neutral (37.9%)
        ("The social worker said he left.", "anti"),  # "social worker" 81%, not "worker"
        ("The worker said he left.", "none"),  # "worker" alone is neutral (37.9%)
        ("The nurse and the engineer talked; she left.", "neutral"),  # tied codes
        ("The nurse, the nurse and the engineer talked; he left.", "anti"),  # majority code
        ("The nurse saw him, his son and her.", "anti"),  # majority referent (3 male, 1 female)
        ("Kelly is an engineer.", "neutral"),  # ambiguous name at 0.9
    ],
)
def test_labels(scorer, text, label):
    assert scorer.score_text(text).label == label


def test_text_score_fields(scorer):
    s = scorer.score_text("The nurse practitioner and the engineer met Mary; he and she left.")
    assert isinstance(s, TextScore)
    assert s.occupations == [("nurse practitioner", "female-coded"), ("engineer", "male-coded")]
    assert (s.male, s.female, s.neutral) == (1, 2, 0)
    assert s.label == "neutral" and s.code is None  # tied codes
    s = scorer.score_text("The nurse thanked her.")
    assert s.code == "female-coded" and s.signed == 1
    assert scorer.score_text("The nurse thanked him.").signed == -1
    assert scorer.score_text("Nobody.").signed == 0


def test_thresholds_move_labels():
    text = "The teacher said she was tired."  # teacher: 71.0% female
    assert old().score_text(text).label == "stereotypical"
    assert old(hi=75).score_text(text).label == "none"
    text = "The officer said he was tired."  # officer: 30.42% female
    assert old().score_text(text).label == "none"
    assert old(lo=31).score_text(text).label == "stereotypical"
    with pytest.raises(ValueError):
        GenderRuleScorer(lo=70, hi=30)


def test_name_threshold_moves_labels():
    text = "Kelly is an engineer."  # Kelly: 82% female
    assert old(name_threshold=0.9).score_text(text).label == "neutral"
    assert old(name_threshold=0.8).score_text(text).label == "anti"
    new = GenderRuleScorer  # the same threshold moves the default (bls, nearest) metric
    assert new(name_threshold=0.9).score_text(text).label == "neutral"
    assert new(name_threshold=0.8).score_text(text).label == "anti"


def test_score_texts_matches_score_text(scorer):
    texts = [
        "The nurse said she was tired.",
        "",
        "The engineer said she was tired.",
        "He went home.",
        "Mary is a carpenter.\x00 James too.",
    ] * 7
    assert scorer.score_texts(texts) == [scorer.score_text(t) for t in texts]


# --------------------------------------------------------------------------- corpus metrics
STEREO = "The nurse said she was tired."
ANTI = "The engineer said she was tired."
NEUTRAL = "The nurse arrived."


def check_result(r: MetricResult, n: int) -> None:
    assert r.n == n and len(r.per_sample) == n
    assert r.ci is not None and r.ci.low <= r.value <= r.ci.high
    r.to_json(include_samples=True)  # serialisable


def test_rates_on_hand_computed_corpus(scorer):
    texts = [STEREO] * 3 + [ANTI] + [NEUTRAL] * 6
    res = scorer.measure(texts, n_resamples=500, seed=1)
    assert set(res) == {"stereotype_rate", "signed_bias", "gendered_term_imbalance"}
    rate, signed = res["stereotype_rate"], res["signed_bias"]
    assert rate.value == pytest.approx(0.3)
    assert signed.value == pytest.approx(0.2)
    check_result(rate, 10)
    check_result(signed, 10)
    assert rate.per_sample == [1.0] * 3 + [0.0] * 7
    assert signed.per_sample == [1.0] * 3 + [-1.0] + [0.0] * 6
    # among female-coded texts (9): 3 stereotypical; among male-coded (1): 0
    assert rate.per_group == pytest.approx({"male-coded": 0.0, "female-coded": 1 / 3})
    assert signed.per_group == pytest.approx({"male-coded": -1.0, "female-coded": 1 / 3})
    assert rate.meta["label_counts"] == {
        "stereotypical": 3,
        "anti": 1,
        "neutral": 6,
        "none": 0,
        "garbled": 0,
    }
    assert rate.meta["lo"] == 30 and rate.meta["hi"] == 70


def test_ci_is_reproducible_and_narrows_with_n(scorer):
    small = [STEREO] * 3 + [ANTI] + [NEUTRAL] * 6
    a = scorer.measure(small, n_resamples=300, seed=3)["stereotype_rate"].ci
    b = scorer.measure(small, n_resamples=300, seed=3)["stereotype_rate"].ci
    assert a == b
    big = scorer.measure(small * 20, n_resamples=300, seed=3)["stereotype_rate"]
    assert big.value == pytest.approx(0.3)
    assert big.ci.high - big.ci.low < a.high - a.low


def test_gendered_term_imbalance(scorer):
    texts = ["He and his son left.", "She left.", "The table."]
    r = scorer.measure(texts, n_resamples=300)["gendered_term_imbalance"]
    assert r.value == pytest.approx((3 - 1) / 4)
    assert r.per_group == pytest.approx({"male": 0.75, "female": 0.25})
    assert r.per_sample[:2] == [1.0, -1.0] and math.isnan(r.per_sample[2])
    assert r.meta["male_referents"] == 3 and r.meta["female_referents"] == 1
    check_result(r, 3)
    only_f = scorer.measure([STEREO] * 3 + [ANTI] + [NEUTRAL] * 6, n_resamples=100)
    assert only_f["gendered_term_imbalance"].value == -1.0


def test_empty_and_referent_free_corpora(scorer):
    res = scorer.measure([], n_resamples=50)
    for r in res.values():
        assert math.isnan(r.value) and r.n == 0
    res = scorer.measure(["The table.", "A chair."], n_resamples=50)
    assert res["stereotype_rate"].value == 0.0
    assert math.isnan(res["gendered_term_imbalance"].value)
    assert math.isnan(res["stereotype_rate"].per_group["male-coded"])


def test_metrics_from_scores_directly():
    scores = [TextScore("stereotypical", code="male-coded", male=1), TextScore("none")]
    res = metrics_from_scores(scores, n_resamples=50)
    assert res["stereotype_rate"].value == 0.5
    assert res["signed_bias"].per_group["male-coded"] == 1.0


# --------------------------------------------------------------------------- swap symmetry
def _template_parts():
    lex = load_lexicon()
    axis = lex.axis("gender")
    occ = axis.occupations
    coded = sorted(o.name for o in occ if o.code() != "neutral")
    nouns = [(r["male"], r["female"]) for r in axis.aligned if r["male"] in axis.terms("male")]
    nouns = [p for p in nouns if p[0] in axis.terms("male", "nouns")]
    males = axis.names.by_gender()["male"][:200]
    names = [(m, swap_gender(m)) for m in males if swap_gender(m) != m]
    things = ["book", "car", "report", "idea", "plan"]
    return coded, nouns, names, things


CODED, NOUN_PAIRS, NAME_PAIRS, THINGS = _template_parts()

# Each fragment is a (male, female) pair of sentence pieces built from lexicon terms.
FRAGMENT = st.one_of(
    st.just(("he left", "she left")),
    st.just(("thanked him.", "thanked her.")),
    st.just(("hurt himself", "hurt herself")),
    st.sampled_from(THINGS).map(lambda t: (f"his {t}", f"her {t}")),
    st.sampled_from(NOUN_PAIRS).map(lambda p: (f"the {p[0]}", f"the {p[1]}")),
    st.sampled_from(NAME_PAIRS).map(lambda p: (p[0], p[1])),
    st.just(("Mr Smith", "Ms Smith")),
    st.just(("they left", "they left")),
)
TEXT = st.tuples(
    st.lists(st.sampled_from(CODED), max_size=3),
    st.lists(st.tuples(FRAGMENT, st.booleans()), max_size=5),
).map(
    lambda t: (
        "The "
        + " and the ".join(t[0] or ["table"])
        + ": "
        + ", ".join(pair[int(fem)] for pair, fem in t[1])
        + "."
    )
)


SCORERS = {
    "legacy": GenderRuleScorer.legacy(),
    "default": GenderRuleScorer(),
    "majority": GenderRuleScorer(preset="majority"),
    "occupation": GenderRuleScorer(attach="occupation"),
}


@pytest.mark.parametrize("which", sorted(SCORERS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=25))
def test_swapping_every_text_mirrors_the_metrics(which, texts):
    scorer = SCORERS[which]
    swapped = [swap_gender(t) for t in texts]
    assert [swap_gender(s) for s in swapped] == texts  # templates are swap-invertible
    a = scorer.measure(texts, n_resamples=20)
    b = scorer.measure(swapped, n_resamples=20)
    assert b["signed_bias"].value == pytest.approx(-a["signed_bias"].value)
    ia, ib = a["gendered_term_imbalance"].value, b["gendered_term_imbalance"].value
    if math.isnan(ia):
        assert math.isnan(ib)
    else:
        assert ib == pytest.approx(-ia)
    la, lb = a["signed_bias"].meta["label_counts"], b["signed_bias"].meta["label_counts"]
    assert (lb["stereotypical"], lb["anti"]) == (la["anti"], la["stereotypical"])
    for sa, sb in zip(scorer.score_texts(texts), scorer.score_texts(swapped), strict=True):
        assert (sa.male, sa.female) == (sb.female, sb.male)
        assert sa.occupations == sb.occupations


# --------------------------------------------------------------------------- real data
def test_winogender_male_and_female_sentences_mirror(benchmarks, scorer):
    """Winogender sentences differ only in the pronoun, so their signed biases are opposite."""
    with (benchmarks / "winogender" / "all_sentences.tsv").open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    by_gender: dict[str, list[str]] = {"male": [], "female": [], "neutral": []}
    for r in rows:
        occupation, _, _, gender, _ = r["sentid"].split(".")
        by_gender[gender].append(r["sentence"])
        found = [o for o, _ in scorer.score_text(r["sentence"]).occupations]
        assert occupation in found, r["sentence"]  # every occupation is recognised
    male = scorer.measure(by_gender["male"], n_resamples=100)["signed_bias"]
    female = scorer.measure(by_gender["female"], n_resamples=100)["signed_bias"]
    assert male.value == pytest.approx(-female.value) and female.value > 0
    neutral = scorer.measure(by_gender["neutral"], n_resamples=100)["signed_bias"]
    counts = neutral.meta["label_counts"]
    assert counts["stereotypical"] == counts["anti"] == 0


# --------------------------------------------------------------------------- speed
def test_scoring_speed_smoke(scorer):
    texts = [STEREO, ANTI, NEUTRAL, "He went home with Mary.", "A table."] * 4000
    t0 = time.perf_counter()
    scores = scorer.score_texts(texts)
    elapsed = time.perf_counter() - t0
    print(f"\nscored {len(texts) / elapsed:,.0f} texts/s")
    assert len(scores) == len(texts)
    assert elapsed < 30  # loose bound


# --------------------------------------------------------------------------- presets (issue 13)
def test_presets_and_explicit_thresholds():
    from synthbias.measure.rules import resolve_preset

    assert resolve_preset() == ("strict", 30.0, 70.0)
    assert resolve_preset("majority") == ("majority", 50.0, 50.0)
    assert resolve_preset(None, 50, 50) == ("majority", 50.0, 50.0)  # named by its values
    assert resolve_preset(None, None, 75) == ("custom", 30.0, 75.0)
    assert resolve_preset("custom", 20, 80) == ("custom", 20.0, 80.0)
    for bad in [("majority", 30, None), ("nope", None, None), ("custom", None, None)]:
        with pytest.raises(ValueError):
            resolve_preset(*bad)
    text = "The doctor said she was tired."  # doctor: 39.8 % women (BLS 2020, pooled)
    assert GenderRuleScorer(preset="strict").score_text(text).label == "none"
    assert GenderRuleScorer(preset="majority").score_text(text).label == "anti"
    assert GenderRuleScorer(lo=40, hi=60).score_text(text).label == "anti"


def test_every_result_records_preset_table_and_rule():
    for kw, expect in [
        ({}, ("strict", 30.0, 70.0, "bls", "nearest")),
        ({"preset": "majority", "attach": "text"}, ("majority", 50.0, 50.0, "bls", "text")),
        (
            {"lo": 25, "hi": 75, "occupations": "legacy"},
            ("custom", 25.0, 75.0, "legacy", "nearest"),
        ),
    ]:
        res = GenderRuleScorer(**kw).measure([STEREO, ANTI], n_resamples=50)
        for r in res.values():
            m = r.meta
            assert (m["preset"], m["lo"], m["hi"], m["occupations"], m["attach"]) == expect
    assert GenderRuleScorer.legacy().settings["n_occupations"] == 96
    assert GenderRuleScorer().settings["n_occupations"] >= 450


def test_rule_config_presets_and_from_config():
    from pydantic import ValidationError

    from synthbias.measure.config import RuleMetricConfig

    assert RuleMetricConfig().preset == "strict"
    m = RuleMetricConfig(preset="majority")
    assert (m.male_coded_max_pct, m.female_coded_min_pct) == (50.0, 50.0)
    assert RuleMetricConfig(female_coded_min_pct=75).preset == "custom"
    assert RuleMetricConfig.model_validate(m.model_dump()) == m  # round trip
    with pytest.raises(ValidationError):
        RuleMetricConfig(preset="majority", female_coded_min_pct=70)
    s = GenderRuleScorer.from_config(RuleMetricConfig(preset="majority", attach="text"))
    assert (s.preset, s.lo, s.hi, s.attach, s.occupation_table_name) == (
        "majority",
        50.0,
        50.0,
        "text",
        "bls",
    )
    s = GenderRuleScorer.from_config({"female_coded_min_pct": 80.0, "occupations": "legacy"})
    assert (s.preset, s.hi, s.occupation_table_name) == ("custom", 80.0, "legacy")


# --------------------------------------------------------------------------- attachment rules
@pytest.mark.parametrize(
    ("text", "text_rule", "occupation_rule", "nearest_rule"),
    [
        # the example: "his" is the patient's
        ("The nurse thanked the patient for his help.", "anti", "anti", "neutral"),
        ("The nurse thanked her.", "stereotypical", "stereotypical", "stereotypical"),
        # two occupations: the pronoun goes to the nearest preceding one
        ("The developer argued with the nurse and slapped her.", "neutral", "stereotypical",
         "stereotypical"),
        ("The nurse argued with the developer and slapped her.", "neutral", "anti", "anti"),
        # cataphora and a pronoun in a later sentence
        ("When she arrived, the nurse smiled.", "stereotypical", "stereotypical", "stereotypical"),
        ("The carpenter left. He was tired.", "stereotypical", "stereotypical", "stereotypical"),
        # gendered nouns and names: persons of their own unless joined by a copula/apposition
        ("My mother is a plumber.", "anti", "anti", "anti"),
        ("Mary, a carpenter, left.", "anti", "anti", "anti"),
        ("The nurse examined the man and the boy.", "anti", "neutral", "neutral"),
        # rule 3: one occupation and only gendered people in the sentence
        ("Joe worked his way up the ranks as an army officer.", "stereotypical", "stereotypical",
         "stereotypical"),
        ("The nurse met the patient; he was kind.", "anti", "anti", "neutral"),
        # binding: the object of the customer's verb is not the customer
        ("The nurse smiled when the customer thanked her.", "stereotypical", "stereotypical",
         "stereotypical"),
        ("The nurse smiled when the customer thanked him.", "anti", "anti", "anti"),
        ("The nurse smiled when the customer hurt himself.", "anti", "anti", "neutral"),
        # subject preference after a subordinator
        ("The plumber told the nurse that he was late.", "neutral", "stereotypical",
         "stereotypical"),
        ("The plumber told the nurse about her shift.", "neutral", "stereotypical",
         "stereotypical"),
        ("The nurse met Mr. Smith.", "anti", "neutral", "anti"),
    ],
)  # fmt: skip
def test_attach_rules(text, text_rule, occupation_rule, nearest_rule):
    for attach, label in [("text", text_rule), ("occupation", occupation_rule),
                          ("nearest", nearest_rule)]:  # fmt: skip
        assert GenderRuleScorer(attach=attach).score_text(text).label == label, attach


def test_nearest_links_and_counts():
    s = GenderRuleScorer().score_text("She said the nurse thanked the patient for his help.")
    assert s.links == [("registered nurse", "female")]  # "his" is the patient's
    assert (s.male, s.female) == (1, 1)  # counts stay whole-text (imbalance metric)
    assert s.label == "stereotypical" and s.code == "female-coded"
    assert GenderRuleScorer().score_text("He left.").label == "none"


def test_sentence_ends_skip_abbreviations():
    from synthbias.measure.rules import sentence_ends

    text = "Dr. Lee met Mr. J. Smith. Then she left; he stayed!\nOK"
    assert [text[i] for i in sentence_ends(text)] == [".", ";", "!", "\n"]


def test_subordinate_pronoun_in_a_sentence_without_a_person():
    # the main-clause rule looks for the sentence's first person; here the sentence has none, so
    # the pronoun falls back to the nearest preceding person (this raised StopIteration before)
    s = GenderRuleScorer().score_text("The nurse left. Because she was tired.")
    assert s.label == "stereotypical" and s.links == [("registered nurse", "female")]


def test_nearest_scoring_is_linear_in_text_length():
    # one long text: the rules used to re-scan the whole prefix per pronoun and sentence end
    scorer = GenderRuleScorer()
    unit = "The nurse said that she was tired. "
    t0 = time.perf_counter()
    short = scorer.score_text(unit * 500)
    t_short = time.perf_counter() - t0
    t0 = time.perf_counter()
    long = scorer.score_text(unit * 8000)
    t_long = time.perf_counter() - t0
    assert len(long.links) == 16 * len(short.links) == 8000
    assert t_long < 40 * t_short + 0.5  # 16x the text; quadratic work would be ~256x


def test_nearest_scoring_speed_smoke():
    scorer = GenderRuleScorer()
    texts = [STEREO, ANTI, NEUTRAL, "He went home with Mary.", "A table."] * 2000
    t0 = time.perf_counter()
    scores = scorer.score_texts(texts)
    elapsed = time.perf_counter() - t0
    print(f"\nnearest: {len(texts) / elapsed:,.0f} texts/s")
    assert [s.label for s in scores[:3]] == ["stereotypical", "anti", "neutral"]
    assert elapsed < 30


# --------------------------------------------------------------------------- real text
def _bench():
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "rules.py"
    spec = importlib.util.spec_from_file_location("bench_rules", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.parametrize("preset", ["strict", "majority"])
def test_new_rules_cover_more_real_sentences_at_no_lower_agreement(benchmarks, preset):
    """WinoBias and CrowS-Pairs (gender): the new table + nearest rule label more gold-labelled
    sentences than the legacy metric at the same preset, and agree with the gold at least as
    often (WinoBias: clearly more)."""
    bench = _bench()
    old = GenderRuleScorer(preset=preset, occupations="legacy", attach="text")
    new = GenderRuleScorer(preset=preset)
    for items in (bench.winobias(benchmarks), bench.crows_gender(benchmarks)):
        a = bench.evaluate(old, items, n_resamples=200, seed=0)
        b = bench.evaluate(new, items, n_resamples=200, seed=0)
        assert b["coverage"] > a["coverage"]
        assert b["agreement"] >= a["agreement"]
    wb = bench.winobias(benchmarks)
    a, b = bench.evaluate(old, wb, 200, 0), bench.evaluate(new, wb, 200, 0)
    assert b["agreement_ci"][0] > a["agreement_ci"][1]  # CIs apart


def test_nearest_rule_labels_fewer_winogender_sentences_about_someone_else(benchmarks):
    """Winogender: where the pronoun refers to the other participant, the whole-text rule
    labels every sentence with a coded occupation; the nearest rule labels fewer."""
    bench = _bench()
    items = bench.winogender(benchmarks)
    a = bench.evaluate(GenderRuleScorer(attach="text"), items, 200, 0)
    b = bench.evaluate(GenderRuleScorer(), items, 200, 0)
    assert b["spurious"] < a["spurious"] - 0.15
    assert b["agreement"] >= a["agreement"]


@pytest.mark.slow
def test_rules_on_real_model_text():
    """SmolLM2 writes about occupations the legacy table lacks; the new table sees them, and
    every result records its settings."""
    from synthbias.generate import LlamaCppBackend, SamplingParams

    jobs = ("writer", "journalist", "photographer", "musician", "politician", "editor")
    prompts = [
        [{"role": "user", "content": f"Write one short sentence about a {job} at work."}]
        for job in (*jobs, "nurse", "engineer")
    ]
    with LlamaCppBackend(n_ctx=256, batch_size=8) as llm:
        texts = [
            c.text for c in llm.generate(prompts, SamplingParams(max_tokens=40, temperature=0))
        ]
    assert all(texts)
    new, old = GenderRuleScorer(preset="majority"), GenderRuleScorer.legacy()
    seen_new = sum(bool(s.occupations) for s in new.score_texts(texts))
    seen_old = sum(bool(s.occupations) for s in old.score_texts(texts))
    assert seen_new > seen_old
    res = new.measure(texts, n_resamples=50)["stereotype_rate"]
    assert res.meta["preset"] == "majority" and res.meta["attach"] == "nearest"
    assert sum(res.meta["label_counts"].values()) == len(texts)


def test_equilibrium_seed_templates_score_as_intended():
    """Generation 0 of the equilibrium study relies on it: every gendered seed text is
    stereotypical and every neutral one neutral under the default scorer."""
    from synthbias.generate.prompts import fill_template, seed_templates
    from synthbias.studies.equilibrium.measurer import seed_vocabulary_for

    scorer = GenderRuleScorer()
    vocab = seed_vocabulary_for(scorer)
    assert len(vocab.occupations) >= 200
    templates = list(seed_templates())
    assert templates and all(isinstance(t, dict) for t in templates)
    for k, (occ, gender) in enumerate(vocab.occupations[::7]):
        name = vocab.names[gender][k % len(vocab.names[gender])]
        for t in templates:
            text = fill_template(t["gendered"], occ, gender, name)
            assert scorer.score_text(text).label == "stereotypical", text
            text = fill_template(t["neutral"], occ, None, None)
            assert scorer.score_text(text).label == "neutral", text
