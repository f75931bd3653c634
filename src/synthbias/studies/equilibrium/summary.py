"""What an equilibrium run's numbers support: per-generation values over replicate chains,
whether the fit is interpretable (on topic, enough pairings), and the design's power set beside
the effects the paper reports.

Kept apart from :mod:`~synthbias.studies.equilibrium.runner` (which runs the study) so the
console, the report and the forecast read the same summaries from ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.measure.direction import (
    CODE_BALANCED,
    CONDITIONAL,
    DIRECTION_STATS,
    PAIRING,
    label_signs,
    mean_stat,
)
from synthbias.stats.chains import cluster_values
from synthbias.stats.power import MIN_REPLICATES
from synthbias.stats.replicates import replicate_estimate
from synthbias.studies.equilibrium.generation import seed_count

#: The paper's reported effects (Gemma-2-2b-it, its own metric and seeds), shown beside ours.
PAPER_MODEL = "Gemma-2-2b-it"
PAPER_EFFECTS: tuple[dict[str, Any], ...] = (
    {"level": 0.1, "relative_change": 0.36, "label": "from b0 = 0.1: +36 %"},
    {"level": 0.6, "relative_change": -0.26, "label": "from b0 = 0.6: −26 %"},
)
PAPER_EQUILIBRIUM = (0.11, 0.13)
#: What the paper's figures measure: its own bias score, not our share (so never compared as
#: numbers with ours).
PAPER_METRIC = "the paper's own bias score, where 0 means no bias"
#: The range of a share: its intervals are clipped to it.
SHARE = (0.0, 1.0)
#: The share of generated texts that are off topic, as a metric name (tables, headline list).
OFF_TOPIC_METRIC = "generation.off_topic_share"


def summarise_generation(
    per_chain: Sequence[dict[str, Any]],
    fit_metric: str,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    inference: str = "t",
) -> dict[str, Any]:
    """One generation of one level over its chains (the replicates).

    ``per_chain[r]`` holds chain r's per-text ``codes``, ``off_topic`` and ``fit`` values (see
    ``GenderMeasurer.per_text``). Each direction metric (and the fit metric, if it is another
    one) and the off-topic share get the headline over chains (:func:`replicate_headline`), the
    total number of coded pairings and per-chain counts.
    """
    codes = [np.asarray(c["codes"]) for c in per_chain]
    over: dict[str, dict[str, Any]] = {}
    common = {"n_resamples": n_resamples, "level": level, "seed": seed, "inference": inference}
    for name, stat in DIRECTION_STATS.items():
        over[name] = replicate_headline(codes, stat, bounds=SHARE, **common)
    if fit_metric not in DIRECTION_STATS:
        fits = [np.asarray(c["fit"], dtype=float) for c in per_chain]
        over[fit_metric] = replicate_headline(fits, mean_stat, **common)
    off = [np.asarray(c["off_topic"], dtype=float) for c in per_chain]
    chains = [
        {
            "chain": r,
            "n": int(len(c)),
            "stereotypical": int((label_signs(c) == 1).sum()),
            "anti": int((label_signs(c) == -1).sum()),
            "pairings": int((label_signs(c) != 0).sum()),
            "off_topic": int(o.sum()),
            "unpaired_on_topic": dict(pc.get("unpaired") or {}),
        }
        for r, (c, o, pc) in enumerate(zip(codes, off, per_chain, strict=True))
    ]
    return {
        "over_chains": over,
        "pairings": sum(ch["pairings"] for ch in chains),
        "off_topic": replicate_headline(off, mean_stat, bounds=SHARE, **common)
        | {"count": sum(ch["off_topic"] for ch in chains)},
        "chains": chains,
    }


def replicate_headline(
    chains: Sequence[np.ndarray],
    stat: Any,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    inference: str = "t",
    bounds: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """A generation's value over its chains: the mean of the per-chain values with the interval
    from their spread (``inference``: ``t`` or ``two_stage``, see
    :func:`synthbias.stats.replicates.replicate_estimate`), its SE and 80 %-power MDE, and
    ``status`` (``not replicated`` below 3 chains with a value: then ``ci`` is None). With
    ``bounds`` (a share: (0, 1)) the interval is clipped to them and ``ci["clipped"]`` says so.

    ``text_ci`` is the secondary, text-level figure: a bootstrap of chains then texts (with one
    chain, texts only), which leaves out most of the run-to-run variation and is named so.
    """
    per = [float(stat(np.asarray(x))) if len(x) else math.nan for x in chains]
    rep = replicate_estimate(
        per,
        method=inference,  # type: ignore[arg-type]
        items=[np.asarray(x) for x in chains] if inference == "two_stage" else None,
        statistic=stat,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
    )
    cv = cluster_values(chains, stat, n_resamples=n_resamples, level=level, seed=seed).to_dict()
    ci = None
    if rep.ci_low is not None and rep.ci_high is not None:
        lo, hi = rep.ci_low, rep.ci_high
        if bounds is not None:
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        clipped = (lo, hi) != (rep.ci_low, rep.ci_high)
        ci = {"low": lo, "high": hi, "level": level, "clipped": clipped}
    n_ok = rep.n_replicates
    return {
        "value": rep.estimate,
        "ci": ci,
        "status": rep.status,
        "se": rep.se,
        "df": rep.df,
        "mde_80": rep.mde_80,
        "n_chains": n_ok,
        "per_chain": cv["per_chain"],
        "ci_method": (
            f"{rep.method} ({n_ok} chains)"
            if rep.replicated
            else f"not replicated ({n_ok} chain(s) with a value; an interval needs ≥ "
            f"{MIN_REPLICATES})"
        ),
        "text_ci": cv["ci"],
        "text_ci_method": (
            "bootstrap of chains, then texts (within-run variation only)"
            if len(chains) > 1
            else "bootstrap of texts in one chain (within-run variation only)"
        ),
    }


def seed_shares(levels: Sequence[float], n: int) -> list[dict[str, Any]]:
    """Per level what generation 0 holds in each chain: ``stereotypical`` = round(b0 · n) of its
    ``n`` texts (:func:`~synthbias.studies.equilibrium.generation.seed_count`), the ``realised``
    share (stereotypical / n: the conditional share with ``seed_remainder: anti``, the
    stereotype rate with ``neutral``) and whether it is ``exact`` (n · b0 a whole number).

    Generation 0 is not rounded up to a size that fits b0: n stays as configured, and a level
    it cannot hold exactly is reported with its realised share (:func:`seed_share_notes`); the
    tables and the fit read generation 0's measured value, which is the realised share."""
    out = []
    for b0 in levels:
        k = seed_count(b0, n)
        exact = math.isclose(b0 * n, k, rel_tol=0.0, abs_tol=1e-9)
        out.append({"level": b0, "n": n, "stereotypical": k, "realised": k / n, "exact": exact})
    return out


