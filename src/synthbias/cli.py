"""Command line: ``synthbias run | equilibrium | generate | measure | audit | forecast``, etc."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from synthbias.config import ExperimentConfig, load_config, parse_config
from synthbias.core.progress import ProgressFactory, tqdm_factory
from synthbias.core.records import CorpusError, Record, read_corpus, read_jsonl, write_jsonl
from synthbias.core.registry import BACKENDS, STUDIES
from synthbias.core.schema import ConfigError
from synthbias.core.store import RunLock, RunLockedError, atomic_write_text, write_json
from synthbias.generate import load_backend
from synthbias.generate.protocol import SamplingParams
from synthbias.measure.api import MeasureError, corpus_families, default_families, measure_corpus
from synthbias.measure.likelihood import SUITES, score_benchmark
from synthbias.report.html import ReportError, build_report, write_run_report
from synthbias.report.tracking import TrackingError, log_to_mlflow
from synthbias.studies.audit.runner import AuditError, audit_corpus, parse_budgets
from synthbias.studies.dispatch import run_experiment
from synthbias.studies.equilibrium.generation import next_generation
from synthbias.studies.forecast import FORECAST_FILE, ForecastError, forecast_run
from synthbias.tasks.spec import TaskError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure, simulate and mitigate bias inheritance in LLM-generated training data.",
)
# Wide tables when piped (rich defaults to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
#: A count option: values below 1 are a usage error (exit 2), not an empty run.
Count = Annotated[int, typer.Option(min=1)]


def _progress(quiet: bool) -> ProgressFactory:
    """Progress bars, off with --quiet or when output is piped or redirected."""
    return tqdm_factory(enabled=not quiet)


MLflow = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        help="Also log to MLflow (needs synthbias[mlflow]; URI from --mlflow-uri or "
        "MLFLOW_TRACKING_URI).",
    ),
]
MLflowURI = Annotated[
    str | None, typer.Option("--mlflow-uri", help="MLflow tracking URI, e.g. file:./mlruns.")
]
#: Help of the options that choose metric families / a backend: the registered ones.
FAMILIES_HELP = f"Metric families: {', '.join(corpus_families())}."
BACKENDS_HELP = f"Generator backend: {', '.join(BACKENDS.names())}."


def _log_mlflow(out: Path, uri: str | None) -> None:
    try:
        run_id = log_to_mlflow(out, tracking_uri=uri)
    except TrackingError as exc:
        _fail(str(exc))
    console.print(f"logged to MLflow run {run_id}")


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _print_metrics(
    metrics: dict[str, Any],
    source: Any,
    n_texts: int,
    reference: Any,
    n_ref: int | None,
    max_groups: int,
) -> None:
    """One row per metric: value, CI and the first ``max_groups`` per-group values."""
    title = f"{source} ({n_texts} texts" + (
        f"; reference {reference}, {n_ref} texts)" if n_ref is not None else ")"
    )
    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    for col in ("value", "95% CI", "per group"):
        table.add_column(col)
    for name, m in metrics.items():
        groups = ", ".join(f"{g}={v:.3f}" for g, v in list(m.per_group.items())[:max_groups])
        ci = f"[{_fmt(m.ci.low)}, {_fmt(m.ci.high)}]" if m.ci else "—"
        table.add_row(name, _fmt(m.value), ci, groups)
    console.print(table)


def _run_study(config: ExperimentConfig, out: Path, quiet: bool, overwrite: bool) -> None:
    """Run the study of ``config.kind`` and print the summary its study registered."""
    try:
        results = run_experiment(config, out, progress=_progress(quiet), resume=not overwrite)
    except (FileExistsError, RunLockedError) as exc:
        _fail(str(exc))
    except TaskError as exc:
        _fail(f"config error: {exc}")
    STUDIES.meta(config.kind)["printer"](results, console, out)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment YAML.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/run"),
    overwrite: Annotated[bool, typer.Option(help="Discard corpora of an earlier run.")] = False,
    quiet: Quiet = False,
    mlflow: MLflow = False,
    mlflow_uri: MLflowURI = None,
) -> None:
    """Run an experiment described in a YAML config."""
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    _run_study(cfg, out, quiet, overwrite)
    if mlflow:
        _log_mlflow(out, mlflow_uri)


def _floats(s: str, name: str) -> list[float]:
    try:
        return [float(x) for x in s.split(",") if x.strip()]
    except ValueError:
        _fail(f"--{name}: expected comma-separated numbers, got {s!r}")
    return []


@app.command()
def equilibrium(
    levels: Annotated[
        str, typer.Option(help="Initial bias levels, comma-separated.")
    ] = "0.1,0.3,0.6",
    generations: Annotated[int, typer.Option(min=1, help="Generations after the seed corpus.")] = 3,
    n: Annotated[
        int, typer.Option("--n", min=1, help="Texts per generation, level and chain.")
    ] = 50,
    chains: Annotated[int, typer.Option(min=1, help="Replicate chains per level.")] = 2,
    seed: int = 0,
    k_shots: Annotated[int, typer.Option(min=1, help="Few-shot examples per prompt.")] = 3,
    backend: Annotated[str, typer.Option(help=BACKENDS_HELP)] = "llamacpp",
    model_path: Annotated[Path | None, typer.Option(help="A GGUF file instead of SmolLM2.")] = None,
    batch_size: Count = 32,
    max_tokens: Count = 48,
    temperature: float = 0.8,
    prompt: Annotated[str, typer.Option(help="Prompt template name.")] = "work_occupation_said",
    embedding: Annotated[bool, typer.Option(help="Also measure embedding bias.")] = True,
    n_resamples: Count = 1000,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/equilibrium"),
    overwrite: Annotated[bool, typer.Option(help="Discard corpora of an earlier run.")] = False,
    save_config: Annotated[
        Path | None, typer.Option(help="Also write the config YAML here.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Recursive-generation gender-bias equilibrium study on the embedded model."""
    data = {
        "seed": seed,
        "generator": {
            "backend": backend,
            "batch_size": batch_size,
            "model_path": str(model_path) if model_path else None,
        },
        "sampling": {"max_tokens": max_tokens, "temperature": temperature},
        "study": {
            "levels": _floats(levels, "levels"),
            "generations": generations,
            "n": n,
            "chains": chains,
            "k_shots": k_shots,
            "prompt": prompt,
        },
        "measure": {"embedding": embedding, "n_resamples": n_resamples},
    }
    try:
        cfg = parse_config(data, source="command line")
    except ConfigError as exc:
        _fail(str(exc))
    if save_config:
        atomic_write_text(save_config, cfg.to_yaml())
    _run_study(cfg, out, quiet, overwrite)


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output JSONL.")],
    prompt: Annotated[list[str] | None, typer.Option(help="A user prompt (repeatable).")] = None,
    seed_corpus: Annotated[
        Path | None,
        typer.Option("--from", help="JSONL corpus: write new texts self-instruct style."),
    ] = None,
    n: Annotated[
        int, typer.Option("--n", min=1, help="Completions (per prompt, or from the corpus).")
    ] = 10,
    k_shots: Count = 3,
    seed: int = 0,
    backend: Annotated[str, typer.Option(help=BACKENDS_HELP)] = "llamacpp",
    model_path: Path | None = None,
    max_tokens: Count = 64,
    temperature: float = 0.8,
    top_p: float = 0.95,
    quiet: Quiet = False,
) -> None:
    """Generate texts with a backend: from prompts, or from a corpus (one new generation)."""

    if not prompt and not seed_corpus:
        _fail("give --prompt TEXT (repeatable) or --from CORPUS.jsonl")
    params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    kwargs: dict[str, Any] = {"model_path": str(model_path)} if model_path else {}
    if backend not in BACKENDS:
        _fail(BACKENDS.unknown_message(backend))
    be = load_backend(backend, **kwargs)
    if seed_corpus:
        try:
            prev = read_jsonl(seed_corpus)
        except CorpusError as exc:
            _fail(str(exc))
        gen = max(r.generation for r in prev) + 1
        bar = _progress(quiet)("generating", n)
        recs = next_generation(
            prev,
            be,
            params,
            n=n,
            generation=gen,
            k_shots=k_shots,
            seed=seed,
            on_progress=bar.update,
        )
        bar.close()
    else:
        prompts = [p for p in prompt for _ in range(n)]
        outs = be.generate([[{"role": "user", "content": p}] for p in prompts], params)
        recs = [
            Record(
                id=f"gen-{i:05d}",
                text=o.text.strip(),
                source="synthetic",
                generation=1,
                seed=seed,
                meta={"prompt": p, "finish_reason": o.finish_reason},
            )
            for i, (p, o) in enumerate(zip(prompts, outs, strict=True))
        ]
    write_jsonl(recs, out)
    console.print(f"wrote {len(recs)} texts to {out} ({be.name}: {be.model_id})")


