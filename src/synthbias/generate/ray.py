"""Generation at scale: one backend per Ray actor, work streamed to them (``synthbias[ray]``).

Everything here keeps the protocol's reproducibility contract: a ``generate`` call's output is a
pure function of (prompts, sampling parameters, seed, index in the call), so the unit of
distribution is a whole call, never a slice of one (a slice would renumber its requests).

* :class:`BackendSpec` is a picklable recipe (``load_backend`` kind and arguments, optional
  request cache file); every actor builds its own backend from it.
* :class:`RayBackend` implements the protocol on a pool of actors: ``generate`` sends a call to
  one actor (split over all actors when the backend can generate a subset of a call at its own
  indices, as the HTTP and vLLM backends can), ``logprobs`` splits texts over all actors (scores
  are per text), and ``generate_many`` runs many calls at once, one per free actor.
* :func:`generate_corpus` writes a large corpus in chunks with seeds derived from
  ``(seed, chunk start)``; with a :class:`RayBackend` the chunks run in parallel, with any other
  backend one after another, and the outputs are identical either way.
  :func:`generate_corpus_dataset` does the same through Ray Data (``map_batches`` over an actor
  pool), streaming chunks to the actors.

Ray is imported only when used. ``address=None`` starts (or joins) a local Ray instance;
``"auto"`` or ``"ray://host:port"`` join a cluster.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from synthbias.core.hashing import derive_seed
from synthbias.generate import BACKENDS, load_backend
from synthbias.generate.cache import RUN_CACHE_NAME, CachedBackend, shared_cache_path
from synthbias.generate.protocol import Backend, Completion, Prompt, SamplingParams, TextLogprobs


def _ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ImportError("distributed generation needs Ray: pip install 'synthbias[ray]'") from err
    return ray


@dataclass(frozen=True)
class BackendSpec:
    """How to build a backend anywhere: ``load_backend(kind, **kwargs)``, optionally cached."""

    kind: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    cache_path: str | None = None

    def build(self) -> Backend:
        backend = load_backend(self.kind, **self.kwargs)
        if self.cache_path:
            return CachedBackend(backend, self.cache_path)
        return backend


def backend_spec(
    cfg: Any, seed: int = 0, run_dir: str | os.PathLike[str] | None = None
) -> BackendSpec:
    """The :class:`BackendSpec` of a ``GeneratorConfig`` (``cache_path`` from ``cfg.cache``); the
    constructor's arguments come from the backend's registry entry (``config_kwargs``).

    ``cache: run`` needs ``run_dir`` (without one there is no cache).
    """
    kwargs: dict[str, Any] = dict(BACKENDS.meta(cfg.backend)["config_kwargs"](cfg, seed))
    kwargs.update(cfg.options)
    cache_path: str | None = None
    if cfg.cache == "run" and run_dir is not None:
        cache_path = str(os.path.join(run_dir, RUN_CACHE_NAME))
    elif cfg.cache == "shared":
        cache_path = str(shared_cache_path())
    return BackendSpec(kind=cfg.backend, kwargs=kwargs, cache_path=cache_path)


def backend_from_config(
    cfg: Any, seed: int = 0, run_dir: str | os.PathLike[str] | None = None
) -> Backend:
    """Build the configured backend: local or on Ray actors (``cfg.ray``), behind the cache."""
    spec = backend_spec(cfg, seed=seed, run_dir=run_dir)
    if cfg.ray is None:
        return spec.build()
    backend: Backend = RayBackend(
        BackendSpec(spec.kind, spec.kwargs),
        num_actors=cfg.ray.num_actors,
        address=cfg.ray.address,
        num_cpus=cfg.ray.num_cpus,
        num_gpus=cfg.ray.num_gpus,
    )
    if spec.cache_path:  # one writer: the driver looks up and stores, actors only compute
        backend = CachedBackend(backend, spec.cache_path)
    return backend


def chunk_seed(seed: int, start: int) -> int:
    """Seed of the chunk starting at ``start`` (stable across runs and platforms)."""
    return derive_seed("corpus-chunk", seed, start)


class _Worker:
    """Actor body: one backend, kept for the actor's lifetime."""

    def __init__(self, spec: BackendSpec, env: dict[str, str] | None = None) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        for k, v in (env or {}).items():
            os.environ.setdefault(k, v)
        self.backend = spec.build()

    def info(self) -> tuple[str, str, bool]:
        b = self.backend
        inner = getattr(b, "inner", b)
        return b.name, b.model_id, hasattr(inner, "generate_indexed")

    def generate(self, prompts: list[Prompt], params: SamplingParams) -> list[Completion]:
        return self.backend.generate(prompts, params)

    def generate_indexed(
        self, prompts: list[Prompt], params: SamplingParams, indices: list[int]
    ) -> list[Completion]:
        return self.backend.generate_indexed(prompts, params, indices)  # type: ignore[attr-defined]

    def logprobs(self, texts: list[str]) -> list[TextLogprobs]:
        return self.backend.logprobs(texts)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()


