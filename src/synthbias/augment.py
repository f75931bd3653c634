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
from synthbias.measure.result import CI, MetricResult, percentile_ci, two_sample_ci

DIMENSIONS: tuple[str, ...] = ("explicit", "implicit_role", "representation", "value")
#: The fallback ladder, cumulative (see ``augment.yaml``): few-shot prompting, twice the
#: exemplars, constrained openings, then filtering by the dimension's own measure.
METHODS: tuple[str, ...] = ("prompt", "exemplars", "opening", "filter")


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
    counter: tuple[str, ...] = ()

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
            counter=tuple(spec.get("counter", ())),
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
    #: (dimension, method) pairs; a dimension not listed uses plain prompting
    methods: tuple[tuple[str, str], ...] = ()

    def method(self, dimension: str) -> str:
        return dict(self.methods).get(dimension, "prompt")

    def level(self, dimension: str) -> int:
        """Rung of the fallback ladder used for ``dimension`` (0 = plain prompting)."""
        return METHODS.index(self.method(dimension))

    def __post_init__(self) -> None:
        get_bias_type(self.bias_type)
        if not self.dimensions:
            raise ValueError("a bias spec needs at least one dimension")
        bad = [d for d in self.dimensions if d not in DIMENSIONS]
        if bad:
            raise ValueError(f"unknown dimensions {bad}; choose from {', '.join(DIMENSIONS)}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {self.strength}")
        bad = [m for _, m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"unknown augmentation methods {bad}; choose from {METHODS}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dimensions"] = list(self.dimensions)
        # only non-default methods, so plain-prompting specs keep their hashes and seeds
        methods = {k: v for k, v in self.methods if v != "prompt"}
        d.pop("methods")
        if methods:
            d["methods"] = methods
        return d


# --------------------------------------------------------------------------- slot filling


