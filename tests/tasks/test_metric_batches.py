"""The batched metric statistics (every bootstrap replicate and permutation at once) give the
numbers of one call per replicate, bit for bit: every packaged task's metrics, values, CIs,
nulls and meta, on random option scores and random answers, with ``BATCHED`` on and off."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import synthbias.tasks.core as core
from synthbias.generate import FakeBackend
from synthbias.tasks import load_task
from synthbias.tasks.metrics import METRICS, EvalContext, base
from synthbias.tasks.parsers import PARSERS

SIZES = {
    "stereotype_detection": 60,
    "toxicity_identity": 60,
    "coreference": 24,
    "bbq_qa": 72,
    "topic_classification": 20,
    "hiring_decision": 32,
    "salary_recommendation": 32,
    "story_generation": 26,
    "pronoun_completion": 20,
    "instruction_following": 20,
}

ANSWERS = [
    "Yes.",
    "No, I would not invite them.",
    "Maybe.",
    "$85,000",
    "I'd recommend 120k per year.",
    "Hard to say.",
    "He was late again.",
    "She said it was fine.",
    "They left early.",
    "She was wonderful, kind and brilliant.",
    "He was a terrible, cruel and awful man.",
    "A sad, miserable, hopeless day.",
    "Paris",
]


def contexts(name: str, data_dir: Path | None, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The task's context on the fake backend, then two with random scores and answers
    (the second with rounded scores: ties)."""
    seen: list[EvalContext] = []

    def capture(*a: Any, **k: Any) -> EvalContext:
        seen.append(EvalContext(*a, **k))
        return seen[-1]

    monkeypatch.setattr(core, "EvalContext", capture)
    task = load_task(name, data_dir=data_dir)
    task.evaluate(FakeBackend(), n=SIZES[name], seed=3, n_resamples=0)
    ctx = seen[-1]
    out = [ctx]
    for k in (1, 2):
        c = copy.copy(ctx)
        rng = np.random.default_rng(k)
        if ctx.scores is not None:
            c.scores = rng.normal(size=ctx.scores.shape) * 2
            if k == 2:
                c.scores = np.round(c.scores)
            if ctx.pred is not None:
                c.pred = [ctx.labels[j] for j in np.argmax(c.scores, axis=1)]
        if ctx.outputs is not None:
            c.outputs = [
                str(it.fields["gold"])
                if "gold" in it.fields and rng.random() < 0.5
                else ANSWERS[rng.integers(0, len(ANSWERS))]
                for it in ctx.items
            ]
            parse = PARSERS[ctx.spec.parser]
            c.parsed = [
                parse(o, it, ctx.spec.params) for o, it in zip(c.outputs, ctx.items, strict=True)
            ]
        out.append(c)
    if name == "hiring_decision":  # the worst axis instead of the mean over axes
        c = copy.copy(out[1])
        c.spec = c.spec.model_copy(update={"params": {**c.spec.params, "axis_aggregate": "max"}})
        out.append(c)
    return out


def all_metrics(ctx: Any, n_resamples: int) -> str:
    ctx.cache = {}
    ctx.n_resamples = n_resamples
    res = {name: METRICS[name].fn(ctx).to_dict(include_samples=True) for name in ctx.spec.metrics}
    return json.dumps(res, default=_exact, sort_keys=True)


def _exact(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x))


def check_same(name: str, data_dir: Path | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for ctx in contexts(name, data_dir, monkeypatch):
        monkeypatch.setattr(base, "BATCHED", True)
        fast = all_metrics(ctx, 150)
        monkeypatch.setattr(base, "BATCHED", False)
        slow = all_metrics(ctx, 150)
        assert fast == slow  # json floats are repr: equal strings = equal bits (NaN too)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_batched_metrics_equal_one_call_per_replicate_templates(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_same(name, None, monkeypatch)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_batched_metrics_equal_one_call_per_replicate_benchmarks(
    name: str, benchmarks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_same(name, benchmarks, monkeypatch)
