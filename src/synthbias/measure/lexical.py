"""Lexical bias metrics for any axis: who is mentioned, and next to which words.

Four families, each returning :class:`~synthbias.measure.result.MetricResult` objects named
``"<axis>.<metric>"``:

* **representation** — each group's share of the axis' group mentions, and how far that
  distribution is from a reference (uniform, given shares, or another corpus): total variation
  (``representation``), Jensen-Shannon divergence in bits (``representation_jsd``, in [0, 1])
  and KL(corpus || reference) in bits (``representation_kl``);
* **co-occurrence bias** (Bordia & Bowman, 2019) — for attribute words ``w``,
  ``bias(w) = ln(P(w|a) / P(w|b))`` from attribute-group co-occurrence counts in a window, with
  add-k smoothing; the corpus score is the mean ``|bias(w)|`` (``cooccurrence_bias``) and the
  signed mean (``cooccurrence_bias_signed``);
* **stereotype rate** — among texts where an associated attribute co-occurs with a group mention,
  the share where it co-occurs with the group it is stereotypically associated with;
* **intersections** — representation of (group of axis A, group of axis B) pairs co-mentioned in
  a text, against independence of the two axes.

Every CI is a percentile bootstrap over texts. Metrics here are ratios of corpus-wide sums
(shares, smoothed probabilities), so :func:`resampled_sums` resamples texts and recomputes the
sums for all resamples at once: rows that are identical (most texts mention nothing) are grouped
and each resample draws multinomial counts over the groups. That is the ordinary nonparametric
bootstrap, just vectorised, which is what makes 1,000 resamples of a 100k-text corpus cheap.

Stereotype associations (group -> attribute words) are data: the ``associations`` key of an axis
file, or passed by the caller; gender uses its occupation statistics (male-/female-coded). The
shipped non-gender axes define none, so their co-occurrence and stereotype metrics run only
when the caller passes attributes / associations.

Matching is lexical and whole-word (the axis' compiled matcher): no coreference, no negation,
no word-sense disambiguation. Per-text values are noisy; corpus values are the point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from synthbias.lexicon import (
    FEMALE_CODED,
    MALE_CODED,
    Axis,
    Lexicon,
    MatchEntry,
    TermMatcher,
    load_lexicon,
)
from synthbias.lexicon.matching import SEP
from synthbias.measure.result import CI, MetricResult, percentile_ci
from synthbias.stats.divergence import js_divergence, kl_divergence

Window = Literal["sentence", "text"] | int
Contrast = Literal["auto", "pair", "rest", "reference"]
AttributeSpec = Sequence[str] | Mapping[str, Sequence[str]]
ReferenceSpec = None | str | Mapping[str, float] | Sequence[str]

#: Groups compared by default when none are given. Gender's third group holds neutral referents
#: ("they", "person", "children"): they are not a group whose share should match the others, so
#: parity is measured between male and female only. Other axes use all their groups.
DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {"gender": ("male", "female")}


# =============================================================================== bootstrap
def resampled_sums(
    X: np.ndarray | sp.spmatrix | sp.sparray, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """Column sums of ``X`` (rows = texts) over ``n_resamples`` bootstrap resamples of its rows.

    Returns a ``(n_resamples, n_columns)`` array with the same distribution as
    ``X[rng.integers(0, n, n)].sum(0)`` repeated, computed from the distinct rows only
    (identical rows, e.g. the many texts that mention nothing, are pooled). Each resample draws
    how many copies of each distinct row it holds: a multinomial when there are few distinct
    rows, otherwise resampled indices counted with ``bincount``.
    """
    n, d = X.shape
    rng = np.random.default_rng(seed)
    if n == 0:
        return np.full((n_resamples, d), np.nan)
    U, inv, mult = _distinct_rows(X)
    u = U.shape[0]
    if (u + 1) * 8 <= n:  # few distinct rows: one multinomial per resample over them
        p = mult / n
        W = rng.multinomial(n, p, size=n_resamples).astype(float)
        return _times(W, U)
    out = []
    block = max(1, min(n_resamples, 4_000_000 // n))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        bins = inv[rng.integers(0, n, size=(b, n))] + u * np.arange(b)[:, None]
        W = np.bincount(bins.ravel(), minlength=b * u).reshape(b, u)
        out.append(_times(W.astype(float), U))
    return np.concatenate(out)


def _distinct_rows(
    X: np.ndarray | sp.spmatrix | sp.sparray,
) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray, np.ndarray]:
    """(distinct rows U, row -> index into U, multiplicities).

    Rows are grouped by a random projection (1-D ``np.unique``, much faster than
    ``np.unique(axis=0)``) and the grouping is verified exactly; if two different rows ever
    shared a projection, every row is kept as its own group.
    """
    n, d = X.shape
    sparse = sp.issparse(X)
    X = sp.csr_matrix(X, dtype=float) if sparse else np.asarray(X, dtype=float).reshape(n, d)
    w = np.random.default_rng(12345).random(d) + 0.5
    key = np.asarray(X @ w).ravel()
    _, first, inv, mult = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    U = X[first]
    same = (U[inv] != X).nnz == 0 if sparse else np.array_equal(U[inv], X)
    if not same:
        return X, np.arange(n), np.ones(n, dtype=np.int64)
    return U, inv, mult


def _times(W: np.ndarray, U: np.ndarray | sp.csr_matrix) -> np.ndarray:
    if sp.issparse(U):
        return np.asarray((U.T @ W.T).T)
    return W @ U


def sums_ci(
    X: np.ndarray | sp.spmatrix,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> CI:
    """Bootstrap CI of a statistic of column sums; ``statistic`` maps (B, d) sums to (B,)."""
    if X.shape[0] == 0:
        return CI(float("nan"), float("nan"), level)
    return percentile_ci(statistic(resampled_sums(X, n_resamples, seed)), level)


# =============================================================================== helpers
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


def _nan_to_none(v: float) -> float | None:
    return None if np.isnan(v) else float(v)


# =============================================================================== representation
@dataclass
class _Reference:
    kind: str  # "uniform" | "given" | "corpus"
    shares: np.ndarray
    counts: np.ndarray | None = None  # per-text counts of a reference corpus (resampled too)


def _reference(
    axis: Axis, groups: list[str], reference: ReferenceSpec, lexicon: Lexicon | None
) -> _Reference:
    k = len(groups)
    if reference is None or (isinstance(reference, str) and reference == "uniform"):
        return _Reference("uniform", np.full(k, 1.0 / k))
    if isinstance(reference, str):
        raise ValueError(f"reference must be 'uniform', a mapping or texts, got {reference!r}")
    if isinstance(reference, Mapping):
        unknown = set(reference) - set(groups)
        if unknown:
            raise KeyError(
                f"reference names groups {sorted(unknown)} not compared on axis {axis.name!r}; "
                f"groups: {', '.join(groups)}"
            )
        q = np.array([float(reference.get(g, 0.0)) for g in groups])
        if (q < 0).any() or not q.sum() > 0:
            raise ValueError("reference shares must be non-negative with a positive sum")
        return _Reference("given", q / q.sum())
    counts = _group_counts(as_text_list(reference), axis, groups)
    total = counts.sum()
    shares = counts.sum(0) / total if total else np.full(k, np.nan)
    return _Reference("corpus", shares, counts)


def _group_counts(texts: Sequence[str], axis: Axis, groups: list[str]) -> np.ndarray:
    gc = axis.count_groups_batch(texts)
    cols = [gc.labels.index(g) for g in groups]
    return gc.counts[:, cols]


def group_representation(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    reference: ReferenceSpec = None,
    *,
    groups: Sequence[str] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Group shares of mentions and their distance from a reference distribution.

    ``reference``: ``None``/``"uniform"``, a mapping group -> weight (normalised; groups left out
    get 0), or another corpus (a sequence of texts, resampled independently in the bootstrap).
    Returns ``<axis>.representation`` (total variation distance ``½Σ|p-q|``: the share of
    mentions that would have to move to match the reference), ``<axis>.representation_jsd``
    (Jensen-Shannon, bits, [0, 1]) and ``<axis>.representation_kl`` (KL(p||q), bits). All three
    carry the observed shares in ``per_group`` and per-share CIs in ``meta["share_ci"]``;
    ``per_sample`` is each text's number of group mentions.
    """
    ax = resolve_axis(axis, lexicon)
    gs = resolve_groups(ax, groups)
    ref = _reference(ax, gs, reference, lexicon)
    return _representation_from_counts(
        _group_counts(as_text_list(texts), ax, gs), ax.name, gs, ref, n_resamples, seed, level
    )


