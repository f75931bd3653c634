"""Person nouns that are not occupations (``data/person_nouns.txt``).

The rule metric's nearest-occupation attachment needs to know where *other* people are
mentioned: in "The nurse thanked the patient for his help", *his* belongs to the patient.
"""

from __future__ import annotations

import functools
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


@functools.lru_cache(maxsize=4)
def person_nouns(path: str | Path | None = None) -> frozenset[str]:
    """Lower-case singular and plural forms (pronoun-like words such as *someone* stay singular)."""
    path = Path(path) if path is not None else DATA / "person_nouns.txt"
    out: set[str] = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        word = line.split("#", 1)[0].strip().lower()
        if not word:
            continue
        if " " in word:
            raise ValueError(f"{path}:{lineno}: one word per line, got {word!r}")
        out.add(word)
        if not word.endswith(("one", "body")):
            out.add(_plural(word))
    return frozenset(out)
