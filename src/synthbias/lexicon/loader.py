"""The bias taxonomy as data: axis -> groups -> terms by category, loaded from YAML files.

Adding an axis means adding ``data/axes/<axis>.yaml`` (or passing its path to
:func:`load_lexicon`), never code. The file format is documented in ``data/README.md``; in short::

    name: religion
    description: ...
    case_sensitive: false            # default for every category
    categories:                      # per-category options
      titles: {case_sensitive: true, followed_by: '\\.?\\s+[A-Z]'}
      descriptors: {followed_by_words: [people, family]}  # a person noun must follow
    groups:
      muslim: {nouns: [Muslim, Muslims], adjectives: [Muslim]}
    aligned:                         # rows of corresponding terms, one column per group
      groups: [male, female]
      nouns: [[man, woman], [men, women]]
    ignore: [mother tongue]          # matched (so longer phrases win) but never counted
    expand:                          # generated terms
      - {group: older, category: ages, template: "{n}-year-old", from: 65, to: 110}
    names: {table: names.csv, female_group: female, male_group: male, exclude: [May]}
    occupations: {table: occupations.csv, female_group: female, male_group: male}
    swap: {pairs: [[Mr, Ms]], one_way: [[Mrs, Mr]], contextual: {her: [{object: him, ...}]}}
    associations: {occupations: {male: [...], female: [...]}}

A surface form may belong to one group only within an axis (the loader rejects duplicates),
which keeps matching and swapping unambiguous.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from synthbias.core.yaml import load_strict, yaml_error_message
from synthbias.lexicon.matching import GroupCounts, MatchEntry, TermMatch, TermMatcher
from synthbias.lexicon.names import NameTable
from synthbias.lexicon.occupations import OccupationTable

DATA_DIR = Path(__file__).resolve().parent / "data"
AXES_DIR = DATA_DIR / "axes"
NAMES_CATEGORY = "names"

_TOP_KEYS = {
    "name",
    "description",
    "case_sensitive",
    "categories",
    "groups",
    "aligned",
    "ignore",
    "expand",
    "names",
    "occupations",
    "swap",
    "associations",
    "sources",
}
_CATEGORY_KEYS = {"case_sensitive", "followed_by", "followed_by_words"}


class LexiconError(ValueError):
    """A malformed axis file; the message names the file and the offending entry."""


class UnknownAxisError(LexiconError, KeyError):
    """Asked for an axis the lexicon does not have; the message lists the valid names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class CategoryOptions:
    case_sensitive: bool = False
    followed_by: str | None = None


@dataclass(frozen=True)
class ContextualSwap:
    """Replacement that depends on the word after the term (``her`` -> him/his)."""

    object: str
    determiner: str


@dataclass
class SwapSpec:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    one_way: list[tuple[str, str]] = field(default_factory=list)
    # term -> alternatives; the swapper uses the one whose targets are in the target group
    contextual: dict[str, list[ContextualSwap]] = field(default_factory=dict)


