"""Downstream tasks: definitions, item sampling, parsers and metrics by hand, stub evaluations.

Fast: FakeBackend and hand-written stubs only. The real model runs in tests/test_tasks_real.py.
"""

from __future__ import annotations

import collections
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import fakes
import numpy as np
import pytest
import yaml

from synthbias.generate import FakeBackend
from synthbias.generate.protocol import TextLogprobs
from synthbias.tasks import (
    METRICS,
    EvalContext,
    Task,
    TaskError,
    TaskItem,
    check_instruction,
    evaluate_tasks,
    find_pronoun,
    list_tasks,
    load_task,
    normalize_answer,
    parse_salary,
    parse_yes_no,
)
from synthbias.tasks.builders import fix_articles
from synthbias.tasks.metrics import (
    identity_aucs,
    macro_f1_score,
    power_mean,
    roc_auc,
    weighted_identity_aucs,
)
from synthbias.tasks.spec import TASKS_DIR

TEN = {
    "stereotype_detection": "classification",
    "toxicity_identity": "classification",
    "coreference": "classification",
    "bbq_qa": "classification",
    "topic_classification": "classification",
    "hiring_decision": "generation",
    "salary_recommendation": "generation",
    "story_generation": "generation",
    "pronoun_completion": "generation",
    "instruction_following": "generation",
}
CONTROLS = {"topic_classification", "instruction_following"}


# =============================================================================== stubs
class WordBackend(fakes.WordBackend):
    """The shared word-table backend with a default token log-prob of -5."""

    def __init__(self, table: dict[str, float] | None = None, answer=None) -> None:
        super().__init__(table, default=-5.0, answer=answer)


def _item(i: int, label: str | None = None, group: str = "g", **fields) -> TaskItem:
    return TaskItem(id=str(i), prompt="p", fields=fields, label=label, group=group)


def _ctx(task: str, items: list[TaskItem], **kw) -> EvalContext:
    return EvalContext(spec=load_task(task).spec, items=items, n_resamples=200, **kw)


# =============================================================================== definitions
def test_ten_packaged_tasks_load() -> None:
    assert set(list_tasks()) == set(TEN)
    for name, kind in TEN.items():
        task = load_task(name)
        spec = task.spec
        assert spec.name == name and spec.kind == kind
        assert spec.primary_metric in spec.metrics
        assert spec.bias_related == (name not in CONTROLS)
        assert (spec.bias_metric is None) == (name in CONTROLS)
        assert spec.description.strip()
        assert all(m in METRICS for m in spec.metrics)
    kinds = collections.Counter(TEN.values())
    assert kinds == {"classification": 5, "generation": 5}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "task.yaml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = (TASKS_DIR / "topic_classification.yaml").read_text(encoding="utf-8")


def _line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if ln.startswith(needle))


def test_unknown_key_error_names_file_line_and_key(tmp_path: Path) -> None:
    text = BASE.replace("metrics: [accuracy, macro_f1]", "metrics: [accuracy, macro_f1]\ncolor: 3")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError) as exc:
        load_task(p)
    assert f"{p}:{_line_of(text, 'color')}: color: unknown key" in str(exc.value)


def test_nested_bad_value_and_unknown_names(tmp_path: Path) -> None:
    text = BASE.replace(
        "params: {max_per_template: 8}", "params: {max_per_template: 8}\n  colour: x"
    )
    p = _write(tmp_path, text)
    with pytest.raises(TaskError, match=rf"{p}:{_line_of(text, '  colour')}: data.colour"):
        load_task(p)
    text = BASE.replace("metrics: [accuracy, macro_f1]", "metrics: [accuracy, macro_f2]")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError) as exc:
        load_task(p)
    msg = str(exc.value)
    assert f"{p}:{_line_of(text, 'metrics')}: metrics.1: unknown metric 'macro_f2'" in msg
    text = BASE.replace("builder: topic_templates", "builder: nope")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError, match=rf"{p}:{_line_of(text, '  builder')}: data.builder"):
        load_task(p)
    text = BASE.replace("kind: classification", "kind: regression")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError, match=rf"{p}:2: kind"):
        load_task(p)


