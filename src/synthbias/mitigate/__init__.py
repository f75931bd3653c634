"""Mitigations, one module each: token, mask, loss (training time); swap (CDA), contrastive,
debiased (generator fine-tuning), prompting (data and prompt level). See the issue-5 docs in
README for which pipeline each applies to.

Each strategy registers itself in :data:`synthbias.core.registry.MITIGATIONS` (in its own module,
imported here) with the pipelines it applies to (``equilibrium``, ``inheritance``) and its kind,
which fixes how a pipeline calls it:

* ``data``: ``fn(records, settings, seed, *, bias_type=None, only_source=None) -> records`` edits
  a corpus (each generated corpus in the recursive study, the augmented part of a mix in the
  ratio study); ``settings`` is the pipeline's mitigation config block;
* ``prompt``: ``fn(template_name) -> template_name`` of the prompt variant to generate with (the
  ratio study adds :func:`~synthbias.mitigate.prompting.fairness_instruction` to its
  augmentation prompts instead);
* ``generator``: ``fn(records, settings, out_dir, *, prompt, k_shots, seed, base_model)`` tunes
  the generator on the seed corpora and returns its GGUF LoRA;
* ``training``: applied by the ratio study while it trains (the registered function transforms
  the training examples).

Config validation and the mitigation study's strategy lists read the registry
(:func:`strategy_names`). Registration order is application order: ``contrastive`` imports
``swap``, so swap edits a corpus before contrastive twins it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from synthbias.core.records import Record
from synthbias.core.registry import MITIGATIONS, Entry
from synthbias.mitigate import contrastive, debiased, loss, mask, prompting, swap, token

__all__ = [
    "apply_data",
    "check_strategies",
    "chosen",
    "contrastive",
    "debiased",
    "loss",
    "mask",
    "prompting",
    "strategy_names",
    "swap",
    "token",
]


def strategy_names(pipeline: str) -> tuple[str, ...]:
    """Every strategy registered for ``pipeline`` (``equilibrium`` or ``inheritance``)."""
    return MITIGATIONS.names(pipelines=pipeline)


def check_strategies(entries: list[str], pipeline: str, combine: bool = True) -> list[str]:
    """``entries`` if each names a strategy registered for ``pipeline`` (else a ``ValueError``
    listing them). ``combine``: an entry may stack strategies (``swap+prompt``) and the entries
    must be distinct (the mitigation study's arms)."""
    known = strategy_names(pipeline)
    for entry in entries:
        parts = entry.split("+") if combine else [entry]
        if not entry or any(p not in known for p in parts):
            raise ValueError(MITIGATIONS.unknown_message(entry, known))
    if combine and len(set(entries)) != len(entries):
        raise ValueError(f"strategies must be distinct, got {entries}")
    return entries


def chosen(strategies: Collection[str], pipeline: str, kind: str) -> list[Entry[Any]]:
    """The registered strategies of ``kind`` for ``pipeline`` among ``strategies``, in
    application order."""
    wanted = set(strategies)
    return [e for e in MITIGATIONS.entries(pipelines=pipeline, kind=kind) if e.name in wanted]


def apply_data(
    records: Sequence[Record],
    strategies: Collection[str],
    settings: Any,
    seed: int,
    *,
    pipeline: str,
    bias_type: str | None = None,
    only_source: str | None = None,
) -> list[Record]:
    """``records`` edited by every chosen ``data`` strategy of ``pipeline``, one after another."""
    out = list(records)
    for e in chosen(strategies, pipeline, "data"):
        out = e.obj(out, settings, seed, bias_type=bias_type, only_source=only_source)
    return out
