"""OpenAI-compatible HTTP backend: vLLM serve, Ollama, llama.cpp's servers, hosted APIs.

Chat prompts (message lists) go to ``/v1/chat/completions``, raw strings to ``/v1/completions``
(``endpoint="auto"``); one HTTP request per prompt, up to ``concurrency`` in flight at a time
(a thread pool; the standard library's ``http.client``, one keep-alive connection per thread, so
no extra dependency).

Reliability. Every request is retried on HTTP 408/409/425/429 and 5xx, timeouts, dropped
connections, truncated bodies and JSON that does not parse or lacks the expected fields, with
exponential backoff and jitter (``backoff_base * 2**attempt`` capped at ``backoff_max``, a
uniformly drawn half to full of it; a ``Retry-After`` header is honoured up to ``backoff_max``).
Other 4xx errors are the caller's mistake and raise :class:`HTTPStatusError` at once. Retries
are counted in :attr:`OpenAIHTTPBackend.stats`.

A server that was never reached is not waited for: a refused connection or a host name that
does not resolve, before the first answer, raises :class:`BackendUnavailableError` at once,
naming the URL and the setting that changes it (minutes of backoff against nothing would only
delay the obvious fix). Once the server has answered, a refused connection is a restart or a
load balancer between replicas, and is retried like any other dropped connection.

Progress. Results are handed to ``on_result`` callbacks (``generate_indexed``, ``logprobs_each``)
the moment each request finishes, so a request cache commits every answer on arrival and a
client killed mid-call loses only the requests in flight.

Reproducibility. Request ``i`` of a ``generate`` call carries ``seed`` = a 31-bit value derived
from ``(params.seed, i)``, like the embedded backends' per-request streams; servers that honour
``seed`` (vLLM, llama.cpp, llama-cpp-python) then return the same text for the same request.

Secrets. The API key is read from the environment variable named by ``api_key_env`` when the
backend is built and is only ever put in the ``Authorization`` header: it is not an attribute
that ``repr`` shows, not part of ``model_id``, never logged, and masked in any error message that
echoes server text.

Log-probs. ``logprobs`` scores whole texts the classic way: ``/v1/completions`` with
``echo: true``, ``logprobs: 1`` and ``max_tokens: 1``, reading the prompt tokens' values. The
first token of an echoed prompt has no log-prob in the OpenAI format (nothing precedes it), so
set ``score_prefix`` to the model's BOS text (``"<|im_start|>"`` for SmolLM2) to have the text's
first token conditioned on it, as the embedded backends do; servers that drop the BOS from the
echo (llama-cpp-python's) still cannot report that first token, and it is left out of the
result (``TextLogprobs.tokens`` then starts at the second token). Token ids are not part of the
OpenAI format and are reported as -1. Servers without echo log-probs (hosted chat models,
llama.cpp's own ``llama-server``) raise :class:`LogprobsNotSupportedError` naming the server.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Literal
from urllib.parse import urlsplit

from synthbias.core.hashing import stream_seed
from synthbias.generate.protocol import Completion, Prompt, SamplingParams, TextLogprobs

log = logging.getLogger(__name__)

#: Statuses worth retrying: timeouts, conflicts, rate limits and every server-side error.
RETRY_STATUSES = frozenset({408, 409, 425, 429})

Endpoint = Literal["auto", "chat", "completion"]


class HTTPBackendError(RuntimeError):
    """A request failed for good (bad request, or retries exhausted)."""


class HTTPStatusError(HTTPBackendError):
    """The server answered with a non-retryable status (e.g. 400, 401, 404)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RetriesExhaustedError(HTTPBackendError):
    """Every attempt of a request failed with a retryable error."""


#: Where users change the server, named in :class:`BackendUnavailableError` messages.
BASE_URL_HINT = "set generator.base_url in the config, or --base-url on the command line"