def _families(metrics: str | None, embedding: bool, has_reference: bool) -> list[str] | None:
    """The families named by ``--metrics``; else ``None`` (the defaults), or the defaults
    without ``embedding`` under ``--no-embedding``."""
    if metrics:
        return [f.strip() for f in metrics.split(",") if f.strip()]
    if not embedding:
        return default_families(has_reference, exclude=("embedding",))
    return None


@app.command()
def measure(
    file: Annotated[Path, typer.Argument(help="Corpus: JSONL, CSV, TSV or Parquet.")],
    axes: Annotated[str, typer.Option(help="Bias axes, comma-separated.")] = "gender",
    reference: Annotated[
        Path | None, typer.Option(help="Real reference corpus (enables misalignment factors).")
    ] = None,
    metrics: Annotated[str | None, typer.Option(help=FAMILIES_HELP)] = None,
    text_field: Annotated[str, typer.Option(help="Name of the text column.")] = "text",
    reference_text_field: Annotated[
        str | None, typer.Option(help="Text column of the reference (default: --text-field).")
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Override the file format.")] = None,
    embedding: Annotated[bool, typer.Option(help="Include the embedding family.")] = True,
    n_resamples: Count = 1000,
    seed: int = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write JSON results here.")
    ] = None,
) -> None:
    """Measure bias of a corpus on any axes (every metric with a bootstrap 95% CI)."""

    try:
        recs = read_corpus(file, text_field=text_field, fmt=fmt)
        ref = (
            read_corpus(reference, text_field=reference_text_field or text_field)
            if reference
            else None
        )
    except CorpusError as exc:
        _fail(str(exc))
    families = _families(metrics, embedding, ref is not None)
    try:
        results = measure_corpus(
            [r.text for r in recs],
            axes=[a.strip() for a in axes.split(",") if a.strip()],
            reference=[r.text for r in ref] if ref else None,
            families=families,
            n_resamples=n_resamples,
            seed=seed,
        )
    except MeasureError as exc:
        _fail(str(exc))
    _print_metrics(results, file, len(recs), reference, len(ref) if ref else None, max_groups=8)
    if out:
        write_json(
            out,
            {
                "file": str(file),
                "n": len(recs),
                "reference": str(reference) if reference else None,
                "metrics": {k: v.to_dict(include_samples=True) for k, v in results.items()},
            },
        )
        console.print(f"wrote {out}")


