"""Per-model evaluation of the ten inheritance tasks, today's path beside faster candidates.

Why: evaluation is 68-75 % of an inheritance run (issue 28: 134 s per model for the ten tasks
at ``examples/inheritance.yaml`` sizes, llama.cpp with a GGUF LoRA on the f32 copy). This bench
evaluates the same items with the same adapter on each path, in one process and one sitting,
and prints per task: seconds (all of ``Task.evaluate``), the seconds spent inside the model calls
(option scoring, generation) and in the rest (metrics, bootstrap), the largest difference of an
option score from the first path (nats), and the share of generated outputs that are identical.
Process CPU seconds are recorded beside wall seconds: on shared cores the CPU-second ratio is
the comparable one.

Paths (``--paths``, the first is the reference the others are compared with):

- ``llamacpp-lora``: today's path, ``load_finetuned(adapter, "llamacpp", weights="f32")``;
- ``llamacpp-lora-kv32``: today's path with a float32 KV cache instead of llama.cpp's f16
  (the f16 cache alone moves option scores by ~0.01 nats from every fp32 path);
- ``llamacpp-merged``: the same f32 copy with the adapter merged into its weights once per
  adapter (``load_finetuned(adapter, "llamacpp", merge=True)``: no LoRA nodes at run time),
  float32 KV cache;
- ``hf-merged``: transformers fp32 with the adapter merged into the weights
  (``load_finetuned(adapter, "hf")``), options through ``score_tails`` (every shared prefix
  fed once, ``generate/prefix_tree.py``), ``--hf-batch`` rows per forward pass;
- ``auto``: the default (``eval_backend: auto``): option scoring on transformers fp32 with the
  adapter merged, every shared prefix fed once (``generate/prefix_tree.py``); greedy generation
  there too (prompts fed as a prefix tree, or gathered from the scoring call's kept KV when the
  task scored them already: ``generate/tree_decode.py``, ``generate/prefix_memo.py``); sampled
  generation on today's llama.cpp path (f32 copy + GGUF LoRA), loaded when a task samples;
- ``hf-whole``: the exact reference for scores: ``auto`` with every option sequence scored
  whole by transformers fp32 (the lm-evaluation-harness shapes: no prefix sharing);
- ``hf-merged-bf16``: ``hf-merged`` in bfloat16 (merged in float32, then rounded): reduced precision
  by choice, about 2x the fp32 matmul rate on CPUs with AVX-512 BF16; its score differences
  from the exact paths are printed beside its time.

Roofline (issue 28): a plain fp32 matmul's rate is measured once at the start; per task and per
path the tokens fed to the model (scored sequences less their never-fed last token, prompt plus
generated tokens of every completion, counted around the outermost backend call) x 2 x
parameters / seconds, as a share of it (``bench/roofline.py``). Counted with every sequence run
alone this is an upper bound of the work done (llama.cpp and ``score_tails`` share prefixes and
compute logits only where tokens are scored), so the share can pass 100 %; the ``_distinct``
figures count each distinct prefix of a call once (the least a prefix-sharing runtime feeds).

With ``--repeats N`` the paths run N times in turn (today, auto, today, auto...) and each path's
fastest whole run (tasks plus load) is the one reported and compared; every run's total is kept
(``all_runs_seconds``). Timings on these shared machines drift by 20-50 % within minutes.

Sampled generation (story_generation, temperature 0.8) draws from each runtime's own generator,
so its outputs are not comparable across runtimes; greedy tasks are. The ratio printed is
today's total seconds over each path's.

    PYTHONPATH=src python bench/evaluation.py --adapter ADAPTER_DIR \\
        --out bench/results/evaluation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    from synthbias.tasks import load_task
    from synthbias.train.adapter import load_eval_model, load_finetuned
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.tasks import load_task
    from synthbias.train.adapter import load_eval_model, load_finetuned
# bench/ is on sys.path when a script there runs
from roofline import (  # noqa: E402
    CountTokens,
    count_parameters,
    describe,
    matmul_peak,
    model_flops_per_token,
    roofline,
)

ROOT = Path(__file__).resolve().parents[1]


def example_sizes(path: Path) -> tuple[dict[str, int], str, int]:
    """``tasks.sizes``, ``tasks.data_dir`` and ``measure.n_resamples`` of an example config."""
    cfg = yaml.safe_load(path.read_text())
    tasks = cfg.get("tasks") or {}
    n_res = int((cfg.get("measure") or {}).get("n_resamples", 1000))
    return dict(tasks["sizes"]), str(tasks.get("data_dir") or ""), n_res


def load_path(name: str, adapter: Path, hf_batch: int) -> Any:
    """The evaluation backend of one path, adapter applied."""
    if name == "llamacpp-lora":
        return load_finetuned(adapter, "llamacpp", n_ctx=512, batch_size=32, weights="f32")
    if name == "llamacpp-lora-kv32":
        return load_finetuned(
            adapter, "llamacpp", n_ctx=512, batch_size=32, weights="f32", kv_type="f32"
        )
    if name == "llamacpp-merged":
        return load_finetuned(
            adapter, "llamacpp", n_ctx=512, batch_size=32, merge=True, kv_type="f32"
        )
    if name == "hf-merged":
        return load_finetuned(adapter, "hf", batch_size=hf_batch)
    if name == "hf-merged-bf16":
        return load_finetuned(adapter, "hf", batch_size=hf_batch, dtype="bfloat16")
    if name == "auto":
        return load_eval_model(adapter, "auto", "native", n_ctx=512, batch_size=32)
    if name == "hf-whole":
        auto = load_eval_model(adapter, "auto", "native", n_ctx=512, batch_size=32)
        auto.scorer = WholeSequences(auto.scorer)
        return auto
    raise SystemExit(f"unknown path {name!r}; see the module docstring for the paths")


class WholeSequences:
    """The exact reference: every sequence scored whole (``logprobs_ids``: the harness's
    shapes, no prefix sharing), its tail kept; all else from the wrapped transformers backend."""

    def __init__(self, hf: Any) -> None:
        self.hf = hf

    def __getattr__(self, name: str) -> Any:
        return getattr(self.hf, name)

    def score_tails(self, sequences: Any, starts: Any) -> list[list[float]]:
        whole = self.hf.logprobs_ids(sequences)
        return [lp[st - 1 :] for lp, st in zip(whole, starts, strict=True)]


def run_path(
    name: str,
    adapter: Path,
    tasks: list[Any],
    sizes: dict[str, int],
    n_res: int,
    hf_batch: int,
    peak: float,
) -> dict[str, Any]:
    """Evaluate every task on one path; seconds, model-call seconds, tokens, scores, outputs."""
    start = time.perf_counter()
    backend = load_path(name, adapter, hf_batch)
    flops = model_flops_per_token(count_parameters(backend))
    out: dict[str, Any] = {
        "load_s": round(time.perf_counter() - start, 2),
        "flops_per_token": flops,
        "tasks": {},
    }
    for task in tasks:
        with CountTokens(backend) as fed:
            cpu = time.process_time()
            res = task.evaluate(backend, n=sizes[task.name], seed=0, n_resamples=n_res)
            cpu = time.process_time() - cpu
        spent = fed.seconds
        model_s = sum(spent.values())
        scores = [list(r["option_scores"].values()) for r in res.records if "option_scores" in r]
        out["tasks"][task.name] = {
            "items": res.n_items,
            "seconds": res.seconds,
            "cpu_s": round(cpu, 2),
            "model_s": round(model_s, 2),
            "rest_s": round(res.seconds - model_s, 2),
            "calls": {k: round(v, 2) for k, v in spent.items()},
            "tokens": fed.alone,
            "tokens_distinct": fed.distinct,
            "roofline": roofline(flops, fed.alone, res.seconds, peak),
            "roofline_distinct": roofline(flops, fed.distinct, res.seconds, peak),
            "headline": res.info["headline"]["value"],
            "scores": scores,
            "outputs": [r.get("output") for r in res.records],
        }
        print(
            f"{name:>14} {task.name:<24} {res.seconds:7.1f} s (model {model_s:6.1f} s), "
            f"{fed.alone} tokens ({fed.distinct} distinct), "
            f"{describe(out['tasks'][task.name]['roofline'])}",
            flush=True,
        )
    close = getattr(backend, "close", None)
    if callable(close):
        close()
    out["seconds"] = round(sum(t["seconds"] for t in out["tasks"].values()), 2)
    out["cpu_s"] = round(sum(t["cpu_s"] for t in out["tasks"].values()), 2)
    out["model_s"] = round(sum(t["model_s"] for t in out["tasks"].values()), 2)
    out["tokens"] = sum(t["tokens"] for t in out["tasks"].values())
    out["tokens_distinct"] = sum(t["tokens_distinct"] for t in out["tasks"].values())
    for suffix, n in (("", out["tokens"]), ("_distinct", out["tokens_distinct"])):
        out[f"roofline{suffix}"] = roofline(flops, n, out["seconds"], peak)
        out[f"roofline{suffix}_model_calls"] = roofline(flops, n, out["model_s"], peak)
    share = {k: 100 * v["share_of_matmul_peak"] for k, v in out.items() if k.startswith("roof")}
    print(
        f"{name:>14} all tasks: {out['tokens']} tokens ({out['tokens_distinct']} distinct) x "
        f"{flops / 1e6:.0f} MFLOP in {out['seconds']:.1f} s: {describe(out['roofline'])} "
        f"({share['roofline_distinct']:.1f} % counting each distinct prefix once; "
        f"{share['roofline_model_calls']:.1f} / {share['roofline_distinct_model_calls']:.1f} % "
        f"over the {out['model_s']:.1f} s inside model calls)",
        flush=True,
    )
    return out


def compare(ref: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Per task: largest option-score difference (nats) and identical-output share."""
    rows = {}
    for task, a in ref["tasks"].items():
        b = other["tasks"][task]
        row: dict[str, Any] = {
            "ratio": round(a["seconds"] / b["seconds"], 2),
            "cpu_ratio": round(a["cpu_s"] / b["cpu_s"], 2),
        }
        if a["scores"]:
            row["max_abs_score_diff"] = float(
                np.max(np.abs(np.array(a["scores"]) - np.array(b["scores"])))
            )
        outs = [(x, y) for x, y in zip(a["outputs"], b["outputs"], strict=True) if x is not None]
        if outs:
            row["identical_outputs"] = round(sum(x == y for x, y in outs) / len(outs), 3)
        row["headline_diff"] = b["headline"] - a["headline"]
        rows[task] = row
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", required=True, help="a trained LoRA adapter folder")
    ap.add_argument("--config", default=str(ROOT / "examples" / "inheritance.yaml"))
    ap.add_argument("--paths", default="llamacpp-lora,hf-merged")
    ap.add_argument("--tasks", default=None, help="comma-separated subset (default: all ten)")
    ap.add_argument("--hf-batch", type=int, default=32)
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run every path this many times, interleaved; each path's fastest run is reported",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "evaluation.json"))
    args = ap.parse_args(argv)

    sizes, data_dir, n_res = example_sizes(Path(args.config))
    data = (ROOT / data_dir).resolve() if data_dir else None
    names = args.tasks.split(",") if args.tasks else list(sizes)
    tasks = [load_task(n, data_dir=data) for n in names]
    adapter = Path(args.adapter)
    # Imports happen once per process (a run evaluates many models): done here, so that no
    # path's load time carries them.
    import peft  # noqa: F401
    import transformers  # noqa: F401
    from transformers import AutoModelForCausalLM  # noqa: F401

    peak = matmul_peak()
    print(f"plain fp32 matmul: {peak:.1f} GFLOP/s", flush=True)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "config": args.config,
        "adapter": str(adapter),
        "sizes": {n: sizes[n] for n in names},
        "n_resamples": n_res,
        "matmul_peak_gflops": round(peak, 2),
        "paths": {},
    }
    paths = args.paths.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    for _ in range(args.repeats):  # interleaved, so drifting machine speed hits every path
        for name in paths:
            runs[name].append(run_path(name, adapter, tasks, sizes, n_res, args.hf_batch, peak))
    for name, done in runs.items():
        best = min(done, key=lambda r: r["seconds"] + r["load_s"])
        best["all_runs_seconds"] = [r["seconds"] for r in done]
        best["all_runs_load_s"] = [r["load_s"] for r in done]
        report["paths"][name] = best
    for j, name in enumerate(paths):
        for first in paths[:j]:
            ref, other = report["paths"][first], report["paths"][name]
            rows = compare(ref, other)
            with_load = (ref["seconds"] + ref["load_s"]) / (other["seconds"] + other["load_s"])
            report[f"{name}_vs_{first}"] = {
                "ratio": round(ref["seconds"] / other["seconds"], 3),
                "ratio_with_load": round(with_load, 3),
                "cpu_ratio": round(ref["cpu_s"] / other["cpu_s"], 3),
                "max_abs_score_diff": max(
                    (r.get("max_abs_score_diff", 0.0) for r in rows.values()), default=0.0
                ),
                "tasks": rows,
            }
            print(
                f"{name}: {other['seconds']:.1f} s vs {first} {ref['seconds']:.1f} s: "
                f"{ref['seconds'] / other['seconds']:.2f}x ({with_load:.2f}x with loading, "
                f"{ref['cpu_s'] / other['cpu_s']:.2f}x in CPU s), largest option-score difference "
                f"{report[f'{name}_vs_{first}']['max_abs_score_diff']:.2e} nats",
                flush=True,
            )
    Path(args.out).write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