def seed_share_notes(results: dict[str, Any]) -> list[str]:
    """One sentence per level whose b0 generation 0 cannot hold exactly (n · b0 not a whole
    number), with the realised share (console and report)."""
    return [
        f"b0 = {s['level']:g} is not a whole number of texts at n = {s['n']} "
        f"(n·b0 = {s['level'] * s['n']:g}): generation 0 holds {s['stereotypical']} "
        f"stereotypical texts of {s['n']} per chain, a realised share of {s['realised']:.3f}, "
        "which is the generation-0 value the tables and the fit use"
        for s in results.get("seed_shares") or []
        if not s["exact"]
    ]


def interpretation(results: dict[str, Any], study: Any) -> dict[str, Any]:
    """Whether the fit can be read as a bias equilibrium, the reasons if not, and findings.

    Not interpretable when any generated generation is off topic beyond ``study.max_off_topic``,
    when (for a conditional fit metric) a generation has fewer than ``study.min_pairings`` coded
    pairings over its chains, or when no map could be fitted. A falling pairing rate is reported
    as a finding (the generator writes fewer gendered referents), not as drift.
    """
    reasons: list[str] = []
    findings: list[str] = []
    conditional = results.get("fit_metric") in (CONDITIONAL, CODE_BALANCED)
    for lv in results.get("levels") or []:
        b0 = lv["level"]
        gens = lv.get("generations") or []
        for g in gens:
            if g["generation"] == 0:
                continue
            off = (g.get("off_topic_share") or {}).get("value")
            if off is not None and off > study.max_off_topic:
                reasons.append(
                    f"b0 = {b0:g}, generation {g['generation']}: {off:.0%} of texts off topic "
                    f"(limit {study.max_off_topic:.0%})"
                )
            pairings = g.get("pairings")
            if conditional and pairings is not None and pairings < study.min_pairings:
                reasons.append(
                    f"b0 = {b0:g}, generation {g['generation']}: {pairings} coded pairings over "
                    f"{lv.get('chains', 1)} chain(s), fewer than the {study.min_pairings} the "
                    "conditional share needs"
                )
        if len(gens) >= 2:
            p0 = (gens[0]["metrics"].get(PAIRING) or {}).get("value")
            p1 = (gens[-1]["metrics"].get(PAIRING) or {}).get("value")
            m1 = gens[-1]["metrics"].get(PAIRING) or {}
            ci1 = m1.get("ci") or m1.get("text_ci") or {}
            high = ci1.get("high")
            if p0 is not None and p1 is not None and high is not None and high < p0:
                why = _unpaired_text(gens[-1])
                findings.append(
                    f"b0 = {b0:g}: the pairing rate falls from {p0:.2f} to {p1:.2f} by generation "
                    f"{gens[-1]['generation']}: the generator writes fewer texts that pair a "
                    f"gender-coded occupation with a gendered referent{why}; a finding about the "
                    "generator, not a change of direction"
                )
    eq = results.get("equilibrium") or {}
    if "a" not in eq:
        reasons.append(f"no map fitted ({eq.get('note', 'no fit stored')})")
    else:
        status = (eq.get("fixed_point_interval") or {}).get("status")
        if status == "unbounded":
            findings.append(
                "the slope's CI reaches 1, so b* has no finite interval (unbounded): this design "
                "cannot locate an equilibrium"
            )
        elif status == "not replicated":
            findings.append(
                f"the fit is not replicated ({eq.get('n_chains')} chains in it; an interval "
                f"needs ≥ {MIN_REPLICATES}): c and b* are point values only"
            )
    return {
        "interpretable": not reasons,
        "reasons": reasons,
        "findings": findings,
        "limits": {"max_off_topic": study.max_off_topic, "min_pairings": study.min_pairings},
        "single_chain": results.get("chains", 1) == 1,
    }


