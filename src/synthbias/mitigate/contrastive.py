"""Contrastive augmentation: every text is kept and its group-swapped twin is added.

The equilibrium paper's strongest mitigation (it cut downstream bias by 91% on average there):
the corpus then holds matched pairs that differ only in the group, so no group is tied to any
role, trait or statement more than its counterpart. Twins share ``meta["pair_id"]`` so that
pair-aware losses (:mod:`synthbias.mitigate.loss`) can find them.
"""

from __future__ import annotations

from collections.abc import Sequence

from synthbias.core.records import Record
from synthbias.core.registry import MITIGATIONS
from synthbias.mitigate.swap import bias_type_of, swapped_twin


def contrastive_augment(
    records: Sequence[Record], bias_type: str | None = None, only_source: str | None = None
) -> list[Record]:
    """Originals followed by their swapped twins (each original right before its twin).

    A twin identical to its original (nothing to swap) is not added. ``only_source`` limits
    twinning to one source (e.g. ``"augmented"``).
    """
    out: list[Record] = []
    for r in records:
        original = r.model_copy(update={"meta": {**r.meta, "pair_id": r.id}}, deep=True)
        out.append(original)
        if only_source is not None and r.source != only_source:
            continue
        twin = swapped_twin(original, bias_type or bias_type_of(r), "contrastive")
        if twin.text != r.text:
            out.append(twin)
    return out


@MITIGATIONS.register(
    "contrastive",
    pipelines=("equilibrium", "inheritance"),
    kind="data",
    description="every text's group-swapped twin added next to it",
)
def contrastive_strategy(
    records: Sequence[Record],
    settings: object,
    seed: int,
    *,
    bias_type: str | None = None,
    only_source: str | None = None,
) -> list[Record]:
    """The ``contrastive`` strategy on a corpus (it needs no settings and no seed)."""
    return contrastive_augment(records, bias_type=bias_type, only_source=only_source)
