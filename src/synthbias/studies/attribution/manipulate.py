"""The arms of the factorial: one pool of generated texts, edited in one factor at a time.

Why edits of one pool instead of eight generations: an arm must differ from its neighbour in
the manipulated factor only. Writing each arm afresh would change every factor at once (new
texts, new topics, new people), so here every arm of a replicate starts from the same generated
texts and the same per-text random draws (:class:`Draws`), and each factor's level decides one
edit:

* **group data** (who appears, how often): the texts with the lowest ``u_side`` draws, half of
  them (balanced) or a ``target_share`` (skewed: the target group under-represented), are
  about the target group, the rest about the contrast group, by counterfactual swap of the
  same text (and its prompt), so valence and form are unchanged (a text that names no group
  term is left as written, in every arm);
* **values** (valence towards the groups): the sentence "This person is {trait}." is appended
  to every text, its trait warm for the half with the lowest ``u_valence`` draws and cold for
  the rest (balanced: independent of the group)
  or cold for the target group and warm for the contrast group (skewed); no group term is added
  and the form is the same at both levels;
* **distribution** (form, unrelated to any group): one group-free, sentiment-neutral sentence
  is appended to every text at both levels: in the real data's style and topics (real-like:
  the everyday activities of the synthbias-built real set, "Later that day, the neighbours
  ...") or one the generator wrote on an unrelated topic (its own style, length and topics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from synthbias.core.hashing import derive_seed
from synthbias.core.records import Record
from synthbias.lexicon.bias_types import augment_templates, get_bias_type
from synthbias.mitigate.swap import swap_bias_type
from synthbias.studies.attribution.config import FACTORS

#: Topics of the generator's own sentences (the distribution factor): none involves people.
FILLER_TOPICS: tuple[str, ...] = (
    "the weather this week",
    "a train timetable",
    "cooking rice",
    "a software update",
    "the city library opening hours",
    "planting tomatoes",
    "the ocean tides",
    "a mountain trail",
    "recycling paper",
    "a new bus route",
    "the phases of the moon",
    "a bicycle repair",
)


#: Openings and group-free subjects of the real-like sentences (varied, like the real set's own
#: openings, so the real-like arm is not tighter than the real data).
REAL_LIKE_OPENINGS: tuple[str, ...] = ("Later that day,", "Last week", "On Sunday", "After work,")
REAL_LIKE_SUBJECTS: tuple[str, ...] = ("the neighbours", "the family next door", "everyone")


def real_like_sentences() -> list[str]:
    """Group-free sentences in the real data's style and topics: the synthbias-built real set's
    openings and everyday activities, with a subject that names no group."""
    acts = augment_templates()["real"]["activities"]
    out = []
    for i, a in enumerate(acts):
        opening = REAL_LIKE_OPENINGS[i % len(REAL_LIKE_OPENINGS)]
        subject = REAL_LIKE_SUBJECTS[(i // len(REAL_LIKE_OPENINGS)) % len(REAL_LIKE_SUBJECTS)]
        out.append(f"{opening} {subject} {a}.")
    return out


def filler_prompt(topic: str) -> str:
    """A raw few-shot-free prompt for one sentence in the generator's own words on ``topic``."""
    return f"Here are some short sentences about {topic}, one per line.\n\n1."


@dataclass(frozen=True)
class Draws:
    """Per-text random draws of one replicate, shared by every arm: which group text *i*'s person
    belongs to, which valence and trait it gets, and which generator sentence it may carry."""

    u_side: np.ndarray
    u_valence: np.ndarray
    trait: np.ndarray
    filler: np.ndarray

    @classmethod
    def make(cls, n: int, seed: int) -> Draws:
        rng = np.random.default_rng(derive_seed(seed, "attribution-draws"))
        return cls(
            u_side=rng.random(n),
            u_valence=rng.random(n),
            trait=rng.integers(0, 1 << 30, n),
            filler=rng.permutation(n),
        )


def arm_name(levels: Mapping[str, int]) -> str:
    """``v1-g0-d1`` style name of an arm (values, group data, distribution levels)."""
    return "-".join(f"{f[0]}{int(levels[f])}" for f in FACTORS)


def _lowest(u: np.ndarray, k: int) -> np.ndarray:
    """A boolean mask of the ``k`` smallest entries of ``u``."""
    mask = np.zeros(len(u), dtype=bool)
    mask[np.argsort(u, kind="stable")[:k]] = True
    return mask


def _sentence(text: str) -> str:
    t = text.strip()
    return t if t[-1:] in ".!?" else f"{t}."


def manipulate(
    pool: Sequence[Record],
    filler: Sequence[str],
    levels: Mapping[str, int],
    real_like: Sequence[str],
    *,
    bias_type: str,
    target_share: float,
    draws: Draws,
) -> list[Record]:
    """One arm's augmented set: ``pool`` (the replicate's generated texts, each with
    ``meta["side"]``) edited at ``levels`` (0/1 per factor of :data:`FACTORS`); ``filler``
    are the generator's sentences, ``real_like`` the real-like ones (distribution factor)."""
    if len(draws.u_side) < len(pool):
        raise ValueError(f"{len(draws.u_side)} draws for {len(pool)} texts")
    if not filler or not real_like:
        raise ValueError("the distribution factor needs generator (filler) and real-like sentences")
    bt = get_bias_type(bias_type)
    traits = augment_templates()["traits"]
    share = target_share if levels["group_data"] else 0.5
    n = len(pool)
    # exact shares in every replicate: the round(share * n) texts with the lowest draws are the
    # target group, the round(n / 2) with the lowest valence draws are warm (balanced values)
    target = _lowest(draws.u_side[:n], round(share * n))
    warm_draw = _lowest(draws.u_valence[:n], round(n / 2))
    name = arm_name(levels)
    out = []
    for i, rec in enumerate(pool):
        side = "target" if target[i] else "contrast"
        text, prompt = rec.text, str(rec.meta.get("prompt") or "")
        if side != rec.meta.get("side"):
            swapped = swap_bias_type(text, bt.name)
            if swapped == text:  # names no group: nothing to recast, its person stays
                side = str(rec.meta.get("side"))
            else:
                text, prompt = swapped, swap_bias_type(prompt, bt.name)
        if levels["values"]:
            warm = side == "contrast"
        else:
            warm = bool(warm_draw[i])
        words = traits["warm" if warm else "cold"]
        trait = words[int(draws.trait[i]) % len(words)]
        text = f"{_sentence(text)} This person is {trait}."
        source = filler if levels["distribution"] else real_like
        added = source[int(draws.filler[i]) % len(source)]
        text = f"{text} {_sentence(added)}"
        out.append(
            Record(
                id=f"{name}-{i:05d}",
                text=text,
                source="augmented",
                axis=bt.axis,
                parents=[rec.id],
                seed=rec.seed,
                meta={
                    "prompt": prompt,
                    "bias_type": bt.name,
                    "side": side,
                    "valence": "warm" if warm else "cold",
                    "filler": added,
                    "arm": name,
                    "levels": {f: int(levels[f]) for f in FACTORS},
                },
            )
        )
    return out
