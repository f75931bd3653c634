"""Recursive generation and equilibrium analysis (the equilibrium-dynamics study).

Generation 0 is a seed corpus in which a share ``b0`` of texts pair an occupation with its
stereotyped gender and the rest are gender-neutral. Generation k+1 is written by the generator
from few-shot examples drawn from generation k (self-instruct style). The bias trajectory b_k is
then summarised by a linear map b_{k+1} = a + c·b_k fitted over all levels and generations; when
|c| < 1 the map has the attracting fixed point b* = a / (1 − c), the generator's own equilibrium:
levels below b* are amplified towards it and levels above decay towards it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from synthbias.core.hashing import derive_seed
from synthbias.corpus import Record
from synthbias.generate.protocol import Backend, Message, Prompt, SamplingParams
from synthbias.measure.result import CI

PRONOUNS: dict[str, dict[str, str]] = {
    "male": {"subj": "he", "obj": "him", "poss": "his", "refl": "himself"},
    "female": {"subj": "she", "obj": "her", "poss": "her", "refl": "herself"},
}


# --------------------------------------------------------------------------- templates


@cache
def seed_templates() -> list[dict[str, str]]:
    """Generation-0 templates shipped with the package (``generate/templates/seed_work.yaml``)."""
    text = resources.files("synthbias.generate").joinpath("templates/seed_work.yaml").read_text()
    return yaml.safe_load(text)


@cache
def prompt_templates() -> dict[str, dict[str, str]]:
    """Generation prompts shipped with the package (``generate/templates/prompts.yaml``)."""
    text = resources.files("synthbias.generate").joinpath("templates/prompts.yaml").read_text()
    return yaml.safe_load(text)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def fill_template(template: str, occupation: str, gender: str | None, name: str | None) -> str:
    """Fill a seed template's slots; ``gender=None`` is only valid for neutral templates."""
    slots = {"occ": occupation, "a_occ": f"{_article(occupation)} {occupation}"}
    slots["Occ"] = occupation[:1].upper() + occupation[1:]
    slots["A_occ"] = slots["a_occ"][:1].upper() + slots["a_occ"][1:]
    if gender is not None:
        forms = PRONOUNS[gender]
        slots.update(forms)
        slots.update({f"{k[:1].upper()}{k[1:]}": v.capitalize() for k, v in forms.items()})
    if name is not None:
        slots["name"] = name
    text = template.format(**slots)
    return text[:1].upper() + text[1:]


@dataclass
class SeedVocabulary:
    """Occupations with their stereotyped gender, and first names by gender."""

    occupations: list[tuple[str, str]]  # (occupation, "male" | "female")
    names: dict[str, list[str]]  # gender -> names


def build_seed_corpus(
    level: float,
    n: int,
    vocab: SeedVocabulary,
    seed: int = 0,
    templates: Sequence[Mapping[str, str]] | None = None,
) -> list[Record]:
    """Generation 0: ``round(level * n)`` stereotypical texts, the rest gender-neutral.

    Every text names a gender-coded occupation, so the rule-based stereotype rate of this corpus
    is exactly ``round(level * n) / n``.
    """
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    if not vocab.occupations:
        raise ValueError("seed vocabulary has no gender-coded occupations")
    templates = list(templates or seed_templates())
    rng = np.random.default_rng(_mix_seed(seed, "seed-corpus", level))
    n_biased = int(round(level * n))
    records = []
    for i in range(n):
        tmpl = templates[int(rng.integers(len(templates)))]
        occ, stereo_gender = vocab.occupations[int(rng.integers(len(vocab.occupations)))]
        if i < n_biased:
            names = vocab.names.get(stereo_gender) or ["Alex"]
            name = names[int(rng.integers(len(names)))]
            text = fill_template(tmpl["gendered"], occ, stereo_gender, name)
            kind = "stereotypical"
        else:
            text = fill_template(tmpl["neutral"], occ, None, None)
            kind = "neutral"
        records.append((text, occ, kind))
    order = rng.permutation(n)
    return [
        Record(
            id=f"b{level:g}-g0-{j:05d}",
            text=records[i][0],
            source="seed",
            generation=0,
            axis="gender",
            initial_level=level,
            seed=seed,
            meta={"occupation": records[i][1], "seed_kind": records[i][2]},
        )
        for j, i in enumerate(order)
    ]


# --------------------------------------------------------------------------- recursion

_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_PREAMBLE = re.compile(
    r"^(?:sure|okay|ok|certainly|of course|here(?:'s| is| are)|new text|text|what a|let's|"
    r"i (?:can|will|'ll|'d)|this is)\b[^:\n]*:\s*",
    re.IGNORECASE,
)
_ABBREV = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e)\.$")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”']?(?=\s|$)")


