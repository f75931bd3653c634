import json
from pathlib import Path

import pytest

from synthbias.corpus import CorpusError, Record, read_jsonl, write_jsonl


def test_round_trip_keeps_provenance(tmp_path: Path) -> None:
    recs = [
        Record(
            id="a",
            text="The nurse said she was late.",
            source="synthetic",
            generation=2,
            parents=["x", "y"],
            axis="gender",
            initial_level=0.3,
            seed=7,
            meta={"k": 1},
        ),
        Record(id="b", text="Ünïcode ✓", source="real"),
    ]
    p = write_jsonl(recs, tmp_path / "sub" / "c.jsonl")
    back = read_jsonl(p)
    assert back == recs


def test_errors_name_file_line_field(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "ok"}\n{"txt": "missing"}\n')
    with pytest.raises(CorpusError, match=r"c\.jsonl:2: missing field 'text'"):
        read_jsonl(p)
    p.write_text('{"text": "ok"}\n\n{not json}\n')
    with pytest.raises(CorpusError, match=r"c\.jsonl:3: invalid JSON"):
        read_jsonl(p)
    p.write_text('{"text": 5}\n')
    with pytest.raises(CorpusError, match="must be a string"):
        read_jsonl(p)
    p.write_text('{"text": "a", "generation": "x"}\n')
    with pytest.raises(CorpusError, match=r":1: field 'generation'"):
        read_jsonl(p)
    p.write_text("")
    with pytest.raises(CorpusError, match="empty"):
        read_jsonl(p)
    p.write_bytes(b'{"text": "ok"}\n{"text": "\xff\xfe"}\n')
    with pytest.raises(CorpusError, match=r":2: not valid UTF-8"):
        read_jsonl(p)


def test_custom_fields_and_default_ids(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text(
        json.dumps({"sentence": "hello", "uid": 3, "extra": [1]})
        + "\n"
        + json.dumps({"sentence": "bye"})
        + "\n"
    )
    recs = read_jsonl(p, text_field="sentence", id_field="uid")
    assert [r.text for r in recs] == ["hello", "bye"]
    assert recs[0].id == "3" and recs[1].id == "d-2"
    assert recs[0].model_extra == {"extra": [1]}


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    write_jsonl([Record(id="a", text="old")], p)

    def bad():
        yield Record(id="b", text="new")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(bad(), p)
    assert [r.text for r in read_jsonl(p)] == ["old"]
    assert [f.name for f in tmp_path.iterdir()] == ["c.jsonl"]
