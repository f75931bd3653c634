"""Command line: ``synthbias run | equilibrium | generate | measure | audit | forecast | plan``.

Every user mistake is a one-paragraph error and exit status 2, never a traceback: options are
checked against the same limits as the config (derived from its pydantic fields, so the two
cannot disagree), files are read and output folders checked before any model work starts, and a
server that does not answer is named with the option that changes it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from synthbias.api import (
    audit_runner,
    forecasting,
    generate_from_corpus,
    generate_from_prompts,
    measure_api,
    prompt_template,
    seed_records,
)
from synthbias.config import ExperimentConfig, check_inputs, load_config, parse_config
from synthbias.core.progress import ProgressFactory, tqdm_factory
from synthbias.core.records import CorpusError, read_corpus, write_jsonl
from synthbias.core.registry import BACKENDS, STUDIES, Lazy
from synthbias.core.schema import ConfigError
from synthbias.core.store import (
    OutputFolderError,
    RunLock,
    RunLockedError,
    atomic_write_text,
    check_output_folder,
    write_json,
)
from synthbias.generate import ModelNotFoundError, load_backend
from synthbias.generate.config import GeneratorConfig, SamplingConfig
from synthbias.generate.openai_http import BackendUnavailableError, HTTPBackendError
from synthbias.generate.protocol import SamplingParams
from synthbias.measure.config import MeasureConfig
from synthbias.measure.likelihood import SUITES, score_benchmark
from synthbias.measure.scoring import (
    ScoringChoice,
    choose_scoring_backend,
    explicit_choice,
    load_scoring_backend,
)
from synthbias.report.html import ReportError, build_report, write_run_report
from synthbias.report.tracking import TrackingError, log_to_mlflow
from synthbias.studies.dispatch import run_experiment
from synthbias.studies.equilibrium.config import EquilibriumStudyConfig
from synthbias.studies.equilibrium.fit import fixed_point_text, map_text, slope_text
from synthbias.studies.plan import (
    CONVENTION,
    PlanError,
    config_advice,
    plan_rows,
    read_results,
)

#: The task code loads on first use (``measure_api``, ``audit_runner`` and ``forecasting`` too,
#: see :mod:`synthbias.api`), so that ``synthbias --help`` and the light commands stay fast.
tasks_spec = Lazy("synthbias.tasks.spec")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure, simulate and mitigate bias inheritance in LLM-generated training data.",
)
# Wide tables when piped (rich defaults to 80 columns without a terminal).
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def limits(model: type[BaseModel], name: str) -> dict[str, Any]:
    """``min``/``max`` of a typer option from the pydantic field ``model.name`` (its ``ge`` and
    ``le``), so ``--help`` shows, and typer enforces, the limits the config validates. Open
    bounds (``gt``, ``lt``) cannot be typer limits; :func:`limits_text` words them for the help
    and the config's validation enforces them (exit 2 as well)."""
    out: dict[str, Any] = {}
    for m in model.model_fields[name].metadata:
        if isinstance(m, Ge):
            out["min"] = m.ge
        elif isinstance(m, Le):
            out["max"] = m.le
    return out


def limits_text(model: type[BaseModel], name: str) -> str:
    """The field's bounds in words, e.g. ``0 < x <= 1``."""
    low = high = ""
    for m in model.model_fields[name].metadata:
        if isinstance(m, Ge | Gt):
            low = f"{m.ge} <= " if isinstance(m, Ge) else f"{m.gt} < "
        elif isinstance(m, Le | Lt):
            high = f" <= {m.le}" if isinstance(m, Le) else f" < {m.lt}"
    return f"{low}x{high}" if low or high else ""


