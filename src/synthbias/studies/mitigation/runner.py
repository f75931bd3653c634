"""Run every mitigation (and none) where it applies, and measure what mitigation is for.

``kind: mitigation`` runs the recursive (equilibrium) study once per entry of
``mitigation_study.equilibrium`` and the bias-ratio pipeline once per entry of
``mitigation_study.inheritance``, plus an unmitigated baseline of each, all with the same seeds
(so generation k of a data mitigation starts from exactly the baseline's raw texts). Sub-runs live
in ``equilibrium/<strategy>/`` and ``inheritance/<strategy>/``; the bias-ratio runs share one step
cache, so e.g. the real-only adapter is trained once.

**Headline, per strategy: held-out behaviour** (``summary`` rows with ``headline``), at the
level of the claim: the mean over replicates of the paired per-replicate difference strategy -
baseline, with a t-interval (or a two-stage bootstrap) from between-replicate variation
(:mod:`synthbias.stats.replicates`), its 80 %-power MDE and a ``detected`` flag adjusted (Holm
by default) over the family of every strategy x headline family; below 3 replicates the
headline is "not replicated" and carries no interval (``replication`` in results.json).

* Recursive study: a model is LoRA-tuned on the generator's last-generation *output* (the raw
  texts written after the mitigated generations; never the texts a swap or contrastive edit
  produced) for the same number of optimizer steps and batch size in every arm
  (:mod:`synthbias.studies.mitigation.probe`) and probed on held-out pronoun contexts (none
  begins with a generation prompt's opening; results per template too). A replicate is one
  (chain, probe seed) cell: chain c of ``study.chains`` (its corpus in every arm) and training
  seed s of ``mitigation_study.seeds``, the same cell in every arm; its value is the mean over
  probes and levels of mitigated - baseline. Every arm and the untuned model are scored in
  llama.cpp on the native weights.
* Ratio study: the bias metric of each bias-related task, at bias ratios > 0 (training-time
  strategies at mixed ratios 0 < r < 1 only, where real and augmented examples are both present
  and a ``token`` model is evaluated with a tag it saw in training). Every arm has the same
  ``finetune.max_steps`` under ``budget: steps`` and is scored by the same backend and weights
  (:func:`scoring_backend`: a ``token`` arm needs transformers, so then every arm uses it;
  ``scoring`` in results.json). A replicate is one seed of ``inheritance.seeds``; its value is
  the paired difference of the task's headline metric recomputed from both models' stored
  answers (:mod:`synthbias.tasks.paired`), averaged over bias types, arms and ratios.

Secondary (kept, named for what it is): the paired bootstrap over probes and replicate cells
(recursive) or the same task items (whole clusters) and seeds (ratio), pooled over levels by
averaging bootstrap replicates (``difference``/``difference_ci_*``). Every value is oriented
(:mod:`synthbias.studies.mitigation.stats`: positive = towards the stereotype, or towards the
majority group where a metric defines no stereotype). Two reductions, each given only when its
denominator's CI excludes 0: ``reduction_of_added = (b - m) / (b - u)``, of what training on
the baseline data added over the untuned model ``u`` (what a data edit can remove), and
``reduction = (b - m) / b``, of the total bias including the untuned model's own.

**Properties of the training data** (``properties``): corpus metrics (``families``) of the
edited corpus a strategy passes on and of the generator's output, against the baseline's; they
describe data, not a trained model. **Divergence flags** compare oriented changes and fire only
when two metrics' change CIs exclude 0 in opposite directions. **The paper's table**
(``paper_comparison``) sets the equilibrium paper's contrastive figures beside ours, with a
verdict only for our reduction of the paper's quantity (both shown, labelled).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import synthbias.mitigate  # noqa: F401 - registers the strategies read below
from synthbias.core.cpu import run_environment
from synthbias.core.hashing import derive_seed
from synthbias.core.records import read_jsonl
from synthbias.core.registry import MITIGATIONS
from synthbias.core.steps import Steps
from synthbias.core.store import (
    atomic_write_text,
    corpus_path,
    lock_run_folder,
    write_json,
    write_table,
)
from synthbias.core.version import __version__
from synthbias.report.html import write_run_report
from synthbias.stats import two_way
from synthbias.stats.multiplicity import METHOD_NAMES, flag_family
from synthbias.stats.replicates import MIN_REPLICATES, NOT_REPLICATED, replicate_estimate
from synthbias.studies.equilibrium.generation import chain_corpus_path
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import run_equilibrium
from synthbias.studies.inheritance.runner import check_task_sizes, run_inheritance
from synthbias.studies.mitigation import probe, stats
from synthbias.studies.mitigation.summary import HEADLINE_FAMILY, paper_comparison
from synthbias.studies.probe import PREFERENCE
from synthbias.tasks import list_tasks, load_task
from synthbias.tasks.paired import paired_replicates, seed_pairs
from synthbias.train.mix import mix_counts

if TYPE_CHECKING:
    from synthbias.config import ExperimentConfig

ProgressFactory = Callable[[str, int], Any]
Reps = tuple[float, float, np.ndarray, np.ndarray]

#: Strategies that act while training, on augmented examples (compared at mixed ratios only).
TRAINING_TIME = frozenset(MITIGATIONS.names(kind="training"))


#: Strategies whose adapters add tokens: a llama.cpp LoRA cannot grow the vocabulary, so such
#: an adapter is always scored in transformers (studies/inheritance/training.py).
ADDS_TOKENS = frozenset({"token"})
#: How the recursive study's probe models and the untuned model are scored (all arms alike).
PROBE_SCORING = {"backend": "llamacpp", "weights": "native (the GGUF as stored)"}


def _strategies(entry: str) -> list[str]:
    return [] if entry == "none" else entry.split("+")


def scoring_backend(config: ExperimentConfig) -> str:
    """The one backend that scores every arm of the ratio study (``mitigation_study.scoring``).

    ``auto``: ``inheritance.eval_backend``, or transformers for every arm when any arm's adapter
    adds tokens (``token``), which llama.cpp cannot score; ``llamacpp`` with such an arm is an
    error (its arms would be scored on two backends and two sets of weights).
    """
    ms = config.mitigation_study
    tokens = sorted({s for e in ms.inheritance for s in _strategies(e)} & ADDS_TOKENS)
    if ms.scoring == "llamacpp" and tokens:
        raise ValueError(
            f"mitigation_study.scoring: llamacpp cannot score {tokens} (its adapters add "
            "tokens), and every arm of one comparison is scored by the same backend; use "
            "scoring: auto or hf"
        )
    if ms.scoring != "auto":
        return ms.scoring
    return "hf" if tokens else config.inheritance.eval_backend


def arm_scoring(sub: ExperimentConfig, entry: str) -> dict[str, str]:
    """The backend and weights that score one ratio-study arm's models, as the inheritance
    study's loader picks them (an adapter that added tokens always runs in transformers, on
    merged float32 weights; llama.cpp uses ``eval_weights``)."""
    inh = sub.inheritance
    hf = inh.eval_backend == "hf" or bool(ADDS_TOKENS & set(_strategies(entry)))
    if hf:
        return {"backend": "hf", "weights": "f32 (merged in transformers)"}
    if inh.eval_backend == "auto":
        gen = "f32" if inh.eval_weights == "native" else inh.eval_weights
        return {
            "backend": "auto",
            "weights": f"scoring f32 (merged in transformers), generation llama.cpp {gen}",
        }
    return {"backend": "llamacpp", "weights": inh.eval_weights}


def check_scoring(arms: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The scoring settings shared by every arm, with each arm's own; an error if they differ."""
    settings = {tuple(sorted(v.items())) for v in arms.values()}
    if len(settings) > 1:
        raise ValueError(f"the arms would be scored by different backends or weights: {arms}")
    return (dict(next(iter(settings))) if settings else {}) | {"arms": dict(arms)}


