"""Measurement speed, side by side in one run, written to bench/results/measure.json.

1. Lexical: group counting with the compiled per-axis matcher vs a naive loop of one regex per
   term (the baseline), on N short texts, on one core; texts/s for every axis and for the full
   ``measure_lexical`` representation metric.
2. Embedding: ``Encoder.encode`` (cold cache) vs sentence-transformers' own ``encode`` on the same
   texts and batch size (alternating order, median of repeats), plus the warm-cache time.

Run: .venv/bin/python bench/measure.py [--n 100000] [--n-embed 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SUBJECTS = [
    "The nurse",
    "My neighbour",
    "A Muslim teacher",
    "The old man",
    "Her sister",
    "A young Catholic priest",
    "The wealthy banker",
    "An Indian engineer",
    "Mary",
    "The Black student",
    "His father",
    "The poor farmer",
    "A Jewish doctor",
    "James",
]
VERBS = [
    "said she was late",
    "fixed his car",
    "went home early",
    "loves the new job",
    "talked to the manager",
    "bought groceries for the family",
    "read a book at lunch",
]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, len(SUBJECTS), n)
    v = rng.integers(0, len(VERBS), n)
    return [
        f"{SUBJECTS[i]} {VERBS[j]} on day {k}." for k, (i, j) in enumerate(zip(s, v, strict=True))
    ]


def naive_counts(axis, texts: list[str]) -> np.ndarray:
    """Baseline: one compiled regex per term, looped over every text."""
    groups = axis.group_names
    pats = []
    for g_i, g in enumerate(groups):
        for term in axis.terms(g):
            pats.append((g_i, re.compile(rf"\b{re.escape(term)}\b", re.IGNORECASE)))
    out = np.zeros((len(texts), len(groups)), dtype=np.int64)
    for t_i, text in enumerate(texts):
        for g_i, pat in pats:
            out[t_i, g_i] += len(pat.findall(text))
    return out


def bench_lexical(n: int) -> dict:
    from synthbias.lexicon import load_lexicon
    from synthbias.measure.lexical import group_representation

    lex = load_lexicon()
    texts = make_texts(n)
    res: dict = {"n_texts": n, "axes": {}}
    n_naive = min(n, 5000)
    for name in lex.axes:
        axis = lex.axis(name)
        axis.count_groups_batch(texts[:100])  # compile outside the timing
        t = time.perf_counter()
        axis.count_groups_batch(texts)
        fast = time.perf_counter() - t
        t = time.perf_counter()
        naive_counts(axis, texts[:n_naive])
        naive = (time.perf_counter() - t) * n / n_naive
        res["axes"][name] = {
            "compiled_texts_per_s": n / fast,
            "naive_texts_per_s": n / naive,
            "speedup_vs_naive": naive / fast,
        }
        print(
            f"  {name:15s} compiled {n / fast:10,.0f} texts/s   naive {n / naive:9,.0f} "
            f"texts/s   x{naive / fast:5.1f}"
        )
    t = time.perf_counter()
    group_representation(texts, "gender", n_resamples=200)
    dt = time.perf_counter() - t
    res["gender_representation_metric_texts_per_s"] = n / dt
    print(f"  gender representation metric (200 resamples): {n / dt:,.0f} texts/s")
    return res


def bench_embedding(n: int, repeats: int, batch_size: int = 64) -> dict:
    import tempfile

    from synthbias.measure.embedding import Encoder

    texts = make_texts(n, seed=1)
    enc = Encoder(batch_size=batch_size)
    model = enc.model
    model.encode(texts[:64], batch_size=batch_size)  # warm up
    st_times, enc_times = [], []
    for r in range(repeats):
        order = ("st", "enc") if r % 2 == 0 else ("enc", "st")
        for which in order:
            if which == "st":
                t = time.perf_counter()
                model.encode(texts, batch_size=batch_size, normalize_embeddings=True)
                st_times.append(time.perf_counter() - t)
            else:
                with tempfile.TemporaryDirectory() as d:
                    cold = Encoder(batch_size=batch_size, cache_dir=d)
                    cold._model = model  # same loaded model: compare the wrapper, not loading
                    t = time.perf_counter()
                    cold.encode(texts)
                    enc_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    enc.encode(texts)
    enc.encode(texts)
    warm = time.perf_counter() - t
    st_med, enc_med = statistics.median(st_times), statistics.median(enc_times)
    ratio = (n / enc_med) / (n / st_med)
    print(f"  sentence-transformers encode: {n / st_med:7.1f} texts/s (median of {repeats})")
    print(f"  synthbias Encoder (cold):     {n / enc_med:7.1f} texts/s   ratio {ratio:.3f}")
    print(f"  synthbias Encoder (warm, 2nd call of 2): {warm:.3f} s for both calls")
    return {
        "n_texts": n,
        "batch_size": batch_size,
        "st_seconds": st_times,
        "encoder_cold_seconds": enc_times,
        "throughput_ratio_encoder_vs_st": ratio,
        "within_10pct": ratio >= 0.9,
        "warm_two_calls_seconds": warm,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-embed", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "measure.json")
    args = ap.parse_args()
    print(f"lexical matching on {args.n:,} texts (one core):")
    lexical = bench_lexical(args.n)
    print(f"embedding {args.n_embed} texts:")
    embedding = bench_embedding(args.n_embed, args.repeats)
    out = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "lexical": lexical,
        "embedding": embedding,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
