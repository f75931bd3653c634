"""Loss-based mitigation: down-weight biased augmented examples, and/or make twins agree.

Bias-inheritance paper, strategy 3, two composable parts:

* :func:`bias_weights` — each augmented example's loss weight is ``1 - strength * b`` where
  ``b`` in [0, 1] is its measured per-example bias (e.g. the augmentation check's per-text
  score: a generalising statement, a stereotyped role, a cold trait); real examples keep 1.
* :class:`ConsistencyLoss` — an extra loss term ``lam * mean((CE(x) - CE(swap(x)))^2)`` over
  the batch's examples, where ``swap(x)`` is the group-swapped twin: the model is penalised for
  finding a text more or less likely than the same text about the other group (counterfactual
  logit pairing, Garg et al. 2019, on sequence losses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from synthbias.core.registry import MITIGATIONS
from synthbias.lexicon.bias_types import get_bias_type
from synthbias.measure.bias_dimensions import dimension_scores
from synthbias.mitigate.swap import swap_bias_type
from synthbias.train.sft import SFTExample, collate, encode_example


def bias_weights(
    examples: Sequence[Any], scores: Sequence[float], strength: float = 1.0, floor: float = 0.0
) -> list[Any]:
    """Examples re-weighted by their per-example bias score (augmented ones only)."""
    if len(scores) != len(examples):
        raise ValueError(f"{len(scores)} scores for {len(examples)} examples")
    if not 0 <= strength <= 1:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    out = []
    for ex, b in zip(examples, scores, strict=True):
        if ex.meta.get("source") == "real" or b is None or np.isnan(b):
            out.append(ex)
            continue
        w = max(floor, 1.0 - strength * float(np.clip(b, 0.0, 1.0)))
        out.append(replace(ex, weight=ex.weight * w))
    return out


def example_bias_scores(records: Sequence[Any]) -> list[float]:
    """Per-record bias in [0, 1] from the augmentation check's per-text units.

    explicit: 1 for a generalising statement about the target group; implicit_role: 1 for a
    target-group text naming a stereotyped role; value: the negativity (−VADER, clipped to
    [0, 1]) of a target-group text; representation and real texts: 0.
    """

    scores = [0.0] * len(records)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(records):
        if r.source != "real" and r.meta.get("dimension") and r.meta.get("bias_type"):
            groups.setdefault((r.meta["bias_type"], r.meta["dimension"]), []).append(i)
    for (bt_name, dim), idx in groups.items():
        if dim == "representation":
            continue
        units, _ = dimension_scores([records[i].text for i in idx], get_bias_type(bt_name), dim)
        for i, u in zip(idx, units, strict=True):
            if dim == "explicit":
                scores[i] = float(u[0])
            elif dim == "implicit_role":
                scores[i] = float(u[0] == 1 and u[1] > 0)
            elif dim == "value":
                scores[i] = float(np.clip(-u[1], 0, 1)) if u[0] == 1 else 0.0
    return scores


class ConsistencyLoss:
    """Extra loss for :func:`synthbias.train.sft.train_lora`: twins should be equally likely.

    Each example's twin comes from ``meta["twin"]`` (a dict with ``prompt`` and
    ``completion``; see :func:`attach_twins`); examples without one are skipped.
    """

    def __init__(self, tokenizer: Any, cfg: Any, weight: float = 1.0) -> None:
        self.tokenizer, self.cfg, self.weight = tokenizer, cfg, weight

    def __call__(self, model: Any, batch: dict[str, Any], outputs: Any) -> Any:
        examples = batch["examples"]
        rows = [i for i, ex in enumerate(examples) if ex.meta.get("twin")]
        if not rows:
            return outputs.logits.sum() * 0.0
        ce_x = _per_example_ce(outputs.logits, batch["labels"])
        twins = [
            SFTExample(examples[i].meta["twin"]["prompt"], examples[i].meta["twin"]["completion"])
            for i in rows
        ]
        enc = [encode_example(self.tokenizer, t, self.cfg) for t in twins]
        pad = self.tokenizer.pad_token_id or 0
        ids, mask, labels = collate(enc, pad)
        out = model(input_ids=ids, attention_mask=mask)
        ce_t = _per_example_ce(out.logits, labels)
        return self.weight * ((ce_x[rows] - ce_t) ** 2).mean()


def _per_example_ce(logits: Any, labels: Any) -> Any:
    """Per-example mean CE *with* gradient (``sft_loss`` returns it detached)."""
    import torch.nn.functional as F

    targets = labels[:, 1:]
    lg = logits[:, :-1].float()
    ce = F.cross_entropy(
        lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none"
    ).view(targets.shape)
    counts = (targets != -100).sum(1).clamp(min=1)
    return ce.sum(1) / counts


def attach_twins(examples: Sequence[Any], bias_type: str | None = None) -> list[Any]:
    """Add ``meta["twin"]`` (group-swapped prompt and completion) for :class:`ConsistencyLoss`."""

    out = []
    for ex in examples:
        bt = bias_type or ex.meta.get("bias_type") or "gender"
        twin = {
            "prompt": swap_bias_type(ex.prompt, bt),
            "completion": swap_bias_type(ex.completion, bt),
        }
        if twin["completion"] == ex.completion:
            out.append(ex)
        else:
            out.append(replace(ex, meta={**ex.meta, "twin": twin}))
    return out


MITIGATIONS.register(
    "loss_weight",
    bias_weights,
    pipelines=("inheritance",),
    kind="training",
    description="augmented examples down-weighted by their measured bias",
)
MITIGATIONS.register(
    "loss_consistency",
    attach_twins,
    pipelines=("inheritance",),
    kind="training",
    description="a loss term that makes group-swapped twins equally likely",
)
