"""One chain of one level as a unit of work: its generations 1..G from its stored seed corpus.

Why: the study's chains (its replicates) share nothing but the run's settings. Generation k of
a chain depends only on that chain's earlier generations, and every seed it draws comes from
(run seed, level, chain, generation), never from the order in which chains run; each generated
corpus is a cached step written atomically (``corpora/level-*/[chain-*/]gen-*.jsonl``). So a
(level, chain) pair can run in any process: ``study.workers`` > 1 runs the pairs on a local
process pool and ``scale: ray`` on Ray (:func:`synthbias.core.parallel.run_units`), and a run
killed mid-way loses at most the generation each worker had in progress.

A worker builds what generation needs from the config, the way the runner does: the generator
(:func:`open_generator`, opened once per worker process and kept for its later units, with the
worker's share of the cores as llama.cpp threads when ``generator.n_threads`` is unset), the
on-topic check and seed vocabulary (a :class:`GenderMeasurer` of the run's measure settings,
without the embedding encoder, which generation never uses). The runner then loads every
chain's corpora from the cache and measures and fits them as it does inline.

Objects a caller passes to the runner (a ``backend``, a measurer of another class) cannot be
rebuilt in a worker: the runner then generates inline, with a logged note
(:func:`chain_workers`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.parallel import resolve_workers, threads_per_worker, worker_threads
from synthbias.core.records import Record, read_jsonl
from synthbias.core.steps import StepCount, Steps
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.config import MeasureConfig
from synthbias.studies.equilibrium import mitigations as recursive
from synthbias.studies.equilibrium.generation import SeedVocabulary, chain_corpus_path
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.steps import GenerationSettings, LazyBackend, generate

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from synthbias.config import ExperimentConfig
    from synthbias.studies.equilibrium.config import EquilibriumStudyConfig

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- shared with the runner


def generation_settings(
    config: ExperimentConfig, measurer: GenderMeasurer, vocab: SeedVocabulary
) -> GenerationSettings:
    """What every ``generate`` step of a run shares, read from the config once."""
    study = config.study
    regenerate = study.on_topic == "regenerate"
    return GenerationSettings(
        params=SamplingParams(
            max_tokens=config.sampling.max_tokens,
            temperature=config.sampling.temperature,
            top_p=config.sampling.top_p,
            top_k=config.sampling.top_k,
            seed=config.seed,
        ),
        n=study.n,
        k_shots=study.k_shots,
        prompt=recursive.generation_prompt(study),
        seed=config.seed,
        chunk_size=config.generator.batch_size,
        vocab=vocab,
        on_topic=measurer.on_topic,
        regenerate=regenerate,
        max_retries=study.on_topic_retries if regenerate else 2,
        mitigate=partial(recursive.after_generation, study=study)
        if study.mitigation.strategies
        else None,
        real_share=study.real_share,
        regime=study.regime,
    )


def open_generator(
    config: ExperimentConfig, out: Path, seed_corpora: Sequence[Sequence[Record]]
) -> Backend:
    """The configured generator, or (``debiased_finetune``) the one tuned on the seed corpora."""
    backend = recursive.mitigated_generator(config, out, seed_corpora)
    if backend is None:
        backend = make_backend(config.generator, seed=config.seed, run_dir=out)
    return backend


def chain_generations(
    steps: Steps,
    out: Path,
    level: float,
    chain: int,
    seed: list[Record],
    generations: int,
    generator: LazyBackend,
    settings: GenerationSettings,
    tick: Callable[[int], None] | None = None,
) -> list[list[Record]]:
    """Generations 0..``generations`` of one chain at one level (generation 0 is ``seed``), each
    a ``generate`` step: stored ones are loaded, the rest written from the one before (from all
    earlier ones pooled, or with generation 0's share, when the settings mix)."""
    corpora = [seed]
    mixes = settings.regime != "replace" or settings.real_share > 0
    for k in range(1, generations + 1):
        earlier = corpora if mixes else ()
        corpora.append(
            generate(
                steps, out, level, chain, k, corpora[-1], generator, settings, tick, earlier=earlier
            )
        )
    return corpora


# --------------------------------------------------------------------------- the unit


@dataclass(frozen=True)
class ChainJob:
    """One (level, chain) pair of a run; it pickles (config, paths and settings only)."""

    config: ExperimentConfig
    out: Path
    level: float
    chain: int
    resume: bool
    #: the measurer's settings: the on-topic check and seed vocabulary generation uses
    measure: MeasureConfig


@dataclass
class ChainResult:
    """What a unit did: its texts (``n`` per generation, as the progress bar counts them), its
    steps' counts, and the generator it opened (``backend``, ``model_id``; empty when every
    corpus was stored)."""

    level: float
    chain: int
    texts: int
    counts: dict[str, StepCount] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


#: This process's generator, kept for its later units: (key, backend). A worker opens the model
#: once, not once per unit or generation; a unit of another run (key) closes it first.
_OPEN: list[tuple[str, Backend]] = []


def run_chain(job: ChainJob) -> ChainResult:
    """Generations 1..G of ``job.chain`` at ``job.level`` from its stored seed corpus (each a
    cached step), in this process."""
    config = worker_config(job.config)
    study = config.study
    steps = Steps(resume=job.resume)
    measurer = GenderMeasurer(job.measure.model_copy(update={"embedding": False}))
    settings = generation_settings(config, measurer, measurer.seed_vocabulary())
    generator = LazyBackend(None, partial(_worker_generator, config, job.out))
    seed = read_jsonl(chain_corpus_path(job.out, job.level, job.chain, 0))
    chain_generations(
        steps, job.out, job.level, job.chain, seed, study.generations, generator, settings
    )
    b = generator.backend
    model = {"backend": b.name, "model_id": b.model_id} if b is not None else {}
    return ChainResult(
        level=job.level,
        chain=job.chain,
        texts=study.generations * study.n,
        counts=steps.counts,
        model=model,
    )


def worker_config(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with this worker's thread count as the generator's (when it sets none)."""
    threads = worker_threads()
    if threads is None or config.generator.n_threads is not None:
        return config
    gen = config.generator.model_copy(update={"n_threads": threads})
    return config.model_copy(update={"generator": gen})


def _worker_generator(config: ExperimentConfig, out: Path) -> Backend:
    """The generator of this process for ``config``: opened by its first unit that generates,
    reused by the next ones."""
    key = f"{Path(out).resolve()}|{config.content_hash()}|{config.generator.n_threads}"
    if _OPEN and _OPEN[0][0] == key:
        return _OPEN[0][1]
    release_generator()
    seeds = [read_jsonl(chain_corpus_path(out, level, 0, 0)) for level in config.study.levels]
    backend = open_generator(config, out, seeds)
    _OPEN.append((key, backend))
    return backend


def release_generator() -> None:
    """Close this process's kept generator (a worker's dies with it; tests running units
    inline call this)."""
    while _OPEN:
        _, backend = _OPEN.pop()
        if hasattr(backend, "close"):
            backend.close()


# --------------------------------------------------------------------------- planning


def pending_chains(out: Path, study: EquilibriumStudyConfig) -> list[tuple[float, int]]:
    """The (level, chain) pairs with a generated corpus not yet stored."""
    return [
        (level, r)
        for level in study.levels
        for r in range(study.chains)
        if any(
            not chain_corpus_path(out, level, r, k).exists()
            for k in range(1, study.generations + 1)
        )
    ]


def chain_workers(
    study: EquilibriumStudyConfig,
    n_units: int,
    backend: Backend | None,
    measurer: GenderMeasurer,
) -> tuple[int, str | None]:
    """How many processes generate ``n_units`` chains, and why they run inline when they must.

    ``workers: 1`` (and ``scale: local``) or a single unit: 1, inline, nothing pickled. A
    ``backend`` object passed by the caller, or a measurer of a class other than
    :class:`GenderMeasurer`, cannot be rebuilt in a worker from the config: 1, inline, with a
    note (logged, and kept in ``results["parallel"]``). Otherwise ``study.workers`` resolved
    (``auto``: one per core), at most one per unit.
    """
    workers = resolve_workers(study.workers, n_units)
    if workers == 1 and study.scale == "local":
        return 1, None
    why = None
    if backend is not None:
        why = "a backend object was passed to the runner"
    elif type(measurer) is not GenderMeasurer:
        why = f"a measurer of class {type(measurer).__name__} was passed to the runner"
    if why is None:
        return workers, None
    note = (
        f"study.workers: {study.workers} (scale: {study.scale}) asks for worker processes, but "
        f"{why}, and workers build theirs from the config; the chains run in this process"
    )
    log.warning(note)
    return 1, note


def parallel_info(study: EquilibriumStudyConfig, workers: int, note: str | None) -> dict[str, Any]:
    """``results["parallel"]``: how the chains ran (step seconds in ``timing`` are summed over
    the workers)."""
    info: dict[str, Any] = {
        "scale": study.scale,
        "workers": workers,
        "threads_per_worker": threads_per_worker(workers) if workers > 1 else None,
        "note": "step seconds are summed over the workers that generated the chains",
    }
    if note:
        info["inline"] = note
    return info
