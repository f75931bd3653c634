"""Reduced precision by choice: transformers bf16 beside the exact fp32 default, same items.

Why: some CPUs here have AVX-512 BF16, where a bf16 matmul runs about twice the fp32 rate.
A user may trade exactness for that speed, but only knowing the price. This bench scores the
same CrowS-Pairs sentences and BBQ items with the embedded model in transformers fp32 (the
default, exact path) and bf16 (``HFBackend(dtype="bfloat16")``; log-softmax still in float32),
in one process, arms alternated (fp32, bf16, bf16, fp32; best of two), and prints per benchmark:
seconds and CPU seconds, the ratio, the largest score difference from fp32 (nats) and the
decisions that flip (CrowS-Pairs: which sentence is more likely; BBQ: the argmax answer), with
a roofline line (FLOPs per token x tokens / seconds against a measured fp32 matmul).

    PYTHONPATH=src python bench/precision.py --out bench/results/precision.json
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    from synthbias.generate.hf import HFBackend
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.generate.hf import HFBackend
# bench/ is on sys.path when a script there runs
from roofline import count_parameters, matmul_peak, model_flops_per_token, roofline  # noqa: E402

from synthbias.measure.likelihood import crows_pairs_subset, load_crows_pairs  # noqa: E402
from synthbias.measure.qa import bbq_pairs, bbq_sample  # noqa: E402
from synthbias.measure.scoring import conditional_logprobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("Gender_identity", "Religion", "Race_ethnicity")


def crows(backend: HFBackend, texts: list[str]) -> tuple[np.ndarray, int]:
    """Sentence log-likelihoods and the tokens fed."""
    res = backend.logprobs(texts)
    return np.array([r.total for r in res]), sum(len(r.token_ids) for r in res)


def bbq_scores(backend: HFBackend, pairs: list[tuple[str, str]]) -> np.ndarray:
    """Per-option log p(answer | context), items x 3."""
    return np.array([s.logprob for s in conditional_logprobs(backend, pairs)]).reshape(-1, 3)


def timed(fn: Any) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "benchmarks"))
    ap.add_argument("--pairs", type=int, default=400, help="CrowS-Pairs pairs (0: all 1,508)")
    ap.add_argument("--bbq", type=int, default=100, help="BBQ items per category (3 categories)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "precision.json"))
    args = ap.parse_args(argv)

    frame = load_crows_pairs(args.data)
    sub = crows_pairs_subset(frame, args.pairs or len(frame), seed=0)
    texts = sub["sent_more"].tolist() + sub["sent_less"].tolist()
    half = len(sub)
    rows = bbq_sample(args.data, list(CATEGORIES), args.bbq * len(CATEGORIES), seed=0)
    pairs = bbq_pairs(rows)
    peak = matmul_peak(args.threads)
    print(f"plain fp32 matmul: {peak:.1f} GFLOP/s", flush=True)
    arms = {
        "fp32": HFBackend(batch_size=32, n_threads=args.threads),
        "bf16": HFBackend(batch_size=32, n_threads=args.threads, dtype="bfloat16"),
    }
    flops = model_flops_per_token(count_parameters(arms["fp32"]))
    got: dict[str, dict[str, Any]] = {a: {"crows_s": [], "bbq_s": []} for a in arms}
    for arm in ("fp32", "bf16", "bf16", "fp32"):
        (ll, tokens), sec, cpu = timed(lambda a=arm: crows(arms[a], texts))
        got[arm].update(crows=ll, crows_tokens=tokens)
        got[arm]["crows_s"].append((sec, cpu))
        sc, sec, cpu = timed(lambda a=arm: bbq_scores(arms[a], pairs))
        got[arm]["bbq"] = sc
        got[arm]["bbq_s"].append((sec, cpu))
        print(f"{arm}: CrowS-Pairs {got[arm]['crows_s'][-1][0]:.1f} s, BBQ {sec:.1f} s", flush=True)

    ref = got["fp32"]
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "matmul_peak_gflops": round(peak, 2),
        "crows_pairs": {"pairs": half, "tokens": ref["crows_tokens"]},
        "bbq": {"items": len(ref["bbq"]), "categories": list(CATEGORIES)},
        "arms": {},
    }
    pref = ref["crows"][:half] > ref["crows"][half:]
    for arm, g in got.items():
        c_sec, c_cpu = min(g["crows_s"])
        b_sec, b_cpu = min(g["bbq_s"])
        more = g["crows"][:half] > g["crows"][half:]
        row = {
            "crows_seconds": round(c_sec, 2),
            "crows_cpu_s": round(c_cpu, 2),
            "crows_pct_stereotype": round(100 * float(np.mean(more)), 2),
            "crows_max_abs_diff": float(np.max(np.abs(g["crows"] - ref["crows"]))),
            "crows_flips": int(np.sum(more != pref)),
            "bbq_seconds": round(b_sec, 2),
            "bbq_cpu_s": round(b_cpu, 2),
            "bbq_max_abs_diff": float(np.max(np.abs(g["bbq"] - ref["bbq"]))),
            "bbq_flips": int(np.sum(g["bbq"].argmax(1) != ref["bbq"].argmax(1))),
            "crows_roofline": roofline(flops, g["crows_tokens"], c_sec, peak),
        }
        report["arms"][arm] = row
    for key in ("crows", "bbq"):
        fp, bf = report["arms"]["fp32"], report["arms"]["bf16"]
        report[f"{key}_speedup_bf16"] = round(fp[f"{key}_seconds"] / bf[f"{key}_seconds"], 2)
        report[f"{key}_cpu_speedup_bf16"] = round(fp[f"{key}_cpu_s"] / bf[f"{key}_cpu_s"], 2)
    bf = report["arms"]["bf16"]
    print(
        f"bf16 vs fp32: CrowS-Pairs {report['crows_speedup_bf16']}x "
        f"({bf['crows_flips']} of {half} decisions flip, largest sentence difference "
        f"{bf['crows_max_abs_diff']:.3f} nats, {bf['crows_pct_stereotype']} % vs "
        f"{report['arms']['fp32']['crows_pct_stereotype']} %); BBQ {report['bbq_speedup_bf16']}x "
        f"({bf['bbq_flips']} of {len(ref['bbq'])} answers flip, largest option difference "
        f"{bf['bbq_max_abs_diff']:.3f} nats)",
        flush=True,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
