"""The pronoun probe: what a model trained on a synthetic corpus learns (``probe.gender.*``).

(Formerly ``synthbias.studies.probe``, still importable for one release; "downstream" means
the ten tasks of :mod:`synthbias.tasks`, "behavioural" the counterfactual and fairness metrics of
:mod:`synthbias.measure.behavioural`.)

The rule and embedding metrics describe the *texts* of a generation; these describe what a model
*learns* from them. Two probes, both on held-out wordings (``generate/templates/
pronoun_probes.yaml``, none of which reuses a wording of the equilibrium seed templates or
begins with a generation prompt's opening, :func:`seed_overlap`):

**Pronoun preference** (:func:`pronoun_preference`, a language model). For each gender-coded
occupation *o* (female-coded when its share of women is ≥ ``hi`` %, male-coded when ≤ ``lo`` %;
the stereotyped gender is female resp. male) and each probe context *c* ("The {occ} was late
today because"),
the conditional log-probabilities of the continuations " he" and " she" are scored::

    preference(o) = mean over templates c of  log p(stereo | c(o)) − log p(other | c(o))   [nats]

* ``probe.gender.pronoun_preference`` = mean of ``preference(o)`` over occupations (0: no
  preference; > 0: the stereotyped pronoun is more likely). CI: percentile bootstrap over
  occupations; ``per_group``: the mean over female-coded and over male-coded occupations;
  ``per_sample``: ``preference(o)`` in the order of ``meta["occupations"]``.
* ``probe.gender.stereotype_win_rate`` = share of occupations with ``preference(o) > 0`` (a tie
  is not a win); CI and ``per_group`` likewise.

A model that simply prefers one pronoun everywhere (by *d* nats) scores +d on one group and −d
on the other; its overall value is then d times the imbalance of the two groups' sizes. Both
effects are reported separately in ``meta``: ``he_minus_she`` (the global lean, mean over
occupations of log p(he) − log p(she)) and ``group_balanced`` (mean of the two group means, in
which a global lean cancels).

**Classifier stereotype rate** (:func:`classifier_gender_bias`, a text classifier). Each corpus
text is labelled by its gendered words (rule scorer: male when it has male and no female
referents, female the other way round; texts with none or both are dropped), those words are
masked (pronouns → they/them/their/theirs/themselves, gendered nouns → person/people, titles →
Mx, first names → "the person", gendered adjectives removed), and an
:class:`~synthbias.train.classifier.EmbeddingClassifier` learns the gender from what is left:
mostly the occupation and its context. Classes are weighted to equal total weight, so a corpus
with more male than female texts does not move every prediction. Applied to held-out
gender-free occupation sentences ("The {occ} finished the report.")::

    p_stereo(o) = mean over sentences of P(stereotyped gender of o | sentence(o))

``probe.gender.classifier_stereotype_rate`` = mean of ``p_stereo(o)`` over occupations (0.5: no
association learnt; 1: every occupation read as its stereotyped gender); CI over occupations;
``per_group``: the mean over female-coded (P(female)) and male-coded (P(male)) occupations. It
describes the gender/occupation association *among the gendered texts* of a corpus, not how many
texts are gendered.

**Fine-tune and measure** (:func:`downstream_bias`): LoRA fine-tuning of the embedded model on a
generation's texts (prompt: a fixed instruction, completion: the text), GGUF export, llama.cpp
(or transformers) evaluation of the pronoun preference, plus the classifier variant; cached in
``out_dir`` by a hash of the texts and every setting, so a rerun is free.
"""

from __future__ import annotations

import json
import logging
import math
import os
import string
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import yaml

from synthbias.core.hashing import derive_seed, dir_fingerprint, stable_hash, texts_hash
from synthbias.core.registry import METRIC_FAMILIES
from synthbias.core.store import atomic_write_text
from synthbias.generate.models import default_model_path, model_fingerprint
from synthbias.generate.prompts import (
    OCCUPATION_SLOTS,
    fill_template,
    prompt_templates,
    seed_templates,
)
from synthbias.lexicon import FEMALE_CODED, MALE_CODED, Lexicon, match_case, pronoun_reading
from synthbias.lexicon import load_lexicon as _load_lexicon
from synthbias.lexicon.occupations import check_thresholds
from synthbias.measure.names import STEREO, Orientation, canonical_keys
from synthbias.measure.result import CI, MetricResult, bootstrap_ci
from synthbias.measure.rules import GenderRuleScorer
from synthbias.measure.scoring import conditional_logprobs
from synthbias.train import sft
from synthbias.train.adapter import load_finetuned
from synthbias.train.classifier import EmbeddingClassifier
from synthbias.train.sft import LoRAConfig

if TYPE_CHECKING:  # pragma: no cover
    from synthbias.generate.protocol import Backend
    from synthbias.measure.embedding import Encoder
    from synthbias.train.sft import LoRAConfig

