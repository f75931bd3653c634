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

from synthbias.measure.direction import CONDITIONAL, DIRECTION_STATS, PAIRING, mean_stat
from synthbias.stats.chains import cluster_values

#: The paper's reported effects (Gemma-2-2b-it, its own metric and seeds), shown beside ours.
PAPER_MODEL = "Gemma-2-2b-it"
PAPER_EFFECTS: tuple[dict[str, Any], ...] = (
    {"level": 0.1, "relative_change": 0.36, "label": "from b0 = 0.1: +36 %"},
    {"level": 0.6, "relative_change": -0.26, "label": "from b0 = 0.6: −26 %"},
)
PAPER_EQUILIBRIUM = (0.11, 0.13)
#: The share of generated texts that are off topic, as a metric name (tables, headline list).
OFF_TOPIC_METRIC = "generation.off_topic_share"


def summarise_generation(
    per_chain: Sequence[dict[str, Any]],
    fit_metric: str,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """One generation of one level over its chains.

    ``per_chain[r]`` holds chain r's per-text ``codes``, ``off_topic`` and ``fit`` values (see
    ``GenderMeasurer.per_text``). Returns the direction metrics (and the fit metric, if it is
    another one) as the mean over chains with a chains-then-texts bootstrap CI, the off-topic
    share the same way, the total number of coded pairings and per-chain counts.
    """
    codes = [np.asarray(c["codes"]) for c in per_chain]
    over: dict[str, dict[str, Any]] = {}
    for name, stat in DIRECTION_STATS.items():
        cv = cluster_values(codes, stat, n_resamples=n_resamples, level=level, seed=seed)
        over[name] = _cv_dict(cv)
    if fit_metric not in DIRECTION_STATS:
        fits = [np.asarray(c["fit"], dtype=float) for c in per_chain]
        cv = cluster_values(fits, mean_stat, n_resamples=n_resamples, level=level, seed=seed)
        over[fit_metric] = _cv_dict(cv)
    off = [np.asarray(c["off_topic"], dtype=float) for c in per_chain]
    off_cv = cluster_values(off, mean_stat, n_resamples=n_resamples, level=level, seed=seed)
    chains = [
        {
            "chain": r,
            "n": int(len(c)),
            "stereotypical": int((c == 1).sum()),
            "anti": int((c == -1).sum()),
            "pairings": int((c != 0).sum()),
            "off_topic": int(o.sum()),
            "unpaired_on_topic": dict(pc.get("unpaired") or {}),
        }
        for r, (c, o, pc) in enumerate(zip(codes, off, per_chain, strict=True))
    ]
    return {
        "over_chains": over,
        "pairings": sum(ch["pairings"] for ch in chains),
        "off_topic": _cv_dict(off_cv) | {"count": sum(ch["off_topic"] for ch in chains)},
        "chains": chains,
    }


def _cv_dict(cv: Any) -> dict[str, Any]:
    d = cv.to_dict()
    return {
        "value": d["value"],
        "ci": d["ci"],
        "per_chain": d["per_chain"],
        "ci_method": d["method"],
    }


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def interpretation(results: dict[str, Any], study: Any) -> dict[str, Any]:
    """Whether the fit can be read as a bias equilibrium, the reasons if not, and findings.

    Not interpretable when any generated generation is off topic beyond ``study.max_off_topic``,
    when (for a conditional fit metric) a generation has fewer than ``study.min_pairings`` coded
    pairings over its chains, or when no map could be fitted. A falling pairing rate is reported
    as a finding (the generator writes fewer gendered referents), not as drift.
    """
    reasons: list[str] = []
    findings: list[str] = []
    conditional = results.get("fit_metric") == CONDITIONAL
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
            ci1 = (gens[-1]["metrics"].get(PAIRING) or {}).get("ci") or {}
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
    elif eq.get("ci") is None:
        reasons.append("no bootstrap fit had |c| < 1, so b* has no CI")
    return {
        "interpretable": not reasons,
        "reasons": reasons,
        "findings": findings,
        "limits": {"max_off_topic": study.max_off_topic, "min_pairings": study.min_pairings},
        "single_chain": results.get("chains", 1) == 1,
    }


def _unpaired_text(g: dict[str, Any]) -> str:
    """ " (of the N on-topic unpaired texts: a with a gendered referent but an uncoded role …)"."""
    totals = {"uncoded_role": 0, "no_referent": 0, "no_gender": 0}
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
        f"{totals['no_gender']} have neither)"
    )


