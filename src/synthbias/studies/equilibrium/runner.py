"""Run the equilibrium study from a config and store results.

The study writes each generation's corpus as soon as it exists. A rerun of the same config in
the same folder reuses corpora already written (the folder's ``manifest.json`` records the
config's content hash), so an interrupted run resumes instead of starting over, and a changed
config never silently mixes with old corpora.

The steps themselves (seed, generate, measure, fit, summarise) are in
:mod:`~synthbias.studies.equilibrium.steps`; here the config is read once and each step gets only
the values it needs, the run folder is prepared and the outputs are written (``report``).

``study.workers`` > 1 (or ``scale: ray``) generates the chains in worker processes, each (level,
chain) pair one unit (:mod:`~synthbias.studies.equilibrium.chains`); the corpora they store are
then loaded here and measured and fitted exactly as when they are generated inline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthbias.core.cpu import run_environment
from synthbias.core.hashing import stable_hash
from synthbias.core.parallel import run_units, threads_per_worker
from synthbias.core.records import Record
from synthbias.core.registry import BACKENDS
from synthbias.core.steps import Steps
from synthbias.core.store import RunStore, lock_run_folder, write_json, write_table
from synthbias.core.version import __version__
from synthbias.generate.factory import make_backend
from synthbias.generate.openai_http import check_reachable
from synthbias.generate.protocol import Backend
from synthbias.report.html import write_run_report
from synthbias.studies.equilibrium.chains import (
    ChainJob,
    ChainResult,
    chain_generations,
    chain_workers,
    generation_settings,
    open_generator,
    parallel_info,
    pending_chains,
    run_chain,
)
from synthbias.studies.equilibrium.generation import (
    PILOT_FACTOR,
    chain_corpus_path,
    relabel_corpus,
)
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.steps import (
    LazyBackend,
    LevelFit,
    downstream,
    fit,
    measure,
    pilot,
    seed_corpus,
    summarise,
)
from synthbias.studies.equilibrium.summary import OFF_TOPIC_METRIC

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

ProgressFactory = Callable[[str, int], Any]
#: What callers import from here (tests, the loop): the runner, the generation settings and the
#: backend factory the generator is built with.
__all__ = ["generation_settings", "make_backend", "run_equilibrium"]
#: Backends whose ``model_path`` is a local file (checked before the run writes anything).
LOCAL_MODEL_BACKENDS = ("llamacpp", "hf")


#: Equilibrium settings the stored corpora do not depend on: a generation's texts depend only
#: on the earlier generations of its chain, so adding levels, chains or generations, or
#: changing how corpora are measured, fitted and judged, reuses every stored corpus.
CORPUS_INDEPENDENT = {
    "name": None,
    "study": {"levels", "generations", "chains", "fit_metric", "fit_ci"}
    | {"max_off_topic", "min_pairings", "inference", "fit_from", "workers", "scale"},
    "measure": {"embedding", "downstream", "downstream_occupations", "downstream_templates"}
    | {"n_resamples", "ci_level"},
    "generator": {"cache", "n_threads"},
    "inheritance": None,
    "mitigation_study": None,
    "tasks": None,
}


def corpus_key(config: ExperimentConfig) -> str:
    """Hash of the equilibrium settings the stored corpora depend on (see
    :data:`CORPUS_INDEPENDENT`)."""
    data = config.model_dump(mode="json")
    # the debiased generator is tuned on every level's seed corpus: its texts depend on levels
    keep = {"levels"} if "debiased_finetune" in config.study.mitigation.strategies else set()
    for section, fields in CORPUS_INDEPENDENT.items():
        if fields is None:
            data.pop(section, None)
        else:
            for f in fields - keep:
                data[section].pop(f, None)
    # the mixing settings at their defaults (today's pure recursion) keep the stored corpora's keys
    for f, default in MIXING_DEFAULTS.items():
        if data["study"].get(f) == default:
            data["study"].pop(f, None)
    return stable_hash(data)


#: ``study`` fields added with the mixing regimes (issue 31), with the values under which a run
#: is today's pure recursion; ``loop`` only steers ``kind: equilibrium_loop``.
MIXING_DEFAULTS: dict[str, Any] = {
    "real_share": 0.0,
    "regime": "replace",
    "loop": {"real_shares": [0.0, 0.25, 0.5], "regimes": ["replace", "accumulate"]}
    | {"calibration_levels": [], "window": 3},
}


@lock_run_folder("out")
def run_equilibrium(
    config: ExperimentConfig,
    out: str | Path,
    backend: Backend | None = None,
    measurer: GenderMeasurer | None = None,
    progress: ProgressFactory | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Run the recursive-generation equilibrium study and write its output folder.

    The steps (:mod:`~synthbias.studies.equilibrium.steps`): ``seed`` every chain of every
    level, ``generate`` each chain's generations from the one before, ``measure`` each level
    over its chains (and ``downstream``, the pronoun probe, when configured), ``fit`` the bias
    map, ``summarise`` what the numbers support, ``report``.

    Output: ``corpora/level-*/[chain-*/]gen-*.jsonl`` (texts with provenance; chain 0 directly
    under the level), ``results.json`` (per level and generation every metric with CI, the
    direction metrics over chains with cluster-bootstrap CIs, off-topic share and pairing counts,
    ``seed_shares`` (the share generation 0 realises at each level: b0 exactly only when n·b0
    is a whole number), the equilibrium fit, whether it is interpretable and why not, the
    design's power),
    ``results.csv`` and ``results.parquet`` (a tidy table), ``bias_by_generation.png``,
    ``report.html``.

    ``study.workers`` > 1 generates the chains not yet stored on a local process pool (``scale:
    ray``: on Ray), one unit per (level, chain), each worker with its own generator built from
    the config; ``results["parallel"]`` says how they ran. A ``backend`` object (or a measurer
    of another class) cannot be sent to a worker: then the chains are generated here, with a
    logged note (:func:`~synthbias.studies.equilibrium.chains.chain_workers`).
    """
    out = Path(out)
    check_generator(config, out, backend)
    _prepare_folder(out, config, resume)
    study, mc = config.study, config.measure
    measurer = measurer or GenderMeasurer(mc)
    vocab = measurer.seed_vocabulary()
    t0 = time.perf_counter()
    steps = Steps(resume=resume)
    chains = range(study.chains)
    chain0_seeds: list[list[Record]] = []  # filled below, before the generator is opened
    generator = LazyBackend(backend, partial(open_generator, config, out, chain0_seeds))
    settings = generation_settings(config, measurer, vocab)
    model_seeds = study.seed_source == "model"
    total = len(study.levels) * study.chains * study.generations * study.n
    total += study.chains * PILOT_FACTOR * study.n if model_seeds else 0
    bar = progress("generating", total) if progress else None
    tick = bar.update if bar else None
    relabel = None
    if model_seeds:  # every chain's pilot, written by the model, relabelled to each level
        pilots = {r: pilot(steps, out, r, generator, settings, tick) for r in chains}
        relabel = partial(_relabel, pilots, measurer, study.n, config.seed)
    seeds = {
        (level, r): seed_corpus(
            steps,
            out,
            level,
            r,
            n=study.n,
            vocab=vocab,
            seed=config.seed,
            remainder=study.seed_remainder,
            check=measurer.check_seed_corpus,
            relabel=relabel,
        )
        for level in study.levels
        for r in chains
    }
    chain0_seeds.extend(seeds[level, 0] for level in study.levels)
    # chains whose corpora are not all stored: on worker processes when study.workers asks
    pending = pending_chains(out, study)
    workers, inline_note = chain_workers(study, len(pending), backend, measurer)
    in_workers: set[tuple[float, int]] = set()
    opened: dict[str, Any] = {}
    if pending and inline_note is None and (workers > 1 or study.scale == "ray"):
        opened = _generate_in_workers(
            config, out, pending, workers, resume, measurer, generator, steps, tick
        )
        in_workers = set(pending)
    levels_out: list[dict[str, Any]] = []
    fit_data: list[LevelFit] = []
    chain0: dict[float, list[list[Record]]] = {}  # chain 0 of each level, for the probe
    loaded = Steps(resume=True)  # what the workers stored is loaded here, not counted again
    for level in study.levels:
        by_chain = [
            chain_generations(
                loaded if (level, r) in in_workers else steps,
                out,
                level,
                r,
                seeds[level, r],
                study.generations,
                generator,
                settings,
                None if (level, r) in in_workers else tick,
            )
            for r in chains
        ]
        level_out, level_fit = measure(
            steps,
            level,
            by_chain,
            measurer,
            fit_metric=study.fit_metric,
            seed=config.seed,
            n_resamples=mc.n_resamples,
            ci_level=mc.ci_level,
            inference=study.inference,
        )
        levels_out.append(level_out)
        fit_data.append(level_fit)
        chain0[level] = by_chain[0]
    if bar:
        bar.close()
    if mc.downstream != "off":
        generator.close()  # free the generator before fine-tuning
        downstream(steps, levels_out, chain0, out, mc, seed=config.seed)
    model = _model_info(generator.backend, out, opened)
    equilibrium = fit(
        steps,
        fit_data,
        study.levels,
        metric=study.fit_metric,
        first_generation=study.fit_from,
        ci_level=mc.ci_level,
        n=study.n,
    )
    summary = summarise(steps, levels_out, equilibrium, study)
    results = _results(config, model, steps, time.perf_counter() - t0, summary)
    results["parallel"] = parallel_info(study, workers if in_workers else 1, inline_note)
    report(steps, results, out, t0)
    return results


