"""report.html: built at the end of a run, rebuilt by `synthbias report`, generic sections for any
run kind, a section registry, and generated text always shown as text (never run as HTML)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthbias.cli import app
from synthbias.config import parse_config
from synthbias.core.records import read_jsonl
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.report import html as report_html
from synthbias.report.html import Section, build_report, register_section
from synthbias.studies.equilibrium.runner import run_equilibrium

SCRIPT_TEXT = "<script>document.title='pwned'</script> The nurse said she was late."
IMG_TEXT = "<img src=x onerror=\"document.title='pwned'\"> The engineer said he fixed it."
HOSTILE = (SCRIPT_TEXT, IMG_TEXT, 'Tom & Jerry\'s "quoted" </td></tr></table> said he left.')


def small_run(out: Path, generations: int = 2) -> Path:
    cfg = parse_config(
        {
            "generator": {"backend": "fake"},
            # keep: the hostile fake texts are off topic and must reach the corpus as written
            "study": {
                "levels": [0.1, 0.6],
                "generations": generations,
                "n": 16,
                "prompt": "work_person",
                "on_topic": "keep",
            },
            "measure": {"embedding": False, "n_resamples": 100},
        }
    )
    backend = FakeBackend(sentences=(*FAKE_SENTENCES[:6], *HOSTILE))
    run_equilibrium(cfg, out, backend=backend)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_run(tmp_path_factory.mktemp("eq-report"))


def test_run_writes_report_and_parquet(run_dir: Path) -> None:
    assert (run_dir / "report.html").is_file()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["kind"] == "equilibrium"
    pq = pd.read_parquet(run_dir / "results.parquet")
    csv = pd.read_csv(run_dir / "results.csv")
    assert list(pq.columns) == list(csv.columns)
    assert len(pq) == len(csv) > 0
    assert pq["value"].tolist() == pytest.approx(csv["value"].tolist())


def test_hostile_texts_reach_the_corpus(run_dir: Path) -> None:
    """Guard: the escaping tests below only mean something if the data really holds them."""
    texts = {r.text for f in (run_dir / "corpora").rglob("gen-*.jsonl") for r in read_jsonl(f)}
    assert SCRIPT_TEXT in texts and IMG_TEXT in texts


def test_report_escapes_generated_text(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert "<script>document.title" not in page
    assert "<img src=x" not in page and '<img src="x"' not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=" in page
    assert "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;" in page
    # Exactly one script element: the report's own filter script.
    assert len(re.findall(r"<script\b", page)) == 1


def test_report_csp_pins_its_only_script(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert f"script-src &#x27;sha256-{digest}&#x27;" in csp
    assert "default-src &#x27;none&#x27;" in csp and "img-src data:" in csp


def test_report_is_self_contained(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    srcs = re.findall(r'\ssrc="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in page and "http://" not in page and "https://" not in page
    assert "@import" not in page


def test_report_sections(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids == ["run", "headline", "equilibrium", "divergence", "samples", "flags"]
    # Run info: config, model, versions, seed.
    assert "fake-v1" in page and "config hash" in page and "synthbias" in page
    assert "study:" in page  # the config YAML
    # Headline table: the fit metric first, values with CIs.
    headline = page.split('<section id="headline">')[1].split("</section>")[0]
    assert headline.index("rule.gender.stereotype_rate") < headline.index("rule.gender.signed_bias")
    assert 'class="ci"' in headline
    # Equilibrium: the trajectory plot inlined, the fit numbers.
    eq = json.loads((run_dir / "results.json").read_text())["equilibrium"]
    eq_sec = page.split('<section id="equilibrium">')[1].split("</section>")[0]
    assert "data:image/png;base64," in eq_sec
    assert f"{eq['fixed_point']:.3f}" in eq_sec
    # Sample browser: every level/generation filterable, per-text rule labels.
    samples = page.split('<section id="samples">')[1].split("</section>")[0]
    assert "data-browser" in samples and 'data-filter="0"' in samples
    assert "stereotypical" in samples and 'data-f1="2"' in samples


def test_divergence_flags() -> None:
    from synthbias.studies.equilibrium.report import divergence_flags

    def gen(k: int, a: float, b: float) -> dict:
        ci = 0.01
        return {
            "generation": k,
            "metrics": {
                "rule.gender.stereotype_rate": {"value": a, "ci": {"low": a - ci, "high": a + ci}},
                "rule.gender.signed_bias": {"value": b, "ci": {"low": b - ci, "high": b + ci}},
                # a gender lean, not stereotype-oriented: never part of a divergence
                "embedding.gender.anchor_bias": {
                    "value": -a,
                    "ci": {"low": -a - ci, "high": -a + ci},
                },
            },
        }

    levels = [
        {"level": 0.1, "generations": [gen(0, 0.1, 0.5), gen(2, 0.4, 0.2)]},  # diverge
        {"level": 0.6, "generations": [gen(0, 0.6, 0.6), gen(2, 0.605, 0.3)]},  # one flat
    ]
    flags = divergence_flags(levels)
    assert len(flags) == 1
    msg = flags[0]["message"]
    assert "b0 = 0.1" in msg and "rule.gender.stereotype_rate +0.300" in msg
    assert "anchor_bias" not in msg


def write_tidy_run(tmp: Path, kind: str) -> Path:
    """A run folder of another kind, shaped like the inheritance runner's output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp / "by_ratio.png")
    plt.close(fig)
    rows = []
    for task in ("qa", "cls"):
        for ratio in (0.0, 0.5, 1.0):
            for metric in ("accuracy", "bias_score"):
                rows.append(
                    {
                        "task": task,
                        "bias_type": "gender",
                        "ratio": ratio,
                        "seed": 0,
                        "metric": metric,
                        "value": ratio / 2,
                        "ci_low": ratio / 3,
                        "ci_high": ratio,
                        "role": "performance" if metric == "accuracy" else "bias",
                    }
                )
    pd.DataFrame(rows).to_csv(tmp / "results.csv", index=False)
    (tmp / "samples.jsonl").write_text(
        "\n".join(
            json.dumps({"task": t, "ratio": r, "correct": r > 0, "score": 0.25, "text": x})
            for t, r, x in [("qa", 0.0, "<b>bold?</b>"), ("cls", 1.0, SCRIPT_TEXT)]
        )
        + "\n"
    )
    results = {
        "kind": kind,
        "config": {"name": "sweep", "kind": kind, "seed": 3},
        "plots": ["by_ratio.png"],
        "flags": ["metric <i>divergence</i> on qa", {"severity": "info", "message": "note"}],
        "samples": "samples.jsonl",
    }
    (tmp / "results.json").write_text(json.dumps(results))
    return tmp