class BackendUnavailableError(HTTPBackendError):
    """Nothing answers at ``base_url`` (connection refused, host unknown): not retried.

    The message names the URL and how to point synthbias elsewhere; a command-line front end
    prints it as is, without a traceback.
    """

    def __init__(self, base_url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach an OpenAI-compatible server at {base_url} ({reason}). Start the "
            f"server, or {BASE_URL_HINT}."
        )
        self.base_url = base_url
        self.reason = reason


def check_reachable(base_url: str, timeout: float = 3.0) -> None:
    """Open (and close) a TCP connection to ``base_url``'s host and port, so a run can refuse
    to start before it writes anything when nothing listens there. Raises
    :class:`BackendUnavailableError` on a refused connection or an unknown host; a timeout is
    left to the run's own retries."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            pass
    except ConnectionRefusedError as err:
        raise BackendUnavailableError(base_url, "connection refused") from err
    except socket.gaierror as err:
        raise BackendUnavailableError(base_url, f"host {parts.hostname!r} not found") from err
    except TimeoutError:
        return


class LogprobsNotSupportedError(NotImplementedError):
    """The server cannot return log-probs of a given text (no ``echo`` + ``logprobs``)."""


class _Retry(Exception):
    """Internal: this attempt failed in a retryable way."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def request_seed(seed: int, index: int) -> int:
    """Seed sent with request ``index`` of a call: 31 bits from ``(seed, index)``.

    31 bits because some servers store the seed in a signed or unsigned 32-bit integer.
    """
    return stream_seed(seed, index, bits=31)


def _clean_url(base_url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path prefix, display form without credentials or query)."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    display = f"{parts.scheme}://{parts.hostname}:{port}{path}"
    return parts.scheme, parts.hostname, port, path, display


