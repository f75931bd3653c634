"""Item builders: the default tasks' data, generated from our own templates and the lexicon.

Every builder returns the task's whole item *pool* in a fixed order (no randomness beyond a fixed
``pool_seed``); :meth:`Task.items` then draws a seeded, balanced sample. A row is a dict of
fields for the prompt plus reserved keys: ``id``, ``label`` (gold option, classification),
``group`` ("axis:group" where a group comes from the lexicon), ``stratum`` (what sampling
balances over) and ``cluster`` (rows that must be sampled together: the counterfactual variants
of one sentence or profile, so group comparisons stay paired).

Group terms are checked against the lexicon (the rendered text must mention the intended group),
so a template edit cannot silently signal the wrong group.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from synthbias.core.yaml import load_strict, yaml_error_message
from synthbias.lexicon import Lexicon, OccupationTable, load_lexicon
from synthbias.tasks.common import TEMPLATES_DIR, TaskError
from synthbias.tasks.parsers import prepare_coreference

Row = dict[str, Any]


@dataclass(frozen=True)
class Builder:
    """A registered item builder and the fields its rows carry (checked against prompts)."""

    fn: Callable[[dict[str, Any]], list[Row]]
    fields: tuple[str, ...]


BUILDERS: dict[str, Builder] = {}


def builder(*fields: str) -> Callable[[Callable[[dict[str, Any]], list[Row]]], Any]:
    def wrap(fn: Callable[[dict[str, Any]], list[Row]]) -> Callable[[dict[str, Any]], list[Row]]:
        BUILDERS[fn.__name__] = Builder(fn, (*fields, "id", "label", "group"))
        return fn

    return wrap


# ------------------------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=1)
def occupation_table() -> OccupationTable:
    table = load_lexicon().axis("gender").occupations
    assert table is not None
    return table


def _templates(params: dict[str, Any], default: str) -> dict[str, Any]:
    path = Path(params.get("templates", TEMPLATES_DIR / default))
    return _read_templates(path.resolve())


@functools.lru_cache(maxsize=32)
def _read_templates(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TaskError(f"{path}: template file not found")
    try:
        data = load_strict(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaskError(yaml_error_message(path, exc)) from exc
    if not isinstance(data, dict):
        raise TaskError(f"{path}: top level must be a mapping")
    data["__path__"] = str(path)
    return data


_A_AN = re.compile(r"\b([Aa])(n?) (?=(\w+))")
_AN_WORDS = ("hon", "hour", "heir")
_A_WORDS = ("uni", "use", "usu", "eu", "one", "once", "u.s")


def fix_articles(text: str) -> str:
    """'a Asian' -> 'an Asian', 'an Christian' -> 'a Christian' (after filling templates)."""

    def repl(m: re.Match[str]) -> str:
        word = m.group(3).lower()
        vowel = word[:1] in "aeiou" or word[:1] in "8" or word in ("11", "18")
        if word.startswith(_AN_WORDS):
            vowel = True
        elif word.startswith(_A_WORDS):
            vowel = False
        return f"{m.group(1)}{'n' if vowel else ''} "

    return _A_AN.sub(repl, text)


def _check_mentions(lex: Lexicon, axis: str, group: str, text: str, where: str) -> None:
    counts = lex.axis(axis).count_groups(text)
    if counts.get(group, 0) < 1:
        found = {g: c for g, c in counts.items() if c}
        raise TaskError(
            f"{where}: {text!r} does not mention {axis}:{group} by the lexicon (found {found})"
        )


def _selected(params: dict[str, Any], key: str, available: list[str]) -> list[str]:
    chosen = params.get(key)
    if chosen is None:
        return available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise TaskError(f"params.{key}: unknown {unknown}; available: {available}")
    return list(chosen)


# ------------------------------------------------------------------------- 1 stereotypes
@builder("text", "axis", "target", "term")
def stereotype_statements(params: dict[str, Any]) -> list[Row]:
    """Stereotype / anti-stereotype twins (one cluster each), balanced over axes.

    params: ``templates`` (file), ``axes`` (subset of axes).
    """
    data = _templates(params, "stereotypes.yaml")
    lex = load_lexicon()
    statements = data["statements"]
    axes = _selected(params, "axes", list(dict.fromkeys(s["axis"] for s in statements)))
    rows: list[Row] = []
    for i, s in enumerate(statements):
        if s["axis"] not in axes:
            continue
        target = f"{s['axis']}:{s['group']}"
        for term in s["terms"]:
            cluster = f"st{i:02d}-{term}"
            for label, key in (("stereotype", "stereotype"), ("anti_stereotype", "anti")):
                text = s[key].format(term=term)
                _check_mentions(lex, s["axis"], s["group"], text, data["__path__"])
                rows.append(
                    {
                        "id": f"{cluster}-{key}",
                        "text": text,
                        "axis": s["axis"],
                        "target": target,
                        "term": term,
                        "label": label,
                        "group": target,
                        "stratum": s["axis"],
                        "cluster": cluster,
                    }
                )
    return rows


# ------------------------------------------------------------------------- 2 toxicity
@builder("text", "identity")
def identity_toxicity(params: dict[str, Any]) -> list[Row]:
    """Dixon-style templates x words x identities; a cluster is one template+word, all identities.

    params: ``templates`` (file), ``identities`` ({"axis:group": term}, default from the file).
    """
    data = _templates(params, "toxicity.yaml")
    lex = load_lexicon()
    identities: dict[str, str] = params.get("identities") or data["identities"]
    for key, term in identities.items():
        axis, _, group = key.partition(":")
        _check_mentions(lex, axis, group, f"{term} person", data["__path__"])
    rows: list[Row] = []
    for kind, templates in data["templates"].items():
        for t_i, template in enumerate(templates):
            for label in ("toxic", "not_toxic"):
                for word in data["words"][kind][label]:
                    cluster = f"{kind}{t_i}-{word}"
                    for key, term in identities.items():
                        text = fix_articles(template.format(identity=term, word=word))
                        rows.append(
                            {
                                "id": f"{cluster}-{key}",
                                "text": text,
                                "identity": term,
                                "label": label,
                                "group": key,
                                "stratum": label,
                                "cluster": cluster,
                            }
                        )
    return rows


# ------------------------------------------------------------------------- 3 coreference
@builder(
    "sentence",
    "occupation",
    "participant",
    "pronoun",
    "gender",
    "condition",
    "occupation_np",
    "participant_np",
)
def winogender_style(params: dict[str, Any]) -> list[Row]:
    """Templates x gender-coded occupations x {he, she}; a cluster is one sentence's he and she
    variant (one pro-, one anti-stereotypical), balanced over the answer.

    params: ``templates`` (file), ``lo``/``hi`` (percent-women thresholds, 30/70),
    ``occupations`` (names; default every coded occupation of the table).
    """
    data = _templates(params, "coreference.yaml")
    lo, hi = float(params.get("lo", 30.0)), float(params.get("hi", 70.0))
    table = occupation_table()
    coded = [o.name for o in table if o.code(lo, hi) != "neutral"]
    occupations = _selected(params, "occupations", coded)
    rows: list[Row] = []
    for t_i, t in enumerate(data["templates"]):
        for occ in occupations:
            for pronoun in ("he", "she"):
                sentence = t["sentence"].format(
                    occupation=occ, participant=t["participant"], pronoun=pronoun
                )
                row = prepare_coreference(
                    {
                        "id": f"t{t_i}-{occ}-{pronoun}",
                        "sentence": fix_articles(sentence),
                        "occupation": occ,
                        "participant": t["participant"],
                        "pronoun": pronoun,
                        "label": t["answer"],
                    },
                    {"lo": lo, "hi": hi},
                )
                # he/she variants of one sentence: one pro, one anti (coded occupations)
                row["stratum"] = str(row["label"])
                row["cluster"] = f"t{t_i}-{occ}"
                rows.append(row)
    return rows


# ------------------------------------------------------------------------- 4 BBQ
@builder(
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "context_condition",
    "question_polarity",
    "target_loc",
    "unknown_loc",
    "category",
)
def bbq_templates(params: dict[str, Any]) -> list[Row]:
    """BBQ-style items: per template, pair and order a cluster of 6 items.

    The 6: the ambiguous context with the negative and the non-negative question (gold:
    unknown), and the disambiguated context in both assignments (the target did the negative
    thing, or the other person did) with both questions. ``target_loc`` is the biased answer:
    the target group for a negative question, the other group for a non-negative one (BBQ).
    params: ``templates`` (file), ``axes`` (subset).
    """
    data = _templates(params, "bbq.yaml")
    lex = load_lexicon()
    templates = data["templates"]
    axes = _selected(params, "axes", list(dict.fromkeys(t["axis"] for t in templates)))
    unknowns = data["unknown"]
    rows: list[Row] = []
    c_i = 0
    for t_i, t in enumerate(templates):
        if t["axis"] not in axes:
            continue
        for p_i, (target, other) in enumerate(t["pairs"]):
            _check_mentions(lex, t["axis"], t["target"], target, data["__path__"])
            _check_mentions(lex, t["axis"], t["other"], other, data["__path__"])
            for order in (0, 1):
                a, b = (target, other) if order == 0 else (other, target)
                unk_loc = c_i % 3
                people = [f"the {a}", f"the {b}"]
                answers = people[:unk_loc] + [unknowns[c_i % len(unknowns)]] + people[unk_loc:]
                loc = {target: answers.index(f"the {target}"), other: answers.index(f"the {other}")}
                cluster = f"bbq{t_i:02d}-p{p_i}-o{order}"
                ambig = fix_articles(t["context"].format(a=a, b=b))
                variants: list[tuple[str, str, str | None]] = [("ambig", ambig, None)]
                for x, y in ((target, other), (other, target)):
                    dis = fix_articles(t["disambig"].format(x=x, y=y))
                    variants.append(("disambig", f"{ambig} {dis}", x))
                for v_i, (cond, context, x) in enumerate(variants):
                    for polarity in ("neg", "nonneg"):
                        question = t["negative"] if polarity == "neg" else t["nonnegative"]
                        if x is None:
                            gold = unk_loc
                        else:
                            y = other if x == target else target
                            gold = loc[x] if polarity == "neg" else loc[y]
                        biased = loc[target] if polarity == "neg" else loc[other]
                        rows.append(
                            {
                                "id": f"{cluster}-v{v_i}-{polarity}",
                                "context": context,
                                "question": question,
                                "ans0": answers[0],
                                "ans1": answers[1],
                                "ans2": answers[2],
                                "context_condition": cond,
                                "question_polarity": polarity,
                                "target_loc": biased,
                                "unknown_loc": unk_loc,
                                "category": t["axis"],
                                "label": f"ans{gold}",
                                "group": t["axis"],
                                "stratum": t["axis"],
                                "cluster": cluster,
                            }
                        )
                c_i += 1
    return rows


# ------------------------------------------------------------------------- 5 topics
@builder("text", "topic")
def topic_templates(params: dict[str, Any]) -> list[Row]:
    """Topic sentences: every template with up to ``max_per_template`` filler combinations."""
    data = _templates(params, "topics.yaml")
    cap = int(params.get("max_per_template", 8))
    rows: list[Row] = []
    for topic, spec in data["topics"].items():
        slots: dict[str, list[str]] = spec.get("slots", {})
        for t_i, template in enumerate(spec["templates"]):
            names = [n for n in slots if "{" + n + "}" in template]
            combos = list(itertools.product(*(slots[n] for n in names)))[:cap] if names else [()]
            for c_i, combo in enumerate(combos):
                text = template.format(**dict(zip(names, combo, strict=True)))
                rows.append(
                    {
                        "id": f"{topic}-{t_i}-{c_i}",
                        "text": fix_articles(text),
                        "topic": topic,
                        "label": topic,
                        "group": topic,
                        "stratum": topic,
                    }
                )
    return rows


# ------------------------------------------------------------------------- 6/7 profiles
@builder("profile", "job", "axis", "signal", "name")
def counterfactual_profiles(params: dict[str, Any]) -> list[Row]:
    """Candidate profiles, one cluster per (base profile, axis) holding every group's variant.

    Gender is signalled by first names (the ``n_names`` most frequent census names with at
    least ``name_threshold`` of bearers one sex, default 0.9); other axes by a signal line with
    a lexicon term, under a gender-ambiguous first name. params: ``templates``, ``axes``,
    ``n_names``, ``name_threshold``.
    """
    data = _templates(params, "profiles.yaml")
    lex = load_lexicon()
    signals: dict[str, Any] = data["signals"]
    axes = _selected(params, "axes", list(signals))
    threshold = float(params.get("name_threshold", 0.9))
    n_names = int(params.get("n_names", 12))
    gender_axis = lex.axis("gender")
    assert gender_axis.names is not None
    by_gender = gender_axis.names.by_gender(threshold)
    matchable = set(gender_axis.name_groups_for(threshold))
    names = {g: [n for n in by_gender[g] if n in matchable][:n_names] for g in ("female", "male")}
    neutral = data["neutral_names"]
    for n in neutral:
        if gender_axis.names.gender(n, threshold) not in ("ambiguous", None):
            raise TaskError(f"{data['__path__']}: neutral name {n!r} is not gender-ambiguous")
    surnames = data["surnames"]
    rows: list[Row] = []
    for b_i, base in enumerate(data["bases"]):
        surname = surnames[b_i % len(surnames)]
        for axis in axes:
            sig = signals[axis]
            cluster = f"cv{b_i:02d}-{axis}"
            if "names" in sig:
                variants = [
                    (group, f"{names[g][b_i % len(names[g])]} {surname}", "")
                    for group, g in sig["names"].items()
                ]
            else:
                name = f"{neutral[b_i % len(neutral)]} {surname}"
                variants = []
                for group, term in sig["terms"].items():
                    _check_mentions(lex, axis, group, str(term), data["__path__"])
                    variants.append((group, name, sig["line"].format(term=term)))
            for group, name, line in variants:
                lines = [f"Name: {name}"]
                if line:
                    lines.append(line)
                lines += [
                    f"Position applied for: {base['job']}",
                    f"Experience: {base['experience']}",
                    f"Education: {base['education']}",
                    f"Skills: {base['skills']}",
                ]
                rows.append(
                    {
                        "id": f"{cluster}-{group}",
                        "profile": "\n".join(lines),
                        "job": base["job"],
                        "axis": axis,
                        "signal": line or name,
                        "name": name,
                        "label": None,
                        "group": f"{axis}:{group}",
                        "stratum": axis,
                        "cluster": cluster,
                    }
                )
    return rows


# ------------------------------------------------------------------------- 8 stories
@builder("subject", "term", "occupation", "axis")
def story_prompts(params: dict[str, Any]) -> list[Row]:
    """ "a {term} {occupation}" subjects; one cluster per (occupation, axis) with every group."""
    data = _templates(params, "stories.yaml")
    lex = load_lexicon()
    terms: dict[str, dict[str, str]] = data["terms"]
    axes = _selected(params, "axes", list(terms))
    occupations = _selected(params, "occupations", list(data["occupations"]))
    rows: list[Row] = []
    for occ in occupations:
        for axis in axes:
            cluster = f"{occ}-{axis}"
            for group, term in terms[axis].items():
                subject = fix_articles(f"a {term} {occ}")
                # the term itself (colour words count only before listed person nouns)
                _check_mentions(lex, axis, group, f"{term} person", data["__path__"])
                rows.append(
                    {
                        "id": f"{cluster}-{group}",
                        "subject": subject,
                        "term": term,
                        "occupation": occ,
                        "axis": axis,
                        "label": None,
                        "group": f"{axis}:{group}",
                        "stratum": axis,
                        "cluster": cluster,
                    }
                )
    return rows


# ------------------------------------------------------------------------- 9 pronouns
@builder("text", "occupation", "code", "pct_female")
def occupation_prompts(params: dict[str, Any]) -> list[Row]:
    """Sentence openings about gender-coded occupations (percent women <= lo or >= hi).

    Occupation x template is a crossed design: one cluster per occupation (all its templates),
    so resampling draws occupations, the unit the stereotype belongs to."""
    data = _templates(params, "pronouns.yaml")
    lo, hi = float(params.get("lo", 30.0)), float(params.get("hi", 70.0))
    table = occupation_table()
    coded = [o.name for o in table if o.code(lo, hi) != "neutral"]
    occupations = _selected(params, "occupations", coded)
    rows: list[Row] = []
    for t_i, template in enumerate(data["templates"]):
        for occ in occupations:
            o = table[occ]
            code = o.code(lo, hi)
            rows.append(
                {
                    "id": f"p{t_i}-{occ}",
                    "text": fix_articles(template.format(occupation=occ)),
                    "occupation": occ,
                    "code": code,
                    "pct_female": o.pct_female,
                    "label": None,
                    "group": code,
                    "stratum": code,
                    "cluster": f"occ-{occ}",
                }
            )
    return rows


# ------------------------------------------------------------------------- 10 instructions
_OPS = {"+": ("plus", lambda a, b: a + b), "-": ("minus", lambda a, b: a - b)}
_OPS["*"] = ("times", lambda a, b: a * b)


@builder("instruction", "gold", "type", "case_sensitive")
def instructions(params: dict[str, Any]) -> list[Row]:
    """Verifiable instructions, ``per_type`` of each type from a fixed ``pool_seed``."""
    data = _templates(params, "instructions.yaml")
    per_type = int(params.get("per_type", 16))
    rng = np.random.default_rng(int(params.get("pool_seed", 0)))
    types = _selected(params, "types", [k for k in data if not k.startswith("__")])
    rows: list[Row] = []

    def add(kind: str, k: int, instruction: str, gold: str, case: bool = False) -> None:
        rows.append(
            {
                "id": f"{kind}-{k:02d}",
                "instruction": instruction,
                "gold": gold,
                "type": kind,
                "case_sensitive": case,
                "label": None,
                "group": kind,
                "stratum": kind,
            }
        )

    for kind in types:
        spec = data[kind]
        for k in range(per_type):
            if kind == "uppercase":
                word = spec["words"][k % len(spec["words"])]
                add(kind, k, spec["prompt"].format(word=word), word.upper(), case=True)
            elif kind == "repeat":
                word = spec["words"][k % len(spec["words"])]
                count = int(spec["counts"][k % len(spec["counts"])])
                gold = " ".join([word] * count)
                add(kind, k, spec["prompt"].format(word=word, count=count), gold)
            elif kind == "capital":
                country, city = list(spec["capitals"].items())[k % len(spec["capitals"])]
                add(kind, k, spec["prompt"].format(country=country), city)
            elif kind == "arithmetic":
                op = spec["operations"][k % len(spec["operations"])]
                a, b = (int(x) for x in rng.integers(2, int(spec["max_operand"]) + 1, size=2))
                a, b = max(a, b), min(a, b)
                word, fn = _OPS[op]
                add(kind, k, spec["prompt"].format(a=a, op=word, b=b), str(fn(a, b)))
            elif kind == "reverse":
                words = [str(w) for w in rng.choice(spec["words"], size=3, replace=False)]
                add(kind, k, spec["prompt"].format(words=" ".join(words)), " ".join(words[::-1]))
            else:
                raise TaskError(f"{data['__path__']}: unknown instruction type {kind!r}")
    return rows
