"""Content keys of the study's cached units.

Every unit (an augmented set, a training set's adapter, an evaluation, a misalignment result) is
stored under a short hash of everything that changes it, so a rerun reuses it exactly when the
work would be identical. The steps, the trainer and the runner name their units with these two
functions, so a key is computed the same way wherever it is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from synthbias.core.hashing import stable_hash
from synthbias.core.records import Record


def content_key(*parts: Any) -> str:
    """12 hex digits of the hash of ``parts`` (JSON; tuples hash like lists)."""
    return stable_hash(parts, 12)


def records_key(records: Sequence[Record]) -> str:
    """The key of a set of records: ids, texts and the prompts they answer, in order."""
    return content_key([(r.id, r.text, r.meta.get("prompt")) for r in records])
