"""Design-matched statistics of the tasks: cluster bootstrap, paired deltas, permutation nulls
(and the shared draws of synthbias.stats they use: weights, strata, subsets, jackknife),
minimum sizes, and real benchmark items (WinoBias/Winogender, BBQ, Jigsaw) from the shared folder.

Worked-out values: each test states the distribution it checks and why.
"""

from __future__ import annotations

import collections
import itertools
import math
import zlib
from pathlib import Path

import numpy as np
import pytest

from synthbias.generate import FakeBackend
from synthbias.generate.protocol import TextLogprobs
from synthbias.stats.bootstrap import (
    bootstrap_weights,
    independent_resamples,
    two_sample_weights,
)
from synthbias.stats.jackknife import jackknife_terms, random_groups
from synthbias.stats.resampling import (
    all_subsets,
    cluster_bootstrap,
    cluster_resamples,
    min_detectable_effect,
    null_summary,
    paired_bootstrap,
    permutation_null,
    random_subsets,
    resample_counts,
    strata_resamples,
)
from synthbias.tasks import load_task
from synthbias.tasks.compare import compact_records, finding, paired_delta
from synthbias.tasks.core import TaskSizeError


class NoiseBackend(FakeBackend):
    """Whitespace tokens whose log-probs are a seeded hash of the whole text: option scores
    vary from item to item like noise, with no relation to any group."""

    def logprobs(self, texts):  # type: ignore[override]
        out = []
        for t in texts:
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            toks = t.split()
            out.append(
                TextLogprobs(
                    tokens=toks,
                    token_ids=[zlib.crc32(w.encode()) % 50000 for w in toks],
                    logprobs=(-rng.random(len(toks)) * 3).tolist(),
                )
            )
        return out


# =============================================================================== resampling
def test_cluster_resamples_keep_clusters_whole_and_strata_sized() -> None:
    clusters = ["a", "a", "b", "b", "c", "c", "d"]
    strata = ["x", "x", "x", "x", "y", "y", "y"]
    for idx in cluster_resamples(clusters, 200, seed=1, strata=strata):
        counts = collections.Counter(int(i) for i in idx)
        for i, j in ((0, 1), (2, 3), (4, 5)):  # a cluster's items come together
            assert counts[i] == counts[j]
        # two clusters drawn from stratum x, two from y (c and d)
        assert counts[0] + counts[2] == 2 and counts[4] + counts[6] == 2


def test_cluster_bootstrap_distribution_by_hand() -> None:
    """Two clusters of two items, values 0,0 and 1,1. Drawing 2 clusters with replacement
    gives a mean of 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4; an item bootstrap would
    also give 0.25 and 0.75."""
    values = np.array([0.0, 0.0, 1.0, 1.0])
    lo, hi, boots = cluster_bootstrap(
        lambda i: float(values[i].mean()), ["p", "p", "q", "q"], n_resamples=4000, seed=0
    )
    assert set(np.round(boots, 6)) <= {0.0, 0.5, 1.0}
    freq = {v: float(np.mean(np.isclose(boots, v))) for v in (0.0, 0.5, 1.0)}
    assert freq[0.5] == pytest.approx(0.5, abs=0.03)
    assert freq[0.0] == pytest.approx(0.25, abs=0.03)
    assert (lo, hi) == (0.0, 1.0)


def test_paired_bootstrap_removes_shared_item_noise() -> None:
    """Model b scores every item exactly 0.1 above model a: the paired delta is 0.1 in every
    replicate (CI of width 0) although each model's own mean varies a lot over items."""
    rng = np.random.default_rng(0)
    a = rng.random(50)
    b = a + 0.1
    res = paired_bootstrap(
        [(lambda i: float(a[i].mean()), lambda i: float(b[i].mean()))],
        [None] * 50,
        n_resamples=300,
    )
    assert res["value"] == pytest.approx(0.1)
    assert res["ci_low"] == pytest.approx(0.1) and res["ci_high"] == pytest.approx(0.1)
    lo, hi, _ = cluster_bootstrap(lambda i: float(a[i].mean()), [None] * 50, 300)
    assert hi - lo > 0.1  # the unpaired CI of one model alone is much wider