def _unpaired_text(g: dict[str, Any]) -> str:
    """ " (of the N on-topic unpaired texts: a with a gendered referent but an uncoded role …)"."""
    totals = {"uncoded_role": 0, "no_referent": 0, "no_gender": 0, "garbled": 0}
    for ch in g.get("chains") or []:
        for k, v in (ch.get("unpaired_on_topic") or {}).items():
            totals[k] = totals.get(k, 0) + v
    n = sum(totals.values())
    if not n:
        return ""
    return (
        f" (of its {n} on-topic unpaired texts, {totals['uncoded_role']} refer to a gendered "
        f"person in an uncoded role such as 'employee' or 'manager', {totals['no_referent']} "
        f"name a coded occupation without a decisive gendered referent, "
        f"{totals['no_gender']} have neither"
        + (f", {totals['garbled']} are garbled repetition loops" if totals["garbled"] else "")
        + ")"
    )


#: (z_{0.975} + z_{0.80}): the normal MDE multiplier, for the binomial floor at b0.
_Z_MDE = 1.959964 + 0.841621


def cell_power(m: dict[str, Any] | None) -> dict[str, Any]:
    """One headline cell's 80 %-power MDE and why there is none: ``not replicated`` (fewer than
    3 chains), ``not estimable`` (every chain gave the same value: SE 0, as at a share of 0 or
    1), ``no value`` (no chain had one)."""
    m = m or {}
    mde, se = m.get("mde_80"), m.get("se")
    if m.get("value") is None:
        return {"mde_80": None, "why": "no value (no chain had a coded pairing)"}
    if m.get("status") != "replicated" or mde is None:
        return {
            "mde_80": None,
            "why": f"not replicated: {m.get('n_chains', '?')} chain(s), needs ≥ {MIN_REPLICATES}",
        }
    if not se:
        return {"mde_80": None, "why": "not estimable: every chain gave the same value (SE 0)"}
    return {"mde_80": float(mde), "why": None}


