"""Attribute-group pairs: which attribute words an axis has, and how often each attribute is
mentioned next to each group (same sentence, same text, or within a number of word tokens).

The co-occurrence bias and the stereotype rate are both read off these counts, so one scan
serves both (:meth:`PairCounts.restrict`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from synthbias.lexicon import (
    FEMALE_CODED,
    MALE_CODED,
    Axis,
    Lexicon,
    MatchEntry,
    TermMatcher,
)
from synthbias.lexicon.matching import SEP
from synthbias.measure.lexical.common import AttributeSpec, Window, resolve_axis

if TYPE_CHECKING:
    import pandas as pd

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


def norm_attributes(attributes: AttributeSpec) -> dict[str, tuple[str, ...]]:
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
class PairCounts:
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

    def restrict(self, labels: list[str]) -> PairCounts:
        """The same pairs, for a subset of the attributes (re-indexed in ``labels`` order)."""
        new = {self.attributes.index(w): i for i, w in enumerate(labels)}
        keep = np.isin(self.attr, list(new))
        attr = np.array([new[a] for a in self.attr[keep]], dtype=np.int64)
        return PairCounts(
            self.n_texts,
            labels,
            self.axis_groups,
            self.text[keep],
            attr,
            self.group[keep],
            self.count[keep],
        )


def count_pairs(
    texts: Sequence[str],
    axis: Axis,
    attrs: dict[str, tuple[str, ...]],
    window: Window,
    chunk_size: int = 20000,
) -> PairCounts:
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
    return PairCounts(len(texts), list(attrs), axis.group_names, *arrs)


def _empty_pairs() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: np.zeros(0, np.int64) for c in ("text", "a", "g", "count")})


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
    import pandas as pd

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
    return pd.concat(parts, ignore_index=True) if parts else _empty_pairs()


def _token_window_pairs(
    texts: Sequence[str], matcher: TermMatcher, window: int, chunk_size: int
) -> pd.DataFrame:
    import pandas as pd

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
    return pd.concat(parts, ignore_index=True) if parts else _empty_pairs()