def test_paired_bootstrap_over_seeds_averages_and_resamples_seeds() -> None:
    """Seed deltas 0 and 0.2 (constant over items): the point delta is their mean, 0.1, and
    resampling the two seeds gives replicates 0, 0.1 or 0.2 only."""
    x = np.ones(10)
    pairs = [
        (lambda i: float(x[i].mean()), lambda i: float(x[i].mean())),
        (lambda i: float(x[i].mean()), lambda i: float(x[i].mean()) + 0.2),
    ]
    res = paired_bootstrap(pairs, [None] * 10, n_resamples=400, seed=3)
    assert res["value"] == pytest.approx(0.1) and res["n_seeds"] == 2
    assert set(np.round(res["boots"], 6)) <= {0.0, 0.1, 0.2}
    assert res["ci_low"] == pytest.approx(0.0) and res["ci_high"] == pytest.approx(0.2)


def test_permutation_null_by_hand() -> None:
    """Two counterfactual clusters, each with an A and a B variant, values A=1, B=0 in both.
    Observed gap |mean A - mean B| = 1. Swapping the labels within clusters: no swap or both
    swapped gives 1, one swapped gives 0 -> null mean 1/2, P(null >= 1) = 1/2."""
    values = np.array([1.0, 0.0, 1.0, 0.0])

    def gap(labels: np.ndarray) -> float:
        return abs(values[labels == "A"].mean() - values[labels == "B"].mean())

    labels = ["A", "B", "A", "B"]
    null = permutation_null(gap, labels, ["c1", "c1", "c2", "c2"], 4000, 0, observed=1.0)
    assert null["mean"] == pytest.approx(0.5, abs=0.03)
    assert null["q95"] == 1.0
    assert null["p_value"] == pytest.approx(0.5, abs=0.03)
    # labels never leave their cluster: with one cluster fixed at (A, A) nothing can change
    same = permutation_null(gap, ["A", "B", "A", "B"], ["c1", "c1", "c2", "c2"], 10, 1)
    assert 0 <= same["mean"] <= 1


def test_null_summary_by_hand() -> None:
    """Null values 0, 1, 2, 3 and a NaN (dropped): mean 1.5; observed 2 is reached by 2 of 4,
    p = (1 + 2) / (1 + 4); no observed, no p-value."""
    out = null_summary(np.array([0.0, 1.0, np.nan, 2.0, 3.0]), 2.0)
    assert out["mean"] == 1.5 and out["n_permutations"] == 4
    assert out["p_value"] == pytest.approx(3 / 5)
    assert "p_value" not in null_summary(np.array([1.0]))


def test_subsets_exact_and_random() -> None:
    """All C(5, 2) = 10 subsets, each once, across blocks; random subsets are k distinct rows."""
    exact = np.concatenate(list(all_subsets(5, 2, max_cells=6)))
    assert sorted(map(tuple, exact)) == sorted(itertools.combinations(range(5), 2))
    drawn = np.concatenate(list(random_subsets(6, 3, 50, np.random.default_rng(0), max_cells=60)))
    assert drawn.shape == (50, 3)
    assert all(len(set(row)) == 3 and set(row) <= set(range(6)) for row in drawn.tolist())


def test_resample_draws_as_weights_and_strata() -> None:
    """Count weights sum to the sample size per resample; two-sample weight blocks cover every
    resample; stratified resamples keep each stratum's size; index replicates become counts."""
    rng = np.random.default_rng(0)
    w = bootstrap_weights(7, 5, rng)
    assert w.shape == (5, 7) and (w.sum(axis=1) == 7).all()
    blocks = list(two_sample_weights(4, 6, 25, seed=1, max_cells=30))
    assert sum(len(a) for a, _ in blocks) == 25 and all(b.shape[1] == 6 for _, b in blocks)
    strata = np.array(["a", "a", "b", "b", "b"])
    for idx in strata_resamples(strata, 20, 2):
        assert collections.Counter(strata[idx]) == {"a": 2, "b": 3}
    counts = np.concatenate(list(resample_counts([np.array([0, 0, 2]), np.array([1])], 3, 3)))
    assert counts.tolist() == [[2, 0, 1], [0, 1, 0]]
    draws = list(independent_resamples([np.arange(3), np.arange(10, 14)], 4, rng))
    assert len(draws) == 4 and all(len(a) == 3 and len(b) == 4 for a, b in draws)