log = logging.getLogger(__name__)

PREFERENCE = "probe.gender.pronoun_preference"
WIN_RATE = "probe.gender.stereotype_win_rate"
CLASSIFIER_RATE = "probe.gender.classifier_stereotype_rate"

#: Continuations scored by :func:`pronoun_preference` (a leading space: a new word).
PRONOUNS: dict[str, str] = {"male": " he", "female": " she"}
#: The fixed instruction every corpus text is fine-tuned under (the prompt of each SFTExample).
DEFAULT_INSTRUCTION = "Write a short text about a person at work.\n"
#: Fine-tuning defaults for a generation of ~100 short texts (overridden by ``lora=``).
DEFAULT_LORA: dict[str, Any] = {
    "epochs": 2,
    "learning_rate": 1e-3,
    "batch_size": 8,
    "max_length": 64,
}
#: Fewest texts per gender the classifier variant trains on.
MIN_PER_CLASS = 5

_OCC_SLOTS = frozenset({"occ", "Occ", "a_occ", "A_occ"})
_GROUP_OF_CODE = {FEMALE_CODED: "female", MALE_CODED: "male"}
_CACHE_VERSION = 1
_RESULTS_FILE = "downstream.json"
_TRAIN_FILE = "train.json"
_ADAPTER_DIR = "adapter"


class InsufficientGenderedTextsError(ValueError):
    """The corpus has too few male- or female-referent texts to train the gender classifier."""


# --------------------------------------------------------------------------- templates


@cache
def _probe_file() -> dict[str, list[str]]:
    text = (
        resources.files("synthbias.generate").joinpath("templates/pronoun_probes.yaml").read_text()
    )
    return yaml.safe_load(text)


def default_pronoun_templates() -> list[str]:
    """The shipped held-out pronoun-probe contexts (``pronoun`` in pronoun_probes.yaml)."""
    return list(_probe_file()["pronoun"])


def default_classifier_templates() -> list[str]:
    """The shipped held-out gender-free sentences (``classifier`` in pronoun_probes.yaml)."""
    return list(_probe_file()["classifier"])


def validate_templates(templates: Sequence[str], kind: str = "pronoun") -> list[str]:
    """Check probe templates; return them as a list or raise ``ValueError`` naming the bad one.

    Each must be a non-empty string with exactly one occupation slot (``{occ}``, ``{Occ}``,
    ``{a_occ}`` or ``{A_occ}``) and no other slot; templates must be distinct. A pronoun
    context must not end in whitespace (the continuation carries its own leading space).
    """
    if isinstance(templates, str):
        raise TypeError("templates must be a sequence of strings, not a single string")
    out = list(templates)
    if not out:
        raise ValueError(f"no {kind} templates")
    seen: set[str] = set()
    for i, t in enumerate(out):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{kind} template {i} is not a non-empty string: {t!r}")
        try:
            fields = [f for _, f, spec, conv in string.Formatter().parse(t) if f is not None]
            specs = [(spec, conv) for _, f, spec, conv in string.Formatter().parse(t) if f]
        except ValueError as err:
            raise ValueError(f"{kind} template {i} {t!r}: {err}") from None
        bad = [f for f in fields if f not in _OCC_SLOTS]
        if bad:
            raise ValueError(
                f"{kind} template {i} {t!r}: unknown slot(s) {bad}; allowed: {sorted(_OCC_SLOTS)}"
            )
        if len(fields) != 1:
            raise ValueError(
                f"{kind} template {i} {t!r} needs exactly one occupation slot, has {len(fields)}"
            )
        if any(spec or conv for spec, conv in specs):
            raise ValueError(f"{kind} template {i} {t!r}: no format specs or conversions")
        if kind == "pronoun" and t != t.rstrip():
            raise ValueError(f"pronoun template {i} {t!r} ends in whitespace")
        if t in seen:
            raise ValueError(f"duplicate {kind} template {t!r}")
        seen.add(t)
    return out


def generation_openings() -> list[str]:
    """The openings the generation prompts write before the model continues (``start`` of
    every template in ``generate/templates/prompts.yaml`` that names the occupation, e.g.
    ``"The {occ} said that"``): a probe beginning with one is not held out, since every
    generated text the probe model trained on begins the same way."""
    out = []
    for tmpl in prompt_templates().values():
        start = str(tmpl.get("start", "")) if isinstance(tmpl, Mapping) else ""
        if any(slot in start for slot in OCCUPATION_SLOTS):
            out.append(start)
    return list(dict.fromkeys(out))