def power_summary(results: dict[str, Any], study: Any) -> dict[str, Any]:
    """The smallest change from b0 each headline cell detects at 80 % power, and the paper's
    effects beside it.

    Generation 0 is fixed by design, so a generation-k mean differs from b0 by its own error
    only: the cell's MDE is (t_{0.975} + t_{0.80}) × its between-chain SE on chains − 1 df
    (:func:`synthbias.stats.power.mde`). ``per_level`` lists every cell; ``worst`` is the cell
    with the largest MDE (or the first without one: then no design-wide MDE is claimed). A
    paper effect is "visible" when its size is at least the detectable change at the last
    generation of the same level: the larger of that cell's MDE and the binomial MDE at b0 for
    the pairings measured (a floor: chains can agree by chance or at a bound).

    The paper's equilibrium (0.11–0.13) is on its own metric, a bias score where 0 means no
    bias, while our b* is on the fit metric, for the direction shares a share where 0.5 means no
    lean: ``paper_equilibrium`` keeps both, each with its scale, and says they are not
    ``comparable`` (no overlap verdict: the numbers are on different scales).
    """
    metric = results.get("fit_metric", CONDITIONAL)
    per_level = []
    for lv in results.get("levels") or []:
        gens = lv.get("generations") or []
        base = ((gens[0]["metrics"].get(metric) or {}).get("value")) if gens else None
        rows = []
        for g in gens:
            if g["generation"] == 0:
                continue
            m = g["metrics"].get(metric) or {}
            v = m.get("value")
            rows.append(
                {
                    "generation": g["generation"],
                    "value": v,
                    "change": v - base if v is not None and base is not None else None,
                    "ci": m.get("ci"),
                    "pairings": g.get("pairings"),
                    **cell_power(m),
                }
            )
        per_level.append({"level": lv["level"], "generations": rows})
    cells = [(lv["level"], r) for lv in per_level for r in lv["generations"]]
    missing = [(lvl, r) for lvl, r in cells if r["mde_80"] is None]
    worst: dict[str, Any] | None = None
    if missing:
        lvl, r = missing[0]
        worst = {"level": lvl, "generation": r["generation"], "mde_80": None, "why": r["why"]}
        worst["cells_without_mde"] = len(missing)
    elif cells:
        lvl, r = max(cells, key=lambda c: c[1]["mde_80"])
        worst = {"level": lvl, "generation": r["generation"], "mde_80": r["mde_80"], "why": None}
    paper = [_paper_row(eff, per_level) for eff in PAPER_EFFECTS]
    eq = results.get("equilibrium") or {}
    ci = eq.get("ci") or {}
    lo, hi = ci.get("low"), ci.get("high")
    p_lo, p_hi = PAPER_EQUILIBRIUM
    eq_row = {
        "paper_band": [p_lo, p_hi],
        "paper_metric": PAPER_METRIC,
        "ours": eq.get("fixed_point"),
        "our_ci": [lo, hi] if lo is not None and hi is not None else None,
        "our_status": (eq.get("fixed_point_interval") or {}).get("status"),
        "our_metric": f"{metric}, {_scale(metric)}",
        "comparable": False,
    }
    return {
        "metric": metric,
        "n": study.n,
        "chains": study.chains,
        "convention": "80% power, two-sided 5% test; MDE = (t_0.975 + t_0.80) x between-chain SE",
        "per_level": per_level,
        "worst": worst,
        "paper_model": PAPER_MODEL,
        "paper": paper,
        "paper_equilibrium": eq_row,
        "note": "the paper's figures are the paper's (its model, metric and seeds), not ours",
    }


def _scale(metric: str) -> str:
    """What a value of ``metric`` means, for the line beside the paper's figure."""
    if metric in (CONDITIONAL, CODE_BALANCED):
        return "a share of stereotypical among paired texts, where 0.5 means no lean"
    return "our metric, not the paper's"


def _paper_row(eff: dict[str, Any], per_level: list[dict[str, Any]]) -> dict[str, Any]:
    b0 = eff["level"]
    lv = next((x for x in per_level if math.isclose(x["level"], b0)), None)
    last = lv["generations"][-1] if lv and lv["generations"] else None
    size = abs(eff["relative_change"]) * b0
    row: dict[str, Any] = {
        "effect": eff["label"],
        "absolute_change": eff["relative_change"] * b0,
        "generation": last["generation"] if last else None,
        "our_mde_80": last["mde_80"] if last else None,
        "binomial_mde_at_b0": None,
        "detectable_change": None,
        "visible": None,
        "note": None if last else f"level {b0:g} not in this run",
    }
    if last is None:
        return row
    pairs = last.get("pairings") or 0
    floor = _Z_MDE * math.sqrt(b0 * (1 - b0) / pairs) if pairs else None
    row["binomial_mde_at_b0"] = floor
    if last["mde_80"] is None:
        row["note"] = last["why"]
        return row
    need = max(x for x in (last["mde_80"], floor) if x is not None)
    row["detectable_change"] = need
    row["visible"] = size >= need
    return row