def _half_width(m: dict[str, Any] | None) -> float | None:
    ci = (m or {}).get("ci") or {}
    lo, hi = ci.get("low"), ci.get("high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (hi - lo) / 2


def power_summary(results: dict[str, Any], study: Any) -> dict[str, Any]:
    """The smallest change per generation this design detects, and the paper's effects beside it.

    Generation 0 is fixed by design, so a generation-k value differs detectably from b0 when the
    change exceeds the half-width of its CI (chains, then texts) — and at least the binomial
    half-width at b0 for the pairings measured, since a bootstrap CI collapses at 0 or 1.
    ``per_level`` gives that half-width per generated generation; ``paper`` says for each
    effect the paper reports whether it would be visible here (its absolute size vs the
    detectable change at the last generation of the same level), and whether our b* CI
    overlaps the paper's equilibrium band.
    """
    metric = results.get("fit_metric", CONDITIONAL)
    per_level = []
    for lv in results.get("levels") or []:
        rows = [
            {
                "generation": g["generation"],
                "half_width": _half_width(g["metrics"].get(metric)),
                "pairings": g.get("pairings"),
            }
            for g in lv.get("generations") or []
            if g["generation"] > 0
        ]
        per_level.append({"level": lv["level"], "generations": rows})
    widths = [
        r["half_width"]
        for lv in per_level
        for r in lv["generations"]
        if r["half_width"] is not None
    ]
    paper = []
    for eff in PAPER_EFFECTS:
        lv = next((x for x in per_level if math.isclose(x["level"], eff["level"])), None)
        last = lv["generations"][-1] if lv and lv["generations"] else None
        hw = last["half_width"] if last else None
        # A bootstrap CI collapses at a share of 0 or 1; the binomial half-width at b0 with this
        # many pairings is the floor a change from b0 must clear (chains add variance on top).
        pairs = (last or {}).get("pairings") or 0
        b0 = eff["level"]
        floor = 1.96 * math.sqrt(b0 * (1 - b0) / pairs) if pairs else None
        need = max(x for x in (hw, floor) if x is not None) if (hw or floor) else None
        size = abs(eff["relative_change"]) * b0
        paper.append(
            {
                "effect": eff["label"],
                "absolute_change": eff["relative_change"] * b0,
                "our_half_width": hw,
                "binomial_half_width_at_b0": floor,
                "detectable_change": need,
                "visible": None if need is None else size > need,
                "note": None if lv else f"level {b0:g} not in this run",
            }
        )
    eq = results.get("equilibrium") or {}
    ci = eq.get("ci") or {}
    lo, hi = ci.get("low"), ci.get("high")
    p_lo, p_hi = PAPER_EQUILIBRIUM
    eq_row = {
        "paper_band": [p_lo, p_hi],
        "ours": eq.get("fixed_point"),
        "our_ci": [lo, hi] if lo is not None and hi is not None else None,
        "our_half_width": (hi - lo) / 2 if lo is not None and hi is not None else None,
        "overlaps_paper": None if lo is None or hi is None else (lo <= p_hi and hi >= p_lo),
    }
    return {
        "metric": metric,
        "n": study.n,
        "chains": study.chains,
        "smallest_detectable_change": float(np.median(widths)) if widths else None,
        "per_level": per_level,
        "paper_model": PAPER_MODEL,
        "paper": paper,
        "paper_equilibrium": eq_row,
        "note": "the paper's figures are the paper's (its model, metric and seeds), not ours",
    }


def power_lines(results: dict[str, Any]) -> list[str]:
    """The power statement as plain lines (console and report)."""
    pw = results.get("power") or {}
    if not pw:
        return []
    sdc = pw.get("smallest_detectable_change")
    lines = [
        f"Power (n = {pw.get('n')} texts x {pw.get('chains')} chain(s) per level): smallest "
        f"detectable change per generation ≈ ±{_fmt(sdc)} in {pw.get('metric')} "
        "(median 95% CI half-width over levels and generations)."
    ]
    for p in pw.get("paper") or []:
        if p.get("note"):
            verdict = p["note"]
        elif p.get("visible") is None:
            verdict = "no CI to compare"
        else:
            verdict = "would be visible" if p["visible"] else "would NOT be visible"
        lines.append(
            f"  Paper ({pw.get('paper_model')}), {p['effect']} (= {p['absolute_change']:+.3f}): "
            f"{verdict} (detectable here: ±{_fmt(p.get('detectable_change'))}, the larger of our "
            f"CI half-width {_fmt(p.get('our_half_width'))} and the binomial half-width at b0 "
            f"{_fmt(p.get('binomial_half_width_at_b0'))})."
        )
    e = pw.get("paper_equilibrium") or {}
    ours = e.get("our_ci")
    lines.append(
        f"  Paper's equilibrium {e['paper_band'][0]:.2f}–{e['paper_band'][1]:.2f}; ours b* = "
        f"{_fmt(e.get('ours'))} "
        + (
            f"[{ours[0]:.2f}, {ours[1]:.2f}] ("
            + ("overlaps" if e.get("overlaps_paper") else "does not overlap")
            + " the paper's band)."
            if ours
            else "(no CI)."
        )
    )
    return lines


__all__ = [
    "OFF_TOPIC_METRIC",
    "PAPER_EFFECTS",
    "PAPER_EQUILIBRIUM",
    "PAPER_MODEL",
    "interpretation",
    "power_lines",
    "power_summary",
    "summarise_generation",
]
