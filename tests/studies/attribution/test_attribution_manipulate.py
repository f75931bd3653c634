"""The arms of the factorial: each factor's edit moves its own misalignment measure and leaves
the other two alone (manipulation checks on the real measures and encoder), and the arms of a
replicate differ only in the edited factor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthbias.core.records import Record
from synthbias.core.steps import Steps
from synthbias.stats.factorial import design_matrix
from synthbias.studies.attribution.analysis import arm_names, factor_checks, measure_effects
from synthbias.studies.attribution.config import FACTORS
from synthbias.studies.attribution.manipulate import Draws, manipulate, real_like_sentences
from synthbias.studies.attribution.steps import (
    arm_measures,
    measure_names,
    neutral_sentence,
    real_bandwidth,
)
from synthbias.studies.inheritance.augment import build_real_corpus

FILLER = [
    "The train to the coast leaves from platform four at noon.",
    "Tomato seeds need about six hours of sunlight each day.",
    "The software update installs overnight and restarts the computer.",
    "The library moves its reading room to the second floor in May.",
    "Low tide on the north beach is expected shortly after six in the evening.",
    "The bicycle chain needs oil every few hundred kilometres.",
    "Paper and cardboard go in the blue bin on Thursdays.",
    "The new bus route runs along the river to the stadium.",
    "A full moon rises at sunset and sets at sunrise.",
    "Rice should simmer for eighteen minutes with the lid on.",
    "The mountain trail climbs four hundred metres through pine forest.",
    "Rain is forecast for Tuesday, with dry weather from Wednesday.",
]
ACTIVITIES = [
    "walked to the market",
    "read the morning paper",
    "took the bus downtown",
    "cooked dinner at home",
    "painted the fence",
    "watered the garden",
]


def _pool(n: int = 48) -> list[Record]:
    """Group-balanced neutral texts, like the generator's strength-0 pool."""
    out = []
    for i in range(n):
        side = "target" if i % 2 == 0 else "contrast"
        person = "woman" if side == "target" else "man"
        text = f"The {person} next door {ACTIVITIES[i % len(ACTIVITIES)]}."
        out.append(
            Record(
                id=f"p{i}",
                text=text,
                source="augmented",
                meta={"prompt": f"Write one sentence about a {person}.", "side": side},
            )
        )
    return out


def _arm(levels: tuple[int, int, int], seed: int) -> list[Record]:
    pool = _pool()
    return manipulate(
        pool,
        FILLER,
        dict(zip(FACTORS, levels, strict=True)),
        real_like_sentences(),
        bias_type="gender",
        target_share=0.2,
        draws=Draws.make(len(pool), seed),
    )


def test_arms_differ_only_in_the_edited_factor() -> None:
    base, val, grp, dist = (_arm(lv, 0) for lv in ((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)))
    # values: same people, same form, only the trait differs
    assert [r.meta["side"] for r in val] == [r.meta["side"] for r in base]
    assert all(len(a.text.split()) == len(b.text.split()) for a, b in zip(val, base, strict=True))
    assert {r.meta["valence"] for r in val if r.meta["side"] == "target"} == {"cold"}
    assert {r.meta["valence"] for r in val if r.meta["side"] == "contrast"} == {"warm"}
    # group data: the target group under-represented by swapping the same texts
    share = np.mean([r.meta["side"] == "target" for r in grp])
    assert share < 0.35 < np.mean([r.meta["side"] == "target" for r in base])
    assert all(" This person is " in r.text for r in grp)
    swapped = [r for r, b in zip(grp, base, strict=True) if r.meta["side"] != b.meta["side"]]
    assert swapped and all("woman" not in r.text and "man" in r.text for r in swapped)
    # distribution: a generator sentence instead of a real-like one, group content unchanged
    assert all(b.meta["filler"] in real_like_sentences() for b in base)
    assert all(
        d.meta["filler"] in FILLER
        and d.text.split(". This person")[0] == b.text.split(". This person")[0]
        for d, b in zip(dist, base, strict=True)
    )
    assert [r.meta["side"] for r in dist] == [r.meta["side"] for r in base]


def test_neutral_filler_rule() -> None:
    assert neutral_sentence(FILLER[0], "gender")
    assert not neutral_sentence("The woman took the train.", "gender")  # names a group
    assert not neutral_sentence("What a wonderful, happy morning it was.", "gender")
    assert not neutral_sentence("Rain today.", "gender")  # too short


@pytest.mark.slow  # 24 arms' measures on the real encoder: 7 min on the loaded 2 cores
def test_manipulation_checks_pass_on_the_real_measures(tmp_path: Path, encoder) -> None:
    real = [r for r in build_real_corpus(["gender"], 48, seed=0)]
    design = design_matrix(3)
    arms = arm_names(design)
    measures: dict[str, dict[tuple[str, int], float]] = {}
    steps = Steps()
    bandwidth = real_bandwidth(real, encoder, "gender")
    for rep in range(3):
        for arm, levels in zip(arms, design, strict=True):
            found = arm_measures(
                _arm(tuple(int(v) for v in levels), rep),
                real,
                "gender",
                bandwidth=bandwidth,
                encoder=encoder,
                n_resamples=50,
                seed=rep,
                folder=tmp_path,
                steps=steps,
            )
            for m, v in found.items():
                measures.setdefault(m, {})[(arm, rep)] = v["value"]
    owners = measure_names("gender")
    effects = measure_effects(design, measures, 3)
    checks = {c["factor"]: c for c in factor_checks(effects, owners, 0.25)}
    # values and group data move their own measure and leak into no other
    for f in ("values", "group_data"):
        assert checks[f]["passed"], checks[f]["reasons"]
    # group data does not reach the distribution measures (group-blind embeddings)
    for m in owners["distribution"]:
        assert abs(effects[m]["group_data"]["estimate"]) < 0.1 * abs(
            effects[m]["distribution"]["estimate"]
        )
    # the generator's sentences move the Fréchet distance from the real data up, and the
    # distribution factor leaks into neither other measure
    assert effects["distribution.frechet"]["distribution"]["ci_low"] > 0
    assert not checks["distribution"]["leaks"]
    with pytest.raises(ValueError, match="filler"):
        manipulate(
            _pool(),
            [],
            {"values": 0, "group_data": 0, "distribution": 1},
            real_like_sentences(),
            bias_type="gender",
            target_share=0.2,
            draws=Draws.make(48, 0),
        )
