"""Text records with provenance, and JSONL input/output that never loses data.

Every text synthbias handles carries where it came from (real or synthetic, which generation,
which parents, which bias axis and initial level, which seed), so later stages can treat real and
synthetic examples differently and any result can be traced back to the texts behind it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Source = Literal["real", "synthetic", "seed", "augmented"]


class Record(BaseModel):
    """One text and its provenance."""

    model_config = ConfigDict(extra="allow")

    id: str
    text: str
    source: Source = "real"
    generation: int = 0
    parents: list[str] = Field(default_factory=list)
    axis: str | None = None
    initial_level: float | None = None
    seed: int | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


class CorpusError(ValueError):
    """Bad corpus input; the message names the file, the line and the field."""


def write_jsonl(records: Iterable[Record], path: str | Path) -> Path:
    """Write records atomically: a temp file in the same folder, then rename.

    A crash mid-write leaves the old file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(rec.model_dump_json(exclude_none=True))
                fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def iter_jsonl(
    path: str | Path, text_field: str = "text", id_field: str = "id"
) -> Iterator[Record]:
    """Read records from JSONL, naming file, line and field in every error.

    Lines need only a text field; a missing id becomes ``<file stem>-<line>``.
    Columns other than the known ones are kept as extra fields.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:  # pragma: no cover - permissions etc.
        raise CorpusError(f"{path}: cannot read: {exc}") from exc
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(
            f"{path}:{line}: not valid UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    n = 0
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise CorpusError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        if text_field not in obj:
            raise CorpusError(f"{path}:{lineno}: missing field {text_field!r}")
        if not isinstance(obj[text_field], str):
            raise CorpusError(f"{path}:{lineno}: field {text_field!r} must be a string")
        data = dict(obj)
        data["text"] = data.pop(text_field)
        if id_field != "id" and id_field in data:
            data["id"] = str(data.pop(id_field))
        data.setdefault("id", f"{path.stem}-{lineno}")
        data["id"] = str(data["id"])
        try:
            yield Record.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise CorpusError(f"{path}:{lineno}: field {field!r}: {err['msg']}") from exc
        n += 1
    if n == 0:
        raise CorpusError(f"{path}: file is empty (no records)")


def read_jsonl(path: str | Path, text_field: str = "text", id_field: str = "id") -> list[Record]:
    return list(iter_jsonl(path, text_field=text_field, id_field=id_field))