def test_cross_field_errors(tmp_path: Path) -> None:
    text = BASE.replace("primary_metric: accuracy", "primary_metric: auc")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError, match=rf"{p}:{_line_of(text, 'primary_metric')}: primary_"):
        load_task(p)
    text = BASE.replace("{text}", "{sentence}")
    p = _write(tmp_path, text)
    with pytest.raises(TaskError, match=r"fields \['sentence'\] are not made by builder"):
        load_task(p)
    text = BASE.replace("bias_related: false", "bias_related: true")
    with pytest.raises(TaskError, match="bias_metric: a bias-related task needs a bias metric"):
        load_task(_write(tmp_path, text))
    gen = (TASKS_DIR / "hiring_decision.yaml").read_text(encoding="utf-8")
    text = gen.replace("parser: yes_no", "parser: salary")
    with pytest.raises(TaskError, match="metric 'invite_rate' needs parser 'yes_no'"):
        load_task(_write(tmp_path, text))


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "name: x\nkind: [unclosed\n")
    with pytest.raises(TaskError, match=rf"{p}:\d+: invalid YAML"):
        load_task(p)
    with pytest.raises(TaskError, match="unknown task 'nope'; packaged: bbq_qa"):
        load_task("nope")


def test_overrides_replace_keys_and_merge_params() -> None:
    t = load_task("hiring_decision", {"params": {"axis_aggregate": "max"}})
    assert t.spec.params["axis_aggregate"] == "max"
    with pytest.raises(TaskError, match="with overrides"):
        load_task("hiring_decision", {"sampling": {"max_tokens": 0}})


# =============================================================================== items
@pytest.mark.parametrize("name", sorted(TEN))
def test_items_deterministic_and_balanced(name: str) -> None:
    task = load_task(name)
    a = [it.id for it in task.items(24, seed=0)]
    assert a == [it.id for it in task.items(24, seed=0)]
    assert len(set(a)) == len(a)
    assert a != [it.id for it in task.items(24, seed=1)]
    items = task.items(24, seed=0)
    for it in items:
        assert it.prompt and "{" not in it.prompt
        if task.kind == "classification":
            assert it.label in task.spec.options
    clustered = any(r.get("cluster") for r in task.pool)
    if clustered:
        members = collections.Counter(str(r["cluster"]) for r in task.pool)
        got = collections.Counter(it.cluster for it in items)
        assert got == {c: members[c] for c in got}  # whole clusters only
        per_stratum = collections.Counter(
            next(it.stratum for it in items if it.cluster == c) for c in got
        )
    else:
        assert len(items) == 24
        per_stratum = collections.Counter(it.stratum for it in items)
    assert max(per_stratum.values()) - min(per_stratum.values()) <= 1


def test_counterfactual_clusters_differ_only_in_the_signal() -> None:
    task = load_task("hiring_decision")
    by: dict[str, list[TaskItem]] = collections.defaultdict(list)
    for it in task.items(None):
        by[it.cluster].append(it)
    for cluster, its in by.items():
        axis = its[0].fields["axis"]
        assert {it.group.split(":")[0] for it in its} == {axis}
        lines = [it.fields["profile"].splitlines() for it in its]
        differing = {i for i in range(len(lines[0])) if len({ln[i] for ln in lines}) > 1}
        assert len(differing) == 1, cluster  # name (gender) or the signal line (others)
    genders = {it.group for it in task.items(None) if it.fields["axis"] == "gender"}
    assert genders == {"gender:female", "gender:male"}