@dataclass
class Axis:
    """One bias axis: its groups, their terms by category, and a compiled matcher.

    ``groups[group][category]`` lists the terms in file order; for the gender axis the
    ``names`` category holds the census names that pass the default 0.9 share threshold
    (see :meth:`matcher` for other thresholds).
    """

    name: str
    description: str
    groups: dict[str, dict[str, list[str]]]
    category_options: dict[str, CategoryOptions]
    default_case_sensitive: bool = False
    ignore: list[str] = field(default_factory=list)
    aligned: list[dict[str, str]] = field(default_factory=list)
    names: NameTable | None = None
    name_groups: dict[str, str] = field(default_factory=dict)  # "female"/"male" -> group
    occupations: OccupationTable | None = None
    occupation_groups: dict[str, str] = field(default_factory=dict)
    swap: SwapSpec = field(default_factory=SwapSpec)
    associations: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    path: Path | None = None
    name_threshold: float = 0.9

    def __post_init__(self) -> None:
        self._matchers: dict[float | None, TermMatcher] = {}
        self._swappers: dict[Any, Any] = {}  # filled by lexicon.swap
        self._term_group: dict[str, str] = {}
        for group, cats in self.groups.items():
            for cat, terms in cats.items():
                cs = self.options(cat).case_sensitive
                for t in terms:
                    self._term_group[t if cs else t.lower()] = group

    # ------------------------------------------------------------------ structure
    @property
    def group_names(self) -> list[str]:
        return list(self.groups)

    def options(self, category: str) -> CategoryOptions:
        if category in self.category_options:
            return self.category_options[category]
        return CategoryOptions(case_sensitive=self.default_case_sensitive)

    def categories(self, group: str | None = None) -> list[str]:
        """Categories of one group, or of all groups in first-seen order."""
        if group is not None:
            return list(self._group(group))
        seen: dict[str, None] = {}
        for cats in self.groups.values():
            seen.update(dict.fromkeys(cats))
        return list(seen)

    def _group(self, group: str) -> dict[str, list[str]]:
        try:
            return self.groups[group]
        except KeyError:
            raise KeyError(
                f"axis {self.name!r} has no group {group!r}; groups: {', '.join(self.groups)}"
            ) from None

    def terms(self, group: str, category: str | None = None) -> list[str]:
        """Terms of a group, in one category or all categories."""
        cats = self._group(group)
        if category is not None:
            return list(cats.get(category, []))
        return [t for ts in cats.values() for t in ts]

    def group_of(self, term: str) -> str | None:
        """Group of a surface form (case rules of its category apply), or ``None``."""
        if term in self._term_group:
            return self._term_group[term]
        return self._term_group.get(term.lower()) if term.lower() != term else None

    # ------------------------------------------------------------------ matching
    def entries(self, name_threshold: float | None = None) -> list[MatchEntry]:
        """Match entries for every term (names re-derived when ``name_threshold`` is given)."""
        threshold = self.name_threshold if name_threshold is None else name_threshold
        out: list[MatchEntry] = []
        ci_terms: set[str] = set()
        for group, cats in self.groups.items():
            for cat, terms in cats.items():
                if cat == NAMES_CATEGORY and self.names is not None:
                    continue
                opt = self.options(cat)
                for t in terms:
                    out.append(MatchEntry(t, group, opt.case_sensitive, opt.followed_by))
                    if not opt.case_sensitive:
                        ci_terms.add(t.lower())
        for t in self.ignore:
            out.append(MatchEntry(t, None, False))
            ci_terms.add(t.lower())
        if self.names is not None:
            for name, group in self.name_groups_for(threshold).items():
                if name.lower() not in ci_terms:
                    out.append(MatchEntry(name, group, True))
        return out

    def name_groups_for(self, threshold: float) -> dict[str, str]:
        """Census name -> axis group, for names that pass ``threshold`` (ambiguous left out)."""
        if self.names is None:
            return {}
        return _names_at(self.names, self.name_groups, threshold)

    def matcher(self, name_threshold: float | None = None) -> TermMatcher:
        """The axis's compiled matcher (one regex), cached per name threshold."""
        key = None if name_threshold in (None, self.name_threshold) else name_threshold
        if key not in self._matchers:
            self._matchers[key] = TermMatcher(self.entries(key), labels=self.group_names)
        return self._matchers[key]

    def find(self, text: str) -> list[TermMatch]:
        """Every term hit in ``text`` with its position and group."""
        return [m for m in self.matcher().finditer(text) if m.label is not None]

    def count_groups(self, text: str) -> dict[str, int]:
        """Mentions per group in one text (every group present, zeros included)."""
        out = dict.fromkeys(self.groups, 0)
        out.update(self.matcher().count(text))  # type: ignore[arg-type]
        return out

    def count_groups_batch(self, texts: Sequence[str]) -> GroupCounts:
        """Mentions per group for many texts: a (n_texts, n_groups) matrix, one regex pass."""
        return self.matcher().count_batch(texts)

    def count_groups_array(self, texts: Sequence[str]) -> np.ndarray:
        return self.count_groups_batch(texts).counts


class Lexicon:
    """All axes, by name."""

    def __init__(self, axes: Iterable[Axis]) -> None:
        self._axes: dict[str, Axis] = {}
        for ax in axes:
            self._axes[ax.name] = ax

    @property
    def axes(self) -> list[str]:
        return list(self._axes)

    def axis(self, name: str) -> Axis:
        try:
            return self._axes[name]
        except KeyError:
            raise UnknownAxisError(
                f"unknown axis {name!r}; valid axes: {', '.join(sorted(self._axes))}"
            ) from None

    __getitem__ = axis

    def __contains__(self, name: object) -> bool:
        return name in self._axes

    def __iter__(self) -> Iterator[Axis]:
        return iter(self._axes.values())

    def __len__(self) -> int:
        return len(self._axes)

    def __repr__(self) -> str:
        return f"Lexicon(axes={self.axes})"


# ---------------------------------------------------------------------- loading
def _err(path: Path, msg: str) -> LexiconError:
    return LexiconError(f"{path}: {msg}")


