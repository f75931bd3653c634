"""The held-out pronoun probe of the mitigation study, at equal training budgets.

Why: a mitigation is for the *model* trained on the data, so every strategy's headline is the
pronoun preference (:func:`synthbias.studies.probe.pronoun_preference`, oriented: positive =
the stereotyped pronoun is more likely) of a model LoRA-tuned on the data, measured on probe
contexts no strategy edits. In the recursive study that data is the generator's next-generation
corpus (the raw output written after the mitigated generation; a swap or contrastive edit is
never scored on the texts it edited). Every arm trains the same number of optimizer steps with
the same batch size (``budget: steps``), so a corpus doubled by contrastive augmentation gets no
extra training; ``budget: epochs`` trains each arm for the same number of passes instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.generate import load_backend
from synthbias.studies.probe import (
    DEFAULT_LORA,
    PREFERENCE,
    downstream_bias,
    probe_set,
    pronoun_preference,
)


def lora_settings(probe: Any) -> dict[str, Any]:
    """LoRA settings of the probe model: :data:`DEFAULT_LORA` overlaid by ``probe`` (a
    ``FinetuneConfig``), without a step cap (the budget sets it)."""
    s = {**DEFAULT_LORA, **probe.lora_settings()}
    s.pop("max_steps", None)
    return s


def step_budget(
    n_examples: Mapping[str, int], lora: Mapping[str, Any], budget: str, steps: int | None = None
) -> dict[str, dict[str, Any]]:
    """Per arm: optimizer steps and batch size under ``budget``.

    ``steps``: every arm gets ``steps`` (default: the baseline's ``epochs x ceil(n / batch)``,
    the baseline being the arm ``"none"``, else the smallest); ``epochs``: each arm its own
    ``epochs x ceil(n / batch)``.
    """
    if budget not in ("steps", "epochs"):
        raise ValueError(f"mitigation.budget must be 'steps' or 'epochs', got {budget!r}")
    if not n_examples:
        raise ValueError("no arms to budget")
    bs, epochs = int(lora["batch_size"]), int(lora["epochs"])

    def own(n: int) -> int:
        return epochs * math.ceil(n / bs)

    base_n = n_examples.get("none", min(n_examples.values()))
    common = steps if steps is not None else own(base_n)
    return {
        arm: {
            "budget": budget,
            "steps": common if budget == "steps" else own(n),
            "batch_size": bs,
            "n_examples": n,
        }
        for arm, n in n_examples.items()
    }


def train_and_probe(
    texts: Sequence[str],
    out_dir: Path,
    lora: Mapping[str, Any],
    steps: int,
    seed: int,
    measure: Any,
) -> dict[str, Any]:
    """LoRA-tune the embedded model on ``texts`` for exactly ``steps`` optimizer steps and probe
    it; returns the per-occupation and per-template preferences and the training record."""
    occ, tmpls, lo, hi = probe_set(measure)
    res = downstream_bias(
        list(texts),
        out_dir,
        lora={**lora, "max_steps": steps, "seed": seed},
        seed=seed,
        classifier=False,
        n_resamples=measure.n_resamples,
        occupations=occ,
        templates=tmpls,
        lo=lo,
        hi=hi,
    )[PREFERENCE]
    ft = res.meta.get("finetune", {})
    return {
        "per_sample": list(res.per_sample),
        "per_template": dict(res.meta.get("per_template") or {}),
        "occupations": list(res.meta.get("occupations") or occ),
        "value": res.value,
        "steps": ft.get("steps"),
        "batch_size": ft.get("batch_size"),
        "n_tokens": ft.get("n_tokens"),
        "n_texts": ft.get("n_texts"),
    }


def untuned_probe(out_dir: Path, measure: Any, seed: int = 0) -> dict[str, Any]:
    """The probe on the untuned embedded model (what training added is measured against it);
    cached in ``out_dir/untuned.json`` by the probe set."""
    occ, tmpls, lo, hi = probe_set(measure)
    key = {"occupations": occ, "templates": tmpls, "lo": lo, "hi": hi}
    path = Path(out_dir) / "untuned.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored.get("key") == key:
            return stored["result"]

    backend = load_backend("llamacpp", n_ctx=128)
    try:
        res = pronoun_preference(backend, occ, tmpls, lo, hi, measure.n_resamples, seed)[PREFERENCE]
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()
    out = {
        "per_sample": list(res.per_sample),
        "value": res.value,
        "ci_low": res.ci.low if res.ci else None,
        "ci_high": res.ci.high if res.ci else None,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": key, "result": out}, indent=2))
    return out


def as_matrix(runs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``(n_seeds, n_probes)`` per-occupation preferences of one arm (rows in seed order)."""
    rows = [np.asarray(r["per_sample"], dtype=float) for r in runs]
    if len({len(r) for r in rows}) != 1:
        raise ValueError("seeds of one arm were probed on different occupation sets")
    return np.vstack(rows)


def strata(runs: Sequence[Mapping[str, Any]], measure: Any) -> list[str] | None:
    """Each probe's coded gender ("female" / "male"), in the order of the runs' per-sample
    preferences (``occupations``), for a bootstrap stratified by group; ``None`` when the runs
    do not name their occupations (then the bootstrap cannot stratify)."""
    occ = probe_set(measure)[0]
    names = list(runs[0].get("occupations") or [])
    if not names:
        return None
    missing = [o for o in names if o not in occ]
    if missing:
        raise ValueError(f"probe occupations {missing} are not in the probe set")
    return [occ[o] for o in names]