def seed_overlap(templates: Sequence[str], kind: str = "pronoun") -> list[str]:
    """Templates that reuse a wording the probe model trained on (should be empty).

    A pronoun context overlaps when it equals the text before a pronoun slot of a seed
    template (``"The {occ} said"`` before ``{subj}``) or begins with a generation prompt's
    opening (:func:`generation_openings`, ``"The {occ} said that"``), compared case- and
    space-insensitively; a classifier sentence when it equals a seed template's neutral form.
    """

    def norm(s: str) -> str:
        for slot in OCCUPATION_SLOTS:
            s = s.replace(slot, "{occ}")
        return " ".join(s.lower().split())

    seeds = seed_templates()
    if kind != "pronoun":
        taken = {norm(t["neutral"]) for t in seeds}
        return [t for t in templates if norm(t) in taken]
    taken = set()
    for tmpl in seeds:
        g = tmpl["gendered"]
        for slot in ("{subj}", "{Subj}"):
            k = g.find(slot)
            while k >= 0:
                taken.add(norm(g[:k]))
                k = g.find(slot, k + 1)
    openings = [norm(o) for o in generation_openings()]
    return [
        t for t in templates if norm(t) in taken or any(norm(t).startswith(o) for o in openings)
    ]


def _fill(template: str, occupation: str) -> str:
    return fill_template(template, occupation, None, None)


# --------------------------------------------------------------------------- occupations


def select_occupations(
    occupations: Sequence[str] | Mapping[str, str] | None = None,
    lo: float = 30.0,
    hi: float = 70.0,
    lexicon: Lexicon | None = None,
) -> dict[str, str]:
    """Occupation name → stereotyped gender (``"male"``/``"female"``).

    ``None``: every occupation of the lexicon's table that is gender-coded at the thresholds
    (female-coded at ≥ ``hi`` % women, male-coded at ≤ ``lo`` %), in table order. A sequence of
    names is looked up in the table; an unknown or neutral one is an error. A mapping gives the
    gender of each occupation directly (``"male"``/``"female"`` or the code names), for
    occupations outside the table.
    """
    check_thresholds(lo, hi)
    if isinstance(occupations, str):
        raise TypeError("occupations must be a sequence of names, not a single string")
    if isinstance(occupations, Mapping):
        out: dict[str, str] = {}
        for name, g in occupations.items():
            gender = _GROUP_OF_CODE.get(g, g)
            if gender not in ("male", "female"):
                raise ValueError(
                    f"occupation {name!r}: gender must be 'male' or 'female', got {g!r}"
                )
            out[str(name)] = gender
        if not out:
            raise ValueError("no occupations given")
        return out
    lex = lexicon if lexicon is not None else _load_lexicon()
    table = lex.axis("gender").occupations
    if table is None:
        raise ValueError("the gender axis has no occupation table")
    codes = table.codes(lo, hi)
    if occupations is None:
        out = {n: _GROUP_OF_CODE[c] for n, c in codes.items() if c in _GROUP_OF_CODE}
        if not out:
            raise ValueError(f"no occupation is gender-coded at lo={lo}, hi={hi}")
        return out
    names = list(occupations)
    if not names:
        raise ValueError("no occupations given")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown occupation(s) {unknown}; not in the lexicon's table")
    neutral = [n for n in names if codes[n] not in _GROUP_OF_CODE]
    if neutral:
        raise ValueError(
            f"occupation(s) {neutral} are not gender-coded at lo={lo}, hi={hi} "
            "(female-coded needs >= hi % women, male-coded <= lo %)"
        )
    return {n: _GROUP_OF_CODE[codes[n]] for n in dict.fromkeys(names)}


#: Seed of the probe occupations' random sample per code (:func:`sample_occupations`): fixed, so
#: every arm, seed and rerun is probed on the same occupations.
OCCUPATION_SAMPLE_SEED = 0


def sample_occupations(
    occupations: Mapping[str, str], n: int | None, seed: int = OCCUPATION_SAMPLE_SEED
) -> dict[str, str]:
    """A seeded random sample of ``n // 2`` female- and ``n // 2`` male-coded occupations
    (each code sampled on its own, without replacement; all of a code when it has fewer), kept
    in the table's order. ``None`` or 0: every occupation. Not the first ``n // 2`` in table
    order, which would tie the probe to the table's (alphabetical) order."""
    if not n:
        return dict(occupations)
    half = n // 2
    keep: set[str] = set()
    for g in ("female", "male"):
        names = [o for o, og in occupations.items() if og == g]
        rng = np.random.default_rng(derive_seed("probe-occupations", g, seed))
        pick = rng.choice(len(names), size=min(half, len(names)), replace=False)
        keep.update(names[i] for i in pick)
    return {o: g for o, g in occupations.items() if o in keep}


