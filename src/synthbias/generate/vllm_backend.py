"""vLLM's offline engine behind the backend protocol (GPU users; ``pip install synthbias[vllm]``).

``vllm`` is imported only when the backend is built, so the package never needs it otherwise.
Prompts follow the same rules as the other backends: message lists are rendered with the model's
own chat template (the tokenizer's ``apply_chat_template``), raw strings are plain completion.
Request ``i`` of a call carries its own vLLM ``seed`` derived from ``(params.seed, i)`` (the same
derivation as the HTTP backend), so its sample does not depend on batch composition or on the
engine's scheduling. ``logprobs`` scores each text as the other backends do: the prefix token
(BOS, else EOS) followed by the text's tokens, using vLLM's ``prompt_logprobs``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthbias.core.hashing import dir_fingerprint
from synthbias.generate.models import model_fingerprint
from synthbias.generate.openai_http import request_seed
from synthbias.generate.protocol import Completion, Message, Prompt, SamplingParams, TextLogprobs


def _vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError(
            "the vllm backend needs vLLM and a GPU: pip install 'synthbias[vllm]'"
        ) from err
    return vllm


class VLLMBackend:
    """Batched generation and scoring on vLLM's ``LLM`` engine.

    Args:
        model_path: an HF checkpoint folder or model name vLLM can load locally, or a GGUF file
            (then ``tokenizer`` should name an HF tokenizer folder).
        tokenizer: tokenizer folder, when not next to the model.
        dtype: vLLM dtype (``auto``, ``float16``, ``bfloat16``, ``float32``).
        seed: engine seed (per-request seeds are set regardless).
        prefix_token_id: token conditioned on (not scored) in ``logprobs``; default BOS else EOS.
        **engine_kwargs: passed to ``vllm.LLM`` (``gpu_memory_utilization``,
            ``tensor_parallel_size``, ``max_model_len``...).
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        tokenizer: str | None = None,
        dtype: str = "auto",
        seed: int = 0,
        prefix_token_id: int | None = None,
        **engine_kwargs: Any,
    ) -> None:
        vllm = _vllm()
        if model_path is None:
            raise ValueError("the vllm backend needs model_path (an HF checkpoint or GGUF file)")
        self.model_path = str(Path(model_path).expanduser())
        self._vllm = vllm
        kwargs: dict[str, Any] = {"model": self.model_path, "dtype": dtype, "seed": seed}
        if tokenizer is not None:
            kwargs["tokenizer"] = tokenizer
        kwargs.update(engine_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        tok = self.tokenizer
        if prefix_token_id is not None:
            self.prefix_id = int(prefix_token_id)
        elif getattr(tok, "bos_token_id", None) is not None:
            self.prefix_id = int(tok.bos_token_id)
        elif getattr(tok, "eos_token_id", None) is not None:
            self.prefix_id = int(tok.eos_token_id)
        else:
            raise ValueError("tokenizer has neither BOS nor EOS; pass prefix_token_id")
        p = Path(self.model_path)
        if p.is_file():
            self.model_id = model_fingerprint(p)
        elif p.is_dir():
            self.model_id = dir_fingerprint(p)
        else:
            self.model_id = self.model_path

    def __repr__(self) -> str:
        return f"VLLMBackend(model_id={self.model_id!r})"

    def close(self) -> None:
        self.llm = None

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def render_chat(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            text, special = prompt, True
        else:
            text, special = self.render_chat(prompt), False  # the template writes BOS itself
        ids = list(self.tokenizer.encode(text, add_special_tokens=special))
        return ids or [self.prefix_id]

    def _sampling(self, params: SamplingParams, seed: int, **extra: Any) -> Any:
        return self._vllm.SamplingParams(
            n=1,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            seed=seed,
            stop=list(params.stop) or None,
            **extra,
        )

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        return self.generate_indexed(prompts, params, range(len(prompts)))

    def generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: Any = None,
    ) -> list[Completion]:
        """``generate`` where prompt ``j`` is request ``indices[j]`` of its call (for caches)."""
        if isinstance(prompts, str):
            raise TypeError("generate() takes a sequence of prompts, not a single string")
        inputs = [{"prompt_token_ids": self._prompt_ids(p)} for p in prompts]
        sps = [self._sampling(params, request_seed(params.seed, int(i))) for i in indices]
        outs = self.llm.generate(inputs, sampling_params=sps, use_tqdm=False)
        result = []
        for j, (inp, o) in enumerate(zip(inputs, outs, strict=True)):
            c = o.outputs[0]
            comp = Completion(
                text=c.text,
                n_prompt_tokens=len(inp["prompt_token_ids"]),
                n_tokens=len(c.token_ids),
                finish_reason="length" if c.finish_reason == "length" else "stop",
                seed=params.seed,
            )
            result.append(comp)
            if on_result is not None:
                on_result(j, comp)
        return result

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        if isinstance(texts, str):
            raise TypeError("logprobs() takes a sequence of texts, not a single string")
        seqs = [
            [self.prefix_id, *self.tokenizer.encode(t, add_special_tokens=False)] for t in texts
        ]
        sp = self._sampling(SamplingParams(max_tokens=1, temperature=0), 0, prompt_logprobs=0)
        outs = self.llm.generate(
            [{"prompt_token_ids": s} for s in seqs], sampling_params=sp, use_tqdm=False
        )
        result = []
        for seq, o in zip(seqs, outs, strict=True):
            plp = o.prompt_logprobs or []
            values = []
            for j in range(1, len(seq)):
                entry = plp[j] if j < len(plp) else None
                if not entry or seq[j] not in entry:
                    raise RuntimeError(f"vLLM returned no log-prob for prompt token {j}")
                lp = entry[seq[j]]
                values.append(float(getattr(lp, "logprob", lp)))
            result.append(
                TextLogprobs(
                    tokens=[self.tokenizer.decode([t]) for t in seq[1:]],
                    token_ids=list(seq[1:]),
                    logprobs=values,
                )
            )
        return result
