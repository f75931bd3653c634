"""Generation 0 (the seed corpus at a chosen initial bias) and generation k+1 (written by the
generator from few-shot examples of generation k), with the on-disk layout of chain corpora."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.core.hashing import derive_seed
from synthbias.core.records import Record
from synthbias.generate.prompts import (
    build_prompt,
    clean_completion,
    fill_template,
    prompt_templates,
    render_start,
    seed_templates,
    uses_occupation,
)
from synthbias.generate.protocol import Backend, SamplingParams
from synthbias.generate.retries import generate_with_retries
from synthbias.measure.direction import continuation


@dataclass
class SeedVocabulary:
    """Occupations with their stereotyped gender, and first names by gender."""

    occupations: list[tuple[str, str]]  # (occupation, "male" | "female")
    names: dict[str, list[str]]  # gender -> names


SEED_REMAINDERS = ("anti", "neutral")


def seed_count(level: float, n: int) -> int:
    """How many of ``n`` generation-0 texts are written stereotypical at level ``level``:
    ``round(level * n)`` (half to even). The share is ``level`` exactly only when ``level * n``
    is a whole number; otherwise generation 0 holds ``seed_count / n``, which the results
    report beside the level (:func:`~synthbias.studies.equilibrium.summary.seed_shares`)."""
    return int(round(level * n))


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
    """Generation 0: ``round(level * n)`` stereotypical texts (:func:`seed_count`), the rest
    ``remainder``.

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
    n_biased = seed_count(level, n)
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


#: Pilot texts written per chain for ``seed_source: model``, as a multiple of ``n``: about half
#: of the model's texts carry a coded pairing, and a swap that does not flip the label is dropped.
PILOT_FACTOR = 3
PAIRED = ("stereotypical", "anti")


