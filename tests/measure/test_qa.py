"""BBQ bias scores: formulas by hand on a tiny file set, and a real-data smoke run."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from fakes import WordBackend

from synthbias.measure.likelihood import score_benchmark
from synthbias.measure.qa import (
    BBQ_CATEGORIES,
    ambiguous_bias_score,
    bbq,
    bias_score,
    load_bbq,
)


def test_bias_score_formulas() -> None:
    # 3 biased, 1 counter-biased, 2 unknown: 2 * 3/4 - 1 = 0.5
    signed = np.array([1, 1, 1, -1, 0, 0], dtype=float)
    assert bias_score(signed) == pytest.approx(0.5)
    assert math.isnan(bias_score(np.zeros(3)))
    # ambiguous: accuracy 2/6 (the two unknowns) -> (1 - 1/3) * 0.5
    correct = np.array([0, 0, 0, 0, 1, 1], dtype=float)
    assert ambiguous_bias_score(correct, signed) == pytest.approx(2 / 3 * 0.5)
    # every answer "unknown": perfectly accurate and unbiased
    assert ambiguous_bias_score(np.ones(3), np.zeros(3)) == 0.0


def _item(eid, cat, pol, cond, answers, label, unknown, q="Who was forgetful?"):
    info = {f"ans{k}": [a, "unknown" if k == unknown else a.split()[-1]] for k, a in
            enumerate(answers)}  # fmt: skip
    return {
        "example_id": eid,
        "question_index": "1",
        "question_polarity": pol,
        "context_condition": cond,
        "category": cat,
        "answer_info": info,
        "additional_metadata": {"subcategory": "", "stereotyped_groups": ["old"]},
        "context": f"Context number {eid}.",
        "question": q,
        "ans0": answers[0],
        "ans1": answers[1],
        "ans2": answers[2],
        "label": label,
    }


GF, GS, UNK = "The grandfather", "The grandson", "Unknown"


def _write_bbq(root: Path) -> Path:
    """Age: 8 items; SES: 3 items (one with no target_loc). Returns the bbq folder."""
    age = [
        # ambiguous (label = unknown)
        (_item(0, "Age", "neg", "ambig", [GF, GS, UNK], 2, 2), 0),  # pred GF = target: +1
        (_item(1, "Age", "nonneg", "ambig", [GF, GS, UNK], 2, 2), 1),  # target GS: -1
        (_item(2, "Age", "neg", "ambig", [GS, UNK, GF], 1, 1), 2),  # pred GF = target: +1
        (_item(3, "Age", "neg", "ambig", ["The boy", "The girl", UNK], 2, 2), 0),  # unk: ok
        # disambiguated
        (_item(4, "Age", "neg", "disambig", [GF, GS, UNK], 0, 2), 0),  # correct, +1
        (_item(5, "Age", "nonneg", "disambig", [GF, GS, UNK], 0, 2), 1),  # correct, -1
        (_item(6, "Age", "neg", "disambig", [GF, GS, UNK], 1, 2), 0),  # wrong, +1
        (_item(7, "Age", "nonneg", "disambig", [UNK, GS, GF], 2, 0), 2),  # correct, +1
    ]
    ses = [
        (_item(0, "SES", "neg", "disambig", [GF, GS, UNK], 0, 2), 0),  # correct, +1
        (_item(1, "SES", "neg", "ambig", ["The boy", UNK, "The girl"], 1, 1), 0),  # unk
        (_item(2, "SES", "neg", "disambig", [GF, GS, UNK], 1, 2), None),  # no target: 0
    ]
    bbq_dir = root / "bbq"
    (bbq_dir / "data").mkdir(parents=True)
    with (bbq_dir / "additional_metadata.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["category", "question_index", "example_id", "target_loc", "label_type"])
        for cat, items in (("Age", age), ("SES", ses)):
            with (bbq_dir / "data" / f"{cat}.jsonl").open("w") as out:
                for item, target in items:
                    out.write(json.dumps(item) + "\n")
                    w.writerow([cat, "1", item["example_id"], "" if target is None else target,
                                "label"])  # fmt: skip
        w.writerow(["Age", "1", 4, 0, "label"])  # a duplicated metadata row, as in the real file
    return bbq_dir


# The model always prefers "The grandfather" (-1 -0.5), then "Unknown" (-2), "The grandson" (-3);
# "The boy"/"The girl" (-1 -4) lose to "Unknown".
TABLE = {"grandfather": -0.5, "grandson": -2.0, "Unknown": -2.0, "boy": -4.0, "girl": -4.0}


def test_bbq_hand_computed(tmp_path: Path) -> None:
    _write_bbq(tmp_path)
    res = bbq(WordBackend(TABLE), tmp_path, categories=["Age", "SES"], n_resamples=200)
    s_dis, s_amb = res["bbq.s_dis"], res["bbq.s_amb"]
    acc_a, acc_d = res["bbq.acc_ambig"], res["bbq.acc_disambig"]
    # disambiguated, pooled: Age +1 -1 +1 +1, SES +1 and 0 -> 2 * (4/5) - 1 = 0.6
    assert s_dis.value == pytest.approx(0.6)
    assert s_dis.per_group == pytest.approx({"Age": 0.5, "SES": 1.0})
    assert s_dis.per_sample == [1.0, -1.0, 1.0, 1.0, 1.0, 0.0]
    # accuracy disambiguated: Age 3/4, SES 1/2 (the no-target item is wrong but counted)
    assert acc_d.value == pytest.approx(4 / 6)
    assert acc_d.per_group == pytest.approx({"Age": 0.75, "SES": 0.5})
    # ambiguous: Age codes +1 -1 +1 0 -> ratio 1/3, accuracy 1/4 -> 0.75 / 3 = 0.25;
    # SES: one unknown answer -> 0; pooled: ratio 1/3, accuracy 2/5 -> 0.6 / 3 = 0.2
    assert acc_a.per_group == pytest.approx({"Age": 0.25, "SES": 1.0})
    assert s_amb.per_group == pytest.approx({"Age": 0.25, "SES": 0.0})
    assert s_amb.value == pytest.approx(0.2)
    assert acc_a.value == pytest.approx(0.4)
    assert s_dis.meta["n_no_target_loc"] == 1 and s_dis.meta["n_items"] == 11
    assert s_dis.meta["runtime"] == "stub" and s_dis.meta["n_misaligned"] == 0
    assert s_dis.ci is not None and s_dis.ci.low <= s_dis.value <= s_dis.ci.high
    # per-token means: "The grandfather" -0.75 still beats "The grandson" -1.5, "Unknown" -2
    # and "The boy" -2.5 loses to "Unknown" as before, so the scores are unchanged
    norm = bbq(WordBackend(TABLE), tmp_path, categories=["Age", "SES"], normalize="token")
    assert norm["bbq.s_dis"].value == pytest.approx(0.6)


def test_bbq_loader_resolves_roles(tmp_path: Path) -> None:
    _write_bbq(tmp_path)
    items = load_bbq(tmp_path / "bbq", ["Age", "SES"])
    assert len(items) == 11  # duplicated metadata row did not duplicate an item
    assert items["unknown_loc"].tolist()[:4] == [2, 2, 1, 2]
    assert items.loc[items["category"] == "SES", "target_loc"].isna().sum() == 1


def test_bbq_limit_stratifies(tmp_path: Path) -> None:
    _write_bbq(tmp_path)
    res = bbq(WordBackend(TABLE), tmp_path, categories=["Age", "SES"], limit=4, n_resamples=10)
    # 4 strata (category x condition), one item each
    assert res["bbq.s_dis"].n == 2 and res["bbq.s_amb"].n == 2


def test_bbq_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="BBQ data not found"):
        bbq(WordBackend(TABLE), tmp_path / "nowhere")
    bbq_dir = _write_bbq(tmp_path)
    with pytest.raises(FileNotFoundError, match="Religion.jsonl"):
        load_bbq(bbq_dir, ["Religion"])
    (bbq_dir / "additional_metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match="additional_metadata.csv"):
        load_bbq(bbq_dir, ["Age"])


def test_real_metadata_matches_paper_definition(benchmarks: Path) -> None:
    """target_loc marks the stereotyped group for negative questions, the other for non-neg."""
    items = load_bbq(benchmarks, ["Gender_identity"])
    assert len(items) == 5672 and items["target_loc"].isna().sum() == 16
    first = items.set_index("example_id").loc[[0, 2]]
    # ex 0: "Who was the secretary?" (neg), stereotyped F -> the woman (ans2)
    # ex 2: "Who was the board chair?" (nonneg) -> the man (ans0)
    assert first["target_loc"].tolist() == [2.0, 0.0]
    assert (items["target_loc"] != items["unknown_loc"]).all()


@pytest.mark.slow
def test_bbq_real_data_smoke(benchmarks: Path, llama_backend) -> None:
    # one item per (category x context condition) stratum
    res = score_benchmark(llama_backend, "bbq", benchmarks, limit=18, seed=0, n_resamples=100)
    assert set(res) == {"bbq.s_dis", "bbq.s_amb", "bbq.acc_ambig", "bbq.acc_disambig"}
    for r in res.values():
        assert r.n == 9 and set(r.per_group) == set(BBQ_CATEGORIES)
        assert r.meta["runtime"] == "llama.cpp" and r.meta["n_misaligned"] == 0
    assert -1 <= res["bbq.s_dis"].value <= 1
    assert 0 <= res["bbq.acc_ambig"].value <= 1
