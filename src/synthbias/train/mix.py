"""Training sets mixed from real and augmented data by bias ratio.

The *bias ratio* r is the share of augmented data in the training mix (ACL 2026 paper). Two modes:

* ``fixed`` — the total size N stays fixed and augmented examples replace real ones:
  round(r·N) augmented + the rest real. r = 0 is real-only, r = 1 augmented-only.
* ``additive`` — every real example is kept and round(r·|D_r|) augmented examples are added
  on top (r is then the augmented amount *relative to* the real set, the usual "augmentation
  ratio" of data-augmentation papers; the augmented share of the mix is r / (1 + r)).

Sets for different ratios are *nested* (common random numbers): each source is permuted once per
seed and every ratio takes a prefix, so comparing r = 0.25 with r = 0.5 changes only the amount
of augmented data, not which real examples happen to be drawn. Every example keeps its
provenance (``source`` real/augmented and the bias spec in ``meta``), plus ``meta["mix"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from synthbias.core.hashing import derive_seed as _mix_seed
from synthbias.core.records import Record

MixMode = Literal["fixed", "additive"]


class MixError(ValueError):
    """A mix that cannot be built from the data at hand; the message gives the counts."""


def mix_counts(
    ratio: float, n_real: int, n_augmented: int, mode: MixMode = "fixed", n_total: int | None = None
) -> tuple[int, int]:
    """(real, augmented) example counts of the mix at ``ratio``; raises when data is short."""
    if not 0.0 <= ratio <= 1.0:
        raise MixError(f"ratio must be in [0, 1], got {ratio}")
    if mode == "fixed":
        total = n_total if n_total is not None else n_real
        k_aug = int(round(ratio * total))
        k_real = total - k_aug
    elif mode == "additive":
        k_real = n_total if n_total is not None else n_real
        k_aug = int(round(ratio * k_real))
    else:
        raise MixError(f"unknown mix mode {mode!r}; choose fixed or additive")
    if k_real > n_real:
        raise MixError(
            f"ratio {ratio} ({mode}) needs {k_real} real examples but only {n_real} are available"
        )
    if k_aug > n_augmented:
        raise MixError(
            f"ratio {ratio} ({mode}) needs {k_aug} augmented examples but only {n_augmented} "
            "are available; generate more or lower n_total"
        )
    if k_real + k_aug == 0:
        raise MixError(f"ratio {ratio} ({mode}) gives an empty training set")
    return k_real, k_aug


def mix(
    real: Sequence[Record],
    augmented: Sequence[Record],
    ratio: float,
    mode: MixMode = "fixed",
    n_total: int | None = None,
    seed: int = 0,
) -> list[Record]:
    """The training mix at ``ratio`` (see the module docstring), shuffled, with provenance.

    Empty augmented texts (failed generations, flagged ``meta["empty"]``) are never used.
    """
    usable_aug = [r for r in augmented if r.text.strip()]
    k_real, k_aug = mix_counts(ratio, len(real), len(usable_aug), mode, n_total)
    perm_real = np.random.default_rng(_mix_seed(seed, "mix-real")).permutation(len(real))
    perm_aug = np.random.default_rng(_mix_seed(seed, "mix-aug")).permutation(len(usable_aug))
    chosen = [real[i] for i in perm_real[:k_real]] + [usable_aug[i] for i in perm_aug[:k_aug]]
    order = np.random.default_rng(_mix_seed(seed, "mix-order", ratio, mode)).permutation(
        len(chosen)
    )
    info: dict[str, Any] = {"ratio": ratio, "mode": mode, "seed": seed}
    return [
        chosen[i].model_copy(update={"meta": {**chosen[i].meta, "mix": info}}, deep=True)
        for i in order
    ]


def mix_summary(records: Sequence[Record]) -> dict[str, Any]:
    """Counts by source and the realised augmented share of a mix."""
    n_aug = sum(1 for r in records if r.source != "real")
    return {
        "n": len(records),
        "n_real": len(records) - n_aug,
        "n_augmented": n_aug,
        "augmented_share": n_aug / len(records) if records else float("nan"),
    }
