"""Counterfactual group substitution: swap every term of one group for its counterpart.

``swap_gender`` turns "She gave him her book" into "He gave her his book". English gender
pronouns are not one-to-one, so two terms are *contextual* (declared in ``gender.yaml``):

* ``her`` -> ``him`` when it is an object ("I saw her.", "gave her the keys", "with her."),
  ``his`` when it is a determiner ("her book", "her own car");
* ``his`` -> ``hers`` when it is a pronoun ("his was better", "the book is his."),
  ``her`` when it is a determiner ("his book").

The heuristic looks only at the next token: end of text, punctuation, or a closed-class word that
cannot follow a possessive determiner (articles and other determiners, prepositions,
conjunctions, pronouns, auxiliaries, some adverbs and particles, a few common verbs in base
form: "let her go") means the object/pronoun reading; any other word (a noun, an adjective,
"own", a number) means the determiner reading. It errs on rare cases such as "gave her
flowers" (-> "his flowers"); no part-of-speech tagger is needed.

Other terms map through, in order: ``swap.one_way`` and ``swap.pairs`` in the axis file, rows of
``aligned`` terms, the name table's rank mapping (Mary<->James), and finally the term at the same
position in the same category of the target group. Capitalisation is carried over word by word
("He" -> "She", "HER" -> "HIS"). Swapping twice restores the text when every step is one-to-one;
one-way entries (Mrs -> Mr -> Ms) and the contextual guesses can break that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from synthbias.lexicon.loader import NAMES_CATEGORY, Axis, ContextualSwap, Lexicon, load_lexicon
from synthbias.lexicon.matching import TermMatch

Reading = Literal["object", "determiner"]

# Words after "her"/"his" that rule out the determiner reading.
OBJECT_CONTEXT = frozenset(
    """
    a an the this that these those my your his her its our their some any no every each all both
    another either neither such what which whose whatever whichever
    about above across after against along among around as at before behind below beneath beside
    besides between beyond by despite down during except for from in inside into like near of off
    on onto out outside over past since than through throughout till to toward towards under
    until up upon via with within without
    and or but nor so yet because if when while although though unless whether where once
    i you he she it we they me him us them myself yourself herself himself itself ourselves
    themselves who whom someone something anyone anything everyone everything nothing nobody
    is was are were be been being am has had have having will would can could shall should may
    might must does did do doesn't didn't don't isn't wasn't won't wouldn't can't couldn't
    not too again also now then today tonight tomorrow yesterday here there away back alone
    anyway already always never often sometimes later soon instead immediately twice enough
    how why whenever please
    go come know feel cry leave stay get make see take tell give ask laugh sit stand wait speak
    hear listen understand become realize remember forget decide believe agree continue finish
    think say try
    """.split()
)

_NEXT_TOKEN = re.compile(r"\s*([^\W\d_]+(?:'[^\W\d_]+)?|\S)?")


def pronoun_reading(following: str) -> Reading:
    """Object/pronoun vs determiner reading of her/his from the text that follows it."""
    m = _NEXT_TOKEN.match(following)
    tok = m.group(1) if m else None
    if not tok or not tok[0].isalnum():
        return "object"
    if tok.lower() in OBJECT_CONTEXT:
        return "object"
    return "determiner"


def match_case(source: str, target: str) -> str:
    """Carry ``source``'s capitalisation over to ``target`` (word by word when they align)."""
    sw, tw = source.split(), target.split()
    if len(sw) == len(tw) and len(sw) > 1:
        return " ".join(match_case(s, t) for s, t in zip(sw, tw, strict=True))
    if len(source) > 1 and source.isupper():
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