def _str_list(path: Path, where: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _err(path, f"{where} must be a list of non-empty strings")
    return [" ".join(v.split()) for v in value]


def _resolve_table(path: Path, table: str) -> Path:
    for base in (path.parent, DATA_DIR):
        candidate = (base / table).resolve()
        if candidate.is_file():
            return candidate
    raise _err(path, f"table {table!r} not found next to the file or in {DATA_DIR}")


def _parse_axis(path: Path, spec: Any) -> Axis:
    if not isinstance(spec, dict):
        raise _err(path, "top level must be a mapping")
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise _err(path, f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise _err(path, f"axis name must be lower_snake_case, got {name!r}")
    default_cs = bool(spec.get("case_sensitive", False))

    cat_opts: dict[str, CategoryOptions] = {}
    for cat, opts in (spec.get("categories") or {}).items():
        if not isinstance(opts, dict) or set(opts) - _CATEGORY_KEYS:
            raise _err(path, f"categories.{cat} must be a mapping with keys {_CATEGORY_KEYS}")
        fb = opts.get("followed_by")
        words = opts.get("followed_by_words")
        if words is not None:
            if fb is not None:
                raise _err(path, f"categories.{cat}: give followed_by or followed_by_words")
            words = _str_list(path, f"categories.{cat}.followed_by_words", words)
            alts = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
            fb = rf"\s+(?i:{alts})\b"
        if fb is not None:
            try:
                re.compile(fb)
            except re.error as exc:
                raise _err(path, f"categories.{cat}.followed_by is not a regex: {exc}") from exc
        cat_opts[cat] = CategoryOptions(bool(opts.get("case_sensitive", default_cs)), fb)

    groups: dict[str, dict[str, list[str]]] = {}
    raw_groups = spec.get("groups") or {}
    if not isinstance(raw_groups, dict):
        raise _err(path, "groups must be a mapping of group -> {category: [terms]}")
    for group, cats in raw_groups.items():
        if cats is None:
            cats = {}
        if not isinstance(cats, dict):
            raise _err(path, f"groups.{group} must be a mapping of category -> [terms]")
        groups[str(group)] = {
            str(cat): _str_list(path, f"groups.{group}.{cat}", terms) for cat, terms in cats.items()
        }

    aligned_rows: list[dict[str, str]] = []
    aligned = spec.get("aligned")
    if aligned:
        cols = _str_list(path, "aligned.groups", aligned.get("groups"))
        if len(cols) < 2:
            raise _err(path, "aligned.groups needs at least two groups")
        for cat, rows in aligned.items():
            if cat == "groups":
                continue
            if not isinstance(rows, list):
                raise _err(path, f"aligned.{cat} must be a list of rows")
            for i, row in enumerate(rows):
                row = _str_list(path, f"aligned.{cat}[{i}]", row)
                if len(row) != len(cols):
                    raise _err(path, f"aligned.{cat}[{i}] has {len(row)} terms, need {len(cols)}")
                for g, t in zip(cols, row, strict=True):
                    terms = groups.setdefault(g, {}).setdefault(cat, [])
                    if t not in terms:
                        terms.append(t)
                aligned_rows.append(dict(zip(cols, row, strict=True)))

    for i, item in enumerate(spec.get("expand") or []):
        try:
            group, cat, template = item["group"], item["category"], item["template"]
            lo, hi = int(item["from"]), int(item["to"])
        except (KeyError, TypeError, ValueError) as exc:
            raise _err(path, f"expand[{i}] needs group, category, template, from, to") from exc
        groups.setdefault(group, {}).setdefault(cat, []).extend(
            template.format(n=n) for n in range(lo, hi + 1)
        )

    ignore = _str_list(path, "ignore", spec.get("ignore"))

    names = None
    name_groups: dict[str, str] = {}
    if spec.get("names"):
        nspec = spec["names"]
        table = _resolve_table(path, nspec.get("table", "names.csv"))
        exclude = _str_list(path, "names.exclude", nspec.get("exclude"))
        names = NameTable.from_csv(table, exclude=exclude, top_n=nspec.get("top_n"))
        cat_opts[NAMES_CATEGORY] = CategoryOptions(case_sensitive=True)
        for gender in ("female", "male"):
            g = nspec.get(f"{gender}_group")
            if g is not None:
                name_groups[gender] = g
                groups.setdefault(g, {})

    occupations = None
    occ_groups: dict[str, str] = {}
    if spec.get("occupations"):
        ospec = spec["occupations"]
        occupations = OccupationTable.from_csv(
            _resolve_table(path, ospec.get("table", "occupations.csv"))
        )
        for gender in ("female", "male"):
            if ospec.get(f"{gender}_group") is not None:
                occ_groups[gender] = ospec[f"{gender}_group"]

    threshold = 0.9
    if names is not None:
        for first_name, group in _names_at(names, name_groups, threshold).items():
            groups[group].setdefault(NAMES_CATEGORY, []).append(first_name)

    _check_unique(path, groups, cat_opts, default_cs, ignore)

    swap = SwapSpec()
    sspec = spec.get("swap") or {}
    for key in ("pairs", "one_way"):
        for i, pair in enumerate(sspec.get(key) or []):
            pair = _str_list(path, f"swap.{key}[{i}]", pair)
            if len(pair) != 2:
                raise _err(path, f"swap.{key}[{i}] must be [source, target]")
            getattr(swap, key).append((pair[0], pair[1]))
    for term, alternatives in (sspec.get("contextual") or {}).items():
        if isinstance(alternatives, dict):
            alternatives = [alternatives]
        for forms in alternatives if isinstance(alternatives, list) else [None]:
            if not isinstance(forms, dict) or set(forms) != {"object", "determiner"}:
                raise _err(
                    path, f"swap.contextual.{term} needs {{object: ..., determiner: ...}} entries"
                )
            swap.contextual.setdefault(str(term).lower(), []).append(
                ContextualSwap(str(forms["object"]), str(forms["determiner"]))
            )

    associations: dict[str, dict[str, list[str]]] = {}
    for assoc, by_group in (spec.get("associations") or {}).items():
        if not isinstance(by_group, dict):
            raise _err(path, f"associations.{assoc} must map group -> [words]")
        for g in by_group:
            if g not in groups:
                raise _err(path, f"associations.{assoc} names unknown group {g!r}")
        associations[assoc] = {
            g: _str_list(path, f"associations.{assoc}.{g}", w) for g, w in by_group.items()
        }

    axis = Axis(
        name=name,
        description=str(spec.get("description", "")).strip(),
        groups=groups,
        category_options=cat_opts,
        default_case_sensitive=default_cs,
        ignore=ignore,
        aligned=aligned_rows,
        names=names,
        name_groups=name_groups,
        occupations=occupations,
        occupation_groups=occ_groups,
        swap=swap,
        associations=associations,
        sources=_str_list(path, "sources", spec.get("sources")),
        path=path,
        name_threshold=threshold,
    )
    for key in ("pairs", "one_way"):
        for a, b in getattr(swap, key):
            for t in (a, b):
                if axis.group_of(t) is None:
                    raise _err(path, f"swap.{key} term {t!r} is not a term of the axis")
    for term, alternatives in swap.contextual.items():
        for forms in alternatives:
            for t in (term, forms.object, forms.determiner):
                if axis.group_of(t) is None:
                    raise _err(path, f"swap.contextual term {t!r} is not a term of the axis")
    return axis


def _names_at(names: NameTable, name_groups: dict[str, str], threshold: float) -> dict[str, str]:
    out = {}
    by_gender = names.by_gender(threshold)
    for gender in ("female", "male"):
        g = name_groups.get(gender)
        if g is not None:
            for n in by_gender[gender]:  # type: ignore[index]
                out[n] = g
    return out


def _check_unique(
    path: Path,
    groups: dict[str, dict[str, list[str]]],
    cat_opts: dict[str, CategoryOptions],
    default_cs: bool,
    ignore: list[str],
) -> None:
    """Reject a surface form listed in two groups (or listed and ignored)."""
    ci_owner: dict[str, str] = {t.lower(): "ignore" for t in ignore}
    cs_owner: dict[str, str] = {}
    for group, cats in groups.items():
        for cat, terms in cats.items():
            if cat == NAMES_CATEGORY:
                continue
            cs = cat_opts[cat].case_sensitive if cat in cat_opts else default_cs
            owner = cs_owner if cs else ci_owner
            for t in terms:
                key = t if cs else t.lower()
                prev = owner.get(key)
                if prev is not None and prev != group:
                    raise _err(path, f"term {t!r} is in both {prev!r} and {group!r}")
                owner[key] = group
    clash = {k.lower() for k in cs_owner} & set(ci_owner)
    if clash:
        raise _err(path, f"terms listed both case-sensitive and not: {sorted(clash)}")


def load_axis(path: str | Path) -> Axis:
    """Load one axis file."""
    path = Path(path)
    try:
        spec = load_strict(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(yaml_error_message(path, exc)) from exc
    return _parse_axis(path, spec)


def _axis_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.is_file():
            out.append(p)
        else:
            raise LexiconError(f"{p}: no such axis file or folder")
    return out


@functools.lru_cache(maxsize=1)
def _builtin_lexicon() -> Lexicon:
    return Lexicon(load_axis(p) for p in _axis_files([AXES_DIR]))


def load_lexicon(extra_paths: Sequence[str | Path] | str | Path | None = None) -> Lexicon:
    """The built-in axes plus any extra axis files or folders of them.

    An extra file whose axis ``name`` equals a built-in one replaces it. Without extra paths the
    same (cached) lexicon object is returned, so compiled matchers are shared.
    """
    if extra_paths is None:
        return _builtin_lexicon()
    if isinstance(extra_paths, str | Path):
        extra_paths = [extra_paths]
    axes = {ax.name: ax for ax in _builtin_lexicon()}
    for p in _axis_files(extra_paths):
        ax = load_axis(p)
        axes[ax.name] = ax
    return Lexicon(axes.values())