def inheritance_steps(config: ExperimentConfig) -> int | None:
    """The ratio study's common step budget (``None`` under ``budget: epochs``).

    ``mitigation_study.steps``, else ``inheritance.finetune.max_steps``, else the baseline's
    ``epochs x ceil(n / batch)`` for its largest training set over the ratios.
    """

    ms, inh = config.mitigation_study, config.inheritance
    if ms.budget != "steps":
        return None
    if ms.steps is not None:
        return ms.steps
    ft = inh.finetune
    if ft.max_steps is not None:
        return ft.max_steps
    n = max(
        sum(mix_counts(r, inh.n_real, inh.n_augmented, inh.mix_mode, inh.n_total))
        for r in inh.ratios
    )
    return ft.epochs * math.ceil(n / ft.batch_size)


def recorded_scoring(root: Path, entries: Sequence[str]) -> dict[str, Any]:
    """The evaluation backend and weights each ratio-study sub-run recorded in its results;
    an error if the arms' backends differ (they were configured alike by :func:`sub_config`)."""
    rec = {}
    for e in entries:
        path = root / e / "results.json"
        if path.is_file():
            rec[e] = json.loads(path.read_text()).get("evaluation") or {}
    backends = {r.get("backend") for r in rec.values() if r}
    if len(backends) > 1:
        raise ValueError(f"the ratio-study arms were scored by different backends: {rec}")
    return {e: {k: r.get(k) for k in ("backend", "weights")} for e, r in rec.items()}


def sub_config(config: ExperimentConfig, pipeline: str, entry: str) -> ExperimentConfig:
    """The config of one sub-run: the pipeline's kind with this strategy entry.

    Recursive study: the sub-run's own downstream family is off (the study trains the held-out
    probe models itself, at equal budgets). Ratio study: every arm gets the same
    ``finetune.max_steps`` under ``budget: steps`` and the same scoring backend
    (:func:`scoring_backend`); a training-time strategy runs at the ratios below 1 only (at r = 1
    no real example, hence no real tag, is ever trained on).
    """
    cfg = config.model_copy(deep=True)
    cfg.kind = pipeline  # type: ignore[assignment]
    cfg.name = f"{config.name}-{pipeline}-{entry}"
    strategies = _strategies(entry)
    if pipeline == "equilibrium":
        cfg.study.mitigation.strategies = strategies  # type: ignore[assignment]
        cfg.measure.downstream = "off"
        return cfg
    cfg.inheritance.mitigation.strategies = strategies  # type: ignore[assignment]
    cfg.inheritance.eval_backend = scoring_backend(config)  # type: ignore[assignment]
    steps = inheritance_steps(config)
    if steps is not None:
        cfg.inheritance.finetune.max_steps = steps
    if TRAINING_TIME & set(strategies):
        ratios = [r for r in cfg.inheritance.ratios if r < 1]
        if not any(0 < r < 1 for r in ratios):
            raise ValueError(
                f"mitigation_study.inheritance: {entry!r} acts on augmented examples during "
                f"training and is compared at mixed ratios (0 < r < 1) only; inheritance.ratios "
                f"{cfg.inheritance.ratios} has none (add e.g. 0.25, 0.5, 0.75)"
            )
        cfg.inheritance.ratios = ratios
    return cfg