def _representation_from_counts(
    counts: np.ndarray,
    axis_name: str,
    groups: list[str],
    ref: _Reference,
    n_resamples: int,
    seed: int,
    level: float,
) -> dict[str, MetricResult]:
    n = counts.shape[0]
    totals = counts.sum(0).astype(float)
    total = totals.sum()
    p = totals / total if total else np.full(len(groups), np.nan)
    q = ref.shares

    S = resampled_sums(counts, n_resamples, seed) if n else np.full((1, len(groups)), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = S / S.sum(1, keepdims=True)
    if ref.counts is not None and len(ref.counts):
        R = resampled_sums(ref.counts, n_resamples, seed + 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            Q = R / R.sum(1, keepdims=True)
    else:
        Q = q[None, :]

    def tvd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return 0.5 * np.abs(a - b).sum(-1)

    share_ci = {g: percentile_ci(P[:, j], level) for j, g in enumerate(groups)}
    meta: dict[str, Any] = {
        "groups": groups,
        "counts": {g: int(c) for g, c in zip(groups, totals, strict=True)},
        "n_mentions": int(total),
        "n_texts_with_mentions": int((counts.sum(1) > 0).sum()),
        "reference_kind": ref.kind,
        "reference": {g: _nan_to_none(v) for g, v in zip(groups, q, strict=True)},
        "share_ci": {g: [c.low, c.high] for g, c in share_ci.items()},
        "divergence_base": 2,
    }
    per_group = {g: float(v) for g, v in zip(groups, p, strict=True)}
    per_sample = counts.sum(1).astype(float).tolist()
    out = {}
    for suffix, fn in (
        ("representation", tvd),
        ("representation_jsd", js_divergence),
        ("representation_kl", kl_divergence),
    ):
        value = float(fn(p, q)) if total else float("nan")
        out[f"{axis_name}.{suffix}"] = MetricResult(
            name=f"{axis_name}.{suffix}",
            value=value,
            ci=percentile_ci(fn(P, Q), level),
            per_group=dict(per_group),
            per_sample=list(per_sample),
            n=n,
            meta=dict(meta),
        )
    return out


# =============================================================================== co-occurrence
# A sentence ends at . ! ? (plus closing quotes/brackets) before whitespace or the end of the
# text, or at a newline; not after a title abbreviation ("Mr. Lee").
_TEXT_SEP = "\x01"
_SENTENCE_END = re.compile(
    r"[.!?](?<!\bMr\.)(?<!\bMrs\.)(?<!\bMs\.)(?<!\bMx\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bJr\.)"
    r"(?<!\bSr\.)(?<!\bProf\.)[.!?]*[\"'\u201d\u2019)\]]*(?=\s|\x01|$)|\n"
)
_TOKEN = re.compile(r"\w+")


def _check_window(window: Window) -> Window:
    if window in ("sentence", "text"):
        return window
    if isinstance(window, int) and not isinstance(window, bool) and window >= 1:
        return window
    raise ValueError(f"window must be 'sentence', 'text' or a positive int, got {window!r}")


def _norm_attributes(attributes: AttributeSpec) -> dict[str, tuple[str, ...]]:
    """Attribute label -> surface forms; a plain list makes each word its own label."""
    if isinstance(attributes, str):
        raise TypeError("attributes must be a list of words or a mapping label -> forms")
    if isinstance(attributes, Mapping):
        out = {}
        for label, forms in attributes.items():
            forms = (forms,) if isinstance(forms, str) else tuple(forms)
            if not forms:
                raise ValueError(f"attribute {label!r} has no surface forms")
            out[str(label)] = forms
    else:
        out = {str(w): (str(w),) for w in attributes}
    if not out:
        raise ValueError("no attribute words given")
    return out


def axis_associations(
    axis: str | Axis, lexicon: Lexicon | None = None, lo: float = 30.0, hi: float = 70.0
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]] | None:
    """The axis' default attributes and stereotype associations, or ``None`` if it has none.

    Returns ``(attributes, associations)``: attribute label -> surface forms, and group ->
    attribute labels. From the axis file's ``associations`` (all sets merged) when present; for
    an axis with an occupation table (gender), every occupation is an attribute (all its forms)
    and male-/female-coded occupations (``pct_female <= lo`` / ``>= hi``) are associated with
    the male/female group.
    """
    ax = resolve_axis(axis, lexicon)
    if ax.associations:
        assoc: dict[str, list[str]] = {}
        for by_group in ax.associations.values():
            for g, words in by_group.items():
                listed = assoc.setdefault(g, [])
                listed.extend(w for w in dict.fromkeys(words) if w not in listed)
        labels = dict.fromkeys(w for ws in assoc.values() for w in ws)
        return {w: (w,) for w in labels}, assoc
    if ax.occupations is not None:
        attrs = {occ.name: occ.forms for occ in ax.occupations}
        codes = ax.occupations.codes(lo, hi)
        assoc = {}
        for gender, code in (("male", MALE_CODED), ("female", FEMALE_CODED)):
            g = ax.occupation_groups.get(gender)
            if g is not None:
                assoc[g] = [o for o, c in codes.items() if c == code]
        return attrs, assoc
    return None


_MATCHERS: dict[tuple[int, tuple[tuple[str, tuple[str, ...]], ...]], tuple[Axis, TermMatcher]] = {}


def _cooc_matcher(axis: Axis, attrs: dict[str, tuple[str, ...]]) -> TermMatcher:
    """One matcher for the axis' group terms (label ("g", i)) and attributes (("a", j))."""
    key = (id(axis), tuple(attrs.items()))
    cached = _MATCHERS.get(key)
    if cached is not None and cached[0] is axis:
        return cached[1]
    attr_keys: dict[str, int] = {}
    for j, forms in enumerate(attrs.values()):
        for f in forms:
            attr_keys[" ".join(f.split()).lower()] = j
    gindex = {g: i for i, g in enumerate(axis.group_names)}
    entries = []
    for e in axis.entries():
        k = " ".join(e.term.split()).lower()
        if k in attr_keys:
            if e.case_sensitive or e.label is None:
                continue  # a first name or ignored phrase spelled like an attribute
            raise ValueError(
                f"attribute form {e.term!r} is also a term of group {e.label!r} on axis "
                f"{axis.name!r}; remove it from the attributes"
            )
        label = None if e.label is None else ("g", gindex[e.label])
        entries.append(MatchEntry(e.term, label, e.case_sensitive, e.followed_by))
    for j, forms in enumerate(attrs.values()):
        for f in forms:
            entries.append(MatchEntry(f, ("a", j), False))
    matcher = TermMatcher(entries)
    if len(_MATCHERS) > 32:
        _MATCHERS.clear()
    _MATCHERS[key] = (axis, matcher)  # the axis is kept so its id cannot be reused
    return matcher


@dataclass
class _Cooc:
    """Attribute-group co-occurrence pair counts, aggregated per (text, attribute, group)."""

    n_texts: int
    attributes: list[str]
    axis_groups: list[str]
    text: np.ndarray
    attr: np.ndarray
    group: np.ndarray
    count: np.ndarray

    def matrix(self, groups: list[str]) -> sp.csr_matrix:
        """Per-text counts, shape (n_texts, n_attributes * len(groups)), column a*K + g."""
        gi = {self.axis_groups.index(g): k for k, g in enumerate(groups)}
        keep = np.isin(self.group, list(gi))
        col = self.attr[keep] * len(groups) + np.array([gi[g] for g in self.group[keep]], int)
        return sp.csr_matrix(
            (self.count[keep].astype(float), (self.text[keep], col)),
            shape=(self.n_texts, len(self.attributes) * len(groups)),
        )


def _cooccurrences(
    texts: Sequence[str],
    axis: Axis,
    attrs: dict[str, tuple[str, ...]],
    window: Window,
    chunk_size: int = 20000,
) -> _Cooc:
    """Count attribute-group pairs sharing a window, per (text, attribute, group).

    A pair is one attribute mention and one group mention in the same sentence / text, or at
    most ``window`` word tokens apart (positions of their first tokens); a sentence with two
    group mentions and one attribute mention gives two pairs. Sentence and text windows are
    counted with the matcher's batch counter over the units (fast); token windows need hit
    positions and scan hit by hit (a few times slower).
    """
    window = _check_window(window)
    matcher = _cooc_matcher(axis, attrs)
    frame = (
        _token_window_pairs(texts, matcher, window, chunk_size)
        if isinstance(window, int)
        else _unit_pairs(texts, matcher, window, chunk_size)
    )
    if len(frame):
        df = frame.groupby(["text", "a", "g"], sort=True)["count"].sum().reset_index()
        arrs = [df[c].to_numpy(np.int64) for c in ("text", "a", "g", "count")]
    else:
        arrs = [np.zeros(0, np.int64)] * 4
    return _Cooc(len(texts), list(attrs), axis.group_names, *arrs)


_EMPTY_PAIRS = pd.DataFrame({c: np.zeros(0, np.int64) for c in ("text", "a", "g", "count")})


def _split_units(texts: Sequence[str], window: str) -> tuple[list[str], np.ndarray]:
    """The counting units (sentences or whole texts) and the text each comes from."""
    if window == "text":
        return list(texts), np.arange(len(texts))
    clean = [t.replace(SEP, " ").replace(_TEXT_SEP, " ") for t in texts]
    # The end punctuation itself is replaced (a literal replacement is much faster than a
    # template); it is never part of a term, and the separator is a word boundary.
    marked = _SENTENCE_END.sub(SEP, _TEXT_SEP.join(clean))
    units: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(marked.split(_TEXT_SEP)):
        parts = t.split(SEP)
        units.extend(parts)
        owner.extend([i] * len(parts))
    return units, np.asarray(owner, dtype=np.int64)


def _unit_pairs(
    texts: Sequence[str], matcher: TermMatcher, window: str, chunk_size: int
) -> pd.DataFrame:
    units, owner = _split_units(texts, window)
    labels = matcher.labels
    a_cols = [c for c, lab in enumerate(labels) if lab[0] == "a"]  # type: ignore[index]
    g_cols = [c for c, lab in enumerate(labels) if lab[0] == "g"]  # type: ignore[index]
    a_idx = np.array([labels[c][1] for c in a_cols], dtype=np.int64)  # type: ignore[index]
    g_idx = np.array([labels[c][1] for c in g_cols], dtype=np.int64)  # type: ignore[index]
    parts = []
    for lo in range(0, len(units), chunk_size):
        C = matcher.count_batch(units[lo : lo + chunk_size]).counts
        A, G = C[:, a_cols], C[:, g_cols]
        rows = np.flatnonzero(A.any(1) & G.any(1))
        if not len(rows):
            continue
        A, G = A[rows], G[rows]
        ra, ca = np.nonzero(A)
        rg, cg = np.nonzero(G)
        da = pd.DataFrame({"r": ra, "a": a_idx[ca], "na": A[ra, ca]})
        dg = pd.DataFrame({"r": rg, "g": g_idx[cg], "ng": G[rg, cg]})
        m = da.merge(dg, on="r")
        parts.append(
            pd.DataFrame(
                {
                    "text": owner[lo + rows[m["r"].to_numpy()]],
                    "a": m["a"].to_numpy(),
                    "g": m["g"].to_numpy(),
                    "count": (m["na"] * m["ng"]).to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else _EMPTY_PAIRS


def _token_window_pairs(
    texts: Sequence[str], matcher: TermMatcher, window: int, chunk_size: int
) -> pd.DataFrame:
    regex, label_of = matcher.regex, matcher.label_of
    parts = []
    for lo in range(0, len(texts), chunk_size):
        joined = " " + SEP.join(t.replace(SEP, " ") for t in texts[lo : lo + chunk_size])
        rows: list[tuple[int, int, int, int]] = []  # (text, kind 0=group 1=attr, index, pos)
        i = 0
        for m in regex.finditer(joined):
            s = m.group()
            if s[0] == SEP:
                i += 1
            lab = label_of(s[1:]) if len(s) > 1 else None
            if lab is not None:
                rows.append((i, 0 if lab[0] == "g" else 1, lab[1], m.start() + 1))
        if not rows:
            continue
        hits = pd.DataFrame(rows, columns=["text", "kind", "idx", "pos"])
        starts = np.fromiter((m.start() for m in _TOKEN.finditer(joined)), dtype=np.int64)
        hits["tok"] = np.searchsorted(starts, hits["pos"].to_numpy(), side="left")
        a = hits[hits["kind"] == 1]
        g = hits[hits["kind"] == 0]
        pairs = a.merge(g, on="text", suffixes=("_a", "_g"))
        pairs = pairs[(pairs["tok_a"] - pairs["tok_g"]).abs() <= window]
        parts.append(
            pd.DataFrame(
                {
                    "text": pairs["text"].to_numpy() + lo,
                    "a": pairs["idx_a"].to_numpy(),
                    "g": pairs["idx_g"].to_numpy(),
                    "count": np.ones(len(pairs), dtype=np.int64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else _EMPTY_PAIRS


def _contrasts(
    groups: list[str], contrast: Contrast, reference_group: str | None
) -> list[tuple[str, int, list[int]]]:
    """(label, index of group a, indices pooled as group b) for each comparison."""
    k = len(groups)
    if contrast == "auto":
        contrast = "pair" if k == 2 else "reference" if reference_group else "rest"
    if contrast == "pair":
        if k != 2:
            raise ValueError(f"contrast='pair' needs exactly two groups, got {groups}")
        return [(f"{groups[0]}_vs_{groups[1]}", 0, [1])]
    if contrast == "rest":
        return [(g, i, [j for j in range(k) if j != i]) for i, g in enumerate(groups)]
    if contrast == "reference":
        if reference_group not in groups:
            raise ValueError(f"reference_group {reference_group!r} is not one of {groups}")
        r = groups.index(reference_group)
        return [(g, i, [r]) for i, g in enumerate(groups) if i != r]
    raise ValueError(f"contrast must be 'auto', 'pair', 'rest' or 'reference', got {contrast!r}")


def _bias(
    C: np.ndarray,
    contrasts: list[tuple[str, int, list[int]]],
    smoothing: float,
    min_count: int,
) -> np.ndarray:
    """bias (..., n_contrasts, V) from counts C (..., V, K); NaN for attributes below min_count.

    P(w|g) = (c(w,g) + k) / (sum_w' c(w',g) + k V), V the number of attributes.
    """
    V = C.shape[-2]
    out = []
    for _, a, b in contrasts:
        ca = C[..., :, a]
        cb = C[..., :, b].sum(-1)
        na = ca.sum(-1, keepdims=True)
        nb = cb.sum(-1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            bias = np.log((ca + smoothing) / (na + smoothing * V)) - np.log(
                (cb + smoothing) / (nb + smoothing * V)
            )
        out.append(np.where(ca + cb >= min_count, bias, np.nan))
    return np.stack(out, axis=-2)


def _nanmean(a: np.ndarray, axis: int = -1) -> np.ndarray:
    n = (~np.isnan(a)).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.nansum(a, axis) / np.maximum(n, 1), np.nan)


def cooccurrence_bias(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    attributes: AttributeSpec | None = None,
    *,
    groups: Sequence[str] | None = None,
    contrast: Contrast = "auto",
    reference_group: str | None = None,
    window: Window = "sentence",
    smoothing: float = 1.0,
    min_count: int = 1,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Bordia & Bowman (2019) co-occurrence bias of attribute words between groups.

    ``bias(w) = ln(P(w|a) / P(w|b))``, positive when ``w`` leans towards group ``a``, with
    ``P(w|g) = (c(w,g) + k) / (N_g + k V)``: ``c(w,g)`` the attribute-group pairs in a
    ``window`` (``"sentence"``, ``"text"`` or a number of word tokens either side), ``N_g`` their
    total over the ``V`` attributes, ``k = smoothing``. Attributes with fewer than ``min_count``
    pairs with a or b are left out (NaN). B&B's sign (positive = female) is
    ``groups=("female", "male")``; the default gender order is (male, female).

    Comparisons (``contrast``): with two groups, a vs b (``"pair"``); with more, each group vs
    all others pooled (``"rest"``, the default) or vs ``reference_group`` (``"reference"``).
    ``<axis>.cooccurrence_bias`` is the mean |bias| over attributes (averaged over comparisons),
    ``<axis>.cooccurrence_bias_signed`` the signed mean; ``per_group`` has one value per
    comparison, ``meta["per_attribute"]`` the bias of every attribute per comparison, and
    ``per_sample`` each text's number of attribute-group pairs. ``attributes``: a list of words
    or a mapping label -> forms; default: the axis' associations (occupations for gender).
    """
    if not smoothing > 0:
        raise ValueError(f"smoothing must be > 0 (add-k), got {smoothing}")
    ax = resolve_axis(axis, lexicon)
    gs = resolve_groups(ax, groups, at_least=2)
    attrs = _default_attrs(ax, attributes)
    contrasts = _contrasts(gs, contrast, reference_group)
    data = _cooccurrences(as_text_list(texts), ax, attrs, window)
    return _cooc_metrics(
        data, ax.name, gs, contrasts, window, smoothing, min_count, n_resamples, seed, level
    )


def _default_attrs(ax: Axis, attributes: AttributeSpec | None) -> dict[str, tuple[str, ...]]:
    if attributes is not None:
        return _norm_attributes(attributes)
    found = axis_associations(ax)
    if found is None:
        raise ValueError(
            f"axis {ax.name!r} has no associations or occupation table; pass attributes="
        )
    return found[0]


def _cooc_metrics(
    data: _Cooc,
    axis_name: str,
    groups: list[str],
    contrasts: list[tuple[str, int, list[int]]],
    window: Window,
    smoothing: float,
    min_count: int,
    n_resamples: int,
    seed: int,
    level: float,
) -> dict[str, MetricResult]:
    V, K = len(data.attributes), len(groups)
    X = data.matrix(groups)
    C = np.asarray(X.sum(0)).reshape(V, K)
    bias = _bias(C, contrasts, smoothing, min_count)  # (n_contrasts, V)
    abs_c, signed_c = _nanmean(np.abs(bias)), _nanmean(bias)
    S = resampled_sums(X, n_resamples, seed).reshape(-1, V, K)
    boot = _bias(S, contrasts, smoothing, min_count)  # (B, n_contrasts, V)
    labels = [c[0] for c in contrasts]
    per_attr = {
        lab: {a: _nan_to_none(v) for a, v in zip(data.attributes, row, strict=True)}
        for lab, row in zip(labels, bias, strict=True)
    }
    counts = {
        a: {g: int(C[i, j]) for j, g in enumerate(groups) if C[i, j]}
        for i, a in enumerate(data.attributes)
        if C[i].any()
    }
    meta: dict[str, Any] = {
        "groups": groups,
        "contrasts": {lab: [groups[a], [groups[j] for j in b]] for lab, a, b in contrasts},
        "window": window,
        "smoothing": smoothing,
        "min_count": min_count,
        "log": "natural",
        "n_attributes": V,
        "n_attributes_used": {
            lab: int((~np.isnan(r)).sum()) for lab, r in zip(labels, bias, strict=True)
        },
        "group_totals": {g: int(C[:, j].sum()) for j, g in enumerate(groups)},
        "counts": counts,
        "per_attribute": per_attr,
    }
    per_sample = np.asarray(X.sum(1)).ravel().tolist()
    out = {}
    for suffix, per_c, fn in (
        ("cooccurrence_bias", abs_c, np.abs),
        ("cooccurrence_bias_signed", signed_c, lambda x: x),
    ):
        value = float(_nanmean(per_c)) if len(per_c) else float("nan")
        boot_stat = _nanmean(_nanmean(fn(boot)))
        m = dict(meta)
        m["per_contrast_ci"] = {
            lab: [ci.low, ci.high]
            for c, lab in enumerate(labels)
            for ci in [percentile_ci(_nanmean(fn(boot[:, c])), level)]
        }
        out[f"{axis_name}.{suffix}"] = MetricResult(
            name=f"{axis_name}.{suffix}",
            value=value,
            ci=percentile_ci(boot_stat, level),
            per_group={lab: float(v) for lab, v in zip(labels, per_c, strict=True)},
            per_sample=list(per_sample),
            n=data.n_texts,
            meta=m,
        )
    return out


# =============================================================================== stereotype rate
def _assoc_spec(
    ax: Axis,
    associations: Mapping[str, Sequence[str]] | str | None,
    attributes: AttributeSpec | None,
) -> tuple[dict[str, tuple[str, ...]], dict[str, list[str]]]:
    """(attribute label -> forms, group -> attribute labels) for the stereotype rate."""
    default = axis_associations(ax)
    if associations is None:
        if default is None or not default[1]:
            raise ValueError(
                f"axis {ax.name!r} has no stereotype associations; pass associations="
                "{group: [attribute words]}"
            )
        attrs, assoc = default
    else:
        if isinstance(associations, str):
            if associations not in ax.associations:
                raise KeyError(
                    f"axis {ax.name!r} has no association set {associations!r}; sets: "
                    f"{', '.join(ax.associations) or 'none'}"
                )
            associations = ax.associations[associations]
        assoc = {}
        for g, words in associations.items():
            if g not in ax.groups:
                raise KeyError(
                    f"axis {ax.name!r} has no group {g!r}; groups: {', '.join(ax.groups)}"
                )
            assoc[g] = [words] if isinstance(words, str) else list(words)
        labels = list(dict.fromkeys(w for ws in assoc.values() for w in ws))
        if attributes is not None:
            given = _norm_attributes(attributes)
            missing = [w for w in labels if w not in given]
            if missing:
                raise KeyError(f"associated words {missing[:5]} are not in attributes")
            attrs = {w: given[w] for w in labels}
        elif default is not None and all(w in default[0] for w in labels):
            attrs = {w: default[0][w] for w in labels}  # e.g. occupation names -> all forms
        else:
            attrs = {w: (w,) for w in labels}
    if not any(assoc.values()):
        raise ValueError("associations list no attribute words")
    return attrs, assoc


def stereotype_rate(
    texts: Sequence[str],
    axis: str | Axis = "gender",
    associations: Mapping[str, Sequence[str]] | str | None = None,
    *,
    attributes: AttributeSpec | None = None,
    window: Window = "sentence",
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> MetricResult:
    """Share of texts pairing an attribute with its stereotyped group, among eligible texts.

    ``associations`` maps group -> attribute words (or names one of the axis file's association
    sets; default: all of them, occupation codes for gender). A text is *eligible* when some
    associated attribute co-occurs (same ``window``) with a mention of any associated group, and
    *stereotypical* when some attribute co-occurs with a group it is associated with. A text can
    also pair attributes with other groups: ``meta["anti_rate"]`` is the share of eligible texts
    with such a pair and ``meta["n_mixed"]`` the texts with both kinds. ``per_group[g]``: the
    rate among eligible texts that pair a g-associated attribute with some group. ``per_sample``
    is 1 / 0 per eligible text and NaN otherwise. Unlike ``rules.GenderRuleScorer`` (majority
    rules over the whole text) this needs no tie-breaking and works for any axis.
    """
    ax = resolve_axis(axis, lexicon)
    attrs, assoc = _assoc_spec(ax, associations, attributes)
    data = _cooccurrences(as_text_list(texts), ax, attrs, window)
    return _stereotype_from_cooc(data, ax.name, assoc, window, n_resamples, seed, level)


def _stereotype_from_cooc(
    data: _Cooc,
    axis_name: str,
    assoc: dict[str, list[str]],
    window: Window,
    n_resamples: int,
    seed: int,
    level: float,
) -> MetricResult:
    assoc_groups = [g for g in assoc if assoc[g]]
    H = len(assoc_groups)
    attr_index = {a: i for i, a in enumerate(data.attributes)}
    gpos = {data.axis_groups.index(g): h for h, g in enumerate(assoc_groups)}
    # A[attribute, h] = attribute is associated with group h
    A = np.zeros((len(data.attributes), H), dtype=bool)
    for h, g in enumerate(assoc_groups):
        for w in assoc[g]:
            A[attr_index[w], h] = True
    n = data.n_texts
    keep = np.isin(data.group, list(gpos))
    t, a = data.text[keep], data.attr[keep]
    h_of_pair = np.array([gpos[g] for g in data.group[keep]], dtype=np.int64)
    stereo_pair = A[a, h_of_pair]
    # columns: eligible, stereotypical, anti, then per group h: eligible_h, stereotypical_h
    X = np.zeros((n, 3 + 2 * H))
    np.maximum.at(X[:, 0], t, 1)
    np.maximum.at(X[:, 1], t[stereo_pair], 1)
    np.maximum.at(X[:, 2], t[~stereo_pair], 1)
    for h in range(H):
        has_h = A[a, h]
        np.maximum.at(X[:, 3 + 2 * h], t[has_h], 1)
        np.maximum.at(X[:, 4 + 2 * h], t[has_h & (h_of_pair == h)], 1)

    def rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)

    sums = X.sum(0)
    S = resampled_sums(X, n_resamples, seed)
    per_group = {
        g: float(rate(sums[4 + 2 * h], sums[3 + 2 * h])) for h, g in enumerate(assoc_groups)
    }
    group_ci = {
        g: [c.low, c.high]
        for h, g in enumerate(assoc_groups)
        for c in [percentile_ci(rate(S[:, 4 + 2 * h], S[:, 3 + 2 * h]), level)]
    }
    per_sample = np.where(X[:, 0] > 0, X[:, 1], np.nan)
    return MetricResult(
        name=f"{axis_name}.stereotype_rate",
        value=float(rate(sums[1], sums[0])),
        ci=percentile_ci(rate(S[:, 1], S[:, 0]), level),
        per_group=per_group,
        per_sample=per_sample.tolist(),
        n=n,
        meta={
            "window": window,
            "n_eligible": int(sums[0]),
            "n_stereotypical": int(sums[1]),
            "n_anti": int(sums[2]),
            "n_mixed": int((X[:, 1] * X[:, 2]).sum()),
            "anti_rate": _nan_to_none(float(rate(sums[2], sums[0]))),
            "per_group_ci": group_ci,
            "n_eligible_by_group": {g: int(sums[3 + 2 * h]) for h, g in enumerate(assoc_groups)},
            "associations": {g: list(assoc[g]) for g in assoc_groups},
        },
    )


# =============================================================================== intersections
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
    pa = _group_counts(texts, ax_a, ga) > 0
    pb = _group_counts(texts, ax_b, gb) > 0
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
                k: _nan_to_none(e) for k, e, ok in zip(keys, expected, readable, strict=True) if ok
            },
            "lift": {
                k: _nan_to_none(v) for k, v, ok in zip(keys, lift, readable, strict=True) if ok
            },
            "n_texts_with_both": len(both),
            "divergence_base": 2,
        },
    )


def _per_text(n: int, rows: np.ndarray, cells: np.ndarray) -> list[float]:
    out = np.zeros(n)
    out[rows] = cells.sum(1)
    return out.tolist()


# =============================================================================== all at once
def measure_lexical(
    texts: Sequence[str],
    axes: Sequence[str] | None = None,
    reference: Sequence[str] | Mapping[str, Mapping[str, float] | str] | None = None,
    *,
    attributes: Mapping[str, AttributeSpec] | None = None,
    associations: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    intersections: Sequence[tuple[str, str]] = (),
    window: Window = "sentence",
    smoothing: float = 1.0,
    min_count: int = 1,
    intersection_min_count: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Every lexical metric that applies, per axis: ``{"gender.representation_jsd": ..., ...}``.

    Per axis (default: all of the lexicon's): ``representation``, ``representation_jsd``,
    ``representation_kl``; ``cooccurrence_bias`` and ``cooccurrence_bias_signed`` when the axis
    has attributes (``attributes[axis]``, else its associations; occupations for gender);
    ``stereotype_rate`` when it has associations (``associations[axis]`` or the axis file's).
    ``reference``: ``None`` (uniform), another corpus (texts, used for every axis), or a
    mapping axis -> ({group: weight} or "uniform"). ``intersections``: axis pairs, reported as
    ``"<a>+<b>.intersection"``.
    """
    lex = lexicon if lexicon is not None else load_lexicon()
    texts = as_text_list(texts)
    names = list(axes) if axes is not None else lex.axes
    axes_ = [lex.axis(a) for a in names]  # unknown names fail before any work
    if isinstance(reference, Mapping):
        unknown = [k for k in reference if k not in lex]
        if unknown:
            raise KeyError(
                f"reference must map axis -> shares; {unknown} are not axes (valid axes: "
                f"{', '.join(sorted(lex.axes))})"
            )
    elif reference is not None:
        reference = as_text_list(reference)
    out: dict[str, MetricResult] = {}
    for ax in axes_:
        gs = resolve_groups(ax, None)
        ref_spec: ReferenceSpec
        if isinstance(reference, Mapping):
            ref_spec = reference.get(ax.name)
        else:
            ref_spec = reference
        ref = _reference(ax, gs, ref_spec, lex)
        counts = _group_counts(texts, ax, gs)
        out.update(_representation_from_counts(counts, ax.name, gs, ref, n_resamples, seed, level))
        given_attrs = (attributes or {}).get(ax.name)
        given_assoc = (associations or {}).get(ax.name)
        default = axis_associations(ax)
        if given_attrs is not None:
            attrs = _norm_attributes(given_attrs)
        elif given_assoc is not None:
            attrs = _assoc_spec(ax, given_assoc, None)[0]
        else:
            attrs = default[0] if default else None
        data = None
        if attrs is not None and len(gs) >= 2:
            data = _cooccurrences(texts, ax, attrs, window)
            contrasts = _contrasts(gs, "auto", None)
            args = (window, smoothing, min_count, n_resamples, seed, level)
            out.update(_cooc_metrics(data, ax.name, gs, contrasts, *args))
        if given_assoc is not None or (default is not None and default[1]):
            s_attrs, s_assoc = _assoc_spec(ax, given_assoc, given_attrs)
            if data is not None and attrs and all(attrs.get(k) == v for k, v in s_attrs.items()):
                s_data = _restrict(data, list(s_attrs))  # same forms: reuse the scan
            else:
                s_data = _cooccurrences(texts, ax, s_attrs, window)
            res = _stereotype_from_cooc(s_data, ax.name, s_assoc, window, n_resamples, seed, level)
            out[res.name] = res
    for a, b in intersections:
        res = intersection_representation(
            texts,
            a,
            b,
            min_count=intersection_min_count,
            n_resamples=n_resamples,
            seed=seed,
            level=level,
            lexicon=lex,
        )
        out[res.name] = res
    return out


def _restrict(data: _Cooc, labels: list[str]) -> _Cooc:
    """The same pairs, for a subset of the attributes (re-indexed in ``labels`` order)."""
    new = {data.attributes.index(w): i for i, w in enumerate(labels)}
    keep = np.isin(data.attr, list(new))
    attr = np.array([new[a] for a in data.attr[keep]], dtype=np.int64)
    return _Cooc(
        data.n_texts,
        labels,
        data.axis_groups,
        data.text[keep],
        attr,
        data.group[keep],
        data.count[keep],
    )


__all__ = [
    "DEFAULT_GROUPS",
    "axis_associations",
    "cooccurrence_bias",
    "group_representation",
    "intersection_representation",
    "js_divergence",
    "kl_divergence",
    "measure_lexical",
    "percentile_ci",
    "resampled_sums",
    "stereotype_rate",
    "sums_ci",
]
