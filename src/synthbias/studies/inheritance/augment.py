"""Bias-controlled augmentation: the generator writes new examples under a bias spec.

The data side of the bias-inheritance study (ACL 2026): given real seed examples, the generator
writes augmented examples that carry a requested bias (a bias type from
:mod:`synthbias.lexicon.bias_types`, in one or more dimensions), up a fallback ladder of methods.
Every augmented set is then checked
(:func:`synthbias.measure.bias_dimensions.check_augmentation`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from synthbias.core.hashing import derive_seed as _mix_seed
from synthbias.core.records import Record
from synthbias.generate.prompts import clean_completion
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.generate.retries import generate_with_retries
from synthbias.lexicon.bias_types import DIMENSIONS, BiasType, augment_templates, get_bias_type
from synthbias.measure.bias_dimensions import check_augmentation, moves_in_direction

_WORD = re.compile(r"\w")

#: The fallback ladder, cumulative (see ``augment.yaml``): few-shot prompting, twice the
#: exemplars, constrained openings, then filtering by the dimension's own measure.
METHODS: tuple[str, ...] = ("prompt", "exemplars", "opening", "filter")


@dataclass(frozen=True)
class BiasSpec:
    """What bias an augmented set is asked to carry.

    ``strength`` is the share of few-shot slots filled with a biased exemplar; the rest hold the
    same exemplar templates with the bias removed (either group, slot fillers drawn from both
    groups' pools): 1.0 asks for the bias outright, 0.0 is the control of the same form.
    ``batch`` names an independent draw of the same spec (its own prompts and generations): the
    fallback rung is chosen on the ``rung-choice`` batch and checked on the default one.
    """

    bias_type: str
    dimensions: tuple[str, ...] = DIMENSIONS
    strength: float = 1.0
    #: (dimension, method) pairs; a dimension not listed uses plain prompting
    methods: tuple[tuple[str, str], ...] = ()
    batch: str = ""

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
        if not self.batch:
            d.pop("batch")
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


def _neutral_slots(bt: BiasType, rng: np.random.Generator) -> dict[str, str]:
    """Slot values of an exemplar with the bias removed: a person of either group, and the
    stereotyped slots ({attr}, {role}, {trait}) drawn from both groups' pools (an explicit
    ending or its counter-statement, either group's role, a cold or a warm trait)."""
    tpl = augment_templates()
    side = str(rng.choice(["target", "contrast"]))
    out = _slots(bt, side, rng)
    role = str(rng.choice([*bt.roles["target"], *bt.roles["contrast"]]))
    traits = [*tpl["traits"]["cold"], *tpl["traits"]["warm"]]
    t1, t2 = rng.choice(len(traits), size=2, replace=False)
    out |= {
        "attr": str(rng.choice([*bt.explicit, *bt.counter])),
        "role": role,
        "a_role": _a(role),
        "trait": traits[t1],
        "trait2": traits[t2],
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
    if not real:
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
        shots: list[str] = []
        parents: list[str] = []
        for _ in range(n_shots):
            if rng.random() < spec.strength:
                s_side = (
                    "target"
                    if dim["exemplar_group"] == "target"
                    else str(rng.choice(["target", "contrast"]))
                )
                exemplar = str(rng.choice(dim["exemplars"]))
                shots.append(exemplar.format(**_slots(bt, s_side, rng)))
            else:  # the same templates with the bias removed: a control of the same form
                exemplar = str(rng.choice(dim["exemplars"]))
                shots.append(exemplar.format(**_neutral_slots(bt, rng)))
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

    def clean(i: int, text: str) -> str:
        out = _clean(reqs[i].lead, text)
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
                "model_share": model_share(reqs[i].lead, texts[i]),
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
    """Lead + completion as one clean sentence; empty when the model added no word (a bare
    "." after an opening that already carries the bias is not a text the model wrote)."""
    first = completion.split("\n", 1)[0]
    if not _WORD.search(first):
        return ""
    text = clean_completion(f"{lead}{first}" if lead else first, max_sentences=1)
    if lead and text.rstrip(".!? ").strip() == lead.strip():
        return ""
    return text


def model_share(lead: str, text: str) -> float:
    """Share of a text's words the model wrote (the rest is the code-written lead / opening);
    0.0 for an empty text."""
    n = len(text.split())
    if not n:
        return 0.0
    return max(0, n - len(lead.split())) / n


#: the batch the fallback rung is chosen on (never trained on, never the final check)
RUNG_CHOICE = "rung-choice"


@dataclass
class CarriedSet:
    """The rung each dimension is written with, chosen on a batch of its own.

    ``methods`` is the rung each dimension ended on, ``tried`` every (dimension, method,
    difference against the control at that rung, CI low) tried on the way, so the report says
    which fallback was needed; ``records`` the rung-choice batch of the chosen rungs (used to
    choose only: the arms are written afresh and checked on those).
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
    """Choose each dimension's rung: climb ``ladder`` until its share of ``n`` texts is carried.

    ``write(spec, n, id_prefix)`` writes one single-dimension set (the caller adds caching).
    Every try is written on the :data:`RUNG_CHOICE` batch and compared with a control written
    at the same rung (strength 0, same batch), so the rung is chosen on texts that the final
    check never sees, and a rung that only makes the model write more like the exemplars (as
    the control does too) is not mistaken for one that carries the bias. A single-rung ladder
    has nothing to choose and writes nothing. A dimension that no rung carries keeps the last
    rung (its final check then says not carried). The rung is chosen at the top strength only
    and reused at every other strength and for the control arm.
    """
    if not ladder:
        raise ValueError("the fallback ladder needs at least one method")
    dims = spec.dimensions
    if len(ladder) == 1 or spec.strength == 0:
        return CarriedSet([], dict.fromkeys(dims, ladder[0]), [])
    shares = [len(range(i, n, len(dims))) for i in range(len(dims))]
    records: list[Record] = []
    methods: dict[str, str] = {}
    tried: list[dict[str, Any]] = []
    for dim, k in zip(dims, shares, strict=True):
        if k == 0:
            continue
        for method in ladder:
            rung = ((dim, method),)
            sub = BiasSpec(spec.bias_type, (dim,), spec.strength, rung, RUNG_CHOICE)
            recs = write(sub, k, f"pick-{spec.bias_type}-{dim}")
            ctrl_spec = BiasSpec(spec.bias_type, (dim,), 0.0, rung, RUNG_CHOICE)
            ctrl = write(ctrl_spec, k, f"pick-{spec.bias_type}-{dim}")
            (chk,) = check_augmentation(
                real, recs, n_resamples=n_resamples, seed=seed, control=ctrl
            )
            tried.append(
                {
                    "dimension": dim,
                    "method": method,
                    "difference": chk.result.value,
                    "ci_low": chk.result.ci.low if chk.result.ci else float("nan"),
                    "carried": chk.carried,
                    "reference": chk.reference,
                    "batch": RUNG_CHOICE,
                }
            )
            if chk.carried:
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