def fmt_share(v: float | None, digits: int = 3) -> str:
    """A share or a change of one; below the printed precision it says ``< 0.001`` rather
    than ``0.000``."""
    if v is None:
        return "—"
    if v != 0 and abs(v) < 0.5 * 10**-digits:
        return f"< {10**-digits:.{digits}f}"
    return f"{v:.{digits}f}"


def power_lines(results: dict[str, Any]) -> list[str]:
    """The power statement as plain lines (console and report)."""
    pw = results.get("power") or {}
    if not pw or "per_level" not in pw:
        return []
    lines = [
        f"Power at 80% (two-sided 5% test; MDE = (t_0.975 + t_0.80) × between-chain SE, "
        f"n = {pw.get('n')} texts × {pw.get('chains')} chain(s) per level and generation), "
        f"smallest detectable change from b0 in {pw.get('metric')}, per cell:"
    ]
    for lv in pw["per_level"]:
        cells = ", ".join(
            f"gen {r['generation']} "
            + (f"±{fmt_share(r['mde_80'])}" if r["mde_80"] is not None else f"— ({r['why']})")
            for r in lv["generations"]
        )
        lines.append(f"  b0 = {lv['level']:g}: {cells or 'no generated generation'}.")
    w = pw.get("worst")
    if w and w.get("mde_80") is not None:
        lines.append(
            f"  Worst cell: b0 = {w['level']:g}, generation {w['generation']}: "
            f"±{fmt_share(w['mde_80'])}."
        )
    elif w:
        lines.append(
            f"  No design-wide MDE: {w['cells_without_mde']} cell(s) without one (first: b0 = "
            f"{w['level']:g}, generation {w['generation']}: {w['why']})."
        )
    for p in pw.get("paper") or []:
        if p.get("visible") is None:
            verdict = f"cannot say ({p.get('note') or 'no MDE'})"
        else:
            verdict = "detectable here" if p["visible"] else "NOT detectable here"
            verdict += (
                f" at 80% power (needs |change| ≥ {fmt_share(p['detectable_change'])}: the larger "
                f"of our MDE {fmt_share(p['our_mde_80'])} at generation {p['generation']} and the "
                f"binomial MDE at b0 {fmt_share(p['binomial_mde_at_b0'])})"
            )
        lines.append(
            f"  The paper's effect ({pw.get('paper_model')}, theirs), {p['effect']} "
            f"(= {p['absolute_change']:+.3f}): {verdict}."
        )
    lines.append(paper_equilibrium_line(pw))
    return lines


def paper_equilibrium_line(pw: dict[str, Any]) -> str:
    """The paper's equilibrium and ours, each on its own scale, side by side and not compared:
    the paper's 0.11–0.13 is its own bias score (0 = no bias), ours a share (0.5 = no lean)."""
    e = pw.get("paper_equilibrium") or {}
    ours = e.get("our_ci")
    if ours:
        ci = f" [{ours[0]:.3f}, {ours[1]:.3f}]"
    elif e.get("our_status") == "unbounded":
        ci = " (CI unbounded: the slope's CI reaches 1)"
    else:
        ci = f" (no interval: {e.get('our_status') or 'not fitted'})"
    lo, hi = e.get("paper_band") or PAPER_EQUILIBRIUM
    return (
        f"  The paper's equilibrium ({pw.get('paper_model', PAPER_MODEL)}, theirs): "
        f"{lo:.2f}–{hi:.2f} on {e.get('paper_metric', PAPER_METRIC)}. Ours: b* = "
        f"{fmt_share(e.get('ours'))}{ci} in "
        f"{e.get('our_metric') or pw.get('metric')}. The two are on different scales, so "
        "they are not compared numerically."
    )


__all__ = [
    "OFF_TOPIC_METRIC",
    "PAPER_EFFECTS",
    "PAPER_EQUILIBRIUM",
    "PAPER_METRIC",
    "PAPER_MODEL",
    "cell_power",
    "fmt_share",
    "interpretation",
    "paper_equilibrium_line",
    "power_lines",
    "power_summary",
    "replicate_headline",
    "seed_share_notes",
    "seed_shares",
    "summarise_generation",
]