def _backend_for_model(model: str, backend: str, weights: str = "native") -> Any:
    """MODEL is 'embedded' (SmolLM2), a GGUF file or a HF checkpoint folder."""
    path = None if model in ("embedded", "default") else Path(model)
    if path is not None and not path.exists():
        _fail(f"model not found: {path}")
    if backend == "auto":
        backend = "hf" if path is not None and path.is_dir() else "llamacpp"
    if backend == "llamacpp":
        if path is not None and path.is_dir():
            _fail(f"{path} is a folder; the llamacpp backend needs a .gguf file (or --backend hf)")

        kwargs: dict[str, Any] = {"model_path": str(path)} if path else {}
        try:
            return load_backend("llamacpp", weights=weights, **kwargs)
        except ValueError as exc:
            _fail(f"--weights: {exc}")
    if weights != "native":
        _fail(f"--weights {weights} applies to the llamacpp backend only")
    if backend == "hf":
        return load_backend("hf", model_path=path)
    _fail(f"unknown backend {backend!r}; choose auto, llamacpp or hf")


@app.command("bench-bias")
def bench_bias(
    model: Annotated[
        str, typer.Argument(help="'embedded', a GGUF file or a HF folder.")
    ] = "embedded",
    suite: Annotated[str, typer.Option(help="Comma-separated: crows_pairs, stereoset, bbq.")] = (
        "crows_pairs,stereoset,bbq"
    ),
    data: Annotated[
        Path, typer.Option(help="Folder holding crows_pairs/, stereoset/, bbq/.")
    ] = Path("../shared/benchmarks"),
    backend: Annotated[str, typer.Option(help="auto, llamacpp or hf.")] = "auto",
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Score a seeded sample of this many items per suite."),
    ] = None,
    seed: int = 0,
    weights: Annotated[
        str,
        typer.Option(
            help="llamacpp: native (as stored), or f32 / f16: a locally dequantised copy, "
            "about 2x faster scoring on CPU, slightly different scores."
        ),
    ] = "native",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write JSON results here.")
    ] = None,
) -> None:
    """Score a model on real bias benchmarks (CrowS-Pairs, StereoSet, BBQ) from a data folder."""

    suites = [x.strip() for x in suite.split(",") if x.strip()]
    bad = [x for x in suites if x.replace("-", "_") not in SUITES]
    if bad:
        _fail(f"unknown suite {', '.join(bad)}; choose from {', '.join(SUITES)}")
    if not data.is_dir():
        _fail(f"benchmark data folder not found: {data}")
    be = _backend_for_model(model, backend, weights)
    results: dict[str, Any] = {}
    table = Table(title=f"{model} on {data} ({be.name}: {be.model_id})")
    table.add_column("metric", no_wrap=True)
    for col in ("value", "95% CI", "n", "per group"):
        table.add_column(col)
    seconds: dict[str, float] = {}
    for name in suites:
        started = time.perf_counter()
        try:
            res = score_benchmark(be, name, data, limit=limit, seed=seed)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        seconds[name] = round(time.perf_counter() - started, 2)
        for key, m in res.items():
            results[key] = m.to_dict()
            ci = f"[{_fmt(m.ci.low)}, {_fmt(m.ci.high)}]" if m.ci else "—"
            groups = ", ".join(f"{g}={v:.2f}" for g, v in list(m.per_group.items())[:10])
            table.add_row(key, _fmt(m.value), ci, str(m.n), groups)
    console.print(table)
    console.print("scoring time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    if out:
        write_json(
            out,
            {
                "model": model,
                "seconds": seconds,
                "runtime": be.name,
                "model_id": be.model_id,
                "weights": weights,
                "data": str(data),
                "limit": limit,
                "seed": seed,
                "metrics": results,
            },
        )
        console.print(f"wrote {out}")


def _budget_items(values: list[str] | None) -> list[str]:
    """Repeatable KEY=VALUE options; a comma also separates budgets."""
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


@app.command()
def audit(
    synth: Annotated[
        Path,
        typer.Argument(help="Synthetic dataset: JSONL, CSV, TSV, Parquet or a saved HF dataset."),
    ],
    reference: Annotated[
        Path | None, typer.Option(help="Real reference dataset (misalignment factors).")
    ] = None,
    axes: Annotated[str, typer.Option(help="Bias axes, comma-separated.")] = "gender",
    metrics: Annotated[str | None, typer.Option(help=FAMILIES_HELP)] = None,
    max_: Annotated[
        list[str] | None,
        typer.Option(
            "--max",
            help="Budget KEY=VALUE (repeatable): fail when the metric is above VALUE, "
            "e.g. rule.gender.stereotype_rate=0.2.",
        ),
    ] = None,
    min_: Annotated[
        list[str] | None,
        typer.Option("--min", help="Budget KEY=VALUE (repeatable): fail when below VALUE."),
    ] = None,
    text_field: Annotated[str, typer.Option(help="Name of the text column.")] = "text",
    reference_text_field: Annotated[
        str | None, typer.Option(help="Text column of the reference (default: --text-field).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Split of a saved HF DatasetDict.")] = None,
    embedding: Annotated[bool, typer.Option(help="Include the embedding family.")] = True,
    n_resamples: Count = 1000,
    seed: int = 0,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (audit.json, report.html, ...).")
    ] = Path("runs/audit"),
    quiet: Quiet = False,
    mlflow: MLflow = False,
    mlflow_uri: MLflowURI = None,
) -> None:
    """Audit a synthetic dataset: every metric family, misalignment against a reference, a report,
    and a gate (exit 1 when a --max/--min budget is breached)."""

    families = _families(metrics, embedding, reference is not None)
    max_items, min_items = _budget_items(max_), _budget_items(min_)
    cache = out / "measure_cache"
    had_cache = cache.exists()
    try:
        lock = RunLock(out).acquire()  # before measuring: a second audit here is refused at once
    except RunLockedError as exc:
        _fail(str(exc))
    try:
        try:
            parse_budgets(max_items, "max")  # fail on a malformed budget before measuring
            parse_budgets(min_items, "min")
            result = audit_corpus(
                synth,
                reference=reference,
                axes=[a.strip() for a in axes.split(",") if a.strip()],
                families=families,
                max_budgets=max_items,
                min_budgets=min_items,
                text_field=text_field,
                reference_text_field=reference_text_field,
                split=split,
                n_resamples=n_resamples,
                seed=seed,
                progress=_progress(quiet),
                cache=cache,
            )
        except AuditError as exc:
            if not had_cache:  # a rejected audit leaves no folder behind, not even its cache
                shutil.rmtree(cache, ignore_errors=True)
            _fail(str(exc))
        n_ref = len(result.reference.texts) if result.reference else None
        _print_metrics(result.metrics, synth, len(result.source.texts), reference, n_ref, 6)
        result.write(out)
        console.print(
            f"wrote {out}/ (audit.json, results.csv, results.parquet, samples.jsonl, report.html)"
        )
        if mlflow:
            _log_mlflow(out, mlflow_uri)
        for c in result.checks:
            word = {"pass": "PASS", "fail": "FAIL", "undefined": "UNDEFINED"}[c.status]
            console.print(f"{word} {c.reason}", highlight=False, soft_wrap=True)
        if result.checks:
            n_fail = len(result.failures)
            verdict = (
                "passed" if not n_fail else f"FAILED ({n_fail} of {len(result.checks)} breached)"
            )
            console.print(f"gate {verdict}", highlight=False)
            if n_fail:
                raise typer.Exit(1)
    finally:
        lock.release()


