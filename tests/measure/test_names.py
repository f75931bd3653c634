"""One metric name per metric: every run kind writes canonical names (``family.axis.metric``);
the old names resolve, with a deprecation message, in configs, audit budgets and old results."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from fakes import HashEncoder
from test_audit import FAST, TEXTS, run_audit, write_all_formats
from test_inheritance import CountingTrainer, fake_loader
from test_inheritance import _config as inheritance_config
from test_report import HOSTILE
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.config import parse_config
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.measure import names
from synthbias.measure.names import ALIASES, canonical, canonical_results, is_canonical
from synthbias.studies.audit.runner import audit_corpus, parse_budgets
from synthbias.studies.equilibrium.measurer import GenderMeasurer
from synthbias.studies.equilibrium.runner import results_table, run_equilibrium


@pytest.fixture(autouse=True)
def _fresh_messages() -> None:
    names._told.clear()  # the stderr line is printed once per process and name


def assert_canonical(metric_names) -> None:
    metric_names = set(metric_names)
    assert metric_names, "no metric names to check"
    bad = sorted(n for n in metric_names if not is_canonical(n))
    assert not bad, f"non-canonical metric names: {bad}"


def test_alias_table_maps_to_canonical_names() -> None:
    assert all(is_canonical(new) and not is_canonical(old) for old, new in ALIASES.items())
    assert not is_canonical("rule.stereotype_rate") and is_canonical("generation.off_topic_share")


def test_old_name_resolves_with_deprecation_message(capsys) -> None:
    with pytest.warns(DeprecationWarning, match="use 'rule.gender.stereotype_rate'"):
        assert canonical("rule.stereotype_rate", "x") == "rule.gender.stereotype_rate"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deprecated, use 'rule.gender.stereotype_rate'" in err
    assert canonical("rule.gender.stereotype_rate") == "rule.gender.stereotype_rate"
    assert capsys.readouterr().err == ""  # a canonical name: no message


def test_old_name_in_config_fields(capsys) -> None:
    with pytest.warns(DeprecationWarning, match="study.fit_metric"):
        cfg = parse_config({"study": {"fit_metric": "embedding.anchor_bias"}})
    assert cfg.study.fit_metric == "embedding.gender.anchor_bias"
    assert "study.fit_metric: metric name 'embedding.anchor_bias' is deprecated" in (
        capsys.readouterr().err
    )
    with pytest.warns(DeprecationWarning, match="mitigation.families.rule"):
        m = parse_config(
            {"kind": "mitigation", "mitigation_study": {"families": {"rule": "rule.signed_bias"}}}
        )
    assert m.mitigation_study.families == {"rule": "rule.gender.signed_bias"}
    assert parse_config({}).study.fit_metric == "rule.gender.code_balanced_stereotype_share"
    defaults = parse_config({"kind": "mitigation"}).mitigation_study.families
    assert_canonical(defaults.values())


def test_old_name_in_audit_budget(tmp_path: Path) -> None:
    with pytest.warns(DeprecationWarning, match="--max"):
        (b,) = parse_budgets(["rule.stereotype_rate=0.9"], "max")
    assert b.key == "rule.gender.stereotype_rate"
    with pytest.warns(DeprecationWarning):
        res = audit_corpus(
            TEXTS, families=["rule"], n_resamples=60, max_budgets={"rule.signed_bias": 1.0}
        )
    assert res.checks[0].metric == "rule.gender.signed_bias" and res.passed
    # the CLI: the old name gates like the new one, one deprecation line on stderr
    src = write_all_formats(tmp_path)["csv"]
    common = [str(src), "--text-field", "sentence", *FAST]
    names._told.clear()
    fail = run_audit(*common, "--out", str(tmp_path / "f"), "--max", "rule.stereotype_rate=0.1")
    assert fail.exit_code == 1, fail.output
    assert fail.stderr.count("is deprecated, use 'rule.gender.stereotype_rate'") == 1
    gate = json.loads((tmp_path / "f" / "audit.json").read_text())["gate"]
    assert [c["metric"] for c in gate["checks"]] == ["rule.gender.stereotype_rate"]


def _equilibrium(out: Path, **study) -> dict:
    cfg = parse_config(
        {
            "generator": {"backend": "fake"},
            "study": {"levels": [0.1, 0.6], "generations": 2, "n": 16, "chains": 2}
            | {"prompt": "work_person", "on_topic": "keep"}
            | study,
            "measure": {"embedding": True, "n_resamples": 60},
        }
    )
    measurer = GenderMeasurer(cfg.measure, encoder=HashEncoder())
    backend = FakeBackend(sentences=(*FAKE_SENTENCES[:6], *HOSTILE))
    return run_equilibrium(cfg, out, backend=backend, measurer=measurer)


@pytest.fixture(scope="module")
def eq_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eq-names")
    _equilibrium(out)
    return out


def test_equilibrium_results_use_canonical_names(eq_run: Path) -> None:
    res = json.loads((eq_run / "results.json").read_text())
    gens = [g for lv in res["levels"] for g in lv["generations"]]
    for g in gens:
        assert_canonical(g["metrics"])
        assert_canonical(g["pct_change"])
    assert_canonical(res["headline_metrics"])
    assert len(set(res["headline_metrics"])) == len(res["headline_metrics"])
    assert_canonical(pd.read_csv(eq_run / "results.csv")["metric"])
    # the same names as `synthbias measure` gives, for the metrics both measure
    first = gens[0]["metrics"]
    assert {
        "rule.gender.stereotype_rate",
        "rule.gender.signed_bias",
        "rule.gender.gendered_term_imbalance",
        "embedding.gender.anchor_bias",
        "embedding.gender.mean_projection",
        "embedding.gender.mean_abs_projection",
    } <= set(first)
    # the rule scorer's stereotype rate and the direction metric's are one metric, one value
    from synthbias.measure.api import measure_corpus

    texts = [json.loads(ln)["text"] for ln in (eq_run / "corpora/level-0.1/gen-0.jsonl").open()]
    texts += [
        json.loads(ln)["text"] for ln in (eq_run / "corpora/level-0.1/chain-1/gen-0.jsonl").open()
    ]
    direct = measure_corpus(texts, families=["rule"], n_resamples=60)
    assert first["rule.gender.signed_bias"]["value"] == direct["rule.gender.signed_bias"].value
    assert first["rule.gender.stereotype_rate"]["value"] == pytest.approx(
        direct["rule.gender.stereotype_rate"].value
    )


def test_old_equilibrium_results_read_with_canonical_names(eq_run: Path, tmp_path: Path) -> None:
    """A results.json written before the rename (old keys beside the direction metrics) reads
    back with canonical names in the report, the forecast and the MLflow metrics."""
    from synthbias.report.html import load_results
    from synthbias.report.tracking import collect_metrics
    from synthbias.studies.forecast import _observed

    old_dir = tmp_path / "old"
    shutil.copytree(eq_run, old_dir)
    res = json.loads((eq_run / "results.json").read_text())
    new_to_old = {v: k for k, v in ALIASES.items()}
    for lv in res["levels"]:
        for g in lv["generations"]:
            for key in ("metrics", "pct_change"):  # old files had both stereotype rates
                kept = g[key]["rule.gender.stereotype_rate"]
                g[key] = {new_to_old.get(n, n): v for n, v in g[key].items()}
                g[key]["rule.gender.stereotype_rate"] = kept
    res["fit_metric"] = "embedding.anchor_bias"
    res["headline_metrics"] = [new_to_old.get(n, n) for n in res["headline_metrics"]]
    (old_dir / "results.json").write_text(json.dumps(res))
    results_table(res).to_csv(old_dir / "results.csv", index=False)
    (old_dir / "results.parquet").unlink()

    loaded, _ = load_results(old_dir)
    assert loaded["fit_metric"] == "embedding.gender.anchor_bias"
    for lv in loaded["levels"]:
        for g in lv["generations"]:
            assert_canonical(g["metrics"])
    assert_canonical(loaded["headline_metrics"])
    obs = _observed(old_dir, "embedding.gender.anchor_bias")
    assert set(obs) == {0.1, 0.6} and set(obs[0.1]) == {0, 1, 2}
    keys = [k for k, _, _ in collect_metrics(old_dir, loaded)]
    assert_canonical(k.split("/")[0] for k in keys if "/" in k)
    assert len(keys) == len(set((k, s) for k, _, s in collect_metrics(old_dir, loaded)))


def test_measure_and_audit_results_use_canonical_names(tmp_path: Path) -> None:
    pd.DataFrame({"sentence": TEXTS}).to_csv(tmp_path / "c.csv", index=False)
    out = tmp_path / "m.json"
    args = ["measure", str(tmp_path / "c.csv"), "--text-field", "sentence"]
    args += ["--axes", "gender,religion", "--metrics", "rule,lexical", "--n-resamples", "60"]
    res = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert_canonical(json.loads(out.read_text())["metrics"])
    src = write_all_formats(tmp_path)["csv"]
    run = run_audit(str(src), "--text-field", "sentence", *FAST, "--out", str(tmp_path / "a"))
    assert run.exit_code == 0, run.output
    assert_canonical(json.loads((tmp_path / "a" / "audit.json").read_text())["metrics"])


def test_inheritance_and_mitigation_names_are_canonical(tmp_path: Path) -> None:
    from synthbias.studies import probe as downstream
    from synthbias.studies.equilibrium.report import STEREOTYPE_ORIENTED
    from synthbias.studies.inheritance.runner import run_inheritance
    from synthbias.studies.mitigation.stats import orientation_table

    run_inheritance(
        inheritance_config(),
        tmp_path,
        backend=FakeBackend(),
        trainer=CountingTrainer(),
        backend_loader=fake_loader,
    )
    metrics = set(pd.read_csv(tmp_path / "results.csv")["metric"])
    assert_canonical(metrics)
    # the mitigation study's metric tables and the pronoun probe's names
    assert_canonical([*orientation_table(), *STEREOTYPE_ORIENTED])
    probe = [downstream.PREFERENCE, downstream.WIN_RATE, downstream.CLASSIFIER_RATE]
    assert_canonical(probe)
    assert all(n.startswith("probe.gender.") for n in probe)


def test_old_probe_cache_reads_with_canonical_names(tmp_path: Path) -> None:
    from synthbias.measure.names import canonical_keys

    old = {"downstream.pronoun_preference": 1, "rule.gender.signed_bias": 2}
    assert canonical_keys(old) == {
        "probe.gender.pronoun_preference": 1,
        "rule.gender.signed_bias": 2,
    }
    both = {"rule.stereotype_rate": 1, "rule.gender.stereotype_rate": 2}
    assert canonical_keys(both) == {"rule.gender.stereotype_rate": 2}
    assert canonical_results({"fit_metric": "rule.signed_bias"})["fit_metric"] == (
        "rule.gender.signed_bias"
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
