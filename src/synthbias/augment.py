"""Bias-controlled augmentation: the generator writes new examples under a bias spec.

This is the data side of the bias-inheritance study (ACL 2026): given real seed examples, the
generator writes augmented examples that carry a requested bias — a *bias type* (one of the six
social axes, with a target and a contrast group) in one or more *dimensions* (explicit statements,
implicit role casting, representation skew, value skew). Bias types, dimensions and the real seed
data are data in ``generate/templates/augment.yaml``; this module only fills and runs them.

Every augmented set is then *checked*: :func:`check_augmentation` measures, per dimension, how
much more of that bias the augmented texts carry than the real ones (a difference with a
two-sample bootstrap CI). A dimension whose CI does not exclude zero is reported as not carried,
so an augmentation that failed to carry its bias is never silently used as if it had.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from synthbias.core.hashing import derive_seed as _mix_seed
from synthbias.corpus import Record
from synthbias.dynamics import clean_completion, generate_with_retries
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.measure.result import CI, MetricResult, two_sample_ci

DIMENSIONS: tuple[str, ...] = ("explicit", "implicit_role", "representation", "value")


@cache
def augment_templates() -> dict[str, Any]:
    """The packaged bias types, dimensions and real seed templates (``augment.yaml``)."""
    text = resources.files("synthbias.generate").joinpath("templates/augment.yaml").read_text()
    return yaml.safe_load(text)


@dataclass(frozen=True)
class BiasType:
    """One bias type: an axis with a target and a contrast group and its stereotype content."""

    name: str
    axis: str
    target: str
    contrast: str
    person: Mapping[str, str]
    people: Mapping[str, str]
    explicit: tuple[str, ...]
    roles: Mapping[str, tuple[str, ...]]

    def role_words(self, side: str) -> tuple[str, ...]:
        return tuple(self.roles[side])


def bias_types() -> dict[str, BiasType]:
    """All packaged bias types by name (the six axes)."""
    out = {}
    for name, spec in augment_templates()["bias_types"].items():
        out[name] = BiasType(
            name=name,
            axis=spec["axis"],
            target=spec["target"],
            contrast=spec["contrast"],
            person=dict(spec["person"]),
            people=dict(spec["people"]),
            explicit=tuple(spec["explicit"]),
            roles={k: tuple(v) for k, v in spec["roles"].items()},
        )
    return out


def get_bias_type(name: str) -> BiasType:
    known = bias_types()
    if name not in known:
        raise ValueError(f"unknown bias type {name!r}; choose one of {', '.join(sorted(known))}")
    return known[name]


@dataclass(frozen=True)
class BiasSpec:
    """What bias an augmented set is asked to carry.

    ``strength`` is the share of few-shot slots filled with a biased exemplar (the rest are real
    seed texts): 1.0 asks for the bias outright, 0.0 is plain (unbiased) augmentation.
    """

    bias_type: str
    dimensions: tuple[str, ...] = DIMENSIONS
    strength: float = 1.0

    def __post_init__(self) -> None:
        get_bias_type(self.bias_type)
        if not self.dimensions:
            raise ValueError("a bias spec needs at least one dimension")
        bad = [d for d in self.dimensions if d not in DIMENSIONS]
        if bad:
            raise ValueError(f"unknown dimensions {bad}; choose from {', '.join(DIMENSIONS)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dimensions"] = list(self.dimensions)
        return d


# --------------------------------------------------------------------------- slot filling


def _a(phrase: str) -> str:
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _slots(bt: BiasType, side: str, rng: np.random.Generator) -> dict[str, str]:
    """Slot values for a person of ``side`` ("target" or "contrast") of a bias type."""
    tpl = augment_templates()
    person, people = bt.person[side], bt.people[side]
    role = str(rng.choice(bt.roles[side]))
    traits = tpl["traits"]["cold" if side == "target" else "warm"]
    t1, t2 = rng.choice(len(traits), size=2, replace=False)
    return {
        "person": person,
        "a_person": _a(person),
        "A_person": _cap(_a(person)),
        "people": people,
        "People": _cap(people),
        "attr": str(rng.choice(bt.explicit)),
        "role": role,
        "a_role": _a(role),
        "trait": traits[t1],
        "trait2": traits[t2],
        "activity": str(rng.choice(tpl["real"]["activities"])),
    }


# --------------------------------------------------------------------------- real seed data


def build_real_corpus(bias_type_names: Sequence[str], n: int, seed: int = 0) -> list[Record]:
    """The synthbias-built real set D_r: neutral everyday sentences, balanced over groups.

    Texts cycle over the bias types and alternate target / contrast persons, so each group of
    each bias type appears equally often and none is cast in a role or described by a trait.
    Each record's ``meta["prompt"]`` is the instruction it answers (used for fine-tuning).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    types = [get_bias_type(b) for b in bias_type_names]
    if not types:
        raise ValueError("at least one bias type is required")
    real = augment_templates()["real"]
    rng = np.random.default_rng(_mix_seed(seed, "real"))
    records = []
    for i in range(n):
        bt = types[i % len(types)]
        side = "target" if (i // len(types)) % 2 == 0 else "contrast"
        slots = _slots(bt, side, rng)
        text = str(rng.choice(real["templates"])).format(**slots)
        records.append(
            Record(
                id=f"real-{i:05d}",
                text=text,
                source="real",
                axis=bt.axis,
                seed=seed,
                meta={
                    "prompt": real["instruction"].format(**slots),
                    "bias_type": bt.name,
                    "group": getattr(bt, side),
                    "side": side,
                },
            )
        )
    return records


# --------------------------------------------------------------------------- augmentation


@dataclass
class AugmentPrompt:
    """One generation request: the prompt, the lead it continues and its provenance."""

    prompt: str
    lead: str
    instruction: str
    dimension: str
    side: str
    parents: list[str] = field(default_factory=list)


def augment_prompts(
    real: Sequence[Record],
    spec: BiasSpec,
    n: int,
    seed: int = 0,
    k_shots: int = 3,
    fair: bool = False,
) -> list[AugmentPrompt]:
    """Few-shot prompts for ``n`` augmented texts, dimensions in equal shares (round robin).

    ``fair`` appends the fairness instruction (prompt-engineering mitigation) to each header.
    """
    bt = get_bias_type(spec.bias_type)
    tpl = augment_templates()
    pool = [r for r in real if r.meta.get("bias_type") == bt.name] or list(real)
    if not pool:
        raise ValueError("augmentation needs at least one real seed text")
    rng = np.random.default_rng(_mix_seed(seed, "augment", spec.to_dict()))
    out = []
    for i in range(n):
        dim_name = spec.dimensions[i % len(spec.dimensions)]
        dim = tpl["dimensions"][dim_name]
        side = (
            "target"
            if dim["lead_group"] == "target" or (i // len(spec.dimensions)) % 2 == 0
            else "contrast"
        )
        shots, parents = [], []
        for _ in range(k_shots):
            if rng.random() < spec.strength:
                s_side = (
                    "target"
                    if dim["exemplar_group"] == "target"
                    else str(rng.choice(["target", "contrast"]))
                )
                exemplar = str(rng.choice(dim["exemplars"]))
                shots.append(exemplar.format(**_slots(bt, s_side, rng)))
            else:
                rec = pool[int(rng.integers(len(pool)))]
                shots.append(rec.text)
                parents.append(rec.id)
        slots = _slots(bt, side, rng)
        lead = dim["lead"].format(**slots)
        numbered = "\n".join(f"{j}. {t}" for j, t in enumerate(shots, start=1))
        header = f"{dim['header']} {tpl['fairness_instruction'].strip()}" if fair else dim["header"]
        prompt = f"{header}\n\n{numbered}\n{k_shots + 1}." + (f" {lead}" if lead else "")
        instruction_tpl = dim.get("instruction") or (
            "Write one sentence about {people}."
            if dim_name == "explicit"
            else tpl["real"]["instruction"]
        )
        out.append(
            AugmentPrompt(
                prompt=prompt,
                lead=lead,
                instruction=instruction_tpl.format(**slots),
                dimension=dim_name,
                side=side,
                parents=parents,
            )
        )
    return out


def augment(
    real: Sequence[Record],
    spec: BiasSpec,
    backend: Backend,
    n: int,
    params: SamplingParams | None = None,
    seed: int = 0,
    k_shots: int = 3,
    chunk_size: int = 32,
    max_retries: int = 2,
    on_progress: Callable[[int], None] | None = None,
    fair: bool = False,
) -> list[Record]:
    """Write ``n`` augmented texts carrying ``spec``; each keeps its provenance.

    ``fair`` adds the fairness instruction to every prompt (prompt-engineering mitigation).

    A completion that is empty after cleaning is regenerated with a fresh seed up to
    ``max_retries`` times; one still empty is kept, flagged ``meta["empty"]``, so counts stay
    exact and the failure is visible.
    """
    params = params or SamplingParams(max_tokens=40, temperature=0.8, top_p=0.95)
    bt = get_bias_type(spec.bias_type)
    reqs = augment_prompts(real, spec, n, seed=seed, k_shots=k_shots, fair=fair)
    texts, raw, _ = generate_with_retries(
        backend,
        [r.prompt for r in reqs],
        params,
        clean=lambda i, text: _clean(reqs[i].lead, text),
        chunk_seed=lambda attempt, start: _mix_seed(
            seed, "augment-gen", spec.to_dict(), attempt, start
        ),
        stop=("\n",),
        chunk_size=chunk_size,
        max_retries=max_retries,
        on_progress=on_progress,
    )
    return [
        Record(
            id=f"aug-{spec.bias_type}-{i:05d}",
            text=texts[i],
            source="augmented",
            axis=bt.axis,
            parents=reqs[i].parents,
            seed=seed,
            meta={
                "prompt": reqs[i].instruction,
                "bias_type": spec.bias_type,
                "dimension": reqs[i].dimension,
                "side": reqs[i].side,
                "bias_spec": spec.to_dict(),
                "empty": not texts[i],
                **({"mitigation": "prompt"} if fair else {}),
            }
            | ({"raw": raw[i]} if raw[i].strip() and not texts[i] else {}),
        )
        for i in range(n)
    ]


def _clean(lead: str, completion: str) -> str:
    """Lead + completion as one clean sentence; empty when the model added nothing."""
    first = completion.split("\n", 1)[0]
    if not first.strip():
        return ""
    text = clean_completion(f"{lead}{first}" if lead else first, max_sentences=1)
    if lead and text.rstrip(".").strip() == lead.strip():
        return ""
    return text


# --------------------------------------------------------------------------- requested vs measured


@dataclass
class AugmentationCheck:
    """Requested vs measured bias of one dimension of an augmented set."""

    dimension: str
    metric: str
    augmented: float
    real: float
    result: MetricResult  # augmented − real, with a two-sample bootstrap CI
    carried: bool
    n_augmented: int
    empty: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "metric": self.metric,
            "augmented": self.augmented,
            "real": self.real,
            "difference": self.result.value,
            "ci": self.result.ci.to_dict() if self.result.ci else None,
            "carried": self.carried,
            "n_augmented": self.n_augmented,
            "empty": self.empty,
        }


def _word_regex(words: Sequence[str]) -> re.Pattern[str]:
    alts = sorted({re.escape(w) for w in words}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alts) + r")s?\b", re.IGNORECASE)


