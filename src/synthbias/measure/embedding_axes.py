"""Embedding anchor scores for any axis with several groups (centroid per group).

Each group's anchor is the centroid of its lexicon terms embedded with the sentence encoder. A
text's association with group g is its cosine to that centroid minus the mean cosine over the
axis' groups (centring removes what all groups share, e.g. "this is about people"). The corpus
value is the spread (max − min over groups) of the mean association: 0 when the corpus leans to
no group. For two groups this is the anchor form of the gender metric generalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from synthbias.lexicon import load_lexicon
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import bootstrap_ci


class EmbeddingAxisScorer:
    """Group-centroid anchor scores on one axis of the lexicon."""

    def __init__(
        self,
        encoder: Any,
        axis: str,
        groups: Sequence[str] | None = None,
        lexicon: Any = None,
        max_terms: int = 40,
    ) -> None:

        ax = (lexicon or load_lexicon()).axis(axis)
        self.axis = axis
        self.groups = list(groups or ax.group_names)
        centroids = []
        for g in self.groups:
            terms = [t for t in ax.terms(g) if t.strip()][:max_terms]
            if not terms:
                raise ValueError(f"axis {axis!r} group {g!r} has no terms to anchor on")
            vecs = np.asarray(encoder.encode(terms), dtype=np.float64)
            c = vecs.mean(axis=0)
            centroids.append(c / np.linalg.norm(c))
        self.encoder = encoder
        self.centroids = np.vstack(centroids)

    def associations(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_groups) centred cosine similarities."""
        emb = np.asarray(self.encoder.encode(list(texts)), dtype=np.float64)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        sims = emb @ self.centroids.T
        return sims - sims.mean(axis=1, keepdims=True)

    def measure(
        self, texts: Sequence[str], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
    ) -> dict[str, MetricResult]:
        """``anchor_spread``: max − min over groups of the mean centred association, with a
        percentile bootstrap CI over texts; per_group holds each group's mean association and
        per_sample each text's association with its closest group."""
        assoc = self.associations(texts)
        means = assoc.mean(axis=0)
        value = float(means.max() - means.min())
        n = len(assoc)
        ci = bootstrap_ci(assoc, _spread, n_resamples=n_resamples, level=level, seed=seed)
        res = MetricResult(
            name=f"{self.axis}.anchor_spread",
            value=value,
            ci=ci,
            per_group={g: float(v) for g, v in zip(self.groups, means, strict=True)},
            per_sample=[float(v) for v in assoc.max(axis=1)],
            n=n,
            meta={"axis": self.axis, "groups": self.groups},
        )
        return {"anchor_spread": res}


def _spread(assoc: np.ndarray) -> float:
    """max − min over groups of the mean association of the (resampled) texts."""
    means = assoc.mean(axis=0)
    return float(means.max() - means.min())
