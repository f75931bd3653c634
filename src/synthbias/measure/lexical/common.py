"""What every lexical metric shares: the spec types, resolving an axis and its groups, and each
text's count of group mentions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np

from synthbias.lexicon import Axis, Lexicon, load_lexicon

Window = Literal["sentence", "text"] | int
Contrast = Literal["auto", "pair", "rest", "reference"]
AttributeSpec = Sequence[str] | Mapping[str, Sequence[str]]
ReferenceSpec = None | str | Mapping[str, float] | Sequence[str]

#: Groups compared by default when none are given. Gender's third group holds neutral referents
#: ("they", "person", "children"): they are not a group whose share should match the others, so
#: parity is measured between male and female only. Other axes use all their groups.
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {"gender": ("male", "female")}


def resolve_axis(axis: str | Axis, lexicon: Lexicon | None) -> Axis:
    """Resolve an axis name (unknown names raise ``UnknownAxisError`` listing valid axes)."""
    if isinstance(axis, Axis):
        return axis
    return (lexicon if lexicon is not None else load_lexicon()).axis(axis)


def resolve_groups(axis: Axis, groups: Sequence[str] | None, at_least: int = 1) -> list[str]:
    """The groups to compare (the axis default when ``None``); unknown or too few is an error."""
    if groups is None:
        default = DEFAULT_GROUPS.get(axis.name)
        out = [g for g in default if g in axis.groups] if default else []
        if len(out) < 2:
            out = axis.group_names
    else:
        out = list(dict.fromkeys(groups))
        for g in out:
            if g not in axis.groups:
                raise KeyError(
                    f"axis {axis.name!r} has no group {g!r}; groups: {', '.join(axis.groups)}"
                )
    if len(out) < at_least:
        raise ValueError(f"need at least {at_least} groups of axis {axis.name!r}, got {out}")
    return out


def as_text_list(texts: Iterable[str]) -> list[str]:
    """Texts as a list (one string is refused: iterating it would measure its characters)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, not one string")
    return list(texts)


def nan_to_none(v: float) -> float | None:
    """A value for ``meta`` (JSON has no NaN): ``None`` for NaN."""
    return None if np.isnan(v) else float(v)


def group_counts(texts: Sequence[str], axis: Axis, groups: list[str]) -> np.ndarray:
    """Mentions of each of ``groups`` per text, shape (len(texts), len(groups))."""
    gc = axis.count_groups_batch(texts)
    cols = [gc.labels.index(g) for g in groups]
    return gc.counts[:, cols]
