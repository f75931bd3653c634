"""Recursive generation and equilibrium analysis (the equilibrium-dynamics study).

Generation 0 is a seed corpus in which every text pairs a gender-coded occupation with a gendered
referent; a share ``b0`` of them is stereotypical (she + nurse) and the rest anti-stereotypical
(he + nurse), so the stereotype *direction* starts at b0. Generation k+1 is written by the
generator from few-shot examples drawn from generation k (self-instruct style), in ``R``
independent replicate chains per level. The trajectory b_k (by default the conditional stereotype
share, see :mod:`synthbias.direction`) is summarised by a linear map b_{k+1} = a + c·b_k fitted
on all chains' transitions; when |c| < 1 the map has the attracting fixed point
b* = a / (1 − c), the generator's own equilibrium.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from synthbias.core.hashing import derive_seed
from synthbias.corpus import Record
from synthbias.direction import mean_stat, text_draws
from synthbias.generate.protocol import Backend, Message, Prompt, SamplingParams
from synthbias.measure.result import CI, percentile_ci

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


SEED_REMAINDERS = ("anti", "neutral")


def _balanced_codes(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` occupation codes, half "male" and half "female" (the odd one by coin flip)."""
    first, second = ("male", "female") if rng.random() < 0.5 else ("female", "male")
    codes = [first if i % 2 == 0 else second for i in range(count)]
    rng.shuffle(codes)
    return codes


