"""Sections for every run kind: run info, headline table, sample browser, plots, flags."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from synthbias.report.html import (
    VALUE_COLUMNS,
    ReportContext,
    Section,
    details,
    esc,
    fmt_num,
    html_table,
    img_file,
    kv_table,
    register_section,
    sample_browser,
    value_cell,
)

#: Headline table: at most this many metric columns (the rest are in the full table below it).
MAX_HEADLINE_METRICS = 8
MAX_TABLE_ROWS = 500


@register_section("*", order=0)
def run_info(ctx: ReportContext) -> Section:
    r = ctx.results
    cfg = r.get("config") or {}
    items: list[tuple[str, Any]] = [("kind", ctx.kind)]
    if cfg.get("name"):
        items.append(("name", cfg["name"]))
    created = r.get("created")
    manifest = ctx.run_dir / "manifest.json"
    if created is None and manifest.is_file():
        try:
            created = json.loads(manifest.read_text()).get("created")
        except (OSError, json.JSONDecodeError):
            created = None
    if isinstance(created, (int, float)):
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    if created:
        items.append(("created", created))
    if r.get("synthbias_version"):
        items.append(("synthbias", r["synthbias_version"]))
    if r.get("config_hash"):
        items.append(("config hash", r["config_hash"]))
    model = r.get("model") or r.get("generator") or {}
    if isinstance(model, dict) and model:
        items.append(("model", " · ".join(str(v) for v in model.values() if v)))
    elif model:
        items.append(("model", model))
    seeds = r.get("seeds") if r.get("seeds") is not None else cfg.get("seed")
    if seeds is not None:
        items.append(("seed(s)", seeds))
    for key, value in (r.get("info") or {}).items():
        if value is not None:
            items.append((key, value))
    env = r.get("environment") or {}
    for key, value in env.items():
        items.append((key, value))
    for key, value in (r.get("versions") or {}).items():
        items.append((f"{key} version", value))
    timing = r.get("timing") or {}
    if timing:
        items.append(("timing", ", ".join(f"{k} {v}" for k, v in timing.items())))
    body = kv_table(items)
    if cfg:
        import yaml

        body += details("configuration", f"<pre>{esc(yaml.safe_dump(cfg, sort_keys=False))}</pre>")
    return Section("run", "Run", body)


def _id_columns(df: Any) -> list[str]:
    """Columns that identify a row (a condition), not describe its metric.

    Tidy tables put the condition before ``metric`` and per-metric attributes after the values
    (``level, generation, metric, value, …`` or ``task, ratio, seed, metric, value, …, role``);
    when ``metric`` comes first, keep the fewest leading columns that make rows unique.
    """
    cols = list(df.columns)
    before = cols[: cols.index("metric")]
    ids = [c for c in before if c not in VALUE_COLUMNS]
    if ids:
        return ids
    rest = [c for c in cols if c not in VALUE_COLUMNS and c != "metric"]
    for k in range(len(rest) + 1):
        if not df.duplicated(subset=[*rest[:k], "metric"]).any():
            return rest[:k]
    return rest


def _id_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "—"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) >= 1 else f"{v:g}"
    return str(v)


@register_section("*", order=10)
def headline(ctx: ReportContext) -> Section | None:
    """Metrics as columns, one row per combination of the table's other id columns."""
    df = ctx.table()
    if df is None or not {"metric", "value"} <= set(df.columns) or df.empty:
        return None
    metrics = list(dict.fromkeys(df["metric"]))
    wanted = ctx.results.get("headline_metrics") or []
    fit = ctx.results.get("fit_metric")
    if wanted:
        metrics = [m for m in wanted if m in metrics] or metrics
    elif fit in metrics:
        metrics = [fit] + [m for m in metrics if m != fit]
    shown = metrics[:MAX_HEADLINE_METRICS]
    ids = _id_columns(df)
    sub = df[df["metric"].isin(shown)]
    rows = []
    groups = sub.groupby(ids, sort=False, dropna=False) if ids else [((), sub)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = {}
        for _, row in g.iterrows():
            cells[row["metric"]] = value_cell(
                row["value"], row.get("ci_low"), row.get("ci_high"), row.get("pct_change")
            )
        rows.append([*(esc(_id_text(k)) for k in key), *(cells.get(m, "—") for m in shown)])
        if len(rows) >= MAX_TABLE_ROWS:
            break
    header = [*ids, *shown]
    body = (
        '<p class="note">value [95% CI]'
        + (" and % change from the first generation" if "pct_change" in df.columns else "")
        + "</p>"
        + html_table(header, rows, raw_columns=range(len(header)))
    )
    if len(shown) < len(metrics):
        body += f'<p class="note">{len(metrics) - len(shown)} more metrics in the full table.</p>'
    full_rows = df.head(MAX_TABLE_ROWS).itertuples(index=False)
    full = html_table(list(df.columns), ([_plain(v) for v in r] for r in full_rows))
    more = f" (first {MAX_TABLE_ROWS} of {len(df)} rows)" if len(df) > MAX_TABLE_ROWS else ""
    body += details(f"full results table{more}", full)
    return Section("headline", "Headline results", body)


def _plain(v: Any) -> str:
    if isinstance(v, float) or type(v).__module__ == "numpy":
        return fmt_num(v)
    return "" if v is None else str(v)


@register_section("*", order=75)
def samples(ctx: ReportContext) -> Section | None:
    """Sample browser from the JSONL file(s) named by ``results["samples"]``."""
    if ctx.samples_rendered:
        return None
    spec = ctx.results.get("samples")
    if not spec:
        return None
    paths = [spec] if isinstance(spec, str) else list(spec)
    rows: list[dict[str, Any]] = []
    truncated = False
    for p in paths:
        f = ctx.path(p)
        if not f.is_file():
            continue
        with f.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                if len(rows) >= ctx.max_samples:
                    truncated = True
                    break
                obj = json.loads(line)
                if isinstance(obj, dict):
                    rows.append(obj)
    if not rows:
        return None
    text_key = "text" if any("text" in r for r in rows) else next(iter(rows[0]))
    columns, filters = sample_columns(rows, text_key)
    note = f"first {len(rows)} samples" if truncated else ""
    ctx.samples_rendered = True
    return Section("samples", "Samples", sample_browser(rows, columns, filters, text_key, note))


def sample_columns(
    rows: list[dict[str, Any]], text_key: str = "text", max_levels: int = 30
) -> tuple[list[str], list[str]]:
    """Columns to show (scalars, not the text) and which of them to filter on (few distinct
    non-float values)."""
    keys: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k != text_key and k not in keys and not isinstance(v, (dict, list)):
                keys.append(k)
    filters = []
    for k in keys:
        vals = [r.get(k) for r in rows if r.get(k) is not None]
        if k == "id" or any(isinstance(v, float) for v in vals):
            continue
        if 1 < len({str(v) for v in vals}) <= max_levels:
            filters.append(k)
    return keys, filters


@register_section("*", order=80)
def plots(ctx: ReportContext) -> Section | None:
    """Every PNG listed under ``results["plots"]`` or lying in the run folder, not yet shown."""
    listed = ctx.results.get("plots") or []
    if isinstance(listed, (str, dict)):
        listed = [listed]
    files: list[tuple[Path, str | None]] = []
    for item in listed:
        path, caption = (
            (item.get("path"), item.get("caption"))
            if isinstance(item, dict)
            else (
                item,
                None,
            )
        )
        if path:
            files.append((ctx.path(path), caption))
    for pattern in ("*.png", "plots/*.png", "figures/*.png"):
        files.extend((f, None) for f in sorted(ctx.run_dir.glob(pattern)))
    seen = {p.resolve() for p in ctx.used_images}
    figs = []
    for f, caption in files:
        if not f.is_file() or f.resolve() in seen:
            continue
        seen.add(f.resolve())
        figs.append(img_file(f, alt=f.stem, caption=caption or f.name))
    if not figs:
        return None
    return Section("plots", "Plots", f'<div class="grid">{"".join(figs)}</div>')


@register_section("*", order=90)
def flags(ctx: ReportContext) -> Section:
    raw = list(ctx.results.get("flags") or []) + ctx.flags
    items = []
    for f in raw:
        if isinstance(f, dict):
            sev = str(f.get("severity") or f.get("level") or "warning")
            msg = f.get("message") or f.get("flag") or f.get("text") or json.dumps(f)
            src = f.get("source") or f.get("metric")
        else:
            sev, msg, src = "warning", str(f), None
        src_html = f' <span class="note">({esc(src)})</span>' if src else ""
        items.append(
            f'<li><span class="badge {esc(sev)}">{esc(sev)}</span> {esc(msg)}{src_html}</li>'
        )
    body = f'<ul class="flags">{"".join(items)}</ul>' if items else "<p>No flags raised.</p>"
    return Section("flags", f"Flags ({len(items)})", body)
