"""Full likelihood-benchmark runs on the embedded model, per runtime, with timings.

Scores CrowS-Pairs (all 1,508 pairs by default), and optionally StereoSet and BBQ, on the
llama.cpp backend and/or the HF transformers backend (same SmolLM2 weights), and compares the
runtimes pair by pair: how many CrowS-Pairs decisions flip and how far the log-likelihood
differences move.

Scoring speed, on the same ``--loop-n`` CrowS-Pairs sentences in one run: the baseline is a
plain loop over llama-cpp-python's own ``Llama`` (one sentence per ``eval``, every logit, the
packaged Q4_1 file); then per runtime our one-sentence-at-a-time loop (``logprobs([s])`` per
sentence), the batched path that ``bench-bias`` uses, and (llama.cpp) the opt-in pair-shared
path (texts sorted and grouped by common prefix, a pair's shared words decoded once), in
sentences per second, with the largest per-token difference from the loop (see
``scoring_speed``). The full-suite ``seconds`` give sentences/s over all 3,016 sentences.

    PYTHONPATH=src python bench/likelihood.py --runtimes llamacpp,llamacpp-f32,hf

``llamacpp-f32`` runs a locally dequantised copy of the same GGUF (``weights="f32"``).

With ``hf`` among the runtimes, a second baseline runs in the same sitting: the plain
transformers fp32 loop of issue 28 (sentences sorted by length, batches of 32, one forward pass
each, log-softmax over the vocabulary; written here without synthbias), and the HF arms report
their ratio to it, the tokens that ``pair_shared`` (``share_text_prefix``: a pair's common
beginning run once) saves, and a roofline line: FLOPs per token (2 × parameters) × tokens /
seconds as a share of a plain fp32 matmul's measured rate on the same cores.
    PYTHONPATH=src python bench/likelihood.py --suites crows_pairs,stereoset,bbq --limit 600

``--default-vs-plain`` is issue 28's acceptance check, in one process and one sitting: all
1,508 CrowS-Pairs pairs through ``bench-bias``'s default path (``scoring_backend: auto``:
:func:`~synthbias.measure.scoring.choose_scoring_backend`, then ``score_benchmark`` exactly as
the CLI calls it, bootstrap included) beside the plain transformers fp32 loop, in the order
plain, default, default, plain (a change in the machine's load hits both alike); wall and CPU
seconds, the ratio, both scores, the largest per-sentence difference and the roofline share.

    PYTHONPATH=src python bench/likelihood.py --default-vs-plain \
        --out bench/results/crows_default_vs_plain.json

Reads ``../shared/benchmarks`` (or ``--data``); writes ``bench/results/likelihood.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:
    from synthbias.measure.likelihood import crows_pairs_subset, load_crows_pairs, score_benchmark
    from synthbias.measure.scoring import (
        choose_scoring_backend,
        load_scoring_backend,
        score_texts,
    )
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.measure.likelihood import crows_pairs_subset, load_crows_pairs, score_benchmark
    from synthbias.measure.scoring import (
        choose_scoring_backend,
        load_scoring_backend,
        score_texts,
    )
# bench/ is on sys.path when a script there runs
from roofline import matmul_peak, model_flops_per_token, roofline  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load(runtime: str, threads: int | None):
    """A backend by short name; returns it with its load time in seconds."""
    start = time.perf_counter()
    if runtime in ("llamacpp", "llamacpp-f32", "llamacpp-f16"):
        from synthbias.generate.llamacpp import LlamaCppBackend

        weights = runtime.partition("-")[2] or "native"
        backend = LlamaCppBackend(n_ctx=512, n_threads=threads, weights=weights)
    elif runtime == "hf":
        from synthbias.generate.hf import HFBackend

        backend = HFBackend(n_threads=threads, batch_size=32)
    else:
        raise SystemExit(f"unknown runtime {runtime!r}; use llamacpp, llamacpp-f32/-f16 or hf")
    return backend, time.perf_counter() - start


def _sentences(data: str, n: int) -> list[str]:
    sub = crows_pairs_subset(load_crows_pairs(data), max(1, n // 2), seed=0)
    return sub["sent_more"].tolist() + sub["sent_less"].tolist()


def plain_loop(data: str, n: int, threads: int | None) -> dict:
    """The baseline: llama-cpp-python's own ``Llama``, one sentence per ``eval``, all logits.

    What a user would write without this package (the lm-evaluation-harness recipe: BOS, the
    sentence, log-softmax of every position), on the packaged Q4_1 file. Returns seconds and
    the per-sentence totals, to check the other paths against.
    """
    import llama_cpp

    from synthbias.generate.llamacpp import available_cores, guard_high_level_llama
    from synthbias.generate.models import default_model_path

    guard_high_level_llama()  # AMX CPUs: as our backend loads the model
    texts = _sentences(data, n)
    cores = threads or available_cores()
    ref = llama_cpp.Llama(
        model_path=str(default_model_path()),
        logits_all=True,
        n_ctx=256,
        n_batch=256,
        n_threads=cores,
        n_threads_batch=cores,
        verbose=False,
    )
    try:
        bos = ref.token_bos()
        start = time.perf_counter()
        totals = []
        for text in texts:
            ids = [bos, *ref.tokenize(text.encode("utf-8"), add_bos=False, special=False)]
            ref.reset()
            ref.eval(ids)
            logp = llama_cpp.Llama.logits_to_logprobs(np.asarray(ref.scores[: len(ids)]))
            totals.append(float(sum(logp[j - 1, ids[j]] for j in range(1, len(ids)))))
        seconds = time.perf_counter() - start
    finally:
        ref.close()
    return {"sentences": len(texts), "seconds": round(seconds, 2), "totals": totals}


def plain_transformers_loop(data: str, n: int, threads: int | None, batch: int = 32) -> dict:
    """Issue 28's baseline: transformers fp32, sorted by length, batches of 32, one pass each."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from synthbias.generate.hf import converted_checkpoint
    from synthbias.generate.models import default_model_path

    if threads:
        torch.set_num_threads(threads)
    folder = str(converted_checkpoint(default_model_path()))
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, local_files_only=True
    ).eval()
    texts = _sentences(data, n)
    start, cpu = time.perf_counter(), time.process_time()
    ids = [[tok.bos_token_id, *tok(t, add_special_tokens=False)["input_ids"]] for t in texts]
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    totals = [0.0] * len(ids)
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            width = max(len(ids[i]) for i in idx)
            x = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, : len(ids[i])] = torch.tensor(ids[i])
            logp = torch.log_softmax(model(x).logits[:, :-1].float(), dim=-1)
            got = logp.gather(-1, x[:, 1:, None])[..., 0]
            for r, i in enumerate(idx):
                totals[i] = float(got[r, : len(ids[i]) - 1].double().sum())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "sentences": len(texts),
        "tokens": sum(len(s) - 1 for s in ids),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "flops_per_token": model_flops_per_token(n_params),
        "totals": totals,
    }