def build_seed_corpus(
    level: float,
    n: int,
    vocab: SeedVocabulary,
    seed: int = 0,
    templates: Sequence[Mapping[str, str]] | None = None,
    remainder: str = "anti",
    chain: int = 0,
) -> list[Record]:
    """Generation 0: ``round(level * n)`` stereotypical texts, the rest ``remainder``.

    Every text names a gender-coded occupation. With ``remainder="anti"`` every text also has a
    gendered referent (pronoun or first name): the stereotypical ones match the occupation's code
    (she + nurse), the others oppose it (he + nurse), so the conditional stereotype share
    stereo / (stereo + anti) equals ``round(level * n) / n`` exactly. With ``"neutral"`` the rest
    have no gendered referent (the unconditional rate is then the designed level). Within each
    kind, male- and female-coded occupations are balanced (so are male and female referents), so a
    generator's global lean to one pronoun is not read as stereotyping. ``chain`` selects an
    independent replicate (own draws of templates, occupations and names).
    """
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1], got {level}")
    if remainder not in SEED_REMAINDERS:
        raise ValueError(f"seed remainder must be one of {SEED_REMAINDERS}, got {remainder!r}")
    by_code = {g: [o for o, og in vocab.occupations if og == g] for g in ("male", "female")}
    missing = [g for g, occs in by_code.items() if not occs]
    if missing:
        raise ValueError(f"seed vocabulary has no {' or '.join(missing)}-coded occupations")
    templates = list(templates or seed_templates())
    rng = np.random.default_rng(_mix_seed(seed, "seed-corpus", level, chain))
    n_biased = int(round(level * n))
    plan = [("stereotypical", c) for c in _balanced_codes(n_biased, rng)]
    plan += [(remainder, c) for c in _balanced_codes(n - n_biased, rng)]
    opposite = {"male": "female", "female": "male"}
    records = []
    for kind, code in plan:
        tmpl = templates[int(rng.integers(len(templates)))]
        occs = by_code[code]
        occ = occs[int(rng.integers(len(occs)))]
        if kind == "neutral":
            text, referent = fill_template(tmpl["neutral"], occ, None, None), None
        else:
            referent = code if kind == "stereotypical" else opposite[code]
            names = vocab.names.get(referent) or ["Alex"]
            name = names[int(rng.integers(len(names)))]
            text = fill_template(tmpl["gendered"], occ, referent, name)
        records.append((text, occ, kind, code, referent))
    order = rng.permutation(n)
    prefix = f"b{level:g}-" + (f"c{chain}-" if chain else "")
    return [
        Record(
            id=f"{prefix}g0-{j:05d}",
            text=records[i][0],
            source="seed",
            generation=0,
            axis="gender",
            initial_level=level,
            seed=seed,
            meta={
                "occupation": records[i][1],
                "seed_kind": records[i][2],
                "occupation_code": records[i][3],
                "referent": records[i][4],
                "chain": chain,
            },
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


OCCUPATION_SLOTS = ("{occ}", "{a_occ}", "{Occ}", "{A_occ}")


def uses_occupation(template: Mapping[str, Any]) -> bool:
    """Whether a prompt template names an occupation for each new text (an ``{occ}`` slot)."""
    parts = [str(template.get(k, "")) for k in ("completion", "start", "user", "system")]
    return any(slot in part for part in parts for slot in OCCUPATION_SLOTS)


def _occupation_slots(occupation: str | None) -> dict[str, str]:
    if occupation is None:
        return {}
    a_occ = f"{_article(occupation)} {occupation}"
    return {
        "occ": occupation,
        "a_occ": a_occ,
        "Occ": occupation[:1].upper() + occupation[1:],
        "A_occ": a_occ[:1].upper() + a_occ[1:],
    }


def render_start(template: Mapping[str, Any], occupation: str | None = None) -> str:
    """A completion template's ``start`` (the words the new text begins with), slots filled."""
    if "completion" not in template:
        return ""
    return str(template.get("start", "")).format(**_occupation_slots(occupation))


def build_prompt(
    examples: Sequence[str], template: Mapping[str, Any], occupation: str | None = None
) -> Prompt:
    """Render a prompt template (see ``generate/templates/prompts.yaml``).

    A template with ``user`` (and optional ``system``) becomes chat messages, rendered later with
    the model's own chat template; one with ``completion`` becomes a raw few-shot text that the
    model continues (``{next}`` is the number of the text to write); a completion template's
    optional ``start`` is written after the number, and the model continues the text from it
    (:func:`next_generation` puts it back in front of the completion). ``occupation`` fills the
    slots ``{occ}``, ``{a_occ}``, ``{Occ}``, ``{A_occ}`` of templates that name the occupation
    of the text to write (see :func:`uses_occupation`).
    """
    if uses_occupation(template) and occupation is None:
        raise ValueError("this prompt template names an occupation: pass occupation=...")
    numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(examples, start=1))
    slots = {"examples": numbered, "next": len(examples) + 1, **_occupation_slots(occupation)}
    if "completion" in template:
        text = template["completion"].format(**slots)
        start = render_start(template, occupation)
        return f"{text} {start}" if start else text
    if "user" not in template:
        raise ValueError("a prompt template needs a 'user' or a 'completion' entry")
    messages: list[Message] = []
    if template.get("system"):
        messages.append({"role": "system", "content": template["system"].format(**slots)})
    messages.append({"role": "user", "content": template["user"].format(**slots)})
    return messages


def prompt_occupations(
    vocab: SeedVocabulary, n: int, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """``n`` (occupation, code) draws for templates that name the occupation: half male- and
    half female-coded (the odd one by coin flip), each drawn uniformly within its code, so the
    prompts themselves carry no lean to either gender."""
    by_code = {g: [o for o, og in vocab.occupations if og == g] for g in ("male", "female")}
    missing = [g for g, occs in by_code.items() if not occs]
    if missing:
        raise ValueError(f"vocabulary has no {' or '.join(missing)}-coded occupations")
    return [(by_code[c][int(rng.integers(len(by_code[c])))], c) for c in _balanced_codes(n, rng)]


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
    chain: int = 0,
    accept: Callable[[str], bool] | None = None,
    eligible: Callable[[Record], bool] | None = None,
    vocab: SeedVocabulary | None = None,
) -> list[Record]:
    """Write ``n`` new texts, each from ``k_shots`` examples sampled from ``previous``.

    Empty completions (after cleaning), and with ``accept`` texts it rejects (e.g. off topic),
    are regenerated with a fresh seed up to ``max_retries`` times; a text still empty is kept
    empty and one still rejected is kept as it is, both flagged in ``meta`` (``empty``,
    ``accepted``), so counts stay exact and the failure stays visible. ``chain`` selects an
    independent replicate chain (own shot and sampling seeds, own ids). With ``eligible``, the
    few-shot examples come only from the previous texts it accepts (e.g. those on topic), unless
    fewer than ``k_shots`` are. A template that names the occupation of each new text (an
    ``{occ}`` slot, see :func:`uses_occupation`) draws it from ``vocab``, balanced between male-
    and female-coded occupations (:func:`prompt_occupations`); the draw is kept in ``meta``.
    """
    if not previous:
        raise ValueError("previous generation is empty")
    if eligible is not None:
        pool = [r for r in previous if eligible(r)]
        previous = pool if len(pool) >= min(k_shots, len(previous)) else previous
    template = prompt_templates()[prompt] if isinstance(prompt, str) else prompt
    level = previous[0].initial_level
    rng = np.random.default_rng(_mix_seed(seed, "shots", level, generation, *_chain_part(chain)))
    k = min(k_shots, len(previous))
    shots = [rng.choice(len(previous), size=k, replace=False) for _ in range(n)]
    occs: list[tuple[str, str]] | list[tuple[None, None]] = [(None, None)] * n
    if uses_occupation(template):
        if vocab is None:
            raise ValueError("this prompt template names an occupation: pass vocab=...")
        occ_rng = np.random.default_rng(
            _mix_seed(seed, "occupations", level, generation, *_chain_part(chain))
        )
        occs = prompt_occupations(vocab, n, occ_rng)
    prompts = [
        build_prompt([previous[j].text for j in s], template, occ)
        for s, (occ, _) in zip(shots, occs, strict=True)
    ]
    starts = [render_start(template, occ) for occ, _ in occs]
    texts, raw, attempts = generate_with_retries(
        backend,
        prompts,
        params,
        clean=lambda i, text: clean_completion(f"{starts[i]}{text}" if starts[i] else text),
        chunk_seed=lambda attempt, chunk: _mix_seed(
            seed, "gen", level, generation, attempt, chunk, *_chain_part(chain)
        ),
        stop=tuple(template.get("stop", ())),
        chunk_size=chunk_size,
        max_retries=max_retries,
        on_progress=on_progress,
        accept=accept,
    )
    prefix = f"b{level:g}-" + (f"c{chain}-" if chain else "")
    records = []
    for i in range(n):
        meta: dict[str, Any] = {"attempts": attempts[i], "empty": not texts[i]}
        if accept is not None:
            meta["accepted"] = bool(texts[i]) and accept(texts[i])
        if chain:
            meta["chain"] = chain
        if occs[i][0] is not None:
            meta["prompt_occupation"], meta["prompt_occupation_code"] = occs[i]
        if raw[i].strip() != texts[i]:
            meta["raw"] = raw[i]
        records.append(
            Record(
                id=f"{prefix}g{generation}-{i:05d}",
                text=texts[i],
                source="synthetic",
                generation=generation,
                parents=[previous[j].id for j in shots[i]],
                axis="gender",
                initial_level=level,
                seed=seed,
                meta=meta,
            )
        )
    return records


def chain_corpus_path(out: Path, level: float, chain: int, generation: int) -> Path:
    """Where a chain's corpus is stored: chain 0 directly under ``corpora/level-*/`` (as single
    chain runs always were), chain r ≥ 1 under ``corpora/level-*/chain-r/``."""
    folder = Path(out) / "corpora" / f"level-{level:g}"
    if chain:
        folder = folder / f"chain-{chain}"
    return folder / f"gen-{generation}.jsonl"


def _chain_part(chain: int) -> tuple[Any, ...]:
    """Seed parts for a replicate chain; chain 0 keeps the single-chain seeds."""
    return ("chain", chain) if chain else ()


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
    accept: Callable[[str], bool] | None = None,
) -> tuple[list[str], list[str], list[int]]:
    """Generate one cleaned text per prompt, in chunks, regenerating failed ones.

    ``clean(i, completion)`` turns request ``i``'s raw completion into its text (empty = failed);
    with ``accept``, a non-empty text it rejects also counts as failed. Failed requests are
    sampled again with a fresh seed (``chunk_seed(attempt, start)``) up to ``max_retries`` times.
    Returns (texts, raw completions, attempts); a request that never succeeds keeps its last
    non-empty text (or stays empty), so counts are exact and the failure visible.
    """
    n = len(prompts)
    texts, raw, attempts = [""] * n, [""] * n, [0] * n
    ok = [False] * n
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
                text = clean(i, out.text)
                attempts[i] = attempt + 1
                if text or not texts[i]:  # keep an earlier non-empty text over an empty one
                    raw[i], texts[i] = out.text, text
                ok[i] = bool(text) and (accept is None or accept(text))
            if on_progress and attempt == 0:
                on_progress(len(idx))
        todo = [i for i in todo if not ok[i]]
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
    """Fit the bias map on corpus means, one chain per level (see :func:`fit_equilibrium_chains`).

    ``per_sample[l][k]`` holds the per-text scores (e.g. 0/1 stereotypical) of level ``l`` at
    generation ``k``; the corpus bias is their mean. ``method="texts"`` resamples texts within each
    corpus (measurement noise); ``"pairs"`` resamples the transitions themselves.
    """
    if method not in ("texts", "pairs"):
        raise ValueError(f"unknown CI method {method!r}; use 'texts' or 'pairs'")
    data = [[[np.asarray(s, dtype=float) for s in lv]] for lv in per_sample]
    return fit_equilibrium_chains(data, mean_stat, method, n_resamples, level, seed)


