"""`synthbias audit`: any input format, the gate's exit codes, outputs, progress bars; and one
end-to-end audit with the real sentence encoder (embedding family and misalignment factors)."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthbias import cli
from synthbias.cli import app
from synthbias.studies.audit.runner import AuditError, audit_corpus, load_texts, parse_budgets

TEXTS = [
    "The nurse said she would be late.",
    "The engineer said he fixed the bridge.",
    "The secretary said she booked the room.",
    "The pilot said he was ready.",
    "The nurse said he was tired.",
    "The manager reviewed the budget.",
    "A Muslim woman opened her bakery.",
    "The old man and his grandson went fishing.",
    "<script>document.title='pwned'</script> The doctor said he would call.",
    "The librarian said she found the book.",
]
FAST = ["--no-embedding", "--n-resamples", "60", "--quiet"]


def enumerate_ids(ids) -> list[tuple[str, str]]:
    return list(zip(ids, TEXTS, strict=True))


def write_all_formats(tmp: Path) -> dict[str, Path]:
    df = pd.DataFrame({"id": [f"t{i}" for i in range(len(TEXTS))], "sentence": TEXTS})
    paths = {
        "jsonl": tmp / "s.jsonl",
        "csv": tmp / "s.csv",
        "parquet": tmp / "s.parquet",
        "tsv": tmp / "s.tsv",
    }
    paths["jsonl"].write_text(
        "".join(json.dumps({"id": i, "sentence": t}) + "\n" for i, t in enumerate_ids(df.id))
    )
    df.to_csv(paths["csv"], index=False)
    df.to_csv(paths["tsv"], index=False, sep="\t")
    df.to_parquet(paths["parquet"], index=False)
    return paths


def test_audit_same_result_for_every_format(tmp_path: Path) -> None:
    paths = write_all_formats(tmp_path)
    kw = dict(families=["rule", "lexical"], n_resamples=60, text_field="sentence")
    ref = audit_corpus(list(TEXTS), **{**kw, "text_field": "text"})
    df = pd.read_parquet(paths["parquet"])
    inputs = [*paths.values(), str(paths["csv"]), df, df["sentence"]]
    for data in inputs:
        res = audit_corpus(data, **kw)
        assert res.source.texts == TEXTS, data if not isinstance(data, pd.DataFrame) else "df"
        for name, m in ref.metrics.items():
            a, b = res.metrics[name].value, m.value
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b), name
    assert audit_corpus(df, **kw).source.ids[0] == "t0"


def test_load_texts_errors(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(AuditError, match="no column 'text'; columns are id, sentence"):
        load_texts(pd.DataFrame({"id": [1], "sentence": ["x"]}))
    with pytest.raises(AuditError, match="cannot read texts from int"):
        load_texts(3)
    with pytest.raises(AuditError, match="no such file"):
        load_texts(tmp_path / "missing.jsonl")
    # A folder is a saved HF dataset: without the optional package, say how to get it.
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(AuditError, match=r"pip install 'synthbias\[hf\]'"):
        load_texts(tmp_path)


def test_hf_dataset_input(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": TEXTS})
    assert load_texts(ds).texts == TEXTS
    ds.save_to_disk(str(tmp_path / "ds"))
    assert load_texts(tmp_path / "ds").texts == TEXTS
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(AuditError, match="splits train, test"):
        load_texts(tmp_path / "dd")
    assert load_texts(tmp_path / "dd", split="test").texts == TEXTS


def test_budget_parsing_and_resolution() -> None:
    assert parse_budgets(["a.b=0.2"], "max")[0].bound == 0.2
    assert parse_budgets({"a.b": 1}, "min")[0].kind == "min"
    for bad in (["a.b"], ["=1"], ["a=x"], ["a=nan"]):
        with pytest.raises(AuditError):
            parse_budgets(bad, "max")
    res = audit_corpus(TEXTS, families=["rule", "lexical"], n_resamples=60, max_budgets=None)
    assert res.passed and res.checks == []
    # A unique suffix resolves; an ambiguous one is an error naming the candidates.
    res = audit_corpus(
        TEXTS, families=["rule", "lexical"], n_resamples=60, max_budgets={"gender.signed_bias": 1}
    )
    assert res.checks[0].metric == "rule.gender.signed_bias" and res.passed
    with pytest.raises(AuditError, match="rule.gender.stereotype_rate, lexical.gender.stereo"):
        audit_corpus(TEXTS, families=["rule", "lexical"], max_budgets={"gender.stereotype_rate": 1})


def run_audit(*args: str):
    return CliRunner().invoke(app, ["audit", *args])


def test_gate_exit_codes(tmp_path: Path) -> None:
    src = write_all_formats(tmp_path)["csv"]
    common = [str(src), "--text-field", "sentence", *FAST]
    stereo = audit_corpus(TEXTS, families=["rule"], n_resamples=60)["rule.gender.stereotype_rate"]
    assert 0.2 < stereo.value < 0.8

    ok = run_audit(
        *common,
        "--out",
        str(tmp_path / "ok"),
        "--max",
        "rule.gender.stereotype_rate=0.9",
        "--min",
        "rule.gender.stereotype_rate=0.1",
    )
    assert ok.exit_code == 0, ok.output
    assert "gate passed" in ok.output and "FAIL" not in ok.output

    bad = run_audit(
        *common,
        "--out",
        str(tmp_path / "bad"),
        "--max",
        "rule.gender.stereotype_rate=0.2,gender.gendered_term_imbalance=5",
        "--min",
        "lexical.gender.stereotype_rate=1.5",
    )
    assert bad.exit_code == 1, bad.output
    fails = [ln for ln in bad.output.splitlines() if ln.startswith("FAIL ")]
    assert len(fails) == 2
    assert fails[0].startswith(f"FAIL rule.gender.stereotype_rate = {stereo.value:.3f} exceeds max")
    assert "lexical.gender.stereotype_rate" in fails[1] and "is below min 1.5" in fails[1]
    assert "gate FAILED (2 of 3 breached)" in bad.output
    gate = json.loads((tmp_path / "bad" / "audit.json").read_text())["gate"]
    assert gate["passed"] is False and [c["status"] for c in gate["checks"]].count("fail") == 2
    page = (tmp_path / "bad" / "report.html").read_text()
    assert 'id="gate"' in page and "badge fail" in page

    unknown = run_audit(*common, "--out", str(tmp_path / "unk"), "--max", "gender.nonsense=1")
    assert unknown.exit_code == 2
    assert "unknown metric" in unknown.output and "rule.gender.stereotype_rate" in unknown.output
    assert not (tmp_path / "unk").exists()

    malformed = run_audit(*common, "--out", str(tmp_path / "mal"), "--max", "rule.gender")
    assert malformed.exit_code == 2 and "KEY=VALUE" in malformed.output


def test_undefined_metric_does_not_breach(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:4]))
    res = run_audit(
        str(src),
        "--axes",
        "gender,religion",
        *FAST,
        "--out",
        str(tmp_path / "o"),
        "--max",
        "lexical.religion.representation_jsd=0.1",
    )
    assert res.exit_code == 0, res.output
    assert "UNDEFINED lexical.religion.representation_jsd" in res.output


def test_audit_outputs(tmp_path: Path) -> None:
    src = write_all_formats(tmp_path)["jsonl"]
    out = tmp_path / "out"
    res = run_audit(
        str(src),
        "--text-field",
        "sentence",
        "--axes",
        "gender,religion,age",
        *FAST,
        "--out",
        str(out),
    )
    assert res.exit_code == 0, res.output

    def no_nan(x: str):
        raise ValueError(f"non-standard JSON constant {x}")

    audit = json.loads((out / "audit.json").read_text(), parse_constant=no_nan)
    assert audit["kind"] == "audit" and audit["info"]["texts"] == len(TEXTS)
    assert audit["gate"] == {"passed": True, "checks": []}
    assert set(audit["metrics"]) == set(pd.read_parquet(out / "results.parquet")["metric"])
    assert pd.read_csv(out / "results.csv").shape == pd.read_parquet(out / "results.parquet").shape
    rows = [json.loads(ln) for ln in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(len(TEXTS))]
    assert rows[0]["rule label"] == "stereotypical" and rows[0]["gender groups"] == "female"
    assert rows[6]["religion groups"] == "muslim"
    assert rows[0]["rule.gender.stereotype_rate"] == 1.0
    page = (out / "report.html").read_text()
    ids = [
        s
        for s in ("run", "gate", "metrics", "representation", "samples", "flags")
        if f'<section id="{s}">' in page
    ]
    assert ids == ["run", "gate", "metrics", "representation", "samples", "flags"]
    assert 'id="headline"' not in page
    assert "&lt;script&gt;document.title" in page and "<script>document.title" not in page
    # `synthbias report` rebuilds an audit folder too.
    (out / "report.html").unlink()
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    assert 'id="gate"' in (out / "report.html").read_text()


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_follow_quiet_and_tty(monkeypatch) -> None:
    def bar_output(quiet: bool, stdout_tty: bool) -> str:
        err = FakeTTY()
        monkeypatch.setattr(sys, "stderr", err)
        monkeypatch.setattr(sys, "stdout", FakeTTY() if stdout_tty else io.StringIO())
        bar = cli._progress(quiet)("auditing", 3, unit="family")
        bar.update(3)
        bar.close()
        return err.getvalue()

    assert "auditing" in bar_output(quiet=False, stdout_tty=True)
    assert bar_output(quiet=True, stdout_tty=True) == ""
    assert bar_output(quiet=False, stdout_tty=False) == ""  # piped output: no bar


def test_audit_passes_quiet_to_progress(tmp_path: Path, monkeypatch) -> None:
    seen = []
    real = cli._progress

    def spy(quiet: bool):
        seen.append(quiet)
        return real(quiet)

    monkeypatch.setattr(cli, "_progress", spy)
    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    base = [str(src), "--no-embedding", "--n-resamples", "60", "--out", str(tmp_path / "o")]
    assert run_audit(*base, "--quiet").exit_code == 0
    assert run_audit(*base).exit_code == 0
    assert seen == [True, False]


REAL = [
    "The doctor said she would call back after lunch.",
    "The teacher told the class he was proud of them.",
    "My neighbour, a retired nurse, tends her garden every morning.",
    "The engineer and her team finished the bridge on time.",
    "A young programmer said he loved solving hard problems.",
    "The chef said she was trying a new recipe tonight.",
    "Our mechanic explained the repair and he was very patient.",
    "The pilot thanked the passengers and she wished them well.",
]


def test_audit_end_to_end_with_real_encoder(tmp_path: Path) -> None:
    """Every family on the real all-MiniLM-L6-v2 encoder, misalignment against a reference."""
    synth, real = tmp_path / "synth.jsonl", tmp_path / "real.csv"
    synth.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    pd.DataFrame({"text": REAL}).to_csv(real, index=False)
    out = tmp_path / "audit"
    res = run_audit(
        str(synth),
        "--reference",
        str(real),
        "--axes",
        "gender,religion",
        "--n-resamples",
        "100",
        "--quiet",
        "--out",
        str(out),
        "--max",
        "embedding.gender.anchor_bias=0.99",
        "--max",
        "misalignment.distribution.mmd2=10",
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    audit = json.loads((out / "audit.json").read_text())
    metrics = audit["metrics"]
    for name in (
        "rule.gender.stereotype_rate",
        "lexical.religion.representation",
        "embedding.gender.anchor_bias",
        "embedding.gender.mean_projection",
        "embedding.religion.anchor_spread",
        "misalignment.values.gender.sentiment_gap",
        "misalignment.group_data.gender.representation_jsd",
        "misalignment.distribution.mmd2",
        "misalignment.distribution.frechet",
    ):
        assert name in metrics, name
    assert metrics["misalignment.distribution.frechet"]["value"] > 0
    assert audit["families"] == ["rule", "lexical", "embedding", "misalignment"]
    page = (out / "report.html").read_text()
    assert '<section id="misalignment">' in page and "Fréchet" in page
    samples = (out / "samples.jsonl").read_text().splitlines()
    assert len(samples) == len(TEXTS)
    assert "embedding.gender.anchor_bias" in json.loads(samples[0])


def test_audit_steps_measure_each_family_once_and_reuse_it(tmp_path: Path) -> None:
    """``load``, ``measure`` (cached per family under a key of texts and settings) and ``check``:
    a rerun with another budget reuses every family; new texts or one more family re-measure
    only what changed; cached metrics equal fresh ones."""
    cache = tmp_path / "cache"
    kw = {"n_resamples": 60, "seed": 0, "cache": cache}
    first = audit_corpus(TEXTS, families=["rule", "lexical"], **kw)
    assert first.steps["measure"]["ran"] == 2 and first.steps["measure"]["reused"] == 0
    assert first.steps["load"]["ran"] == 1 and first.steps["check"]["ran"] == 1

    budget = {"rule.gender.stereotype_rate": 0.9}
    again = audit_corpus(TEXTS, families=["rule", "lexical"], max_budgets=budget, **kw)
    assert (again.steps["measure"]["ran"], again.steps["measure"]["reused"]) == (0, 2)
    assert again.checks and again.checks[0].value == first["rule.gender.stereotype_rate"].value
    for name, m in first.metrics.items():
        back = again.metrics[name]
        assert back.per_sample == pytest.approx(m.per_sample, nan_ok=True), name
        assert (back.ci.low, back.ci.high) == pytest.approx((m.ci.low, m.ci.high), nan_ok=True)

    fewer = audit_corpus(TEXTS[:-1], families=["rule"], **kw)  # other texts: measured again
    assert (fewer.steps["measure"]["ran"], fewer.steps["measure"]["reused"]) == (1, 0)
    other_seed = audit_corpus(TEXTS, families=["rule"], **{**kw, "seed": 1})
    assert other_seed.steps["measure"]["ran"] == 1

    uncached = audit_corpus(TEXTS, families=["rule"], n_resamples=60, seed=0)
    assert uncached.steps["measure"] == {**uncached.steps["measure"], "ran": 1, "reused": 0}


def test_audit_cli_reuses_its_measure_cache(tmp_path: Path) -> None:
    src = write_all_formats(tmp_path)["csv"]
    args = ["audit", str(src), "--text-field", "sentence", *FAST, "--out", str(tmp_path / "a")]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert (
        CliRunner().invoke(app, [*args, "--max", "rule.gender.stereotype_rate=0.99"]).exit_code == 0
    )
    steps = json.loads((tmp_path / "a" / "audit.json").read_text())["steps"]
    assert steps["measure"]["ran"] == 0 and steps["measure"]["reused"] == 2  # rule, lexical
