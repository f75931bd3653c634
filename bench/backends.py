"""Generation throughput of every backend on the same model, prompts, threads and batch size.

Arms (greedy decoding, the same chat prompts, ``--max-tokens`` each):

* ``embedded_batched``  LlamaCppBackend, ``--batch-size`` sequences per decode step (baseline)
* ``embedded_loop``     the same instance, one prompt per ``generate`` call
* ``hf_batch1``         HFBackend (transformers, float32, the same GGUF dequantised), batch 1
* ``hf_batched``        HFBackend, ``--batch-size`` prompts decoded together (prefix-tree
                        prefill: the shared chat header fed once, ``generate/tree_decode.py``)
* ``hf_plain``          a plain transformers loop: ``model.generate`` (greedy) on left-padded
                        batches of ``--batch-size`` prompts, the tokenizer's chat template
* ``http``              OpenAIHTTPBackend against llama-cpp-python's OpenAI server running the
                        same GGUF with the same threads (``--concurrency`` requests in flight)
* ``raw_decode``        llama.cpp's own decode throughput: the low-level API driven directly
                        (shared prompt prefix decoded once, each prompt's rest, then one
                        ``llama_decode`` per step advancing all sequences; argmax, nothing
                        else), same context settings, each sequence generating exactly as many
                        tokens as the baseline produced for it
* ``raw_completion``    ``llama_cpp.Llama.create_completion``, one prompt at a time

Throughput is generated tokens per wall second, prompt processing included. The script prints
every arm's ratio to the baseline and whether the embedded backend reaches 90 % of the raw
decode throughput.

Each arm also has a roofline line (issue 28, ``bench/roofline.py``): (prompt + generated tokens)
x 2 x parameters / seconds as a share of a plain fp32 matmul's rate, measured once after the
embedded backend loads, on its threads (``raw_decode`` adds one for its decode steps alone). An
upper bound of the work: a shared prompt beginning decoded once is counted for every prompt.

    PYTHONPATH=src python bench/backends.py --prompts 32 --max-tokens 32 --batch-size 16

Writes ``bench/results/backends.json``. Use ``--skip hf,http`` to leave arms out.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    from synthbias.generate import LlamaCppBackend, SamplingParams
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from synthbias.generate import LlamaCppBackend, SamplingParams

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generation import make_prompts  # noqa: E402  (same prompts as bench/generation.py)
from roofline import (  # noqa: E402
    count_parameters,
    describe,
    matmul_peak,
    model_flops_per_token,
    roofline,
)

ARMS = (
    "embedded_batched",
    "embedded_loop",
    "hf_batch1",
    "hf_batched",
    "hf_plain",
    "http",
    "raw_decode",
    "raw_completion",
)


def _arm(outs: list, secs: float, flops: int, peak: float) -> dict[str, Any]:
    gen = sum(c.n_tokens for c in outs)
    prompt = sum(c.n_prompt_tokens for c in outs)
    return {
        "seconds": round(secs, 3),
        "generated_tokens": gen,
        "prompt_tokens": prompt,
        "tokens_per_s": round(gen / secs, 2),
        "roofline": roofline(flops, prompt + gen, secs, peak),
    }


def raw_decode(
    backend: LlamaCppBackend, prompts: list[list[int]], steps: list[int]
) -> tuple[float, float]:
    """Seconds llama.cpp needs to prefill ``prompts`` and run ``steps[i]`` decodes for each.

    Uses the backend's context (same threads, batch, KV layout), its batch buffer and nothing
    else: the low-level llama-cpp-python calls in a plain loop, greedy argmax per row. The
    prompts' common prefix is decoded once and copied to every sequence (the same work as the
    embedded backend's prefix sharing), each prompt's remainder by its own ``llama_decode``
    calls, then every step advances all live sequences of the batch in one call. Returns
    (total seconds, seconds of the decode steps alone).
    """
    lc, ctx, b = backend._lc, backend._ctx, backend._batch
    mem = lc.llama_get_memory(ctx)
    n_vocab, n_batch = backend.n_vocab, backend.n_batch
    last: dict[int, int] = {}

    def submit(entries: list[tuple[int, int, int, bool]]) -> None:
        for i, (tok, pos, seq, out) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
            b.seq_id[i][0], b.logits[i] = seq, out
        b.n_tokens = len(entries)
        if lc.llama_decode(ctx, b) != 0:
            raise RuntimeError("llama_decode failed")
        for i, (_, _, seq, out) in enumerate(entries):
            if out:
                row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                last[seq] = int(np.argmax(row))

    t0 = time.perf_counter()
    decode_s = 0.0
    for start in range(0, len(prompts), backend.batch_size):
        group = list(range(start, min(start + backend.batch_size, len(prompts))))
        lc.llama_memory_clear(mem, True)
        last.clear()
        # the prefix common to the group's prompts (the chat template's system turn) is decoded
        # once and its KV cells copied to every sequence, as the embedded backend does
        shared = 0
        limit = min(len(prompts[i]) for i in group) - 1
        while shared < limit and len({prompts[i][shared] for i in group}) == 1:
            shared += 1
        if shared:
            first = prompts[group[0]]
            run = [(first[p], p, 0, False) for p in range(shared)]
            for k in range(0, len(run), n_batch):
                submit(run[k : k + n_batch])
            for j in range(1, len(group)):
                lc.llama_memory_seq_cp(mem, 0, j, -1, -1)
        for j, i in enumerate(group):  # the rest of each prompt, logits for its last token
            ids = prompts[i]
            run = [(ids[p], p, j, p == len(ids) - 1) for p in range(shared, len(ids))]
            for k in range(0, len(run), n_batch):
                submit(run[k : k + n_batch])
        t1 = time.perf_counter()
        pos = {j: len(prompts[i]) for j, i in enumerate(group)}
        made = {j: 0 for j in range(len(group))}
        while True:
            live = [j for j, i in enumerate(group) if made[j] < steps[i]]
            if not live:
                break
            submit([(last[j], pos[j], j, True) for j in live])
            for j in live:
                pos[j] += 1
                made[j] += 1
        decode_s += time.perf_counter() - t1
    lc.llama_memory_clear(mem, True)
    backend._cached = []  # the backend's prompt cache no longer matches the KV cells
    return time.perf_counter() - t0, decode_s


def plain_transformers(hf: Any, prompts: list, max_tokens: int, batch: int) -> list:
    """Greedy ``model.generate`` on left-padded batches: the plain transformers loop."""
    import torch

    from synthbias.generate.protocol import Completion

    tok, model = hf.tokenizer, hf.model
    tok.padding_side = "left"
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    outs = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            enc = tok(texts[start : start + batch], return_tensors="pt", padding=True)
            gen = model.generate(
                **enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=hf.pad_id
            )
            for row, mask in zip(gen, enc["attention_mask"], strict=True):
                new = [t for t in row[enc["input_ids"].shape[1] :].tolist() if t not in hf.eos_ids]
                text = tok.decode(new, skip_special_tokens=True)
                outs.append(Completion(text, int(mask.sum()), len(new), "stop", 0))
    return outs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, threads: int, n_ctx: int) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
        "--n_threads_batch", str(threads), "--model_alias", "bench", "--verbose", "False",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("llama_cpp.server exited; install synthbias[server]")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start in 120 s")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=32, help="number of prompts")
    ap.add_argument("--max-tokens", type=int, default=32, help="tokens per completion")
    ap.add_argument("--batch-size", type=int, default=16, help="sequences per decode step")
    ap.add_argument("--threads", type=int, default=None, help="default: all available cores")
    ap.add_argument("--concurrency", type=int, default=4, help="HTTP requests in flight")
    ap.add_argument("--skip", default="", help=f"comma-separated arms to skip ({','.join(ARMS)})")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results/backends.json")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    prompts = make_prompts(args.prompts)
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, seed=0)
    load_before = os.getloadavg()
    arms: dict[str, dict[str, Any]] = {}
    emb = LlamaCppBackend(batch_size=args.batch_size, n_ctx=512, n_threads=args.threads)
    threads = emb.n_threads
    model_path = emb.model_path
    flops = model_flops_per_token(count_parameters(emb))
    peak = matmul_peak(threads)
    print(f"plain fp32 matmul on {threads} threads: {peak:.1f} GFLOP/s", flush=True)
    texts: dict[str, list[str]] = {}

    def record(name: str, outs: list, secs: float) -> None:
        arms[name] = _arm(outs, secs, flops, peak)
        texts[name] = [c.text for c in outs]
        print(f"{name:<18}{arms[name]['tokens_per_s']:>9.1f} tok/s  ({secs:.1f} s)", flush=True)

    with emb:
        emb.generate(prompts[:2], SamplingParams(max_tokens=4))  # warm-up
        t = time.perf_counter()
        base = emb.generate(prompts, params)
        record("embedded_batched", base, time.perf_counter() - t)
        # decodes after the prefill: one per generated token, except that a completion cut at
        # max_tokens never feeds its last token back
        steps = [c.n_tokens - (c.finish_reason == "length") for c in base]
        if "embedded_loop" not in skip:
            t = time.perf_counter()
            outs = [c for p in prompts for c in emb.generate([p], params)]
            record("embedded_loop", outs, time.perf_counter() - t)
        if "raw_decode" not in skip:
            encoded = [emb.encode_prompt(p) for p in prompts]
            raw_decode(emb, encoded[:2], [2, 2])  # warm-up
            secs, decode_s = raw_decode(emb, encoded, steps)
            gen = sum(c.n_tokens for c in base)
            n_prompt = sum(len(e) for e in encoded)
            arms["raw_decode"] = {
                "seconds": round(secs, 3),
                "generated_tokens": gen,
                "prompt_tokens": n_prompt,
                "tokens_per_s": round(gen / secs, 2),
                "roofline": roofline(flops, n_prompt + gen, secs, peak),
                "decode_steps_seconds": round(decode_s, 3),
                "decode_steps_tokens_per_s": round(sum(steps) / decode_s, 2),
                "decode_steps_roofline": roofline(flops, sum(steps), decode_s, peak),
            }
            print(f"{'raw_decode':<18}{gen / secs:>9.1f} tok/s  ({secs:.1f} s)", flush=True)
        rendered = [emb.render_chat(p) for p in prompts]

    if "raw_completion" not in skip:
        import llama_cpp

        from synthbias.generate.llamacpp import guard_high_level_llama
        from synthbias.generate.protocol import Completion

        guard_high_level_llama()  # AMX CPUs: as our backend loads the model
        llm = llama_cpp.Llama(
            model_path=str(model_path), n_ctx=512, n_threads=threads, n_threads_batch=threads,
            verbose=False,
        )  # fmt: skip
        llm.create_completion(rendered[0], max_tokens=2, temperature=0)
        t = time.perf_counter()
        outs = []
        for text in rendered:
            r = llm.create_completion(text, max_tokens=args.max_tokens, temperature=0, top_k=1)
            u = r["usage"]
            outs.append(
                Completion(
                    r["choices"][0]["text"], u["prompt_tokens"], u["completion_tokens"], "stop", 0
                )
            )
        record("raw_completion", outs, time.perf_counter() - t)
        del llm

    if {"hf_batch1", "hf_batched", "hf_plain"} - skip:
        from synthbias.generate.hf import HFBackend

        for name, bs in (("hf_batch1", 1), ("hf_batched", args.batch_size)):
            if name in skip:
                continue
            hf = HFBackend(
                model_path=model_path, batch_size=bs, gen_batch_size=bs, n_threads=threads
            )
            hf.generate(prompts[:1], SamplingParams(max_tokens=2))
            t = time.perf_counter()
            outs = hf.generate(prompts, params)
            record(name, outs, time.perf_counter() - t)
            if name == "hf_batched" and "hf_plain" not in skip:
                t = time.perf_counter()
                outs = plain_transformers(hf, prompts, args.max_tokens, args.batch_size)
                record("hf_plain", outs, time.perf_counter() - t)
            hf.close()

    if "http" not in skip:
        from synthbias.generate.openai_http import OpenAIHTTPBackend

        proc, url = start_server(model_path, threads, 1024)
        try:
            # the server's own default repeat_penalty is 1.1; 1.0 samples like the other arms
            with OpenAIHTTPBackend(
                url, concurrency=args.concurrency, extra_body={"repeat_penalty": 1.0}
            ) as web:
                web.generate(prompts[:1], SamplingParams(max_tokens=2))
                t = time.perf_counter()
                outs = web.generate(prompts, params)
                record("http", outs, time.perf_counter() - t)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    base_tps = arms["embedded_batched"]["tokens_per_s"]
    for r in arms.values():
        r["ratio_to_embedded_batched"] = round(r["tokens_per_s"] / base_tps, 3)
    within = None
    if "raw_decode" in arms:
        within = base_tps >= 0.9 * arms["raw_decode"]["tokens_per_s"]
    same = {
        name: sum(a == b for a, b in zip(t, texts["embedded_batched"], strict=True))
        for name, t in texts.items()
        if name != "embedded_batched"
    }
    result = {
        "model": model_path.name,
        "n_threads": threads,
        "batch_size": args.batch_size,
        "n_prompts": args.prompts,
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
        "http_concurrency": args.concurrency,
        "matmul_peak_gflops": round(peak, 2),
        "flops_per_token": flops,
        "arms": arms,
        "embedded_within_10pct_of_raw_decode": within,
        "identical_to_embedded_batched": same,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }
    print(f"\nmodel {model_path.name}  threads={threads}  batch={args.batch_size}")
    print(f"{args.prompts} prompts x {args.max_tokens} tokens, greedy")
    print(f"{'arm':<18}{'seconds':>9}{'gen tok':>9}{'tok/s':>9}{'vs base':>9}  roofline")
    for name, r in arms.items():
        print(
            f"{name:<18}{r['seconds']:>9.2f}{r['generated_tokens']:>9}{r['tokens_per_s']:>9.1f}"
            f"{r['ratio_to_embedded_batched']:>8.2f}x  {describe(r['roofline'])}"
        )
    if "raw_decode" in arms:
        steps_line = describe(arms["raw_decode"]["decode_steps_roofline"])
        print(f"{'raw decode steps':<18}{'':>36}  {steps_line}")
    if within is not None:
        pct = 100 * base_tps / arms["raw_decode"]["tokens_per_s"]
        print(f"embedded batched = {pct:.0f}% of raw llama.cpp decode: within 10%: {within}")
    print(f"identical completions vs embedded batched: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
