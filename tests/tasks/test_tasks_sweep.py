"""Tasks inside the inheritance sweep (fakes): real items, per-task sizes, paired deltas vs the
real-only model, the leading per-task answer in results, console and report; size errors."""

from __future__ import annotations

import io
import json
import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from synthbias.config import parse_config
from synthbias.core.records import Record
from synthbias.core.schema import ConfigError
from synthbias.generate.fake import FakeBackend
from synthbias.generate.protocol import TextLogprobs
from synthbias.studies.inheritance.runner import run_inheritance
from synthbias.tasks.core import TaskSizeError

TASKS = ["coreference", "bbq_qa", "toxicity_identity", "hiring_decision"]


class ShareTrainer:
    def __call__(self, records: Sequence[Record], out_dir: Path, seed: int) -> dict[str, Any]:
        share = sum(r.source == "augmented" for r in records) / len(records)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "share.txt").write_text(str(share))
        return {"share": share}


class SkewBackend(FakeBackend):
    """Option log-probs: a seeded hash of the text (noise), plus ``skew`` for continuations
    that end in a pronoun's referent named first; models with skew 0 are identical."""

    def __init__(self, skew: float = 0.0) -> None:
        super().__init__()
        self.skew = skew

    def logprobs(self, texts):  # type: ignore[override]
        out = []
        for t in texts:
            rng = np.random.default_rng(zlib.crc32(t.encode()))
            toks = t.split()
            lp = (-rng.random(len(toks)) * 3).tolist()
            if toks and self.skew and toks[-1].lower() in ("yes", "offensive"):
                lp[-1] += self.skew
            out.append(TextLogprobs(toks, [zlib.crc32(w.encode()) % 50000 for w in toks], lp))
        return out


def _loader(adapter_dir: Path | None) -> FakeBackend:
    share = float((adapter_dir / "share.txt").read_text()) if adapter_dir else 0.0
    return SkewBackend(skew=2.0 * share)


def _config(benchmarks: Path, **tasks: Any):
    return parse_config(
        {
            "name": "t",
            "kind": "inheritance",
            "generator": {"backend": "fake"},
            "measure": {"n_resamples": 100, "embedding": False},
            "inheritance": {
                "bias_types": ["gender"],
                "n_real": 16,
                "n_augmented": 16,
                "ratios": [0.0, 1.0],
                "tasks": TASKS,
                "n_eval": 8,
                "misalignment": False,
            },
            "tasks": {"data_dir": str(benchmarks)} | tasks,
        }
    )


def test_sweep_leads_with_paired_answers_per_task(benchmarks: Path, tmp_path: Path) -> None:
    cfg = _config(benchmarks, sizes={"coreference": 60, "toxicity_identity": 200})
    res = run_inheritance(
        cfg, tmp_path, backend=FakeBackend(), trainer=ShareTrainer(), backend_loader=_loader
    )
    answers = {a["task"]: a for a in res["task_answers"]}
    assert set(answers) == set(TASKS)
    src = {t["name"]: t["item_source"] for t in res["tasks"]}
    assert "WinoBias" in src["coreference"] or "winobias" in src["coreference"]
    assert "BBQ" in src["bbq_qa"] and "Jigsaw" in src["toxicity_identity"]
    assert src["hiring_decision"].startswith("templates")
    # blanket n_eval 8 is raised to each task's minimum, and the note says so
    assert any(n.startswith("bbq_qa: n_eval 8 raised to") for n in res["size_notes"])
    for a in answers.values():
        assert math.isfinite(a["real_only_value"]) and math.isfinite(a["half_width"])
        (d,) = a["deltas"]
        assert d["ratio"] == 1.0 and math.isfinite(d["ci_low"]) and math.isfinite(d["ci_high"])
    # the skewed model raises P(yes) / P(offensive) for every item alike: no group gap change
    # is forced, but coreference is untouched by the skew: identical answers, delta exactly 0
    coref = answers["coreference"]["deltas"][0]
    assert coref["delta"] == 0 and coref["covers_zero"]
    assert answers["coreference"]["sentence"].startswith("No detectable change")
    assert answers["hiring_decision"]["parse_rate"] is not None
    deltas = (tmp_path / "deltas.csv").read_text()
    assert "bias.pro_anti_gap" in deltas and "bias.p_yes_signed" in deltas
    assert "bias_change_by_ratio.png" in res["plots"]
    stored = json.loads(next((tmp_path / "evals").glob("*.json")).read_text())
    assert set(stored["records"]) == set(TASKS)

    from synthbias.report.html import render_report
    from synthbias.studies.inheritance.console import print_inheritance

    buf = io.StringIO()
    print_inheritance(res, Console(file=buf, width=160), tmp_path)
    text = buf.getvalue()
    assert text.index("coreference: Δ bias.pro_anti_gap") < text.index("Bias inheritance: task")
    assert "items: benchmark: BBQ" in text
    page = render_report(tmp_path)
    assert page.index("Replicate-level headlines") < page.index("Item-level comparisons")
    assert page.index("Item-level comparisons, per task") < page.index("Headline results")
    assert "not replicated" in page and "not replicated" in text


def test_explicit_size_below_minimum_is_a_config_error(benchmarks: Path, tmp_path: Path) -> None:
    trainer = ShareTrainer()
    from synthbias.tasks import load_task

    need = load_task("toxicity_identity", data_dir=benchmarks).min_size()
    assert need == 3 * 14 + 1  # two 14-identity templates per label
    cfg = _config(benchmarks, sizes={"toxicity_identity": need - 1})
    with pytest.raises(
        TaskSizeError, match=rf"task toxicity_identity: {need - 1} items .* at least {need}"
    ):
        run_inheritance(cfg, tmp_path, backend=FakeBackend(), trainer=trainer)
    assert not (tmp_path / "adapters").exists()  # failed before any training
    with pytest.raises(ConfigError, match="unknown tasks"):
        _config(benchmarks, sizes={"nope": 20})


def test_missing_benchmark_folder_is_a_clear_error(tmp_path: Path) -> None:
    from synthbias.tasks import TaskError, load_task

    with pytest.raises(TaskError, match=r"tasks.data_dir: .* has no bbq/ folder"):
        _ = load_task("bbq_qa", data_dir=tmp_path).pool
    # tasks without a benchmark section keep their templates
    assert load_task("hiring_decision", data_dir=tmp_path).item_source.startswith("templates")