def relabel_corpus(
    pilot: Sequence[Record],
    label_of: Callable[[str], str],
    swap: Callable[[str], str],
    level: float,
    n: int,
    seed: int = 0,
    chain: int = 0,
) -> list[Record]:
    """Generation 0 from model-written texts: ``round(level * n)`` stereotypical
    (:func:`seed_count`), the rest anti.

    ``pilot`` holds texts the generator wrote (from a balanced seed); those with a coded pairing
    (``label_of`` says ``stereotypical`` or ``anti``) are taken in a random order, and each is
    kept as it is when its label is the one its slot needs, or gender-``swap``ped (he ↔ she,
    names too) when not — and dropped when the swap does not give the needed label. So the
    corpus is the model's own prose at exactly the designed share, and the slope fitted from
    it describes model → model dynamics. A ``ValueError`` when the pilot has too few usable
    texts.
    """
    rng = np.random.default_rng(_mix_seed(seed, "relabel", level, chain))
    labels = [label_of(r.text) for r in pilot]
    coded = [i for i, lab in enumerate(labels) if lab in PAIRED]
    order = iter(rng.permutation(coded).tolist())
    n_stereo = seed_count(level, n)
    targets = ["stereotypical"] * n_stereo + ["anti"] * (n - n_stereo)
    rng.shuffle(targets)
    prefix = f"b{level:g}-" + (f"c{chain}-" if chain else "")
    out: list[Record] = []
    for target in targets:
        for i in order:
            text, swapped = pilot[i].text, labels[i] != target
            if swapped:
                text = swap(text)
                if label_of(text) != target:
                    continue
            out.append(
                Record(
                    id=f"{prefix}g0-{len(out):05d}",
                    text=text,
                    source="seed",
                    generation=0,
                    parents=[pilot[i].id],
                    axis="gender",
                    initial_level=level,
                    seed=seed,
                    meta={
                        "seed_kind": target,
                        "seed_source": "model",
                        "swapped": swapped,
                        "pilot_label": labels[i],
                        "chain": chain,
                    },
                )
            )
            break
        else:
            raise ValueError(
                f"the pilot of chain {chain} has {len(coded)} texts with a coded pairing, too few "
                f"for {n} relabelled seed texts at b0 = {level:g}; lower study.n or use "
                "seed_source: template"
            )
    return out


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
    accept: Callable[[str, str], bool] | None = None,
    eligible: Callable[[Record], bool] | None = None,
    vocab: SeedVocabulary | None = None,
    real: Sequence[Record] | None = None,
    real_share: float = 0.0,
) -> list[Record]:
    """Write ``n`` new texts, each from ``k_shots`` examples sampled from ``previous``.

    With ``real`` (a fixed real / seed corpus) and ``real_share`` ρ > 0, a share ρ of all
    ``n · k_shots`` example slots (``round``, placed at random over the prompts, each prompt's
    examples in a random order) is drawn from ``real`` instead, the rest from ``previous``
    (:func:`mixed_shots`). When ``previous`` is ``real`` itself (generation 1) there is nothing
    to mix: the draw is the unmixed one, so generation 1 does not depend on ρ.

    Empty completions (after cleaning), and with ``accept`` texts it rejects (e.g. off topic;
    called as ``accept(text, opening)``, ``opening`` the words the prompt wrote, see
    :func:`text_opening`), are regenerated with a fresh seed up to ``max_retries`` times; a
    text still empty is kept empty and one still rejected is kept as it is, both flagged in
    ``meta`` (``empty``, ``accepted``), so counts stay exact and the failure stays visible.
    ``chain`` selects an independent replicate chain (own shot and sampling seeds, own ids).
    With ``eligible``, the few-shot examples come only from the previous texts it accepts (e.g.
    those on topic), unless fewer than ``k_shots`` are. A template that names the occupation of
    each new text (an ``{occ}`` slot, see :func:`uses_occupation`) draws it from ``vocab``,
    balanced between male- and female-coded occupations (:func:`prompt_occupations`); the draw
    is kept in ``meta``, and a completion template's ``start`` (the text's opening, which the
    prompt wrote, not the model) in ``meta["opening"]``.
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
    mixing = real_share > 0 and real is not None and not _same_corpus(previous, real)
    examples: list[list[Record]] = [[previous[j] for j in s] for s in shots]
    if mixing:
        mix_rng = np.random.default_rng(
            _mix_seed(seed, "real-shots", level, generation, *_chain_part(chain))
        )
        examples = mixed_shots(previous, real, n, k_shots, real_share, mix_rng)  # type: ignore[arg-type]
    occs: list[tuple[str, str]] | list[tuple[None, None]] = [(None, None)] * n
    if uses_occupation(template):
        if vocab is None:
            raise ValueError("this prompt template names an occupation: pass vocab=...")
        occ_rng = np.random.default_rng(
            _mix_seed(seed, "occupations", level, generation, *_chain_part(chain))
        )
        occs = prompt_occupations(vocab, n, occ_rng)
    prompts = [
        build_prompt([r.text for r in ex], template, occ)
        for ex, (occ, _) in zip(examples, occs, strict=True)
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
        accept=None if accept is None else partial(_accept_with_opening, accept, set(starts)),
    )
    prefix = (f"b{level:g}-" if level is not None else "") + (f"c{chain}-" if chain else "")
    records = []
    for i in range(n):
        meta: dict[str, Any] = {"attempts": attempts[i], "empty": not texts[i]}
        if accept is not None:
            meta["accepted"] = bool(texts[i]) and accept(texts[i], starts[i])
        if chain:
            meta["chain"] = chain
        if occs[i][0] is not None:
            meta["prompt_occupation"], meta["prompt_occupation_code"] = occs[i]
        if starts[i]:
            meta["opening"] = starts[i]
        if mixing:
            meta["real_shots"] = sum(1 for r in examples[i] if r.source == REAL_SOURCE_MARK)
        if raw[i].strip() != texts[i]:
            meta["raw"] = raw[i]
        records.append(
            Record(
                id=f"{prefix}g{generation}-{i:05d}",
                text=texts[i],
                source="synthetic",
                generation=generation,
                parents=[r.id for r in examples[i]],
                axis="gender",
                initial_level=level,
                seed=seed,
                meta=meta,
            )
        )
    return records


#: ``Record.source`` of the real / seed corpus (generation 0): how a mixed prompt's real
#: examples are counted in ``meta["real_shots"]``.
REAL_SOURCE_MARK = "seed"


def _same_corpus(a: Sequence[Record], b: Sequence[Record]) -> bool:
    """Whether two corpora hold the same records (by id): then mixing them draws nothing new."""
    return {r.id for r in a} == {r.id for r in b}


def mixed_shots(
    synthetic: Sequence[Record],
    real: Sequence[Record],
    n: int,
    k_shots: int,
    real_share: float,
    rng: np.random.Generator,
) -> list[list[Record]]:
    """Each of ``n`` prompts' examples: of the ``n · k_shots`` slots, ``round(real_share · n ·
    k_shots)`` (placed uniformly at random) come from ``real``, the rest from ``synthetic``;
    within a prompt, no example repeats (while its source has enough texts) and the order is
    random (so a real example has no fixed position)."""
    if not 0 <= real_share <= 1:
        raise ValueError(f"real_share must be in [0, 1], got {real_share}")
    if not real or not synthetic:
        raise ValueError("mixing needs a non-empty real and synthetic corpus")
    slots = np.zeros(n * k_shots, dtype=bool)
    slots[: int(round(real_share * n * k_shots))] = True
    slots = rng.permutation(slots).reshape(n, k_shots)
    out = []
    for row in slots:
        n_real = int(row.sum())
        picks = [real[j] for j in _draw(rng, len(real), n_real)]
        picks += [synthetic[j] for j in _draw(rng, len(synthetic), k_shots - n_real)]
        out.append([picks[j] for j in rng.permutation(len(picks))])
    return out


def _draw(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    """``k`` indices below ``size``, without replacement while ``size`` allows."""
    return rng.choice(size, size=k, replace=k > size)


def _accept_with_opening(accept: Callable[[str, str], bool], starts: set[str], text: str) -> bool:
    """``accept(text, opening)`` with the longest of the prompts' ``starts`` that ``text``
    begins with (the retry loop passes the text only; a text begins with its own start)."""
    opening = max((o for o in starts if o and _begins_with(text, o)), key=len, default="")
    return accept(text, opening)


def _begins_with(text: str, opening: str) -> bool:
    return len(continuation(text, opening)) < len(text)


def text_opening(record: Record) -> str:
    """The words at the start of a generated text that the prompt wrote, not the model (the
    template's ``start``, e.g. "The nurse said that"): ``meta["opening"]``. A text stored
    before openings were kept, with a prompt occupation, gets the words up to that
    occupation's first mention ("The nurse"), which the prompt wrote too; else ""."""
    opening = record.meta.get("opening")
    if opening is not None:
        return str(opening)
    occ = record.meta.get("prompt_occupation")
    if not occ:
        return ""
    m = re.search(rf"\b{re.escape(str(occ))}\b", record.text, re.IGNORECASE)
    return record.text[: m.end()] if m else ""


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


def _mix_seed(*parts: Any) -> int:
    """Derive a 32-bit seed from any parts (stable across runs and platforms)."""
    return derive_seed(*parts)