@lock_run_folder("out")
def run_mitigation(
    config: ExperimentConfig,
    out: str | Path,
    progress: ProgressFactory | None = None,
    resume: bool = True,
    runners: dict[str, Callable[..., Any]] | None = None,
) -> dict[str, Any]:
    """Run the mitigation study (see the module docstring); returns ``results.json``'s content.

    ``runners`` replaces ``run_equilibrium`` / ``run_inheritance`` and the probe functions
    ``probe`` (:func:`synthbias.studies.mitigation.probe.train_and_probe`) / ``untuned``
    (:func:`synthbias.studies.mitigation.probe.untuned_probe`) (tests pass fakes).
    """

    if config.kind != "mitigation":
        raise ValueError(f"run_mitigation needs kind: mitigation, got {config.kind!r}")
    runners = runners or {}
    ms = config.mitigation_study
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", config.to_yaml())
    # fail on a bad ratio set before anything runs
    inh_cfgs = (
        {e: sub_config(config, "inheritance", e) for e in (["none", *ms.inheritance])}
        if ms.run_inheritance
        else {}
    )
    scoring: dict[str, Any] = {}
    if ms.run_equilibrium:
        scoring["recursive"] = check_scoring(
            {e: dict(PROBE_SCORING) for e in ["none", *ms.equilibrium]}
        ) | {"untuned": dict(PROBE_SCORING)}
    if ms.run_inheritance:
        scoring["ratio"] = check_scoring({e: arm_scoring(c, e) for e, c in inh_cfgs.items()})
    if ms.run_inheritance and "inheritance" not in runners:
        check_task_sizes(config)  # a bad tasks.sizes fails now, not after the recursive study
    headline: list[dict[str, Any]] = []
    properties: list[dict[str, Any]] = []
    reps: dict[tuple[str, str, str, str], list[Reps]] = {}
    replicates: dict[Any, Any] = {}
    budgets: list[dict[str, Any]] = []
    notes: list[str] = []
    sub_runs: dict[str, str] = {}
    arm_steps: dict[str, Any] = {}
    steps = Steps(resume=resume)
    untuned = None
    if ms.run_equilibrium:
        run_eq = runners.get("equilibrium", run_equilibrium)
        for entry in ["none", *ms.equilibrium]:
            d = out / "equilibrium" / entry
            eq_cfg = sub_config(config, "equilibrium", entry)
            sub = steps.timed("arms", partial(run_eq, eq_cfg, d, progress=progress, resume=resume))
            sub_runs[f"equilibrium/{entry}"] = str(d.relative_to(out))
            arm_steps[f"equilibrium/{entry}"] = _sub_steps(sub)
        root = out / "equilibrium"
        properties += equilibrium_properties(root, ms.equilibrium, ms.families, config, reps)
        if config.measure.downstream != "off":
            rows, b, untuned = steps.timed(
                "headline",
                partial(
                    equilibrium_headline,
                    root,
                    ms.equilibrium,
                    config,
                    reps,
                    runners,
                    replicates=replicates,
                ),
            )
            headline += rows
            budgets += b
            notes += untrained_notes(rows)
        else:
            notes.append(
                "no pronoun-probe headline for the recursive study: measure.downstream is off "
                "(turn it on to train the held-out probe models)"
            )
        if config.study.generations < 2 and {"swap", "contrastive"} & {
            s for e in ms.equilibrium for s in _strategies(e)
        }:
            notes.append(
                "swap / contrastive edit a generation after it is written, so the generator's "
                "output differs from the baseline's only from generation 2 on; with "
                f"generations: {config.study.generations} their held-out headline cannot differ"
            )
    if ms.run_inheritance:
        run_inh = runners.get("inheritance", run_inheritance)
        cache = out / "inheritance" / "_cache"
        for entry, cfg in inh_cfgs.items():
            d = out / "inheritance" / entry
            sub = steps.timed(
                "arms", partial(run_inh, cfg, d, progress=progress, resume=resume, cache_dir=cache)
            )
            sub_runs[f"inheritance/{entry}"] = str(d.relative_to(out))
            arm_steps[f"inheritance/{entry}"] = _sub_steps(sub)
        scoring["ratio"]["recorded"] = recorded_scoring(out / "inheritance", list(inh_cfgs))
        rows = compare_inheritance(out / "inheritance", ms.inheritance, config, reps, replicates)
        headline += rows
        budgets += inheritance_budgets(out / "inheritance", ["none", *ms.inheritance])
    summary = summarise(
        reps,
        config.measure.ci_level,
        replicates,
        inference=ms.inference,
        adjust=ms.adjust,
        seed=config.seed,
    )
    templates = per_template_rows(replicates, config.measure.ci_level)
    for srow in summary:  # the untuned model beside every arm (mean over the pooled rows)
        us = [
            h["untuned"]
            for h in headline
            if (h["pipeline"], h["strategy"], h["metric"])
            == (srow["pipeline"], srow["strategy"], srow["metric"])
            and h.get("untuned") is not None
            and math.isfinite(h["untuned"])
        ]
        srow["untuned"] = float(np.mean(us)) if us else math.nan
    flags = stats.divergence_flags(summary)
    paper = paper_comparison(summary)
    import pandas as pd

    write_table(pd.DataFrame(headline), out / "comparison.csv")
    write_table(pd.DataFrame(properties), out / "training_data_properties.csv")
    write_table(pd.DataFrame(summary), out / "summary.csv")
    write_table(pd.DataFrame(budgets), out / "budgets.csv")
    write_table(pd.DataFrame(templates), out / "per_template.csv")
    plots = []
    if summary:
        from synthbias.studies.mitigation.plots import plot_mitigation

        if plot_mitigation(summary, out / "mitigation_comparison.png") is not None:
            plots.append("mitigation_comparison.png")
    results = {
        "kind": "mitigation",
        "synthbias_version": __version__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.content_hash(),
        "sub_runs": sub_runs,
        "environment": run_environment(),
        "steps": steps.summary(),
        "arm_steps": arm_steps,
        "budget": ms.budget,
        "budgets": budgets,
        "untuned": untuned,
        "scoring": scoring,
        "replication": replication_summary(config, summary),
        "per_template": templates,
        "headline": headline,
        "properties": properties,
        "summary": summary,
        "paper_comparison": paper,
        "flags": flags,
        "notes": notes,
        "plots": plots,
    }
    write_json(out / "results.json", results)

    write_run_report(out)
    return results