class OpenAIHTTPBackend:
    """Generate and score through an OpenAI-compatible server (implements ``protocol.Backend``).

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000/v1`` (``/v1`` is added when the URL
            has no path).
        model: model name sent with each request; ``None`` asks ``GET /models`` and takes the
            first one.
        api_key_env: name of the environment variable holding the API key (never the key).
        endpoint: ``auto`` (chat for message lists, completions for strings), ``chat`` (raw
            strings are sent as one user message) or ``completion`` (strings only).
        concurrency: requests in flight at once.
        timeout: seconds a request may wait on the socket (connect, send or each read).
        max_retries: retries per request after the first attempt.
        backoff_base, backoff_max: exponential backoff parameters (seconds).
        score_prefix: text prepended to every scored text (the model's BOS text); see the module
            docstring.
        extra_body: extra JSON fields for every generation request (e.g. llama.cpp's
            ``repeat_penalty``, vLLM's ``min_p``).
    """

    name = "openai-http"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str | None = None,
        *,
        api_key_env: str | None = None,
        endpoint: Endpoint = "auto",
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        score_prefix: str | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, got {timeout}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        if endpoint not in ("auto", "chat", "completion"):
            raise ValueError(f"endpoint must be auto, chat or completion, got {endpoint!r}")
        self._scheme, self._host, self._port, self._prefix, self.base_url = _clean_url(base_url)
        self.api_key_env = api_key_env
        key = ""
        if api_key_env:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ValueError(
                    f"api_key_env names {api_key_env!r}, but that environment variable is unset"
                )
        self._api_key = key
        self.endpoint: Endpoint = endpoint
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.score_prefix = score_prefix or ""
        self.extra_body = dict(extra_body or {})
        #: Counters: ``requests`` (logical), ``attempts``, ``retries`` and one per retry reason.
        self.stats: Counter[str] = Counter()
        #: The server's ``Server`` header, once seen (names the software in error messages).
        self.server_software: str | None = None
        self._stats_lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._conns_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._jitter = random.Random()
        #: Set once any HTTP answer arrived: from then on refused connections are retried.
        self._reached = False
        self.model = model or self._first_model()
        #: Identity for caches and provenance: the served model name (no URL, no key).
        self.model_id = self.model

    def __repr__(self) -> str:
        return (
            f"OpenAIHTTPBackend(base_url={self.base_url!r}, model={self.model!r}, "
            f"endpoint={self.endpoint!r}, concurrency={self.concurrency}, "
            f"api_key_env={self.api_key_env!r})"
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def _server(self) -> str:
        sw = f" ({self.server_software})" if self.server_software else ""
        return f"{self.base_url}{sw}"

    def _mask(self, text: str) -> str:
        """Remove the API key from text that may echo it (server error bodies)."""
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _count(self, key: str, n: int = 1) -> None:
        with self._stats_lock:
            self.stats[key] += n

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._scheme == "https":
                conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _headers(self, has_body: bool) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "synthbias"}
        if has_body:
            headers["Content-Type"] = "application/json"
        if self._api_key:
            headers["Authorization"] = "Bearer " + self._api_key
        return headers

    def _attempt(self, method: str, path: str, body: bytes | None) -> tuple[int, dict, bytes]:
        """One HTTP exchange; transport failures become :class:`_Retry`."""
        conn = self._connection()
        try:
            conn.request(method, self._prefix + path, body=body, headers=self._headers(bool(body)))
            resp = conn.getresponse()
            raw = resp.read()
            headers = {k.lower(): v for k, v in resp.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self._drop_connection()
            return resp.status, headers, raw
        except TimeoutError as err:
            self._drop_connection()
            raise _Retry("timeout") from err
        except http.client.IncompleteRead as err:
            self._drop_connection()
            raise _Retry("truncated") from err
        except (ConnectionRefusedError, socket.gaierror) as err:
            self._drop_connection()
            if not self._reached:
                refused = isinstance(err, ConnectionRefusedError)
                reason = "connection refused" if refused else f"host {self._host!r} not found"
                raise BackendUnavailableError(self.base_url, reason) from err
            raise _Retry(f"connection:{type(err).__name__}") from err
        except (ConnectionError, http.client.HTTPException, OSError) as err:
            self._drop_connection()
            raise _Retry(f"connection:{type(err).__name__}") from err

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max, self.backoff_base * (2**attempt))
        delay = delay * (0.5 + 0.5 * self._jitter.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _request(self, method: str, path: str, payload: Any, parse: Callable[[Any], Any]) -> Any:
        """Send with retries; ``parse`` turns the JSON into a result or raises (-> retry)."""
        body = json.dumps(payload).encode("utf-8") if payload is not None else None
        self._count("requests")
        last = "?"
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            self._count("attempts")
            try:
                status, headers, raw = self._attempt(method, path, body)
                self._reached = True
                if self.server_software is None and headers.get("server"):
                    self.server_software = headers["server"]
                if status in RETRY_STATUSES or status >= 500:
                    ra = headers.get("retry-after")
                    try:
                        retry_after = float(ra) if ra is not None else None
                    except ValueError:
                        retry_after = None
                    raise _Retry(f"http-{status}", retry_after)
                if status >= 400:
                    raise HTTPStatusError(
                        status,
                        f"{method} {self.base_url}{path} failed with HTTP {status} from "
                        f"{self._server()}: {self._mask(raw[:800].decode('utf-8', 'replace'))}",
                    )
                if status != 200:
                    raise _Retry(f"http-{status}")
                try:
                    data = json.loads(raw)
                except ValueError as err:
                    raise _Retry("bad-json") from err
                try:
                    return parse(data)
                except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
                    raise _Retry("bad-response") from err
            except _Retry as r:
                last = r.reason
                self._count(f"retry:{r.reason.split(':')[0]}")
                if attempt == self.max_retries:
                    break
                delay = self._backoff(attempt, r.retry_after)
                log.warning(
                    "%s %s: %s; retry %d/%d in %.2fs",
                    method,
                    path,
                    r.reason,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
        raise RetriesExhaustedError(
            f"{method} {self.base_url}{path}: gave up after {self.max_retries + 1} attempts "
            f"(last error: {last}) on {self._server()}"
        )

    def _first_model(self) -> str:
        def parse(data: Any) -> str:
            return str(data["data"][0]["id"])

        try:
            return self._request("GET", "/models", None, parse)
        except RetriesExhaustedError as err:
            raise HTTPBackendError(
                f"could not list models at {self.base_url}: {err}; is the server running? "
                "(or set model explicitly)"
            ) from err

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="synthbias-http")
        return self._pool

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def __enter__(self) -> OpenAIHTTPBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _map(self, fn: Callable[[int], Any], n: int, on_result: Callable[[int, Any], None]) -> None:
        """Run ``fn(j)`` for ``j < n`` on the pool; ``on_result`` (in the calling thread) the
        moment each one finishes, in any order.

        The first failure cancels what has not started; requests already running are waited
        for and their results still handed to ``on_result`` (they are paid for), then the
        failure is re-raised. An exception from ``on_result`` itself stops at once.
        """
        if n == 0:
            return
        if self.concurrency == 1 or n == 1:
            for j in range(n):
                on_result(j, fn(j))
            return
        pool = self._executor()
        futures: dict[Future, int] = {pool.submit(fn, j): j for j in range(n)}
        pending = set(futures)
        error: BaseException | None = None
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=futures.__getitem__):
                    exc = fut.exception()
                    if exc is None:
                        on_result(futures[fut], fut.result())
                    elif error is None:
                        error = exc
                        for rest in pending:
                            rest.cancel()
                pending = {f for f in pending if not f.cancelled()}
        finally:
            for fut in pending:
                fut.cancel()
        if error is not None:
            raise error

    # -- generation -------------------------------------------------------------------------------

    def _route(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        if isinstance(prompt, str):
            if self.endpoint == "chat":
                return "/chat/completions", {"messages": [{"role": "user", "content": prompt}]}
            return "/completions", {"prompt": prompt}
        if self.endpoint == "completion":
            raise TypeError(
                "endpoint='completion' takes raw string prompts; chat messages need "
                "endpoint 'chat' or 'auto'"
            )
        messages = []
        for m in prompt:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise TypeError(f"chat messages need 'role' and 'content', got {m!r}")
            messages.append({"role": m["role"], "content": m["content"]})
        return "/chat/completions", {"messages": messages}

    def _body(self, route: dict[str, Any], params: SamplingParams, seed: int) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, **route}
        body.update(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=seed,
            n=1,
        )
        if params.top_k > 0:
            body["top_k"] = params.top_k
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(self.extra_body)
        return body

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """One completion per prompt, in order (``concurrency`` requests in flight)."""
        return self.generate_indexed(prompts, params, range(len(prompts)))

    def generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: Callable[[int, Completion], None] | None = None,
    ) -> list[Completion]:
        """Like ``generate``, but prompt ``j`` is request ``indices[j]`` of its call.

        The request seed depends on that index, so a subset of a call (e.g. the part a cache did
        not hold) comes out exactly as in the full call. ``on_result(j, completion)`` is called
        as each request finishes, from the calling thread.
        """
        if isinstance(prompts, str):
            raise TypeError("generate() takes a sequence of prompts, not a single string")
        if len(indices) != len(prompts):
            raise ValueError("indices must have one entry per prompt")
        routes = [self._route(p) for p in prompts]
        out: list[Completion | None] = [None] * len(prompts)

        def one(j: int) -> Completion:
            path, route = routes[j]
            body = self._body(route, params, request_seed(params.seed, int(indices[j])))
            chat = path == "/chat/completions"

            def parse(data: Any) -> Completion:
                choice = data["choices"][0]
                text = (choice["message"].get("content") or "") if chat else choice["text"]
                if not isinstance(text, str):
                    raise TypeError("completion text is not a string")
                usage = data.get("usage") or {}
                finish = choice.get("finish_reason")
                for stop in params.stop:  # servers cut at stops; make sure, client-side
                    cut = text.find(stop) if stop else -1
                    if cut >= 0:
                        text, finish = text[:cut], "stop"
                return Completion(
                    text=text,
                    n_prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    n_tokens=int(usage.get("completion_tokens") or 0),
                    finish_reason="length" if finish == "length" else "stop",
                    seed=params.seed,
                )

            return self._request("POST", path, body, parse)

        def done(j: int, c: Completion) -> None:
            out[j] = c
            if on_result is not None:
                on_result(j, c)

        self._map(one, len(prompts), done)
        return [c for c in out if c is not None]

    # -- scoring ----------------------------------------------------------------------------------

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """Per-token log-probs of each text through ``/v1/completions`` with ``echo``."""
        return self.logprobs_each(texts)

    def logprobs_each(
        self,
        texts: Sequence[str],
        on_result: Callable[[int, TextLogprobs], None] | None = None,
    ) -> list[TextLogprobs]:
        """Like ``logprobs``; ``on_result(j, scores)`` as each text's request finishes (from
        the calling thread), so a cache can commit every answer on arrival."""
        if isinstance(texts, str):
            raise TypeError("logprobs() takes a sequence of texts, not a single string")
        out: list[TextLogprobs | None] = [None] * len(texts)

        def one(j: int) -> TextLogprobs:
            text = texts[j]
            body = {
                "model": self.model,
                "prompt": self.score_prefix + text,
                "max_tokens": 1,
                "temperature": 0,
                "echo": True,
                "logprobs": 1,
                "seed": 0,
            }
            try:
                return self._request(
                    "POST", "/completions", body, lambda data: self._parse_echo(data, text)
                )
            except HTTPStatusError as err:
                if err.status in (400, 404, 405, 422, 501):
                    raise LogprobsNotSupportedError(
                        f"{self._server()} does not score prompts (completions with echo and "
                        f"logprobs) for model {self.model!r}: {err}. Use a server that does "
                        "(vLLM, llama-cpp-python) or the embedded backends for likelihood metrics."
                    ) from err
                raise

        def done(j: int, r: TextLogprobs) -> None:
            out[j] = r
            if on_result is not None:
                on_result(j, r)

        self._map(one, len(texts), done)
        return [r for r in out if r is not None]

    def _parse_echo(self, data: Any, text: str) -> TextLogprobs:
        choice = data["choices"][0]
        lp = choice.get("logprobs")
        if not lp or lp.get("tokens") is None or lp.get("token_logprobs") is None:
            raise LogprobsNotSupportedError(
                f"{self._server()} returned no prompt log-probs for model {self.model!r} "
                "(echo + logprobs ignored); it cannot score texts"
            )
        tokens: list[str] = list(lp["tokens"])
        values: list[float | None] = list(lp["token_logprobs"])
        if len(tokens) != len(values):
            raise ValueError("tokens and token_logprobs differ in length")
        pos, start = 0, 0
        joined = "".join(tokens)
        prefix = self.score_prefix
        if prefix and joined.startswith(prefix):  # the server echoed the prefix's tokens
            while start < len(tokens) and pos + len(tokens[start]) <= len(prefix):
                pos += len(tokens[start])
                start += 1
            if pos != len(prefix):
                raise LogprobsNotSupportedError(
                    f"score_prefix {prefix!r} does not end on a token boundary on {self._server()}"
                )
        got: list[str] = []
        vals: list[float | None] = []
        length = 0
        j = start
        while j < len(tokens) and length < len(text):
            got.append(tokens[j])
            vals.append(values[j])
            length += len(tokens[j])
            j += 1
        if "".join(got) != text:
            if not joined.startswith(prefix + text[:1]) and not joined.startswith(text[:1]):
                raise LogprobsNotSupportedError(
                    f"{self._server()} did not echo the prompt (echo ignored): it cannot score"
                )
            raise HTTPBackendError(
                f"{self._server()} echoed tokens that do not spell the scored text "
                f"({''.join(got)!r} vs {text!r})"
            )
        if vals and vals[0] is None:  # nothing the server conditioned on: unscored first token
            got, vals = got[1:], vals[1:]
        if any(v is None for v in vals):
            raise ValueError("missing log-prob inside the text")
        return TextLogprobs(
            tokens=got, token_ids=[-1] * len(got), logprobs=[float(v) for v in vals]
        )  # type: ignore[arg-type]
