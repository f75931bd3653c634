"""Prompt templates and their filling for recursive generation: seed templates, generation prompts
(``templates/prompts.yaml``), few-shot prompt building and the cleaning of a completion."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import yaml

from synthbias.generate.protocol import Message, Prompt

PRONOUNS: dict[str, dict[str, str]] = {
    "male": {"subj": "he", "obj": "him", "poss": "his", "refl": "himself"},
    "female": {"subj": "she", "obj": "her", "poss": "her", "refl": "herself"},
}


# --------------------------------------------------------------------------- templates


@cache
def seed_templates() -> list[dict[str, str]]:
    """Generation-0 templates shipped with the package (``generate/templates/seed_work.yaml``)."""
    text = resources.files("synthbias.generate").joinpath("templates/seed_work.yaml").read_text()
    return yaml.safe_load(text)


@cache
def prompt_templates() -> dict[str, dict[str, str]]:
    """Generation prompts shipped with the package (``generate/templates/prompts.yaml``)."""
    text = resources.files("synthbias.generate").joinpath("templates/prompts.yaml").read_text()
    return yaml.safe_load(text)


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def fill_template(template: str, occupation: str, gender: str | None, name: str | None) -> str:
    """Fill a seed template's slots; ``gender=None`` is only valid for neutral templates."""
    slots = {"occ": occupation, "a_occ": f"{_article(occupation)} {occupation}"}
    slots["Occ"] = occupation[:1].upper() + occupation[1:]
    slots["A_occ"] = slots["a_occ"][:1].upper() + slots["a_occ"][1:]
    if gender is not None:
        forms = PRONOUNS[gender]
        slots.update(forms)
        slots.update({f"{k[:1].upper()}{k[1:]}": v.capitalize() for k, v in forms.items()})
    if name is not None:
        slots["name"] = name
    text = template.format(**slots)
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- recursion

_NUMBERING = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


_PREAMBLE = re.compile(
    r"^(?:sure|okay|ok|certainly|of course|here(?:'s| is| are)|new text|text|what a|let's|"
    r"i (?:can|will|'ll|'d)|this is)\b[^:\n]*:\s*",
    re.IGNORECASE,
)


_ABBREV = re.compile(r"\b(?:Dr|Mr|Mrs|Ms|Mx|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e)\.$")


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”']?(?=\s|$)")


def clean_completion(text: str, max_sentences: int = 2) -> str:
    """Reduce a raw completion to one short text.

    Small instruction models wrap their answer ("Here's a new text:\n\n\"…\"") and run on past
    the requested length. Keep the first paragraph that is not an introduction (ends with ':'),
    drop numbering, preambles and wrapping quotes, and keep at most ``max_sentences`` complete
    sentences (an unfinished last sentence is dropped when a complete one precedes it).
    """
    paras = [p.strip() for p in re.split(r"\n+", text.strip()) if p.strip()]
    chosen = ""
    for i, para in enumerate(paras):
        para = _NUMBERING.sub("", para).strip()
        if para.endswith(":") and i + 1 < len(paras):
            continue
        para = _PREAMBLE.sub("", para).strip()
        para = para.strip('"“”').strip()
        if para:
            chosen = para
            break
    if not chosen:
        return ""
    ends = [
        m.end() for m in _SENTENCE_END.finditer(chosen) if not _ABBREV.search(chosen[: m.end()])
    ]
    if ends:
        cut = ends[min(max_sentences, len(ends)) - 1]
        chosen = chosen[:cut]
    return chosen.strip().strip('"“”').strip()


OCCUPATION_SLOTS = ("{occ}", "{a_occ}", "{Occ}", "{A_occ}")


def uses_occupation(template: Mapping[str, Any]) -> bool:
    """Whether a prompt template names an occupation for each new text (an ``{occ}`` slot)."""
    parts = [str(template.get(k, "")) for k in ("completion", "start", "user", "system")]
    return any(slot in part for part in parts for slot in OCCUPATION_SLOTS)


def _occupation_slots(occupation: str | None) -> dict[str, str]:
    if occupation is None:
        return {}
    a_occ = f"{_article(occupation)} {occupation}"
    return {
        "occ": occupation,
        "a_occ": a_occ,
        "Occ": occupation[:1].upper() + occupation[1:],
        "A_occ": a_occ[:1].upper() + a_occ[1:],
    }


def render_start(template: Mapping[str, Any], occupation: str | None = None) -> str:
    """A completion template's ``start`` (the words the new text begins with), slots filled."""
    if "completion" not in template:
        return ""
    return str(template.get("start", "")).format(**_occupation_slots(occupation))


def build_prompt(
    examples: Sequence[str], template: Mapping[str, Any], occupation: str | None = None
) -> Prompt:
    """Render a prompt template (see ``generate/templates/prompts.yaml``).

    A template with ``user`` (and optional ``system``) becomes chat messages, rendered later with
    the model's own chat template; one with ``completion`` becomes a raw few-shot text that the
    model continues (``{next}`` is the number of the text to write); a completion template's
    optional ``start`` is written after the number, and the model continues the text from it
    (:func:`next_generation` puts it back in front of the completion). ``occupation`` fills the
    slots ``{occ}``, ``{a_occ}``, ``{Occ}``, ``{A_occ}`` of templates that name the occupation
    of the text to write (see :func:`uses_occupation`).
    """
    if uses_occupation(template) and occupation is None:
        raise ValueError("this prompt template names an occupation: pass occupation=...")
    numbered = "\n".join(f"{i}. {t}" for i, t in enumerate(examples, start=1))
    slots = {"examples": numbered, "next": len(examples) + 1, **_occupation_slots(occupation)}
    if "completion" in template:
        text = template["completion"].format(**slots)
        start = render_start(template, occupation)
        return f"{text} {start}" if start else text
    if "user" not in template:
        raise ValueError("a prompt template needs a 'user' or a 'completion' entry")
    messages: list[Message] = []
    if template.get("system"):
        messages.append({"role": "system", "content": template["system"].format(**slots)})
    messages.append({"role": "user", "content": template["user"].format(**slots)})
    return messages