def _group_counts(texts: Sequence[str], bt: BiasType) -> Any:
    from synthbias.lexicon import load_lexicon

    return load_lexicon().axis(bt.axis).count_groups_batch(list(texts))


def _sides(texts: Sequence[str], bt: BiasType) -> np.ndarray:
    """Per text: 1 if it mentions the target group only, −1 contrast only, 0 otherwise."""
    counts = _group_counts(texts, bt)
    t, c = counts[bt.target] > 0, counts[bt.contrast] > 0
    return np.where(t & ~c, 1, np.where(c & ~t, -1, 0))


def _representation(texts: Sequence[str], bt: BiasType) -> np.ndarray:
    """Per text: (target mentions, mentions of any non-neutral group on the axis)."""
    counts = _group_counts(texts, bt)
    cols = [i for i, g in enumerate(counts.labels) if g != "neutral"]
    total = counts.counts[:, cols].sum(axis=1)
    return np.stack([counts[bt.target], total], axis=1).astype(float)


def dimension_scores(texts: Sequence[str], bt: BiasType, dimension: str) -> tuple[np.ndarray, Any]:
    """Per-text units and the statistic that turns resampled units into the dimension's bias.

    * explicit: share of texts that generalise about the target group ("Women are ...").
    * implicit_role: share of target-group texts naming a target stereotyped role minus the
      share of contrast-group texts naming one (role association, Bordia & Bowman style).
    * representation: the target group's share of all group mentions on the axis.
    * value: mean VADER compound of contrast-group texts minus that of target-group texts, with
      the group terms themselves masked (VADER rates "poor" negative).
    """
    texts = list(texts)
    if dimension == "explicit":
        from synthbias.lexicon import load_lexicon

        axis = load_lexicon().axis(bt.axis)
        plural = {bt.people["target"], *axis.terms(bt.target)}
        pat = re.compile(
            r"^\W*(?:all |most |many |the )?(?:"
            + "|".join(sorted((re.escape(p) for p in plural), key=len, reverse=True))
            + r")\s+(?:are|is|were|can|cannot|can't|do|don't|does|doesn't|never|always|"
            r"should|shouldn't|tend|belong|have|lack|will|won't|make|waste|bring|refuse|care|"
            r"live|only|just|all)\b",
            re.IGNORECASE,
        )
        units = np.array([[1.0 if pat.search(t) else 0.0] for t in texts])
        return units, lambda u: float(u[:, 0].mean()) if len(u) else float("nan")
    if dimension == "implicit_role":
        roles = _word_regex(bt.role_words("target"))
        side = _sides(texts, bt)
        has = np.array([1.0 if roles.search(t) else 0.0 for t in texts])
        units = np.stack([side, has], axis=1).astype(float)
        return units, _role_gap
    if dimension == "representation":
        units = _representation(texts, bt)
        return (
            units,
            lambda u: float(u[:, 0].sum() / u[:, 1].sum()) if u[:, 1].sum() else float("nan"),
        )
    if dimension == "value":
        from synthbias.measure.misalignment import sentiment_scores

        side = _sides(texts, bt)
        masked = [_mask_groups(t, bt) for t in texts]
        units = np.stack([side, sentiment_scores(masked)], axis=1).astype(float)
        return units, _value_gap
    raise ValueError(f"unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")