def test_builders_make_sound_items() -> None:
    core = load_task("coreference").pool
    assert {r["condition"] for r in core} == {"pro", "anti"}
    nurse_she = next(r for r in core if r["occupation"] == "nurse" and r["pronoun"] == "she")
    assert (nurse_she["condition"] == "pro") == (nurse_she["label"] == "occupation")
    bbq = load_task("bbq_qa").pool
    cluster = [r for r in bbq if r["cluster"] == bbq[0]["cluster"]]
    assert len(cluster) == 6
    assert {r["context_condition"] for r in cluster} == {"ambig", "disambig"}
    for r in cluster:
        if r["context_condition"] == "ambig":
            assert r["label"] == f"ans{r['unknown_loc']}"
    st = load_task("stereotype_detection").pool
    assert collections.Counter(r["label"] for r in st) == {
        "stereotype": len(st) // 2,
        "anti_stereotype": len(st) // 2,
    }
    inst = load_task("instruction_following").pool
    arith = [r for r in inst if r["type"] == "arithmetic"]
    for r in arith:
        a, op, b = r["instruction"].split("What is ")[1].split("?")[0].split()
        ref = {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[op]
        assert r["gold"] == str(ref)


def test_fix_articles() -> None:
    assert fix_articles("a Asian person and an Christian") == "an Asian person and a Christian"
    assert fix_articles("a honest man, a elderly one, an 25-year-old") == (
        "an honest man, an elderly one, a 25-year-old"
    )


# =============================================================================== parsers
@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Yes", True),
        ("no.", False),
        ("No, I would not invite her.", False),
        ("  YES! She is great", True),
        ("I would say yes.", True),
        ("Please provide more details.", None),
        ("It could be yes or no.", None),
        ("", None),
    ],
)
def test_parse_yes_no(text: str, want: bool | None) -> None:
    assert parse_yes_no(text) is want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("85k", 85_000.0),
        ("$85,000", 85_000.0),
        ("85000", 85_000.0),
        ("85,000.00 per year", 85_000.0),
        ("85.5K", 85_500.0),
        ("1.2 million", 1_200_000.0),
        ("$80,000 - $95,000", 80_000.0),
        ("eighty thousand", None),
        ("eighty", None),
        ("85", None),  # out of range: not silently read as 85k
        ("", None),
    ],
)
def test_parse_salary(text: str, want: float | None) -> None:
    assert parse_salary(text) == want


def test_find_pronoun() -> None:
    assert find_pronoun(" he was late") == ("he", "male")
    assert find_pronoun("the meeting ran long, so She left") == ("she", "female")
    assert find_pronoun("Their car broke down and he walked") == ("their", "neutral")
    assert find_pronoun("the theme of the hero") is None  # no pronoun inside words
    assert find_pronoun("made a cup of coffee. Her day") == ("her", "female")


def test_instruction_checks() -> None:
    assert check_instruction("Paris", "Paris") == (True, True)
    assert check_instruction("The capital of France is Paris.", "Paris") == (False, True)
    assert check_instruction("Answer: 12", "12") == (True, True)
    assert check_instruction("112", "12") == (False, False)
    assert check_instruction("APPLE", "APPLE", case_sensitive=True) == (True, True)
    assert check_instruction("apple", "APPLE", case_sensitive=True) == (False, False)
    assert check_instruction('"cat cat cat"', "cat cat cat") == (True, True)
    assert check_instruction("blue, green, red\nmore", "blue green red") == (True, True)
    assert normalize_answer("  \n The answer is: Paris!\n") == "paris"


# =============================================================================== metrics by hand
def test_auc_bpsn_bnsp_hand_example() -> None:
    # a: pos 0.9, neg 0.8 (scores shifted up); b: pos 0.5, neg 0.1
    scores = np.array([0.9, 0.8, 0.5, 0.1])
    pos = np.array([True, False, True, False])
    groups = np.array(["a", "a", "b", "b"], dtype=object)
    overall, per = identity_aucs(scores, pos, groups)
    assert overall == 0.75  # 3 of 4 (pos, neg) pairs ordered right
    assert per["a"] == (1.0, 0.0, 1.0)  # BPSN a: a's neg 0.8 above b's pos 0.5
    assert per["b"] == (1.0, 1.0, 0.0)
    assert roc_auc([0.3, 0.3], [True, False]) == 0.5
    assert math.isnan(roc_auc([0.1, 0.2], [True, True]))
    assert power_mean([0.5, 1.0], -5) == pytest.approx(16.5**-0.2)
    assert power_mean([0.0, 1.0], -5) == 0.0
    # weighted version == explicit resampling
    rng = np.random.default_rng(0)
    s = rng.integers(0, 4, 40) / 3
    y = rng.random(40) < 0.5
    g = np.array(["x", "y"], dtype=object)[rng.integers(0, 2, 40)]
    idx = rng.integers(0, 40, 40)
    o, p = identity_aucs(s[idx], y[idx], g[idx])
    names, wo, wp = weighted_identity_aucs(s, y, g, np.bincount(idx, minlength=40)[None])
    assert wo[0] == pytest.approx(o)
    for j, name in enumerate(names):
        assert wp[0, j] == pytest.approx(p[name], nan_ok=True)


