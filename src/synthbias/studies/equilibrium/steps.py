"""The equilibrium study's steps: seed → generate → measure (→ downstream) → fit → summarise.

Each step is one :class:`~synthbias.core.steps.Steps` unit (a ``Steps`` name in
``results["steps"]``) and takes only what it needs: a level and a chain are arguments of
:func:`seed_corpus` and :func:`generate` (one corpus per call), so the runner's loops over
levels, chains and generations are plain loops over calls, and a study that adds replicates
calls the same steps more often. The seeds every step draws are derived from the run's seed,
the level, the chain and the generation, never from the order of the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.core.hashing import derive_seed
from synthbias.core.records import Record, read_jsonl, write_jsonl
from synthbias.core.steps import Steps
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.config import MeasureConfig
from synthbias.measure.direction import DIRECTION_METRICS, statistic_for
from synthbias.studies.equilibrium.fit import (
    UndefinedFitMetric,
    chain_trajectories,
    check_code_balanced,
    fit_bias_map,
    pct_change,
)
from synthbias.studies.equilibrium.generation import (
    PILOT_FACTOR,
    SeedVocabulary,
    build_seed_corpus,
    chain_corpus_path,
    next_generation,
    text_opening,
)
from synthbias.studies.equilibrium.measurer import GenderMeasurer, prompt_occupations
from synthbias.studies.equilibrium.summary import (
    OFF_TOPIC_METRIC,
    interpretation,
    power_summary,
    seed_shares,
    summarise_generation,
)
from synthbias.studies.probe import downstream_bias, probe_set

#: A corpus per chain of one level, each a list of generations: ``chains[r][k]``.
LevelCorpora = list[list[list[Record]]]
#: Per chain of one level, per generation, the fit metric's per-text values: ``fit[r][k]``.
LevelFit = list[list[np.ndarray]]


# --------------------------------------------------------------------------- seed


def seed_corpus(
    steps: Steps,
    out: Path,
    level: float,
    chain: int,
    *,
    n: int,
    vocab: SeedVocabulary,
    seed: int,
    remainder: str,
    check: Callable[[list[Record]], None],
    relabel: Callable[[float, int], list[Record]] | None = None,
) -> list[Record]:
    """Step ``seed``: generation 0 of one chain at one level (stored, or built and ``check``ed:
    every text must score as designed). Built from templates, or with ``relabel`` (``seed_source:
    model``) from the chain's pilot texts relabelled to the level (``relabel(level, chain)``)."""

    def compute() -> list[Record]:
        if relabel is not None:
            recs = relabel(level, chain)
        else:
            recs = build_seed_corpus(level, n, vocab, seed=seed, remainder=remainder, chain=chain)
        check(recs)
        return recs

    path = chain_corpus_path(out, level, chain, 0)
    return steps.cached("seed", path, compute, read_jsonl, write_jsonl)


def pilot(
    steps: Steps,
    out: Path,
    chain: int,
    backend: LazyBackend,
    settings: GenerationSettings,
    on_progress: Callable[[int], None] | None = None,
) -> list[Record]:
    """Step ``pilot`` (``seed_source: model``): texts the generator writes for one chain from a
    balanced template seed (b0 = 0.5), ``PILOT_FACTOR × n`` of them, which :func:`seed_corpus`
    relabels to every level (stored in ``corpora/pilot/chain-<r>.jsonl``)."""
    s = settings
    path = pilot_path(out, chain)

    def compute() -> list[Record]:
        pilot_seed = derive_seed(s.seed, "pilot")
        parent = build_seed_corpus(0.5, s.n, s.vocab, seed=pilot_seed, chain=chain)
        for rec in parent:
            rec.initial_level = None  # the pilot's draws are its own, no level's
        recs = next_generation(
            parent,
            backend.get(),
            s.params,
            n=PILOT_FACTOR * s.n,
            generation=1,
            k_shots=s.k_shots,
            prompt=s.prompt,
            seed=pilot_seed,
            chunk_size=s.chunk_size,
            max_retries=s.max_retries,
            on_progress=on_progress,
            chain=chain,
            accept=s.on_topic if s.regenerate else None,
            vocab=s.vocab,
        )
        for rec in recs:
            rec.meta["pilot"] = True
        return recs

    recs = steps.cached("pilot", path, compute, read_jsonl, write_jsonl)
    if on_progress and steps.last_reused:
        on_progress(len(recs))
    return recs