def init_ray(address: str | None = None, **init_kwargs: Any) -> bool:
    """Connect to (or start) Ray unless already connected; True when this call started it."""
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    kwargs.update(init_kwargs)
    ray.init(address=address, **kwargs)
    return True


def _split(n: int, parts: int) -> list[range]:
    """``parts`` contiguous near-equal ranges covering ``range(n)`` (empty ones dropped)."""
    size, extra = divmod(n, parts)
    out, start = [], 0
    for p in range(parts):
        stop = start + size + (1 if p < extra else 0)
        if stop > start:
            out.append(range(start, stop))
        start = stop
    return out


class RayBackend:
    """The backend protocol on a pool of Ray actors, each holding one backend built from ``spec``.

    Args:
        spec: the backend every actor builds.
        num_actors: actors (each one model instance).
        address: Ray address (``None``: local instance, started if needed).
        num_cpus: CPUs reserved per actor (give llama.cpp actors ``n_threads`` CPUs each).
        num_gpus: GPUs per actor (vLLM).
        init_kwargs: extra ``ray.init`` arguments when this backend starts Ray.
    """

    def __init__(
        self,
        spec: BackendSpec,
        num_actors: int = 2,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {num_actors}")
        ray = _ray()
        self._ray = ray
        self._started = init_ray(address, **(init_kwargs or {}))
        self.spec = spec
        # Settings, never secrets: an API key is read by each actor from its own environment
        # (a local Ray instance inherits the driver's; on a cluster, set it on the nodes).
        env = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "SYNTHBIAS_MODEL") if k in os.environ}
        actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_Worker)
        self.actors = [actor_cls.remote(spec, env) for _ in range(num_actors)]
        infos = ray.get([a.info.remote() for a in self.actors])
        self.name, self.model_id, self.indexed = infos[0]
        self._next = 0
        if self.indexed:  # offered only when the actors' backend can do it
            self.generate_indexed = self._generate_indexed

    def __repr__(self) -> str:
        return (
            f"RayBackend({self.spec.kind!r}, actors={len(self.actors)}, model_id={self.model_id!r})"
        )

    def _actor(self) -> Any:
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return actor

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        if isinstance(prompts, str):
            raise TypeError("generate() takes a sequence of prompts, not a single string")
        prompts = list(prompts)
        if not self.indexed or len(self.actors) == 1 or len(prompts) < 2:
            return self._ray.get(self._actor().generate.remote(prompts, params))
        refs = [
            a.generate_indexed.remote([prompts[i] for i in r], params, list(r))
            for a, r in zip(self.actors, _split(len(prompts), len(self.actors)), strict=False)
        ]
        return [c for part in self._ray.get(refs) for c in part]

    def _generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: Callable[[int, Completion], None] | None = None,
    ) -> list[Completion]:
        out = self._ray.get(
            self._actor().generate_indexed.remote(list(prompts), params, list(indices))
        )
        if on_result is not None:
            for j, c in enumerate(out):
                on_result(j, c)
        return out

    def generate_many(
        self,
        calls: Sequence[tuple[Sequence[Prompt], SamplingParams]],
        on_done: Callable[[int, list[Completion]], None] | None = None,
    ) -> list[list[Completion]]:
        """Run many ``generate`` calls, each whole on one actor, as actors free up.

        ``on_done(k, completions)`` fires as call ``k`` finishes (any order).
        """
        ray = self._ray
        results: list[list[Completion] | None] = [None] * len(calls)
        queue = list(range(len(calls)))[::-1]
        running: dict[Any, tuple[int, Any]] = {}
        idle = list(self.actors)
        while queue or running:
            while queue and idle:
                k = queue.pop()
                actor = idle.pop()
                prompts, params = calls[k]
                running[actor.generate.remote(list(prompts), params)] = (k, actor)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                k, actor = running.pop(ref)
                results[k] = ray.get(ref)
                idle.append(actor)
                if on_done is not None:
                    on_done(k, results[k])  # type: ignore[arg-type]
        return [r for r in results if r is not None]

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        texts = list(texts)
        refs = [
            a.logprobs.remote([texts[i] for i in r])
            for a, r in zip(self.actors, _split(len(texts), len(self.actors)), strict=False)
        ]
        return [t for part in self._ray.get(refs) for t in part]

    def close(self) -> None:
        """Stop the actors (and Ray, when this backend started it)."""
        ray = self._ray
        if not self.actors:
            return
        try:
            ray.get([a.close.remote() for a in self.actors])
        finally:
            for a in self.actors:
                ray.kill(a)
            self.actors = []
            if self._started:
                ray.shutdown()

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunks(prompts: Sequence[Prompt], params: SamplingParams, chunk_size: int):
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    for start in range(0, len(prompts), chunk_size):
        p = SamplingParams(**{**params.to_dict(), "seed": chunk_seed(params.seed, start)})
        yield start, list(prompts[start : start + chunk_size]), p