def _mask_groups(text: str, bt: BiasType) -> str:
    """Replace group terms by "person", so that a group word VADER rates ("poor") is not
    counted as the text's sentiment about the group."""
    from synthbias.lexicon import load_lexicon

    out, last = [], 0
    for m in load_lexicon().axis(bt.axis).find(text):
        out += [text[last : m.start], "person"]
        last = m.end
    return "".join(out) + text[last:]


def _group_mean(u: np.ndarray, side: int) -> float:
    sel = u[:, 0] == side
    return float(u[sel, 1].mean()) if sel.any() else float("nan")


def _role_gap(u: np.ndarray) -> float:
    t, c = _group_mean(u, 1), _group_mean(u, -1)
    if np.isnan(t):
        return float("nan")
    return t - (0.0 if np.isnan(c) else c)


def _value_gap(u: np.ndarray) -> float:
    t, c = _group_mean(u, 1), _group_mean(u, -1)
    if np.isnan(t):
        return float("nan")
    return (0.0 if np.isnan(c) else c) - t


def check_augmentation(
    real: Sequence[Record],
    augmented: Sequence[Record],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> list[AugmentationCheck]:
    """Measure each requested dimension of ``augmented`` against the real texts of its bias type.

    A dimension is *carried* when the lower CI bound of (augmented − real) is above zero.
    """
    if not augmented:
        raise ValueError("no augmented records to check")
    spec = augmented[0].meta.get("bias_spec")
    if not spec:
        raise ValueError(f"record {augmented[0].id} has no bias_spec in its meta")
    bt = get_bias_type(spec["bias_type"])
    real_texts = [r.text for r in real if r.meta.get("bias_type") in (None, bt.name)]
    checks = []
    for dim in spec["dimensions"]:
        recs = [r for r in augmented if r.meta.get("dimension") == dim]
        texts = [r.text for r in recs if r.text]
        ua, stat = dimension_scores(texts, bt, dim)
        ur, _ = dimension_scores(real_texts, bt, dim)
        a, b = stat(ua), stat(ur)
        b0 = 0.0 if np.isnan(b) else b
        ci = (
            two_sample_ci(
                ua, ur, lambda x, y, s=stat: s(x) - _zero_nan(s(y)), n_resamples, level, seed
            )
            if len(ua)
            else CI(float("nan"), float("nan"), level)
        )
        diff = a - b0
        res = MetricResult(
            name=f"augment.{bt.name}.{dim}",
            value=float(diff),
            ci=ci,
            per_group={"augmented": float(a), "real": float(b)},
            n=len(texts),
            meta={"requested_strength": spec["strength"]},
        )
        carried = bool(ci.low > 0) if not np.isnan(ci.low) else False
        checks.append(
            AugmentationCheck(
                dimension=dim,
                metric=res.name,
                augmented=float(a),
                real=float(b),
                result=res,
                carried=carried,
                n_augmented=len(recs),
                empty=len(recs) - len(texts),
            )
        )
    return checks


def _zero_nan(v: float) -> float:
    return 0.0 if np.isnan(v) else v