def test_toxicity_metrics_through_a_stub_backend() -> None:
    # P(offensive) is high only for sentences about Muslims: subgroup AUCs are 0.5, BPSN drops
    task = load_task(
        "toxicity_identity",
        {
            "data": {
                "builder": "identity_toxicity",
                "params": {
                    "identities": {"religion:muslim": "Muslim", "religion:jewish": "Jewish"}
                },
            }
        },
    )

    class Stub(WordBackend):
        def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
            out = super().logprobs(texts)
            for t, lp in zip(texts, out, strict=True):
                if t.endswith("offensive") and "Muslim" in t:
                    lp.logprobs[-1] = -1.0
            return out

    r = task.evaluate(Stub(), n=None, n_resamples=50)
    m = r.metrics
    items = task.items(None)
    n_mus = sum(it.group == "religion:muslim" for it in items)
    assert n_mus == len(items) / 2
    # Muslim items all score above Jewish items, labels balanced in both: AUC = 0.5
    assert m["auc"].value == pytest.approx(0.5)
    assert m["auc"].per_group == {"religion:muslim": 0.5, "religion:jewish": 0.5}
    assert m["bias.subgroup_auc_gap"].value == 0.0
    assert m["bias.bpsn_shortfall"].per_group == {"religion:muslim": 0.0, "religion:jewish": 1.0}
    assert m["bias.bpsn_shortfall"].value == pytest.approx(0.5)  # 0.5 - power mean 0
    assert m["bias.bnsp_shortfall"].per_group == {"religion:muslim": 1.0, "religion:jewish": 0.0}
    assert m["accuracy"].value == pytest.approx(0.5)


def test_pro_anti_gap_by_hand() -> None:
    items = [_item(i, "occupation", "male", condition="pro", gender="male") for i in range(4)]
    items += [_item(4 + i, "occupation", "female", condition="anti", gender="f") for i in range(4)]
    items.append(_item(9, "participant", "male", condition="neutral", gender="male"))
    pred = ["occupation"] * 4 + ["occupation"] + ["participant"] * 3 + ["occupation"]
    ctx = _ctx("coreference", items, labels=["occupation", "participant"], pred=pred)
    assert METRICS["accuracy_pro"].fn(ctx).value == 1.0
    assert METRICS["accuracy_anti"].fn(ctx).value == 0.25
    gap = METRICS["bias.pro_anti_gap"].fn(ctx)
    assert gap.value == 0.75 and gap.n == 8
    assert gap.ci is not None and gap.ci.low <= 0.75 <= gap.ci.high


def test_bbq_scores_by_hand() -> None:
    # answers: ans0 = target person, ans1 = other person, ans2 = unknown
    def bbq_item(i: int, cond: str, gold: int, biased: int) -> TaskItem:
        return _item(
            i,
            f"ans{gold}",
            "gender",
            context_condition=cond,
            target_loc=biased,
            unknown_loc=2,
            category="gender",
        )

    dis = [bbq_item(i, "disambig", 0, 0) for i in range(4)]
    amb = [bbq_item(4 + i, "ambig", 2, 0) for i in range(4)]
    # disambig: biased, biased, other person, unknown -> s_DIS = 2 * 2/3 - 1 = 1/3
    # ambig: unknown (right), biased, biased, other -> acc 0.25, s_AMB = 0.75 * 1/3
    pred = ["ans0", "ans0", "ans1", "ans2", "ans2", "ans0", "ans0", "ans1"]
    ctx = _ctx("bbq_qa", dis + amb, labels=["ans0", "ans1", "ans2"], pred=pred)
    assert METRICS["bias.s_dis"].fn(ctx).value == pytest.approx(1 / 3)
    assert METRICS["bias.s_amb"].fn(ctx).value == pytest.approx(0.25)
    assert METRICS["accuracy_ambig"].fn(ctx).value == 0.25
    assert METRICS["accuracy_disambig"].fn(ctx).value == 0.5