@app.command()
def forecast(
    run_dir: Annotated[Path, typer.Argument(help="Folder of an equilibrium run.")],
    generations: Annotated[
        int, typer.Option(min=1, help="Fit on generations 0..N (1 or 2: the first transitions).")
    ] = 2,
    n_resamples: Annotated[
        int | None, typer.Option(min=1, help="Bootstrap resamples (default: the run's config).")
    ] = None,
) -> None:
    """Forecast where bias settles from the first generations of a recursive run; writes
    forecast.json into the run folder."""

    try:
        fc = forecast_run(run_dir, generations=generations, n_resamples=n_resamples)
    except ForecastError as exc:
        _fail(str(exc))
    f = fc["forecast"]
    ci = f.get("ci") or {}
    g = fc["generations_used"]
    table = Table(title=f"{fc['fit_metric']}: observed (gen 0–{g}) and forecast")
    table.add_column("b0", justify="right")
    table.add_column("observed")
    table.add_column("forecast")
    table.add_column("actual (later gens)")
    for t in fc["trajectories"]:
        table.add_row(
            f"{t['level']:g}",
            " → ".join(_fmt(p["value"]) for p in t["observed"]),
            " → ".join(f"g{p['generation']} {_fmt(p['value'])}" for p in t["projected"]) or "—",
            " → ".join(f"g{p['generation']} {_fmt(p['value'])}" for p in t["actual"]) or "—",
        )
    console.print(table)
    verdict = "stable" if f.get("stable") else "no attracting equilibrium (|c| >= 1)"
    console.print(
        f"Forecast from generations 0–{g} ({f['n_points']} transitions): b* = "
        f"{_fmt(f.get('fixed_point'))} [95% CI {_fmt(ci.get('low'))}, {_fmt(ci.get('high'))}] "
        f"from b_(k+1) = {f['a']:.3f} + {f['c']:.3f}·b_k; {verdict}; "
        f"{_fmt(f.get('stable_share'), 2)} of bootstrap fits stable.",
        highlight=False,
    )
    interp = fc.get("run_interpretation") or {}
    if interp and not interp.get("interpretable", True):
        console.print(
            "The run's fit is not interpretable, because "
            + "; ".join(interp.get("reasons") or [])
            + "; the forecast inherits that.",
            highlight=False,
            soft_wrap=True,
        )
    full = fc.get("full_fit")
    if full:
        fci = full.get("ci") or {}
        console.print(
            f"Full run ({full.get('n_points')} transitions): b* = {_fmt(full.get('fixed_point'))} "
            f"[95% CI {_fmt(fci.get('low'))}, {_fmt(fci.get('high'))}]",
            highlight=False,
        )
    if (run_dir / "report.html").exists():
        write_run_report(run_dir)
    console.print(f"wrote {run_dir / FORECAST_FILE}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run or audit folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here (default RUN_DIR/report.html).")
    ] = None,
    max_samples: Annotated[int, typer.Option(min=1, help="Texts in the sample browser.")] = 400,
) -> None:
    """Rebuild report.html of a run or audit folder from its stored results."""

    try:
        path = build_report(run_dir, out=out, max_samples=max_samples)
    except ReportError as exc:
        _fail(str(exc))
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
