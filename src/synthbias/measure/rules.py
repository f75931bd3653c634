"""Rule-based gender-occupation stereotype metric over a corpus of texts.

Each text is scanned once by a single compiled regex holding every gendered referent (pronouns,
gendered nouns, titles, first names), every occupation form and the non-occupational person
nouns (patient, customer, ...), longest match first. A text is

* ``none`` when no gender-coded occupation is mentioned (neutral occupations do not count);
* ``neutral`` when a coded occupation is mentioned but no gendered referent is tied to one, or as
  many referents speak for the stereotype as against it;
* ``garbled`` when the text is a generation loop (``nearest``/``occupation`` only; unpaired);
* ``stereotypical`` when the referents tied to coded occupations mostly match the occupation's
  code (he + engineer, she + nurse);
* ``anti`` otherwise (she + engineer, he + nurse).

Three settings, each recorded in every result (``meta``):

* **table** (``occupations``): ``"bls"`` (default), the 500+ detailed US occupations of
  ``lexicon/data/occupations_bls.csv`` (BLS CPS 2020 table 11, ACS 2016 where BLS is
  suppressed; built by ``scripts/build_occupation_table.py``), or ``"legacy"``, the 96-row
  ``occupations.csv`` the metric used before.
* **preset** (thresholds on the percent of women): ``strict`` = male-coded at <= 30, female-coded
  at >= 70 (the old default); ``majority`` = the coreference-benchmark convention (WinoBias,
  Winogender): male-coded below 50, female-coded above 50; or explicit ``lo``/``hi``
  (``custom``).
* **attach** (which referents count for which occupation):

  ``text`` (the old rule): referent gender = the gender with more referents in the whole text;
  occupation code = the code with more coded-occupation mentions; a tie in either -> ``neutral``.
  "The nurse thanked the patient for his help" counts *his* against *nurse*.

  ``nearest`` (default): the text is split into sentences (at ``. ! ? ;`` and line breaks, not
  after Mr/Mrs/Ms/Dr/St/...). A person mention is an occupation, a non-occupational person noun
  (``lexicon/data/person_nouns.txt`` or a neutral noun of the gender axis), a gendered noun
  (man, mother, ...), a first name or a title.

  1. A pronoun or gendered adjective is tied to the nearest preceding person mention in its
     sentence; when nothing precedes it there, to the nearest following one in the sentence
     ("When she arrived, the nurse ..."); when the sentence mentions nobody, to the last person
     mentioned in an earlier sentence. It counts only when that mention is an occupation: in
     "The nurse thanked the patient for his help", *his* is the patient's. An object pronoun
     (him, her) right after "<person> <verb> [preposition]" skips that person, who is the verb's
     subject ("The nurse smiled when the customer thanked her": *her* is the nurse). A subject
     pronoun (he, she) right after a subordinator (that, because, when, ...) goes to the first
     person mentioned in its sentence, the main clause's subject ("The nurse told the manager
     that she ...": the nurse), the usual subject preference of pronouns.
  2. A gendered noun, first name or title (Mr, Ms) is a person of its own and counts for an
     occupation only when a copula or apposition joins them ("My mother is a nurse",
     "Mary, a nurse,", "the nurse, a woman,", "woman doctor").
  3. In a sentence that mentions exactly one occupation and no other person except gendered
     ones (no patient, customer, child, ...), every pronoun, name or title not tied by rules 1-2
     is tied to that occupation ("Joe worked his way up the ranks as an army officer"); gendered
     nouns are not ("The nurse examined the man"): the whole-sentence fallback.
  4. The text is ``stereotypical`` when more tied referents match their occupation's code than
     not, ``anti`` when fewer, else ``neutral`` (when a coded occupation is mentioned) or ``none``.

  Four refinements for model-written text ("The {occupation} said that ..."; issue 27):

  * clause rule: after a subject pronoun (he, she, *they*) tied to X, a later pronoun of the same
    clause that would also be tied to X is somebody else, unless it has the subject's gender and
    is reflexive or possessive ("The librarian said that she would call him tomorrow": only
    *she* is the librarian; "The cashier said that they would send the receipt to her": the
    cashier is *they*, *her* is nobody in the text). Such a pronoun gets no rule-3 fallback.
  * an occupation right after "<pronoun> is/was a" says what that person is ("she was an
    engineer"): it is not a person of its own that other pronouns are tied to;
  * rule 3 does not tie a first name or title that follows the occupation across a reporting
    verb or subordinator ("The typist said that the letter was ready when Linda arrived");
  * a text holding a generation loop ("he said that she said that he said that ...", see
    :func:`is_garbled`) is labelled ``garbled`` (unpaired, counted in ``label_counts``) instead
    of by a vote of its referents.

  With the prompt's occupation (``score_text(text, prompt_occupation=...)``, the generation
  prompt's ``meta.prompt_occupation``), its first mention is the speaker: a subject pronoun
  after a subordinator, and a pronoun with no other person in its sentence, are tied to it;
  only referents tied to it vote, and the text's ``code`` is its code (also for ``none``).

  ``occupation``: rule 1 with occupations as the only person mentions, i.e. the nearest
  preceding occupation in the sentence, as issue 13 first phrased it ("The nurse thanked the
  patient for his help" counts *his* for the nurse again); rules 2 and 4 as above, no rule 3.

  Pronouns of the neutral group (they, them) are never tied; neutral person nouns (person, child,
  partner) are person mentions. This is a heuristic, not coreference resolution: WinoBias type-1
  sentences ("The developer argued with the designer because he ...") need world knowledge
  the rules do not have.

``TextScore.male``/``female`` always count every referent in the text (the
``gendered_term_imbalance`` metric does not depend on ``attach``).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.lexicon import (
    FEMALE_CODED,
    MALE_CODED,
    Lexicon,
    MatchEntry,
    OccupationTable,
    TermMatcher,
)
from synthbias.lexicon import load_lexicon as _load_lexicon
from synthbias.lexicon.occupations import check_thresholds
from synthbias.lexicon.people import person_nouns
from synthbias.measure.result import MetricResult, bootstrap_ci

STEREOTYPICAL = "stereotypical"
ANTI = "anti"
NEUTRAL_LABEL = "neutral"
NONE = "none"
GARBLED = "garbled"
LABELS = (STEREOTYPICAL, ANTI, NEUTRAL_LABEL, NONE, GARBLED)

#: Threshold presets: name -> (lo, hi) percent women (male-coded at/below lo, female at/above hi;
#: lo == hi means strictly below / strictly above).
PRESETS: dict[str, tuple[float, float]] = {"strict": (30.0, 70.0), "majority": (50.0, 50.0)}
DEFAULT_PRESET = "strict"
CUSTOM = "custom"
#: Occupation tables by name (files in ``lexicon/data``).
OCCUPATION_TABLES: dict[str, str] = {"bls": "occupations_bls.csv", "legacy": "occupations.csv"}
DEFAULT_OCCUPATIONS = "bls"
ATTACH_RULES = ("nearest", "occupation", "text")
DEFAULT_ATTACH = "nearest"

_REF = "ref"
_OCC = "occ"
_PER = "per"  # a non-occupational person noun
_DATA = Path(__file__).resolve().parents[1] / "lexicon" / "data"
_NOUN_CATEGORIES = frozenset({"nouns"})  # gendered nouns: persons of their own
_ABBREV = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Mx|Dr|St|Prof|Sr|Jr|Rev|Gen|Col|Capt|Lt|Sgt|vs|etc|e\.g|i\.e)|\b[A-Z])$"
)
_SENT_END = re.compile(r"[.!?;]+[\"')\]\u201d\u2019]*(?=\s|$)|\n+")
# Text between a gendered noun / name and a following occupation that makes them one person.
_NOUN_THEN_OCC = re.compile(
    r"^(?:[\s,]*|\s*,\s*(?:a|an|the|our|my)\s+(?:[\w-]+\s+)?|"
    r"\s+(?:is|was|be|been|became|becomes|remains|remained|works as|worked as|"
    r"serves as|served as|who is|who was|as)\s+(?:a|an|the|one|our|my|his|her|their)?\s*"
    r"(?:[\w-]+\s+)?)$",
    re.IGNORECASE,
)
# ... and between an occupation and a following gendered noun / name ("the nurse, a woman").
_OCC_THEN_NOUN = re.compile(
    r"^(?:\s*|\s*,\s*(?:(?:is|was|who is|who was)\s+)?(?:a|an|the)\s+(?:[\w-]+\s+)?|"
    r"\s+(?:is|was)\s+(?:a|an|the)\s+(?:[\w-]+\s+)?)$",
    re.IGNORECASE,
)


# An object pronoun right after "<person> <verb> [preposition]" is not that person (binding).
_OBJECT_PRONOUNS = frozenset({"him", "her"})
_JUST_A_VERB = re.compile(
    r"^\s+(?!(?:and|or|but|because|that|when|while|who|whom|which|so|if|after|before|since|"
    r"although|then|as|until|whether|where|about|for|to|with|from|of|in|on|at|by|into|like|"
    r"without|near|behind|beside|than)\b)[a-z]+"
    r"(?:\s+(?:to|for|at|with|about|on|from))?\s+$"
)
_SUBJECT_PRONOUNS = frozenset({"he", "she"})
_SUBORDINATOR_BEFORE = re.compile(
    r"\b(?:that|because|since|so|but|when|while|after|before|until|if|although|though)\s+$",
    re.IGNORECASE,
)
#: Subject pronouns that open a clause; ``they`` is not gendered but still takes the speaker's
#: place, so a gendered pronoun later in its clause is somebody else.
_CLAUSE_SUBJECTS = frozenset({"he", "she", "they"})
# Text between two pronouns that ends the first one's clause (a new clause may have a new
# subject): a subordinator, a relative pronoun, a conjunction or clause punctuation.
_CLAUSE_BREAK = re.compile(
    r"[,;:()\"]|\b(?:that|because|since|so|but|and|or|when|while|after|before|until|if|"
    r"although|though|who|whom|which|whose|where|said|says|told|asked)\b",
    re.IGNORECASE,
)
# "her" followed by one of these (or by punctuation / the end) is an object, not a possessive.
_HER_OBJECT_NEXT = re.compile(
    r"\s*(?:$|[^\w\s]|(?:to|and|or|but|that|about|tomorrow|today|tonight|later|soon|again|"
    r"back|up|down|out|off|in|on|at|for|with|from|if|when|because|so|too|now|then|yesterday|"
    r"a|an|the|this|some|any|all|how|what|why|where|whether|is|was|will|would|as|by|into|"
    r"over|after|before|once|right|first|last|every|next)\b)",
    re.IGNORECASE,
)
_REFLEXIVES = frozenset({"himself", "herself"})
# An occupation right after "<pronoun> is/was a" is what that person is, not a new person.
_PRONOUN_COPULA = re.compile(
    r"^\s+(?:is|was|am|are|were|be|been|became|becomes|remains|remained|had been|has been|"
    r"would be|will be|wanted to be|worked as|works as)\s+(?:not\s+)?(?:a|an|the)\s+"
    r"(?:[\w-]+\s+)?$",
    re.IGNORECASE,
)
# A name or title after the sentence's occupation with one of these between is in reported
# speech or another clause: somebody else, not the speaker (no whole-sentence fallback).
_REPORTED = re.compile(
    r"\b(?:said|says|say|explained|added|replied|thought|that|when|while|because|"
    r"after|before|until|if|since|although|though)\b",
    re.IGNORECASE,
)
#: A text whose words repeat one short cycle (with the pronouns' genders ignored) this many times
#: in a row is a generation loop ("he said that she said that he said that ..."), not a text:
#: it is labelled ``garbled`` (unpaired) instead of by a vote of its referents.
GARBLED_REPEATS = 3
_LOOP_MAX_PERIOD = 8
_WORD = re.compile(r"[A-Za-z']+|[.!?;]")
_STOPS = frozenset(".!?;")  # a loop is inside one sentence: repeated sentences are not one
_LOOP_PRONOUNS = frozenset(
    {"he", "she", "they", "him", "her", "them", "his", "hers", "their", "i", "we", "you"}
)


def resolve_preset(
    preset: str | None = None, lo: float | None = None, hi: float | None = None
) -> tuple[str, float, float]:
    """(preset name, lo, hi) from a preset and/or explicit thresholds.

    Explicit thresholds that equal a preset get its name; others are ``custom``. A preset and
    thresholds that disagree are an error (a result must never say one and use the other). A
    missing ``lo`` or ``hi`` takes the strict value, as before presets existed.
    """
    if preset is not None and preset != CUSTOM and preset not in PRESETS:
        raise ValueError(
            f"unknown preset {preset!r}; expected one of {sorted(PRESETS)} or 'custom'"
        )
    if preset in PRESETS:
        plo, phi = PRESETS[preset]
        if (lo is not None and lo != plo) or (hi is not None and hi != phi):
            raise ValueError(
                f"preset {preset!r} means lo={plo}, hi={phi}; got lo={lo}, hi={hi} "
                "(drop the thresholds or use preset 'custom')"
            )
        return preset, plo, phi
    if lo is None and hi is None:
        if preset == CUSTOM:
            raise ValueError("preset 'custom' needs explicit thresholds lo and hi")
        plo, phi = PRESETS[DEFAULT_PRESET]
        return DEFAULT_PRESET, plo, phi
    dlo, dhi = PRESETS[DEFAULT_PRESET]
    lo = dlo if lo is None else float(lo)
    hi = dhi if hi is None else float(hi)
    check_thresholds(lo, hi)
    for name, (plo, phi) in PRESETS.items():
        if (lo, hi) == (plo, phi):
            return name, lo, hi
    return CUSTOM, lo, hi


@functools.lru_cache(maxsize=8)
def occupation_table(name: str = DEFAULT_OCCUPATIONS) -> OccupationTable:
    """A named occupation table (``bls`` or ``legacy``), read once."""
    if name not in OCCUPATION_TABLES:
        raise ValueError(
            f"unknown occupation table {name!r}; expected one of {sorted(OCCUPATION_TABLES)}"
        )
    return OccupationTable.from_csv(_DATA / OCCUPATION_TABLES[name])


@dataclass
class TextScore:
    """What the rules found in one text and the resulting label."""

    label: str
    occupations: list[tuple[str, str]] = field(default_factory=list)  # (occupation, code)
    male: int = 0
    female: int = 0
    neutral: int = 0
    #: the resolved occupation code behind the label (with a prompt occupation: its code)
    code: str | None = None
    #: (occupation, referent gender) for every referent the ``nearest`` rule tied to an
    #: occupation (empty under ``text``)
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def signed(self) -> int:
        """+1 stereotypical, -1 anti-stereotypical, 0 otherwise."""
        return 1 if self.label == STEREOTYPICAL else -1 if self.label == ANTI else 0


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    kind: str  # _REF, _OCC or _PER
    value: str  # gender for _REF, occupation for _OCC
    noun: bool = False  # a gendered noun, a first name or a title (a person of its own)
    name: bool = False  # a first name or a title (rule 3 may tie it; a gendered noun never)


class GenderRuleScorer:
    """Label texts stereotypical / anti / neutral / none from occupations and gendered words.

    ``preset`` (``strict``/``majority``) or explicit ``lo``/``hi`` set the percent-female
    thresholds for male-/female-coded occupations; ``occupations`` picks the table (``bls``,
    ``legacy``, an :class:`OccupationTable`, or ``None`` for the lexicon's own); ``attach``
    the referent rule (``nearest`` or the old whole-text ``text``); ``name_threshold`` is the
    census share a first name needs to count as gendered. See the module docstring.
    """

    def __init__(
        self,
        lexicon: Lexicon | None = None,
        lo: float | None = None,
        hi: float | None = None,
        name_threshold: float = 0.9,
        *,
        preset: str | None = None,
        occupations: str | OccupationTable | None = DEFAULT_OCCUPATIONS,
        attach: str = DEFAULT_ATTACH,
    ) -> None:
        self.preset, lo, hi = resolve_preset(preset, lo, hi)
        if attach not in ATTACH_RULES:
            raise ValueError(f"unknown attach rule {attach!r}; expected one of {ATTACH_RULES}")
        self.attach = attach
        self.lexicon = lexicon if lexicon is not None else _load_lexicon()
        axis = self.lexicon.axis("gender")
        if isinstance(occupations, str):
            self.occupation_table_name = occupations
            table = occupation_table(occupations).matchable()
            axis = dataclasses.replace(axis, occupations=table)
        elif occupations is not None:
            self.occupation_table_name = "custom"
            axis = dataclasses.replace(axis, occupations=occupations.matchable())
        else:
            self.occupation_table_name = "lexicon"
        self.axis = axis
        if self.axis.occupations is None:
            raise ValueError("the gender axis has no occupation table")
        self.lo, self.hi, self.name_threshold = lo, hi, name_threshold
        self.codes = self.axis.occupations.codes(lo, hi)
        female_group = self.axis.occupation_groups.get("female", "female")
        male_group = self.axis.occupation_groups.get("male", "male")
        self._gender_of_group = {male_group: "male", female_group: "female"}
        occ_forms = {f.lower() for occ in self.axis.occupations for f in occ.forms}
        noun_terms = {
            t.lower()
            for cats in self.axis.groups.values()
            for cat, terms in cats.items()
            if cat in _NOUN_CATEGORIES
            for t in terms
        }
        entries: list[MatchEntry] = []
        ref_terms: set[str] = set()
        self._noun_refs: set[str] = set()  # lower-case gendered nouns + first names
        for e in self.axis.entries(name_threshold):
            if e.case_sensitive and e.term.lower() in occ_forms:
                continue  # a first name spelled like an occupation counts as the occupation
            label = (
                None if e.label is None else (_REF, self._gender_of_group.get(e.label, "neutral"))
            )
            entries.append(MatchEntry(e.term, label, e.case_sensitive, e.followed_by))
            ref_terms.add(e.term.lower())
            if e.label is not None and (e.term.lower() in noun_terms or e.case_sensitive):
                self._noun_refs.add(e.term.lower())  # a gendered noun, a name or a title
        self._gendered_nouns = noun_terms
        for occ in self.axis.occupations:
            for form in occ.forms:
                entries.append(MatchEntry(form, (_OCC, occ.name), False))
        if attach != "text":
            for word in sorted(person_nouns() - occ_forms - ref_terms):
                entries.append(MatchEntry(word, (_PER, ""), False))
        self.matcher = TermMatcher(entries)

    @classmethod
    def legacy(cls, lexicon: Lexicon | None = None) -> GenderRuleScorer:
        """Today's baseline before issue 13: 96-row table, strict 30/70, whole-text referents."""
        return cls(lexicon, preset="strict", occupations="legacy", attach="text")

    @classmethod
    def from_config(cls, rule: Any, lexicon: Lexicon | None = None) -> GenderRuleScorer:
        """From a :class:`~synthbias.measure.config.RuleMetricConfig` (or a mapping with its
        fields)."""
        get = rule.get if isinstance(rule, Mapping) else lambda k, d=None: getattr(rule, k, d)
        preset = get("preset", None)
        lo, hi = get("male_coded_max_pct", None), get("female_coded_min_pct", None)
        if preset in PRESETS:
            lo = hi = None  # the config validator already checked they agree
        return cls(
            lexicon,
            lo=lo,
            hi=hi,
            name_threshold=get("name_threshold", 0.9),
            preset=preset,
            occupations=get("occupations", DEFAULT_OCCUPATIONS),
            attach=get("attach", DEFAULT_ATTACH),
        )

    @property
    def settings(self) -> dict[str, Any]:
        """What every result records: preset, thresholds, table, attachment rule."""
        return {
            "preset": self.preset,
            "lo": self.lo,
            "hi": self.hi,
            "name_threshold": self.name_threshold,
            "occupations": self.occupation_table_name,
            "n_occupations": len(self.axis.occupations),  # type: ignore[arg-type]
            "attach": self.attach,
        }

    def _score(self, labels: Sequence[Hashable]) -> TextScore:
        male = female = neutral = 0
        occupations: list[tuple[str, str]] = []
        n_male_coded = n_female_coded = 0
        first_coded: str | None = None  # only tells whether any coded occupation was seen
        for kind, value in labels:  # type: ignore[misc]
            if kind == _PER:
                continue
            if kind == _REF:
                if value == "male":
                    male += 1
                elif value == "female":
                    female += 1
                else:
                    neutral += 1
            else:
                code = self.codes[value]
                occupations.append((value, code))
                if code == MALE_CODED:
                    n_male_coded += 1
                elif code == FEMALE_CODED:
                    n_female_coded += 1
                else:
                    continue
                if first_coded is None:
                    first_coded = code
        score = TextScore(NONE, occupations, male, female, neutral)
        if first_coded is None:
            return score
        if n_male_coded == n_female_coded:
            score.label = NEUTRAL_LABEL  # as many male- as female-coded mentions: undecidable
            return score
        score.code = MALE_CODED if n_male_coded > n_female_coded else FEMALE_CODED
        if male == female:
            score.label = NEUTRAL_LABEL
        else:
            majority = MALE_CODED if male > female else FEMALE_CODED
            score.label = STEREOTYPICAL if majority == score.code else ANTI
        return score

    def _hits(self, text: str) -> list[_Hit]:
        out = []
        for m in self.matcher.finditer(text):
            if m.label is None:
                continue
            kind, value = m.label  # type: ignore[misc]
            low = m.text.lower()
            noun = kind == _REF and low in self._noun_refs
            name = noun and low not in self._gendered_nouns
            out.append(_Hit(m.start, m.end, kind, value, noun, name))
        return out

    def prompt_occupation(self, name: str | None) -> str | None:
        """The table occupation a prompt names (its table name or any of its forms), or None."""
        if not name:
            return None
        if name in self.codes:
            return name
        found = [h.value for h in self._hits(name) if h.kind == _OCC]
        return found[0] if len(found) == 1 else None

    def _score_nearest(self, text: str, prompt_occupation: str | None = None) -> TextScore:
        hits = self._hits(text)
        score = self._score([(h.kind, h.value) for h in hits])  # counts and fallbacks
        score.code, score.label = None, NONE
        prompt = self.prompt_occupation(prompt_occupation)
        prompt_code = self.codes[prompt] if prompt is not None else None
        if prompt_code not in (MALE_CODED, FEMALE_CODED):
            prompt_code = None
        coded = [h for h in hits if h.kind == _OCC and self.codes[h.value] != "neutral"]
        if not coded:
            score.code = prompt_code
            return score
        if is_garbled(text):  # a generation loop: flagged and unpaired, no majority vote
            score.label = GARBLED
            score.code = prompt_code or _majority_code(coded, self.codes)
            return score
        targets = self._targets(text, hits, prompt)
        links = [(hits[j].value, hits[i].value) for i, j in targets.items()]
        if prompt is not None:  # the text is about the prompt's occupation: only it votes
            links = [(occ, g) for occ, g in links if occ == prompt]
        score.links = links
        votes = {
            STEREOTYPICAL: {MALE_CODED: 0, FEMALE_CODED: 0},
            ANTI: {MALE_CODED: 0, FEMALE_CODED: 0},
        }
        for occ, gender in links:
            code = self.codes[occ]
            if code == "neutral":
                continue
            match = (code == MALE_CODED) == (gender == "male")
            votes[STEREOTYPICAL if match else ANTI][code] += 1
        n_st, n_an = sum(votes[STEREOTYPICAL].values()), sum(votes[ANTI].values())
        if n_st == n_an:
            score.label = NEUTRAL_LABEL
            score.code = prompt_code or _majority_code(coded, self.codes)
            return score
        score.label = STEREOTYPICAL if n_st > n_an else ANTI
        side = votes[score.label]
        score.code = MALE_CODED if side[MALE_CODED] >= side[FEMALE_CODED] else FEMALE_CODED
        return score

    def _targets(self, text: str, hits: list[_Hit], prompt: str | None) -> dict[int, int]:
        """Gendered referent hit -> the occupation hit it is tied to (rules 1-3, the clause rule,
        the prompt's speaker); referents tied to nothing (or to a non-occupation) are absent."""
        ends = sentence_ends(text)
        sent = [bisect.bisect_right(ends, h.start) for h in hits]
        predicate = _predicate_occupations(text, hits, sent)
        if self.attach == "occupation":  # other people are invisible: ties to occupations only
            persons = [i for i, h in enumerate(hits) if h.kind == _OCC and i not in predicate]
        else:
            persons = [
                i
                for i, h in enumerate(hits)
                if (h.kind in (_OCC, _PER) or h.noun) and i not in predicate
            ]
        first_person: dict[int, int] = {}  # sentence -> its first person mention
        for p in persons:
            first_person.setdefault(sent[p], p)
        speaker = next(
            (i for i, h in enumerate(hits) if h.kind == _OCC and h.value == prompt), None
        )
        sole = self._sole(hits, sent)
        raw: dict[int, int | None] = {}  # referent -> person hit (rules 1-2)
        for i, h in enumerate(hits):
            if h.kind != _REF or (h.noun and h.value not in ("male", "female")):
                continue
            if h.value not in ("male", "female") and _word(text, h) not in _CLAUSE_SUBJECTS:
                continue  # of the neutral pronouns only "they" matters (the clause rule)
            if h.noun:
                raw[i] = self._noun_link(text, hits, i, sent)
            else:
                raw[i] = self._pronoun_link(text, hits, persons, i, sent, first_person, speaker)
        blocked = _clause_blocked(text, hits, raw, sent, persons)
        out: dict[int, int] = {}
        for i, j in raw.items():
            h = hits[i]
            if h.value not in ("male", "female") or i in blocked:
                continue
            if j is not None and hits[j].kind != _OCC:
                j = None  # tied to a person who is not an occupation
            if j is None and self.attach == "nearest" and (h.name or not h.noun):
                j = sole.get(sent[i])
                if j is not None and h.name and _reported(text, hits[j], h):
                    j = None  # a name in reported speech is somebody else, not the speaker
            if j is not None and hits[j].kind == _OCC:
                out[i] = j
        return out

    @staticmethod
    def _sole(hits: list[_Hit], sent: list[int]) -> dict[int, int]:
        """Rule 3: sentence -> its one occupation hit, where no other non-gendered person is."""
        sole: dict[int, int] = {}
        others: set[int] = set()
        n_occ: dict[int, int] = {}
        for i, h in enumerate(hits):
            if h.kind == _OCC:
                n_occ[sent[i]] = n_occ.get(sent[i], 0) + 1
                sole[sent[i]] = i
            elif h.kind == _PER or (h.noun and h.value == "neutral"):
                others.add(sent[i])
        return {k: v for k, v in sole.items() if n_occ[k] == 1 and k not in others}

    @staticmethod
    def _pronoun_link(
        text: str,
        hits: list[_Hit],
        persons: list[int],
        i: int,
        sent: list[int],
        first_person: dict[int, int],
        speaker: int | None = None,
    ) -> int | None:
        """Person hit a pronoun is tied to (rule 1; the prompt's speaker first), or None."""
        k = bisect.bisect_left(persons, i)
        before = persons[k - 1] if k > 0 else None
        word = _word(text, hits[i])
        if (
            before is not None
            and k > 1
            and word in _OBJECT_PRONOUNS
            and _JUST_A_VERB.match(text[hits[before].end : hits[i].start])
        ):
            before = persons[k - 2]  # "the customer thanked her": not the customer
        elif word in _CLAUSE_SUBJECTS and _after_subordinator(text, hits[i].start):
            if speaker is not None and speaker < i:
                return speaker  # "The nurse said that she ...": the prompt's occupation
            first = first_person.get(sent[i])
            if before is not None and first is not None and first < i:
                before = first  # "X told Y that he ...": the subject of the main clause
        after = persons[k] if k < len(persons) else None
        if before is not None and sent[before] == sent[i]:
            return before
        if after is not None and sent[after] == sent[i]:
            return after
        if speaker is not None and speaker < i:
            return speaker  # a later sentence of a text about the prompt's occupation
        return before

    @staticmethod
    def _noun_link(text: str, hits: list[_Hit], i: int, sent: list[int]) -> int | None:
        """Occupation hit a gendered noun or name is one person with (rule 2), or None."""
        h = hits[i]
        if i + 1 < len(hits) and hits[i + 1].kind == _OCC and sent[i + 1] == sent[i]:
            if _NOUN_THEN_OCC.match(text[h.end : hits[i + 1].start]):
                return i + 1
        if i > 0 and hits[i - 1].kind == _OCC and sent[i - 1] == sent[i]:
            if _OCC_THEN_NOUN.match(text[hits[i - 1].end : h.start]):
                return i - 1
        return None

    def score_text(self, text: str, prompt_occupation: str | None = None) -> TextScore:
        """One text's score; ``prompt_occupation`` (the occupation the generation prompt named,
        ``meta.prompt_occupation``) is the speaker: the subject referent attaches to it, only its
        referents vote and the text's ``code`` is its code (``nearest``/``occupation`` only)."""
        if self.attach != "text":
            return self._score_nearest(text, prompt_occupation)
        return self._score(self.matcher.findall(text))

    def score_texts(
        self, texts: Sequence[str], prompt_occupations: Sequence[str | None] | None = None
    ) -> list[TextScore]:
        """Scores for many texts (``text``: one regex pass per chunk of texts);
        ``prompt_occupations`` gives each text's prompt occupation (see :meth:`score_text`)."""
        if prompt_occupations is not None and len(prompt_occupations) != len(texts):
            raise ValueError("prompt_occupations must have one entry per text")
        if self.attach != "text":
            prompts = prompt_occupations or [None] * len(texts)
            return [self._score_nearest(t, p) for t, p in zip(texts, prompts, strict=True)]
        return [self._score(labels) for labels in self.matcher.labels_batch(texts)]

    def measure(
        self,
        texts: Sequence[str],
        n_resamples: int = 1000,
        seed: int = 0,
        prompt_occupations: Sequence[str | None] | None = None,
    ) -> dict[str, MetricResult]:
        """Corpus metrics with percentile bootstrap 95% CIs over texts; ``meta`` records
        :attr:`settings` (preset, thresholds, table, attachment rule)."""
        scores = self.score_texts(texts, prompt_occupations)
        return metrics_from_scores(scores, n_resamples=n_resamples, seed=seed, meta=self.settings)


def _word(text: str, hit: _Hit) -> str:
    return text[hit.start : hit.end].lower()


def _majority_code(coded: Sequence[_Hit], codes: Mapping[str, str]) -> str | None:
    """The code with more coded-occupation mentions (None on a tie)."""
    n_m = sum(1 for h in coded if codes[h.value] == MALE_CODED)
    n_f = len(coded) - n_m
    return None if n_m == n_f else MALE_CODED if n_m > n_f else FEMALE_CODED


def _reported(text: str, occupation: _Hit, name: _Hit) -> bool:
    """Whether a name follows the sentence's occupation across a reporting verb or subordinator
    ("The typist said that the letter was ready when Linda arrived")."""
    return occupation.start < name.start and bool(
        _REPORTED.search(text, occupation.end, name.start)
    )


def _predicate_occupations(text: str, hits: list[_Hit], sent: list[int]) -> set[int]:
    """Occupation hits right after "<pronoun> is/was a": what that person is ("she was an
    engineer"), not a person of its own that other pronouns could be tied to."""
    out = set()
    for i in range(1, len(hits)):
        prev = hits[i - 1]
        if (
            hits[i].kind == _OCC
            and prev.kind == _REF
            and not prev.noun
            and sent[i - 1] == sent[i]
            and _PRONOUN_COPULA.match(text[prev.end : hits[i].start])
        ):
            out.add(i)
    return out


def _clause_blocked(
    text: str,
    hits: list[_Hit],
    raw: Mapping[int, int | None],
    sent: list[int],
    persons: Sequence[int],
) -> set[int]:
    """Gendered pronouns that are not the person their clause's subject pronoun is.

    After a subject pronoun (he, she, they) tied to X, a later pronoun of the same clause (same
    sentence, no clause break, no person mentioned between) that would also be tied to X is
    somebody else unless it has the subject's gender and is reflexive or possessive: "The
    librarian said that she would call him" (*him* is not the librarian), "The cashier said that
    they would send the receipt to her" (the cashier is *they*). Such pronouns are tied to nobody
    (no whole-sentence fallback either)."""
    blocked: set[int] = set()
    refs = list(raw)  # in text order
    for n, s in enumerate(refs):
        if _word(text, hits[s]) not in _CLAUSE_SUBJECTS:
            continue
        for k in (refs[m] for m in range(n + 1, len(refs))):
            if sent[k] != sent[s] or _CLAUSE_BREAK.search(text, hits[s].end, hits[k].start):
                break
            p = bisect.bisect_right(persons, s)
            if p < len(persons) and persons[p] < k:
                break  # somebody is mentioned in between
            if hits[k].noun or raw[k] != raw[s]:
                continue
            same = hits[k].value == hits[s].value
            word = _word(text, hits[k])
            if same and (word in _REFLEXIVES or word == "his" or _possessive_her(text, hits[k])):
                continue
            blocked.add(k)
    return blocked


def _possessive_her(text: str, hit: _Hit) -> bool:
    """Whether this "her" is a possessive ("her book"), not an object ("call her tomorrow")."""
    return _word(text, hit) == "her" and not _HER_OBJECT_NEXT.match(text, hit.end)


def is_garbled(text: str, repeats: int = GARBLED_REPEATS) -> bool:
    """Whether ``text`` holds a generation loop: a cycle of 2 to 8 words, one of them a pronoun,
    repeated ``repeats`` times in a row inside one sentence once pronouns are read without their
    gender ("he said that she said that he said that ..."). A sentence repeated whole is not
    flagged: its referents vote the same way each time."""
    words = [w.lower() for w in _WORD.findall(text)]
    norm = ["<p>" if w in _LOOP_PRONOUNS else w for w in words]
    n = len(norm)
    for period in range(2, _LOOP_MAX_PERIOD + 1):
        need = period * (repeats - 1)  # positions that must equal the one a period earlier
        run = 0
        for t in range(period, n):
            same = norm[t] == norm[t - period] and norm[t] not in _STOPS
            run = run + 1 if same else 0
            if run >= need and "<p>" in norm[t - period + 1 : t + 1]:
                return True
    return False


def sentence_ends(text: str) -> list[int]:
    """Offsets where sentences end (``. ! ? ;`` or line breaks; not after Mr/Dr/initials)."""
    ends = []
    for m in _SENT_END.finditer(text):
        # _ABBREV ends in $ and is at most 5 characters with its \b: search only that tail
        # (endpos acts as the string's end, \b still sees the character before pos)
        if m.group()[0] == "." and _ABBREV.search(text, max(0, m.start() - 8), m.start()):
            continue
        ends.append(m.start())
    return ends


def _after_subordinator(text: str, end: int) -> bool:
    """``_SUBORDINATOR_BEFORE`` on ``text[:end]``, in time independent of ``end``: the word must
    end where the whitespace run before ``end`` starts, and is at most 8 letters long."""
    j = end
    while j > 0 and text[j - 1].isspace():
        j -= 1
    return j < end and _SUBORDINATOR_BEFORE.search(text, max(0, j - 9), end) is not None


def _rate(mask: np.ndarray, values: np.ndarray) -> float:
    return float(values[mask].mean()) if mask.any() else float("nan")


def _imbalance(arr: np.ndarray) -> float:
    m, f = arr[:, 0].sum(), arr[:, 1].sum()
    return float((m - f) / (m + f)) if m + f > 0 else float("nan")


def metrics_from_scores(
    scores: Sequence[TextScore],
    n_resamples: int = 1000,
    seed: int = 0,
    meta: dict | None = None,
) -> dict[str, MetricResult]:
    """``stereotype_rate``, ``signed_bias`` and ``gendered_term_imbalance`` from text scores.

    * stereotype_rate = stereotypical texts / all texts; per_group: the same rate among texts
      whose occupation is male-coded and female-coded;
    * signed_bias = (stereotypical - anti) / all texts, in [-1, 1]; per_group as above;
    * gendered_term_imbalance = (male - female referents) / (male + female referents) pooled
      over the corpus, in [-1, 1]; the bootstrap resamples texts and recomputes the pooled ratio;
      per_group gives the male and female shares of referents.
    """
    base = dict(meta or {})
    n = len(scores)
    labels = np.array([s.label for s in scores], dtype=object)
    stereo = (labels == STEREOTYPICAL).astype(float)
    signed = np.array([s.signed for s in scores], dtype=float)
    codes = np.array([s.code or "" for s in scores], dtype=object)
    counts = {lab: int((labels == lab).sum()) for lab in LABELS}
    base["label_counts"] = counts
    by_code = {
        MALE_CODED: codes == MALE_CODED,
        FEMALE_CODED: codes == FEMALE_CODED,
    }
    base["n_by_code"] = {c: int(m.sum()) for c, m in by_code.items()}

    def mean(a: np.ndarray) -> float:
        return float(a.mean()) if len(a) else float("nan")

    rate = MetricResult(
        name="stereotype_rate",
        value=mean(stereo),
        ci=bootstrap_ci(stereo, n_resamples=n_resamples, seed=seed),
        per_group={c: _rate(m, stereo) for c, m in by_code.items()},
        per_sample=stereo.tolist(),
        n=n,
        meta=dict(base),
    )
    bias = MetricResult(
        name="signed_bias",
        value=mean(signed),
        ci=bootstrap_ci(signed, n_resamples=n_resamples, seed=seed),
        per_group={c: _rate(m, signed) for c, m in by_code.items()},
        per_sample=signed.tolist(),
        n=n,
        meta=dict(base),
    )
    mf = np.array([[s.male, s.female] for s in scores], dtype=float).reshape(n, 2)
    tot = mf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_text = np.where(tot > 0, (mf[:, 0] - mf[:, 1]) / np.where(tot > 0, tot, 1), np.nan)
    m_total, f_total = float(mf[:, 0].sum()), float(mf[:, 1].sum())
    both = m_total + f_total
    imbalance = MetricResult(
        name="gendered_term_imbalance",
        value=_imbalance(mf),
        ci=bootstrap_ci(mf, statistic=_imbalance, n_resamples=n_resamples, seed=seed),
        per_group={
            "male": m_total / both if both else float("nan"),
            "female": f_total / both if both else float("nan"),
        },
        per_sample=per_text.tolist(),
        n=n,
        meta={**base, "male_referents": int(m_total), "female_referents": int(f_total)},
    )
    return {r.name: r for r in (rate, bias, imbalance)}


__all__ = [
    "ANTI",
    "ATTACH_RULES",
    "CUSTOM",
    "DEFAULT_ATTACH",
    "DEFAULT_OCCUPATIONS",
    "DEFAULT_PRESET",
    "GARBLED",
    "GARBLED_REPEATS",
    "GenderRuleScorer",
    "LABELS",
    "OCCUPATION_TABLES",
    "PRESETS",
    "NEUTRAL_LABEL",
    "NONE",
    "STEREOTYPICAL",
    "TextScore",
    "is_garbled",
    "metrics_from_scores",
    "occupation_table",
    "resolve_preset",
    "sentence_ends",
]