def clean_completion(text: str, max_sentences: int = 2) -> str:
    """Reduce a raw completion to one short text.

    Small instruction models wrap their answer ("Here's a new text:\n\n\"…\"") and run on past
    the requested length. Keep the first paragraph that is not an introduction (ends with ':'),
    drop numbering, preambles and wrapping quotes, and keep at most ``max_sentences`` complete
    sentences (an unfinished last sentence is dropped when a complete one precedes it).
    """
    paras = [p.strip() for p in re.split(r"\n+", text.strip()) if p.strip()]
    chosen = ""
    for i, para in enumerate(paras):
        para = _NUMBERING.sub("", para).strip()
        if para.endswith(":") and i + 1 < len(paras):
            continue
        para = _PREAMBLE.sub("", para).strip()
        para = para.strip('"“”').strip()
        if para:
            chosen = para
            break
    if not chosen:
        return ""
    ends = [
        m.end() for m in _SENTENCE_END.finditer(chosen) if not _ABBREV.search(chosen[: m.end()])
    ]
    if ends:
        cut = ends[min(max_sentences, len(ends)) - 1]
        chosen = chosen[:cut]
    return chosen.strip().strip('"“”').strip()


def build_prompt(examples: Sequence[str], template: Mapping[str, Any]) -> Prompt:
    """Render a prompt template (see ``generate/templates/prompts.yaml``).

    A template with ``user`` (and optional ``system``) becomes chat messages, rendered later with
    the model's own chat template; one with ``completion`` becomes a raw few-shot text that the
    model continues (``{next}`` is the number of the text to write).
    """
    numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(examples, start=1))
    if "completion" in template:
        return template["completion"].format(examples=numbered, next=len(examples) + 1)
    if "user" not in template:
        raise ValueError("a prompt template needs a 'user' or a 'completion' entry")
    messages: list[Message] = []
    if template.get("system"):
        messages.append({"role": "system", "content": template["system"]})
    messages.append({"role": "user", "content": template["user"].format(examples=numbered)})
    return messages


def next_generation(
    previous: Sequence[Record],
    backend: Backend,
    params: SamplingParams,
    n: int,
    generation: int,
    k_shots: int = 3,
    prompt: str | Mapping[str, str] = "self_instruct",
    seed: int = 0,
    chunk_size: int = 32,
    max_retries: int = 2,
    on_progress: Callable[[int], None] | None = None,
) -> list[Record]:
    """Write ``n`` new texts, each from ``k_shots`` examples sampled from ``previous``.

    Empty completions (after cleaning) are regenerated with a fresh seed up to ``max_retries``
    times; any still empty are kept (as empty text, flagged in ``meta``) so counts stay exact.
    """
    if not previous:
        raise ValueError("previous generation is empty")
    template = prompt_templates()[prompt] if isinstance(prompt, str) else prompt
    level = previous[0].initial_level
    rng = np.random.default_rng(_mix_seed(seed, "shots", level, generation))
    k = min(k_shots, len(previous))
    shots = [rng.choice(len(previous), size=k, replace=False) for _ in range(n)]
    prompts = [build_prompt([previous[j].text for j in s], template) for s in shots]
    texts, raw, attempts = generate_with_retries(
        backend,
        prompts,
        params,
        clean=lambda i, text: clean_completion(text),
        chunk_seed=lambda attempt, start: _mix_seed(seed, "gen", level, generation, attempt, start),
        stop=tuple(template.get("stop", ())),
        chunk_size=chunk_size,
        max_retries=max_retries,
        on_progress=on_progress,
    )
    return [
        Record(
            id=f"b{level:g}-g{generation}-{i:05d}",
            text=texts[i],
            source="synthetic",
            generation=generation,
            parents=[previous[j].id for j in shots[i]],
            axis="gender",
            initial_level=level,
            seed=seed,
            meta={"attempts": attempts[i], "empty": not texts[i]}
            | ({"raw": raw[i]} if raw[i].strip() != texts[i] else {}),
        )
        for i in range(n)
    ]


