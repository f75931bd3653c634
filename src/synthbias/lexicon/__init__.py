"""Bias lexicon: a HolisticBias-style taxonomy (axis -> groups -> terms) kept as data.

Axes live in ``data/axes/<axis>.yaml``; first names and occupation statistics in
``data/names.csv`` and ``data/occupations.csv`` (derived by ``scripts/build_lexicon_tables.py``).

>>> lex = load_lexicon()
>>> lex.axis("gender").count_groups("She told him about her job.")["female"]
2
>>> swap_gender("She gave him her book.")
'He gave her his book.'
"""

from synthbias.lexicon.loader import (
    Axis,
    CategoryOptions,
    ContextualSwap,
    Lexicon,
    LexiconError,
    UnknownAxisError,
    load_axis,
    load_lexicon,
)
from synthbias.lexicon.matching import GroupCounts, MatchEntry, TermMatch, TermMatcher, trie_regex
from synthbias.lexicon.names import NameInfo, NameTable
from synthbias.lexicon.occupations import (
    FEMALE_CODED,
    MALE_CODED,
    NEUTRAL,
    Occupation,
    OccupationTable,
)
from synthbias.lexicon.swap import Swapper, match_case, pronoun_reading, swap_gender, swap_groups

__all__ = [
    "Axis",
    "CategoryOptions",
    "ContextualSwap",
    "FEMALE_CODED",
    "GroupCounts",
    "Lexicon",
    "LexiconError",
    "MALE_CODED",
    "MatchEntry",
    "NEUTRAL",
    "NameInfo",
    "NameTable",
    "Occupation",
    "OccupationTable",
    "Swapper",
    "TermMatch",
    "TermMatcher",
    "UnknownAxisError",
    "load_axis",
    "load_lexicon",
    "match_case",
    "pronoun_reading",
    "swap_gender",
    "swap_groups",
    "trie_regex",
]