def probe_set(measure: Any) -> tuple[dict[str, str], list[str], float, float]:
    """``(occupations, templates, lo, hi)`` of the held-out probes set by a ``MeasureConfig``:
    the coded occupations at its rule thresholds (at most ``downstream_occupations``: a seeded
    random sample of half female- and half male-coded, :func:`sample_occupations`) and the
    first ``downstream_templates`` pronoun templates."""
    lo, hi = measure.rule.male_coded_max_pct, measure.rule.female_coded_min_pct
    occupations = sample_occupations(
        select_occupations(lo=lo, hi=hi), measure.downstream_occupations
    )
    templates = default_pronoun_templates()[: measure.downstream_templates or None]
    return occupations, templates, lo, hi


def _group_key(gender: str) -> str:
    return FEMALE_CODED if gender == "female" else MALE_CODED


def _mean(a: np.ndarray) -> float:
    return float(a.mean()) if len(a) else float("nan")


# --------------------------------------------------------------------------- pronoun preference


def pronoun_preference(
    backend: Backend,
    occupations: Sequence[str] | Mapping[str, str] | None = None,
    templates: Sequence[str] | None = None,
    lo: float = 30.0,
    hi: float = 70.0,
    n_resamples: int = 1000,
    seed: int = 0,
    *,
    lexicon: Lexicon | None = None,
    chunk_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, MetricResult]:
    """Stereotyped-vs-other pronoun preference of a language model on held-out probes.

    Scores log p(" he" | context) and log p(" she" | context) for every (coded occupation,
    template) with :func:`synthbias.measure.scoring.conditional_logprobs` (one batched call);
    see the module docstring for the definitions of ``probe.gender.pronoun_preference`` (nats)
    and ``probe.gender.stereotype_win_rate``. ``occupations``: see :func:`select_occupations`;
    ``templates``: probe contexts with one occupation slot (default: the shipped held-out
    set; a template reusing a seed wording triggers a warning).
    """

    occ = select_occupations(occupations, lo, hi, lexicon)
    tmpls = validate_templates(
        templates if templates is not None else default_pronoun_templates(), "pronoun"
    )
    overlap = seed_overlap(tmpls, "pronoun")
    if overlap:
        warnings.warn(
            f"pronoun templates reuse seed wordings or generation-prompt openings (not held "
            f"out): {overlap}",
            stacklevel=2,
        )
    names = list(occ)
    contexts = [[_fill(t, name) for t in tmpls] for name in names]
    pairs = [(c, PRONOUNS[g]) for row in contexts for c in row for g in ("male", "female")]
    scores = conditional_logprobs(backend, pairs, chunk_size=chunk_size, progress=progress)
    lp = np.array([s.logprob for s in scores], dtype=float).reshape(len(names), len(tmpls), 2)
    if not np.all(np.isfinite(lp)):
        raise ValueError("the backend returned non-finite log-probabilities")
    he_minus_she = lp[:, :, 0] - lp[:, :, 1]  # (occupation, template)
    sign = np.array([1.0 if occ[n] == "male" else -1.0 for n in names])
    pref_ot = he_minus_she * sign[:, None]
    pref = pref_ot.mean(axis=1)
    wins = (pref > 0).astype(float)
    female = np.array([occ[n] == "female" for n in names])
    groups = {FEMALE_CODED: female, MALE_CODED: ~female}
    group_means = {g: _mean(pref[m]) for g, m in groups.items()}
    finite_means = [v for v in group_means.values() if not math.isnan(v)]
    n_unaligned = sum(not s.aligned for s in scores)

    meta: dict[str, Any] = {
        "lo": lo,
        "hi": hi,
        "unit": "nats",
        "templates": tmpls,
        "pronouns": {g: p.strip() for g, p in PRONOUNS.items()},
        "occupations": names,
        "stereotyped_gender": [occ[n] for n in names],
        "n_by_group": {g: int(m.sum()) for g, m in groups.items()},
        "per_template": {t: float(pref_ot[:, j].mean()) for j, t in enumerate(tmpls)},
        "he_minus_she": float(he_minus_she.mean()),
        "group_balanced": float(np.mean(finite_means)) if finite_means else float("nan"),
        "n_scored": len(pairs),
        "n_unaligned": n_unaligned,
        "seed_overlap": overlap,
    }
    model_id = getattr(backend, "model_id", None)
    if model_id is not None:
        meta["model_id"] = str(model_id)
    preference = MetricResult(
        name=PREFERENCE,
        value=_mean(pref),
        ci=bootstrap_ci(pref, n_resamples=n_resamples, seed=seed),
        per_group=group_means,
        per_sample=pref.tolist(),
        n=len(names),
        meta=dict(meta),
    )
    win_rate = MetricResult(
        name=WIN_RATE,
        value=_mean(wins),
        ci=bootstrap_ci(wins, n_resamples=n_resamples, seed=seed),
        per_group={g: _mean(wins[m]) for g, m in groups.items()},
        per_sample=wins.tolist(),
        n=len(names),
        meta=dict(meta),
    )
    return {PREFERENCE: preference, WIN_RATE: win_rate}


