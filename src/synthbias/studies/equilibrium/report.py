"""Sections for equilibrium (recursive-generation) runs: the trajectory with the equilibrium band,
the fit, metric-divergence flags, and a sample browser over the stored corpora."""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from synthbias.core.records import CorpusError, read_jsonl
from synthbias.measure.direction import (
    CODE_BALANCED,
    CONDITIONAL,
    PAIRING,
    PAIRING_FEMALE_CODED,
    PAIRING_MALE_CODED,
    RATE,
)
from synthbias.measure.rules import GenderRuleScorer
from synthbias.report.html import (
    ReportContext,
    Section,
    esc,
    fmt_ci,
    fmt_num,
    img_figure,
    img_file,
    kv_table,
    register_section,
    sample_browser,
)
from synthbias.studies.equilibrium.fit import fixed_point_text, map_text, slope_text
from synthbias.studies.equilibrium.summary import (
    cell_power,
    fmt_share,
    power_lines,
    seed_share_notes,
)

TRAJECTORY_PNG = "bias_by_generation.png"


@register_section("equilibrium", order=20)
def equilibrium_fit(ctx: ReportContext) -> Section | None:
    r = ctx.results
    if not r.get("levels"):
        return None
    png = ctx.run_dir / TRAJECTORY_PNG
    if png.is_file():
        img = img_file(
            png,
            "bias against generation",
            "bias against generation (95% CI bars), equilibrium fixed point and its 95% CI band",
        )
        ctx.used_images.add(png)
    else:
        from synthbias.studies.equilibrium.plots import plot_trajectories

        with tempfile.TemporaryDirectory() as tmp:
            img = img_file(
                plot_trajectories(r, Path(tmp) / TRAJECTORY_PNG), "bias against generation"
            )
    eq = r.get("equilibrium") or {}
    fit_metric = r.get("fit_metric", "")
    interp = r.get("interpretation") or {}
    if interp and not interp.get("interpretable", True):
        verdict = "Fit not interpretable, because " + "; ".join(interp.get("reasons") or []) + "."
        ctx.flags.append(
            {"severity": "warning", "message": verdict, "source": "equilibrium interpretability"}
        )
    elif (eq.get("fixed_point_interval") or {}).get("status") == "unbounded":
        verdict = (
            "The slope's CI reaches 1: b* has no finite interval, so this design cannot locate "
            "an equilibrium."
        )
    elif eq.get("stable") and eq.get("fixed_point") is not None:
        verdict = (
            f"Stable equilibrium: under the fitted map, values below b* = "
            f"{fmt_num(eq['fixed_point'])} rise towards it and values above fall towards it."
        )
    elif eq:
        verdict = "No attracting equilibrium (|c| ≥ 1): bias does not settle under this map."
    else:
        verdict = "No equilibrium fit stored."
    chains = r.get("chains", 1)
    has_fit = "a" in eq
    items = [
        ("metric", fit_metric),
        (
            "chains per level (the replicates)",
            f"{chains}" + (" (not replicated: no interval below 3)" if chains < 3 else ""),
        ),
        ("slope c (reported first)", slope_text(eq) if has_fit else "—"),
        ("fixed point", fixed_point_text(eq) if has_fit else eq.get("note", "—")),
        ("map", map_text(eq["a"], eq["c"]) if has_fit else "—"),
        (
            "transitions",
            f"{eq.get('n_points', '—')} (from generation {eq.get('first_generation', 0)}; "
            "generation 0 fixed by design)",
        ),
        ("CI method", eq.get("method", "—")),
    ]
    findings = "".join(f"<p>Note: {esc(n)}.</p>" for n in seed_share_notes(r))
    findings += "".join(f"<p>Finding: {esc(f)}.</p>" for f in interp.get("findings") or [])
    body = (
        f'<div class="grid">{img}<div>{kv_table(items)}<p>{esc(verdict)}</p>{findings}</div></div>'
        + _direction_table(r)
        + _power_html(r)
    )
    fc = ctx.run_dir / "forecast.json"
    if fc.is_file():
        try:
            body += _forecast_html(json.loads(fc.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            body += '<p class="warn">forecast.json could not be read.</p>'
    return Section("equilibrium", "Equilibrium", body)


def _direction_table(r: dict[str, Any]) -> str:
    """Per level and generation: direction, its base, off-topic share (each with its CI)."""

    def cell(m: dict[str, Any] | None, k: int = 1) -> str:
        m = m or {}
        if k == 0:
            return f"{fmt_num(m.get('value'), 2)} (seed)"
        c = m.get("ci")
        if c:
            return f"{fmt_num(m.get('value'), 2)} {fmt_ci(c.get('low'), c.get('high'), 2)}"
        t = m.get("text_ci") or {}
        texts = f" (texts {fmt_ci(t.get('low'), t.get('high'), 2)})" if t.get("low") else ""
        return f"{fmt_num(m.get('value'), 2)} not replicated{texts}"

    def mde(m: dict[str, Any] | None, k: int) -> str:
        if k == 0:
            return "fixed"
        p = cell_power(m)
        return f"±{fmt_share(p['mde_80'], 3)}" if p["mde_80"] is not None else f"— ({p['why']})"

    metric = r.get("fit_metric", CONDITIONAL)

    rows = []
    for lv in r.get("levels") or []:
        for g in lv.get("generations") or []:
            ms = g.get("metrics") or {}
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{esc(v)}</td>"
                    for v in (
                        f"{lv['level']:g}",
                        g["generation"],
                        cell(ms.get(CODE_BALANCED), g["generation"]),
                        cell(ms.get(CONDITIONAL), g["generation"]),
                        mde(ms.get(metric), g["generation"]),
                        f"{g.get('pairings', '—')} / {g.get('n', '—')}",
                        cell(ms.get(PAIRING), g["generation"]),
                        cell(ms.get(PAIRING_MALE_CODED), g["generation"])
                        + " / "
                        + cell(ms.get(PAIRING_FEMALE_CODED), g["generation"]),
                        cell(ms.get(RATE), g["generation"]),
                        cell(g.get("off_topic_share"), g["generation"]),
                    )
                )
                + "</tr>"
            )
    head = "".join(
        f"<th>{esc(h)}</th>"
        for h in (
            "b0",
            "generation",
            "code-balanced share ½[P(stereo | male-coded) + P(stereo | female-coded)]",
            "pooled share stereo/(stereo+anti), codes pooled "
            "(secondary: a global he/she lean moves it)",
            "MDE at 80% power (fit metric)",
            "pairings / texts",
            "pairing rate",
            "pairing rate male- / female-coded",
            "stereotype rate (all texts)",
            "off topic",
        )
    )
    return (
        "<h3>Direction and its base</h3><p>Each value is the mean over chains (the replicates) "
        "with a 95% CI from their spread; below 3 chains it is not replicated and the text-level "
        "bootstrap CI (within-run variation only) is shown instead.</p><table><thead><tr>"
        + head
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _power_html(r: dict[str, Any]) -> str:
    """The design's power and the paper's figures beside ours (labelled as the paper's)."""

    lines = power_lines(r)
    if not lines:
        return ""
    return "<h3>Power, and the paper's figures</h3>" + "".join(
        f"<p>{esc(line.strip())}</p>" for line in lines
    )


def _forecast_html(fc: dict[str, Any]) -> str:
    f = fc.get("forecast") or {}
    has_fit = "a" in f
    items = [
        ("from generations", f"0–{fc.get('generations_used')}"),
        ("slope", slope_text(f) if has_fit else "—"),
        ("forecast", fixed_point_text(f) if has_fit else f.get("note", "—")),
        ("stable (point estimate)", fmt_num(f.get("stable"))),
    ]
    full = fc.get("full_fit")
    if full:
        items.append(("full-run b*", fmt_num(full.get("fixed_point"))))
    items += _one_generation_items(fc.get("one_generation") or {})
    return "<h3>Forecast from the first generations</h3>" + kv_table(items)


def _one_generation_items(og: dict[str, Any]) -> list[tuple[str, str]]:
    """The one-generation prediction (generation 0 → 1: map, calibration gap, b* for the run's
    regime and real share, the Taori–Hashimoto bound) and how it did on the loop check."""
    if "fit" not in og:
        return [("one-generation prediction", og.get("note", "—"))] if og else []
    f = og["fit"]
    items = [
        (
            "one-generation map (gen 0 → 1)",
            f"f(x) = {f['a']:.3f} + ({f['c']:+.3f})·x, slope CI "
            f"[{f['c_ci']['low']:+.3f}, {f['c_ci']['high']:+.3f}], {f['n_chains']} chains",
        )
    ]
    for row in og.get("per_level") or []:
        fp, b, g = row["b_star"], row["bound"], row["gap"]
        ci = (
            f"[{fp['ci_low']:.3f}, {fp['ci_high']:.3f}]"
            if fp.get("ci_low") is not None
            else f"({fp.get('status')})"
        )
        bound = "none (ρ = 0)" if b.get("bound") is None else f"{b['bound']:.3f}"
        items.append(
            (
                f"predicted b* ({og['regime']}, real share {og['real_share']:g}, "
                f"b_r = {row['b_real']:.3g})",
                f"{fp['estimate']:.3f} {ci}; gap δ(b_r) = {g['estimate']:+.3f}; "
                f"Taori & Hashimoto (ICML 2023) bound {bound}",
            )
        )
    chk = og.get("check") or {}
    items.append(("on the loop check", f"{chk.get('config')}: {chk.get('summary')}"))
    return items


#: Metrics whose value grows towards the stereotype (positive = towards it). Others (gender
#: lean such as embedding.gender.anchor_bias or rule.gender.gendered_term_imbalance, the pairing
#: rate) say nothing about the stereotype's direction and stay out of the divergence comparison,
#: so a consistent shift towards the stereotype is never flagged as divergence.
STEREOTYPE_ORIENTED = (
    "rule.gender.code_balanced_stereotype_share",
    "rule.gender.conditional_stereotype_share",
    "rule.gender.stereotype_rate",
    "rule.gender.signed_bias",
    "probe.gender.pronoun_preference",
    "probe.gender.stereotype_win_rate",
    "probe.gender.classifier_stereotype_rate",
)


def _level_changes(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per level and stereotype-oriented metric: first and last generation's values, the change
    and its direction ('up'/'down' when the two 95% CIs do not overlap, else 'flat')."""
    out = []
    for lv in levels:
        gens = lv.get("generations") or []
        if len(gens) < 2:
            continue
        first, last = gens[0], gens[-1]
        for name, m1 in (last.get("metrics") or {}).items():
            if name not in STEREOTYPE_ORIENTED:
                continue
            m0 = (first.get("metrics") or {}).get(name)
            if not m0 or m0.get("value") is None or m1.get("value") is None:
                continue
            v0, v1 = float(m0["value"]), float(m1["value"])
            if not (math.isfinite(v0) and math.isfinite(v1)):
                continue
            c0, c1 = m0.get("ci") or {}, m1.get("ci") or {}
            direction = "flat"
            if None not in (c0.get("low"), c0.get("high"), c1.get("low"), c1.get("high")):
                if c1["low"] > c0["high"]:
                    direction = "up"
                elif c1["high"] < c0["low"]:
                    direction = "down"
            out.append(
                {
                    "level": lv["level"],
                    "metric": name,
                    "first": v0,
                    "last": v1,
                    "change": v1 - v0,
                    "direction": direction,
                    "generations": (first["generation"], last["generation"]),
                }
            )
    return out


def divergence_flags(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flags where bias metrics disagree: at one initial level, one metric rises and another
    falls between the first and last generation, both beyond their 95% CIs."""
    flags = []
    changes = _level_changes(levels)
    for level in dict.fromkeys(c["level"] for c in changes):
        ups = [c for c in changes if c["level"] == level and c["direction"] == "up"]
        downs = [c for c in changes if c["level"] == level and c["direction"] == "down"]
        if ups and downs:
            g0, g1 = ups[0]["generations"]
            up = ", ".join(f"{c['metric']} {c['change']:+.3f}" for c in ups)
            down = ", ".join(f"{c['metric']} {c['change']:+.3f}" for c in downs)
            flags.append(
                {
                    "severity": "warning",
                    "message": f"b0 = {level:g}, generation {g0} → {g1}: metrics diverge — "
                    f"rising: {up}; falling: {down} (changes beyond both 95% CIs)",
                    "source": "metric divergence",
                }
            )
    return flags


@register_section("equilibrium", order=30)
def divergence(ctx: ReportContext) -> Section | None:
    levels = ctx.results.get("levels") or []
    changes = _level_changes(levels)
    if not changes:
        return None
    flags = divergence_flags(levels)
    ctx.flags.extend(flags)
    from synthbias.studies.equilibrium.plots import plot_divergence

    fig = plot_divergence(changes)
    text = (
        f"{len(flags)} level(s) where metrics move in opposite directions."
        if flags
        else "All metrics that changed beyond their CIs moved in the same direction."
    )
    return Section(
        "divergence",
        "Metric divergence",
        img_figure(
            fig,
            "change per metric and level",
            "change from the first to the last generation of the metrics oriented so that "
            "positive = towards the stereotype (colour scaled per metric; ▲/▼ beyond both 95% "
            "CIs)",
        )
        + f"<p>{esc(text)} Details under Flags.</p>",
    )


_LEVEL_DIR = re.compile(r"^level-(.+)$")
_GEN_FILE = re.compile(r"^gen-(\d+)\.jsonl$")


def corpus_files(run_dir: Path) -> list[tuple[str, int, Path]]:
    """(level, generation, path) of every stored corpus, in level then generation order."""
    out = []
    for d in (run_dir / "corpora").glob("level-*"):
        m = _LEVEL_DIR.match(d.name)
        if not (m and d.is_dir()):
            continue
        for f in d.glob("gen-*.jsonl"):
            g = _GEN_FILE.match(f.name)
            if g:
                out.append((m.group(1), int(g.group(1)), f))

    def key(t: tuple[str, int, Path]) -> tuple[float, str, int]:
        try:
            return (float(t[0]), t[0], t[1])
        except ValueError:
            return (math.inf, t[0], t[1])

    return sorted(out, key=key)


def _rule_scorer(cfg: dict[str, Any]) -> Any:
    rule = ((cfg.get("measure") or {}).get("rule")) or {}
    return GenderRuleScorer.from_config(rule)


@register_section("equilibrium", order=70)
def samples(ctx: ReportContext) -> Section | None:
    files = corpus_files(ctx.run_dir)
    if not files:
        return None

    per_file = max(1, ctx.max_samples // len(files))
    rows: list[dict[str, Any]] = []
    truncated = False
    for level, gen, f in files:
        try:
            recs = read_jsonl(f)
        except CorpusError:
            continue
        truncated |= len(recs) > per_file
        for rec in recs[:per_file]:
            rows.append({"level": level, "generation": gen, "id": rec.id, "text": rec.text})
    try:
        scorer = _rule_scorer(ctx.results.get("config") or {})
    except Exception:  # noqa: BLE001 - labels are a bonus; the texts still show
        scorer = None
    if scorer is not None:
        for row, s in zip(rows, scorer.score_texts([r["text"] for r in rows]), strict=True):
            row["rule label"] = s.label
            row["stereotypical"] = int(s.label == "stereotypical")
            row["signed"] = s.signed
            row["referents"] = (
                "both"
                if s.male and s.female
                else "male"
                if s.male
                else "female"
                if s.female
                else "none"
            )
            row["occupations"] = ", ".join(o for o, _ in s.occupations)
    columns = [
        c
        for c in (
            "level",
            "generation",
            "id",
            "rule label",
            "stereotypical",
            "signed",
            "referents",
            "occupations",
        )
        if c in (rows[0] if rows else {})
    ]
    filters = [c for c in ("level", "generation", "rule label", "referents") if c in columns]
    note = f"first {per_file} texts of each corpus" if truncated else ""
    note += ("; " if note else "") + "per-text scores from the rule-based gender metric"
    ctx.samples_rendered = True
    return Section("samples", "Samples", sample_browser(rows, columns, filters, "text", note))
