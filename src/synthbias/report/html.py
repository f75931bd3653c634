"""Self-contained HTML report of a run folder, built from its stored results.

``build_report(run_dir)`` reads ``results.json`` (or ``audit.json``), the tidy table
(``results.parquet`` / ``results.csv``) and the plots, and writes ``report.html``: one file, no
network (images inlined as base64, CSS inline, a small inline script only for filtering), readable
on a laptop screen.

The report is a list of sections. Generic sections work for any run kind (run info, headline
table, plots, flags, a sample browser from ``results["samples"]``); sections for one kind are
registered with :func:`register_section`::

    from synthbias.report.html import ReportContext, Section, register_section

    @register_section("inheritance", order=20)
    def inheritance_summary(ctx: ReportContext) -> Section | None:
        return Section("inheritance", "Inheritance", "<p>…</p>")

The generic sections live in :mod:`synthbias.report.generic`; each study registers its own
pages from ``synthbias/studies/<study>/report.py`` (imported with :mod:`synthbias.studies`), so a
new kind's sections go with its study without touching this module.

**Escaping.** Every value that comes from data (generated texts above all) goes through
:func:`esc` or a helper built on it, so a text holding ``<script>`` shows as text. As a second
line of defence the page carries a Content-Security-Policy that lets only the report's own script
(pinned by its hash) run and images load only from inline ``data:`` URIs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthbias.core.store import atomic_write_text
from synthbias.measure.names import canonical_results

REPORT_NAME = "report.html"
#: Rows per (filter combination) shown in a sample browser before truncation.
DEFAULT_MAX_SAMPLES = 400
#: Characters of one text shown in a sample browser; the data files keep the whole text (a 5 MB
#: generated text used to be copied whole into report.html).
MAX_SAMPLE_CHARS = 2000
#: Columns of the tidy table that hold numbers about a metric rather than identify a row.
VALUE_COLUMNS = frozenset(
    {"value", "ci_low", "ci_high", "ci_level", "pct_change", "n", "std", "stderr", "p_value"}
)


class ReportError(ValueError):
    """The folder holds no results a report can be built from."""


# --------------------------------------------------------------------------- escaping helpers


def esc(value: Any) -> str:
    """HTML-escape any value as text (quotes included, so it is safe in attributes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: '—' for missing/NaN, '∞' for infinities."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if v != 0 and (abs(v) >= 10_000 or abs(v) < 10 ** (-digits)):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}"


def fmt_signed(value: float, digits: int = 3) -> str:
    """``+0.123`` / ``-0.045``; a value that would print as ``+0.000`` keeps its size
    (``-3.5e-04``), so a tiny but real effect is not shown as zero beside "detected"."""
    v = float(value)
    if v != 0 and math.isfinite(v) and abs(v) < 0.5 * 10 ** (-digits):
        return f"{v:+.1e}"
    return f"{v:+.{digits}f}"


def fmt_ci(low: Any, high: Any, digits: int = 3) -> str:
    if _missing(low) and _missing(high):
        return ""
    return f"[{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def _missing(v: Any) -> bool:
    try:
        return v is None or math.isnan(float(v))
    except (TypeError, ValueError):
        return False


def html_table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    cls: str = "",
    raw_columns: Iterable[int] = (),
) -> str:
    """A table; every cell is escaped unless its column index is in ``raw_columns``
    (for cells the caller built from escaped parts)."""
    raw = set(raw_columns)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f"<td>{c if i in raw else esc(c)}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f'<div class="scroll"><table{cls_attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def kv_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def details(summary: str, body: str, open_: bool = False) -> str:
    """A collapsible block; ``summary`` is text (escaped), ``body`` is HTML."""
    return f"<details{' open' if open_ else ''}><summary>{esc(summary)}</summary>{body}</details>"


def value_cell(value: Any, low: Any = None, high: Any = None, pct: Any = None) -> str:
    """'value [low, high] +x%' as escaped HTML (the CI and change in smaller type)."""
    out = f'<span class="v">{fmt_num(value)}</span>'
    ci = fmt_ci(low, high)
    if ci:
        out += f' <span class="ci">{ci}</span>'
    if not _missing(pct) and math.isfinite(float(pct)):
        out += f' <span class="pct">{float(pct):+.0f}%</span>'
    return f'<span class="vc">{out}</span>'


_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def img_bytes(data: bytes, alt: str, caption: str | None = None) -> str:
    """An inline ``<img>`` (PNG or JPEG bytes as a base64 data URI) in a figure."""
    mime = next((m for magic, m in _IMAGE_TYPES.items() if data.startswith(magic)), None)
    if mime is None:
        return f'<p class="warn">{esc(alt)}: not a PNG or JPEG image</p>'
    b64 = base64.b64encode(data).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:{mime};base64,{b64}">{cap}</figure>'