def test_generic_sections_for_another_kind(tmp_path: Path) -> None:
    run = write_tidy_run(tmp_path, "inheritance-like")
    page = build_report(run).read_text()
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids == ["run", "headline", "samples", "plots", "flags"]
    headline = page.split('<section id="headline">')[1].split("</section>")[0]
    for col in ("task", "bias_type", "ratio", "seed", "accuracy", "bias_score"):
        assert f"<th>{col}</th>" in headline
    # One row per condition (task x ratio), not per metric: 'role' describes a metric.
    pivot = headline.split("<details>")[0]
    assert pivot.count("<tr>") == 1 + 6 and "<th>role</th>" not in pivot
    assert "<td>0.5</td>" in pivot and "<td>0</td>" in pivot  # ids shown as written
    assert page.count("data:image/png;base64,") == 1  # by_ratio.png, once
    assert "metric &lt;i&gt;divergence&lt;/i&gt; on qa" in page and "<i>" not in page
    assert "Flags (2)" in page
    samples = page.split('<section id="samples">')[1].split("</section>")[0]
    assert "&lt;b&gt;bold?&lt;/b&gt;" in samples and "<b>" not in samples
    assert "<select data-filter" in samples  # task / ratio / correct filters
    assert len(re.findall(r"<script\b", page)) == 1


