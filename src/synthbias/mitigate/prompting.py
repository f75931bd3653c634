"""Prompt-engineering mitigation: a fairness instruction in every generation prompt.

The wording is data: for the recursive study each prompt template in ``prompts.yaml`` may have a
``<name>_fair`` twin with the instruction added; for augmentation the instruction is
``fairness_instruction`` in ``augment.yaml``, appended to each dimension's header.
"""

from __future__ import annotations

from synthbias.core.registry import MITIGATIONS
from synthbias.generate.prompts import prompt_templates
from synthbias.lexicon.bias_types import augment_templates


@MITIGATIONS.register(
    "prompt",
    pipelines=("equilibrium", "inheritance"),
    kind="prompt",
    description="a fairness instruction in the generation / augmentation prompts",
)
def fair_prompt_name(name: str) -> str:
    """The fairness variant of an equilibrium prompt template (``<name>_fair``)."""

    fair = name if name.endswith("_fair") else f"{name}_fair"
    if fair not in prompt_templates():
        raise ValueError(f"prompt template {name!r} has no fairness variant {fair!r}")
    return fair


def fairness_instruction() -> str:
    """The instruction added to augmentation prompts."""

    return str(augment_templates()["fairness_instruction"]).strip()