def pilot_path(out: Path, chain: int) -> Path:
    """Where a chain's pilot texts are stored (``seed_source: model``)."""
    return Path(out) / "corpora" / "pilot" / f"chain-{chain}.jsonl"


# --------------------------------------------------------------------------- generate


@dataclass
class LazyBackend:
    """The generator, opened by the first corpus that is generated rather than loaded, so a run
    that finds every corpus stored never loads the model."""

    backend: Backend | None
    opener: Callable[[], Backend]

    def get(self) -> Backend:
        if self.backend is None:
            self.backend = self.opener()
        return self.backend

    def close(self) -> None:
        """Free the generator (before the downstream probe fine-tunes a model)."""
        if self.backend is not None and hasattr(self.backend, "close"):
            self.backend.close()


@dataclass(frozen=True)
class GenerationSettings:
    """What every generated corpus of a run shares: sampling, size, prompt, the run's seed,
    retries, and the on-topic check and mitigation applied to each."""

    params: SamplingParams
    n: int
    k_shots: int
    prompt: str
    seed: int
    chunk_size: int
    vocab: SeedVocabulary
    #: ``on_topic(text, opening)``: ``opening`` is what the prompt wrote of the text (see
    #: :func:`~synthbias.studies.equilibrium.generation.text_opening`)
    on_topic: Callable[[str, str], bool]
    #: ``on_topic: regenerate``: sample an off-topic text again, draw shots from on-topic texts
    regenerate: bool
    max_retries: int
    #: the data-level mitigation (``records, seed -> records``); ``None`` when none is configured
    mitigate: Callable[..., list[Record]] | None = None
    #: ``study.real_share``: share of every prompt's examples drawn from the chain's generation 0
    real_share: float = 0.0
    #: ``study.regime``: ``replace`` (examples from generation k) or ``accumulate`` (from all of
    #: generations 0..k pooled)
    regime: str = "replace"


def generate(
    steps: Steps,
    out: Path,
    level: float,
    chain: int,
    generation: int,
    parent: Sequence[Record],
    backend: LazyBackend,
    settings: GenerationSettings,
    on_progress: Callable[[int], None] | None = None,
    earlier: Sequence[Sequence[Record]] = (),
) -> list[Record]:
    """Step ``generate``: generation ``generation`` of one chain at one level, written from
    few-shot examples of its ``parent`` generation (stored, or generated).

    ``earlier`` holds the chain's generations 0..k (``parent`` last) when the settings mix:
    ``regime: accumulate`` draws the examples from all of them pooled, ``real_share`` > 0 draws
    that share from generation 0 (:func:`example_pool`).

    With a mitigation the unmitigated texts are kept beside the corpus (``raw-gen-*.jsonl``);
    every text's on-topic verdict is kept in ``meta["on_topic"]``.
    """
    s = settings
    path = chain_corpus_path(out, level, chain, generation)

    pool, real = example_pool(parent, earlier, s.regime, s.real_share)

    def compute() -> list[Record]:
        recs = next_generation(
            pool,
            backend.get(),
            s.params,
            n=s.n,
            generation=generation,
            k_shots=s.k_shots,
            prompt=s.prompt,
            seed=s.seed,
            chunk_size=s.chunk_size,
            max_retries=s.max_retries,
            on_progress=on_progress,
            chain=chain,
            accept=s.on_topic if s.regenerate else None,
            eligible=_on_topic_record if s.regenerate else None,
            vocab=s.vocab,
            **({"real": real, "real_share": s.real_share} if real is not None else {}),
        )
        if s.mitigate is not None:
            write_jsonl(recs, path.with_name(f"raw-{path.name}"))  # unmitigated
            recs = s.mitigate(recs, seed=s.seed + generation)
        for rec in recs:
            rec.meta["on_topic"] = s.on_topic(rec.text, text_opening(rec))
        return recs

    recs = steps.cached("generate", path, compute, read_jsonl, write_jsonl)
    if on_progress and steps.last_reused:
        on_progress(len(recs))
    return recs