def test_register_section_hook(tmp_path: Path) -> None:
    run = write_tidy_run(tmp_path, "hook-kind")

    def custom(ctx: report_html.ReportContext) -> Section:
        ctx.flags.append({"severity": "warning", "message": "from the hook"})
        return Section("custom", "Custom <kind>", f"<p>{report_html.esc(ctx.kind)}</p>")

    def broken(ctx: report_html.ReportContext) -> Section:
        raise RuntimeError("boom <b>")

    register_section("hook-kind", custom, order=20)
    register_section("hook-kind", broken, order=21)
    try:
        page = build_report(run).read_text()
    finally:
        report_html._REGISTRY[:] = [r for r in report_html._REGISTRY if r.kind != "hook-kind"]
    ids = re.findall(r'<section id="([^"]+)"', page)
    assert ids.index("headline") < ids.index("custom") < ids.index("samples")
    assert "Custom &lt;kind&gt;" in page and "from the hook" in page
    assert "error-broken" in ids and "boom &lt;b&gt;" in page
    # Other kinds do not get it.
    page2 = build_report(write_tidy_run(tmp_path, "other-kind")).read_text()
    assert 'id="custom"' not in page2


def test_report_cli_rebuilds(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / "report.html").unlink()
    res = CliRunner().invoke(app, ["report", str(run_dir)])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").is_file() and "wrote" in res.output
    out = tmp_path / "elsewhere.html"
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(out), "--max-samples", "5"])
    assert res.exit_code == 0, res.output
    assert out.read_text().count('<tr data-f0="') <= 6  # 5 texts per browser, at least 1 a corpus


def test_report_cli_errors(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "no results.json" in res.output
    res = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such folder" in res.output


def test_report_failure_does_not_lose_the_run(tmp_path: Path, monkeypatch) -> None:
    def explode(*a, **k):
        raise RuntimeError("report bug")

    monkeypatch.setattr(report_html, "render_report", explode)
    with pytest.warns(UserWarning, match="synthbias report"):
        small_run(tmp_path / "run", generations=1)
    assert (tmp_path / "run" / "results.json").is_file()
    assert not (tmp_path / "run" / "report.html").exists()


def test_sample_browser_caps_long_texts(tmp_path: Path) -> None:
    """A 5 MB text was copied whole into report.html; the page shows the first
    MAX_SAMPLE_CHARS characters and says so, while samples.jsonl keeps the whole text."""
    import synthbias

    cap = report_html.MAX_SAMPLE_CHARS
    long_text = "The nurse said she was late. " + "x" * (5 * cap) + " END-OF-TEXT"
    page = report_html.sample_browser(
        [{"id": "a", "text": long_text}, {"id": "b", "text": "hi"}], ["id"]
    )
    assert "END-OF-TEXT" not in page and "x" * (cap - 40) in page
    assert f"{len(long_text) - cap:,} more characters" in page
    assert f"1 text is shown cut at {cap:,} characters" in page
    short = report_html.sample_browser([{"id": "b", "text": "<b>hi</b>"}], ["id"])
    assert "&lt;b&gt;hi&lt;/b&gt;" in short and "cut at" not in short

    out = tmp_path / "audit"
    synthbias.audit(
        [long_text, "The pilot said he was ready."], families=["rule"], n_resamples=50, out=out
    )
    html_text = (out / "report.html").read_text()
    assert "END-OF-TEXT" not in html_text and "x" * (cap + 1) not in html_text
    samples = [json.loads(ln) for ln in (out / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["text"] == long_text


def test_report_out_a_folder_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps({"kind": "toy"}))
    res = CliRunner().invoke(app, ["report", str(run_dir), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output
    assert not (tmp_path / "report.html").exists()