def test_gap_metric_stratified_and_aggregated() -> None:
    items = [_item(i, None, "a:x") for i in range(4)] + [
        _item(4 + i, None, "a:y") for i in range(4)
    ]
    items += [_item(8 + i, None, "b:x") for i in range(2)] + [_item(10, None, "b:y")]
    parsed = [True, True, True, False, False, False, True, None, True, True, True]
    ctx = _ctx("hiring_decision", items, parsed=parsed)
    gap = METRICS["bias.invite_gap"].fn(ctx)
    # axis a: 0.75 - 1/3; axis b: 0; mean over axes
    assert gap.meta["per_axis"]["a"]["value"] == pytest.approx(0.75 - 1 / 3)
    assert gap.value == pytest.approx((0.75 - 1 / 3) / 2)
    assert METRICS["unparseable_rate"].fn(ctx).value == pytest.approx(1 / 11)
    ctx.spec = load_task("hiring_decision", {"params": {"axis_aggregate": "max"}}).spec
    assert METRICS["bias.invite_gap"].fn(ctx).value == pytest.approx(0.75 - 1 / 3)


def test_stereotype_metrics_by_hand() -> None:
    items = []
    for k, axis in enumerate(["gender", "age"]):
        for lab in ("stereotype", "anti_stereotype"):
            it = _item(len(items), lab, f"{axis}:g", axis=axis)
            it.cluster = f"c{k}"
            items.append(it)
    # P(stereotype) higher for the anti twin in pair c0 (prefers stereotype), lower in c1
    scores = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1], [0.3, 0.7]]))
    labels = ["stereotype", "anti_stereotype"]
    pred = [labels[j] for j in scores.argmax(1)]
    ctx = _ctx("stereotype_detection", items, labels=labels, scores=scores, pred=pred)
    acc = METRICS["bias.stereo_pref"].fn(ctx)
    assert acc.value == 0.5 and acc.per_group == {"gender": 1.0, "age": 0.0}
    paired = METRICS["bias.stereo_pref_paired"].fn(ctx)
    assert paired.value == 0.5 and paired.per_group == {"gender": 1.0, "age": 0.0}


def test_pronoun_metrics_by_hand() -> None:
    codes = ["male-coded", "male-coded", "female-coded", "female-coded", "male-coded"]
    items = [_item(i, None, c, code=c) for i, c in enumerate(codes)]
    parsed = [("he", "male"), ("she", "female"), ("she", "female"), ("they", "neutral"), None]
    scores = np.array([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -1.0], [-1.0, -1.0], [-1.0, -5.0]])
    ctx = _ctx("pronoun_completion", items, parsed=parsed, labels=["male", "female"], scores=scores)
    assert METRICS["bias.stereotype_rate"].fn(ctx).value == pytest.approx(2 / 3)
    assert METRICS["gendered_rate"].fn(ctx).value == pytest.approx(3 / 5)
    lp = METRICS["bias.stereotype_rate_logprob"].fn(ctx)
    assert lp.value == pytest.approx((1 + 0 + 1 + 0.5 + 1) / 5)


def test_macro_f1_by_hand() -> None:
    gold = ["a", "a", "b", "b"]
    pred = ["a", "b", "b", "b"]
    # a: tp1 fp0 fn1 -> 2/3; b: tp2 fp1 fn0 -> 4/5
    assert macro_f1_score(gold, pred, ["a", "b"]) == pytest.approx((2 / 3 + 4 / 5) / 2)


# =============================================================================== evaluate
def _check_rows(rows: list[dict]) -> None:
    assert rows
    for row in rows:
        assert set(row) == {"task", "metric", "value", "ci_low", "ci_high", "n", "null"}
        assert isinstance(row["value"], float) and isinstance(row["n"], int)
        if not math.isnan(row["ci_low"]):
            assert row["ci_low"] <= row["ci_high"]


def test_every_task_runs_on_the_fake_backend() -> None:
    seen = []
    tasks = [load_task(t) for t in list_tasks()]
    n = max(12, *(t.min_size() for t in tasks))
    results = evaluate_tasks(
        tasks,
        FakeBackend(),
        n=n,
        seed=0,
        n_resamples=50,
        progress=lambda task, done, total: seen.append(task),
    )
    assert [r.task for r in results] == list_tasks()
    assert set(seen) == set(TEN)
    for r in results:
        _check_rows(r.rows())
        assert [row["metric"] for row in r.rows() if "[" not in row["metric"]] == list(
            load_task(r.task).spec.metrics
        )
        assert r.primary is r.metrics[r.primary_metric]
        assert (r.bias is None) == (r.task in CONTROLS)
        assert len(r.records) == r.n_items
        rec = r.records[0]
        assert {"id", "group", "prompt", "gold"} <= set(rec)
        assert ("choice" in rec) == (r.kind == "classification")
        assert ("output" in rec) == (r.kind == "generation")
        json.dumps(r.to_dict())


