import json

import numpy as np
import pytest

from synthbias.measure.result import CI, MetricResult, bootstrap_ci


def test_bootstrap_mean_ci_contains_value_and_is_seeded() -> None:
    x = np.r_[np.ones(30), np.zeros(70)]
    ci = bootstrap_ci(x, n_resamples=500, seed=3)
    assert ci.low < 0.3 < ci.high
    assert 0.18 < ci.low and ci.high < 0.42
    assert bootstrap_ci(x, n_resamples=500, seed=3) == ci
    assert bootstrap_ci([], n_resamples=10).low != bootstrap_ci([], n_resamples=10).low  # nan


def test_bootstrap_blocks_match_unblocked_statistic() -> None:
    x = np.random.default_rng(0).random(50_000)
    ci = bootstrap_ci(x, n_resamples=400, seed=0)  # several blocks
    assert ci.low < x.mean() < ci.high
    assert ci.high - ci.low == pytest.approx(2 * 1.96 * x.std() / np.sqrt(len(x)), rel=0.2)


def test_ratio_statistic_on_2d() -> None:
    arr = np.array([[1, 2], [3, 4], [0, 4]], dtype=float)
    ci = bootstrap_ci(arr, statistic=lambda a: a[:, 0].sum() / a[:, 1].sum(), n_resamples=200)
    assert 0 <= ci.low <= 0.4 <= ci.high <= 1


def test_metric_result_exports() -> None:
    m = MetricResult("rate", 0.5, CI(0.4, 0.6), {"a": 0.2, "b": 0.8}, [0, 1], n=2)
    assert m.difference == pytest.approx(0.6) and m.ratio == pytest.approx(0.25)
    d = json.loads(m.to_json(include_samples=True))
    assert d["ci"]["low"] == 0.4 and d["per_sample"] == [0, 1]
    df = m.to_frame()
    assert list(df["group"]) == ["overall", "a", "b"] and df.loc[0, "ci_high"] == 0.6
    assert MetricResult("x", float("nan")).to_dict()["value"] is None