def generate_corpus(
    prompts: Sequence[Prompt],
    params: SamplingParams,
    backend: Backend,
    chunk_size: int = 32,
    on_progress: Callable[[int], None] | None = None,
) -> list[Completion]:
    """One completion per prompt, in chunks of ``chunk_size`` seeded from ``(seed, start)``.

    A backend with ``generate_many`` (:class:`RayBackend`) runs the chunks in parallel; the
    result is the same as running them one by one on a single backend.
    """
    chunks = list(_chunks(prompts, params, chunk_size))
    many = getattr(backend, "generate_many", None)
    if many is not None:

        def done(k: int, outs: list[Completion]) -> None:
            if on_progress:
                on_progress(len(outs))

        parts = many([(c[1], c[2]) for c in chunks], on_done=done)
    else:
        parts = []
        for _, ps, p in chunks:
            parts.append(backend.generate(ps, p))
            if on_progress:
                on_progress(len(ps))
    return [c for part in parts for c in part]


class _ChunkMapper:
    """Ray Data ``map_batches`` callable: one backend per actor, one row per chunk."""

    def __init__(self, spec: BackendSpec) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.backend = spec.build()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out_start, out_json = [], []
        for start, prompts_json, params_json in zip(
            batch["start"], batch["prompts"], batch["params"], strict=True
        ):
            d = json.loads(params_json)
            params = SamplingParams(**{**d, "stop": tuple(d["stop"])})
            outs = self.backend.generate(json.loads(prompts_json), params)
            out_start.append(int(start))
            out_json.append(json.dumps([asdict(c) for c in outs]))
        return {"start": out_start, "completions": out_json}


def generate_corpus_dataset(
    prompts: Sequence[Prompt],
    params: SamplingParams,
    spec: BackendSpec,
    chunk_size: int = 32,
    num_actors: int = 2,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    address: str | None = None,
) -> list[Completion]:
    """:func:`generate_corpus` through Ray Data: chunks streamed to a pool of actors.

    Same chunks and seeds as :func:`generate_corpus`, hence the same output.
    """
    ray = _ray()
    init_ray(address)
    rows = []
    for start, ps, p in _chunks(prompts, params, chunk_size):
        d = p.to_dict()
        d["stop"] = list(d["stop"])
        rows.append({"start": start, "prompts": json.dumps(ps), "params": json.dumps(d)})
    if not rows:
        return []
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _ChunkMapper,
        fn_constructor_kwargs={"spec": spec},
        batch_size=1,
        concurrency=num_actors,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
    parts: dict[int, list[Completion]] = {}
    for row in ds.iter_rows():
        parts[int(row["start"])] = [Completion(**c) for c in json.loads(row["completions"])]
    return [c for start in sorted(parts) for c in parts[start]]