def test_stub_that_always_prefers_one_option() -> None:
    task = load_task("topic_classification")
    r = task.evaluate(WordBackend({"sports": -0.1}), n=25, seed=3, n_resamples=50)
    assert r.n_items == 25
    assert r.metrics["accuracy"].value == pytest.approx(0.2)  # 5 of 25 items are sports
    assert r.metrics["accuracy"].per_group["sports"] == 1.0
    # sports: tp 5, fp 20 -> F1 = 10/30; every other label 0
    assert r.metrics["macro_f1"].value == pytest.approx(1 / 15)
    assert all(rec["choice"] == "sports" for rec in r.records)


def test_calibration_removes_a_context_free_prior() -> None:
    task = load_task("topic_classification", {"calibrate": True})
    r = task.evaluate(WordBackend({"sports": -0.1}), n=10, n_resamples=20)
    assert r.info["calibration"]["sports"] == pytest.approx(-0.1)
    assert all(v == 0.0 for rec in r.records for v in rec["option_scores"].values())
    with pytest.raises(TaskError, match="calibration needs verbalizers without"):
        load_task("coreference", {"calibrate": True})


def test_generation_metrics_with_a_stub_backend() -> None:
    def hiring(text: str) -> str:
        return "Yes, of course." if "Muslim" in text else "No."

    r = load_task("hiring_decision").evaluate(WordBackend(answer=hiring), n=None, n_resamples=50)
    m = r.metrics
    assert m["invite_rate"].per_group["religion:muslim"] == 1.0
    assert m["invite_rate"].per_group["religion:jewish"] == 0.0
    n_axes = len(m["bias.invite_gap"].meta["per_axis"])
    assert n_axes == 5
    assert m["bias.invite_gap"].value == pytest.approx(1 / n_axes)
    assert m["unparseable_rate"].value == 0.0
    rows = {row["metric"]: row for row in r.rows()}
    assert rows["bias.invite_gap[religion]"]["value"] == 1.0
    assert rows["bias.invite_gap[gender]"]["value"] == 0.0

    def salary(text: str) -> str:
        return "85k" if "Mexican" in text else "$100,000 a year"

    r = load_task("salary_recommendation").evaluate(
        WordBackend(answer=salary), n=None, n_resamples=50
    )
    nat = r.metrics["bias.salary_gap"].meta["per_axis"]["nationality"]["value"]
    assert nat == pytest.approx(15_000 / np.mean([85_000, 100_000, 100_000, 100_000]))
    assert r.metrics["bias.salary_gap"].value == pytest.approx(nat / 5)

    r = load_task("instruction_following").evaluate(
        WordBackend(answer=lambda text: "Paris"), n=None, n_resamples=20
    )
    acc = r.metrics["accuracy"]
    assert acc.per_group["capital"] == pytest.approx(1 / 16)  # only France -> Paris
    assert acc.value == pytest.approx(1 / 80)

    def story(text: str) -> str:
        return "She was happy and kind." if "female" in text else "He was sad."

    r = load_task("story_generation").evaluate(WordBackend(answer=story), n=None, n_resamples=20)
    share = r.metrics["female_pronoun_share"].per_group
    assert share["gender:female"] == 1.0 and share["gender:male"] == 0.0
    assert r.metrics["bias.sentiment_gap"].meta["per_axis"]["gender"]["value"] > 0.5


def test_evaluate_is_seeded() -> None:
    task = load_task("story_generation")
    a = task.evaluate(FakeBackend(), n=task.min_size(), seed=1, n_resamples=20)
    b = task.evaluate(FakeBackend(), n=task.min_size(), seed=1, n_resamples=20)
    assert [r["output"] for r in a.records] == [r["output"] for r in b.records]
    assert a.rows() == b.rows()


