"""A deterministic stand-in backend for unit tests: no model, no threads, instant.

Outputs are picked by hashing (prompt, seed, index), so a test can assert exact texts, and the
sentence pool deliberately carries gendered pronouns and occupations so downstream bias metrics
have something to find.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from synthbias.core.hashing import stable_hash
from synthbias.generate.protocol import Completion, Prompt, SamplingParams, TextLogprobs

#: Sentences about people at work; some gendered, some not, covering stereotyped occupations.
FAKE_SENTENCES: tuple[str, ...] = (
    "The nurse said she would finish her shift early.",
    "The engineer explained that he had fixed the bridge design.",
    "The doctor told the patient he would call back tomorrow.",
    "The teacher said she was proud of the class.",
    "The mechanic said he needed another hour on the car.",
    "The secretary mentioned that she had booked the meeting room.",
    "The programmer said he had shipped the release on time.",
    "The receptionist smiled and said she would let them know.",
    "The pilot announced that he expected a smooth landing.",
    "The librarian said she had found the missing book.",
    "The manager reviewed the budget with the team.",
    "The accountant checked the numbers twice before lunch.",
    "The scientist wrote up the results of the experiment.",
    "The chef prepared a new menu for the evening.",
    "The firefighter said they were ready for the next call.",
    "The cleaner finished the office before the staff arrived.",
)


def _stable_hash(*parts: object) -> int:
    """Process-independent hash (``hash()`` is salted per interpreter)."""
    return int(stable_hash(parts, 16), 16)


def _prompt_key(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return json.dumps([[m["role"], m["content"]] for m in prompt])


class FakeBackend:
    """Implements :class:`~synthbias.generate.protocol.Backend` with hashing instead of a model."""

    name = "fake"

    def __init__(self, sentences: Sequence[str] = FAKE_SENTENCES, model_id: str = "fake-v1"):
        if not sentences:
            raise ValueError("FakeBackend needs at least one sentence")
        self.sentences = tuple(sentences)
        self.model_id = model_id

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Completion]:
        """One pseudo-completion per prompt, a pure function of (prompt, seed, index, params)."""
        out: list[Completion] = []
        for i, prompt in enumerate(prompts):
            key = _prompt_key(prompt)
            if params.temperature == 0:  # greedy: same prompt, same answer, whatever the seed
                h = _stable_hash(key)
            else:
                h = _stable_hash(key, params.seed, i)
            words = self.sentences[h % len(self.sentences)].split(" ")
            finish: str = "stop"
            if len(words) > params.max_tokens:
                words, finish = words[: params.max_tokens], "length"
            text = " ".join(words)
            for stop in params.stop:
                cut = text.find(stop) if stop else -1
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            out.append(
                Completion(
                    text=text,
                    n_prompt_tokens=len(key.split()),
                    n_tokens=len(text.split()),
                    finish_reason=finish,  # type: ignore[arg-type]
                    seed=params.seed,
                )
            )
        return out

    def logprobs(self, texts: Sequence[str]) -> list[TextLogprobs]:
        """Whitespace tokens, each scored in [-8, -0.5) from a hash of (previous, token)."""
        out: list[TextLogprobs] = []
        for text in texts:
            tokens = text.split()
            ids = [_stable_hash("tok", t) % 50_000 for t in tokens]
            lps = []
            prev = "<s>"
            for tok in tokens:
                frac = (_stable_hash("lp", prev, tok) % 10_000) / 10_000
                lps.append(-0.5 - 7.5 * frac)
                prev = tok
            out.append(TextLogprobs(tokens=tokens, token_ids=ids, logprobs=lps))
        return out

    def close(self) -> None:
        """Nothing to free; present so callers can treat every backend alike."""

    def __enter__(self) -> FakeBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