# --------------------------------------------------------------------------- recursive study


def _sub_steps(results: Any) -> dict[str, Any]:
    """An arm's own step counts (each arm is a cached study: a rerun re-runs only what changed)."""
    return dict(results.get("steps") or {}) if isinstance(results, dict) else {}


def _last_generation(run: Path, level: float) -> int:
    k = 0
    while corpus_path(run, level, k + 1).is_file():
        k += 1
    return k


def _corpus(run: Path, level: float, gen: int, raw: bool, chain: int = 0) -> list[Any]:
    """Generation ``gen`` of ``chain`` as stored (``raw=False``: what a strategy edited and
    passed on) or as the generator wrote it (``raw=True``: ``raw-gen-k.jsonl`` when a strategy
    edited it)."""

    path = chain_corpus_path(run, level, chain, gen)
    raw_path = path.with_name(f"raw-{path.name}")
    return read_jsonl(raw_path if raw and raw_path.is_file() else path)


def _levels(root: Path) -> list[float]:
    base = json.loads((root / "none" / "results.json").read_text())
    return [lv["level"] for lv in base["levels"]]


def _add(reps: dict[Any, list[Reps]], key: tuple[str, str, str, str], r: Reps) -> None:
    reps.setdefault(key, []).append(r)


def replicate_cells(config: ExperimentConfig) -> list[tuple[int, int]]:
    """The recursive study's replicates: every (chain, probe seed) cell, chain ``c`` of
    ``study.chains`` crossed with seed ``s`` of ``mitigation_study.seeds`` (training seed
    :func:`cell_seed`). Cell *i* is the same in every arm (chain c's corpus of that arm, a probe
    model trained with the cell's seed), so arms are paired within it. Cells sharing a chain
    share its corpus draw: the t-interval over cells treats them as independent, which is exact
    with one seed per chain (every cell then an independent draw of corpus and training) and
    otherwise leaves part of the chain's variation out; prefer chains over seeds."""
    return [(c, s) for c in range(config.study.chains) for s in config.mitigation_study.seeds]


def cell_seed(chain: int, seed: int) -> int:
    """The probe model's training seed in replicate cell (chain, seed): ``seed`` itself on
    chain 0 (as single-chain runs always were), a seed derived from both on chain c >= 1, so no
    two cells share a LoRA initialisation and data order."""
    return seed if chain == 0 else derive_seed("mitigation-probe", chain, seed) % (2**31)


def _probe_dir(probes: Path, level: float, entry: str, chain: int, seed: int) -> Path:
    d = probes / f"level-{level:g}" / entry
    return (d / f"chain-{chain}" if chain else d) / f"seed-{seed}"