def img_file(path: Path, alt: str | None = None, caption: str | None = None) -> str:
    return img_bytes(Path(path).read_bytes(), alt or Path(path).stem, caption)


def img_figure(fig: Any, alt: str, caption: str | None = None, dpi: int = 110) -> str:
    """Inline a matplotlib figure (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return img_bytes(buf.getvalue(), alt, caption)


def sample_browser(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    filters: Sequence[str] = (),
    text_key: str = "text",
    note: str = "",
    after_text: Sequence[str] = (),
) -> str:
    """A filterable table of example texts with their per-sample scores.

    ``columns`` are shown before the text column and ``after_text`` after it; ``filters`` (a
    subset of keys) get a select box each. Every value goes into the DOM as escaped text;
    filtering reads only attributes and ``textContent``, so nothing in the data is ever
    interpreted as HTML or script. A text longer than :data:`MAX_SAMPLE_CHARS` is cut there,
    with a mark saying how much was left out (the data files keep it whole).
    """
    if not rows:
        return "<p>No samples.</p>"
    n_cut = 0
    controls = []
    for i, key in enumerate(filters):
        values = sorted({_cell(r.get(key)) for r in rows}, key=_natural_key)
        opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        controls.append(
            f'<label>{esc(key)} <select data-filter="{i}">'
            f'<option value="">all</option>{opts}</select></label>'
        )
    controls.append(
        '<input type="search" data-search placeholder="search text" aria-label="search">'
    )
    controls.append('<span class="count" data-count></span>')
    head = "".join(f"<th>{esc(c)}</th>" for c in columns) + f"<th>{esc(text_key)}</th>"
    head += "".join(f"<th>{esc(c)}</th>" for c in after_text)
    body = []
    for r in rows:
        attrs = "".join(f' data-f{i}="{esc(_cell(r.get(k)))}"' for i, k in enumerate(filters))
        cells = "".join(f'<td class="num">{esc(_cell(r.get(c)))}</td>' for c in columns)
        tail = "".join(f'<td class="num">{esc(_cell(r.get(c)))}</td>' for c in after_text)
        text, cut = _capped(r.get(text_key, ""))
        n_cut += cut
        body.append(f'<tr{attrs}>{cells}<td class="text">{text}</td>{tail}</tr>')
    if n_cut:
        capped = (
            f"{n_cut} {'text is' if n_cut == 1 else 'texts are'} shown cut at "
            f"{MAX_SAMPLE_CHARS:,} characters; the data files hold the full text"
        )
        note = f"{note}; {capped}" if note else capped
    note_html = f'<p class="note">{esc(note)}</p>' if note else ""
    return (
        f'<div class="browser" data-browser><div class="controls">{"".join(controls)}</div>'
        f'{note_html}<div class="scroll tall"><table class="samples"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></div>"
    )


def _capped(value: Any) -> tuple[str, bool]:
    """A sample text as escaped HTML, cut at :data:`MAX_SAMPLE_CHARS` characters (with a mark
    naming how many were left out), and whether it was cut."""
    text = "" if value is None else str(value)
    if len(text) <= MAX_SAMPLE_CHARS:
        return esc(text), False
    rest = len(text) - MAX_SAMPLE_CHARS
    mark = f' <span class="note">[… {rest:,} more characters, in the data files]</span>'
    return esc(text[:MAX_SAMPLE_CHARS]) + mark, True


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return fmt_num(v)
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def _natural_key(s: str) -> tuple[int, float, str]:
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


# --------------------------------------------------------------------------- registry


@dataclass
class Section:
    """One report section. ``body`` is HTML: build it only from :func:`esc` and the helpers."""

    id: str
    title: str
    body: str


@dataclass
class ReportContext:
    """What section functions read, and where they leave notes for later sections."""

    run_dir: Path
    results: dict[str, Any]
    kind: str
    results_file: Path
    max_samples: int = DEFAULT_MAX_SAMPLES
    #: Flags raised by sections (``{"severity", "message", "source"}``), shown by the flags section.
    flags: list[dict[str, Any]] = field(default_factory=list)
    #: Image files already shown; the generic plots section skips them.
    used_images: set[Path] = field(default_factory=set)
    #: Set by a section that rendered its own sample browser (the generic one then stays out).
    samples_rendered: bool = False
    #: Ids of sections to leave out (e.g. a kind whose own summary replaces the generic headline).
    skip: set[str] = field(default_factory=set)
    _table: Any = None

    def path(self, p: str | Path) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.run_dir / p

    def table(self):
        """The run's tidy results table (``results.parquet``, else ``results.csv``), or None."""
        if self._table is None:
            import pandas as pd

            for name, reader in (
                ("results.parquet", pd.read_parquet),
                ("results.csv", pd.read_csv),
            ):
                f = self.run_dir / name
                if f.is_file():
                    try:
                        self._table = reader(f)
                        break
                    except Exception:  # noqa: BLE001 - a bad table only loses this section
                        continue
            else:
                self._table = False
        return None if self._table is False else self._table


