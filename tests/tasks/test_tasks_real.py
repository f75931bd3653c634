"""All ten downstream tasks on the real embedded SmolLM2-135M (llama.cpp), small n each.

One backend for the module. Sizes and token budgets are cut to keep the file near two minutes on
a quiet 2-core machine; they check that every task runs end to end on a real model and gives
finite metrics, not the model's quality. The last test prints the results table and runtimes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
from weights import PIPELINE_WEIGHTS

from synthbias.generate import load_backend
from synthbias.tasks import TaskResult, load_task
from synthbias.tasks.core import headline_info

pytestmark = pytest.mark.slow

#: task -> (n items, overrides); four identities keep toxicity clusters small.
REAL: dict[str, tuple[int, dict[str, Any]]] = {
    "stereotype_detection": (12, {}),
    "toxicity_identity": (
        16,
        {
            "data": {
                "builder": "identity_toxicity",
                "params": {
                    "identities": {
                        "gender:female": "female",
                        "gender:male": "male",
                        "religion:muslim": "Muslim",
                        "race_ethnicity:black": "Black",
                    }
                },
            }
        },
    ),
    "coreference": (12, {}),
    "bbq_qa": (
        12,
        {"data": {"builder": "bbq_templates", "params": {"axes": ["gender", "religion"]}}},
    ),
    "topic_classification": (10, {}),
    "hiring_decision": (14, {}),
    "salary_recommendation": (14, {}),
    "story_generation": (10, {"sampling": {"max_tokens": 24, "temperature": 0.8}}),
    "pronoun_completion": (10, {"sampling": {"max_tokens": 12, "temperature": 0}}),
    "instruction_following": (10, {"sampling": {"max_tokens": 12, "temperature": 0}}),
}
RESULTS: dict[str, TaskResult] = {}
SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def llm():
    t0 = time.perf_counter()
    backend = load_backend("llamacpp", n_ctx=512, batch_size=16, weights=PIPELINE_WEIGHTS)
    SECONDS["load"] = time.perf_counter() - t0
    yield backend
    backend.close()


def _well_formed(result: TaskResult) -> None:
    for row in result.rows():
        assert set(row) == {"task", "metric", "value", "ci_low", "ci_high", "n", "null"}
        if not math.isnan(row["ci_low"]):
            assert row["ci_low"] <= row["ci_high"]
    assert len(result.records) == result.n_items


@pytest.mark.parametrize("name", list(REAL))
def test_task_on_the_real_model(llm, name: str) -> None:
    n, overrides = REAL[name]
    task = load_task(name, overrides or None)
    n = max(n, task.min_size())  # two whole clusters per stratum
    t0 = time.perf_counter()
    result = task.evaluate(llm, n=n, seed=0, n_resamples=200)
    SECONDS[name] = time.perf_counter() - t0
    RESULTS[name] = result
    _well_formed(result)
    assert math.isfinite(result.primary.value), result.rows()
    if result.bias is not None:
        assert math.isfinite(result.bias.value), result.rows()
    if name == "topic_classification":  # chance is 0.2; the model gets most of these
        assert result.primary.value > 0.4
    if name in ("hiring_decision", "salary_recommendation"):
        assert result.metrics["unparseable_rate"].value < 0.5
    if name == "pronoun_completion":  # every prompt counts in the log-prob headline
        head = result.info["headline"]
        assert head["metric"] == "bias.stereotype_p" and head["n"] == result.n_items
        assert head["half_width"] > 0 and "parse_rate" in result.info
    if name == "story_generation":  # the log-prob headline: every item, a real interval
        assert result.info["headline"]["metric"] == "bias.sentiment_signed_p"
        head = headline_info(result.metrics, "bias.sentiment_gap_p")  # the spread beside it
        assert head["form"] == "log-probability"
        assert head["n"] == result.n_items and math.isfinite(head["value"]), head
        assert math.isfinite(head["half_width"]) and head["half_width"] > 0, head
        assert math.isfinite(head["null"]), head
    if name == "instruction_following":  # the 135M model is weak here: well-formed only
        assert all(isinstance(r["output"], str) for r in result.records)


def test_coreference_on_winogender_real(llm, benchmarks: Path) -> None:
    from test_tasks import winogender_overrides

    task = load_task("coreference", winogender_overrides(benchmarks))
    t0 = time.perf_counter()
    result = task.evaluate(llm, n=8, seed=0, n_resamples=200)
    SECONDS["coreference@winogender"] = time.perf_counter() - t0
    RESULTS["coreference@winogender"] = result
    _well_formed(result)
    assert math.isfinite(result.metrics["bias.pro_anti_gap"].value)


#: real benchmark items at about their minimum sizes (four Jigsaw identities)
BENCH: dict[str, tuple[int, dict[str, Any]]] = {
    "coreference": (24, {}),
    "bbq_qa": (13, {"benchmark": {"loader": "bbq", "params": {"categories": ["Age", "Religion"]}}}),
    "toxicity_identity": (
        16,
        {
            "benchmark": {
                "loader": "jigsaw",
                "params": {"identities": ["muslim", "christian", "gay", "straight"]},
            }
        },
    ),
}


@pytest.mark.parametrize("name", list(BENCH))
def test_benchmark_items_on_the_real_model(llm, benchmarks: Path, name: str) -> None:
    n, overrides = BENCH[name]
    task = load_task(name, overrides or None, data_dir=benchmarks)
    n = max(n, task.min_size())
    assert task.item_source.startswith("benchmark:")
    t0 = time.perf_counter()
    result = task.evaluate(llm, n=n, seed=0, n_resamples=200)
    SECONDS[f"{name}@benchmark"] = time.perf_counter() - t0
    RESULTS[f"{name}@benchmark"] = result
    _well_formed(result)
    head = result.info["headline"]
    assert head["metric"] == result.bias_metric
    assert math.isfinite(head["value"]) and math.isfinite(head["half_width"]), head
    assert head["ci_low"] <= head["ci_high"]
    # a real interval: this model answers WinoBias twins alike (argmax gap 0 +- 0) and never
    # says "unknown" on BBQ; the log-probability headlines still have a width
    assert head["form"] == "log-probability" and head["half_width"] > 0 and not head["degenerate"]
    assert result.item_source == task.item_source


def test_report_results_and_runtime() -> None:
    """Print the measured table (visible with -s or in the -rA summary)."""
    if not RESULTS:
        pytest.skip("no real-model results")
    lines = [f"{'task':26s} {'metric':32s} {'value':>10s}  95% CI", "-" * 90]
    for name, r in RESULTS.items():
        for row in r.rows():
            if "[" in row["metric"]:
                continue
            lines.append(
                f"{name:26s} {row['metric']:32s} {row['value']:10.3f}  "
                f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}] n={row['n']}"
            )
    lines.append("-" * 90)
    for name, s in SECONDS.items():
        lines.append(f"runtime {name:32s} {s:7.1f} s")
    total = sum(SECONDS.values())
    lines.append(f"runtime total {total:.1f} s")
    print("\n" + "\n".join(lines))
    assert total < 900
