"""Mask-based mitigation: keep the group-bearing words of augmented examples out of training.

Bias-inheritance paper, strategy 2, two variants:

* ``loss`` — the characters of every group term (found with the lexicon's axis matchers) are
  excluded from the loss (``SFTExample.ignore_spans``): the model still reads them as context
  but is never trained to *produce* them in the augmented data's contexts.
* ``input`` — the group terms are replaced in the text by a neutral word (default "person";
  plural "people"), so the association never reaches the model at all.

Only augmented examples are masked by default (``only_source``): real data stays untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from synthbias.core.registry import MITIGATIONS
from synthbias.lexicon import load_lexicon

MaskMode = Literal["loss", "input"]

_PLURAL_HINTS = ("people", "men", "women", "s")


def group_spans(text: str, axes: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of every group term of ``axes`` in ``text`` (sorted, non-overlapping)."""

    lex = load_lexicon()
    spans = sorted(
        (m.start, m.end)
        for ax in axes
        for m in lex.axis(ax).find(text)
        if m.label is not None and m.label != "neutral"
    )
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _neutral(term: str, mask_word: str, sentence_start: bool) -> str:
    plural = any(term.lower().endswith(h) for h in _PLURAL_HINTS) and mask_word == "person"
    word = "people" if plural else mask_word
    return word[:1].upper() + word[1:] if sentence_start else word


def mask_examples(
    examples: Sequence[Any],
    axes: Sequence[str],
    mode: MaskMode = "loss",
    mask_word: str = "person",
    only_source: str | None = "augmented",
) -> list[Any]:
    """Masked copies of :class:`~synthbias.train.sft.SFTExample`s (see the module docstring)."""
    if mode not in ("loss", "input"):
        raise ValueError(f"unknown mask mode {mode!r}; choose loss or input")
    out = []
    for ex in examples:
        if only_source is not None and ex.meta.get("source") != only_source:
            out.append(ex)
            continue
        spans = group_spans(ex.completion, axes)
        if not spans:
            out.append(ex)
        elif mode == "loss":
            out.append(replace(ex, ignore_spans=sorted([*ex.ignore_spans, *spans])))
        else:
            text, last = [], 0
            for a, b in spans:
                before = ex.completion[:a].rstrip()
                start = not before or before[-1] in '.!?"\n'
                text += [ex.completion[last:a], _neutral(ex.completion[a:b], mask_word, start)]
                last = b
            text.append(ex.completion[last:])
            out.append(replace(ex, completion="".join(text), ignore_spans=[]))
    return out


MITIGATIONS.register(
    "mask_loss",
    mask_examples,
    pipelines=("inheritance",),
    kind="training",
    description="group terms of augmented examples kept out of the loss",
)
MITIGATIONS.register(
    "mask_input",
    mask_examples,
    pipelines=("inheritance",),
    kind="training",
    description="group terms of augmented examples replaced by mask_word",
)