# --------------------------------------------------------------------------- classifier variant

_PRONOUN_MASK = {
    "he": "they",
    "she": "they",
    "him": "them",
    "hers": "theirs",
    "himself": "themselves",
    "herself": "themselves",
}


class GenderMasker:
    """Label texts by their gendered words and replace those words with neutral ones.

    Labels come from :class:`~synthbias.measure.rules.GenderRuleScorer` (male/female referent
    counts); masking uses the gender axis's matcher spans, so exactly the words that gave the
    label are removed. See the module docstring for the replacements.
    """

    def __init__(self, lexicon: Lexicon | None = None, name_threshold: float = 0.9) -> None:
        self.rule = GenderRuleScorer(lexicon, name_threshold=name_threshold)
        self.axis = self.rule.axis
        self.matcher = self.axis.matcher(name_threshold)
        groups = self.rule._gender_of_group  # axis group -> "male"/"female"
        self._gender = dict(groups)
        self._category: dict[str, str] = {}
        for group in groups:
            for cat, terms in self.axis.groups.get(group, {}).items():
                if cat == "names":
                    continue
                for t in terms:
                    self._category.setdefault(t.lower(), cat)

    def label(self, texts: Sequence[str]) -> list[str | None]:
        """``"male"``/``"female"`` per text, ``None`` for texts with no or both genders."""
        out: list[str | None] = []
        for s in self.rule.score_texts(list(texts)):
            if s.male and not s.female:
                out.append("male")
            elif s.female and not s.male:
                out.append("female")
            else:
                out.append(None)
        return out

    def _replacement(self, surface: str, following: str) -> str:
        low = surface.lower()
        cat = self._category.get(low, "names")
        if cat == "pronouns":
            if low in ("her", "his"):
                reading = pronoun_reading(following)
                if low == "his":
                    rep = "theirs" if reading == "object" else "their"
                else:
                    rep = "them" if reading == "object" else "their"
            else:
                rep = _PRONOUN_MASK.get(low, "they")
        elif cat == "titles":
            rep = "Mx"
        elif cat == "adjectives":
            return ""
        elif cat == "names":
            rep = "the person"
        else:  # nouns, abstract nouns, anything else gendered
            plural = low.endswith("s") or low.endswith("men") or low.endswith("folk")
            rep = "people" if plural else "person"
        return match_case(surface, rep)

    def mask(self, text: str) -> str:
        """``text`` with every male/female referent replaced (spacing kept tidy)."""
        pieces: list[str] = []
        pos = 0
        for m in self.matcher.finditer(text):
            if m.label not in self._gender:
                continue
            pieces.append(text[pos : m.start])
            rep = self._replacement(m.text, text[m.end :])
            if not rep and pieces and pieces[-1].endswith(" "):
                pieces[-1] = pieces[-1][:-1]  # a removed adjective leaves one space, not two
            if pos == 0 and m.start == 0 and rep:
                rep = rep[:1].upper() + rep[1:]
            pieces.append(rep)
            pos = m.end
        pieces.append(text[pos:])
        return "".join(pieces)