Generations = Annotated[
    int,
    typer.Option(
        help="Generations after the seed corpus.",
        **limits(EquilibriumStudyConfig, "generations"),
    ),
]
KShots = Annotated[
    int,
    typer.Option(help="Few-shot examples per prompt.", **limits(EquilibriumStudyConfig, "k_shots")),
]
BatchSize = Annotated[
    int, typer.Option(help="Prompts per batch.", **limits(GeneratorConfig, "batch_size"))
]
MaxTokens = Annotated[
    int, typer.Option(help="New tokens per text.", **limits(SamplingConfig, "max_tokens"))
]
Temperature = Annotated[
    float,
    typer.Option(help="Sampling temperature (0: greedy).", **limits(SamplingConfig, "temperature")),
]
TopP = Annotated[
    float,
    typer.Option(
        help=f"Nucleus sampling, {limits_text(SamplingConfig, 'top_p')}.",
        **limits(SamplingConfig, "top_p"),
    ),
]
NResamples = Annotated[
    int,
    typer.Option(help="Bootstrap resamples per CI.", **limits(MeasureConfig, "n_resamples")),
]
#: Pointing a command at an OpenAI-compatible server (vLLM, Ollama, llama.cpp's servers, ...).
BaseURL = Annotated[
    str | None,
    typer.Option(
        help="An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 (implies --backend "
        "openai).",
    ),
]
ServerModel = Annotated[
    str | None,
    typer.Option("--model", help="Model name on the server (default: the first it serves)."),
]
APIKeyEnv = Annotated[
    str | None,
    typer.Option(help="Name of the environment variable holding the server's API key."),
]


def _progress(quiet: bool) -> ProgressFactory:
    """Progress bars, off with --quiet or when output is piped or redirected."""
    return tqdm_factory(enabled=not quiet)


MLflow = Annotated[
    bool,
    typer.Option(
        "--mlflow",
        # rich markup would swallow "[mlflow]": the bracket is escaped
        help="Also log to MLflow (needs synthbias\\[mlflow]; URI from --mlflow-uri or "
        "MLFLOW_TRACKING_URI).",
    ),
]
MLflowURI = Annotated[
    str | None, typer.Option("--mlflow-uri", help="MLflow tracking URI, e.g. file:./mlruns.")
]
#: Help of the options that choose metric families / a backend. The families are registered by
#: the measurement code, which loads only when a command measures (an unknown name's error lists
#: them); the backends by :mod:`synthbias.generate`.
FAMILIES_HELP = (
    "Metric families, comma-separated, e.g. rule,lexical (default: every family that applies; "
    "an unknown name lists them)."
)
BACKENDS_HELP = (
    f"Generator backend: {', '.join(BACKENDS.names())} (default llamacpp; openai with --base-url)."
)


def _log_mlflow(out: Path, uri: str | None) -> None:
    try:
        run_id = log_to_mlflow(out, tracking_uri=uri)
    except TrackingError as exc:
        _fail(str(exc))
    console.print(f"logged to MLflow run {run_id}")


