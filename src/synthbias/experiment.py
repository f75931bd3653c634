"""Run experiments from a config and store results.

The equilibrium study writes each generation's corpus as soon as it exists. A rerun of the same
config in the same folder reuses corpora already written (the folder's ``manifest.json`` records
the config's content hash), so an interrupted run resumes instead of starting over, and a changed
config never silently mixes with old corpora.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.config import ExperimentConfig, MeasureConfig
from synthbias.core.store import (  # re-exported: older code imports these from here
    RunStore,
    corpus_path,
    lock_run_folder,
    write_json,
    write_table,
)
from synthbias.core.store import atomic_write_text as _atomic_write_text  # noqa: F401
from synthbias.core.version import __version__
from synthbias.corpus import Record, read_jsonl, write_jsonl
from synthbias.dynamics import (
    SeedVocabulary,
    build_seed_corpus,
    fit_equilibrium,
    next_generation,
    pct_change,
)
from synthbias.generate.factory import make_backend
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.result import MetricResult

ProgressFactory = Callable[[str, int], Any]


@dataclass
class GenderMeasurer:
    """Rule-based and (optionally) embedding gender metrics on one corpus."""

    cfg: MeasureConfig
    encoder: Any = None

    def __post_init__(self) -> None:
        from synthbias.measure.rules import GenderRuleScorer

        r = self.cfg.rule
        self.rule = GenderRuleScorer(
            lo=r.male_coded_max_pct, hi=r.female_coded_min_pct, name_threshold=r.name_threshold
        )
        self.embedding = None
        if self.cfg.embedding:
            from synthbias.measure.embedding import EmbeddingGenderScorer, Encoder

            self.encoder = self.encoder or Encoder()
            self.embedding = EmbeddingGenderScorer(self.encoder)

    def measure(self, texts: list[str], seed: int = 0) -> dict[str, MetricResult]:
        out: dict[str, MetricResult] = {}
        nr = self.cfg.n_resamples
        for name, res in self.rule.measure(texts, n_resamples=nr, seed=seed).items():
            out[f"rule.{name}"] = res
        if self.embedding is not None:
            for name, res in self.embedding.measure(texts, n_resamples=nr, seed=seed).items():
                out[f"embedding.{name}"] = res
        return out

    def seed_vocabulary(self, n_names: int = 60) -> SeedVocabulary:
        """Gender-coded occupations and unambiguous names, as the rule metric sees them.

        Every occupation and name is checked against the scorer itself, so a generation-0 corpus
        built from them scores exactly its intended level.
        """
        return seed_vocabulary_for(self.rule, n_names=n_names)


def seed_vocabulary_for(rule: Any, n_names: int = 60) -> SeedVocabulary:
    """Build the seed vocabulary from a ``GenderRuleScorer`` (occupations by code, top names)."""
    from synthbias.measure.rules import FEMALE_CODED, MALE_CODED

    occupations = []
    for occ in rule.axis.occupations:
        code = rule.codes[occ.name]
        if code not in (MALE_CODED, FEMALE_CODED):
            continue
        gender = "male" if code == MALE_CODED else "female"
        s = rule.score_text(f"The {occ.name} said {'he' if gender == 'male' else 'she'} was fine.")
        if s.label == "stereotypical":
            occupations.append((occ.name, gender))
    names: dict[str, list[str]] = {"male": [], "female": []}
    table = rule.axis.names
    if table is not None:
        ranked = sorted(table, key=lambda info: -info.total_freq)
        for info in ranked:
            g = table.gender(info.name, rule.name_threshold)
            if g not in names or len(names[g]) >= n_names:
                continue
            name = info.name[:1].upper() + info.name[1:].lower()
            s = rule.score_text(f"{name} works here.")
            if (s.male, s.female) == ((1, 0) if g == "male" else (0, 1)):
                names[g].append(name)
    if not occupations:
        raise ValueError("no gender-coded occupations at these thresholds")
    return SeedVocabulary(occupations=occupations, names=names)


def _check_manifest(out: Path, config: ExperimentConfig, resume: bool) -> None:
    RunStore(out).check_manifest(config.content_hash(), __version__, resume, config.to_yaml())


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

    Output: ``corpora/level-*/gen-*.jsonl`` (texts with provenance), ``results.json`` (every metric
    with CI and % change from generation 0 per level and generation, plus the equilibrium fit),
    ``results.csv`` and ``results.parquet`` (the same as a tidy table), ``bias_by_generation.png``,
    ``report.html``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        for old in (out / "corpora").glob("level-*/gen-*.jsonl"):
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
    per_sample_for_fit: list[list[np.ndarray]] = []
    gen_seconds = 0.0
    n_generated = 0
    total = len(study.levels) * study.generations * study.n
    bar = progress("generating", total) if progress else None
    from synthbias.mitigate import recursive

    prompt_name = recursive.generation_prompt(study)
    seeds: dict[float, list[Record]] = {}
    all_corpora: dict[float, list[list[Record]]] = {}
    for level in study.levels:
        path0 = corpus_path(out, level, 0)
        if resume and path0.exists():
            seeds[level] = read_jsonl(path0)
        else:
            seeds[level] = build_seed_corpus(level, study.n, vocab, seed=config.seed)
            write_jsonl(seeds[level], path0)
    for level in study.levels:
        corpora: list[list[Record]] = [seeds[level]]
        for k in range(1, study.generations + 1):
            path = corpus_path(out, level, k)
            if resume and path.exists():
                recs = read_jsonl(path)
                if bar:
                    bar.update(len(recs))
            else:
                if backend is None:
                    backend = recursive.mitigated_generator(config, out, list(seeds.values()))
                if backend is None:
                    backend = make_backend(config.generator, seed=config.seed, run_dir=out)
                t_gen = time.perf_counter()
                recs = next_generation(
                    corpora[-1],
                    backend,
                    params,
                    n=study.n,
                    generation=k,
                    k_shots=study.k_shots,
                    prompt=prompt_name,
                    seed=config.seed,
                    chunk_size=config.generator.batch_size,
                    on_progress=bar.update if bar else None,
                )
                gen_seconds += time.perf_counter() - t_gen
                n_generated += len(recs)
                if study.mitigation.strategies:
                    write_jsonl(recs, path.with_name(f"raw-{path.name}"))  # unmitigated
                    recs = recursive.after_generation(recs, study, seed=config.seed + k)
                write_jsonl(recs, path)
            corpora.append(recs)
        gens_out, level_samples = _measure_level(corpora, measurer, config, study.fit_metric)
        per_sample_for_fit.append(level_samples)
        levels_out.append({"level": level, "generations": gens_out})
        all_corpora[level] = corpora
    if bar:
        bar.close()
    if config.measure.downstream != "off":
        if backend is not None and hasattr(backend, "close"):
            backend.close()  # free the generator before fine-tuning
        _add_downstream(levels_out, all_corpora, config, out)
    model_file = out / "model.json"
    if backend is not None:
        backend_info = {"backend": backend.name, "model_id": backend.model_id}
        write_json(model_file, backend_info)
    elif model_file.exists():  # everything resumed: the model that wrote the corpora
        backend_info = json.loads(model_file.read_text())
    n_transitions = len(study.levels) * study.generations
    if n_transitions >= 2:
        equilibrium = fit_equilibrium(
            per_sample_for_fit,
            method=study.fit_ci,
            n_resamples=config.measure.n_resamples,
            level=config.measure.ci_level,
            seed=config.seed,
        ).to_dict()
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
        "environment": {"python": platform.python_version(), "platform": platform.platform()},
        "timing": {
            "total_seconds": round(time.perf_counter() - t0, 2),
            "generation_seconds": round(gen_seconds, 2),
            "texts_generated": n_generated,
        },
        "fit_metric": study.fit_metric,
        "levels": levels_out,
        "equilibrium": equilibrium,
    }
    write_json(out / "results.json", results)
    write_table(results_table(results), out / "results.csv")
    from synthbias.report.plots import plot_trajectories

    plot_trajectories(results, out / "bias_by_generation.png")
    write_table(results_table(results), out / "results.parquet")
    from synthbias.report.html import write_run_report

    write_run_report(out)
    return results


def _add_downstream(
    levels_out: list[dict[str, Any]],
    corpora: dict[float, list[list[Record]]],
    config: ExperimentConfig,
    out: Path,
) -> None:
    """The behavioural family: LoRA-tune the embedded model on a corpus and probe its pronoun
    preferences (:func:`synthbias.measure.downstream.downstream_bias`); cached per corpus in
    ``downstream/level-*/gen-*/``. ``measure.downstream: last`` does the last generation only."""
    from synthbias.measure.downstream import (
        default_pronoun_templates,
        downstream_bias,
        select_occupations,
    )

    mc = config.measure
    lo, hi = mc.rule.male_coded_max_pct, mc.rule.female_coded_min_pct
    occupations = select_occupations(lo=lo, hi=hi)
    if mc.downstream_occupations:
        half = mc.downstream_occupations // 2
        by = {g: [o for o, og in occupations.items() if og == g][:half] for g in ("female", "male")}
        occupations = {o: g for g, names in by.items() for o in names}
    templates = default_pronoun_templates()[: mc.downstream_templates or None]
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
    corpora: list[list[Record]], measurer: GenderMeasurer, config: ExperimentConfig, fit_metric: str
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    gens_out = []
    samples = []
    base: dict[str, float] = {}
    for k, recs in enumerate(corpora):
        metrics = measurer.measure([r.text for r in recs], seed=config.seed)
        if fit_metric not in metrics:
            raise KeyError(f"fit_metric {fit_metric!r} not measured; have {sorted(metrics)}")
        fm = metrics[fit_metric]
        per = np.asarray(fm.per_sample, dtype=float)
        if len(per) != len(recs) or not np.isclose(per.mean(), fm.value):
            raise ValueError(f"fit_metric {fit_metric!r} is not a mean of per-text scores")
        samples.append(per)
        if k == 0:
            base = {name: m.value for name, m in metrics.items()}
        gens_out.append(
            {
                "generation": k,
                "n": len(recs),
                "n_empty": sum(1 for r in recs if not r.text),
                "metrics": {name: m.to_dict() for name, m in metrics.items()},
                "pct_change": {
                    name: pct_change(m.value, base[name]) for name, m in metrics.items()
                },
            }
        )
    return gens_out, samples


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
    return pd.DataFrame(rows)
