"""A persistent request cache in front of any backend: reruns and resumed runs redo no work.

:class:`CachedBackend` wraps a backend and keys every request on (backend name, model identity,
prompt, sampling parameters, seed and the request's index in its call): exactly what its output
depends on under the protocol (request ``i`` samples from a stream seeded by ``(seed, i)``). The
store is one SQLite file in WAL mode, so any number of readers (other runs, Ray workers) read
while one writes, and a writer killed mid-transaction leaves the file consistent.

Rows are committed as soon as their requests finish: one transaction per request for backends
that report results as they arrive (``generate_indexed`` and ``logprobs_each`` with an
``on_result`` callback: the HTTP backend, whose ``concurrency`` requests finish in any order),
and one per ``generate`` call (a run's chunk) for in-process backends that produce a whole batch
at once. A run killed at any moment and started again finds every finished request in the cache
and asks the model only for the rest (at most the requests in flight at the kill are asked
twice), getting exactly the same outputs as an uninterrupted run.

When only part of a call is cached, the missing requests must still be generated at their own
index. Backends with ``generate_indexed`` do that directly; for others the call's prompts are
regenerated up to the last missing one (indices preserved) and only the missing rows are taken.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from synthbias.generate.protocol import Backend, Completion, Prompt, SamplingParams, TextLogprobs

log = logging.getLogger(__name__)

#: Bumped when the meaning of a cached row changes, so old rows are never reused.
CACHE_VERSION = 1
#: File name of the per-run cache inside a run folder (``generator.cache: run``).
RUN_CACHE_NAME = "cache.sqlite"
#: Environment variable naming the root of synthbias's user caches (shared with the HF cache).
CACHE_ENV_VAR = "SYNTHBIAS_CACHE"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    pid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    n INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    computed INTEGER NOT NULL
);
"""


def shared_cache_path() -> Path:
    """The user-wide cache: ``$SYNTHBIAS_CACHE/requests.sqlite`` or ``~/.cache/synthbias/...``."""
    root = os.environ.get(CACHE_ENV_VAR, "").strip()
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "synthbias"
    return base / "requests.sqlite"


def _prompt_json(prompt: Prompt) -> Any:
    if isinstance(prompt, str):
        return prompt
    return [[m["role"], m["content"]] for m in prompt]