def test_jackknife_of_the_mean_is_the_standard_error() -> None:
    """Leave-one-out (groups of one) replicates of a mean give the classical SE² = s² / n and
    no bias; groups deal every row once."""
    x = np.array([1.0, 2.0, 4.0, 7.0])
    groups = random_groups(len(x), 10, np.random.default_rng(3))
    assert sorted(np.concatenate(groups).tolist()) == [0, 1, 2, 3] and len(groups) == 4
    reps = [np.delete(x, g).mean() for g in groups]
    var, bias = jackknife_terms(reps, x.mean(), len(groups))
    assert var == pytest.approx(x.var(ddof=1) / len(x))
    assert bias == pytest.approx(0.0, abs=1e-12)


def test_min_detectable_effect() -> None:
    # 80% power, two-sided 5%: (1.96 + 0.84) standard errors, SE = half-width / 1.96
    assert min_detectable_effect(0.1) == pytest.approx(0.1 / 1.959964 * 2.801585, rel=1e-6)
    assert math.isnan(min_detectable_effect(math.nan))


def test_gap_null_tracks_noise_on_counterfactual_items() -> None:
    """Salary-style gap on counterfactual clusters whose variants answer identically except
    for noise: the observed gap sits inside the permutation null, and the CI is finite."""
    task = load_task("hiring_decision")
    r = task.evaluate(NoiseBackend(), n=60, seed=0, n_resamples=200)
    gap = r.metrics["bias.p_yes_gap"]
    null = gap.meta["null"]
    assert math.isfinite(gap.value) and math.isfinite(null["mean"]) and null["mean"] > 0
    assert gap.meta["bootstrap"].startswith("whole counterfactual clusters")
    assert gap.ci is not None and gap.ci.high > gap.ci.low
    assert null["p_value"] > 0.01  # pure noise: the observed gap is not outside the null
    assert r.info["headline"]["metric"] == "bias.p_yes_signed"  # signed; the spread is secondary
    assert r.info["headline"]["half_width"] > 0
    assert 0 <= r.info["parse_rate"] <= 1


