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


def test_power_against_the_papers_effects() -> None:
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
    from synthbias.studies.equilibrium.summary import power_lines, power_summary

    study = EquilibriumStudyConfig(n=100)
    tight = power_summary(_results(0.0, 400, (0.49, 0.51)), study)
    # +0.036 from b0 = 0.1: binomial floor at 400 pairings is 0.029 -> visible; -0.156 visible
    assert [p["visible"] for p in tight["paper"]] == [True, True]
    assert tight["smallest_detectable_change"] == pytest.approx(0.01)
    wide = power_summary(_results(0.0, 40, (0.3, 0.7)), study)
    assert [p["visible"] for p in wide["paper"]] == [False, False]
    assert wide["paper_equilibrium"]["overlaps_paper"] is True
    text = "\n".join(power_lines({**_results(0.0, 40, (0.3, 0.7)), "power": wide}))
    assert "Paper (Gemma-2-2b-it)" in text and "would NOT be visible" in text


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
