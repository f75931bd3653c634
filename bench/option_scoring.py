"""Option scoring: today's per-option path against prefix-shared scoring, same items, one run.

Per-option (the reference): every ``context + option`` text is scored as a whole with
``backend.logprobs`` (llama.cpp: each text one run), and the option's tokens are cut out of it.
Prefix-shared: ``backend.score_tails`` gets exactly the same token sequences, evaluates a prompt
once for all its options and computes logits only for option tokens (see
``synthbias.measure.scoring.shared_conditional_logprobs``).

Items: every classification task's own items (``Task.evaluate`` end to end, so the timing is the
task's real call site) and the real BBQ benchmark items (``../shared/benchmarks/bbq``, the
``measure.qa`` prompt, three answers each). Reports, per set and runtime, both wall times, the
speed-up and the largest absolute difference between the two paths' option scores (task
``option_scores``: nats, or nats per token/char where the task normalises; BBQ: summed nats).
Both paths score under ``prefix_token="always"``: the per-option path scores whole texts through
``logprobs`` (prefix token first), which the harness rule (no prefix before a context) cannot.

Roofline (issue 28, ``bench/roofline.py``): per path, the tokens its model calls feed x 2 x
parameters / seconds, as a share of a plain fp32 matmul's rate measured once at the start.
``roofline`` counts every sequence alone (an upper bound of the work: the shared path runs a
prompt once for its options and computes logits only at option tokens, so its share can pass
100 %); ``roofline_distinct`` counts each distinct prefix of a call once.

    PYTHONPATH=src python bench/option_scoring.py --runtimes llamacpp,hf --n 12 --bbq 24

Writes ``bench/results/option_scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    from synthbias.measure.scoring import conditional_logprobs
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.measure.scoring import conditional_logprobs

# bench/ is on sys.path when a script there runs
from roofline import (  # noqa: E402
    CountTokens,
    count_parameters,
    describe,
    matmul_peak,
    model_flops_per_token,
    roofline,
)

from synthbias.generate.protocol import TextLogprobs
from synthbias.measure.qa import DEFAULT_PROMPT, load_bbq
from synthbias.measure.scoring import stratified_sample
from synthbias.tasks import list_tasks, load_task

ROOT = Path(__file__).resolve().parents[1]


class PerOption:
    """A backend seen without ``score_tails``: scoring falls back to whole texts.

    ``logprobs_ids`` stays visible (HF), so misaligned boundaries are rescored exactly as the
    per-option path does; on llama.cpp ``share_text_prefix`` is switched off so ``logprobs`` is
    the plain one-run-per-text path.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.prefix_id = inner.prefix_id
        if hasattr(inner, "logprobs_ids"):
            self.logprobs_ids = inner.logprobs_ids

    def tokenize(self, text: str) -> list[int]:
        return self.inner.tokenize(text)

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        old = getattr(self.inner, "share_text_prefix", None)
        if old is not None:
            self.inner.share_text_prefix = False
        try:
            return self.inner.logprobs(texts)
        finally:
            if old is not None:
                self.inner.share_text_prefix = old

    def generate(self, prompts: Any, params: Any) -> Any:
        return self.inner.generate(prompts, params)


def load(runtime: str, threads: int | None) -> Any:
    if runtime == "llamacpp":
        from synthbias.generate.llamacpp import LlamaCppBackend

        return LlamaCppBackend(n_ctx=1024, n_threads=threads)
    if runtime == "hf":
        from synthbias.generate.hf import HFBackend

        return HFBackend(n_threads=threads)
    raise SystemExit(f"unknown runtime {runtime!r}; use llamacpp or hf")


def _timed(fn: Any, backend: Any, lines: dict[str, Any], path: str) -> tuple[Any, float]:
    """``fn()`` and its seconds; the tokens ``backend``'s model calls fed go into ``lines``."""
    with CountTokens(backend) as fed:
        start = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - start
    lines[path] = {"tokens": fed.alone, "tokens_distinct": fed.distinct, "seconds": secs}
    return out, secs


def roofline_rows(lines: dict[str, Any], flops: int, peak: float) -> dict[str, Any]:
    """Per path: tokens fed and the roofline of every sequence alone / each prefix once."""
    return {
        path: {
            "tokens": r["tokens"],
            "tokens_distinct": r["tokens_distinct"],
            "roofline": roofline(flops, r["tokens"], r["seconds"], peak),
            "roofline_distinct": roofline(flops, r["tokens_distinct"], r["seconds"], peak),
        }
        for path, r in lines.items()
    }


def bench_task(
    backend: Any, name: str, n: int, seed: int, flops: int, peak: float
) -> dict[str, Any]:
    """One classification task evaluated through both paths; option_scores compared."""
    task = load_task(name)
    lines: dict[str, Any] = {}
    slow, t_slow = _timed(
        lambda: task.evaluate(PerOption(backend), n=n, seed=seed, prefix_token="always"),
        backend,
        lines,
        "per_option",
    )
    fast, t_fast = _timed(
        lambda: task.evaluate(backend, n=n, seed=seed, prefix_token="always"),
        backend,
        lines,
        "shared",
    )
    diff = 0.0
    n_scores = 0
    for a, b in zip(slow.records, fast.records, strict=True):
        sa, sb = a.get("option_scores") or {}, b.get("option_scores") or {}
        assert sa.keys() == sb.keys()
        for k in sa:
            diff = max(diff, abs(sa[k] - sb[k]))
            n_scores += 1
    return {
        "items": len(fast.records),
        "options": n_scores,
        "normalize": task.spec.normalize,
        "per_option_s": round(t_slow, 2),
        "shared_s": round(t_fast, 2),
        "speedup": round(t_slow / t_fast, 2),
        "max_abs_diff": diff,
        **roofline_rows(lines, flops, peak),
    }


