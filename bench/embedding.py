"""Throughput of ``Encoder.encode`` against ``SentenceTransformer.encode`` on the same texts.

Both run on the same model instance, texts and batch size; the order alternates between repeats
so drift on a shared machine (thermal, other jobs) hits both sides alike. Reports median times,
the cold-cache ratio (target: within 10%; judged on the median of per-repeat ratios), cold with
the on-disk cache (a second instance of the same model), the warm-cache time, and the Encoder's
own overhead (a warm call is exactly its hashing/lookup work), which is immune to machine noise.

    PYTHONPATH=src .venv/bin/python bench/embedding.py [--n 2000] [--batch-size 64] [--repeats 3]
        [--threads N]

Writes ``bench/results/embedding.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from synthbias.measure.embedding import Encoder  # noqa: E402

SUBJECTS = ["She", "He", "The nurse", "The engineer", "My neighbour", "The teacher", "A pilot"]
VERBS = ["wrote", "read", "fixed", "planned", "reviewed", "shared", "explained", "finished"]
OBJECTS = ["the report", "a letter", "the budget", "the schedule", "a short story", "the code"]
TAILS = ["today", "on Monday", "after lunch", "before the meeting", "with care", "again"]


def make_texts(n: int) -> list[str]:
    """``n`` distinct short sentences (so the cache cannot help the cold run)."""
    out: list[str] = []
    i = 0
    while len(out) < n:
        s, v = SUBJECTS[i % 7], VERBS[(i // 7) % 8]
        o, t = OBJECTS[(i // 56) % 6], TAILS[(i // 336) % 6]
        out.append(f"{s} {v} {o} {t} (item {i}).")
        i += 1
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "embedding.json"
    )
    args = ap.parse_args(argv)

    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    texts = make_texts(args.n)
    warmup = [f"Warm-up sentence number {i}." for i in range(args.batch_size)]
    st_s: list[float] = []
    cold_s: list[float] = []
    disk_s: list[float] = []
    warm_s: list[float] = []
    model_id = ""
    for r in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            enc = Encoder(batch_size=args.batch_size)
            disk = Encoder(batch_size=args.batch_size, cache_dir=tmp)
            model = enc.model  # the baseline runs on the Encoder's own model instance
            disk.model.encode(warmup, batch_size=args.batch_size)
            model_id = enc.model_id
            model.encode(warmup, batch_size=args.batch_size)

            def st_run(model=model) -> None:
                model.encode(texts, batch_size=args.batch_size)

            def enc_run(enc=enc) -> None:
                enc.encode(texts)

            def disk_run(disk=disk) -> None:
                disk.encode(texts)

            runs = [("st", st_run), ("cold", enc_run), ("disk", disk_run)]
            if r % 2:
                runs.reverse()
            for name, fn in runs:
                {"st": st_s, "cold": cold_s, "disk": disk_s}[name].append(timed(fn))
            warm_s.append(timed(enc_run))
            assert enc.n_encoded == len(texts) and enc.n_cache_hits == len(texts)
        print(
            f"repeat {r + 1}/{args.repeats}: st {st_s[-1]:.2f}s  encoder cold {cold_s[-1]:.2f}s  "
            f"cold+disk {disk_s[-1]:.2f}s  warm {warm_s[-1] * 1000:.1f}ms  "
            f"(ratio {cold_s[-1] / st_s[-1]:.3f})",
            flush=True,
        )

    med = {k: statistics.median(v) for k, v in [("st", st_s), ("cold", cold_s), ("disk", disk_s)]}
    warm = statistics.median(warm_s)
    result = {
        "n_texts": args.n,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "model_id": model_id,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "seconds": {
            "sentence_transformers": st_s,
            "encoder_cold": cold_s,
            "encoder_cold_disk": disk_s,
            "encoder_warm": warm_s,
        },
        "median_s": med | {"warm": warm},
        "texts_per_s": {k: args.n / v for k, v in med.items()} | {"warm": args.n / warm},
        "ratio_cold": med["cold"] / med["st"],
        "ratio_cold_disk": med["disk"] / med["st"],
        # each repeat's own ratio: both sides ran back to back, so shared-machine drift cancels
        "ratio_cold_paired": statistics.median(c / s for c, s in zip(cold_s, st_s, strict=True)),
        # Encoder's own work (hash, lookup, stack) is what a warm call does: a noise-free bound
        "overhead_fraction_est": warm / med["st"],
    }
    result["within_10pct"] = result["ratio_cold_paired"] <= 1.10
    print(
        f"\nmedian over {args.repeats}: SentenceTransformer.encode {med['st']:.2f}s "
        f"({args.n / med['st']:.0f} texts/s) | Encoder.encode cold {med['cold']:.2f}s "
        f"(ratio {result['ratio_cold']:.3f}) | cold + disk cache {med['disk']:.2f}s "
        f"(ratio {result['ratio_cold_disk']:.3f}) | warm {warm * 1000:.1f}ms\n"
        f"median of per-repeat ratios (encoder cold / sentence-transformers): "
        f"{result['ratio_cold_paired']:.3f}; Encoder's own overhead (warm call / st): "
        f"{result['overhead_fraction_est']:.2%}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
