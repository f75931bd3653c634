"""Counterfactual data augmentation (CDA): replace a share of texts by their group-swapped twins.

The equilibrium paper's *gender-swap augmentation*: a fraction of texts is replaced by its
grammar-correct swapped version (he/she, him/her, his/her/hers, himself/herself, names by
frequency rank, gendered nouns; see :func:`synthbias.lexicon.swap_gender`). Generalised to the
other axes by group substitution between a bias type's target and contrast groups
(:func:`swap_bias_type`). :mod:`synthbias.mitigate.contrastive` keeps both versions instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Protocol

import numpy as np

from synthbias.core.hashing import derive_seed as _mix_seed
from synthbias.core.records import Record
from synthbias.core.registry import MITIGATIONS
from synthbias.lexicon import swap_gender
from synthbias.lexicon.bias_types import get_bias_type


@cache
def _phrase_swapper(bias_type: str) -> tuple[re.Pattern[str], dict[str, str]]:
    bt = get_bias_type(bias_type)
    mapping: dict[str, str] = {}
    for table in (bt.person, bt.people):
        mapping[table["target"].lower()] = table["contrast"]
        mapping[table["contrast"].lower()] = table["target"]
    alts = "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
    pattern = re.compile(rf"(?:\b(a|an)\s+)?\b({alts})\b", re.IGNORECASE)
    return pattern, mapping


def _cap_like(source: str, target: str) -> str:
    return target[:1].upper() + target[1:] if source[:1].isupper() else target


def swap_bias_type(text: str, bias_type: str) -> str:
    """Swap the target and contrast groups of a bias type in ``text``.

    Gender uses the grammar-aware gender swap. Other axes swap the bias type's person and
    people phrases ("a poor person" <-> "a rich person", "Muslims" <-> "Christians"), fixing
    the article ("an older person" -> "a young person"); the lexicon's position-based
    substitution is not used there because its category rows do not align in meaning across
    groups (e.g. "poor people" would become "aristocrats").
    """
    if bias_type == "gender":
        return swap_gender(text)
    pattern, mapping = _phrase_swapper(bias_type)

    def repl(m: re.Match[str]) -> str:
        art, phrase = m.group(1), m.group(2)
        new = mapping[phrase.lower()]  # canonical spelling ("Black person", "white person")
        before = text[: m.start()].rstrip()
        if not art and (not before or before[-1] in '.!?"\n'):
            new = new[:1].upper() + new[1:]
        if not art:
            return new
        article = "an" if new[:1].lower() in "aeiou" else "a"
        return f"{_cap_like(art, article)} {new}"

    return pattern.sub(repl, text)


def bias_type_of(record: Record, default: str = "gender") -> str:
    return str(record.meta.get("bias_type") or record.axis or default)


def swap_augment(
    records: Sequence[Record],
    fraction: float = 0.5,
    seed: int = 0,
    bias_type: str | None = None,
    only_source: str | None = None,
) -> list[Record]:
    """Replace ``fraction`` of the records (chosen by seed) by their swapped twins.

    ``bias_type`` fixes the swap for all records; by default each record's own
    ``meta["bias_type"]`` (else gender) is used. ``only_source`` restricts the candidates (e.g.
    ``"augmented"``). Swapped records keep their position, get the id suffix ``-swap`` and
    record the original in ``parents`` and ``meta["mitigation"] = "swap"``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    cand = [i for i, r in enumerate(records) if only_source is None or r.source == only_source]
    k = int(round(fraction * len(cand)))
    rng = np.random.default_rng(_mix_seed(seed, "swap-augment"))
    chosen = set(rng.choice(cand, size=k, replace=False).tolist()) if k else set()
    out = []
    for i, r in enumerate(records):
        if i in chosen:
            out.append(swapped_twin(r, bias_type or bias_type_of(r), "swap"))
        else:
            out.append(r)
    return out


def swapped_twin(record: Record, bias_type: str, mitigation: str) -> Record:
    """The group-swapped copy of a record (text and instruction prompt), with provenance."""
    meta = dict(record.meta)
    if isinstance(meta.get("prompt"), str):
        meta["prompt"] = swap_bias_type(meta["prompt"], bias_type)
    meta["mitigation"] = mitigation
    return record.model_copy(
        update={
            "id": f"{record.id}-swap",
            "text": swap_bias_type(record.text, bias_type),
            "parents": [record.id],
            "meta": meta,
        },
        deep=True,
    )


class SwapSettings(Protocol):
    """What the ``swap`` strategy reads from a pipeline's mitigation settings."""

    swap_fraction: float


@MITIGATIONS.register(
    "swap",
    pipelines=("equilibrium", "inheritance"),
    kind="data",
    description="a swap_fraction of the texts replaced by their group-swapped twins (CDA)",
)
def swap_strategy(
    records: Sequence[Record],
    settings: SwapSettings,
    seed: int,
    *,
    bias_type: str | None = None,
    only_source: str | None = None,
) -> list[Record]:
    """The ``swap`` strategy on a corpus: :func:`swap_augment` at ``settings.swap_fraction``."""
    return swap_augment(
        records, settings.swap_fraction, seed, bias_type=bias_type, only_source=only_source
    )
