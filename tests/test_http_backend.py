"""OpenAI-compatible HTTP backend against a real local server, directly and through faults.

The server is llama-cpp-python's own OpenAI-compatible server (``synthbias[server]`` extras)
running the embedded SmolLM2 model, started once per session. A fault-injecting proxy written
here sits in front of it and drops connections, answers 429/500/503, truncates bodies, breaks
JSON and stalls past the client's timeout; runs through it must come out complete and identical
to direct runs. Small stub servers cover protocol corner cases (no log-probs, 4xx, retries).
"""

from __future__ import annotations

import http.client
import http.server
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cores import CORES

from synthbias.config import parse_config
from synthbias.generate import SamplingParams, load_backend
from synthbias.generate.cache import CachedBackend
from synthbias.generate.openai_http import (
    HTTPStatusError,
    LogprobsNotSupportedError,
    OpenAIHTTPBackend,
    RetriesExhaustedError,
    request_seed,
)

CHAT = [[{"role": "user", "content": f"Write one sentence about a {occ}."}] for occ in (
    "nurse", "pilot", "teacher", "mechanic", "doctor", "secretary", "chef", "lawyer",
)]  # fmt: skip
RAW = ["The engineer said that", "Once upon a time, a nurse", "The manager told the team"]
FAST_RETRY = {"backoff_base": 0.02, "backoff_max": 0.2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_extras_missing() -> str | None:
    try:
        import fastapi  # noqa: F401
        import pydantic_settings  # noqa: F401
        import sse_starlette  # noqa: F401
        import starlette_context  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        return f"llama-cpp-python server extras missing ({err}); pip install 'synthbias[server]'"
    return None


#: llama-cpp-python's server, except that every request starts from an empty KV cache. The stock
#: server reuses the KV prefix the previous request left behind and decodes only the rest, and a
#: different split changes llama.cpp's rounding enough to flip greedy choices of this small
#: model: outputs would then depend on request order (which retries reshuffle), not only on the
#: request. With the reset, the server is deterministic per request.
_DETERMINISTIC_SERVER = """
import runpy, sys
import llama_cpp

_generate = llama_cpp.Llama.generate


def generate(self, tokens, *args, **kwargs):
    self.reset()
    return _generate(self, tokens, *args, **kwargs)


llama_cpp.Llama.generate = generate

# on CPUs with AMX, load the model as synthbias's own llama.cpp backend does (llama.cpp
# 0.3.36's AMX matmul segfaults on the first decode)
from synthbias.generate.llamacpp import guard_high_level_llama

guard_high_level_llama()
sys.argv[0] = "llama_cpp.server"
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI server on the embedded model; yields its base URL."""
    missing = _server_extras_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing + " — required under CI")
        pytest.skip(missing)
    from synthbias.generate.models import default_model_path

    port = _free_port()
    log_file = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [
        sys.executable, "-c", _DETERMINISTIC_SERVER, "--model", str(default_model_path()),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", str(CORES),
        "--n_threads_batch", str(CORES), "--model_alias", "smollm2", "--verbose", "False",
    ]  # fmt: skip
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with log_file.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited ({proc.returncode}): {log_file.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/v1/models")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("server did not become ready in 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# A small programmable HTTP server: stubs and the fault-injecting proxy
# ---------------------------------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


class _Server:
    """Threaded HTTP/1.1 server whose replies come from ``handle(method, path, headers, body)``.

    ``handle`` may return a reply, or ``None`` after writing to ``handler.wfile`` itself.
    """

    def __init__(self, handle: Callable[..., Reply | None]) -> None:
        outer = self
        self.handle = handle
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append((self.command, self.path, headers, body))
                reply = outer.handle(self, self.command, self.path, headers, body)
                if reply is None:
                    return
                status, extra, payload = reply
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout) before the reply
                    self.close_connection = True

            do_GET = do_POST = _any

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[..., Reply | None]], _Server]]:
    servers: list[_Server] = []

    def start(handle: Callable[..., Reply | None]) -> _Server:
        servers.append(_Server(handle))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


MODELS = _json({"object": "list", "data": [{"id": "stub-model", "object": "model"}]})