def shared_tokens(backend, texts: list[str]) -> dict:
    """Tokens fed with and without pair sharing (``text_prefix_groups``), HF backend."""
    from synthbias.generate.hf import text_prefix_groups

    seqs = [[backend.prefix_id, *backend.tokenize(t)] for t in texts]
    plain = sum(len(s) - 1 for s in seqs)
    saved = sum(h * (len(m) - 1) for h, m in text_prefix_groups(seqs) if h)
    return {"tokens_plain": plain, "tokens_pair_shared": plain - saved}


def scoring_speed(backend, data: str, n: int) -> dict:
    """Sentences/s of a one-at-a-time loop and the batched paths, on the same texts.

    ``batched``: the default path (llama.cpp: ``batch_size`` texts per call, each text one
    run, equal lengths sharing a decode; HF: length-sorted padded batches). ``pair_shared``
    (llama.cpp only): ``share_text_prefix=True``, texts sorted and grouped by common prefix.
    The batched arms run twice, in the order batched, pair_shared, pair_shared, batched, and
    their times are averaged, so a change in the machine's load hits both alike.
    """
    texts = _sentences(data, n)
    sharing = hasattr(backend, "share_text_prefix")
    arms: dict = {}
    results: dict = {}

    def timed(key: str, fn) -> None:
        if sharing:
            backend.share_text_prefix = key == "pair_shared"
        start = time.perf_counter()
        try:
            results[key] = fn()
        finally:
            if sharing:
                backend.share_text_prefix = False
        arms.setdefault(key, []).append(time.perf_counter() - start)

    timed("loop", lambda: [backend.logprobs([t])[0] for t in texts])
    order = ["batched", "pair_shared", "pair_shared", "batched"] if sharing else ["batched"] * 2
    for key in order:
        timed(key, lambda: score_texts(backend, texts))
    mean = {k: sum(v) / len(v) for k, v in arms.items()}
    loop = results["loop"]

    def maxdiff(scored) -> float:
        return max(
            abs(x - y)
            for a, b in zip(loop, scored, strict=True)
            for x, y in zip(a.logprobs, b.logprobs, strict=True)
        )

    out = {
        "sentences": len(texts),
        "tokens": sum(len(t.token_ids) for t in loop),
        **{f"{k}_s": round(v, 2) for k, v in mean.items()},
        **{f"{k}_sentences_per_s": round(len(texts) / v, 2) for k, v in mean.items()},
        "batched_speedup_vs_loop": round(mean["loop"] / mean["batched"], 2),
        "batched_max_abs_diff_vs_loop": maxdiff(results["batched"]),
        "totals": [t.total for t in loop],
    }
    if sharing:
        out["pair_shared_speedup_vs_batched"] = round(mean["batched"] / mean["pair_shared"], 2)
        out["pair_shared_max_abs_diff_vs_loop"] = maxdiff(results["pair_shared"])
    if backend.name == "transformers":
        out.update(shared_tokens(backend, texts))
    return out