def bbq_pairs(data: Path, n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` real BBQ items (stratified over category x condition), three answers each."""
    df = load_bbq(data)
    strata = (df["category"] + "/" + df["context_condition"]).tolist()
    rows = df.iloc[stratified_sample(strata, n, seed, "equal")]
    pairs = []
    for _, r in rows.iterrows():
        ctx = DEFAULT_PROMPT.format(context=r["context"], question=r["question"])
        pairs.extend((ctx, " " + r[f"ans{k}"]) for k in range(3))
    return pairs


def bench_pairs(
    backend: Any, pairs: list[tuple[str, str]], flops: int, peak: float
) -> dict[str, Any]:
    lines: dict[str, Any] = {}
    slow, t_slow = _timed(
        lambda: conditional_logprobs(PerOption(backend), pairs, prefix_token="always"),
        backend,
        lines,
        "per_option",
    )
    fast, t_fast = _timed(
        lambda: conditional_logprobs(backend, pairs, prefix_token="always"),
        backend,
        lines,
        "shared",
    )
    diff = max(
        max(abs(a.logprob - b.logprob) for a, b in zip(slow, fast, strict=True)),
        max(
            abs(x - y)
            for a, b in zip(slow, fast, strict=True)
            for x, y in zip(a.token_logprobs, b.token_logprobs, strict=True)
        ),
    )
    assert all(a.n_tokens == b.n_tokens for a, b in zip(slow, fast, strict=True))
    return {
        "items": len(pairs) // 3,
        "options": len(pairs),
        "normalize": "none",
        "per_option_s": round(t_slow, 2),
        "shared_s": round(t_fast, 2),
        "speedup": round(t_slow / t_fast, 2),
        "max_abs_diff": diff,
        **roofline_rows(lines, flops, peak),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtimes", default="llamacpp,hf")
    ap.add_argument("--tasks", default="classification", help="comma list or 'classification'")
    ap.add_argument("--n", type=int, default=12, help="items per task")
    ap.add_argument("--bbq", type=int, default=24, help="real BBQ items (0: skip)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "benchmarks"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "option_scoring.json"))
    args = ap.parse_args(argv)
    if args.tasks == "classification":
        names = [t for t in list_tasks() if load_task(t).spec.kind == "classification"]
    else:
        names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    peak = matmul_peak(args.threads)
    print(f"plain fp32 matmul: {peak:.1f} GFLOP/s", flush=True)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "n_per_task": args.n,
        "seed": args.seed,
        "matmul_peak_gflops": round(peak, 2),
        "runs": {},
    }
    for runtime in args.runtimes.split(","):
        backend = load(runtime.strip(), args.threads)
        flops = model_flops_per_token(count_parameters(backend))
        rows: dict[str, Any] = {}
        for name in names:
            rows[name] = bench_task(backend, name, args.n, args.seed, flops, peak)
            print(f"{backend.name:>12} {name:<22} {rows[name]}", flush=True)
        if args.bbq:
            pairs = bbq_pairs(Path(args.data), args.bbq, 0)
            rows["bbq (benchmark)"] = bench_pairs(backend, pairs, flops, peak)
            print(f"{backend.name:>12} {'bbq (benchmark)':<22} {rows['bbq (benchmark)']}")
        slow = sum(r["per_option_s"] for r in rows.values())
        fast = sum(r["shared_s"] for r in rows.values())
        run: dict[str, Any] = {
            "runtime": backend.name,
            "model_id": backend.model_id,
            "flops_per_token": flops,
            "sets": rows,
            "total_per_option_s": round(slow, 2),
            "total_shared_s": round(fast, 2),
            "total_speedup": round(slow / fast, 2),
            "max_abs_diff": max(r["max_abs_diff"] for r in rows.values()),
        }
        for path, secs in (("per_option", slow), ("shared", fast)):
            alone = sum(r[path]["tokens"] for r in rows.values())
            distinct = sum(r[path]["tokens_distinct"] for r in rows.values())
            run[f"total_{path}_roofline"] = roofline(flops, alone, secs, peak)
            run[f"total_{path}_roofline_distinct"] = roofline(flops, distinct, secs, peak)
        report["runs"][runtime] = run
        print(f"{backend.name:>12} total {run}", flush=True)
        for path in ("per_option", "shared"):
            share = 100 * run[f"total_{path}_roofline_distinct"]["share_of_matmul_peak"]
            print(
                f"{backend.name:>12} {path:<10} {describe(run[f'total_{path}_roofline'])} "
                f"(every sequence alone; {share:.1f} % counting each distinct prefix once)",
                flush=True,
            )
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