def equilibrium_headline(
    root: Path,
    entries: Sequence[str],
    config: ExperimentConfig,
    reps: dict[Any, list[Reps]],
    runners: dict[str, Callable[..., Any]] | None = None,
    stratify: bool = True,
    replicates: dict[Any, Any] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Held-out pronoun preference of models tuned on each arm's last-generation output.

    Every arm's probe model trains on the generator's *raw* output of the last generation
    (``raw-gen-k.jsonl`` where a strategy edited the corpus it passed on), never on the edited
    corpus, once per replicate cell (:func:`replicate_cells`: chain x probe seed). Per level and
    cell the paired difference strategy - baseline (mean over probes) is one replicate value;
    ``replicates`` collects them (and per-probe and per-template differences) for the headline
    over replicates (:func:`summarise`). The secondary figure is the paired bootstrap over probes
    and cells: ``stratify`` (default) resamples female- and male-coded probes separately
    (:func:`synthbias.stats.two_way.paired_replicates` ``strata``).

    Returns ``(rows, budgets, untuned)``; one row per strategy and level.
    """

    runners = runners or {}
    replicates = replicates if replicates is not None else {}
    train = runners.get("probe", probe.train_and_probe)
    untuned_fn = runners.get("untuned", probe.untuned_probe)
    ms, mc = config.mitigation_study, config.measure
    lora = probe.lora_settings(ms.probe)
    probes = root / "probes"
    untuned = untuned_fn(probes, mc, config.seed)
    cells = replicate_cells(config)
    rows, budgets = [], []
    for level in _levels(root):
        k = _last_generation(root / "none", level)
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in ["none", *entries]}
        for chain in range(config.study.chains):
            texts = {
                e: [r.text for r in _corpus(root / e, level, k, raw=True, chain=chain)]
                for e in runs
            }
            texts = {e: [t for t in ts if t.strip()] for e, ts in texts.items()}
            n = {e: len(t) for e, t in texts.items()}
            budget = probe.step_budget(n, lora, ms.budget, ms.steps)
            steps_of = {e: b["steps"] for e, b in budget.items()}
            for e, t in texts.items():
                done = [
                    train(
                        t,
                        _probe_dir(probes, level, e, chain, s),
                        lora,
                        steps_of[e],
                        cell_seed(chain, s),
                        mc,
                    )
                    for c, s in cells
                    if c == chain
                ]
                runs[e] += done
                budgets.append(
                    {"pipeline": "equilibrium", "strategy": e, "level": level, "generation": k}
                    | {"chain": chain}
                    | budget[e]
                    | {
                        "steps_trained": sorted({r["steps"] for r in done}),
                        "tokens_trained": [r["n_tokens"] for r in done],
                        "seeds": list(ms.seeds),
                        "train_seeds": [cell_seed(chain, s) for s in ms.seeds],
                    }
                )
        b_mat = probe.as_matrix(runs["none"])
        strata = probe.strata(runs["none"], mc) if stratify else None
        added = _added_by_training(b_mat, untuned, mc.n_resamples, config.seed, mc.ci_level, strata)
        u_mat = _untuned_matrix(untuned, b_mat)
        for e in entries:
            m_mat = probe.as_matrix(runs[e])
            br, mr = two_way.paired_replicates(
                b_mat, m_mat, mc.n_resamples, seed=config.seed, strata=strata
            )
            b, m = float(b_mat.mean()), float(m_mat.mean())
            key = ("equilibrium", e, HEADLINE_FAMILY, PREFERENCE)
            _add(reps, key, (b, m, br, mr))
            extra: dict[str, Any] = {}
            if u_mat is not None:
                _, ur = two_way.paired_replicates(
                    b_mat, u_mat, mc.n_resamples, seed=config.seed, strata=strata
                )
                _add(replicates, ("untuned", *key), (float(u_mat.mean()), ur))
            diff = m_mat - b_mat  # (cells, probes)
            _add(replicates, ("items", *key), diff)
            _add(replicates, ("templates", *key), _template_differences(runs["none"], runs[e]))
            rep = replicate_estimate(diff.mean(axis=1), level=mc.ci_level)
            extra = {
                "n_replicates": len(cells),
                "per_replicate_difference": diff.mean(axis=1).tolist(),
                "replicate_difference": rep.estimate,
                "replicate_ci_low": rep.ci_low,
                "replicate_ci_high": rep.ci_high,
                "replicate_status": rep.status,
            }
            rows.append(
                {
                    "pipeline": "equilibrium",
                    "strategy": e,
                    "family": HEADLINE_FAMILY,
                    "metric": PREFERENCE,
                    "level": level,
                    "generation": k,
                    "trained_on": f"generator output, generation {k} (raw, unedited)",
                    "n_seeds": len(ms.seeds),
                    "n_chains": config.study.chains,
                    "n_probes": int(b_mat.shape[1]),
                    "ci_method": "paired bootstrap over probes and (chain, seed) cells"
                    + (" (probes stratified by coded gender)" if strata else "")
                    + "; secondary to the t-interval over replicates",
                    "steps_baseline": budget["none"]["steps"],
                    "steps_mitigated": budget[e]["steps"],
                    "untuned": untuned["value"],
                }
                | extra
                | added
                | stats.compare(b, m, br, mr, mc.ci_level)
            )
    return rows, budgets, untuned


def _untuned_matrix(untuned: dict[str, Any], b_mat: np.ndarray) -> np.ndarray | None:
    """The untuned model's per-probe values as a (cells, probes) matrix like ``b_mat`` (every
    row the same: the untuned model has no training seed), or None if its probes differ."""
    u = np.asarray(untuned.get("per_sample") or [], dtype=float)
    if u.shape != b_mat.shape[1:]:
        return None
    return np.broadcast_to(u, b_mat.shape).copy()


def _template_differences(
    base: Sequence[dict[str, Any]], arm: Sequence[dict[str, Any]]
) -> dict[str, np.ndarray]:
    """Per probe template: the paired difference arm - baseline of each replicate cell (mean
    over occupations), where both arms' probe runs report ``per_template``."""
    out: dict[str, np.ndarray] = {}
    templates = list((base[0].get("per_template") or {}) if base else {})
    for t in templates:
        try:
            pairs = zip(arm, base, strict=True)
            out[t] = np.array([a["per_template"][t] - b["per_template"][t] for a, b in pairs])
        except (KeyError, TypeError):
            continue
    return out


def untrained_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """A note per level where training on the baseline corpus did not measurably move the probe
    model: there the probe cannot show what any arm's data does (raise the step budget)."""
    out = []
    for level in dict.fromkeys(r["level"] for r in rows):
        r = next(x for x in rows if x["level"] == level)
        lo, hi = r.get("baseline_minus_untuned_ci_low"), r.get("baseline_minus_untuned_ci_high")
        if lo is not None and lo <= 0 <= hi:
            out.append(
                f"level {level:g}: the model tuned on the baseline corpus is not measurably "
                f"different from the untuned model ({r['baseline_minus_untuned']:+.3f} nats "
                f"[{lo:+.3f}, {hi:+.3f}], {r['steps_baseline']} steps): at this budget the probe "
                "cannot show what any arm's data does; raise mitigation_study.steps / probe.epochs"
            )
    return out


