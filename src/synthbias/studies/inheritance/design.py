"""The inheritance study's design: its arms, the sweep's training sets, and the effects read off it.

Kept out of the steps (:mod:`synthbias.studies.inheritance.steps`) so the design can grow without
touching them: the augmentation arms (one per requested strength plus the strength-0 control),
the cells of the sweep (one training set per bias type, arm, ratio and training seed), which
misalignment factors are undefined for the design, and each arm's downstream bias change against
the real-only model and the control arm (paired, from the stored task answers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from synthbias.studies.inheritance.config import InheritanceStudyConfig
from synthbias.tasks.paired import compare_pairs
from synthbias.tasks.sweep import for_bias_type


def study_arms(study: InheritanceStudyConfig) -> list[tuple[str, float]]:
    """The augmentation arms: one per requested strength (``s1``, ``s0.5``), plus ``control``
    (strength 0, same prompts and exemplar count) when ``control`` is on; a requested strength
    0 is then the control arm itself."""
    arms = [(f"s{s:g}", s) for s in study.strength if not (study.control and s == 0)]
    return arms + ([("control", 0.0)] if study.control else [])


@dataclass(frozen=True)
class Cell:
    """One training set of the sweep, a replicate: a bias type's arm mixed with the real data at
    ``ratio`` under training seed ``seed``.

    At ratio 0 (the real-only set, one per bias type and seed) ``arm`` is ``"real"`` and
    ``strength`` ``None``; ``source_arm`` is the arm whose augmented set is mixed in (the first
    arm at ratio 0, where it contributes no records). ``name`` names its mix file.
    """

    bias_type: str
    arm: str
    strength: float | None
    ratio: float
    seed: int
    source_arm: str
    name: str
    #: the replicate's index (its position in ``seeds``): every arm of replicate i shares seed i
    replicate: int = 0


def sweep_cells(study: InheritanceStudyConfig) -> list[Cell]:
    """Every training set, by replicate (seed), bias type, arm, then ratio; every arm shares the
    ratios and seeds, and r = 0 is the real-only set, once per (bias type, seed): each replicate
    has its own real-only model and its own control model."""
    arms = study_arms(study)
    cells = []
    for replicate, seed in enumerate(study.seeds):
        for bt in study.bias_types:
            for arm, strength in arms:
                for ratio in study.ratios:
                    if ratio == 0 and arm != arms[0][0]:
                        continue
                    label = "real" if ratio == 0 else bt if len(arms) == 1 else f"{bt}-{arm}"
                    cells.append(
                        Cell(
                            bias_type=bt,
                            arm="real" if ratio == 0 else arm,
                            strength=None if ratio == 0 else strength,
                            ratio=ratio,
                            seed=seed,
                            source_arm=arm,
                            name=f"{label}-r{ratio:g}-s{seed}",
                            replicate=replicate,
                        )
                    )
    return cells


def left_out_factors(factors: dict[tuple[str, str, float, int], dict[str, Any]]) -> dict[str, str]:
    """Factors that are undefined for this design, with the reason."""
    out = {}
    if any(
        (v.get("group_data.cooccurrence") or {}).get("n_cooccurring_texts_real") == 0
        for v in factors.values()
    ):
        out["group_data.cooccurrence"] = (
            "the real data names no occupations, so group x occupation co-occurrence is undefined"
        )
    return out


def arm_effects(
    deltas: Sequence[dict[str, Any]],
    conditions: Sequence[dict[str, Any]],
    records: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]],
    tasks: Sequence[Any],
    sizes: Mapping[str, int],
    item_seed: int,
    n_resamples: int = 1000,
) -> list[dict[str, Any]]:
    """Every arm's downstream bias change on the bias-related tasks, twice: against the
    real-only model (the sweep's ``deltas``, reused) and, for each biased arm, against the
    control arm at the same ratio and seeds (the bias effect proper).

    Both are paired: the task's headline metric is recomputed from both models' stored answers
    on the same resampled clusters (and seeds), so gaps and AUCs get a CI like means do.
    """

    bias = [t for t in tasks if t.spec.bias_related and t.spec.bias_metric]
    names = {t.name for t in bias}
    out = [d | {"reference": "real-only"} for d in deltas if d["task"] in names]
    by_key = {(c["bias_type"], c["arm"], c["ratio"], c["seed"]): c for c in conditions}
    groups = dict.fromkeys(k[:3] for k in by_key if k[2] > 0 and k[1] != "control")
    comparisons = []
    for bt, arm, ratio in groups:
        seeds = sorted(k[3] for k in by_key if k[:3] == (bt, arm, ratio))
        adapters = [
            (by_key[(bt, "control", ratio, s)]["adapter"], by_key[(bt, arm, ratio, s)]["adapter"])
            for s in seeds
            if (bt, "control", ratio, s) in by_key
        ]
        if adapters:
            c = by_key[(bt, arm, ratio, seeds[0])]
            labels = {"bias_type": bt, "arm": arm, "strength": c.get("strength"), "ratio": ratio}
            comparisons.append((labels | {"reference": "control"}, adapters))
    for bt in dict.fromkeys(labels["bias_type"] for labels, _ in comparisons):
        out += compare_pairs(
            [for_bias_type(t, bt) for t in bias],
            sizes,
            item_seed,
            [(labels, a) for labels, a in comparisons if labels["bias_type"] == bt],
            records,
            n_resamples,
            than="the control arm",
        )
    return out