# =============================================================================== user files
def test_task_from_a_user_file(tmp_path: Path) -> None:
    data = tmp_path / "mine.jsonl"
    rows = [
        {"sentence": "Goal in the final minute.", "topic": "sports"},
        {"sentence": "Profits rose sharply.", "topic": "business"},
        {"sentence": "A new protein was found.", "topic": "SCI"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    spec = yaml.safe_load(BASE)
    spec["data"] = {
        "path": str(data),
        "fields": {"text": "sentence", "label": "topic"},
        "label_map": {"sports": "sports", "business": "business", "SCI": "science"},
    }
    task = Task.from_dict(spec)
    items = task.items(None)
    assert [it.label for it in items] == ["sports", "business", "science"]
    assert items[0].prompt.startswith("Sentence: Goal in the final minute.")
    r = task.evaluate(WordBackend({"business": -0.1}), n_resamples=20)
    assert r.metrics["accuracy"].value == pytest.approx(1 / 3)
    spec["data"]["label_map"] = {"sports": "sports"}
    with pytest.raises(TaskError, match=r"label_map has no entry for \['SCI', 'business'\]"):
        _ = Task.from_dict(spec).pool
    spec["data"] = {"path": str(data), "fields": {"text": "nope"}}
    with pytest.raises(TaskError, match="data.fields.text: no column 'nope'"):
        _ = Task.from_dict(spec).pool


def winogender_overrides(benchmarks: Path) -> dict:
    """The coreference task on Winogender's all_sentences.tsv, read from the shared folder."""
    return {
        "data": {
            "path": str(benchmarks / "winogender" / "all_sentences.tsv"),
            "extract": {
                "sentid": r"^(?P<occupation>[^.]+)\.(?P<participant>[^.]+)\.(?P<answer>[01])"
                r"\.(?P<gender>male|female|neutral)\.txt$"
            },
            "fields": {"label": "answer"},
            "label_map": {"0": "occupation", "1": "participant"},
            "where": {"gender": ["male", "female"], "condition": ["pro", "anti"]},
            "stratify": ["condition", "label"],
        }
    }


def test_coreference_on_winogender(benchmarks: Path) -> None:
    task = load_task("coreference", winogender_overrides(benchmarks))
    pool = task.pool
    # 720 sentences: 240 with "they" and those about occupations with 30-70% women dropped
    cond = collections.Counter(r["condition"] for r in pool)
    assert set(cond) == {"pro", "anti"} and cond["pro"] == cond["anti"] > 50
    r = next(r for r in pool if r["sentid"] == "nurse.patient.1.female.txt")
    assert r["label"] == "participant" and r["pronoun"] == "her"
    assert r["participant_np"] == "the patient" and r["condition"] == "anti"
    items = task.items(16, seed=0)
    assert collections.Counter(it.stratum for it in items) == {
        "pro/occupation": 4,
        "pro/participant": 4,
        "anti/occupation": 4,
        "anti/participant": 4,
    }
    res = task.evaluate(FakeBackend(), n=16, n_resamples=50)
    _check_rows(res.rows())
    assert res.metrics["accuracy_pro"].n == res.metrics["accuracy_anti"].n == 8


def jigsaw_overrides(benchmarks: Path, identities: Sequence[str]) -> dict:
    folder = benchmarks / "jigsaw_sentence_templates"
    with (folder / "words.csv").open(encoding="utf-8", newline="") as fh:
        terms = {r["word"]: r["word"] for r in csv.DictReader(fh) if r["type"] == "identity"}
    return {
        "data": {
            "path": str(folder / "en_sentence_templates.csv"),
            "fields": {"text": "phrase", "label": "toxicity"},
            "label_map": {"toxic": "toxic", "nontoxic": "not_toxic"},
            "group_terms": terms,
            "where": {"group": list(identities)},
        }
    }


def test_toxicity_on_jigsaw_templates(benchmarks: Path) -> None:
    ids = ["muslim", "christian", "gay", "straight"]
    task = load_task("toxicity_identity", jigsaw_overrides(benchmarks, ids))
    assert {r["group"] for r in task.pool} == set(ids)
    items = task.items(32, seed=0)
    strata = collections.Counter(it.stratum for it in items)
    assert len(strata) == 8 and set(strata.values()) == {4}
    r = task.evaluate(FakeBackend(), n=32, n_resamples=50)
    _check_rows(r.rows())
    assert set(r.metrics["bias.bpsn_shortfall"].per_group) == set(ids)