def request_key(
    backend: str, model_id: str, kind: str, payload: Any, params: dict | None, index: int | None
) -> str:
    """Content hash identifying one request."""
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "backend": backend,
            "model": model_id,
            "kind": kind,
            "payload": payload,
            "params": params,
            "index": index,
        },
        sort_keys=True,
        ensure_ascii=False,
        default=list,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestStore:
    """Key -> JSON rows in one SQLite file (WAL); safe across threads and processes."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 120.0) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(self.path), timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable against process kills
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            self._db.close()
            raise sqlite3.DatabaseError(
                f"{self.path} is not a usable request cache: {err}"
            ) from err

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(uniq), 500):
                part = uniq[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = self._db.execute(
                    f"SELECT key, value FROM requests WHERE key IN ({marks})", part
                ).fetchall()
                found.update((k, json.loads(v)) for k, v in rows)
        return found

    def put_many(self, rows: Sequence[tuple[str, str, str, str, Any]]) -> None:
        """Insert ``(key, kind, backend, model_id, value)`` rows in one transaction."""
        if not rows:
            return
        now = time.time()
        data = [
            (k, kind, b, m, json.dumps(v, ensure_ascii=False), now) for k, kind, b, m, v in rows
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO requests (key, kind, backend, model_id, value, created)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    data,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def log_call(self, kind: str, n: int, hits: int, computed: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO calls (created, pid, kind, n, hits, computed)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), os.getpid(), kind, n, hits, computed),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedBackend:
    """Wrap ``inner`` so every request is looked up in, and written to, a SQLite cache.

    ``name`` and ``model_id`` are the inner backend's, so provenance is unchanged; other
    attributes are passed through. :attr:`stats` counts ``hits``, ``misses`` and ``computed``
    requests (``computed`` exceeds ``misses`` only when a partly cached call was regenerated up
    to its last missing request).
    """

    def __init__(self, inner: Backend, path: str | os.PathLike[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.model_id = inner.model_id
        self.store = RequestStore(path)
        self.path = self.store.path
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "computed": 0}

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, path={str(self.path)!r})"

    def __getattr__(self, name: str) -> Any:
        # "inner" is missing only while unpickling; generation entry points of the inner backend
        # must never be reached around the cache.
        if name == "inner" or name.startswith(("generate", "logprobs")):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _row(self, key: str, kind: str, value: Any) -> tuple[str, str, str, str, Any]:
        return (key, kind, self.name, self.model_id, value)

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        if isinstance(prompts, str):
            raise TypeError("generate() takes a sequence of prompts, not a single string")
        keys = self._keys(prompts, params)
        found = self.store.get_many(keys)
        out: list[Completion | None] = [
            Completion(**found[k]) if k in found else None for k in keys
        ]
        missing = [i for i, c in enumerate(out) if c is None]
        computed = 0
        if missing:
            gen_indexed = getattr(self.inner, "generate_indexed", None)
            if gen_indexed is not None:

                def store(j: int, c: Completion) -> None:
                    i = missing[j]
                    out[i] = c
                    self.store.put_many([self._row(keys[i], "generate", asdict(c))])

                gen_indexed([prompts[i] for i in missing], params, missing, on_result=store)
                computed = len(missing)
            else:
                upto = missing[-1] + 1
                fresh = self.inner.generate(list(prompts[:upto]), params)
                if len(fresh) != upto:
                    raise RuntimeError(f"{self.name} returned {len(fresh)} of {upto} completions")
                for i in missing:
                    out[i] = fresh[i]
                self.store.put_many(
                    [self._row(keys[i], "generate", asdict(fresh[i])) for i in missing]
                )
                computed = upto
        self._account("generate", len(prompts), len(prompts) - len(missing), computed)
        return [c for c in out if c is not None]

    def _keys(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[str]:
        pdict = params.to_dict()
        return [
            request_key(self.name, self.model_id, "generate", _prompt_json(p), pdict, i)
            for i, p in enumerate(prompts)
        ]

    def generate_many(
        self,
        calls: Sequence[tuple[Sequence[Prompt], SamplingParams]],
        on_done: Any = None,
    ) -> list[list[Completion]]:
        """Many ``generate`` calls at once (when the inner backend runs them in parallel).

        Fully cached calls are answered from the store; the others go to the inner backend's
        ``generate_many`` (regenerated up to their last missing request), each call's rows
        committed as it finishes. An inner backend without ``generate_many`` (the HTTP one)
        gets the calls one by one through :meth:`generate`, so each request is committed.
        """
        many = getattr(self.inner, "generate_many", None)
        if many is None:
            results = []
            for k, (prompts, params) in enumerate(calls):
                results.append(self.generate(prompts, params))
                if on_done is not None:
                    on_done(k, results[-1])
            return results
        keys = [self._keys(prompts, params) for prompts, params in calls]
        found = self.store.get_many([k for ks in keys for k in ks])
        results: list[list[Completion | None]] = [
            [Completion(**found[k]) if k in found else None for k in ks] for ks in keys
        ]
        todo = [k for k, r in enumerate(results) if any(c is None for c in r)]
        for k, r in enumerate(results):
            if k not in todo:
                self._account("generate", len(r), len(r), 0)
                if on_done is not None:
                    on_done(k, r)
        sub = []
        for k in todo:
            upto = max(i for i, c in enumerate(results[k]) if c is None) + 1
            prompts, params = calls[k]
            sub.append((list(prompts[:upto]), params))

        def done(j: int, fresh: list[Completion]) -> None:
            k = todo[j]
            missing = [i for i, c in enumerate(results[k]) if c is None]
            rows = []
            for i in missing:
                results[k][i] = fresh[i]
                rows.append(self._row(keys[k][i], "generate", asdict(fresh[i])))
            self.store.put_many(rows)
            n = len(results[k])
            self._account("generate", n, n - len(missing), len(fresh))
            if on_done is not None:
                on_done(k, results[k])

        if sub:
            many(sub, on_done=done)
        return [[c for c in r if c is not None] for r in results]

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        if isinstance(texts, str):
            raise TypeError("logprobs() takes a sequence of texts, not a single string")
        keys = [request_key(self.name, self.model_id, "logprobs", t, None, None) for t in texts]
        found = self.store.get_many(keys)
        todo = [i for i, k in enumerate(keys) if k not in found]
        first_of: dict[str, int] = {}
        for i in todo:
            first_of.setdefault(keys[i], i)
        uniq = list(first_of.values())
        if uniq:
            self._score([texts[i] for i in uniq], [keys[i] for i in uniq], found)
        self._account("logprobs", len(texts), len(texts) - len(todo), len(uniq))
        return [TextLogprobs(**found[k]) for k in keys]

    def _score(self, texts: list[str], keys: list[str], found: dict[str, Any]) -> None:
        """Score ``texts`` on the inner backend into ``found``; commit each row on arrival when
        the backend reports them one by one (``logprobs_each``), else all in one go."""
        each = getattr(self.inner, "logprobs_each", None)
        if each is not None:

            def store(j: int, r: TextLogprobs) -> None:
                found[keys[j]] = asdict(r)
                self.store.put_many([self._row(keys[j], "logprobs", found[keys[j]])])

            each(texts, on_result=store)
            return
        fresh = self.inner.logprobs(texts)
        rows = []
        for key, r in zip(keys, fresh, strict=True):
            found[key] = asdict(r)
            rows.append(self._row(key, "logprobs", found[key]))
        self.store.put_many(rows)

    def _account(self, kind: str, n: int, hits: int, computed: int) -> None:
        self.stats["hits"] += hits
        self.stats["misses"] += n - hits
        self.stats["computed"] += computed
        self.store.log_call(kind, n, hits, computed)

    def close(self) -> None:
        """Close the store and the inner backend."""
        self.store.close()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> CachedBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