SectionFn = Callable[[ReportContext], "Section | Sequence[Section] | None"]


@dataclass
class _Registered:
    kind: str
    order: float
    fn: SectionFn


_REGISTRY: list[_Registered] = []


def register_section(kind: str, fn: SectionFn | None = None, order: float = 50):
    """Register ``fn(ctx) -> Section | [Section] | None`` for runs of ``kind`` ('*': every kind).

    Sections render in ``order`` (generic: run 0, headline 10, samples 75, plots 80, flags 90;
    give kind sections 15–70). Usable as ``register_section(kind, fn)`` or as a decorator.
    Registering the same function again replaces it.
    """

    def deco(f: SectionFn) -> SectionFn:
        _REGISTRY[:] = [
            r
            for r in _REGISTRY
            if not (
                r.kind == kind
                and getattr(r.fn, "__qualname__", None) == getattr(f, "__qualname__", None)
                and getattr(r.fn, "__module__", None) == getattr(f, "__module__", None)
            )
        ]
        _REGISTRY.append(_Registered(kind, order, f))
        return f

    return deco(fn) if fn is not None else deco


def registered_sections(kind: str) -> list[SectionFn]:
    """The sections for a run kind, in order: the generic ones (``*``) and those its study
    registered (a study's report pages, and the generic sections, register when
    ``synthbias.studies`` is imported)."""
    regs = [r for r in _REGISTRY if r.kind in ("*", kind)]
    return [r.fn for r in sorted(regs, key=lambda r: r.order)]


# --------------------------------------------------------------------------- loading