def _added_by_training(
    b_mat: np.ndarray,
    untuned: dict[str, Any],
    n_resamples: int,
    seed: int,
    level: float,
    strata: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Baseline-trained minus untuned probe bias, paired over probes (what training added)."""
    u = np.asarray(untuned["per_sample"], dtype=float)
    if u.shape != b_mat.shape[1:]:
        return {}
    ur, br = two_way.paired_replicates(
        u[None, :], b_mat.mean(0, keepdims=True), n_resamples, seed, strata
    )
    c = stats.compare(float(u.mean()), float(b_mat.mean()), ur, br, level)
    return {
        "baseline_minus_untuned": c["difference"],
        "baseline_minus_untuned_ci_low": c["difference_ci_low"],
        "baseline_minus_untuned_ci_high": c["difference_ci_high"],
    }


def equilibrium_properties(
    root: Path,
    entries: Sequence[str],
    families: dict[str, str],
    config: ExperimentConfig,
    reps: dict[Any, list[Reps]],
) -> list[dict[str, Any]]:
    """Corpus metrics of the last generation: the edited corpus a strategy passes on and the
    generator's own output, each against the baseline's (independent resamples of texts; chain
    0's corpora: these describe data, they are not the replicated headline)."""

    measurer = GenderMeasurer(config.measure)
    memo: dict[tuple[str, float, int, bool], dict[str, np.ndarray]] = {}

    def scores(e: str, level: float, k: int, raw: bool) -> dict[str, np.ndarray]:
        key = (e, level, k, raw)
        if key not in memo:
            texts = [r.text for r in _corpus(root / e, level, k, raw)]
            memo[key] = {
                n: np.asarray(r.per_sample, dtype=float)
                for n, r in measurer.measure(texts, seed=config.seed).items()
                if r.per_sample and np.isclose(np.mean(r.per_sample), r.value)
            }
        return memo[key]

    rows = []
    mc = config.measure
    for level in _levels(root):
        k = _last_generation(root / "none", level)
        base = scores("none", level, k, False)
        for e in entries:
            for raw, what in ((False, "edited corpus passed on"), (True, "generator output")):
                mine = scores(e, level, k, raw)
                for fam, metric in families.items():
                    if metric not in base or metric not in mine:
                        continue
                    b0 = float(base[metric].mean())
                    bo = stats.oriented(metric, base[metric], b0)
                    mo = stats.oriented(metric, mine[metric], b0)
                    br, mr = two_way.independent_replicates(bo, mo, mc.n_resamples, config.seed)
                    b, m = float(bo.mean()), float(mo.mean())
                    family = f"{fam} ({what})"
                    _add(reps, ("equilibrium", e, family, metric), (b, m, br, mr))
                    rows.append(
                        {
                            "pipeline": "equilibrium",
                            "strategy": e,
                            "family": family,
                            "metric": metric,
                            "level": level,
                            "generation": k,
                            "section": "properties of the training data",
                            "orientation": stats.orientation(metric).meaning,
                            "ci_method": "independent bootstrap over texts",
                        }
                        | stats.compare(b, m, br, mr, mc.ci_level)
                    )
    return rows


# --------------------------------------------------------------------------- bias-ratio pipeline


def _sub_run(root: Path, entry: str) -> tuple[dict[str, Any], dict[str, Any], dict[Any, str]]:
    """A ratio-study sub-run: its results, its stored task answers per adapter, and the
    adapter of every (bias type, arm, ratio > 0, seed) condition."""
    d = root / entry
    res = json.loads((d / "results.json").read_text())
    records = {}
    for akey, rel in (res.get("eval_files") or {}).items():
        path = d / rel
        if path.is_file():
            records[akey] = json.loads(path.read_text()).get("records", {})
    cond = {
        (c["bias_type"], c.get("arm", ""), c["ratio"], c["seed"]): c["adapter"]
        for c in res.get("conditions", [])
        if c["ratio"] > 0
    }
    return res, records, cond


def _per_seed(
    task: Any,
    items: Sequence[Any],
    records: dict[str, Any],
    keys: Sequence[tuple[Any, ...]],
    b_cond: dict[Any, str],
    m_cond: dict[Any, str],
    name: str,
    seeds: Sequence[int],
    orient: Callable[[float], float],
    item_seed: int,
) -> np.ndarray:
    """Per replicate (seed, in ``seeds`` order): the paired difference strategy - baseline of
    one (bias type, arm, ratio) cell, oriented by ``orient``; NaN where a seed has no pair."""
    out = np.full(len(seeds), math.nan)
    for k in keys:
        pairs = seed_pairs(records, task.name, [(f"b:{b_cond[k]}", f"m:{m_cond[k]}")])
        if not pairs or k[3] not in seeds:
            continue
        vb, vm, _, _ = paired_replicates(task, items, pairs, name, 2, item_seed)
        out[list(seeds).index(k[3])] = orient(vm) - orient(vb)
    return out


def compare_inheritance(
    root: Path,
    entries: Sequence[str],
    config: ExperimentConfig,
    reps: dict[Any, list[Reps]],
    replicates: dict[Any, Any] | None = None,
) -> list[dict[str, Any]]:
    """Oriented task bias (headline) and control-task cost of each strategy vs the baseline.

    Paired: both sub-runs' models at the same bias type, arm, ratio and seeds answered the same
    task items, so each task's headline metric is recomputed from both models' stored answers
    on the same resampled clusters and seeds (:func:`synthbias.tasks.paired.paired_replicates`);
    every metric type (gaps, AUCs, rates) gets a paired CI. One row per strategy, task, bias
    type, arm and ratio, pooled over the seeds. ``replicates`` collects, per strategy and task,
    each seed's paired difference (a replicate: ``inheritance.seeds``) for the headline over
    replicates.
    """
    replicates = replicates if replicates is not None else {}
    seeds = list(config.inheritance.seeds)
    import pandas as pd

    base, b_rec, b_cond = _sub_run(root, "none")
    sizes = {t["name"]: t["size"] for t in base["tasks"]}
    names = list(config.inheritance.tasks) if config.inheritance.tasks else list_tasks()
    tasks = [load_task(t, data_dir=config.tasks.data_dir) for t in names]
    b_df = pd.read_csv(root / "none" / "results.csv")
    untuned = {(r.task, r.metric): r.value for r in b_df[b_df["bias_type"] == "base"].itertuples()}
    n, level = config.measure.n_resamples, config.measure.ci_level
    rows = []
    for entry in entries:
        _, m_rec, m_cond = _sub_run(root, entry)
        shared = [k for k in m_cond if k in b_cond]
        if TRAINING_TIME & set(_strategies(entry)):
            shared = [k for k in shared if k[2] < 1]
        groups = list(dict.fromkeys(k[:3] for k in shared))
        records = {"b:" + k: v for k, v in b_rec.items()} | {"m:" + k: v for k, v in m_rec.items()}
        for task in tasks:
            spec = task.spec
            if spec.bias_related and spec.bias_metric:
                family, name = "task_bias", spec.bias_metric
            elif not spec.bias_related:
                family, name = "control_cost", spec.primary_metric
            else:
                continue
            items = task.items(sizes[task.name], base["config"]["seed"])
            metric = f"{task.name}.{name}"
            for bt, arm, ratio in groups:
                keys = [k for k in shared if k[:3] == (bt, arm, ratio)]
                adapters = [(f"b:{b_cond[k]}", f"m:{m_cond[k]}") for k in keys]
                pairs = seed_pairs(records, task.name, adapters)
                if not pairs:
                    continue
                vb, vm, br, mr = paired_replicates(
                    task, items, pairs, name, n, base["config"]["seed"]
                )
                u = untuned.get((task.name, name), math.nan)
                vb_raw = vb
                if family == "task_bias":
                    u = float(stats.oriented(metric, u, vb))
                    vm, br, mr = (stats.oriented(metric, x, vb) for x in (vm, br, mr))
                    vb = float(stats.oriented(metric, vb, vb))
                    vm = float(vm)
                cmp = stats.compare(vb, vm, br, mr, level)
                if family == "control_cost":
                    cmp |= {"reduction": math.nan, "reduction_status": "n/a (task performance)"}
                _add(reps, ("inheritance", entry, family, metric), (vb, vm, br, mr))
                ref = vb_raw
                orient = (
                    partial(_orient_value, metric, ref)
                    if family == "task_bias"
                    else (lambda x: float(x))
                )
                per_seed = _per_seed(
                    task, items, records, keys, b_cond, m_cond, name, seeds, orient,
                    base["config"]["seed"],
                )  # fmt: skip
                _add(replicates, ("values", "inheritance", entry, family, metric), per_seed)
                rows.append(
                    {
                        "pipeline": "inheritance",
                        "strategy": entry,
                        "family": family,
                        "metric": metric,
                        "bias_type": bt,
                        "arm": arm,
                        "ratio": ratio,
                        "seeds": sorted(k[3] for k in keys),
                        "n_seeds": len(pairs),
                        "n_items": len(items),
                        "untuned": u,
                        "ci_method": "paired bootstrap over the same task items (whole "
                        "clusters) and seeds, recomputed from both models' stored answers",
                    }
                    | cmp
                )
    return rows


def _orient_value(metric: str, baseline_value: float, x: float) -> float:
    return float(stats.oriented(metric, x, baseline_value))


def inheritance_budgets(root: Path, entries: Sequence[str]) -> list[dict[str, Any]]:
    """Steps and examples each ratio-study arm was trained with (from its conditions)."""
    rows = []
    for e in entries:
        res = json.loads((root / e / "results.json").read_text())
        for c in res.get("conditions", []):
            t = c.get("train") or {}
            rows.append(
                {
                    "pipeline": "inheritance",
                    "strategy": e,
                    "bias_type": c["bias_type"],
                    "ratio": c["ratio"],
                    "seed": c["seed"],
                    "budget": res["config"]["mitigation_study"]["budget"],
                    "steps": t.get("steps"),
                    "steps_configured": res["config"]["inheritance"]["finetune"]["max_steps"],
                    "n_examples": t.get("n_examples"),
                    "tokens_trained": t.get("n_tokens"),
                    "batch_size": res["config"]["inheritance"]["finetune"]["batch_size"],
                }
            )
    return rows


# --------------------------------------------------------------------------- summary and paper


#: The family over which the headlines' "detected" flags are adjusted.
TEST_FAMILY = "strategy x headline family (recursive: held-out probe; ratio: each task's bias)"


def summarise(
    reps: dict[tuple[str, str, str, str], list[Reps]],
    level: float = 0.95,
    replicates: dict[Any, Any] | None = None,
    *,
    inference: str = "t",
    adjust: str = "holm",
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per pipeline, strategy, family and metric: the mean over levels (recursive study) or
    over bias types, ratios and seeds (ratio study) with its paired-bootstrap CI from the pooled
    replicates (secondary), and for every headline the mean over replicates of the paired
    per-replicate difference (:func:`headline_over_replicates`), its "detected" flag adjusted
    over the family of all headlines (``adjust``)."""
    replicates = replicates or {}
    out = []
    for key, items in reps.items():
        pipe, strat, fam, metric = key
        row = {
            "pipeline": pipe,
            "strategy": strat,
            "family": fam,
            "metric": metric,
            "headline": fam in (HEADLINE_FAMILY, "task_bias"),
            "orientation": "task performance (+ = better)"
            if fam == "control_cost"
            else stats.orientation(metric).meaning,
        } | stats.pooled(items, level)
        untuned = replicates.get(("untuned", *key))
        if untuned:
            u = float(np.mean([x[0] for x in untuned]))
            ur = np.mean([x[1] for x in untuned], axis=0)
            br = np.mean([r[2] for r in items], axis=0)
            mr = np.mean([r[3] for r in items], axis=0)
            row |= stats.added_reduction(row["baseline"], row["mitigated"], u, br, mr, ur, level)
        row |= headline_over_replicates(replicates, key, level, inference, seed)
        out.append(row)
    head = [r for r in out if r["headline"]]
    flagged = flag_family(head, method=adjust)  # type: ignore[arg-type]
    for r, f in zip(head, flagged, strict=True):
        r.update({k: f[k] for k in ("p_adjusted", "detected", "family_size", "adjustment")})
        r["test_family"] = TEST_FAMILY
    return out


def headline_over_replicates(
    replicates: dict[Any, Any],
    key: tuple[str, str, str, str],
    level: float = 0.95,
    inference: str = "t",
    seed: int = 0,
) -> dict[str, Any]:
    """The mean over replicates of the paired difference strategy - baseline (each replicate's
    value: its mean over levels, or over bias types and ratios), with a t-interval or a
    two-stage bootstrap (replicates, then probes; recursive study only), the 80 %-power MDE and
    the p-value the family adjustment uses; "not replicated" below 3 replicates."""
    levels = replicates.get(("values", *key))
    if levels is None:
        items = replicates.get(("items", *key))
        if items is None:
            return {}
        levels = [x.mean(axis=1) for x in items]
    values = np.mean(np.asarray(levels, dtype=float), axis=0)
    probe_items = replicates.get(("items", *key))
    use = "two_stage" if inference == "two_stage" and probe_items is not None else "t"
    kw: dict[str, Any] = {}
    if use == "two_stage":
        kw["items"] = list(np.mean(np.asarray(probe_items, dtype=float), axis=0))
    res = replicate_estimate(values, method=use, level=level, seed=seed, **kw)  # type: ignore[arg-type]
    return {
        "replicated_difference": res.estimate,
        "replicated_ci_low": res.ci_low,
        "replicated_ci_high": res.ci_high,
        "replicated_se": res.se,
        "replicated_df": res.df,
        "n_replicates": res.n_replicates,
        "inference": res.method,
        "replication_status": res.status,
        "mde_80": res.mde_80,
        "p_value": res.p_value,
        "per_replicate": list(res.per_replicate),
    }


def per_template_rows(replicates: dict[Any, Any], level: float = 0.95) -> list[dict[str, Any]]:
    """Per recursive strategy and probe template: the mean over replicates of the paired
    difference on that template alone (t over replicates; not in the adjusted family)."""
    rows = []
    for key, per_level in replicates.items():
        if key[0] != "templates":
            continue
        _, pipe, strat, fam, metric = key
        templates = list(dict.fromkeys(t for d in per_level for t in d))
        for t in templates:
            values = [d[t] for d in per_level if t in d]
            if len(values) != len(per_level):
                continue
            res = replicate_estimate(np.mean(values, axis=0), level=level)
            rows.append(
                {"pipeline": pipe, "strategy": strat, "metric": metric, "template": t}
                | {
                    "difference": res.estimate,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "n_replicates": res.n_replicates,
                    "status": res.status,
                }
            )
    return rows


def replication_summary(config: ExperimentConfig, summary: Sequence[dict[str, Any]]) -> dict:
    """What the headlines rest on: the replicate units of both pipelines, their number, the
    interval method and the adjusted family."""
    ms = config.mitigation_study
    cells = replicate_cells(config)
    head = [s for s in summary if s.get("headline")]
    sizes = [s.get("family_size") for s in head if s.get("family_size") is not None]
    return {
        "recursive": {
            "n_replicates": len(cells),
            "replicate": "one (chain, probe seed) cell: chain c of study.chains x training seed "
            "s of mitigation_study.seeds, the same cell in every arm (paired)",
            "chains": config.study.chains,
            "seeds": list(ms.seeds),
            "status": "replicated" if len(cells) >= MIN_REPLICATES else NOT_REPLICATED,
        },
        "ratio": {
            "n_replicates": len(config.inheritance.seeds),
            "replicate": "one seed of inheritance.seeds (augmentation draw, mix draw, training "
            "seed), the same seed in every arm (paired)",
            "seeds": list(config.inheritance.seeds),
            "status": "replicated"
            if len(config.inheritance.seeds) >= MIN_REPLICATES
            else NOT_REPLICATED,
        },
        "inference": ms.inference,
        "adjustment": METHOD_NAMES[ms.adjust],
        "family": TEST_FAMILY,
        "family_size": max(sizes, default=0),
        "secondary": "the paired bootstrap over probes and cells (recursive) or task items and "
        "seeds (ratio), pooled over levels: difference / difference_ci_* in the summary",
    }
