"""Token-based mitigation: a tag token marks where each training example came from.

Bias-inheritance paper, strategy 1: prefix every augmented example's prompt with a new special
token (``<|augmented|>``) and every real one with ``<|real|>``, so the model can attribute the
augmented data's style (and bias) to the tag. At inference the prompts carry the real tag
(``TaggedBackend``) or none. The tokens are added to the tokenizer and the embedding matrix is
resized by the trainer (``LoRAConfig.extra_special_tokens``); such adapters run in the
transformers backend (llama.cpp LoRA cannot grow the vocabulary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from synthbias.core.registry import MITIGATIONS
from synthbias.generate.protocol import Backend, Completion, Prompt, SamplingParams, TextLogprobs

DEFAULT_TAGS: dict[str, str] = {"real": "<|real|>", "augmented": "<|augmented|>"}


def tag_tokens(tags: Mapping[str, str] = DEFAULT_TAGS) -> list[str]:
    """The special tokens to add to the tokenizer (``LoRAConfig.extra_special_tokens``)."""
    return sorted(set(tags.values()))


class UnseenTagError(ValueError):
    """The inference tag never occurs in the training data (e.g. a ratio-1 mix has no real
    example, so a model evaluated with ``<|real|>`` would meet an untrained embedding)."""


@MITIGATIONS.register(
    "token",
    pipelines=("inheritance",),
    kind="training",
    description="source tags as new special tokens; evaluated with the real tag",
)
def tag_examples(
    examples: Sequence[Any],
    tags: Mapping[str, str] = DEFAULT_TAGS,
    inference_source: str | None = None,
) -> list[Any]:
    """Prefix each :class:`~synthbias.train.sft.SFTExample`'s prompt with its source's tag.

    The source is ``meta["source"]`` (``real`` / ``augmented``; anything else counts as
    augmented). Prompts are conditioned on, not trained, so the tag itself carries no loss.
    ``inference_source``: the source whose tag the model will be evaluated with (``"real"`` for
    :class:`TaggedBackend`'s default); an error (:class:`UnseenTagError`) when no example
    carries it. ``None`` (default): no check (the mitigation study checks its ratios itself).
    """
    out = []
    for ex in examples:
        src = ex.meta.get("source", "augmented")
        tag = tags.get(src, tags["augmented"])
        out.append(replace(ex, prompt=f"{tag}{ex.prompt}", meta={**ex.meta, "tag": tag}))
    if inference_source is not None and out:
        want = tags[inference_source]
        if not any(ex.meta["tag"] == want for ex in out):
            raise UnseenTagError(
                f"token mitigation: no training example carries the tag {want} the model is "
                f"evaluated with (no {inference_source!r} example, e.g. at bias ratio 1); "
                "compare it at mixed ratios (0 < r < 1)"
            )
    return out


class TaggedBackend:
    """Prefixes every prompt (raw text, or the first user message) with an inference tag."""

    def __init__(self, inner: Backend, tag: str = DEFAULT_TAGS["real"]) -> None:
        self.inner, self.tag = inner, tag
        self.name = inner.name
        self.model_id = f"{inner.model_id}+tag:{tag}"

    def _tagged(self, prompt: Prompt) -> Prompt:
        if isinstance(prompt, str):
            return f"{self.tag}{prompt}"
        msgs = [dict(m) for m in prompt]
        for m in msgs:
            if m["role"] == "user":
                m["content"] = f"{self.tag}{m['content']}"
                break
        return msgs  # type: ignore[return-value]

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        return self.inner.generate([self._tagged(p) for p in prompts], params)

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """Scores ``tag + text``; the tag's own token is dropped from the result."""
        n_tag = len(self.inner.tokenize(self.tag)) if hasattr(self.inner, "tokenize") else 1
        out = []
        for lp in self.inner.logprobs([f"{self.tag}{t}" for t in texts]):
            out.append(TextLogprobs(lp.tokens[n_tag:], lp.token_ids[n_tag:], lp.logprobs[n_tag:]))
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        if hasattr(self.inner, "close"):
            self.inner.close()