def load_results(run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """The run's results dict and the file it came from (``results.json`` or ``audit.json``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such folder")
    for name in ("results.json", "audit.json"):
        f = run_dir / name
        if f.is_file():
            try:
                data = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ReportError(f"{f}: invalid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ReportError(f"{f}: expected a JSON object")

            return canonical_results(data), f  # metric names of runs before the rename
    raise ReportError(f"{run_dir}: no results.json or audit.json (is this a run folder?)")


def run_kind(results: Mapping[str, Any]) -> str:
    """The run kind: ``results["kind"]``, else the config's kind, else inferred."""
    kind = results.get("kind") or (results.get("config") or {}).get("kind")
    if kind:
        return str(kind)
    if "levels" in results and "equilibrium" in results:
        return "equilibrium"
    return "unknown"


# --------------------------------------------------------------------------- building


def render_report(run_dir: str | Path, max_samples: int = DEFAULT_MAX_SAMPLES) -> str:
    """The report of ``run_dir`` as an HTML string."""
    run_dir = Path(run_dir)
    results, results_file = load_results(run_dir)
    ctx = ReportContext(
        run_dir=run_dir,
        results=results,
        kind=run_kind(results),
        results_file=results_file,
        max_samples=max_samples,
    )
    sections: list[Section] = []
    for fn in registered_sections(ctx.kind):
        try:
            out = fn(ctx)
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the report
            name = getattr(fn, "__name__", "section")
            out = Section(
                f"error-{name}",
                f"{name} (failed)",
                f'<p class="warn">This section could not be built: {esc(type(exc).__name__)}: '
                f"{esc(exc)}</p>",
            )
        if out is None:
            continue
        sections.extend([out] if isinstance(out, Section) else list(out))
    sections = [s for s in sections if s.id not in ctx.skip]
    title = _title(ctx)
    return _page(title, sections, ctx)


def build_report(
    run_dir: str | Path, out: str | Path | None = None, max_samples: int = DEFAULT_MAX_SAMPLES
) -> Path:
    """Write ``report.html`` for a run folder (default: inside it) and return its path."""
    run_dir = Path(run_dir)
    page = render_report(run_dir, max_samples=max_samples)
    path = Path(out) if out else run_dir / REPORT_NAME
    atomic_write_text(path, page)
    return path


def write_run_report(run_dir: str | Path) -> Path | None:
    """Best-effort report at the end of a run: warns instead of raising (results are kept)."""
    import warnings

    try:
        return build_report(run_dir)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(
            f"report.html not written ({type(exc).__name__}: {exc}); "
            f"rebuild it with: synthbias report {run_dir}",
            stacklevel=2,
        )
        return None


def _title(ctx: ReportContext) -> str:
    name = (ctx.results.get("config") or {}).get("name") or ctx.results.get("name")
    label = f"{ctx.kind} run" if ctx.kind != "audit" else "audit"
    return f"synthbias {label}" + (f": {name}" if name and name != ctx.kind else "")


_SCRIPT = """
(function () {
  document.querySelectorAll('[data-browser]').forEach(function (b) {
    var sels = b.querySelectorAll('select[data-filter]');
    var q = b.querySelector('input[data-search]');
    var rows = b.querySelectorAll('tbody tr');
    var cnt = b.querySelector('[data-count]');
    function apply() {
      var n = 0, s = q.value.toLowerCase();
      rows.forEach(function (r) {
        var ok = true;
        sels.forEach(function (x) {
          var v = r.getAttribute('data-f' + x.getAttribute('data-filter'));
          if (x.value !== '' && v !== x.value) ok = false;
        });
        if (ok && s && r.textContent.toLowerCase().indexOf(s) < 0) ok = false;
        r.hidden = !ok;
        if (ok) n++;
      });
      cnt.textContent = n + ' of ' + rows.length + ' shown';
    }
    sels.forEach(function (x) { x.addEventListener('change', apply); });
    q.addEventListener('input', apply);
    apply();
  });
  document.documentElement.setAttribute('data-report-ready', '1');
})();
""".strip()

_CSS = """
:root { --fg:#1d2430; --muted:#5b6472; --line:#d9dee5; --bg:#fff; --accent:#2f6fb3;
  --warn:#a35a00; --bad:#b3261e; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
header { padding:14px 24px; border-bottom:1px solid var(--line); background:#f6f8fa; }
header h1 { margin:0; font-size:20px; }
header p { margin:4px 0 0; color:var(--muted); }
nav { position:sticky; top:0; z-index:2; background:#fff; border-bottom:1px solid var(--line);
  padding:6px 24px; font-size:13px; overflow-x:auto; white-space:nowrap; }
nav a { color:var(--accent); text-decoration:none; margin-right:14px; }
main { max-width:1180px; margin:0 auto; padding:8px 24px 40px; }
section { margin:22px 0; }
h2 { font-size:17px; border-bottom:1px solid var(--line); padding-bottom:4px; }
h3 { font-size:15px; margin:14px 0 6px; }
.scroll { overflow-x:auto; max-width:100%; }
.scroll.tall { max-height:560px; overflow-y:auto; border:1px solid var(--line); }
table { border-collapse:collapse; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:4px 8px; text-align:left;
  vertical-align:top; }
thead th { background:#f6f8fa; position:sticky; top:0; }
table.kv th { font-weight:600; color:var(--muted); white-space:nowrap; }
td.num { white-space:nowrap; font-variant-numeric:tabular-nums; }
td.text { min-width:320px; max-width:720px; white-space:pre-wrap; word-break:break-word; }
.ci, .pct { color:var(--muted); font-size:12px; }
.vc { white-space:nowrap; }
figure { margin:8px 0; display:inline-block; max-width:100%; vertical-align:top; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); }
figcaption { color:var(--muted); font-size:12px; }
.grid { display:flex; flex-wrap:wrap; gap:12px; }
.grid figure { flex:1 1 460px; max-width:560px; }
.controls { display:flex; flex-wrap:wrap; gap:10px; align-items:center; margin:6px 0; }
.controls input { min-width:220px; padding:3px 6px; }
.count, .note { color:var(--muted); font-size:12px; }
pre { background:#f6f8fa; padding:8px; overflow:auto; max-height:420px; font-size:12px; }
.badge { display:inline-block; padding:0 6px; border-radius:8px; font-size:12px; color:#fff; }
.badge.pass { background:var(--ok); } .badge.fail { background:var(--bad); }
.badge.warning, .badge.warn { background:var(--warn); } .badge.info { background:var(--accent); }
.warn { color:var(--warn); } .bad { color:var(--bad); }
ul.flags li { margin:3px 0; }
""".strip()


def _page(title: str, sections: Sequence[Section], ctx: ReportContext) -> str:
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode()
    csp = (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    )
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(
        f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>\n{s.body}\n</section>' for s in sections
    )
    built = time.strftime("%Y-%m-%d %H:%M:%S")
    sub = f"{esc(ctx.run_dir)} · built {esc(built)} from {esc(ctx.results_file.name)}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_CSS}</style></head>\n"
        f'<body><header><h1 id="report-title">{esc(title)}</h1><p>{sub}</p></header>\n'
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<script>{_SCRIPT}</script>\n</body></html>\n"
    )