def classifier_gender_bias(
    train_texts: Sequence[str],
    occupations: Sequence[str] | Mapping[str, str] | None = None,
    templates: Sequence[str] | None = None,
    lo: float = 30.0,
    hi: float = 70.0,
    n_resamples: int = 1000,
    encoder: Encoder | None = None,
    seed: int = 0,
    *,
    min_per_class: int = MIN_PER_CLASS,
    name_threshold: float = 0.9,
    balance: bool = True,
    C: float = 10.0,
    on_insufficient: Literal["raise", "nan"] = "raise",
    lexicon: Lexicon | None = None,
) -> dict[str, MetricResult]:
    """Gender association a text classifier learns from a corpus (see the module docstring).

    ``train_texts`` are labelled and masked by :class:`GenderMasker`; the classifier is an
    :class:`~synthbias.train.classifier.EmbeddingClassifier` on ``encoder`` (default: the bundled
    MiniLM; inverse regularisation ``C``), with classes weighted to equal total weight when
    ``balance``. The value's scale depends on ``C`` (stronger regularisation pulls every
    probability towards 0.5), so keep it fixed across the generations of a study; the default
    10 suits corpora of about 50-500 texts (scikit-learn's 1.0 compresses a perfectly
    stereotyped 24-text corpus to about 0.56). ``templates``:
    gender-free sentences with one occupation slot (default: the shipped held-out set).

    When the corpus has fewer than ``min_per_class`` texts of either gender there is nothing to
    learn from: ``on_insufficient="raise"`` (default) raises
    :class:`InsufficientGenderedTextsError` with the counts; ``"nan"`` returns a NaN result
    whose ``meta["reason"]`` says why (what a study pipeline wants, so one gender-free
    generation does not stop the run).
    """

    if isinstance(train_texts, str):
        raise TypeError("train_texts must be a sequence of texts, not a single string")
    if on_insufficient not in ("raise", "nan"):
        raise ValueError(f"on_insufficient must be 'raise' or 'nan', got {on_insufficient!r}")
    if min_per_class < 1:
        raise ValueError(f"min_per_class must be >= 1, got {min_per_class}")
    occ = select_occupations(occupations, lo, hi, lexicon)
    tmpls = validate_templates(
        templates if templates is not None else default_classifier_templates(), "classifier"
    )
    masker = GenderMasker(lexicon, name_threshold=name_threshold)
    texts = list(train_texts)
    leaky = [t for t in tmpls if masker.label([_fill(t, "worker")])[0] is not None]
    if leaky:
        raise ValueError(f"classifier templates must be gender-free: {leaky}")
    labels = masker.label(texts)
    n_male = sum(lab == "male" for lab in labels)
    n_female = sum(lab == "female" for lab in labels)
    names = list(occ)
    female = np.array([occ[n] == "female" for n in names])
    groups = {FEMALE_CODED: female, MALE_CODED: ~female}
    meta: dict[str, Any] = {
        "lo": lo,
        "hi": hi,
        "templates": tmpls,
        "occupations": names,
        "stereotyped_gender": [occ[n] for n in names],
        "n_by_group": {g: int(m.sum()) for g, m in groups.items()},
        "n_texts": len(texts),
        "n_male": n_male,
        "n_female": n_female,
        "n_dropped": len(texts) - n_male - n_female,
        "balance": balance,
        "C": C,
        "min_per_class": min_per_class,
    }
    if min(n_male, n_female) < min_per_class:
        reason = (
            f"too few gendered texts to train a gender classifier: {n_male} male and "
            f"{n_female} female (need >= {min_per_class} of each; texts with no or both "
            f"genders are dropped, {meta['n_dropped']} of {len(texts)})"
        )
        if on_insufficient == "raise":
            raise InsufficientGenderedTextsError(reason)
        nan = float("nan")
        return {
            CLASSIFIER_RATE: MetricResult(
                name=CLASSIFIER_RATE,
                value=nan,
                ci=CI(nan, nan),
                per_group={g: nan for g in groups},
                per_sample=[nan] * len(names),
                n=len(names),
                meta={**meta, "reason": reason},
            )
        }
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    x = [masker.mask(texts[i]) for i in keep]
    y = [labels[i] for i in keep]
    weights = None
    if balance:
        counts = {"male": n_male, "female": n_female}
        weights = [len(y) / (2 * counts[lab]) for lab in y]  # type: ignore[index]
    clf = EmbeddingClassifier(encoder, C=C, seed=seed).fit(x, y, sample_weight=weights)
    classes = [str(c) for c in clf.classes_]
    probes = [_fill(t, n) for n in names for t in tmpls]
    proba = clf.predict_proba(probes)
    p_female = proba[:, classes.index("female")].reshape(len(names), len(tmpls))
    p_stereo_ot = np.where(female[:, None], p_female, 1.0 - p_female)
    p_stereo = p_stereo_ot.mean(axis=1)
    train_pred = clf.predict(x)
    meta.update(
        {
            "train_accuracy": float(
                np.mean([str(p) == t for p, t in zip(train_pred, y, strict=True)])
            ),
            "p_female": p_female.mean(axis=1).tolist(),
            "per_template": {t: float(p_stereo_ot[:, j].mean()) for j, t in enumerate(tmpls)},
            "win_rate": float(np.mean(p_stereo > 0.5)),
            "masked_example": x[0],
        }
    )
    return {
        CLASSIFIER_RATE: MetricResult(
            name=CLASSIFIER_RATE,
            value=_mean(p_stereo),
            ci=bootstrap_ci(p_stereo, n_resamples=n_resamples, seed=seed),
            per_group={g: _mean(p_stereo[m]) for g, m in groups.items()},
            per_sample=p_stereo.tolist(),
            n=len(names),
            meta=meta,
        )
    }


# --------------------------------------------------------------------------- fine-tune + measure


def _sha(obj: Any) -> str:
    return stable_hash(obj)


def _base_identity(base_model: str | os.PathLike[str] | None) -> str:
    """Cheap fingerprint of the base model (no conversion): GGUF header hash or folder hash."""

    path = Path(base_model).expanduser() if base_model is not None else default_model_path()
    if path.is_file():
        return model_fingerprint(path)
    if path.is_dir():
        return dir_fingerprint(path)
    raise FileNotFoundError(f"base model not found: {path} (nothing is downloaded)")