def example_pool(
    parent: Sequence[Record],
    earlier: Sequence[Sequence[Record]],
    regime: str,
    real_share: float,
) -> tuple[Sequence[Record], Sequence[Record] | None]:
    """The synthetic example pool and the real corpus of one generated corpus.

    ``replace``: the pool is ``parent`` (generation k); ``accumulate``: generations 0..k of
    ``earlier`` pooled (every text drawn alike, so generation j's weight is its share of the
    pool). The real corpus is generation 0 (``earlier[0]``) when ``real_share`` > 0, else None.
    Today's default (replace, 0) returns ``(parent, None)``: the draw is the unmixed one.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; use one of {', '.join(REGIMES)}")
    needs_history = regime == "accumulate" or real_share > 0
    if needs_history and not earlier:
        raise ValueError(f"regime {regime!r} with real_share {real_share:g} needs earlier=...")
    pool = [r for corpus in earlier for r in corpus] if regime == "accumulate" else parent
    real = earlier[0] if real_share > 0 else None
    return pool, real


#: How a generation's example pool is formed (``study.regime``).
REGIMES = ("replace", "accumulate")


def _on_topic_record(rec: Record) -> bool:
    return bool(rec.meta.get("on_topic", True))


# --------------------------------------------------------------------------- measure


def measure(
    steps: Steps,
    level: float,
    chains: LevelCorpora,
    measurer: GenderMeasurer,
    *,
    fit_metric: str,
    seed: int,
    n_resamples: int,
    ci_level: float,
    inference: str = "t",
) -> tuple[dict[str, Any], LevelFit]:
    """Step ``measure``: one level's generations over its chains (``chains[r][k]``).

    Returns the level's entry of ``results["levels"]`` and, per chain, the per-text values of
    the fit metric that :func:`fit` resamples (``fit[r][k]``).
    """
    gens, fit_values = steps.timed(
        "measure",
        partial(
            _measure_level, chains, measurer, fit_metric, seed, n_resamples, ci_level, inference
        ),
    )
    return {"level": level, "chains": len(chains), "generations": gens}, fit_values


def _measure_level(
    chains: LevelCorpora,
    measurer: GenderMeasurer,
    fit_metric: str,
    seed: int,
    n_resamples: int,
    ci_level: float,
    inference: str,
) -> tuple[list[dict[str, Any]], LevelFit]:
    """Per generation: every metric on the chains' pooled texts, the direction metrics and
    off-topic share as headlines over chains (the replicates), and the per-chain fit values."""
    gens_out = []
    fit: LevelFit = [[] for _ in chains]
    base: dict[str, float] = {}
    for k in range(len(chains[0])):
        chain_recs = [corpora[k] for corpora in chains]
        pooled_recs = [r for recs in chain_recs for r in recs]
        metrics = measurer.measure(
            [r.text for r in pooled_recs],
            seed=seed,
            prompt_occupations=prompt_occupations(pooled_recs),
        )
        per_chain = [measurer.per_text(recs, fit_metric, seed=seed) for recs in chain_recs]
        for r, values in enumerate(per_chain):
            fit[r].append(values["fit"])
        summary = summarise_generation(
            per_chain,
            fit_metric,
            n_resamples=n_resamples,
            level=ci_level,
            seed=seed + k,
            inference=inference,
        )
        out_metrics = {name: m.to_dict() for name, m in metrics.items()}
        for name, cv in summary["over_chains"].items():  # the chains' mean replaces pooled values
            out_metrics[name] = {**out_metrics.get(name, {"name": name}), **cv}
        values = {name: m["value"] for name, m in out_metrics.items()}
        if k == 0:
            base = values
        gens_out.append(
            {
                "generation": k,
                "n": len(pooled_recs),
                "n_empty": sum(1 for recs in chain_recs for r in recs if not r.text),
                "pairings": summary["pairings"],
                "off_topic_share": summary["off_topic"],
                "chains": summary["chains"],
                "metrics": out_metrics,
                "pct_change": {
                    name: pct_change(v, base.get(name, float("nan")))
                    if v is not None and base.get(name) is not None
                    else None
                    for name, v in values.items()
                },
            }
        )
    return gens_out, fit


def downstream(
    steps: Steps,
    levels: list[dict[str, Any]],
    corpora: dict[float, list[list[Record]]],
    out: Path,
    mc: MeasureConfig,
    *,
    seed: int,
) -> None:
    """Step ``downstream`` (``measure.downstream`` not ``off``): the pronoun probe
    (``probe.gender.*``) on each level's chain-0 corpora (``corpora[level][k]``), added to the
    ``levels`` entries; see :func:`_add_downstream`."""
    steps.timed("downstream", partial(_add_downstream, levels, corpora, out, mc, seed))


def _add_downstream(
    levels: list[dict[str, Any]],
    corpora: dict[float, list[list[Record]]],
    out: Path,
    mc: MeasureConfig,
    seed: int,
) -> None:
    """LoRA-tune the embedded model on a corpus and probe its pronoun preferences
    (:func:`synthbias.studies.probe.downstream_bias`); cached per corpus in
    ``downstream/level-*/gen-*/``. ``measure.downstream: last`` does the last generation only."""
    occupations, templates, lo, hi = probe_set(mc)
    for lv in levels:
        level = lv["level"]
        gens = lv["generations"]
        chosen = gens if mc.downstream == "all" else gens[-1:]
        for g in chosen:
            k = g["generation"]
            texts = [r.text for r in corpora[level][k] if r.text]
            res = downstream_bias(
                texts,
                out / "downstream" / f"level-{level:g}" / f"gen-{k}",
                seed=seed,
                n_resamples=mc.n_resamples,
                occupations=occupations,
                templates=templates,
                lo=lo,
                hi=hi,
            )
            base = gens[0]["metrics"]
            for name, m in res.items():
                g["metrics"][name] = m.to_dict(include_samples=True)
                b = base.get(name)
                g["pct_change"][name] = pct_change(m.value, b["value"]) if b and k else None


# --------------------------------------------------------------------------- fit


def fit(
    steps: Steps,
    data: Sequence[LevelFit],
    starts: Sequence[float],
    *,
    metric: str,
    first_generation: int,
    ci_level: float,
    n: int | None = None,
) -> dict[str, Any]:
    """Step ``fit``: the bias map b_{k+1} = a + c·b_k over every level's chains
    (``data[level][r][k]``, see :func:`measure`; ``starts[level]`` its design level b0), with
    generation 0 fixed and the slope first (:func:`~.fit.fit_bias_map`), from generation
    ``first_generation`` on; or a note saying why there is none. Where the code-balanced share
    is undefined (a corpus pairs only one code, :func:`~.fit.check_code_balanced`) there is no
    fit: the note is that error, naming the ``study.n`` (here ``n``) it needs."""
    return steps.timed(
        "fit", partial(_fit_map, data, starts, metric, first_generation, ci_level, n)
    )


def _fit_map(
    data: Sequence[LevelFit],
    starts: Sequence[float],
    metric: str,
    first_generation: int,
    ci_level: float,
    n: int | None = None,
) -> dict[str, Any]:
    try:
        check_code_balanced(data, starts, metric, n)
    except UndefinedFitMetric as exc:  # stored and printed as why there is no fit, never NaN
        return {"note": f"not fitted: {exc}", "error": "undefined fit metric"}
    trajs = chain_trajectories(data, statistic_for(metric))
    chain_starts = [b0 for b0, lv in zip(starts, data, strict=True) for _ in lv]
    n_gens = max((len(t) for t in trajs), default=0) - 1
    if n_gens <= first_generation:
        return {
            "note": f"not fitted: the fit starts at generation {first_generation} and the run has "
            f"generations 0–{n_gens}; needs ≥ {first_generation + 1} generations"
        }
    return fit_bias_map(trajs, chain_starts, first_generation=first_generation, level=ci_level)


# --------------------------------------------------------------------------- summarise


def summarise(
    steps: Steps,
    levels: list[dict[str, Any]],
    equilibrium: dict[str, Any],
    study: Any,
) -> dict[str, Any]:
    """Step ``summarise``: the results' study part (levels, fit, headline metrics) and what it
    supports: whether the fit is interpretable, and the design's power (see
    :mod:`~synthbias.studies.equilibrium.summary`); ``study`` is the ``study:`` section."""
    return steps.timed("summarise", partial(_summary, levels, equilibrium, study))


def _summary(levels: list[dict[str, Any]], equilibrium: dict[str, Any], study: Any) -> dict:
    out: dict[str, Any] = {
        "fit_metric": study.fit_metric,
        "chains": study.chains,
        "inference": study.inference,
        "fit_from": study.fit_from,
        "seed_source": study.seed_source,
        "levels": levels,
        "seed_shares": seed_shares([lv["level"] for lv in levels], study.n),
        "equilibrium": equilibrium,
        "headline_metrics": headline_metrics(study.fit_metric),
    }
    out["interpretation"] = interpretation(out, study)
    out["power"] = power_summary(out, study)
    return out


def headline_metrics(fit_metric: str) -> list[str]:
    """The metrics the console and the report lead with, the fit metric first."""
    return list(
        dict.fromkeys(
            [
                fit_metric,
                *DIRECTION_METRICS,
                OFF_TOPIC_METRIC,
                "rule.gender.signed_bias",
                "embedding.gender.anchor_bias",
            ]
        )
    )
