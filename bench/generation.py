"""Throughput of batched generation vs a one-prompt-at-a-time loop, same model, same settings.

Both arms use one LlamaCppBackend instance (same weights, threads, context and sampling), the
same prompts and the same ``max_tokens``; the only difference is whether ``generate`` receives the
whole list (``batch_size`` sequences per decode step) or one prompt per call. Greedy decoding is
the default so both arms produce the same tokens and do the same work; the table also reports how
many completions came out identical across arms.

Each arm has a roofline line (issue 28, ``bench/roofline.py``): (prompt + generated tokens) x
2 x parameters / seconds as a share of a plain fp32 matmul's rate, measured once at the start on
as many threads as the backend uses. An upper bound of the work: the prompts' shared beginning
(the chat template's system turn) is not decoded again where prefix sharing or the backend's
prompt cache reuses it.

    PYTHONPATH=src python bench/generation.py --prompts 64 --max-tokens 48 --batch-size 32

Writes ``bench/results/generation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

try:
    from synthbias.generate import LlamaCppBackend, SamplingParams
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.generate import LlamaCppBackend, SamplingParams
# bench/ is on sys.path when a script there runs
from roofline import (  # noqa: E402
    count_parameters,
    describe,
    matmul_peak,
    model_flops_per_token,
    roofline,
)

OCCUPATIONS = (
    "nurse engineer teacher carpenter doctor secretary pilot librarian mechanic accountant "
    "chef firefighter programmer receptionist scientist cleaner lawyer plumber dancer surgeon "
    "electrician hairdresser farmer judge"
).split()
TASKS = (
    "Write one sentence about a {} starting a shift.",
    "Describe a typical day of a {} in two sentences.",
    "Tell a very short story about a {} and a colleague.",
)


def make_prompts(n: int) -> list[list[dict[str, str]]]:
    """Chat prompts in the style of the bias studies (occupation x task)."""
    out = []
    for i in range(n):
        task = TASKS[i % len(TASKS)].format(OCCUPATIONS[i % len(OCCUPATIONS)])
        out.append([{"role": "user", "content": task}])
    return out


def run_arm(backend: LlamaCppBackend, prompts: list, params: SamplingParams, batched: bool):
    """Generate all prompts, batched or one per call; return completions and wall seconds."""
    start = time.perf_counter()
    if batched:
        out = backend.generate(prompts, params)
    else:
        out = [c for p in prompts for c in backend.generate([p], params)]
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64, help="number of prompts")
    ap.add_argument("--max-tokens", type=int, default=48, help="tokens per completion")
    ap.add_argument("--batch-size", type=int, default=32, help="sequences per decode step")
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    ap.add_argument("--threads", type=int, default=None, help="default: all available cores")
    ap.add_argument("--no-share-prefix", action="store_true", help="disable KV prefix sharing")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results/generation.json")
    args = ap.parse_args(argv)

    prompts = make_prompts(args.prompts)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, seed=0)
    t0 = time.perf_counter()
    backend = LlamaCppBackend(
        batch_size=args.batch_size,
        n_ctx=512,
        n_threads=args.threads,
        share_prefix=not args.no_share_prefix,
    )
    load_s = time.perf_counter() - t0
    flops = model_flops_per_token(count_parameters(backend))
    peak = matmul_peak(backend.n_threads)
    print(f"plain fp32 matmul on {backend.n_threads} threads: {peak:.1f} GFLOP/s", flush=True)
    with backend:
        backend.generate(prompts[:2], SamplingParams(max_tokens=4))  # warm-up (page in weights)
        arms = {}
        outputs = {}
        for arm, batched in (("batched", True), ("loop", False)):
            out, secs = run_arm(backend, prompts, params, batched)
            outputs[arm] = out
            gen = sum(c.n_tokens for c in out)
            fed = gen + sum(c.n_prompt_tokens for c in out)
            arms[arm] = {
                "seconds": round(secs, 3),
                "generated_tokens": gen,
                "prompt_tokens": fed - gen,
                "tokens_per_s": round(gen / secs, 2),
                "finish_length": sum(c.finish_reason == "length" for c in out),
                "roofline": roofline(flops, fed, secs, peak),
            }
        same = sum(
            a.text == b.text for a, b in zip(outputs["batched"], outputs["loop"], strict=True)
        )
        result = {
            "model_id": backend.model_id,
            "backend": backend.name,
            "n_threads": backend.n_threads,
            "batch_size": args.batch_size,
            "share_prefix": backend.share_prefix,
            "n_prompts": args.prompts,
            "max_tokens": args.max_tokens,
            "temperature": args.temperature,
            "load_seconds": round(load_s, 3),
            "matmul_peak_gflops": round(peak, 2),
            "flops_per_token": flops,
            "arms": arms,
            "ratio_batched_over_loop": round(
                arms["batched"]["tokens_per_s"] / arms["loop"]["tokens_per_s"], 3
            ),
            "identical_outputs": same,
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "example": outputs["batched"][0].text,
        }

    print(f"model {result['model_id']}  threads={result['n_threads']}  load {load_s:.2f}s")
    print(f"{args.prompts} prompts x {args.max_tokens} tokens, temperature {args.temperature}")
    print(f"{'arm':<10}{'seconds':>10}{'gen tok':>10}{'prompt tok':>12}{'tok/s':>10}")
    for arm, r in arms.items():
        print(
            f"{arm:<10}{r['seconds']:>10.2f}{r['generated_tokens']:>10}"
            f"{r['prompt_tokens']:>12}{r['tokens_per_s']:>10.1f}"
        )
    for arm, r in arms.items():
        print(f"{arm:<10}{describe(r['roofline'])} (prompt + generated tokens)")
    print(f"ratio batched/loop: {result['ratio_batched_over_loop']:.2f}x")
    print(f"identical completions across arms: {same}/{args.prompts}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
