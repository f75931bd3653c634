"""Run the equilibrium study from a config and store results.

The study writes each generation's corpus as soon as it exists. A rerun of the same config in
the same folder reuses corpora already written (the folder's ``manifest.json`` records the
config's content hash), so an interrupted run resumes instead of starting over, and a changed
config never silently mixes with old corpora."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthbias.core.cpu import run_environment
from synthbias.core.hashing import stable_hash
from synthbias.core.records import Record, read_jsonl, write_jsonl
from synthbias.core.steps import Steps
from synthbias.core.store import (  # re-exported: older code imports these from here
    RunStore,
    lock_run_folder,
    write_json,
    write_table,
)
from synthbias.core.store import atomic_write_text as _atomic_write_text  # noqa: F401
from synthbias.core.version import __version__
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.direction import DIRECTION_METRICS, statistic_for
from synthbias.report.html import write_run_report
from synthbias.studies.equilibrium import mitigations as recursive
from synthbias.studies.equilibrium.fit import fit_equilibrium_chains, pct_change
from synthbias.studies.equilibrium.generation import (
    build_seed_corpus,
    chain_corpus_path,
    next_generation,
)
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.summary import (
    interpretation,
    power_summary,
    summarise_generation,
)
from synthbias.studies.probe import downstream_bias, probe_set

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

ProgressFactory = Callable[[str, int], Any]


#: Equilibrium settings the stored corpora do not depend on: a generation's texts depend only
#: on the earlier generations of its chain, so adding levels, chains or generations, or
#: changing how corpora are measured, fitted and judged, reuses every stored corpus.
CORPUS_INDEPENDENT = {
    "name": None,
    "study": {"levels", "generations", "chains", "fit_metric", "fit_ci"}
    | {"max_off_topic", "min_pairings"},
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
    return stable_hash(data)


def _check_manifest(out: Path, config: ExperimentConfig, resume: bool) -> None:
    RunStore(out).check_manifest(
        config.content_hash(), __version__, resume, config.to_yaml(), reuse_key=corpus_key(config)
    )


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

    Output: ``corpora/level-*/[chain-*/]gen-*.jsonl`` (texts with provenance; chain 0 directly
    under the level), ``results.json`` (per level and generation every metric with CI, the
    direction metrics over chains with cluster-bootstrap CIs, off-topic share and pairing counts,
    the equilibrium fit, whether it is interpretable and why not, the design's power),
    ``results.csv`` and ``results.parquet`` (a tidy table), ``bias_by_generation.png``,
    ``report.html``.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in (out / "corpora").glob("level-*/**/gen-*.jsonl"):
            old.unlink()
    _check_manifest(out, config, resume)
    study = config.study
    measurer = measurer or GenderMeasurer(config.measure)
    vocab = measurer.seed_vocabulary()
    t0 = time.perf_counter()
    backend_info: dict[str, Any] = {}
    params = SamplingParams(
        max_tokens=config.sampling.max_tokens,
        temperature=config.sampling.temperature,
        top_p=config.sampling.top_p,
        top_k=config.sampling.top_k,
        seed=config.seed,
    )
    levels_out = []
    fit_data: list[list[list[np.ndarray]]] = []
    n_generated = 0
    chains = range(study.chains)
    total = len(study.levels) * study.chains * study.generations * study.n
    bar = progress("generating", total) if progress else None

    prompt_name = recursive.generation_prompt(study)
    regenerate = study.on_topic == "regenerate"
    seeds: dict[tuple[float, int], list[Record]] = {}
    all_corpora: dict[float, list[list[Record]]] = {}
    steps = Steps(resume=resume)

    def seed_corpus(level: float, r: int) -> list[Record]:
        recs = build_seed_corpus(
            level, study.n, vocab, seed=config.seed, remainder=study.seed_remainder, chain=r
        )
        measurer.check_seed_corpus(recs)
        return recs

    for level in study.levels:
        for r in chains:
            path0 = chain_corpus_path(out, level, r, 0)
            seeds[level, r] = steps.cached(
                "seed", path0, partial(seed_corpus, level, r), read_jsonl, write_jsonl
            )
    for level in study.levels:
        by_chain: list[list[list[Record]]] = []
        for r in chains:
            corpora: list[list[Record]] = [seeds[level, r]]
            for k in range(1, study.generations + 1):
                path = chain_corpus_path(out, level, r, k)

                def generate(
                    parent: list[Record] = corpora[-1], k: int = k, r: int = r, path: Path = path
                ) -> list[Record]:
                    nonlocal backend, n_generated
                    if backend is None:
                        backend = recursive.mitigated_generator(
                            config, out, [seeds[level, 0] for level in study.levels]
                        )
                    if backend is None:
                        backend = make_backend(config.generator, seed=config.seed, run_dir=out)
                    recs = next_generation(
                        parent,
                        backend,
                        params,
                        n=study.n,
                        generation=k,
                        k_shots=study.k_shots,
                        prompt=prompt_name,
                        seed=config.seed,
                        chunk_size=config.generator.batch_size,
                        max_retries=study.on_topic_retries if regenerate else 2,
                        on_progress=bar.update if bar else None,
                        chain=r,
                        accept=measurer.on_topic if regenerate else None,
                        eligible=_on_topic_record if regenerate else None,
                        vocab=vocab,
                    )
                    n_generated += len(recs)
                    if study.mitigation.strategies:
                        write_jsonl(recs, path.with_name(f"raw-{path.name}"))  # unmitigated
                        recs = recursive.after_generation(recs, study, seed=config.seed + k)
                    for rec in recs:
                        rec.meta["on_topic"] = measurer.on_topic(rec.text)
                    return recs

                recs = steps.cached("generate", path, generate, read_jsonl, write_jsonl)
                if bar and steps.last_reused:
                    bar.update(len(recs))
                corpora.append(recs)
            by_chain.append(corpora)
        gens_out, level_fit = steps.timed(
            "measure", partial(_measure_level, by_chain, measurer, config)
        )
        fit_data.append(level_fit)
        levels_out.append({"level": level, "chains": study.chains, "generations": gens_out})
        all_corpora[level] = by_chain[0]
    if bar:
        bar.close()
    if config.measure.downstream != "off":
        if backend is not None and hasattr(backend, "close"):
            backend.close()  # free the generator before fine-tuning
        steps.timed("downstream", lambda: _add_downstream(levels_out, all_corpora, config, out))
    model_file = out / "model.json"
    if backend is not None:
        backend_info = {"backend": backend.name, "model_id": backend.model_id}
        write_json(model_file, backend_info)
    elif model_file.exists():  # everything resumed: the model that wrote the corpora
        backend_info = json.loads(model_file.read_text())
    n_transitions = len(study.levels) * study.generations
    equilibrium: dict[str, Any]
    if n_transitions >= 2:
        try:
            equilibrium = fit_equilibrium_chains(
                fit_data,
                statistic_for(study.fit_metric),
                method=study.fit_ci,
                n_resamples=config.measure.n_resamples,
                level=config.measure.ci_level,
                seed=config.seed,
            ).to_dict()
        except ValueError as exc:
            equilibrium = {"note": f"not fitted: {exc}"}
    else:  # one level, one generation: trajectories are measured, no map can be fitted
        equilibrium = {
            "note": f"not fitted: {n_transitions} transition (levels x generations); need 2"
        }
    results = {
        "kind": "equilibrium",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "model": backend_info,
        "environment": run_environment(),
        "timing": {
            "total_seconds": round(time.perf_counter() - t0, 2),
            "generation_seconds": round(steps.seconds("generate"), 2),
            "texts_generated": n_generated,
        },
        "steps": steps.summary(),
        "fit_metric": study.fit_metric,
        "chains": study.chains,
        "levels": levels_out,
        "equilibrium": equilibrium,
    }
    results["headline_metrics"] = list(
        dict.fromkeys(
            [
                study.fit_metric,
                *DIRECTION_METRICS,
                OFF_TOPIC_METRIC,
                "rule.gender.signed_bias",
                "embedding.gender.anchor_bias",
            ]
        )
    )
    results["interpretation"] = interpretation(results, study)
    results["power"] = power_summary(results, study)
    write_json(out / "results.json", results)
    write_table(results_table(results), out / "results.csv")
    from synthbias.studies.equilibrium.plots import plot_trajectories

    plot_trajectories(results, out / "bias_by_generation.png")
    write_table(results_table(results), out / "results.parquet")

    write_run_report(out)
    return results


def _on_topic_record(rec: Record) -> bool:
    return bool(rec.meta.get("on_topic", True))


def _add_downstream(
    levels_out: list[dict[str, Any]],
    corpora: dict[float, list[list[Record]]],
    config: ExperimentConfig,
    out: Path,
) -> None:
    """The pronoun probe (``probe.gender.*``): LoRA-tune the embedded model on a corpus and
    probe its pronoun preferences (:func:`synthbias.studies.probe.downstream_bias`); cached
    per corpus in ``downstream/level-*/gen-*/``. ``measure.downstream: last`` does the last
    generation only."""

    mc = config.measure
    occupations, templates, lo, hi = probe_set(mc)
    for lv in levels_out:
        level = lv["level"]
        gens = lv["generations"]
        chosen = gens if config.measure.downstream == "all" else gens[-1:]
        for g in chosen:
            k = g["generation"]
            texts = [r.text for r in corpora[level][k] if r.text]
            res = downstream_bias(
                texts,
                out / "downstream" / f"level-{level:g}" / f"gen-{k}",
                seed=config.seed,
                n_resamples=config.measure.n_resamples,
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


def _measure_level(
    by_chain: list[list[list[Record]]], measurer: GenderMeasurer, config: ExperimentConfig
) -> tuple[list[dict[str, Any]], list[list[np.ndarray]]]:
    """Per generation of one level: every metric on the chains' pooled texts, the direction
    metrics and off-topic share over chains (cluster bootstrap), and per chain the per-text
    values the equilibrium fit resamples (``fit[chain][generation]``)."""

    study = config.study
    fit_metric = study.fit_metric
    gens_out = []
    fit: list[list[np.ndarray]] = [[] for _ in by_chain]
    base: dict[str, float] = {}
    for k in range(len(by_chain[0])):
        chain_recs = [corpora[k] for corpora in by_chain]
        pooled = [r.text for recs in chain_recs for r in recs]
        metrics = measurer.measure(pooled, seed=config.seed)
        per_chain = [measurer.per_text(recs, fit_metric, seed=config.seed) for recs in chain_recs]
        for r, values in enumerate(per_chain):
            fit[r].append(values["fit"])
        summary = summarise_generation(
            per_chain,
            fit_metric,
            n_resamples=config.measure.n_resamples,
            level=config.measure.ci_level,
            seed=config.seed + k,
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
                "n": len(pooled),
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


OFF_TOPIC_METRIC = "generation.off_topic_share"


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
