"""Intersections: representation of (group of axis A, group of axis B) pairs co-mentioned in a
text, against independence of the two axes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from synthbias.lexicon import Axis, Lexicon
from synthbias.measure.lexical.common import (
    as_text_list,
    group_counts,
    nan_to_none,
    resolve_axis,
    resolve_groups,
)
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import percentile_ci
from synthbias.stats.divergence import js_divergence
from synthbias.stats.sums import resampled_sums


def intersection_representation(
    texts: Sequence[str],
    axis_a: str | Axis,
    axis_b: str | Axis,
    *,
    groups_a: Sequence[str] | None = None,
    groups_b: Sequence[str] | None = None,
    min_count: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> MetricResult:
    """Representation of (group of A, group of B) pairs co-mentioned in a text.

    Each text adds 1 to every cell (ga, gb) with ga and gb both mentioned in it (a text naming
    two genders and one religion fills two cells). ``per_group["ga+gb"]`` is the cell's share of
    all filled cells, NaN for cells with fewer than ``min_count`` texts (too few to read).
    ``value`` is the Jensen-Shannon divergence (bits) between the cell shares and the product
    of their marginals, i.e. how far the pairing is from independence of the two axes;
    ``meta["lift"]`` has observed / expected per readable cell. Named
    ``"<axis_a>+<axis_b>.intersection"``.
    """
    ax_a, ax_b = resolve_axis(axis_a, lexicon), resolve_axis(axis_b, lexicon)
    if ax_a.name == ax_b.name:
        raise ValueError("intersections need two different axes")
    ga, gb = resolve_groups(ax_a, groups_a), resolve_groups(ax_b, groups_b)
    texts = as_text_list(texts)
    pa = group_counts(texts, ax_a, ga) > 0
    pb = group_counts(texts, ax_b, gb) > 0
    n, Ka, Kb = len(texts), len(ga), len(gb)
    both = np.flatnonzero(pa.any(1) & pb.any(1))
    cells = (pa[both][:, :, None] & pb[both][:, None, :]).reshape(len(both), Ka * Kb)
    r, c = np.nonzero(cells)
    X = sp.csr_matrix((np.ones(len(r)), (both[r], c)), shape=(n, Ka * Kb))
    counts = np.asarray(X.sum(0)).ravel()

    def indep_jsd(S: np.ndarray) -> np.ndarray:
        J = S.reshape(-1, Ka, Kb)
        with np.errstate(invalid="ignore", divide="ignore"):
            J = J / J.sum((1, 2), keepdims=True)
        E = J.sum(2, keepdims=True) * J.sum(1, keepdims=True)
        return js_divergence(J.reshape(len(J), -1), E.reshape(len(E), -1))

    total = counts.sum()
    shares = counts / total if total else np.full(Ka * Kb, np.nan)
    J = shares.reshape(Ka, Kb)
    expected = (J.sum(1, keepdims=True) * J.sum(0, keepdims=True)).ravel()
    keys = [f"{x}+{y}" for x in ga for y in gb]
    readable = counts >= min_count
    S = resampled_sums(X, n_resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = shares / expected
    return MetricResult(
        name=f"{ax_a.name}+{ax_b.name}.intersection",
        value=float(indep_jsd(counts[None, :])[0]) if total else float("nan"),
        ci=percentile_ci(indep_jsd(S), level),
        per_group={
            k: float(s) if ok else float("nan")
            for k, s, ok in zip(keys, shares, readable, strict=True)
        },
        per_sample=_per_text(n, both, cells),
        n=n,
        meta={
            "axes": [ax_a.name, ax_b.name],
            "groups": [ga, gb],
            "min_count": min_count,
            "counts": {k: int(v) for k, v in zip(keys, counts, strict=True) if v},
            "expected_share": {
                k: nan_to_none(e) for k, e, ok in zip(keys, expected, readable, strict=True) if ok
            },
            "lift": {
                k: nan_to_none(v) for k, v, ok in zip(keys, lift, readable, strict=True) if ok
            },
            "n_texts_with_both": len(both),
            "divergence_base": 2,
        },
    )


def _per_text(n: int, rows: np.ndarray, cells: np.ndarray) -> list[float]:
    out = np.zeros(n)
    out[rows] = cells.sum(1)
    return out.tolist()