def _a(phrase: str) -> str:
    return f"{'an' if phrase[:1].lower() in 'aeiou' else 'a'} {phrase}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _slots(bt: BiasType, side: str, rng: np.random.Generator) -> dict[str, str]:
    """Slot values for a person of ``side`` ("target" or "contrast") of a bias type.

    Biased slots ({role}, {trait}, {attr_head}) follow the side's stereotype; the ``any_``
    slots draw the same kind of value from both groups' pools (unbiased openings).
    """
    tpl = augment_templates()
    person, people = bt.person[side], bt.people[side]
    role = str(rng.choice(bt.roles[side]))
    traits = tpl["traits"]["cold" if side == "target" else "warm"]
    t1, t2 = rng.choice(len(traits), size=2, replace=False)
    out = {
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
    sub = np.random.default_rng(rng.integers(2**32))  # one draw seeds the extra slots
    any_role = str(sub.choice([*bt.roles["target"], *bt.roles["contrast"]]))
    heads = [" ".join(a.split()[:-1]) or a for a in bt.explicit]
    both = heads + [" ".join(a.split()[:-1]) or a for a in bt.counter]
    job = str(sub.choice(tpl["real"].get("occupations") or ["worker"]))
    out |= {
        "attr_head": str(sub.choice(heads)),
        "any_head": str(sub.choice(both)),
        "a_any_role": _a(any_role),
        "any_trait": str(sub.choice([*tpl["traits"]["cold"], *tpl["traits"]["warm"]])),
        "job": job,
        "a_job": _a(job),
    }
    return out


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
    """One generation request: the prompt, the lead it continues and its provenance.

    ``biased`` says whether the request's opening / filter carries the bias (probability =
    strength; only used from the ``opening`` rung on), ``method`` the ladder rung.
    """

    prompt: str
    lead: str
    instruction: str
    dimension: str
    side: str
    parents: list[str] = field(default_factory=list)
    biased: bool = True
    method: str = "prompt"


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
    A dimension on the ``exemplars`` rung or above gets ``2 * k_shots`` exemplars; on the
    ``opening`` rung or above a biased request continues the dimension's ``opening``, an
    unbiased one its ``opening_plain`` (naming either group where ``plain_group: both``).
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
        level = spec.level(dim_name)
        biased = True
        if level >= METHODS.index("opening"):
            biased = bool(rng.random() < spec.strength)
        balanced = dim["lead_group"] != "target" or (
            not biased and dim.get("plain_group") == "both"
        )
        side = "target" if not balanced or (i // len(spec.dimensions)) % 2 == 0 else "contrast"
        n_shots = 2 * k_shots if level >= METHODS.index("exemplars") else k_shots
        shots, parents = [], []
        for _ in range(n_shots):
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
        lead_tpl = dim["lead"]
        if level >= METHODS.index("opening"):
            lead_tpl = dim["opening"] if biased else dim["opening_plain"]
        lead = lead_tpl.format(**slots)
        numbered = "\n".join(f"{j}. {t}" for j, t in enumerate(shots, start=1))
        header = f"{dim['header']} {tpl['fairness_instruction'].strip()}" if fair else dim["header"]
        prompt = f"{header}\n\n{numbered}\n{n_shots + 1}." + (f" {lead}" if lead else "")
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
                biased=biased,
                method=spec.method(dim_name),
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
    filter_retries: int = 4,
    id_prefix: str | None = None,
) -> list[Record]:
    """Write ``n`` augmented texts carrying ``spec``; each keeps its provenance.

    ``fair`` adds the fairness instruction to every prompt (prompt-engineering mitigation).

    A completion that is empty after cleaning is regenerated with a fresh seed up to
    ``max_retries`` times; one still empty is kept, flagged ``meta["empty"]``, so counts stay
    exact and the failure is visible. On the ``filter`` rung a biased request's text must also
    pass :func:`moves_in_direction` (``filter_retries`` regenerations); when none passes, the last
    try is kept, flagged ``meta["filter_passed"] = False``.
    """
    params = params or SamplingParams(max_tokens=40, temperature=0.8, top_p=0.95)
    bt = get_bias_type(spec.bias_type)
    reqs = augment_prompts(real, spec, n, seed=seed, k_shots=k_shots, fair=fair)
    filtered = [r.biased and spec.level(r.dimension) >= METHODS.index("filter") for r in reqs]
    last_try: dict[int, str] = {}

    dims = augment_templates()["dimensions"]
    complete = [
        spec.level(r.dimension) >= METHODS.index("opening")
        and bool(dims[r.dimension].get("opening_complete"))
        for r in reqs
    ]

    def clean(i: int, text: str) -> str:
        out = _clean(reqs[i].lead, text)
        if not out and complete[i] and not text.split("\n", 1)[0].strip(" .!"):
            out = clean_completion(f"{reqs[i].lead}.", max_sentences=1)
        if out and filtered[i]:
            last_try[i] = out
            if not moves_in_direction(out, bt, reqs[i].dimension, reqs[i].side):
                return ""
        return out

    texts, raw, attempts = generate_with_retries(
        backend,
        [r.prompt for r in reqs],
        params,
        clean=clean,
        chunk_seed=lambda attempt, start: _mix_seed(
            seed, "augment-gen", spec.to_dict(), attempt, start
        ),
        stop=("\n",),
        chunk_size=chunk_size,
        max_retries=max(max_retries, filter_retries) if any(filtered) else max_retries,
        on_progress=on_progress,
    )
    passed = [bool(texts[i]) if filtered[i] else None for i in range(n)]
    texts = [texts[i] or last_try.get(i, "") for i in range(n)]
    prefix = id_prefix or f"aug-{spec.bias_type}"
    return [
        Record(
            id=f"{prefix}-{i:05d}",
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
            | ({"raw": raw[i]} if raw[i].strip() and not texts[i] else {})
            | (
                {"method": reqs[i].method, "biased": reqs[i].biased, "attempts": attempts[i]}
                if reqs[i].method != "prompt"
                else {}
            )
            | ({"filter_passed": passed[i]} if passed[i] is not None else {}),
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
    method: str = "prompt"
    filter_failed: int = 0

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
            "method": self.method,
            "filter_failed": self.filter_failed,
            "requested_strength": self.result.meta.get("requested_strength"),
            # smallest gap this size detects with 80 % power at α = 0.05 (≈ 2.8 SE)
            "detectable": (self.result.ci.high - self.result.ci.low) / 3.92 * 2.8
            if self.result.ci
            else None,
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


#: Margin on the stereotype axis below which a statement counts as neither direction.
EXPLICIT_MARGIN = 0.08
#: Weight of the (group-masked) VADER valence on the axis: stereotypes are mostly negative claims.
VALENCE_WEIGHT = 0.1


@cache
def default_encoder() -> Any:
    """The embedded sentence encoder (all-MiniLM-L6-v2), loaded once per process."""
    from synthbias.measure.embedding import Encoder

    return Encoder()


#: Softmax temperature over cosine similarity that picks which stimulus pair a text is about.
TOPIC_TEMPERATURE = 0.05


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def explicit_axis(texts: Sequence[str], bt: BiasType, encoder: Any = None) -> np.ndarray:
    """Per text: signed position between the bias type's stereotypes and counter-stereotypes.

    Each stereotype statement ("Women are worse drivers than everyone else.") is paired with a
    counter-statement on the same topic and in the same form ("Women are better drivers than
    everyone else."). A text's score is its cosine similarity to the stereotype minus that to
    the counter-statement, averaged over the pairs weighted by how close the text is to each
    pair's topic (softmax at :data:`TOPIC_TEMPERATURE`), minus :data:`VALENCE_WEIGHT` × its
    VADER valence; 0 is the mean of neutral statements about the group ("Women went hiking in
    the hills."). Comparing within a topic-matched pair makes the sign the direction of the
    claim, not its sentence form: a single mean-difference axis confused the two ("Women are
    better at math than everyone else." scored as a stereotype because only a stereotype
    stimulus said "than everyone else").
    """
    if not bt.counter or len(bt.counter) != len(bt.explicit):
        raise ValueError(f"bias type {bt.name}: `counter` must pair every `explicit` ending")
    if not texts:
        return np.zeros(0)
    from synthbias.measure.misalignment import sentiment_scores

    enc = encoder or default_encoder()
    people = _cap(bt.people["target"])
    stereo = _unit_rows(np.asarray(enc.encode([f"{people} {a}." for a in bt.explicit]), float))
    counter = _unit_rows(np.asarray(enc.encode([f"{people} {c}." for c in bt.counter]), float))

    def score(xs: list[str]) -> np.ndarray:
        e = _unit_rows(np.asarray(enc.encode(xs), dtype=float))
        to_stereo, to_counter = e @ stereo.T, e @ counter.T
        topic = (to_stereo + to_counter) / 2 / TOPIC_TEMPERATURE
        w = np.exp(topic - topic.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        return (w * (to_stereo - to_counter)).sum(axis=1) - VALENCE_WEIGHT * sentiment_scores(xs)

    # 0 = neutral statements about the group (the real-data activities), not the stimuli's
    # midpoint: counter-statements are warmer than stereotypes are cold, so that midpoint is
    # not neutral
    neutral = [f"{people} {act}." for act in augment_templates()["real"]["activities"]]
    return score(list(texts)) - float(score(neutral).mean())


def explicit_units(texts: Sequence[str], bt: BiasType, encoder: Any = None) -> np.ndarray:
    """Per text: +1 a stereotype claim about the target group, −1 a counter-stereotype claim,
    0 neither: no claim about the group as a whole (its plural, "Muslims", is not named), or
    within :data:`EXPLICIT_MARGIN` of neutral on :func:`explicit_axis`."""
    texts = list(texts)
    if not texts:
        return np.zeros(0, dtype=int)
    group = re.compile(rf"\b{re.escape(bt.people['target'])}\b", re.IGNORECASE)
    about = np.array([bool(group.search(t)) for t in texts])
    d = explicit_axis(texts, bt, encoder)
    sign = np.where(d > EXPLICIT_MARGIN, 1, np.where(d < -EXPLICIT_MARGIN, -1, 0))
    return np.where(about, sign, 0)


def moves_in_direction(text: str, bt: BiasType, dimension: str, side: str) -> bool:
    """Whether one text, written for ``side``, carries ``dimension`` in the requested direction
    (the filter rung of the ladder uses each dimension's own per-text measure)."""
    want = 1 if side == "target" else -1
    if dimension == "explicit":
        return bool(explicit_units([text], bt)[0] == 1)
    got = int(_sides([text], bt)[0])
    if dimension == "representation":
        return got == 1
    if got != want:
        return False
    if dimension == "implicit_role":
        has_role = bool(_word_regex(bt.role_words("target")).search(text))
        return has_role == (side == "target")
    if dimension == "value":
        from synthbias.measure.misalignment import sentiment_scores

        score = float(sentiment_scores([_mask_groups(text, bt)])[0])
        return score < -0.05 if side == "target" else score > 0.05
    raise ValueError(f"unknown dimension {dimension!r}; choose from {', '.join(DIMENSIONS)}")


def dimension_scores(
    texts: Sequence[str], bt: BiasType, dimension: str, encoder: Any = None
) -> tuple[np.ndarray, Any]:
    """Per-text units and the statistic that turns resampled units into the dimension's bias.

    * explicit: mean of :func:`explicit_units` (+1 stereotype statement about the target group,
      −1 counter-stereotype, 0 neither): a direction on the embedding axis, not a sentence form.
    * implicit_role: share of target-group texts naming a target stereotyped role minus the
      share of contrast-group texts naming one (role association, Bordia & Bowman style).
    * representation: the target group's share of all group mentions on the axis.
    * value: mean VADER compound of contrast-group texts minus that of target-group texts, with
      the group terms themselves masked (VADER rates "poor" negative).
    """
    texts = list(texts)
    if dimension == "explicit":
        units = explicit_units(texts, bt, encoder=encoder).astype(float)[:, None]
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
    encoder: Any = None,
) -> list[AugmentationCheck]:
    """Measure each requested dimension of ``augmented`` against the real texts of its bias type.

    A dimension is *carried* when the lower CI bound of (augmented − real) is above zero. Each
    check records the ladder rung (``method``) its texts were written with.
    """
    if not augmented:
        raise ValueError("no augmented records to check")
    spec = augmented[0].meta.get("bias_spec")
    if not spec:
        raise ValueError(f"record {augmented[0].id} has no bias_spec in its meta")
    bt = get_bias_type(spec["bias_type"])
    real_texts = [r.text for r in real if r.meta.get("bias_type") in (None, bt.name)]
    dims = list(dict.fromkeys(r.meta["dimension"] for r in augmented if r.meta.get("dimension")))
    checks = []
    for dim in dims:
        recs = [r for r in augmented if r.meta.get("dimension") == dim]
        texts = [r.text for r in recs if r.text]
        ua, stat = dimension_scores(texts, bt, dim, encoder)
        ur, _ = dimension_scores(real_texts, bt, dim, encoder)
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
            meta={"requested_strength": recs[0].meta["bias_spec"]["strength"]},
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
                method=str(recs[0].meta.get("method", "prompt")),
                filter_failed=sum(1 for r in recs if r.meta.get("filter_passed") is False),
            )
        )
    return checks


def _zero_nan(v: float) -> float:
    return 0.0 if np.isnan(v) else v


def dose_response(
    real: Sequence[Record],
    sets: Mapping[float, Sequence[Record]],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    encoder: Any = None,
) -> list[dict[str, Any]]:
    """Measured bias (augmented − real) against requested strength, per dimension.

    ``sets`` maps a requested strength to the augmented set written at it (one bias type). The
    slope is the least-squares slope of the measured differences on strength; its CI resamples
    the texts of every set and of the real data (the sets are independent samples; the real data
    is shared, so it is resampled once per replicate). ``monotone`` is False when a higher
    strength measured lower than a lower one (``largest_drop`` gives the size).
    """
    if len(sets) < 2:
        raise ValueError(f"a dose-response needs at least 2 strengths, got {sorted(sets)}")
    strengths = sorted(sets)
    first = next(iter(sets[strengths[0]]), None)
    if first is None:
        raise ValueError(f"strength {strengths[0]}: empty augmented set")
    bt = get_bias_type(first.meta["bias_type"])
    real_texts = [r.text for r in real if r.meta.get("bias_type") in (None, bt.name)]
    dims = list(dict.fromkeys(r.meta["dimension"] for s in strengths for r in sets[s]))
    rng = np.random.default_rng(seed)
    x = np.asarray(strengths, dtype=float)
    out = []
    for dim in dims:
        ur, stat = dimension_scores(real_texts, bt, dim, encoder)
        units = []
        for s in strengths:
            texts = [r.text for r in sets[s] if r.meta.get("dimension") == dim and r.text]
            units.append(dimension_scores(texts, bt, dim, encoder)[0])
        if any(len(u) == 0 for u in units) or len(ur) == 0:
            raise ValueError(f"{bt.name}.{dim}: a strength or the real data has no texts")
        measured = np.array([stat(u) - _zero_nan(stat(ur)) for u in units])
        slope = float(np.polyfit(x, measured, 1)[0]) if not np.isnan(measured).any() else np.nan
        boots = np.empty(n_resamples)
        for k in range(n_resamples):
            r0 = _zero_nan(stat(ur[rng.integers(0, len(ur), len(ur))]))
            y = np.array([stat(u[rng.integers(0, len(u), len(u))]) - r0 for u in units])
            boots[k] = np.polyfit(x, y, 1)[0] if not np.isnan(y).any() else np.nan
        ci = percentile_ci(boots, level)
        drops = np.diff(measured)
        out.append(
            {
                "bias_type": bt.name,
                "dimension": dim,
                "strengths": [float(v) for v in strengths],
                "measured": [float(v) for v in measured],
                "slope": slope,
                "slope_ci": ci.to_dict(),
                "n_per_strength": [len(u) for u in units],
                "increasing": bool(ci.low > 0),
                "monotone": bool((drops >= 0).all()),
                "largest_drop": float(max(0.0, -drops.min())) if len(drops) else 0.0,
            }
        )
    return out


@dataclass
class CarriedSet:
    """An augmented set written dimension by dimension up the fallback ladder.

    ``methods`` is the rung each dimension ended on, ``tried`` every (dimension, method,
    difference, CI low) tried on the way, so the report says which fallback was needed.
    """

    records: list[Record]
    methods: dict[str, str]
    tried: list[dict[str, Any]]


def augment_carried(
    write: Callable[[BiasSpec, int, str], list[Record]],
    real: Sequence[Record],
    spec: BiasSpec,
    n: int,
    ladder: Sequence[str] = METHODS,
    n_resamples: int = 1000,
    seed: int = 0,
) -> CarriedSet:
    """Write each dimension's share of ``n`` texts, climbing ``ladder`` until it is carried.

    ``write(spec, n, id_prefix)`` writes one single-dimension set (the caller adds caching).
    A dimension that no rung carries keeps the last rung's texts and is reported as not carried
    by :func:`check_augmentation`. Choosing the rung on the same texts that are then checked
    makes the final check slightly optimistic; the ladder is climbed at the top strength only
    and the rung is then reused at every other strength and for the control arm.
    """
    if not ladder:
        raise ValueError("the fallback ladder needs at least one method")
    dims = spec.dimensions
    shares = [len(range(i, n, len(dims))) for i in range(len(dims))]
    records: list[Record] = []
    methods: dict[str, str] = {}
    tried: list[dict[str, Any]] = []
    for dim, k in zip(dims, shares, strict=True):
        if k == 0:
            continue
        for method in ladder:
            sub = BiasSpec(spec.bias_type, (dim,), spec.strength, ((dim, method),))
            recs = write(sub, k, f"aug-{spec.bias_type}-{dim}")
            (chk,) = check_augmentation(real, recs, n_resamples=n_resamples, seed=seed)
            tried.append(
                {
                    "dimension": dim,
                    "method": method,
                    "difference": chk.result.value,
                    "ci_low": chk.result.ci.low if chk.result.ci else float("nan"),
                    "carried": chk.carried,
                }
            )
            if chk.carried or spec.strength == 0:
                break
        methods[dim] = method
        records.extend(recs)
    return CarriedSet(records, methods, tried)


def augment_with_methods(
    write: Callable[[BiasSpec, int, str], list[Record]],
    spec: BiasSpec,
    n: int,
    methods: Mapping[str, str],
) -> list[Record]:
    """Write ``spec`` dimension by dimension with fixed rungs (other strengths, control arm)."""
    dims = spec.dimensions
    out: list[Record] = []
    for i, dim in enumerate(dims):
        k = len(range(i, n, len(dims)))
        if k:
            sub = BiasSpec(spec.bias_type, (dim,), spec.strength, ((dim, methods[dim]),))
            out.extend(write(sub, k, f"aug-{spec.bias_type}-{dim}"))
    return out