class Swapper:
    """Compiled substitution for one axis and group mapping (e.g. male->female, female->male)."""

    def __init__(
        self, axis: Axis, mapping: Mapping[str, str], name_threshold: float | None = None
    ) -> None:
        for src, dst in mapping.items():
            for g in (src, dst):
                if g not in axis.groups:
                    raise KeyError(
                        f"axis {axis.name!r} has no group {g!r}; groups: {', '.join(axis.groups)}"
                    )
        self.axis = axis
        self.mapping = dict(mapping)
        self.matcher = axis.matcher(name_threshold)
        threshold = axis.name_threshold if name_threshold is None else name_threshold
        self._table: dict[str, str | ContextualSwap] = {}
        self._case_sensitive: set[str] = set()
        explicit: dict[str, str] = {}
        for a, b in axis.swap.pairs:
            explicit.setdefault(a.lower(), b)
            explicit.setdefault(b.lower(), a)
        for a, b in axis.swap.one_way:
            explicit[a.lower()] = b
        for src, dst in self.mapping.items():
            for cat, terms in axis.groups[src].items():
                if cat == NAMES_CATEGORY and axis.names is not None:
                    continue
                cs = axis.options(cat).case_sensitive
                for i, term in enumerate(terms):
                    target = self._target(term, i, src, dst, cat, explicit)
                    if target is None:
                        continue
                    key = term if cs else term.lower()
                    if key in self._table:  # a term in two categories swaps by the first
                        continue
                    self._table[key] = target
                    if cs:
                        self._case_sensitive.add(key)
        if axis.names is not None:
            groups = axis.name_groups_for(threshold)
            matched = self.matcher.case_sensitive_terms  # not names counted as nouns ("Guy")
            for name, other in axis.names.swap_map(threshold, keep=matched).items():
                src = groups.get(name)
                if src in self.mapping and groups.get(other) == self.mapping[src]:
                    self._table[name] = other
                    self._case_sensitive.add(name)

    def _target(
        self, term: str, index: int, src: str, dst: str, cat: str, explicit: dict[str, str]
    ) -> str | ContextualSwap | None:
        axis = self.axis
        for ctx in axis.swap.contextual.get(term.lower(), []):
            if {axis.group_of(ctx.object), axis.group_of(ctx.determiner)} == {dst}:
                return ctx
        target = explicit.get(term.lower())
        if target is not None and axis.group_of(target) == dst:
            return target
        for row in axis.aligned:
            if dst in row and row.get(src, "").lower() == term.lower():
                return row[dst]
        candidates = axis.terms(dst, cat)
        if candidates:
            return candidates[index] if index < len(candidates) else candidates[0]
        return None

    def replacement(self, hit: TermMatch, text: str) -> str:
        """The text to put in place of one hit (the hit itself when it is not swapped)."""
        s = hit.text
        key = s if s in self._table else s.lower()
        target = self._table.get(key)
        if target is None:
            return s
        if isinstance(target, ContextualSwap):
            reading = pronoun_reading(text[hit.end :])
            target = target.object if reading == "object" else target.determiner
        if key in self._case_sensitive:
            return target
        return match_case(s, target)

    def __call__(self, text: str) -> str:
        return self.matcher.sub(lambda hit: self.replacement(hit, text), text)


def get_swapper(
    axis: Axis, mapping: Mapping[str, str], name_threshold: float | None = None
) -> Swapper:
    """A cached :class:`Swapper` for this axis, mapping and threshold."""
    key = (tuple(sorted(mapping.items())), name_threshold)
    swapper = axis._swappers.get(key)
    if swapper is None:
        swapper = axis._swappers[key] = Swapper(axis, mapping, name_threshold)
    return swapper


def swap_groups(
    text: str,
    axis: str | Axis,
    mapping: Mapping[str, str],
    lexicon: Lexicon | None = None,
    name_threshold: float | None = None,
) -> str:
    """Replace each term of group ``g`` by its counterpart in ``mapping[g]``.

    ``mapping`` is directional: ``{"christian": "muslim"}`` changes Christian terms only; pass
    both directions for a mirror swap.
    """
    if isinstance(axis, str):
        axis = (lexicon or load_lexicon()).axis(axis)
    return get_swapper(axis, mapping, name_threshold)(text)


GENDER_MIRROR = {"male": "female", "female": "male"}


def swap_gender(
    text: str, lexicon: Lexicon | None = None, name_threshold: float | None = None
) -> str:
    """Mirror the binary gender of every gendered word and first name in ``text``."""
    return swap_groups(text, "gender", GENDER_MIRROR, lexicon, name_threshold)