def _fail(msg: str, code: int = 2) -> None:
    err.print("[bold red]error:[/] ", end="", highlight=False)
    err.print(msg, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def root_error(exc: BaseException) -> BaseException:
    """The error behind Ray's wrappers: a ``RayTaskError`` (and the error Ray raises that is
    both a ``RayTaskError`` and the worker's error class) keeps the worker's exception as
    ``.cause``, and its message holds the remote traceback; the cause's message does not."""
    for _ in range(8):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc


def _fail_backend(exc: BaseException) -> None:
    """Exit cleanly for a backend that cannot start or answer; anything else is re-raised."""
    cause = root_error(exc)
    if isinstance(cause, BackendUnavailableError | ModelNotFoundError):
        _fail(str(cause))
    if isinstance(cause, HTTPBackendError):
        _fail(f"the server failed: {cause}", code=1)
    raise exc


def _out_file(path: Path | None, option: str = "--out") -> None:
    """Refuse an output *file* path that is a folder, before any work."""
    if path is not None and path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name, e.g. {path / 'results.json'}")


def _out_folder(path: Path, kind: str) -> None:
    """Refuse an output folder that is a file or holds another kind of run, before any work."""
    try:
        check_output_folder(path, kind)
    except OutputFolderError as exc:
        _fail(str(exc))


def _server_backend(backend: str | None, base_url: str | None, default: str) -> str:
    """The backend of a command: ``--backend``, else ``openai`` under ``--base-url``, else
    ``default``; a name nobody registered, or ``--base-url`` with a backend that takes no URL,
    is an error."""
    if backend is None:
        return "openai" if base_url else default
    if backend not in BACKENDS:
        _fail(BACKENDS.unknown_message(backend))
    if base_url and "base_url" not in BACKENDS.meta(backend)["requires"]:
        _fail(f"--base-url needs --backend openai (a server), not {backend!r}")
    return BACKENDS.canonical(backend)


def _server_options(
    base_url: str | None, model: str | None, api_key_env: str | None
) -> dict[str, Any]:
    """The generator settings given by --base-url, --model and --api-key-env."""
    given = {"base_url": base_url, "model": model, "api_key_env": api_key_env}
    return {k: v for k, v in given.items() if v is not None}


def _validation_message(exc: ValidationError, options: dict[str, str] | None = None) -> str:
    """One line per invalid option, named as the user typed it (``--top-p``)."""
    lines = []
    for e in exc.errors():
        field = str(e["loc"][0]) if e["loc"] else ""
        name = (options or {}).get(field, f"--{field.replace('_', '-')}")
        lines.append(f"{name}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(lines)


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


def _run_study(
    config: ExperimentConfig,
    out: Path,
    quiet: bool,
    overwrite: bool,
    source: Path | None = None,
) -> None:
    """Run the study of ``config.kind`` and print the summary its study registered.

    First, before anything is written: the folder must not hold another kind of run, and the
    files the config names must read (``source``: the config file, for its line numbers).
    """
    _out_folder(out, config.kind)
    try:
        check_inputs(config, source, source.read_text(encoding="utf-8") if source else None)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        results = run_experiment(config, out, progress=_progress(quiet), resume=not overwrite)
    except (FileExistsError, RunLockedError) as exc:
        _fail(str(exc))
    except tasks_spec.TaskError as exc:
        _fail(f"config error: {exc}")
    except Exception as exc:  # noqa: BLE001 - a backend's failure, maybe behind Ray's wrapper
        _fail_backend(exc)
    STUDIES.meta(config.kind)["printer"](results, console, out)


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment YAML.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/run"),
    overwrite: Annotated[bool, typer.Option(help="Discard corpora of an earlier run.")] = False,
    base_url: BaseURL = None,
    model: ServerModel = None,
    api_key_env: APIKeyEnv = None,
    quiet: Quiet = False,
    mlflow: MLflow = False,
    mlflow_uri: MLflowURI = None,
) -> None:
    """Run an experiment described in a YAML config (--base-url, --model and --api-key-env
    override its generator section)."""
    try:
        cfg = load_config(config)
        server = _server_options(base_url, model, api_key_env)
        if server:
            data = cfg.model_dump(mode="json")
            data["generator"] |= server | ({"backend": "openai"} if base_url else {})
            cfg = parse_config(data, source=f"{config} with --base-url/--model/--api-key-env")
    except ConfigError as exc:
        _fail(str(exc))
    _run_study(cfg, out, quiet, overwrite, source=config)
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
    generations: Generations = 3,
    n: Annotated[
        int,
        typer.Option(
            "--n",
            help="Texts per generation, level and chain.",
            **limits(EquilibriumStudyConfig, "n"),
        ),
    ] = 20,
    chains: Annotated[
        int,
        typer.Option(
            help="Replicate chains per level.", **limits(EquilibriumStudyConfig, "chains")
        ),
    ] = 5,
    seed: int = 0,
    k_shots: KShots = 3,
    backend: Annotated[str | None, typer.Option(help=BACKENDS_HELP)] = None,
    model_path: Annotated[
        Path | None, typer.Option(exists=True, help="A GGUF file instead of SmolLM2.")
    ] = None,
    base_url: BaseURL = None,
    model: ServerModel = None,
    api_key_env: APIKeyEnv = None,
    batch_size: BatchSize = 32,
    max_tokens: MaxTokens = 48,
    temperature: Temperature = 0.8,
    prompt: Annotated[str, typer.Option(help="Prompt template name.")] = "work_occupation_said",
    embedding: Annotated[bool, typer.Option(help="Also measure embedding bias.")] = True,
    n_resamples: NResamples = 1000,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("runs/equilibrium"),
    overwrite: Annotated[bool, typer.Option(help="Discard corpora of an earlier run.")] = False,
    save_config: Annotated[
        Path | None, typer.Option(help="Also write the config YAML here.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Recursive-generation gender-bias equilibrium study on the embedded model (or a server:
    --base-url)."""
    data = {
        "kind": "equilibrium",
        "seed": seed,
        "generator": {
            "backend": _server_backend(backend, base_url, "llamacpp"),
            "batch_size": batch_size,
            "model_path": str(model_path) if model_path else None,
            **_server_options(base_url, model, api_key_env),
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
    prompt: Annotated[
        list[str] | None,
        typer.Option(
            help="A user prompt (repeatable). With --from: the prompt template, a name "
            "(self_instruct, ...) or a text with an {examples} slot.",
        ),
    ] = None,
    seed_corpus: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A corpus (JSONL, CSV, TSV, Parquet; any with a text column): write new texts "
            "self-instruct style from its examples.",
        ),
    ] = None,
    text_field: Annotated[str, typer.Option(help="Text column of the --from corpus.")] = "text",
    n: Annotated[
        int, typer.Option("--n", min=1, help="Completions (per prompt, or from the corpus).")
    ] = 10,
    k_shots: KShots = 3,
    seed: int = 0,
    backend: Annotated[str | None, typer.Option(help=BACKENDS_HELP)] = None,
    model_path: Annotated[
        Path | None, typer.Option(exists=True, help="A GGUF file or HF folder instead of SmolLM2.")
    ] = None,
    base_url: BaseURL = None,
    model: ServerModel = None,
    api_key_env: APIKeyEnv = None,
    max_tokens: MaxTokens = 64,
    temperature: Temperature = 0.8,
    top_p: TopP = 0.95,
    quiet: Quiet = False,
) -> None:
    """Generate texts with a backend: from prompts, or from a corpus (one new generation).

    Everything is checked (options, the corpus, the template, the output path) before the
    backend is built, and the backend before any text is generated."""

    if not prompt and not seed_corpus:
        _fail("give --prompt TEXT (repeatable) or --from CORPUS")
    if seed_corpus and prompt and len(prompt) > 1:
        _fail(
            "with --from, --prompt names the one prompt template (a name, or a text with an "
            f"{{examples}} slot); got {len(prompt)} --prompt values"
        )
    _out_file(out)
    try:
        sampling = SamplingConfig(max_tokens=max_tokens, temperature=temperature, top_p=top_p)
    except ValidationError as exc:
        _fail(_validation_message(exc))
    params = SamplingParams(**sampling.model_dump(exclude={"top_k"}), seed=seed)
    name = _server_backend(backend, base_url, "llamacpp")
    template = None
    if seed_corpus:
        try:
            previous = seed_records(seed_corpus, text_field=text_field)
            template = prompt_template(prompt[0] if prompt else None)
        except CorpusError as exc:
            _fail(str(exc))
        except ValueError as exc:
            _fail(f"--prompt: {exc}")
    be = _generator(name, model_path, base_url, model, api_key_env)
    try:
        if template is not None:
            bar = _progress(quiet)("generating", n)
            recs = generate_from_corpus(
                previous,
                be,
                params,
                n=n,
                k_shots=k_shots,
                template=template,
                seed=seed,
                on_progress=bar.update,
            )
            bar.close()
        else:
            recs = generate_from_prompts(prompt or [], be, params, n=n, seed=seed)
    except Exception as exc:  # noqa: BLE001 - a server that stops answering mid-way
        _fail_backend(exc)
    write_jsonl(recs, out)
    console.print(f"wrote {len(recs)} texts to {out} ({be.name}: {be.model_id})")


def _generator(
    backend: str,
    model_path: Path | None,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
) -> Any:
    """Build the backend of ``generate``, checked as the config checks a generator section; a
    missing model or a server that does not answer is a clean error (exit 2)."""
    server = _server_options(base_url, model, api_key_env)
    try:
        cfg = GeneratorConfig(
            backend=backend, model_path=str(model_path) if model_path else None, **server
        )
    except ValidationError as exc:
        _fail(_validation_message(exc, {"model_path": "--model-path", "model": "--model"}))
    kwargs: dict[str, Any] = {"model_path": cfg.model_path} if cfg.model_path else {}
    if "base_url" in BACKENDS.meta(cfg.backend)["requires"]:
        kwargs = {"base_url": cfg.base_url, "model": cfg.model, "api_key_env": cfg.api_key_env}
    try:
        return load_backend(cfg.backend, **kwargs)
    except ValueError as exc:  # e.g. --api-key-env names an unset variable
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001
        _fail_backend(exc)
    return None


def _families(metrics: str | None, embedding: bool, has_reference: bool) -> list[str] | None:
    """The families named by ``--metrics``; else ``None`` (the defaults), or the defaults
    without ``embedding`` under ``--no-embedding``."""
    if metrics:
        return [f.strip() for f in metrics.split(",") if f.strip()]
    if not embedding:
        return measure_api.default_families(has_reference, exclude=("embedding",))
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
    n_resamples: NResamples = 1000,
    seed: int = 0,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write JSON results here.")
    ] = None,
) -> None:
    """Measure bias of a corpus on any axes (every metric with a bootstrap 95% CI)."""

    _out_file(out)
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
        results = measure_api.measure_corpus(
            [r.text for r in recs],
            axes=[a.strip() for a in axes.split(",") if a.strip()],
            reference=[r.text for r in ref] if ref else None,
            families=families,
            n_resamples=n_resamples,
            seed=seed,
        )
    except measure_api.MeasureError as exc:
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


#: ``--weights`` values that select a transformers dtype (``--backend hf``): reduced precision,
#: only when named; the exact default stays float32.
HF_WEIGHTS = {"bf16": "bfloat16"}


def _backend_for_model(
    model: str,
    backend: str,
    weights: str = "native",
    base_url: str | None = None,
    api_key_env: str | None = None,
) -> Any:
    """MODEL is 'embedded' (SmolLM2), a GGUF file or a HF checkpoint folder; with a server
    (``--backend openai`` / ``--base-url``) the name it serves the model under."""
    if backend == "openai" or (backend == "auto" and base_url):
        if not base_url:
            _fail("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
        if weights != "native":
            _fail(f"--weights {weights} applies to the llamacpp backend only")
        served = None if model in ("embedded", "default") else model
        try:
            return load_backend("openai", base_url=base_url, model=served, api_key_env=api_key_env)
        except ValueError as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001
            _fail_backend(exc)
    if base_url:
        _fail(f"--base-url needs --backend openai (a server), not {backend!r}")
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
    if backend == "hf" and weights in HF_WEIGHTS:
        return load_backend("hf", model_path=path, dtype=HF_WEIGHTS[weights])
    if weights != "native":
        _fail(
            f"--weights {weights} applies to the llamacpp backend (f32, f16) or to "
            "--backend hf (bf16: reduced precision by choice)"
        )
    if backend == "hf":
        return load_backend("hf", model_path=path)
    _fail(f"unknown backend {backend!r}; choose auto, llamacpp, hf or openai")


def _scoring_backend_for_model(
    model: str, backend: str, weights: str, base_url: str | None, api_key_env: str | None
) -> tuple[Any, ScoringChoice]:
    """The runtime for log-probability benchmarks, and the record of which one and why.

    ``--backend auto`` on a local GGUF (or the embedded model) with native weights is
    ``scoring_backend: auto`` (:func:`~synthbias.measure.scoring.choose_scoring_backend`):
    the fastest exact fp32 path here. A server, a HF folder, ``--weights`` or a named backend
    keep the explicit behaviour of :func:`_backend_for_model`.
    """
    path = None if model in ("embedded", "default") else Path(model)
    local_gguf = path is None or (path.is_file() and path.suffix == ".gguf")
    if backend == "auto" and not base_url and weights == "native" and local_gguf:
        choice = choose_scoring_backend()
        try:
            be = load_scoring_backend(choice, str(path) if path else None)
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001
            _fail_backend(exc)
        return be, choice
    be = _backend_for_model(model, backend, weights, base_url, api_key_env)
    shown = weights
    if be.name == "transformers":
        shown = "bf16 (reduced precision, chosen)" if weights == "bf16" else "f32"
    return be, explicit_choice(be, f"--backend {backend} --weights {weights}", shown)


@app.command("bench-bias")
def bench_bias(
    model: Annotated[
        str,
        typer.Argument(
            help="'embedded', a GGUF file or a HF folder; with --base-url, the server's model "
            "name ('embedded': the first it serves)."
        ),
    ] = "embedded",
    suite: Annotated[str, typer.Option(help="Comma-separated: crows_pairs, stereoset, bbq.")] = (
        "crows_pairs,stereoset,bbq"
    ),
    data: Annotated[
        Path, typer.Option(help="Folder holding crows_pairs/, stereoset/, bbq/.")
    ] = Path("../shared/benchmarks"),
    backend: Annotated[
        str,
        typer.Option(
            help="auto (the fastest exact fp32 runtime on this machine; recorded with its "
            "reason), llamacpp, hf or openai."
        ),
    ] = "auto",
    base_url: BaseURL = None,
    api_key_env: APIKeyEnv = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Score a seeded sample of this many items per suite."),
    ] = None,
    seed: int = 0,
    weights: Annotated[
        str,
        typer.Option(
            help="llamacpp: native (as stored), or f32 / f16: a locally dequantised copy, "
            "about 2x faster scoring on CPU, slightly different scores. With --backend hf: "
            "bf16, reduced precision by choice (about 2x on CPUs with AVX-512 BF16; "
            "bench/precision.py measures its deviation and flipped decisions)."
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
    _out_file(out)
    be, choice = _scoring_backend_for_model(model, backend, weights, base_url, api_key_env)
    console.print(
        f"scoring backend: {choice.backend} on {choice.device} ({choice.weights}): {choice.reason}"
    )
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
        except Exception as exc:  # noqa: BLE001
            _fail_backend(exc)
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
                "weights": choice.weights,
                "scoring_backend": {"requested": backend, **choice.to_dict()},
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
    n_resamples: NResamples = 1000,
    seed: int = 0,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (audit.json, report.html, ...).")
    ] = Path("runs/audit"),
    overwrite: Annotated[
        bool, typer.Option(help="Replace an earlier audit of other data in --out.")
    ] = False,
    quiet: Quiet = False,
    mlflow: MLflow = False,
    mlflow_uri: MLflowURI = None,
) -> None:
    """Audit a synthetic dataset: every metric family, misalignment against a reference, a report,
    and a gate (exit 1 when a --max/--min budget is breached)."""

    families = _families(metrics, embedding, reference is not None)
    max_items, min_items = _budget_items(max_), _budget_items(min_)
    _out_folder(out, "audit")
    try:
        lock = RunLock(out).acquire()  # before measuring: a second audit here is refused at once
    except RunLockedError as exc:
        _fail(str(exc))
    try:
        try:  # every check (budgets, folder, input) comes before the measurement
            result = audit_runner.audit_corpus(
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
                out=out,
                overwrite=overwrite,
            )
        except audit_runner.AuditError as exc:
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
        int | None,
        typer.Option(
            help="Bootstrap resamples (default: the run's config).",
            **limits(MeasureConfig, "n_resamples"),
        ),
    ] = None,
) -> None:
    """Forecast where bias settles from the first generations of a recursive run; writes
    forecast.json into the run folder."""

    try:
        fc = forecasting.forecast_run(run_dir, generations=generations, n_resamples=n_resamples)
    except forecasting.ForecastError as exc:
        _fail(str(exc))
    f = fc["forecast"]
    g = fc["generations_used"]
    if g < generations:
        console.print(
            f"note: --generations {generations} asks for generations 0–{generations}, but the "
            f"run has generations 0–{g} (of every level used); the fit uses those.",
            highlight=False,
            soft_wrap=True,
        )
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
    if "a" in f:
        console.print(
            f"Forecast from generations 0–{g} ({f['n_points']} transitions): slope "
            f"{slope_text(f)}; {fixed_point_text(f)}; map {map_text(f['a'], f['c'])}; "
            f"{verdict} at the point estimate.",
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
        console.print(
            f"Full run ({full.get('n_points')} transitions): {fixed_point_text(full)}",
            highlight=False,
        )
    for line in forecasting.forecast_lines(fc):
        console.print(line, highlight=False, soft_wrap=True)
    if (run_dir / "report.html").exists():
        write_run_report(run_dir)
    console.print(f"wrote {run_dir / forecasting.FORECAST_FILE}")


def _plan_config(path: Path, power: float, alpha: float) -> None:
    """A config without a run: the pilot command, and the MDE as a multiple of the unknown
    between-replicate SD at the config's own replicate count."""
    try:
        cfg = load_config(path)
        advice = config_advice(cfg.model_dump(mode="json"), str(path), power, alpha)
    except (ConfigError, PlanError) as exc:
        _fail(str(exc))
    console.print(
        f"{path} is a config, not a run: the replicates a target needs depend on the SD "
        "between replicates, which only a pilot run shows. Run a pilot (at least 3 replicates), "
        "then plan from its folder:",
        highlight=False,
        soft_wrap=True,
    )
    for cmd in advice["commands"]:
        console.print(f"  {cmd}", highlight=False, soft_wrap=True)
    for u in advice["units"]:
        r, k = u["replicates"], u["mde_per_sd"]
        formula = (
            f"MDE = (t_{1 - alpha / 2:g} + t_{power:g}) on {r - 1} df × SD_between / sqrt({r}) "
            f"= {k:.2f} × SD_between"
            if k is not None
            else u["note"]
        )
        console.print(f"As configured, {u['unit']}: R = {r}; {formula}.", highlight=False)


def _num(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def _print_plan(rows: list[dict[str, Any]], source: Path, power: float, alpha: float) -> None:
    """The plan as a table, then the notes and the convention."""
    table = Table(title=f"Plan from the pilot {source} (power {power:.0%}, alpha {alpha:g})")
    for col in ("cell", "R", "items/rep", "SD of reps", "SD between", "SD within", "MDE now"):
        table.add_column(col, no_wrap=col == "cell")
    for col in ("target", "R needed", "items/rep needed"):
        table.add_column(col)
    for r in rows:
        items = f"{r['items']:.0f} {r['item_unit']}" if r["items"] is not None else "—"
        need_items = "—" if r["items_needed"] is None else str(r["items_needed"])
        if r["texts_needed"] is not None:
            need_items += f" (≈ {r['texts_needed']} texts)"
        table.add_row(
            r["cell"],
            str(r["replicates"]),
            items,
            _num(r["sd"]),
            _num(r["between_sd"]),
            _num(r["within_sd"]),
            _num(r["mde_pilot"]),
            f"{r['target']:+.3g}",
            "—" if r["replicates_needed"] is None else str(r["replicates_needed"]),
            need_items,
        )
    console.print(table)
    metrics = sorted({r["metric"] for r in rows})
    console.print(f"metric: {', '.join(metrics)}", highlight=False, soft_wrap=True)
    for src in dict.fromkeys(r["target_source"] for r in rows):
        if src.startswith("the paper"):
            console.print(
                f"target {src}: the paper's figure (its model, its own bias score), not ours; "
                "applied here as the same relative change of b0, an absolute change of the share",
                highlight=False,
                soft_wrap=True,
            )
    for r in rows:
        if r["note"]:
            console.print(f"{r['cell']}: {r['note']}", highlight=False, soft_wrap=True)
    console.print(
        "SD of reps: of the per-replicate estimates; SD between: that less the item noise "
        "(SD within² / items); R needed: at the pilot's items per replicate; items needed: at "
        f"the pilot's R. {CONVENTION}.",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def plan(
    source: Annotated[
        Path, typer.Argument(help="A pilot run's folder (its results.json), or a config YAML.")
    ],
    effect: Annotated[
        float | None,
        typer.Option(
            help="Target effect, absolute, in the metric's units (default: the paper's effects "
            "where the study has them: equilibrium)."
        ),
    ] = None,
    power: Annotated[float, typer.Option(help="Power, e.g. 0.8.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Two-sided test level.")] = 0.05,
) -> None:
    """The replicates (and items per replicate) a target effect needs at 80 % power, per
    headline cell, from a pilot run's between- and within-replicate variances."""

    if source.is_file() and source.suffix.lower() in (".yaml", ".yml"):
        _plan_config(source, power, alpha)
        return
    try:
        rows = plan_rows(read_results(source), effect=effect, power=power, alpha=alpha)
    except PlanError as exc:
        _fail(str(exc))
    _print_plan(rows, source, power, alpha)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run or audit folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here (default RUN_DIR/report.html).")
    ] = None,
    max_samples: Annotated[int, typer.Option(min=1, help="Texts in the sample browser.")] = 400,
) -> None:
    """Rebuild report.html of a run or audit folder from its stored results."""

    _out_file(out)
    STUDIES.load()  # every study's report pages (the folder may hold a run of any kind)
    try:
        path = build_report(run_dir, out=out, max_samples=max_samples)
    except ReportError as exc:
        _fail(str(exc))
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
