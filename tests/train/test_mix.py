"""Mixing real and augmented data by bias ratio: sizes, provenance, nesting, determinism."""

from __future__ import annotations

import pytest

from synthbias.core.records import Record
from synthbias.train.mix import MixError, mix, mix_counts, mix_summary


def _recs(source: str, n: int) -> list[Record]:
    return [
        Record(id=f"{source}-{i}", text=f"{source} text {i}", source=source, meta={"k": i})
        for i in range(n)
    ]


REAL, AUG = _recs("real", 40), _recs("augmented", 40)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [(0.0, (40, 0)), (0.1, (36, 4)), (0.25, (30, 10)), (0.5, (20, 20)), (1.0, (0, 40))],
)
def test_fixed_counts(ratio: float, expected: tuple[int, int]) -> None:
    assert mix_counts(ratio, 40, 40, "fixed") == expected
    out = mix(REAL, AUG, ratio, "fixed")
    s = mix_summary(out)
    assert (s["n_real"], s["n_augmented"]) == expected
    assert s["n"] == 40


def test_additive_keeps_all_real() -> None:
    out = mix(REAL, AUG, 0.5, "additive")
    s = mix_summary(out)
    assert s == {"n": 60, "n_real": 40, "n_augmented": 20, "augmented_share": pytest.approx(1 / 3)}
    assert {r.id for r in out if r.source == "real"} == {r.id for r in REAL}


def test_n_total_and_shortage_errors() -> None:
    assert mix_counts(0.5, 40, 40, "fixed", n_total=20) == (10, 10)
    with pytest.raises(MixError, match="needs 30 augmented examples but only 20"):
        mix_counts(0.75, 40, 20, "fixed")
    with pytest.raises(MixError, match=r"ratio must be in \[0, 1\]"):
        mix_counts(1.5, 40, 40)
    with pytest.raises(MixError, match="unknown mix mode"):
        mix_counts(0.5, 40, 40, "bogus")  # type: ignore[arg-type]


def test_provenance_kept_and_mix_recorded() -> None:
    out = mix(REAL, AUG, 0.25, "fixed", seed=3)
    for r in out:
        assert r.meta["mix"] == {"ratio": 0.25, "mode": "fixed", "seed": 3}
        assert r.meta["k"] == int(r.id.split("-")[1])
        assert r.source == r.id.split("-")[0]
    assert "mix" not in REAL[0].meta  # inputs are not mutated


def test_deterministic_and_nested() -> None:
    a, b = mix(REAL, AUG, 0.5, seed=1), mix(REAL, AUG, 0.5, seed=1)
    assert [r.id for r in a] == [r.id for r in b]
    assert [r.id for r in mix(REAL, AUG, 0.5, seed=2)] != [r.id for r in a]
    small = {r.id for r in mix(REAL, AUG, 0.25, seed=1) if r.source == "augmented"}
    big = {r.id for r in mix(REAL, AUG, 0.5, seed=1) if r.source == "augmented"}
    assert small < big  # common random numbers: more augmented data, same draws
    real_big = {r.id for r in mix(REAL, AUG, 0.25, seed=1) if r.source == "real"}
    real_small = {r.id for r in mix(REAL, AUG, 0.5, seed=1) if r.source == "real"}
    assert real_small < real_big


def test_empty_augmented_texts_never_used() -> None:
    aug = _recs("augmented", 10) + [Record(id="bad", text="  ", source="augmented")]
    out = mix(REAL, aug, 0.25, n_total=40)
    assert all(r.id != "bad" for r in out)
    with pytest.raises(MixError, match="only 10 are available"):
        mix(REAL, aug, 0.5, n_total=40)
