"""Text records with provenance, and JSONL input/output that never loses data.

Every text synthbias handles carries where it came from (real or synthetic, which generation,
which parents, which bias axis and initial level, which seed), so later stages can treat real and
synthetic examples differently and any result can be traced back to the texts behind it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synthbias.core.store import atomic_write

Source = Literal["real", "synthetic", "seed", "augmented"]
#: The corpus files :func:`read_corpus` reads, for messages.
CORPUS_FORMATS = "a .jsonl, .csv, .tsv or .parquet file"


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
    with atomic_write(path) as fh:
        for rec in records:
            fh.write(rec.model_dump_json(exclude_none=True))
            fh.write("\n")
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
            raise CorpusError(
                f"{path}:{lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
            ) from exc
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


def read_corpus(
    path: str | Path,
    text_field: str = "text",
    id_field: str = "id",
    fmt: str | None = None,
) -> list[Record]:
    """Read a corpus from JSONL, CSV, TSV or Parquet (by suffix, or ``fmt``).

    Column names are options; errors name the file, the row (1-based, as a person counts lines,
    header included for CSV) and the column, and list the columns that do exist.
    """
    path = Path(path)
    if path.is_dir():
        raise CorpusError(
            f"{path}: is a folder; give a corpus file: {CORPUS_FORMATS} (a folder saved with "
            "datasets' save_to_disk is read by `synthbias audit` and the Python API)"
        )
    kind = (fmt or path.suffix.lstrip(".")).lower()
    if kind in ("jsonl", "ndjson", "json"):
        return read_jsonl(path, text_field=text_field, id_field=id_field)
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    if kind in ("csv", "tsv"):
        return _read_delimited(path, text_field, id_field, "\t" if kind == "tsv" else ",")
    if kind in ("parquet", "pq"):
        return _read_parquet(path, text_field, id_field)
    what = f"unknown format {kind!r}" if kind else "no file suffix to tell the format by"
    raise CorpusError(f"{path}: {what}; give {CORPUS_FORMATS}")


def _read_delimited(path: Path, text_field: str, id_field: str, sep: str) -> list[Record]:
    import csv
    import io

    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusError(f"{path}:{line}: not valid UTF-8 (byte {raw[exc.start]:#04x})") from exc
    csv.field_size_limit(2**31 - 1)  # very long texts are data, not an error
    reader = csv.DictReader(io.StringIO(content, newline=""), delimiter=sep)
    if not reader.fieldnames:
        raise CorpusError(f"{path}: file is empty (no header)")
    if text_field not in reader.fieldnames:
        raise CorpusError(
            f"{path}:1: no column {text_field!r}; columns are {', '.join(reader.fieldnames)}"
        )
    rows = []
    for row in reader:
        rows.append((reader.line_num, row))
    return _rows_to_records(path, rows, text_field, id_field)


def _read_parquet(path: Path, text_field: str, id_field: str) -> list[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for bad files
        raise CorpusError(f"{path}: not a readable Parquet file: {exc}") from exc
    if text_field not in table.column_names:
        raise CorpusError(
            f"{path}: no column {text_field!r}; columns are {', '.join(table.column_names)}"
        )
    rows = [(i + 1, row) for i, row in enumerate(table.to_pylist())]
    return _rows_to_records(path, rows, text_field, id_field, unit="row")


def _rows_to_records(
    path: Path, rows: list[tuple[int, dict]], text_field: str, id_field: str, unit: str = ""
) -> list[Record]:
    if not rows:
        raise CorpusError(f"{path}: file is empty (no records)")
    records = []
    known = set(Record.model_fields)
    for line, row in rows:
        where = f"{path}:{unit + ' ' if unit else ''}{line}"
        text = row.get(text_field)
        if text is None:
            raise CorpusError(f"{where}: column {text_field!r} is empty")
        if not isinstance(text, str):
            raise CorpusError(f"{where}: column {text_field!r} must be text, got {text!r}")
        rid = row.get(id_field)
        extra = {k: v for k, v in row.items() if k not in (text_field, id_field)}
        data: dict[str, Any] = {
            k: v for k, v in extra.items() if k in known and v not in ("", None)
        }
        meta = {k: v for k, v in extra.items() if k not in known}
        data.update(id=str(rid) if rid not in (None, "") else f"{path.stem}-{line}", text=text)
        if meta:
            data["meta"] = {**meta, **(data.get("meta") or {})}
        try:
            records.append(Record.model_validate(data))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise CorpusError(f"{where}: column {field!r}: {err['msg']}") from exc
    return records