def test_paired_delta_on_stored_answers() -> None:
    """The same model twice: delta 0 with a zero-width paired CI; a model that flips toward
    the stereotype on every anti item (coreference) shows a positive, detected delta."""
    task = load_task("coreference")
    n = 40
    r = task.evaluate(FakeBackend(), n=n, seed=0, n_resamples=50)
    items = task.items(n, 0)
    rec = compact_records(r.records)
    same = paired_delta(task, items, [(rec, rec)], "bias.pro_anti_gap", 200)
    assert same["delta"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    assert "no detectable change" in finding(same)
    # make the second model right on every pro item and wrong on every anti item
    flipped = []
    for it, x in zip(items, rec, strict=True):
        other = "participant" if it.label == "occupation" else "occupation"
        good = it.fields["condition"] == "pro"
        flipped.append({**x, "choice": it.label if good else other})
    d = paired_delta(task, items, [(rec, flipped)], "bias.pro_anti_gap", 200)
    base_gap = r.metrics["bias.pro_anti_gap"].value
    assert d["delta"] == pytest.approx(1.0 - base_gap)
    assert d["ci_low"] > 0 and not d["covers_zero"]
    assert finding(d).startswith("more bias")
    # a control task's accuracy is not a bias: the sentence names the metric instead
    acc = {**d, "metric": "accuracy", "delta": -0.2, "ci_low": -0.3, "ci_high": -0.1}
    assert finding(acc, bias=False).startswith("lower accuracy than")
    assert "bias" not in finding(acc, bias=False)


# =============================================================================== sizes
def test_too_small_size_is_an_error_naming_task_and_minimum() -> None:
    task = load_task("hiring_decision")
    need = task.min_size()
    assert need > 5
    with pytest.raises(TaskSizeError, match=rf"task hiring_decision: 5 items .* at least {need}"):
        task.evaluate(FakeBackend(), n=5)
    # at the minimum every axis has a whole cluster, so every axis gap is defined
    r = task.evaluate(FakeBackend(), n=need, n_resamples=20)
    per_axis = r.metrics["bias.p_yes_gap"].meta["per_axis"]
    assert len(per_axis) == 5 and all(math.isfinite(v["value"]) for v in per_axis.values())


# =============================================================================== real items
def test_coreference_items_from_winobias_and_winogender(benchmarks: Path) -> None:
    task = load_task("coreference", data_dir=benchmarks)
    assert "winobias_type1 + winobias_type2 + winogender" in task.item_source
    pool = task.pool
    sources = collections.Counter(r["source"].split(" ")[0] for r in pool)
    assert sources["WinoBias"] > 2900 and sources["Winogender"] > 200
    kinds = {r["source"] for r in pool}
    assert {"WinoBias type1 dev", "WinoBias type2 test"} <= kinds
    r = next(r for r in pool if r["id"] == "winobias-type1-dev-1-pro")
    assert (
        r["sentence"]
        == "The developer argued with the designer because he did not like the design."
    )
    assert (r["occupation_np"], r["participant_np"], r["label"]) == (
        "the developer",
        "the designer",
        "occupation",
    )
    items = task.items(task.min_size() + 40, seed=0)
    by_cluster: dict[str, set[str]] = collections.defaultdict(set)
    for it in items:
        by_cluster[str(it.cluster)].add(it.fields["condition"])
    assert all(v == {"pro", "anti"} for v in by_cluster.values())  # twins drawn together
    res = task.evaluate(FakeBackend(), n=len(items), n_resamples=100)
    head = res.info["headline"]
    assert head["metric"] == "bias.pro_anti_gap_p" and math.isfinite(head["half_width"])
    assert res.item_source == task.item_source
    assert "null" in res.metrics["bias.pro_anti_gap"].meta


def test_bbq_items_cover_every_category_and_condition(benchmarks: Path) -> None:
    task = load_task("bbq_qa", data_dir=benchmarks)
    n = task.min_size()
    items = task.items(n, seed=0)
    cats = {it.fields["category"] for it in items}
    assert len(cats) == 9
    for cat in cats:
        conds = {it.fields["context_condition"] for it in items if it.fields["category"] == cat}
        assert conds == {"ambig", "disambig"}
    with pytest.raises(TaskSizeError, match=rf"at least {n} items"):
        task.check_size(n - 1)
    res = task.evaluate(FakeBackend(), n=n, n_resamples=100)
    assert math.isfinite(res.metrics["bias.s_amb"].value)
    assert res.metrics["bias.s_amb"].ci is not None


def test_toxicity_items_give_every_identity_both_labels(benchmarks: Path) -> None:
    task = load_task(
        "toxicity_identity",
        {"benchmark": {"loader": "jigsaw", "params": {"identities": ["muslim", "gay", "old"]}}},
        data_dir=benchmarks,
    )
    n = task.min_size()
    items = task.items(n, seed=0)
    labels = collections.defaultdict(set)
    for it in items:
        labels[it.group].add(it.label)
    assert set(labels) == {"muslim", "gay", "old"}
    assert all(v == {"toxic", "not_toxic"} for v in labels.values())
    res = task.evaluate(FakeBackend(), n=n + 30, n_resamples=100)
    for name in ("bias.bpsn_shortfall", "bias.subgroup_auc_gap", "auc"):
        assert math.isfinite(res.metrics[name].value), name
    assert math.isfinite(res.metrics["bias.bpsn_shortfall"].meta["null"]["mean"])
    with pytest.raises(TaskSizeError, match="toxicity_identity"):
        task.evaluate(FakeBackend(), n=n - 1)


def test_batched_toxicity_replicates_equal_recomputation() -> None:
    """The paired comparison evaluates toxicity replicates at once by bootstrap weights; each
    must equal the metric recomputed on that replicate's items."""
    from synthbias.tasks.compare import context_from_records, subset
    from synthbias.tasks.metrics import METRICS, TOX_METRICS, tox_replicates

    task = load_task("toxicity_identity")
    n = 3 * task.min_size()
    r = task.evaluate(NoiseBackend(), n=n, n_resamples=20)
    items = task.items(n, 0)
    ctx = context_from_records(task, items, compact_records(r.records))
    reps = list(cluster_resamples([it.cluster for it in items], 5, 1, [it.label for it in items]))
    for name in TOX_METRICS:
        fast = tox_replicates(ctx, name, reps)
        slow = [METRICS[name].fn(subset(ctx, i)).value for i in reps]
        assert fast == pytest.approx(slow, abs=1e-9), name
    assert r.metrics["bias.bpsn_shortfall"].value == pytest.approx(
        tox_replicates(ctx, "bias.bpsn_shortfall", [np.arange(len(items))])[0]
    )