def pct_change(value: float, base: float) -> float | None:
    """Percent change from ``base``; None when the base is zero (undefined)."""
    if base == 0 or not math.isfinite(base) or not math.isfinite(value):
        return None
    return 100.0 * (value - base) / abs(base)


def chain_trajectories(
    data: Sequence[Sequence[Sequence[np.ndarray]]], stat: Callable[[np.ndarray], Any]
) -> list[list[float]]:
    """Per (level, chain) the statistic of each generation: ``data[level][chain][k]`` holds the
    per-text values of that corpus."""
    return [
        [float(stat(np.asarray(x))) if len(x) else float("nan") for x in chain]
        for level in data
        for chain in level
    ]


def _fit_points(trajs: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _transitions(trajs)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def fit_equilibrium_chains(
    data: Sequence[Sequence[Sequence[np.ndarray]]],
    stat: Callable[[np.ndarray], Any],
    method: str = "chains",
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> EquilibriumFit:
    """Fit b_(k+1) = a + c·b_k on every chain's transitions and bootstrap the fixed point.

    ``data[level][chain][k]`` holds the per-text values (e.g. +1/−1/0 pairing codes) of one
    corpus and ``stat`` turns a (resamples, texts) array into one value per resample (ratio
    statistics are recomputed on resampled texts). ``method``: ``chains`` draws chains with
    replacement within each level, then texts within each drawn chain (with one chain per level
    this is the texts bootstrap, labelled so); ``texts`` keeps the chains and resamples texts;
    ``pairs`` resamples the transitions. Transitions with an undefined value (no pairings) are
    left out of the fit, and their count is recorded.
    """
    if method not in ("chains", "texts", "pairs"):
        raise ValueError(f"unknown CI method {method!r}; use 'chains', 'texts' or 'pairs'")
    trajs = chain_trajectories(data, stat)
    x, y = _fit_points(trajs)
    n_all = sum(max(len(t) - 1, 0) for t in trajs)
    a, c, fp = fit_linear_map([list(p) for p in zip(x, y, strict=True)])
    rng = np.random.default_rng(seed)
    chains_per_level = [len(lv) for lv in data]
    fps: list[float] = []
    stable = 0
    if method == "pairs":
        boots = []
        for _ in range(n_resamples):
            idx = rng.integers(0, len(x), len(x))
            boots.append((x[idx], y[idx]))
    else:
        # draws[level][chain][k]: the statistic of n_resamples * R text resamples of that corpus
        draws = [
            [[text_draws(np.asarray(g), stat, n_resamples * len(lv), rng) for g in ch] for ch in lv]
            for lv in data
        ]
        boots = []
        for b in range(n_resamples):
            trs: list[list[float]] = []
            for li, lv in enumerate(draws):
                r = chains_per_level[li]
                picks = rng.integers(0, r, r) if method == "chains" else np.arange(r)
                for slot, ch in enumerate(picks):
                    trs.append([float(d[b * r + slot]) for d in lv[ch]])
            boots.append(_fit_points(trs))
    for bx, by in boots:
        if len(bx) < 2 or np.ptp(bx) == 0:
            continue
        bc, ba = np.polyfit(bx, by, 1)
        if abs(bc) < 1:
            stable += 1
            fps.append(ba / (1 - bc))
    ci = None
    if fps:
        ci = percentile_ci(np.asarray(fps), level)
    single = all(r == 1 for r in chains_per_level)
    label = method
    if method == "chains" and single:
        label = "chains (single chain per level: texts only)"
    return EquilibriumFit(
        a=a,
        c=c,
        fixed_point=fp,
        stable=abs(c) < 1,
        n_points=len(x),
        ci=ci,
        stable_share=stable / n_resamples if n_resamples else None,
        method=label,
        n_resamples=n_resamples,
        extra={
            "chains_per_level": chains_per_level,
            "transitions_left_out": n_all - len(x),
            "single_chain": single,
        },
    )
