import json
from pathlib import Path

import pytest

from synthbias.core.records import CorpusError, Record, read_corpus, read_jsonl, write_jsonl


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


def test_read_csv_tsv_parquet(tmp_path: Path) -> None:
    import pandas as pd

    from synthbias.core.records import read_corpus

    df = pd.DataFrame({"sentence": ["She is a nurse.", 'He cooks, "well".'], "label": [1, 0]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.tsv", index=False, sep="\t")
    df.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.tsv", "a.parquet"):
        recs = read_corpus(tmp_path / name, text_field="sentence")
        assert [r.text for r in recs] == list(df["sentence"]), name
        assert str(recs[0].meta["label"]) == "1"
    with pytest.raises(CorpusError, match=r"a\.csv:1: no column 'text'; columns are sentence"):
        read_corpus(tmp_path / "a.csv")
    with pytest.raises(CorpusError, match="no column 'text'"):
        read_corpus(tmp_path / "a.parquet")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("text,x\n")
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(tmp_path / "h.csv")
    (tmp_path / "b.csv").write_bytes(b"text\nok\n\xff\n")
    with pytest.raises(CorpusError, match=r"b\.csv:3: not valid UTF-8"):
        read_corpus(tmp_path / "b.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CorpusError, match="unknown format"):
        read_corpus(tmp_path / "x.txt")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(CorpusError, match="Parquet"):
        read_corpus(tmp_path / "bad.parquet")


def test_very_long_text_is_data(tmp_path: Path) -> None:
    from synthbias.core.records import read_corpus

    long = "word " * 200_000
    (tmp_path / "l.csv").write_text(f'text\n"{long}"\n')
    assert len(read_corpus(tmp_path / "l.csv")[0].text) == len(long)


def test_folder_and_suffixless_paths_say_what_is_read(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"is a folder; give a corpus file: a \.jsonl, \.csv"):
        read_corpus(tmp_path)
    bare = tmp_path / "corpus"
    bare.write_text('{"text": "a"}\n')
    with pytest.raises(CorpusError, match="no file suffix to tell the format by"):
        read_corpus(bare)
    assert read_corpus(bare, fmt="jsonl")[0].text == "a"


def test_invalid_json_names_the_column(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "ok"}\n{"text": "a", "x": tru}\n')
    with pytest.raises(
        CorpusError, match=r"c\.jsonl:2: invalid JSON at column 20: Expecting value"
    ):
        read_corpus(p)