def generate_with_retries(
    backend: Backend,
    prompts: Sequence[Prompt],
    params: SamplingParams,
    clean: Callable[[int, str], str],
    chunk_seed: Callable[[int, int], int],
    stop: tuple[str, ...] = (),
    chunk_size: int = 32,
    max_retries: int = 2,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[str], list[str], list[int]]:
    """Generate one cleaned text per prompt, in chunks, regenerating empty ones.

    ``clean(i, completion)`` turns request ``i``'s raw completion into its text (empty = failed);
    failed requests are sampled again with a fresh seed (``chunk_seed(attempt, start)``) up to
    ``max_retries`` times. Returns (texts, raw completions, attempts); a text still empty after
    the retries stays empty so counts are exact and the failure visible.
    """
    n = len(prompts)
    texts, raw, attempts = [""] * n, [""] * n, [0] * n
    todo = list(range(n))
    for attempt in range(max_retries + 1):
        for start in range(0, len(todo), chunk_size):
            idx = todo[start : start + chunk_size]
            p = SamplingParams(
                **{
                    **params.to_dict(),
                    "seed": chunk_seed(attempt, start),
                    "stop": tuple(params.stop) + stop,
                }
            )
            outs = backend.generate([prompts[i] for i in idx], p)
            for i, out in zip(idx, outs, strict=True):
                raw[i] = out.text
                texts[i] = clean(i, out.text)
                attempts[i] = attempt + 1
            if on_progress and attempt == 0:
                on_progress(len(idx))
        todo = [i for i in todo if not texts[i]]
        if not todo:
            break
    return texts, raw, attempts


def _mix_seed(*parts: Any) -> int:
    """Derive a 32-bit seed from any parts (stable across runs and platforms)."""
    return derive_seed(*parts)


# --------------------------------------------------------------------------- equilibrium fit


@dataclass
class EquilibriumFit:
    """Linear bias map b_{k+1} = a + c·b_k and its fixed point a / (1 − c) with a bootstrap CI.

    ``stable`` is |c| < 1 (an attracting equilibrium). ``stable_share`` is the share of bootstrap
    fits that were stable; the CI is over those.
    """

    a: float
    c: float
    fixed_point: float
    stable: bool
    n_points: int
    ci: CI | None = None
    stable_share: float | None = None
    method: str = "texts"
    n_resamples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("a", "c", "fixed_point"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = None
        return d


def _transitions(trajectories: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for traj in trajectories:
        for k in range(len(traj) - 1):
            xs.append(traj[k])
            ys.append(traj[k + 1])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def fit_linear_map(trajectories: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """Least-squares a, c of b_{k+1} = a + c·b_k over all transitions; returns (a, c, b*).

    b* is nan when c == 1 (no fixed point).
    """
    x, y = _transitions(trajectories)
    if len(x) < 2:
        raise ValueError("need at least two transitions (levels × generations) to fit")
    if np.ptp(x) == 0:
        raise ValueError("all starting values are equal; the map's slope is not identified")
    c, a = np.polyfit(x, y, 1)
    fp = a / (1 - c) if c != 1 else float("nan")
    return float(a), float(c), float(fp)


def fit_equilibrium(
    per_sample: Sequence[Sequence[np.ndarray]],
    method: str = "texts",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EquilibriumFit:
    """Fit the bias map on corpus means and bootstrap the fixed point's CI.

    ``per_sample[l][k]`` holds the per-text scores (e.g. 0/1 stereotypical) of level ``l`` at
    generation ``k``; the corpus bias is their mean. ``method="texts"`` resamples texts within each
    corpus (measurement noise); ``"pairs"`` resamples the transitions themselves.
    """
    trajs = [[float(np.mean(s)) for s in level_samples] for level_samples in per_sample]
    a, c, fp = fit_linear_map(trajs)
    rng = np.random.default_rng(seed)
    fps: list[float] = []
    stable = 0
    x, y = _transitions(trajs)
    for _ in range(n_resamples):
        if method == "texts":
            boot = [
                [float(np.mean(s[rng.integers(0, len(s), len(s))])) if len(s) else 0.0 for s in ls]
                for ls in per_sample
            ]
            bx, by = _transitions(boot)
        elif method == "pairs":
            idx = rng.integers(0, len(x), len(x))
            bx, by = x[idx], y[idx]
        else:
            raise ValueError(f"unknown CI method {method!r}; use 'texts' or 'pairs'")
        if np.ptp(bx) == 0:
            continue
        bc, ba = np.polyfit(bx, by, 1)
        if abs(bc) < 1:
            stable += 1
            fps.append(ba / (1 - bc))
    alpha = (1 - level) / 2
    ci = None
    if fps:
        lo, hi = np.quantile(fps, [alpha, 1 - alpha])
        ci = CI(float(lo), float(hi), level)
    return EquilibriumFit(
        a=a,
        c=c,
        fixed_point=fp,
        stable=abs(c) < 1,
        n_points=len(x),
        ci=ci,
        stable_share=stable / n_resamples if n_resamples else None,
        method=method,
        n_resamples=n_resamples,
    )


def pct_change(value: float, base: float) -> float | None:
    """Percent change from ``base``; None when the base is zero (undefined)."""
    if base == 0 or not math.isfinite(base) or not math.isfinite(value):
        return None
    return 100.0 * (value - base) / abs(base)