class FaultProxy:
    """Forward to ``upstream``; request ``k`` (counted from 0) suffers ``schedule[k]``, and
    ``tail[k % len(tail)]`` past the end of ``schedule``.

    Faults: ``ok``, ``500``/``503``/``429`` (not forwarded), ``drop`` (close without answer),
    ``drop_after`` (forward, then close without answer: the server did the work), ``truncate``
    (half the body, full Content-Length), ``badjson`` (half the body as a complete response),
    ``delay`` (stall ``delay_s`` before forwarding: past the client's timeout).
    """

    def __init__(
        self,
        serve: Callable,
        upstream: str,
        schedule: list[str],
        delay_s: float = 0.0,
        tail: tuple[str, ...] = ("ok",),
    ):
        host_port = upstream.split("//")[1].split("/")[0]
        self.host, port = host_port.split(":")
        self.port = int(port)
        self.schedule = schedule
        self.tail = tail
        self.delay_s = delay_s
        self.counter = itertools.count()
        self.faults: dict[str, int] = {}
        self.auth: list[str] = []
        self.server = serve(self._handle)
        self.url = self.server.url

    def _forward(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
        try:
            conn.request(
                method, path, body=body or None, headers={"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _handle(self, h, method, path, headers, body) -> Reply | None:
        self.auth.append(headers.get("authorization", ""))
        k = next(self.counter)
        fault = self.schedule[k] if k < len(self.schedule) else self.tail[k % len(self.tail)]
        self.faults[fault] = self.faults.get(fault, 0) + 1
        if fault in ("500", "503", "429"):
            extra = {"Retry-After": "0"} if fault == "429" else {}
            return int(fault), extra, _json({"error": {"message": f"injected {fault}"}})
        if fault == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault == "delay":
            time.sleep(self.delay_s)
        status, payload = self._forward(method, path, body)
        if fault == "drop_after":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault == "truncate":
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload[: len(payload) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return None
        if fault == "badjson":
            return status, {}, payload[: len(payload) // 2]
        return status, {}, payload


# ---------------------------------------------------------------------------------------------
# Against the real server
# ---------------------------------------------------------------------------------------------


def _texts(outs: list) -> list[str]:
    return [c.text for c in outs]


def test_chat_and_completion_endpoints(llama_server: str) -> None:
    with OpenAIHTTPBackend(llama_server, concurrency=2) as llm:
        assert llm.model == llm.model_id == "smollm2"  # from GET /models
        params = SamplingParams(max_tokens=8, temperature=0.8, seed=3)
        chat = llm.generate(CHAT[:2], params)
        raw = llm.generate(RAW[:2], params)
        for c in chat + raw:
            assert c.text.strip() and 1 <= c.n_tokens <= 8 and c.n_prompt_tokens > 3
            assert c.finish_reason in ("stop", "length") and c.seed == 3
        # seeds pass through: same seed, same texts; another seed, other texts
        assert _texts(llm.generate(CHAT[:2], params)) == _texts(chat)
        other = llm.generate(CHAT[:2], SamplingParams(max_tokens=8, temperature=0.8, seed=4))
        assert _texts(other) != _texts(chat)
        # the embedded chat template is applied by the server: no raw markers in the output
        assert not any("<|im_" in t for t in _texts(chat))
        assert llm.stats["retries"] == 0 and llm.server_software
    # request i's seed depends on (seed, i) only
    assert request_seed(3, 0) != request_seed(3, 1) == request_seed(3, 1)


def test_logprobs_match_embedded_backend(llama_server: str) -> None:
    texts = ["The doctor said he was late.", "The nurse said she was tired."]
    with OpenAIHTTPBackend(llama_server, score_prefix="<|im_start|>") as llm:
        got = llm.logprobs(texts)
    emb = load_backend("llamacpp", n_ctx=256, batch_size=2, n_threads=1)
    try:
        ref = emb.logprobs(texts)
    finally:
        emb.close()
    for g, r in zip(got, ref, strict=True):
        # llama-cpp-python's server drops the BOS from its echo, so the first token is unscored
        assert g.tokens == r.tokens[1:]
        assert g.logprobs == pytest.approx(r.logprobs[1:], abs=2e-3)
        assert g.token_ids == [-1] * len(g.tokens)


def test_runs_complete_and_identical_through_faults(llama_server: str, serve, caplog) -> None:
    params = SamplingParams(max_tokens=10, temperature=0.0, seed=1)
    prompts = CHAT[:6] + RAW
    with OpenAIHTTPBackend(llama_server, concurrency=3) as direct:
        want = _texts(direct.generate(prompts, params))
    # every fault early on (one stall past the timeout), then one request in three faulty
    schedule = [
        "ok", "500", "drop", "429", "truncate", "ok", "badjson", "drop_after", "503", "delay",
        "ok", "drop", "ok", "500", "ok", "truncate",
    ]  # fmt: skip
    tail = ("ok", "500", "ok", "drop", "ok", "truncate", "ok", "badjson", "429")
    proxy = FaultProxy(serve, llama_server, schedule, delay_s=7.0, tail=tail)
    caplog.set_level(logging.WARNING, logger="synthbias.generate.openai_http")
    with OpenAIHTTPBackend(proxy.url, concurrency=3, timeout=6.0, **FAST_RETRY) as flaky:
        got = flaky.generate(prompts, params)
        stats = dict(flaky.stats)
    assert len(got) == len(prompts) and all(c.text for c in got)
    assert _texts(got) == want
    assert {"500", "drop", "429", "truncate", "badjson", "drop_after", "503", "delay"} <= set(
        proxy.faults
    )
    assert stats["requests"] == len(prompts) + 1  # + GET /models
    assert stats["retries"] >= 8
    for reason in ("http-500", "http-429", "connection", "truncated", "bad-json", "timeout"):
        assert stats[f"retry:{reason}"] >= 1, stats
    assert any("retry" in r.getMessage() for r in caplog.records)
    print("fault-run stats:", stats, "faults:", proxy.faults)


def test_cache_sends_only_missing_requests(llama_server: str, tmp_path: Path) -> None:
    params = SamplingParams(max_tokens=6, temperature=0.7, seed=5)
    prompts = CHAT[:4]
    inner = OpenAIHTTPBackend(llama_server, concurrency=2)
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        first = _texts(cached.generate(prompts[:2], params))  # indices 0, 1 cached
        before = inner.stats["requests"]
        full = _texts(cached.generate(prompts, params))
        assert inner.stats["requests"] - before == 2  # only indices 2, 3 were sent
        assert full[:2] == first
        assert cached.stats == {"hits": 2, "misses": 4, "computed": 4}
        # uncached reference: the subset came out exactly as in a whole call
        assert _texts(inner.generate(prompts, params)) == full


def test_api_key_never_written(
    llama_server: str, serve, tmp_path: Path, monkeypatch, caplog, capfd
):
    secret = "sk-synthbias-test-" + "7f3a9c1e5b" * 3
    monkeypatch.setenv("SYNTHBIAS_TEST_API_KEY", secret)
    proxy = FaultProxy(serve, llama_server, ["ok", "ok", "500"], tail=("ok", "ok", "drop"))
    caplog.set_level(logging.DEBUG)
    cfg = parse_config(
        {
            "study": {"levels": [0.3], "generations": 2, "n": 4},
            "sampling": {"max_tokens": 8},
            "generator": {
                "backend": "openai",
                "base_url": proxy.url,
                "api_key_env": "SYNTHBIAS_TEST_API_KEY",
                "batch_size": 2,
                "concurrency": 2,
                "options": FAST_RETRY,
            },
            "measure": {"embedding": False, "n_resamples": 50},
        }
    )
    from synthbias.studies.equilibrium.runner import make_backend, run_equilibrium

    out = tmp_path / "run"
    backend = make_backend(cfg.generator, seed=cfg.seed, run_dir=out)
    assert isinstance(backend, CachedBackend) and backend.path == out / "cache.sqlite"
    shown = repr(backend) + str(backend.inner.__dict__.get("api_key_env"))
    backend.close()
    results = run_equilibrium(cfg, out)
    assert results["model"] == {"backend": "openai-http", "model_id": "smollm2"}
    assert all(a == "Bearer " + secret for a in proxy.auth)  # it was sent...
    # ...and written nowhere: run folder (every file, binary included), logs, output, reprs
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "cache.sqlite" for p in files) and len(files) >= 5
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert secret not in shown and "SYNTHBIAS_TEST_API_KEY" in shown

    # a server that echoes the key in an error body: the message is masked
    def echo_key(h, method, path, headers, body):
        if path.endswith("/models"):
            return 200, {}, MODELS
        return 401, {}, _json({"error": f"bad key {headers.get('authorization')}"})

    stub = serve(echo_key)
    llm = OpenAIHTTPBackend(stub.url, api_key_env="SYNTHBIAS_TEST_API_KEY")
    with pytest.raises(HTTPStatusError) as err:
        llm.generate(["x"], SamplingParams(max_tokens=2))
    assert err.value.status == 401 and secret not in str(err.value) and "***" in str(err.value)
    assert secret not in repr(llm)


# ---------------------------------------------------------------------------------------------
# Stub servers: protocol corner cases
# ---------------------------------------------------------------------------------------------


def test_logprobs_unsupported_names_the_server(serve) -> None:
    def reject(h, method, path, headers, body):
        if path.endswith("/models"):
            return 200, {"Server": "llama.cpp"}, MODELS
        return 400, {"Server": "llama.cpp"}, _json({"error": {"message": "echo is not supported"}})

    def ignore_echo(h, method, path, headers, body):
        if path.endswith("/models"):
            return 200, {}, MODELS
        return 200, {}, _json({"choices": [{"text": " hi", "logprobs": None}], "usage": {}})

    for handler, needle in (
        (reject, "echo is not supported"),
        (ignore_echo, "no prompt log-probs"),
    ):
        stub = serve(handler)
        llm = OpenAIHTTPBackend(stub.url, **FAST_RETRY)
        with pytest.raises(LogprobsNotSupportedError) as err:
            llm.logprobs(["The nurse said she was tired."])
        assert isinstance(err.value, NotImplementedError)
        assert stub.url in str(err.value) and needle in str(err.value)
        assert llm.stats["attempts"] == 2  # models + one scoring attempt: no retries


def test_non_retryable_and_exhausted_retries(serve) -> None:
    calls = {"n": 0}

    def not_found(h, method, path, headers, body):
        calls["n"] += 1
        return 404, {}, _json({"error": "no such model"})

    stub = serve(not_found)
    llm = OpenAIHTTPBackend(stub.url, model="m", **FAST_RETRY)
    with pytest.raises(HTTPStatusError, match="HTTP 404"):
        llm.generate(["x"], SamplingParams(max_tokens=2))
    assert calls["n"] == 1

    def busy(h, method, path, headers, body):
        return 503, {}, b"{}"

    stub = serve(busy)
    llm = OpenAIHTTPBackend(stub.url, model="m", max_retries=3, **FAST_RETRY)
    t0 = time.monotonic()
    with pytest.raises(RetriesExhaustedError, match="4 attempts"):
        llm.generate(["x"], SamplingParams(max_tokens=2))
    assert llm.stats["attempts"] == 4 and llm.stats["retry:http-503"] == 4
    assert time.monotonic() - t0 < 2.0  # backoff capped at 0.2 s


def test_request_body_and_seed_passthrough(serve) -> None:
    def echo(h, method, path, headers, body):
        req = json.loads(body)
        text = f"seed={req['seed']} top_k={req.get('top_k')} nstop={len(req.get('stop', []))}"
        if path.endswith("/chat/completions"):
            choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            choice = {"text": text + " END more", "finish_reason": "length"}
        usage = {"prompt_tokens": 5, "completion_tokens": 7}
        return 200, {}, _json({"choices": [choice], "usage": usage})

    stub = serve(echo)
    llm = OpenAIHTTPBackend(stub.url, model="m", concurrency=4)
    params = SamplingParams(max_tokens=4, seed=9, top_k=5, stop=("END",))
    outs = llm.generate([CHAT[0], "raw"] * 3, params)
    for i, c in enumerate(outs):
        assert c.text.startswith(f"seed={request_seed(9, i)} top_k=5 nstop=1")
        assert (c.n_prompt_tokens, c.n_tokens) == (5, 7)
    assert outs[1].text.endswith("nstop=1 ") and outs[1].finish_reason == "stop"
    assert outs[0].finish_reason == "stop"
    paths = sorted({r[1] for r in stub.requests})
    assert paths == ["/v1/chat/completions", "/v1/completions"]
    with pytest.raises(TypeError):
        OpenAIHTTPBackend(stub.url, model="m", endpoint="completion").generate([CHAT[0]], params)


def test_config_selects_every_backend(monkeypatch) -> None:
    from synthbias.generate.ray import backend_spec

    def spec(**gen: Any):
        return backend_spec(parse_config({"generator": gen}).generator, run_dir="/r")

    s = spec(backend="hf", model_path="/m", device="cuda", dtype="bfloat16")
    assert (s.kind, s.kwargs["device"], s.kwargs["dtype"]) == ("hf", "cuda", "bfloat16")
    assert s.cache_path == "/r/cache.sqlite"
    s = spec(backend="openai", base_url="http://h:1/v1", model="x", api_key_env="K", cache="off")
    assert s.kwargs["api_key_env"] == "K" and s.cache_path is None
    monkeypatch.setenv("SYNTHBIAS_CACHE", "/shared")
    s = spec(
        backend="vllm", model_path="/m", cache="shared", options={"gpu_memory_utilization": 0.5}
    )
    assert s.kwargs == {
        "model_path": "/m",
        "dtype": "auto",
        "seed": 0,
        "gpu_memory_utilization": 0.5,
    }
    assert s.cache_path == "/shared/requests.sqlite"
    from synthbias.core.schema import ConfigError

    with pytest.raises(ConfigError, match="base_url"):
        parse_config({"generator": {"backend": "openai"}})
    with pytest.raises(ConfigError, match="api_key_env"):
        parse_config(
            {"generator": {"backend": "openai", "base_url": "http://h", "api_key_env": "a b"}}
        )
