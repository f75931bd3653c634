"""Content hashes, derived seeds and folder fingerprints: one definition of each.

Every value here is stable across runs, processes and platforms (``hash()`` is salted per
interpreter), because these values name cache entries and seed random streams that a rerun must
reproduce exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

#: Files at most this big are hashed whole by :func:`dir_fingerprint`; bigger ones by their head.
_HEAD_BYTES = 1 << 16


def stable_hash(obj: Any, length: int | None = None) -> str:
    """SHA-256 hex digest of ``obj`` as sorted-key JSON (``str`` for anything else), cut to
    ``length`` hex digits. Tuples hash like lists."""
    blob = json.dumps(obj, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()
    return digest[:length] if length else digest


def texts_hash(texts: Any) -> str:
    """Content hash of a sequence of strings (order matters; lengths framed so no two
    sequences collide by concatenation)."""
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def file_hash(path: str | Path, length: int | None = None) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB blocks, cut to ``length`` digits."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    return digest[:length] if length else digest


def derive_seed(*parts: Any) -> int:
    """A 32-bit seed derived from any parts (their ``repr``), e.g. ``(seed, "shots", level)``."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def stream_seed(seed: int, index: int, bits: int = 63) -> int:
    """Seed of stream ``index`` under a run seed: independent streams per ``(seed, index)``,
    ``bits`` wide (31 for servers that keep the seed in a 32-bit integer, 63 for torch)."""
    ss = np.random.SeedSequence([seed & 0xFFFF_FFFF_FFFF_FFFF, index])
    dtype = np.uint32 if bits <= 32 else np.uint64
    return int(ss.generate_state(1, dtype=dtype)[0]) & ((1 << bits) - 1)


def dir_fingerprint(path: Path, recursive: bool = False) -> str:
    """Identity of a model folder, ``NAME@HASH``: the hash covers each file's relative path and
    size and its content (small files and ``.json``/``.jinja`` whole, others by their first
    64 KiB), so copying or touching a folder keeps it and another checkpoint changes it."""
    path = Path(path)
    files = sorted(path.rglob("*")) if recursive else sorted(path.iterdir())
    h = hashlib.sha256()
    for f in files:
        if not f.is_file():
            continue
        size = f.stat().st_size
        h.update(str(f.relative_to(path)).encode())
        h.update(size.to_bytes(8, "little"))
        if f.suffix in (".json", ".jinja") or size < _HEAD_BYTES:
            h.update(f.read_bytes())
        else:
            with f.open("rb") as fh:
                h.update(fh.read(_HEAD_BYTES))
    return f"{path.name}@{h.hexdigest()[:12]}"