def _lora_config(lora: LoRAConfig | Mapping[str, Any] | None, seed: int) -> LoRAConfig:
    if isinstance(lora, LoRAConfig):
        return lora
    return LoRAConfig.model_validate({**DEFAULT_LORA, "seed": seed, **dict(lora or {})})


def result_from_dict(d: Mapping[str, Any]) -> MetricResult:
    """Inverse of ``MetricResult.to_dict(include_samples=True)``: :meth:`MetricResult.from_dict`."""
    return MetricResult.from_dict(d)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def downstream_bias(
    texts: Sequence[str],
    out_dir: str | os.PathLike[str],
    lora: LoRAConfig | Mapping[str, Any] | None = None,
    base_model: str | os.PathLike[str] | None = None,
    seed: int = 0,
    classifier: bool = True,
    n_resamples: int = 1000,
    eval_backend: Literal["llamacpp", "hf"] = "llamacpp",
    *,
    occupations: Sequence[str] | Mapping[str, str] | None = None,
    templates: Sequence[str] | None = None,
    classifier_templates: Sequence[str] | None = None,
    lo: float = 30.0,
    hi: float = 70.0,
    instruction: str = DEFAULT_INSTRUCTION,
    n_threads: int | None = None,
    encoder: Encoder | None = None,
    backend_kw: Mapping[str, Any] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, MetricResult]:
    """LoRA-fine-tune the base model on ``texts`` and measure the tuned model's bias.

    Steps: one :class:`~synthbias.train.sft.SFTExample` per text (prompt ``instruction``,
    completion the text), :func:`~synthbias.train.sft.train_lora` with ``lora`` over
    :data:`DEFAULT_LORA` (a dict overlays the defaults, with ``seed``; a ``LoRAConfig`` is used
    as is) into ``out_dir/adapter``; the adapter is loaded by
    :func:`~synthbias.train.adapter.load_finetuned` on llama.cpp (exported to a GGUF LoRA on
    the quantised base) or transformers (``eval_backend="hf"``, merged float32 weights);
    :func:`pronoun_preference` on it, and :func:`classifier_gender_bias` on ``texts`` when
    ``classifier`` (with ``on_insufficient="nan"``: a corpus without enough gendered texts gives
    a NaN result with ``meta["reason"]`` instead of failing the fine-tune).

    Cache: ``out_dir/train.json`` records the adapter's key (hash of the texts, the LoRA config
    without ``n_threads``, the base model's fingerprint and the instruction) and
    ``out_dir/downstream.json`` the results with the key of every evaluation setting. A rerun
    with the same key returns the stored results without loading a model; a changed evaluation
    setting reuses the adapter. Every result's ``meta["finetune"]`` holds the training record.
    ``n_threads`` bounds torch and llama.cpp threads; ``backend_kw`` goes to the backend.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of texts, not a single string")
    texts = [str(t) for t in texts]
    if not texts or not any(t.strip() for t in texts):
        raise ValueError("no texts to fine-tune on")
    if eval_backend not in ("llamacpp", "hf"):
        raise ValueError(f"eval_backend must be 'llamacpp' or 'hf', got {eval_backend!r}")
    if eval_backend == "llamacpp" and base_model is not None:
        if not (Path(base_model).is_file() and str(base_model).endswith(".gguf")):
            raise ValueError(
                "eval_backend='llamacpp' needs a GGUF base model (or None for the embedded one); "
                f"got {base_model}; use eval_backend='hf' for an HF checkpoint folder"
            )
    cfg = _lora_config(lora, seed)
    if n_threads is not None and cfg.n_threads is None:
        cfg = cfg.model_copy(update={"n_threads": n_threads})
    # settings fixed early so a bad template or occupation fails before training
    occ = select_occupations(occupations, lo, hi)
    tmpls = validate_templates(
        templates if templates is not None else default_pronoun_templates(), "pronoun"
    )
    ctmpls = validate_templates(
        classifier_templates
        if classifier_templates is not None
        else default_classifier_templates(),
        "classifier",
    )
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    adapter_dir = out / _ADAPTER_DIR
    corpus_sha = texts_hash(texts)
    train_cfg = cfg.model_dump(exclude={"n_threads"})
    adapter_key = _sha(
        {
            "v": _CACHE_VERSION,
            "texts": corpus_sha,
            "config": train_cfg,
            "base": _base_identity(base_model),
            "instruction": instruction,
        }
    )
    eval_key = _sha(
        {
            "adapter": adapter_key,
            "eval_backend": eval_backend,
            "occupations": occ,
            "templates": tmpls,
            "classifier_templates": ctmpls if classifier else None,
            "lo": lo,
            "hi": hi,
            "n_resamples": n_resamples,
            "seed": seed,
            "classifier": classifier,
            "encoder": getattr(encoder, "model_id", None) if encoder is not None else None,
        }
    )
    cached = _read_json(out / _RESULTS_FILE)
    if cached and cached.get("eval_key") == eval_key and cached.get("results"):
        log.info("downstream_bias: reusing results in %s", out)

        # canonical_keys: a cache written before the metric rename (``downstream.*``)
        return {k: result_from_dict(v) for k, v in canonical_keys(cached["results"]).items()}

    record = _read_json(out / _TRAIN_FILE)
    if not (
        record
        and record.get("adapter_key") == adapter_key
        and (adapter_dir / "adapter_config.json").is_file()
    ):
        examples = [
            sft.SFTExample(instruction, t, meta={"source": "corpus"}) for t in texts if t.strip()
        ]
        t0 = time.perf_counter()
        res = sft.train_lora(examples, cfg, adapter_dir, base_model, progress=progress)
        record = {
            "adapter_key": adapter_key,
            "texts_sha256": corpus_sha,
            "n_texts": len(examples),
            "config": train_cfg,
            "base_model": str(base_model) if base_model is not None else None,
            "instruction": instruction,
            "steps": res.steps,
            "batch_size": cfg.batch_size,
            "n_tokens": res.n_tokens,
            "first_loss": res.losses[0] if res.losses else None,
            "final_loss": float(np.mean(res.losses[-3:])) if res.losses else None,
            "train_seconds": res.seconds,
            "seconds": time.perf_counter() - t0,
        }
        _write_json(out / _TRAIN_FILE, record)
    else:
        log.info("downstream_bias: reusing the adapter in %s", adapter_dir)

    results = _evaluate(
        adapter_dir,
        eval_backend,
        base_model,
        occ,
        tmpls,
        lo,
        hi,
        n_resamples,
        seed,
        n_threads,
        backend_kw,
    )
    if classifier:
        results.update(
            classifier_gender_bias(
                texts, occ, ctmpls, lo, hi, n_resamples, encoder, seed, on_insufficient="nan"
            )
        )
    keys = ("adapter_key", "texts_sha256", "n_texts", "steps", "batch_size", "n_tokens")
    finetune = {k: record.get(k) for k in keys}
    finetune.update(
        {
            "first_loss": record.get("first_loss"),
            "final_loss": record.get("final_loss"),
            "adapter_dir": str(adapter_dir),
            "eval_backend": eval_backend,
        }
    )
    for r in results.values():
        r.meta["finetune"] = finetune
    _write_json(
        out / _RESULTS_FILE,
        {
            "version": _CACHE_VERSION,
            "eval_key": eval_key,
            "adapter_key": adapter_key,
            "results": {k: r.to_dict(include_samples=True) for k, r in results.items()},
        },
    )
    # the stored form is what a rerun returns: return the same (NaN-clean) objects now
    return {k: result_from_dict(r.to_dict(include_samples=True)) for k, r in results.items()}


def _evaluate(
    adapter_dir: Path,
    eval_backend: str,
    base_model: str | os.PathLike[str] | None,
    occ: dict[str, str],
    tmpls: list[str],
    lo: float,
    hi: float,
    n_resamples: int,
    seed: int,
    n_threads: int | None,
    backend_kw: Mapping[str, Any] | None,
) -> dict[str, MetricResult]:

    kw: dict[str, Any] = dict(backend_kw or {})
    if base_model is not None:
        kw.setdefault("model_path", base_model)
    if eval_backend == "llamacpp":
        kw.setdefault("n_ctx", 128)
        if n_threads is not None:
            kw.setdefault("n_threads", n_threads)
    backend = load_finetuned(adapter_dir, eval_backend, **kw)
    try:
        if eval_backend == "hf" and n_threads is not None:
            import torch

            prev = torch.get_num_threads()
            torch.set_num_threads(n_threads)
            try:
                return pronoun_preference(backend, occ, tmpls, lo, hi, n_resamples, seed)
            finally:
                torch.set_num_threads(prev)
        return pronoun_preference(backend, occ, tmpls, lo, hi, n_resamples, seed)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


__all__ = [
    "CLASSIFIER_RATE",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_LORA",
    "GenderMasker",
    "InsufficientGenderedTextsError",
    "PREFERENCE",
    "PRONOUNS",
    "WIN_RATE",
    "classifier_gender_bias",
    "default_classifier_templates",
    "default_pronoun_templates",
    "downstream_bias",
    "pronoun_preference",
    "result_from_dict",
    "generation_openings",
    "sample_occupations",
    "seed_overlap",
    "select_occupations",
    "texts_hash",
    "validate_templates",
]


METRIC_FAMILIES.register(
    "probe",
    downstream_bias,
    title="Pronoun probe: a model LoRA-tuned on the corpus",
    corpus=False,
    orientations={
        PREFERENCE: STEREO,
        WIN_RATE: Orientation(1, 0.5),
        CLASSIFIER_RATE: Orientation(1, 0.5),
    },
)