def _timed(fn):
    """(result, wall seconds, process CPU seconds over all threads) of ``fn()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    res = fn()
    return res, time.perf_counter() - wall, time.process_time() - cpu


def _maxdiff(absdiff: np.ndarray, ref: np.ndarray, half: int) -> float:
    """Largest change in a pair's |ll(more) - ll(less)| between the two paths, in nats."""
    return float(np.max(np.abs(absdiff - np.abs(ref[:half] - ref[half:]))))


def default_vs_plain(data: str, threads: int | None, peak: float, limit: int | None) -> dict:
    """``bench-bias --suite crows_pairs`` on its default path vs the plain loop (all pairs)."""
    n_pairs = min(limit or 10**9, len(load_crows_pairs(data)))
    choice = choose_scoring_backend()
    backend = load_scoring_backend(choice, None, n_threads=threads)
    arms: dict[str, list[tuple[float, float]]] = {"plain": [], "default": []}
    plain: dict = {}
    default: dict = {}
    for arm in ("plain", "default", "default", "plain"):
        if arm == "plain":
            plain = plain_transformers_loop(data, 2 * n_pairs, threads)
            wall, cpu = plain["seconds"], plain["cpu_s"]
        else:
            default, wall, cpu = _timed(
                lambda: score_benchmark(backend, "crows_pairs", data, limit)
            )
        arms[arm].append((wall, cpu))
        print(f"{arm:>8}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    mean = {k: (np.mean([w for w, _ in v]), np.mean([c for _, c in v])) for k, v in arms.items()}
    # the plain loop's own sentence order is _sentences(): all sent_more, then all sent_less
    half = len(plain["totals"]) // 2
    ref = np.array(plain["totals"])
    plain_pct = 100 * float(np.mean(ref[:half] > ref[half:]))
    pct = default["crows_pairs.pct_stereotype"]
    ref_pref = (ref[:half] > ref[half:]).astype(float)
    flips = int(np.sum(np.array(pct.per_sample) != ref_pref))
    absdiff = np.array(default["crows_pairs.likelihood_diff"].per_sample)
    out = {
        "pairs": n_pairs,
        "sentences": 2 * n_pairs,
        "tokens": plain["tokens"],
        "order": "plain, default, default, plain",
        "scoring_backend": choice.to_dict(),
        "plain_wall_s": [round(w, 1) for w, _ in arms["plain"]],
        "plain_cpu_s": [round(c, 1) for _, c in arms["plain"]],
        "default_wall_s": [round(w, 1) for w, _ in arms["default"]],
        "default_cpu_s": [round(c, 1) for _, c in arms["default"]],
        "ratio_wall": round(float(mean["plain"][0] / mean["default"][0]), 3),
        "ratio_cpu": round(float(mean["plain"][1] / mean["default"][1]), 3),
        "default_pct_stereotype": round(pct.value, 2),
        "plain_pct_stereotype": round(plain_pct, 2),
        "decision_flips": flips,
        "max_abs_pair_diff_change": _maxdiff(absdiff, ref, half),
        "roofline_default": roofline(
            plain["flops_per_token"], plain["tokens"], float(mean["default"][0]), peak
        ),
        "roofline_plain": roofline(
            plain["flops_per_token"], plain["tokens"], float(mean["plain"][0]), peak
        ),
    }
    print(json.dumps(out, indent=2), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runtimes", default="llamacpp,hf")
    ap.add_argument("--suites", default="crows_pairs")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "benchmarks"))
    ap.add_argument("--limit", type=int, default=None, help="items per suite (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--loop-n", type=int, default=200, help="sentences in the speed check")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "likelihood.json"))
    ap.add_argument(
        "--default-vs-plain",
        action="store_true",
        help="only the acceptance check: bench-bias's default path vs the plain loop, all pairs",
    )
    args = ap.parse_args(argv)
    if args.default_vs_plain:
        peak = matmul_peak(args.threads)
        report = {
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "matmul_peak_gflops": round(peak, 2),
            "crows_pairs_default_vs_plain": default_vs_plain(
                args.data, args.threads, peak, args.limit
            ),
        }
        Path(args.out).write_text(json.dumps(report, indent=2, default=float))
        print(f"wrote {args.out}")
        return report

    report: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "limit": args.limit,
        "seed": args.seed,
        "runs": {},
    }
    samples: dict[str, dict[str, list[float]]] = {}
    baseline: dict | None = None
    tf_loop: dict | None = None
    peak = matmul_peak(args.threads)
    report["matmul_peak_gflops"] = round(peak, 2)
    print(f"plain fp32 matmul: {peak:.1f} GFLOP/s", flush=True)
    if args.loop_n and "hf" in args.runtimes.split(","):
        tf_loop = plain_transformers_loop(args.data, args.loop_n, args.threads)
        report["plain_transformers_loop"] = {k: v for k, v in tf_loop.items() if k != "totals"}
        report["plain_transformers_loop"]["roofline"] = roofline(
            tf_loop["flops_per_token"], tf_loop["tokens"], tf_loop["seconds"], peak
        )
        print(f"plain transformers loop: {report['plain_transformers_loop']}", flush=True)
    if args.loop_n:
        baseline = plain_loop(args.data, args.loop_n, args.threads)
        report["plain_loop"] = {k: v for k, v in baseline.items() if k != "totals"}
        report["plain_loop"]["sentences_per_s"] = round(
            baseline["sentences"] / baseline["seconds"], 2
        )
        print(f"plain llama_cpp.Llama loop: {report['plain_loop']}", flush=True)
    for runtime in args.runtimes.split(","):
        backend, load_s = load(runtime.strip(), args.threads)
        run: dict = {"runtime": backend.name, "model_id": backend.model_id, "load_s": load_s}
        if args.loop_n:
            run["speed"] = scoring_speed(backend, args.data, args.loop_n)
            assert baseline is not None
            totals = run["speed"].pop("totals")
            run["speed"]["max_abs_sentence_diff_vs_plain_loop"] = float(
                np.max(np.abs(np.array(totals) - np.array(baseline["totals"])))
            )
            for key in ("loop", "batched", "pair_shared"):
                if f"{key}_s" in run["speed"]:
                    run["speed"][f"{key}_speedup_vs_plain_loop"] = round(
                        baseline["seconds"] / run["speed"][f"{key}_s"], 2
                    )
                if f"{key}_s" in run["speed"] and tf_loop is not None:
                    run["speed"][f"{key}_ratio_vs_plain_transformers_loop"] = round(
                        tf_loop["seconds"] / run["speed"][f"{key}_s"], 2
                    )
                    run["speed"][f"{key}_roofline"] = roofline(
                        tf_loop["flops_per_token"],
                        run["speed"]["tokens"],
                        run["speed"][f"{key}_s"],
                        peak,
                    )
            if tf_loop is not None:
                run["speed"]["max_abs_sentence_diff_vs_plain_transformers_loop"] = float(
                    np.max(np.abs(np.array(totals) - np.array(tf_loop["totals"])))
                )
            print(f"{runtime:>12} sentences/s {run['speed']}", flush=True)
        for suite in [x.strip() for x in args.suites.split(",") if x.strip()]:
            start = time.perf_counter()
            res = score_benchmark(backend, suite.strip(), args.data, args.limit, args.seed)
            run[suite] = {
                "seconds": round(time.perf_counter() - start, 1),
                "metrics": {k: r.to_dict() for k, r in res.items()},
            }
            if suite.strip() == "crows_pairs":
                n_sent = 2 * res["crows_pairs.pct_stereotype"].n
                run[suite]["sentences_per_s"] = round(n_sent / run[suite]["seconds"], 2)
            if "crows_pairs.likelihood_diff" in res:
                pct = res["crows_pairs.pct_stereotype"]
                samples[runtime] = {
                    "pref": pct.per_sample,
                    "absdiff": res["crows_pairs.likelihood_diff"].per_sample,
                }
                print(
                    f"{backend.name:>12} crows_pairs {pct.value:.2f}% "
                    f"[{pct.ci.low:.1f}, {pct.ci.high:.1f}] n={pct.n} "
                    f"({run[suite]['seconds']} s)",
                    flush=True,
                )
            else:
                for k, r in res.items():
                    print(f"{backend.name:>12} {k} {r.value:.3f} n={r.n}", flush=True)
        report["runs"][runtime] = run
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    if len(samples) == 2:
        (a, pa), (b, pb) = samples.items()
        flips = int(np.sum(np.array(pa["pref"]) != np.array(pb["pref"])))
        report["crows_pairs_runtime_comparison"] = {
            "runtimes": [a, b],
            "decision_flips": flips,
            "pct_difference": 100 * (np.mean(pa["pref"]) - np.mean(pb["pref"])),
            "mean_abs_change_in_abs_diff": float(
                np.mean(np.abs(np.array(pa["absdiff"]) - np.array(pb["absdiff"])))
            ),
        }
        print(f"CrowS-Pairs decisions differing between {a} and {b}: {flips}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
