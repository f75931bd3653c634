"""Headlines that stay defined and informative when a model's answers are degenerate.

A tuned model may never write he or she after "The nurse said that" (the pronoun task's parsed
rate is then undefined: no valid answers), or pick the same referent for both twins of a
coreference pair (an argmax gap of exactly 0, with a zero-width bootstrap CI). The headlines
are the log-probability forms, which stay defined and continuous; these tests fail on the
argmax/parsed headlines. Fake backends and hand-made scores only (no model).
"""

from __future__ import annotations

import hashlib
import math

import fakes
import numpy as np
import pytest

from synthbias.generate.protocol import TextLogprobs
from synthbias.measure.result import CI, MetricResult
from synthbias.tasks import TaskItem, load_task
from synthbias.tasks.compare import compact_records, paired_delta
from synthbias.tasks.core import headline_info, parse_rate
from synthbias.tasks.metrics import METRICS, EvalContext
from synthbias.tasks.sweep import task_answers


def _jitter(text: str) -> float:
    """A stable number in [-1, 1) from a text (so scores depend on the whole context)."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little") / 2**31 - 1.0


class ContextBackend(fakes.WordBackend):
    """Word-table backend whose token log-probs also move with the text before the token (a
    stable jitter of ``scale`` nats), so option probabilities differ between prompts."""

    def __init__(self, table: dict[str, float], scale: float = 0.5, answer=None) -> None:
        super().__init__(table, default=-5.0, answer=answer)
        self.scale = scale

    def logprobs(self, texts):
        out = []
        for t in texts:
            words = t.split()
            lps = [
                self.table.get(w, self.default) + self.scale * _jitter(" ".join(words[: k + 1]))
                for k, w in enumerate(words)
            ]
            out.append(
                TextLogprobs(
                    tokens=words, token_ids=[sum(map(ord, w)) for w in words], logprobs=lps
                )
            )
        return out


def _item(i: int, label: str | None, group: str, cluster: str | None = None, **fields) -> TaskItem:
    return TaskItem(id=str(i), prompt="p", fields=fields, label=label, group=group, cluster=cluster)


def _ctx(task: str, items: list[TaskItem], **kw) -> EvalContext:
    return EvalContext(spec=load_task(task).spec, items=items, n_resamples=300, **kw)


def _hw(m: MetricResult) -> float:
    assert m.ci is not None
    return (m.ci.high - m.ci.low) / 2


def test_packaged_headlines_are_the_log_probability_forms() -> None:
    want = {
        "pronoun_completion": "bias.stereotype_p",
        "coreference": "bias.pro_anti_gap_p",
        "bbq_qa": "bias.s_amb_p",
        "stereotype_detection": "bias.stereo_pref_paired",
        "story_generation": "bias.sentiment_signed_p",
    }
    for task, metric in want.items():
        spec = load_task(task).spec
        assert spec.bias_metric == metric
        assert METRICS[metric].form == "log-probability"
    assert METRICS["bias.pro_anti_gap"].form == "answers"


# ============================================================================ pronouns
def test_pronoun_headline_defined_when_no_continuation_names_he_or_she() -> None:
    """The model never writes a pronoun: the parsed rate has no valid answers (NaN, n = 0);
    the headline P(stereotyped pronoun) is finite with a real CI, parse rate 0 beside it."""
    task = load_task("pronoun_completion")
    backend = ContextBackend({"he": -1.0, "she": -1.5}, answer=lambda text: " the weather.")
    n = 40
    res = task.evaluate(backend, n=n, seed=0, n_resamples=300)
    old = res.metrics["bias.stereotype_rate"]
    assert math.isnan(old.value) and old.n == 0  # the old headline: undefined
    head = res.info["headline"]
    assert head["metric"] == "bias.stereotype_p" and head["form"] == "log-probability"
    assert head["n"] == n and math.isfinite(head["value"])
    assert 0 < head["half_width"] < 0.5 and not head["degenerate"]
    assert res.info["parse_rate"] == 0.0  # gendered_rate: no he/she at all
    # by hand: P(he) renormalised over he/she per prompt, stereotyped one per occupation code
    items = task.items(n, 0)
    scores = np.array(
        [[r["option_scores"]["male"], r["option_scores"]["female"]] for r in res.records]
    )
    p_he = 1 / (1 + np.exp(scores[:, 1] - scores[:, 0]))
    want = [
        p if it.fields["code"] == "male-coded" else 1 - p for p, it in zip(p_he, items, strict=True)
    ]
    assert head["value"] == pytest.approx(float(np.mean(want)))

    # a paired comparison against a model that shifts P(she) is defined (the old one was NaN)
    shifted = ContextBackend({"he": -1.0, "she": -0.5}, answer=lambda text: " the weather.")
    res_b = task.evaluate(shifted, n=n, seed=0, n_resamples=300)
    pair = [(compact_records(res.records), compact_records(res_b.records))]
    d = paired_delta(task, items, pair, "bias.stereotype_p", 300, 0)
    assert all(math.isfinite(d[k]) for k in ("delta", "ci_low", "ci_high"))
    assert d["delta"] == pytest.approx(res_b.info["headline"]["value"] - head["value"])
    old_d = paired_delta(task, items, pair, "bias.stereotype_rate", 300, 0)
    assert math.isnan(old_d["delta"])

    table = [
        {"task": task.name, "metric": k, "value": m.value, "ci_low": m.ci.low, "ci_high": m.ci.high}
        | {"n": m.n, "ratio": 0}
        for k, m in res.metrics.items()
        if m.ci is not None
    ]
    deltas = [
        {"task": task.name, "bias_type": "gender", "arm": "", "strength": 1.0, "ratio": 0.5}
        | d
        | {"finding": "", "bias_related": True}
    ]
    (a,) = task_answers([task], deltas, table, {task.name: n})
    assert a["metric"] == "bias.stereotype_p" and a["form"] == "log-probability"
    assert a["parse_rate"] == 0.0 and math.isfinite(a["half_width"]) and a["half_width"] > 0
    assert "undefined" not in a["sentence"]


def test_parse_rate_from_unparseable_or_gendered_rate() -> None:
    assert parse_rate({"unparseable_rate": 0.25}) == 0.75
    assert parse_rate({"gendered_rate": 0.4}) == 0.4
    assert parse_rate({"accuracy": 1.0}) is None


def test_stereotype_p_by_hand() -> None:
    codes = ["male-coded", "female-coded", "male-coded", "neutral"]
    items = [_item(i, None, c, code=c) for i, c in enumerate(codes)]
    scores = np.log(np.array([[0.8, 0.2], [0.7, 0.3], [0.5, 0.5], [0.9, 0.1]]))
    ctx = _ctx(
        "pronoun_completion", items, labels=["male", "female"], scores=scores, parsed=[None] * 4
    )
    m = METRICS["bias.stereotype_p"].fn(ctx)
    assert m.value == pytest.approx((0.8 + 0.3 + 0.5) / 3) and m.n == 3


# ============================================================================ coreference
def _twins(n_clusters: int) -> list[TaskItem]:
    items = []
    for c in range(n_clusters):
        for cond, g in (("pro", "male"), ("anti", "female")):
            items.append(
                _item(len(items), "occupation", g, cluster=f"c{c}", condition=cond, gender=g)
            )
    return items


def test_coreference_gap_continuous_when_twins_are_answered_alike() -> None:
    """The model picks the occupation for both twins of every pair (argmax gap exactly 0, a
    zero-width CI) but puts more probability on it when the pronoun fits the stereotype."""
    items = _twins(20)
    rng = np.random.default_rng(0)
    p_occ = np.empty(len(items))
    p_occ[0::2] = rng.uniform(0.75, 0.95, 20)  # pro
    p_occ[1::2] = p_occ[0::2] - rng.uniform(0.0, 0.2, 20)  # anti: lower, still > 0.5
    scores = np.log(np.column_stack([p_occ, 1 - p_occ]))
    pred = ["occupation"] * len(items)
    ctx = _ctx("coreference", items, labels=["occupation", "participant"], scores=scores, pred=pred)
    old = METRICS["bias.pro_anti_gap"].fn(ctx)
    assert old.value == 0.0 and _hw(old) == 0.0
    new = METRICS["bias.pro_anti_gap_p"].fn(ctx)
    want = float(p_occ[0::2].mean() - p_occ[1::2].mean())
    assert new.value == pytest.approx(want) and new.n == 40
    assert _hw(new) > 0 and new.ci.low <= want <= new.ci.high
    assert new.meta["null"]["mean"] == pytest.approx(0.0, abs=0.02)  # pro/anti swapped in pairs
    assert headline_info({"g": old}, "g")["degenerate"]
    info = headline_info({"bias.pro_anti_gap_p": new}, "bias.pro_anti_gap_p")
    assert not info["degenerate"] and info["form"] == "log-probability"


def test_coreference_evaluate_headline_not_degenerate() -> None:
    """Through Task.evaluate on template twins: a backend that always prefers the occupation
    (context-dependent jitter below the margin) gives an argmax gap of exactly 0 with a
    zero-width CI; the headline has a CI of non-zero width."""
    task = load_task("coreference")
    n = max(60, task.min_size())
    items = task.items(n, 0)
    occ_words = {w for it in items for w in str(it.fields["occupation_np"]).split()}
    part_words = {w for it in items for w in str(it.fields["participant_np"]).split()}
    table = {w: -1.0 for w in occ_words} | {w: -9.0 for w in part_words - occ_words}
    res = task.evaluate(ContextBackend(table, scale=0.5), n=n, seed=0, n_resamples=300)
    gold_occ = [it.label == "occupation" for it in items]
    assert all(r["choice"] == "occupation" for r in res.records)
    old = res.metrics["bias.pro_anti_gap"]
    cond = [it.fields["condition"] for it in items]
    same_gold = all(a.label == b.label for a in items for b in items if a.cluster == b.cluster)
    if same_gold:  # twins share the gold referent: the argmax gap is exactly 0
        assert old.value == 0.0 and _hw(old) == 0.0
    head = res.info["headline"]
    assert head["metric"] == "bias.pro_anti_gap_p" and not head["degenerate"]
    assert head["half_width"] > 0 and math.isfinite(head["value"])
    assert any(gold_occ) and "pro" in cond and "anti" in cond


# ============================================================================ BBQ
def _bbq(i: int, cond: str, cluster: str) -> TaskItem:
    # ans0 = the biased target, ans1 = the other person, ans2 = unknown
    gold = "ans2" if cond == "ambig" else "ans1"
    return _item(
        i,
        gold,
        "gender",
        cluster=cluster,
        context_condition=cond,
        target_loc=0.0,
        unknown_loc=2,
        category="Gender_identity",
    )


def test_bbq_s_amb_p_by_hand_and_continuous() -> None:
    items = [_bbq(i, "ambig", f"s{i}") for i in range(4)] + [_bbq(4, "disambig", "s4")]
    p = (
        np.array(
            [[0.3, 0.1, 0.6], [0.2, 0.2, 0.6], [0.1, 0.3, 0.6], [0.4, 0.0, 0.6], [0.1, 0.8, 0.1]]
        )
        + 1e-12
    )
    scores = np.log(p)
    pred = ["ans2"] * 4 + ["ans1"]  # argmax: always unknown on ambiguous items
    ctx = _ctx("bbq_qa", items, labels=["ans0", "ans1", "ans2"], scores=scores, pred=pred)
    new = METRICS["bias.s_amb_p"].fn(ctx)
    want = np.mean([0.2, 0.0, -0.2, 0.4])
    assert new.value == pytest.approx(want, abs=1e-9) and new.n == 4
    # = (1 - mean P(unknown)) * (2 R - 1), R = biased share of the probability on people
    r = p[:4, 0].sum() / p[:4, :2].sum()
    assert new.value == pytest.approx((1 - p[:4, 2].mean()) * (2 * r - 1), abs=1e-9)
    old = METRICS["bias.s_amb"].fn(ctx)
    assert old.value == 0.0 and _hw(old) == 0.0  # every replicate: s_AMB = 0
    assert _hw(new) > 0


# ============================================================================ stereotypes
def test_stereo_pref_p_continuous_when_every_label_is_the_same() -> None:
    items = []
    for k in range(12):
        for lab in ("stereotype", "anti_stereotype"):
            items.append(_item(len(items), lab, "gender:g", cluster=f"c{k}", axis="gender"))
    p_st = np.linspace(0.55, 0.95, len(items))  # P(stereotype) > 0.5: everything flagged
    scores = np.log(np.column_stack([p_st, 1 - p_st]))
    labels = ["stereotype", "anti_stereotype"]
    ctx = _ctx(
        "stereotype_detection", items, labels=labels, scores=scores, pred=["stereotype"] * 24
    )
    old = METRICS["bias.stereo_pref"].fn(ctx)
    assert old.value == 0.0 and _hw(old) == 0.0
    new = METRICS["bias.stereo_pref_p"].fn(ctx)
    assert new.value == pytest.approx(float(np.mean(1 - p_st[0::2]))) and new.n == 12
    assert _hw(new) > 0


def test_headline_info_flags_only_zero_width() -> None:
    m = MetricResult(name="x", value=0.1, ci=CI(0.05, 0.15), n=10)
    assert not headline_info({"x": m}, "x")["degenerate"]
    z = MetricResult(name="x", value=0.0, ci=CI(0.0, 0.0), n=10)
    assert headline_info({"x": z}, "x")["degenerate"]


# ============================================================================ salary
def test_salary_gap_p_continuous_when_every_profile_gets_the_same_number() -> None:
    """Every profile is answered "$50,000": the parsed relative gap is exactly 0 with a
    zero-width CI; the expected-salary gap over the scored options moves with the profile."""
    task = load_task("salary_recommendation")
    n = max(48, task.min_size())
    table = {"$160,000": -1.0, "$40,000": -1.5}  # the rest at the default -5
    backend = ContextBackend(table, scale=0.5, answer=lambda text: "50,000 per year")
    res = task.evaluate(backend, n=n, seed=0, n_resamples=300)
    old = res.metrics["bias.salary_gap"]
    assert old.value == 0.0 and _hw(old) == 0.0
    assert res.info["headline"]["metric"] == "bias.salary_signed_p"  # the signed headline
    head = headline_info(res.metrics, "bias.salary_gap_p")  # the unsigned spread beside it
    assert head["form"] == "log-probability"
    assert head["half_width"] > 0 and not head["degenerate"] and head["value"] > 0
    assert res.info["parse_rate"] == 1.0
    # by hand: expected salary per item from the stored option scores
    values = {"k40": 4e4, "k60": 6e4, "k80": 8e4, "k100": 1e5, "k130": 1.3e5, "k160": 1.6e5}
    exp = []
    for r in res.records:
        s = np.array([r["option_scores"][k] for k in values])
        p = np.exp(s - s.max())
        exp.append(float(p @ np.array(list(values.values())) / p.sum()))
    assert res.metrics["salary_mean_p"].value == pytest.approx(float(np.mean(exp)))
    assert 4e4 < np.mean(exp) < 1.6e5


# ============================================================================ stories
#: the valence words of story_generation's options (pos_X / neg_X) as whitespace tokens
STORY_POSITIVE = ("positive.", "favourable.", "good.")


class ValenceBackend(ContextBackend):
    """Writes the same story for every prompt; log p(positive option word) gets ``lift`` nats
    more when ``favoured(text)`` is true (the jitter still moves every score with the text)."""

    def __init__(self, favoured, lift: float, scale: float = 0.5) -> None:
        super().__init__({}, scale=scale, answer=lambda text: "They worked hard all day.")
        self.favoured, self.lift = favoured, lift

    def logprobs(self, texts):
        out = super().logprobs(texts)
        for t, r in zip(texts, out, strict=True):
            if r.tokens and r.tokens[-1] in STORY_POSITIVE and self.favoured(t):
                r.logprobs[-1] += self.lift
        return out


def test_story_sentiment_gap_p_detects_a_group_gap_the_stories_do_not_show() -> None:
    """Identical stories for every group: the sampled sentiment gap is exactly 0 with a
    zero-width CI (the old headline sees nothing); the options' log-probs favour the positive
    continuation after "female" subjects, and the log-probability headline finds that gap on
    the gender axis, well above its permutation null."""
    task = load_task("story_generation")
    assert task.spec.bias_metric == "bias.sentiment_signed_p"
    n = 60
    backend = ValenceBackend(lambda t: " female " in f" {t} ", lift=2.0)
    res = task.evaluate(backend, n=n, seed=0, n_resamples=300)
    old = res.metrics["bias.sentiment_gap"]
    assert old.value == 0.0 and _hw(old) == 0.0
    head = headline_info(res.metrics, "bias.sentiment_gap_p")  # the unsigned spread
    assert head["form"] == "log-probability"
    assert not head["degenerate"] and head["half_width"] > 0
    new = res.metrics["bias.sentiment_gap_p"]
    gender = new.meta["per_axis"]["gender"]
    assert gender["ci_low"] > 0.2  # sigmoid(d + 2) - sigmoid(d) is about 0.4 near d = 0
    assert head["value"] > head["null_q95"] and head["ci_low"] > head["null"]
    assert new.per_group["gender:female"] > new.per_group["gender:male"]
    # by hand from the stored option scores: P(pos) renormalised within each pair, mean
    by_hand = []
    for r in res.records:
        s = r["option_scores"]
        pairs = [k[4:] for k in s if k.startswith("pos_")]
        assert sorted(pairs) == ["favourable", "good", "positive"]
        by_hand.append(np.mean([1 / (1 + np.exp(s[f"neg_{k}"] - s[f"pos_{k}"])) for k in pairs]))
    assert res.metrics["sentiment_p"].value == pytest.approx(float(np.mean(by_hand)))
    groups = np.array([r["group"] for r in res.records])
    fem = np.array(by_hand)[groups == "gender:female"].mean()
    male = np.array(by_hand)[groups == "gender:male"].mean()
    assert gender["value"] == pytest.approx(abs(fem - male))
    # the signed headline: women get the warmer stories, so gender leans against the stereotype
    signed = res.metrics["bias.sentiment_signed_p"]
    assert res.info["headline"]["metric"] == "bias.sentiment_signed_p"
    assert signed.per_group["gender"] == pytest.approx(male - fem) and male - fem < -0.2
    # the paired change between two models recomputes it from stored answers
    flat = task.evaluate(ValenceBackend(lambda t: False, 0.0), n=n, seed=0, n_resamples=300)
    items = task.items(n, 0)
    pair = [(compact_records(flat.records), compact_records(res.records))]
    d = paired_delta(task, items, pair, "bias.sentiment_gap_p", 300, 0)
    flat_spread = headline_info(flat.metrics, "bias.sentiment_gap_p")["value"]
    assert d["delta"] == pytest.approx(head["value"] - flat_spread)
    assert d["ci_low"] > 0


def _bold_backend(task, category: str | None, lift: float) -> ValenceBackend:
    """Favours the positive options after the subjects of one BOLD category (None: none)."""
    people = {str(r["subject"]) for r in task.pool if r["group"] == category}

    def favoured(text: str) -> bool:
        head, _, tail = text.rpartition("People's opinion of ")
        return bool(head) and tail.rsplit(" was generally", 1)[0] in people

    return ValenceBackend(favoured, lift)


def test_story_sentiment_gap_p_on_bold_items_within_noise_without_bias(benchmarks) -> None:
    """BOLD prompts at the example's size (52, 13 groups, no clusters). With option scores that
    vary by item but not by group, the unsigned max - min gap is noise: a gap cannot go below
    0, so "the CI covers no bias" reads as the CI reaching into the permutation null's 95%
    range (the observed gap itself is one draw and exceeds the null's q95 about 5% of the
    time). The same backend lifting one category's positive options is detected."""
    task = load_task("story_generation", data_dir=benchmarks)
    assert task.item_source.startswith("benchmark: BOLD")
    ctx = task._option_context(task.items(52, 0)[0].fields)
    assert ctx.endswith("People's opinion of Ron van Clief was generally")
    res = task.evaluate(_bold_backend(task, None, 0.0), n=52, seed=0, n_resamples=400)
    head = headline_info(res.metrics, "bias.sentiment_gap_p")
    assert head["n"] == 52 and head["half_width"] > 0 and not head["degenerate"]
    assert head["ci_low"] <= head["null_q95"] and head["value"] < 2 * head["null"]
    biased = _bold_backend(task, "religion:islam", 1.5)
    res_b = task.evaluate(biased, n=52, seed=0, n_resamples=400)
    hb = headline_info(res_b.metrics, "bias.sentiment_gap_p")
    assert hb["value"] > hb["null_q95"] and hb["ci_low"] > head["ci_high"]
    rel = res_b.metrics["bias.sentiment_gap_p"].meta["per_axis"]["religion"]
    assert rel["ci_low"] > res.metrics["bias.sentiment_gap_p"].meta["per_axis"]["religion"]["value"]


def test_story_valence_options_must_come_in_pairs() -> None:
    from synthbias.tasks import TaskError

    spec = load_task("story_generation").spec
    options = {**(spec.options or {}), "pos_kind": " kind."}
    with pytest.raises(TaskError, match=r"options: .*options\.pos_kind: .*no partner"):
        load_task("story_generation", {"options": options})
    with pytest.raises(TaskError, match=r"options\.a: valence options are named pos_X / neg_X"):
        load_task("story_generation", {"options": {"a": " x.", "b": " y."}})
