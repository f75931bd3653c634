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
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cores import CORES

from synthbias.config import parse_config
from synthbias.generate import SamplingParams, load_backend
from synthbias.generate.cache import CachedBackend
from synthbias.generate.openai_http import (
    BackendUnavailableError,
    HTTPBackendError,
    HTTPStatusError,
    LogprobsNotSupportedError,
    OpenAIHTTPBackend,
    RetriesExhaustedError,
    request_seed,
)
from synthbias.generate.ray import generate_corpus

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

    Accounting per request body (the request's identity: prompt, parameters and seed):
    ``forwarded`` counts what reached the server, ``answered`` what the server answered with
    200 and the proxy passed on intact (``ok``, ``delay``), each tagged with :attr:`phase`;
    ``active`` is the number of requests the proxy is handling now.
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
        self.phase = 1
        self.forwarded: Counter[bytes] = Counter()
        self.answered: Counter[tuple[int, bytes]] = Counter()
        self.active = 0
        self._lock = threading.Lock()
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
        with self._lock:
            self.active += 1
        try:
            return self._fault(h, method, path, headers, body)
        finally:
            with self._lock:
                self.active -= 1

    def _fault(self, h, method, path, headers, body) -> Reply | None:
        self.auth.append(headers.get("authorization", ""))
        k = next(self.counter)
        fault = self.schedule[k] if k < len(self.schedule) else self.tail[k % len(self.tail)]
        self.faults[fault] = self.faults.get(fault, 0) + 1
        if fault in ("500", "503", "429"):
            extra = {"Retry-After": "0"} if fault == "429" else {}
            return int(fault), extra, _json({"error": {"message": f"injected {fault}"}})
        if fault == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client is gone (killed mid-request)
                pass
            return None
        if fault == "delay":
            time.sleep(self.delay_s)
        phase = self.phase
        status, payload = self._forward(method, path, body)
        with self._lock:
            self.forwarded[body] += 1
            if status == 200 and fault in ("ok", "delay"):
                self.answered[phase, body] += 1
        if fault in ("drop_after", "truncate"):
            h.close_connection = True
            try:
                if fault == "truncate":
                    h.send_response(status)
                    h.send_header("Content-Type", "application/json")
                    h.send_header("Content-Length", str(len(payload)))
                    h.end_headers()
                    h.wfile.write(payload[: len(payload) // 2])
                    h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:  # the client is gone (killed mid-request)
                pass
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


#: A client run as its own process, so the test can kill it with SIGKILL: 24 chat prompts in one
#: chunk (one ``generate`` call, as a run's chunk is) with 4 requests in flight, through a run
#: folder's request cache; it writes the texts and the cache's counters when done.
_CLIENT = """
import json, sys
from synthbias.generate import SamplingParams
from synthbias.generate.cache import CachedBackend
from synthbias.generate.openai_http import OpenAIHTTPBackend
from synthbias.generate.ray import generate_corpus

url, cache, out, prompts = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
inner = OpenAIHTTPBackend(url, model="smollm2", concurrency=4, backoff_base=0.02, backoff_max=0.2)
with CachedBackend(inner, cache) as backend:
    outs = generate_corpus(prompts, SamplingParams(**json.loads(sys.argv[5])), backend)
    stats = dict(backend.stats)
with open(out, "w") as f:
    json.dump({"texts": [c.text for c in outs], "stats": stats}, f)
"""

RESUME_PROMPTS = [
    [{"role": "user", "content": f"{verb} one sentence about a {occ}."}]
    for verb in ("Write", "Say", "Give")
    for occ in ("nurse", "pilot", "teacher", "mechanic", "doctor", "secretary", "chef", "lawyer")
]
RESUME_PARAMS = {"max_tokens": 8, "temperature": 0.8, "seed": 11}


def _stored(path: Path) -> int:
    """Rows committed to the request cache at ``path``; 0 while it does not exist yet."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        return int(db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])
    except sqlite3.OperationalError:  # the client has not created the table yet
        return 0
    finally:
        db.close()


def _client(url: str, cache: Path, out: Path) -> subprocess.Popen:
    args = [json.dumps(RESUME_PROMPTS), json.dumps(RESUME_PARAMS)]
    cmd = [sys.executable, "-c", _CLIENT, url, str(cache), str(out), *args]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_mid_call_resumes_without_asking_twice(
    llama_server: str, serve, tmp_path: Path
) -> None:
    """SIGKILL the client in the middle of one call, start it again: same texts as a clean run,
    and every request answered once, except those in flight at the kill (at most 4)."""
    n, concurrency = len(RESUME_PROMPTS), 4
    with OpenAIHTTPBackend(llama_server, model="smollm2", concurrency=concurrency) as direct:
        clean = _texts(generate_corpus(RESUME_PROMPTS, SamplingParams(**RESUME_PARAMS), direct))
    tail = ("ok", "500", "ok", "drop", "ok", "truncate", "ok", "badjson", "ok", "429", "ok", "503")
    proxy = FaultProxy(serve, llama_server, [], tail=tail)
    cache = tmp_path / "run" / "cache.sqlite"
    cache.parent.mkdir()

    proc = _client(proxy.url, cache, tmp_path / "first.json")
    deadline = time.monotonic() + 60
    while _stored(cache) < n // 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _stored(cache)
    assert 0 < stored < n, f"{stored} of {n} responses were committed before the call ended"
    assert not (tmp_path / "first.json").exists()
    deadline = time.monotonic() + 30  # let the requests in flight at the kill drain
    while proxy.active and time.monotonic() < deadline:
        time.sleep(0.05)

    proxy.phase = 2
    proc = _client(proxy.url, cache, tmp_path / "second.json")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["texts"] == clean
    assert second["stats"] == {"hits": stored, "misses": n - stored, "computed": n - stored}

    first = {body: c for (phase, body), c in proxy.answered.items() if phase == 1}
    again = {body: c for (phase, body), c in proxy.answered.items() if phase == 2}
    in_flight = sum(first.values()) - stored  # answered, never committed: the kill took them
    assert 0 <= in_flight <= concurrency, (in_flight, stored)
    assert set(first.values()) <= {1} and set(again.values()) == {1}
    assert len(again) == n - stored  # only what the cache lacked was asked again...
    assert len(set(first) & set(again)) == in_flight  # ...so only in-flight ones twice
    assert len(set(first) | set(again)) == n
    assert {"500", "drop", "truncate", "badjson", "429", "503"} <= set(proxy.faults)
    print(f"kill -9 after {stored}/{n} committed; {in_flight} in flight; faults {proxy.faults}")


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


def _echo_stub(release: threading.Event) -> Callable[..., Reply | None]:
    """Chat answers ``re: <prompt>`` and echo log-probs of one token per character; a prompt
    containing ``slow`` waits for ``release``, one containing ``bad`` gets HTTP 400 at once, the
    others take 0.3 s."""

    def handle(h, method, path, headers, body):
        if path.endswith("/models"):
            return 200, {"Connection": "close"}, MODELS
        req = json.loads(body)
        text = req["prompt"] if "prompt" in req else req["messages"][-1]["content"]
        if "slow" in text:
            release.wait(10)
        elif "bad" in text:
            return 400, {}, _json({"error": {"message": "bad prompt"}})
        else:
            time.sleep(0.3)
        if req.get("echo"):
            lps = [None] + [-1.0] * (len(text) - 1)
            choice = {"text": text, "logprobs": {"tokens": list(text), "token_logprobs": lps}}
        else:
            choice = {"message": {"role": "assistant", "content": "re: " + text}}
        return 200, {}, _json({"choices": [choice], "usage": {}})

    return handle


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.mark.parametrize("kind", ["generate", "logprobs"])
def test_cache_commits_each_request_as_it_arrives(serve, tmp_path: Path, kind: str) -> None:
    """While one request of a call hangs, the ones that finished are already in the cache."""
    release = threading.Event()
    stub = serve(_echo_stub(release))
    texts = ["slow one", "b", "c", "d", "e", "f"]
    seen: list[int] = []

    def watch() -> None:  # another reader of the cache file, as a resumed run would be
        deadline = time.monotonic() + 5
        while _stored(tmp_path / "c.sqlite") < len(texts) - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(_stored(tmp_path / "c.sqlite"))
        release.set()

    inner = OpenAIHTTPBackend(stub.url, concurrency=4)
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        watcher = threading.Thread(target=watch)
        watcher.start()
        if kind == "generate":
            got = [c.text for c in cached.generate([[_user(t)] for t in texts], SamplingParams())]
            assert got == ["re: " + t for t in texts]
        else:
            got = ["".join(r.tokens) for r in cached.logprobs(texts)]
            assert got == [t[1:] for t in texts]  # the first token is unscored
        watcher.join()
        assert seen == [len(texts) - 1]  # all but the hanging one, before it was released
        assert cached.store.count() == len(texts)


def test_failed_request_keeps_the_finished_ones(serve, tmp_path: Path) -> None:
    """A request that fails for good stops the call, but requests already running finish and
    are committed first: a rerun asks only for what is missing."""
    release = threading.Event()
    release.set()
    stub = serve(_echo_stub(release))
    prompts = [[_user(t)] for t in ("bad", "a", "b", "c", "d", "e")]
    inner = OpenAIHTTPBackend(stub.url, concurrency=4)
    with CachedBackend(inner, tmp_path / "c.sqlite") as cached:
        with pytest.raises(HTTPStatusError, match="HTTP 400"):
            cached.generate(prompts, SamplingParams())
        # "bad" failed at once; a, b, c were running (finished and kept); d, e were cancelled
        # unless a worker freed by "bad" had already taken d
        posts = len([r for r in stub.requests if r[0] == "POST"])
        assert cached.store.count() == posts - 1 and posts in (4, 5)


def test_refused_connection_fails_fast_and_says_what_to_change(monkeypatch) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError) as err:
        OpenAIHTTPBackend(url)  # asks GET /models: default retries, no backoff waited
    msg = str(err.value)
    assert url in msg and "connection refused" in msg
    assert "generator.base_url" in msg and "--base-url" in msg
    assert isinstance(err.value, HTTPBackendError) and err.value.base_url == url
    llm = OpenAIHTTPBackend(url, model="m", concurrency=4)
    with pytest.raises(BackendUnavailableError):
        llm.generate(["a", "b", "c", "d"], SamplingParams(max_tokens=2))
    assert llm.stats["retries"] == 0
    assert time.monotonic() - t0 < 2.0

    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(BackendUnavailableError, match="host 'llm.example' not found"):
        OpenAIHTTPBackend("http://llm.example:8000/v1")


def test_refused_after_first_answer_is_retried(serve) -> None:
    """Once the server has answered, a refused connection is a restart: retried, not fatal."""
    stub = serve(_echo_stub(threading.Event()))
    llm = OpenAIHTTPBackend(stub.url, max_retries=2, **FAST_RETRY)
    assert llm.model == "stub-model"
    stub.close()
    with pytest.raises(RetriesExhaustedError, match="3 attempts"):
        llm.generate(["x"], SamplingParams(max_tokens=2))
    assert llm.stats["retry:connection"] == 3 and llm.stats["retries"] == 2


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