def _results(
    config: ExperimentConfig,
    model: dict[str, Any],
    steps: Steps,
    seconds: float,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """``results.json``: what ran (config, model, environment, timing, steps), then the study's
    ``summary``."""
    return {
        "kind": "equilibrium",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "model": model,
        "environment": run_environment(),
        "timing": {
            "total_seconds": round(seconds, 2),
            "generation_seconds": round(steps.seconds("generate"), 2),
            "step_seconds": {
                name: round(steps.seconds(name), 2)
                for name in ("seed", "generate", "measure", "downstream", "fit", "summarise")
            },
            # every generated corpus has exactly n texts (before a mitigation adds any)
            "texts_generated": steps.counts["generate"].ran * config.study.n,
        },
        "steps": steps.summary(),  # taken before ``report``, which writes it
        **summary,
    }


def _prepare_folder(out: Path, config: ExperimentConfig, resume: bool) -> None:
    """Create ``out``; without ``resume`` drop its stored corpora; check (or write) its manifest:
    a config whose corpora differ from the stored ones is refused — unless the folder holds no
    step's work (a start that failed before its first generated corpus): then its seed corpora
    and manifest are dropped and the new config takes the folder."""
    out.mkdir(parents=True, exist_ok=True)
    if not resume or not holds_work(out):
        for old in (out / "corpora").glob("level-*/**/gen-*.jsonl"):
            old.unlink()
        if resume:
            for stale in ("manifest.json", "config.yaml", "model.json"):
                (out / stale).unlink(missing_ok=True)
    RunStore(out).check_manifest(
        config.content_hash(), __version__, resume, config.to_yaml(), reuse_key=corpus_key(config)
    )


def holds_work(out: Path) -> bool:
    """Whether ``out`` holds a step's work worth keeping: a generated corpus (generation ≥ 1) or
    results. Seed corpora alone are rebuilt from the config in moments, so they pin nothing."""
    if (out / "results.json").exists() or any((out / "corpora" / "pilot").glob("*.jsonl")):
        return True
    return any(f.name != "gen-0.jsonl" for f in (out / "corpora").glob("level-*/**/gen-*.jsonl"))


def check_generator(config: ExperimentConfig, out: Path, backend: Backend | None) -> None:
    """Before the run writes anything, unless every corpus is already stored (then the
    generator is never opened): a local model file the config names must exist (else a
    :class:`FileNotFoundError` naming ``generator.model_path``), and a server the config points
    at must accept connections (else :class:`BackendUnavailableError` naming the URL)."""
    gen = config.generator
    if backend is not None:
        return
    kind = BACKENDS.canonical(gen.backend)
    local = kind in LOCAL_MODEL_BACKENDS and gen.model_path
    missing = local and not Path(gen.model_path).expanduser().exists()
    server = kind == "openai" and gen.base_url and gen.ray is None
    if not (missing or server):
        return
    study = config.study
    stored = all(
        chain_corpus_path(out, level, r, k).exists()
        for level in study.levels
        for r in range(study.chains)
        for k in range(1, study.generations + 1)
    )
    if stored:
        return
    if missing:
        raise FileNotFoundError(
            f"generator.model_path: no such file: {gen.model_path} (nothing was written to {out})"
        )
    check_reachable(gen.base_url)


def _generate_in_workers(
    config: ExperimentConfig,
    out: Path,
    pending: list[tuple[float, int]],
    workers: int,
    resume: bool,
    measurer: GenderMeasurer,
    generator: LazyBackend,
    steps: Steps,
    tick: Callable[[int], None] | None,
) -> dict[str, Any]:
    """Generate the ``pending`` chains on ``workers`` processes (or Ray: ``study.scale``), each
    (level, chain) pair one unit (:func:`~synthbias.studies.equilibrium.chains.run_chain`);
    their step counts join the run's. Returns the generator a worker opened (``backend``,
    ``model_id``; empty when none had to)."""
    study = config.study
    if "debiased_finetune" in study.mitigation.strategies:
        generator.get()  # tune the generator's adapter once, here; the workers load it
    generator.close()  # free this process's generator (opened for a pilot or the adapter)
    jobs = [
        ChainJob(config=config, out=out, level=level, chain=r, resume=resume, measure=measurer.cfg)
        for level, r in pending
    ]

    def done(_: int, result: ChainResult) -> None:
        if tick is not None:
            tick(result.texts)

    results = run_units(
        run_chain,
        jobs,
        workers=workers,
        threads=threads_per_worker(workers),
        scale=study.scale,
        on_done=done,
    )
    for r in results:
        steps.merge(r.counts)
    return next((r.model for r in results if r.model), {})


def _relabel(
    pilots: dict[int, list[Record]],
    measurer: GenderMeasurer,
    n: int,
    seed: int,
    level: float,
    chain: int,
) -> list[Record]:
    """Generation 0 of ``chain`` at ``level`` from its pilot texts (``seed_source: model``)."""
    return relabel_corpus(
        pilots[chain],
        lambda text: measurer.rule.score_text(text).label,
        measurer.swap_gender,
        level,
        n,
        seed=seed,
        chain=chain,
    )


def _model_info(
    backend: Backend | None, out: Path, opened: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The generator's backend and model id, kept in ``model.json``: a run that resumed every
    corpus never opens the generator and reads there which model wrote them. ``opened``: the
    one a worker process opened, when this process did not."""
    model_file = out / "model.json"
    if backend is not None:
        opened = {"backend": backend.name, "model_id": backend.model_id}
    if opened:
        write_json(model_file, opened)
        return dict(opened)
    if model_file.exists():
        return json.loads(model_file.read_text())
    return {}


def report(steps: Steps, results: dict[str, Any], out: Path, t0: float | None = None) -> None:
    """Step ``report``: ``results.json``, the tidy table (``results.csv``, ``results.parquet``),
    ``bias_by_generation.png`` and ``report.html``. With ``t0`` (the run's start), the total
    time in ``results["timing"]`` is set afterwards, so it includes the fit and the report
    (results.json is rewritten with it)."""
    steps.timed("report", partial(_write_outputs, results, out))
    if t0 is not None:
        timing = results["timing"]
        timing["total_seconds"] = round(time.perf_counter() - t0, 2)
        timing.setdefault("step_seconds", {})["report"] = round(steps.seconds("report"), 2)
        write_json(out / "results.json", results)


def _write_outputs(results: dict[str, Any], out: Path) -> None:
    from synthbias.studies.equilibrium.plots import plot_trajectories  # matplotlib: on use

    write_json(out / "results.json", results)
    write_table(results_table(results), out / "results.csv")
    plot_trajectories(results, out / "bias_by_generation.png")
    write_table(results_table(results), out / "results.parquet")
    write_run_report(out)


def results_table(results: dict[str, Any]):
    """Tidy table: one row per level, generation and metric."""
    import pandas as pd

    rows = []
    for lv in results["levels"]:
        for g in lv["generations"]:
            for name, m in g["metrics"].items():
                ci = m.get("ci") or {}
                rows.append(
                    {
                        "level": lv["level"],
                        "generation": g["generation"],
                        "metric": name,
                        "value": m["value"],
                        "ci_low": ci.get("low"),
                        "ci_high": ci.get("high"),
                        "pct_change": g["pct_change"].get(name),
                        "n": g["n"],
                    }
                )
            off = g.get("off_topic_share")
            if off:
                ci = off.get("ci") or {}
                rows.append(
                    {
                        "level": lv["level"],
                        "generation": g["generation"],
                        "metric": OFF_TOPIC_METRIC,
                        "value": off.get("value"),
                        "ci_low": ci.get("low"),
                        "ci_high": ci.get("high"),
                        "pct_change": None,
                        "n": g["n"],
                    }
                )
    return pd.DataFrame(rows)
