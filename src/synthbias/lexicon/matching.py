"""Fast term matching: many literal terms compiled into ONE trie-shaped regular expression.

Why a trie: Python's ``re`` tries the branches of an alternation one by one, so a flat
``term1|term2|...`` over a thousand terms is slow. Folding the terms into a prefix trie makes each
position cost one branch per character, and putting the "stop here" option last at every node makes
the match greedy, i.e. the longest term wins (``nurse practitioner`` before ``nurse``). If the
longest candidate does not end on a word boundary the engine backtracks to a shorter one. The
first character is dispatched through a few lookahead buckets (see :func:`dispatch_regex`).

Terms are literal strings; a space inside a term matches any run of whitespace. Each term carries
a label (a group name, an occupation, ...), a case flag and an optional lookahead (e.g. a title
must be followed by a capitalised word). Case-insensitive terms form one trie and case-sensitive
ones (names, titles) another; at a given position the case-insensitive trie is tried first, so a
case-sensitive term only wins where no case-insensitive term ends on a word boundary there.

A whole batch of texts is scanned in one ``findall`` over the texts joined by NUL; the pattern
also matches a bare NUL, so the separators tell which text each hit belongs to.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SEP = "\x00"
# Characters that may precede a term (a term must start at a word boundary).
BOUNDARY = (
    "\x00 \t\n\r\x0b\x0c\xa0\u2002-\u200b\u202f\u3000"
    + re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~")
    + "\u2018\u2019\u201c\u201d\u00ab\u00bb\u2013\u2014\u2026\u00bf\u00a1\u2022"
)
_END = ""  # trie key marking "a term ends here"; never a real character


@dataclass(frozen=True)
class MatchEntry:
    """One literal term to match and the label it stands for (``None`` = match but ignore)."""

    term: str
    label: Hashable | None
    case_sensitive: bool = False
    followed_by: str | None = None


@dataclass(frozen=True)
class TermMatch:
    start: int
    end: int
    text: str
    label: Hashable | None


def _char_regex(ch: str, case_sensitive: bool = True) -> str:
    if ch == " ":
        return r"\s+"
    if not case_sensitive and ch.lower() != ch.upper():
        return "[" + re.escape(ch.lower()) + re.escape(ch.upper()) + "]"
    return re.escape(ch)


def _node_regex(node: dict[str, Any], case_sensitive: bool) -> str:
    alts = [
        _char_regex(ch, case_sensitive) + _node_regex(child, case_sensitive)
        for ch, child in sorted(node.items())
        if ch
    ]
    if _END in node:
        lookahead = node[_END]
        tail = f"(?={lookahead})" if lookahead else ""
        if not alts:
            return tail
        alts.append(tail)  # last: longer continuations are tried first
    if len(alts) == 1:
        return alts[0]
    return "(?:" + "|".join(alts) + ")"


def _build_trie(terms: Iterable[tuple[str, str | None]], case_sensitive: bool) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for term, lookahead in terms:
        if not case_sensitive:
            term = term.lower()
        node = root
        for ch in term:
            node = node.setdefault(ch, {})
        if _END in node and node[_END] != (lookahead or ""):
            raise ValueError(f"term {term!r} given twice with different lookaheads")
        node[_END] = lookahead or ""
    return root


def trie_regex(terms: Iterable[tuple[str, str | None]], case_sensitive: bool = True) -> str:
    """Regex source matching any of ``terms`` (term, lookahead), longest first.

    Case-insensitive tries spell letters as ``[xX]`` classes rather than using ``(?i:...)``:
    ``re`` skips a branch that starts with a literal or a class in one step, but not one that
    starts with a case-folded literal, which made the scoped flag about twice as slow.
    """
    root = _build_trie(terms, case_sensitive)
    if not root:
        return r"(?!x)x"  # matches nothing
    return _node_regex(root, case_sensitive)


def _char_set(chars: Iterable[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"


def dispatch_regex(
    ci_terms: Iterable[tuple[str, str | None]],
    cs_terms: Iterable[tuple[str, str | None]],
    buckets: int = 4,
) -> str:
    """One regex for case-insensitive and case-sensitive terms, dispatched on the first letter.

    Each first letter gets one branch ``[hH](?:ci-rest|(?<=H)cs-rest)``, so a position costs
    one branch test per letter instead of one per letter and case; the letter branches are then
    split into ``buckets`` groups behind a one-class lookahead, which cuts the linear scan of
    ``re``'s alternation by about 2x again. At a given position the case-insensitive
    continuation is tried before the case-sensitive one.
    """
    ci_root = _build_trie(ci_terms, case_sensitive=False)
    cs_root = _build_trie(cs_terms, case_sensitive=True)
    firsts: dict[str, list[tuple[bool, str]]] = {}
    for ch in ci_root:
        if ch:
            firsts.setdefault(ch.lower(), []).append((False, ch))
    for ch in cs_root:
        if ch:
            firsts.setdefault(ch.lower(), []).append((True, ch))
    if not firsts:
        return r"(?!x)x"
    branches: list[tuple[set[str], str]] = []
    for key in sorted(firsts):
        chars: set[str] = set()
        alts: list[str] = []
        for cs, ch in sorted(firsts[key]):  # case-insensitive (False) first
            if cs:
                chars.add(ch)
                alts.append(f"(?<={re.escape(ch)})" + _node_regex(cs_root[ch], True))
            else:
                chars.update({ch.lower(), ch.upper()})
                alts.append(_node_regex(ci_root[ch], False))
        rest = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        branches.append((chars, _char_set(chars) + rest))
    if buckets <= 1 or len(branches) <= buckets:
        return "(?:" + "|".join(b for _, b in branches) + ")"
    size = -(-len(branches) // buckets)
    groups = []
    for i in range(0, len(branches), size):
        chunk = branches[i : i + size]
        chars = set().union(*(c for c, _ in chunk))
        groups.append(f"(?={_char_set(chars)})(?:" + "|".join(b for _, b in chunk) + ")")
    return "(?:" + "|".join(groups) + ")"


def _normalise(term: str) -> str:
    return " ".join(term.split())


@dataclass
class GroupCounts:
    """Counts per text (rows) and label (columns), from :meth:`TermMatcher.count_batch`."""

    labels: tuple[Hashable, ...]
    counts: np.ndarray = field(repr=False)

    def __getitem__(self, label: Hashable) -> np.ndarray:
        return self.counts[:, self.labels.index(label)]

    def __len__(self) -> int:
        return self.counts.shape[0]

    def to_dicts(self) -> list[dict[Hashable, int]]:
        return [
            {lab: int(c) for lab, c in zip(self.labels, row, strict=True) if c}
            for row in self.counts
        ]

    def to_frame(self):
        """Counts as a pandas DataFrame, one column per label."""
        import pandas as pd

        return pd.DataFrame(self.counts, columns=[str(lab) for lab in self.labels])


@functools.lru_cache(maxsize=64)
def _compiled(
    ci: tuple[tuple[str, str | None], ...], cs: tuple[tuple[str, str | None], ...]
) -> tuple[str, re.Pattern[str]]:
    """The matcher's pattern for one term set, built once per process.

    Why: rendering the gender rule scorer's trie of terms as a regex takes about 0.15 s, and
    every rule measurer, audit step and study step builds the same lexicon matchers again.
    """
    body = dispatch_regex(ci, cs)
    pattern = f"[{BOUNDARY}](?:(?:{body})(?!\\w)|(?<={SEP}))"
    return pattern, re.compile(pattern)


class TermMatcher:
    """Match many literal terms at once and map each hit to its label.

    Labels can be any hashable; ``count`` and ``count_batch`` skip terms labelled ``None``
    (terms listed only so that a longer phrase is consumed, e.g. "mother tongue").

    The compiled pattern is ``[B](?:TERMS(?!\\w)|(?<=\\x00))`` where ``B`` is an explicit set of
    boundary characters (whitespace, ASCII and common Unicode punctuation, NUL). Consuming the
    boundary character instead of asserting ``(?<!\\w)`` lets ``re`` skip to candidate positions
    with its fast character-set scan (about 2x faster); texts get a leading space so a term at
    position 0 is found. A term glued to a character outside ``B`` (an emoji, a symbol) is missed.
    """

    def __init__(
        self, entries: Iterable[MatchEntry], labels: Sequence[Hashable] | None = None
    ) -> None:
        """``labels`` fixes the column order of batch counts (labels without terms get zeros)."""
        self._lookup: dict[str, Hashable | None] = {}
        ci: dict[str, str | None] = {}
        cs: dict[str, str | None] = {}
        seen_labels: dict[Hashable, None] = dict.fromkeys(labels or ())
        ci_seen: dict[str, MatchEntry] = {}
        cs_seen: dict[str, MatchEntry] = {}
        for e in entries:
            term = _normalise(e.term)
            if not term:
                continue
            key = term if e.case_sensitive else term.lower()
            seen = cs_seen if e.case_sensitive else ci_seen
            if key in seen:
                if seen[key].label != e.label:
                    raise ValueError(
                        f"term {term!r} has two labels: {seen[key].label!r} and {e.label!r}"
                    )
                continue
            seen[key] = e
            (cs if e.case_sensitive else ci)[key] = e.followed_by
            self._lookup[key] = e.label
            if e.label is not None:
                seen_labels[e.label] = None
        clash = {k.lower() for k in cs_seen} & set(ci_seen)
        if clash:
            raise ValueError(
                f"terms both case-sensitive and case-insensitive: {sorted(clash)[:10]}"
            )
        self.case_sensitive_terms = frozenset(cs_seen)
        self.labels: tuple[Hashable, ...] = tuple(seen_labels)
        self._label_index = {lab: i for i, lab in enumerate(self.labels)}
        self.pattern, self.regex = _compiled(tuple(ci.items()), tuple(cs.items()))
        self.n_terms = len(self._lookup)

    def label_of(self, surface: str) -> Hashable | None:
        """Label of a matched surface string (``None`` when unknown or ignored)."""
        lookup = self._lookup
        if surface in lookup:
            return lookup[surface]
        low = surface.lower()
        if low in lookup:
            return lookup[low]
        norm = _normalise(surface)
        if norm != surface:
            return self.label_of(norm)
        return None

    def finditer(self, text: str) -> Iterator[TermMatch]:
        """All term hits in ``text`` with positions (ignored terms included, label ``None``)."""
        for m in self.regex.finditer(" " + text):
            s = m.group()[1:]
            if s:
                yield TermMatch(m.start(), m.end() - 1, s, self.label_of(s))

    def find(self, text: str) -> list[TermMatch]:
        return list(self.finditer(text))

    def sub(self, repl: Callable[[TermMatch], str], text: str) -> str:
        """Replace every hit by ``repl(hit)`` (used by the swappers)."""

        def _repl(m: re.Match[str]) -> str:
            s = m.group()
            if len(s) == 1:
                return s
            return s[0] + repl(TermMatch(m.start(), m.end() - 1, s[1:], self.label_of(s[1:])))

        return self.regex.sub(_repl, " " + text)[1:]

    def findall(self, text: str) -> list[Hashable]:
        """Labels of all hits in order (ignored terms dropped)."""
        label_of = self.label_of
        out = []
        for s in self.regex.findall(" " + text):
            lab = label_of(s[1:])
            if lab is not None:
                out.append(lab)
        return out

    def count(self, text: str) -> dict[Hashable, int]:
        """Hits per label in one text (labels with no hit are absent)."""
        lookup = self._lookup
        label_of = self.label_of
        out: dict[Hashable, int] = {}
        for s in self.regex.findall(" " + text):
            s = s[1:]
            lab = lookup[s] if s in lookup else label_of(s)
            if lab is not None:
                out[lab] = out.get(lab, 0) + 1
        return out

    def _scan(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(text index, label index) of every labelled hit, over all texts in one regex pass."""
        joined = " " + SEP.join(texts)
        if joined.count(SEP) != max(len(texts) - 1, 0):
            joined = " " + SEP.join(t.replace(SEP, " ") for t in texts)
        lookup = self._lookup
        label_of = self.label_of
        index = self._label_index
        rows: list[int] = []
        cols: list[int] = []
        i = 0
        for s in self.regex.findall(joined):
            if s[0] == SEP:
                i += 1
            s = s[1:]
            if not s:
                continue
            lab = lookup[s] if s in lookup else label_of(s)
            if lab is not None:
                rows.append(i)
                cols.append(index[lab])
        return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def count_batch(self, texts: Sequence[str], chunk_size: int = 20000) -> GroupCounts:
        """Counts for many texts as a (n_texts, n_labels) integer matrix.

        Texts are scanned in chunks joined by NUL, so the regex runs once per chunk rather than
        once per text.
        """
        texts = list(texts)
        counts = np.zeros((len(texts), len(self.labels)), dtype=np.int64)
        for lo in range(0, len(texts), chunk_size):
            rows, cols = self._scan(texts[lo : lo + chunk_size])
            if len(rows):
                np.add.at(counts, (rows + lo, cols), 1)
        return GroupCounts(self.labels, counts)

    def labels_batch(self, texts: Sequence[str], chunk_size: int = 20000) -> list[list[Hashable]]:
        """For each text, the labels of its hits in order (ignored terms dropped)."""
        texts = list(texts)
        out: list[list[Hashable]] = [[] for _ in texts]
        for lo in range(0, len(texts), chunk_size):
            rows, cols = self._scan(texts[lo : lo + chunk_size])
            labels = self.labels
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                out[lo + r].append(labels[c])
        return out
