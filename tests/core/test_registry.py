"""The registry (``synthbias.core.registry``): its own contract, and that one registration, made
from this file alone, reaches everything that reads it.

A new metric family shows up in ``synthbias.measure``, the audit (result, gate, report.html), the
CLI and the mitigation study's orientation table; a new mitigation in config validation, the
mitigation study's strategy lists and the recursive study's run; a new backend, task and study
likewise. Every registration made here is removed again in teardown.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import synthbias
from synthbias.cli import app
from synthbias.config import ExperimentConfig, parse_config
from synthbias.core.records import Record, read_jsonl
from synthbias.core.registry import (
    BACKENDS,
    METRIC_FAMILIES,
    MITIGATIONS,
    REQUIRED,
    STUDIES,
    TASKS,
    Registry,
    RegistryError,
    UnknownNameError,
)
from synthbias.core.schema import ConfigError
from synthbias.generate import generate_indexed, is_indexed, load_backend
from synthbias.generate.config import GeneratorConfig
from synthbias.generate.fake import FAKE_SENTENCES, FakeBackend
from synthbias.generate.protocol import Completion, Prompt, SamplingParams
from synthbias.generate.ray import backend_spec
from synthbias.measure.api import MeasureRequest, default_families, measure_corpus
from synthbias.measure.names import STEREO, is_canonical
from synthbias.measure.result import MetricResult
from synthbias.mitigate import strategy_names
from synthbias.studies.dispatch import experiment_kinds, run_experiment
from synthbias.studies.equilibrium.mitigations import after_generation
from synthbias.studies.mitigation.stats import orientation, orientation_table
from synthbias.tasks import TASKS_DIR, list_tasks, load_task, register_task

TEXTS = list(FAKE_SENTENCES[:12])

# --------------------------------------------------------------------------- the registry itself


def _toy_registry() -> Registry[Any]:
    return Registry(
        "gadget",
        fields={"size": REQUIRED, "tags": (), "note": ""},
        normalize=str.lower,
    )


def test_register_as_call_and_as_decorator() -> None:
    reg = _toy_registry()
    assert reg.register("one", len, size=1) is len

    @reg.register("two", size=2, tags=("big", "blue"))
    def two() -> int:
        return 2

    assert two() == 2 and reg.get("two") is two
    assert reg.names() == ("one", "two") and list(reg) == ["one", "two"] and len(reg) == 2
    assert reg.meta("one") == {"size": 1, "tags": (), "note": ""}  # defaults filled in
    assert "TWO" in reg and "three" not in reg and 3 not in reg  # normalised lookups
    assert reg.names(size=2) == ("two",) and reg.names(tags="blue") == ("two",)
    assert [e.name for e in reg.entries(tags="red")] == []
    with pytest.raises(TypeError):
        reg.meta("one")["size"] = 5  # type: ignore[index]  # metadata is read-only


def test_unknown_names_list_the_registered_ones() -> None:
    reg = _toy_registry()
    reg.register("one", len, size=1)
    reg.register("two", max, size=2)
    with pytest.raises(UnknownNameError, match=r"unknown gadget 'zero'; choose from one, two"):
        reg.get("zero")
    with pytest.raises(KeyError):  # a KeyError and a ValueError, as callers expect either
        reg.meta("zero")
    with pytest.raises(ValueError, match="choose from two"):
        reg.check("one", names=("two",))
    assert reg.check("one") == "one"
    assert str(UnknownNameError("plain message")) == "plain message"  # not KeyError's repr


def test_duplicates_are_refused_without_replace() -> None:
    reg = _toy_registry()
    reg.register("one", len, size=1, aliases=("uno",))
    with pytest.raises(RegistryError, match="already registered.*replace=True"):
        reg.register("One", min, size=1)  # the same name once normalised
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("other", min, size=1, aliases=("uno",))  # an alias is taken too
    reg.register("two", max, size=2)
    with pytest.raises(RegistryError, match="'uno' is taken by 'one'"):
        reg.register("two", max, size=2, aliases=("uno",), replace=True)
    assert reg.get("two") is max and reg.get("uno") is len  # a refused replace changes nothing
    reg.register("one", min, size=9, replace=True)
    assert reg.get("one") is min and reg.meta("one")["size"] == 9
    assert "uno" not in reg  # replacing drops the old entry's aliases


def test_aliases_find_the_entry_and_leave_with_it() -> None:
    reg = _toy_registry()
    reg.register("one", len, size=1, aliases=("uno", "eins"))
    assert reg.get("UNO") is len and reg.canonical("eins") == "one"
    assert reg.names() == ("one",)  # aliases are not listed
    assert reg.unregister("eins").name == "one"
    assert "uno" not in reg and "one" not in reg and len(reg) == 0
    with pytest.raises(UnknownNameError):
        reg.unregister("one")


def test_metadata_is_checked() -> None:
    reg = _toy_registry()
    with pytest.raises(RegistryError, match="unknown metadata colour; a gadget has size, tags"):
        reg.register("one", len, size=1, colour="red")
    with pytest.raises(RegistryError, match="missing metadata size"):
        reg.register("one", len)
    assert "one" not in reg  # a refused registration leaves nothing behind
    free = Registry("thing")  # no declared fields: anything goes
    free.register("x", len, whatever=1)
    assert free.meta("x") == {"whatever": 1}


def test_lazy_entries_load_once_on_first_use() -> None:
    reg = _toy_registry()
    calls: list[int] = []

    def loader() -> str:
        calls.append(1)
        return "heavy thing"

    reg.register("heavy", loader, lazy=True, size=3)
    assert calls == [] and reg.meta("heavy")["size"] == 3  # metadata needs no loading
    assert reg.get("heavy") == "heavy thing" == reg.get("heavy")
    assert calls == [1]


# --------------------------------------------------------------------------- a new metric family

TOY_FAMILY = "toy"
TOY_METRIC = "toy.gender.she_share"
TOY_TITLE = "Toy: share of texts that say she"


def measure_toy(req: MeasureRequest) -> dict[str, MetricResult]:
    """Share of texts with the word "she" (a stand-in for a real family)."""
    per_text = [float("she" in t.lower().replace(".", " ").split()) for t in req.texts]
    value = sum(per_text) / len(per_text)
    res = MetricResult(
        name="she_share",
        value=value,
        per_group={"she": value},
        per_sample=per_text,
        n=len(per_text),
    )
    return {"gender.she_share": res}


@pytest.fixture
def toy_family() -> Iterator[str]:
    METRIC_FAMILIES.register(
        TOY_FAMILY,
        measure_toy,
        title=TOY_TITLE,
        default=True,
        orientations={TOY_METRIC: STEREO},
    )
    yield TOY_FAMILY
    if TOY_FAMILY in METRIC_FAMILIES:
        METRIC_FAMILIES.unregister(TOY_FAMILY)


def test_new_family_is_measured(toy_family: str) -> None:
    res = synthbias.measure(TEXTS, families=["rule", toy_family], n_resamples=50)
    assert TOY_METRIC in res and "rule.gender.stereotype_rate" in res
    assert list(res)[-1] == TOY_METRIC  # families in registration order
    assert res[TOY_METRIC].value == pytest.approx(
        sum("she" in t.lower().replace(".", " ").split() for t in TEXTS) / len(TEXTS)
    )
    # a default family runs when none are named (here: without the encoder families)
    assert toy_family in default_families(has_reference=False)
    alone = measure_corpus(TEXTS, families=[toy_family])
    assert list(alone) == [TOY_METRIC] and is_canonical(TOY_METRIC)


def test_new_family_in_the_audit_and_its_report(toy_family: str, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    result = synthbias.audit(
        TEXTS,
        families=["rule", toy_family],
        max={TOY_METRIC: 0.01},  # the gate reads the new metric too
        n_resamples=50,
        out=out,
    )
    assert toy_family in result.families and TOY_METRIC in result.metrics
    assert [c.metric for c in result.failures] == [TOY_METRIC]
    saved = json.loads((out / "audit.json").read_text())
    assert TOY_METRIC in saved["metrics"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(TOY_METRIC in r for r in rows)  # its per-text scores
    html = (out / "report.html").read_text()
    assert TOY_TITLE in html and TOY_METRIC in html
    # the report is rebuilt from the folder (synthbias report) with the same heading
    assert TOY_TITLE in synthbias.report(out).read_text()


def test_new_family_in_the_cli(toy_family: str, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    args = ["measure", str(corpus), "--metrics", f"rule,{toy_family}", "--n-resamples", "50"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    assert TOY_METRIC in json.loads((tmp_path / "m.json").read_text())["metrics"]


def test_new_family_in_the_orientation_table(toy_family: str) -> None:
    assert orientation(TOY_METRIC) is STEREO and orientation_table()[TOY_METRIC] is STEREO
    # the mitigation study may now report it as a property of the training data
    cfg = parse_config(
        {"kind": "mitigation", "mitigation_study": {"families": {toy_family: TOY_METRIC}}}
    )
    assert cfg.mitigation_study.families[toy_family] == TOY_METRIC
    METRIC_FAMILIES.unregister(toy_family)
    with pytest.raises(KeyError, match="no orientation"):
        orientation(TOY_METRIC)
    with pytest.raises(ConfigError, match="no orientation"):
        parse_config(
            {"kind": "mitigation", "mitigation_study": {"families": {toy_family: TOY_METRIC}}}
        )


def test_unknown_family_lists_the_registered_ones(toy_family: str) -> None:
    with pytest.raises(
        ValueError, match=f"choose from rule, lexical, embedding, misalignment, {toy_family}"
    ):
        measure_corpus(TEXTS, families=["nope"])


# --------------------------------------------------------------------------- a new mitigation

TOY_STRATEGY = "toy_mark"
MARK = " [toy]"


def toy_mark(
    records: Sequence[Record],
    settings: object,
    seed: int,
    *,
    bias_type: str | None = None,
    only_source: str | None = None,
) -> list[Record]:
    """Marks every text it may edit (a stand-in for a real data-level strategy)."""
    return [
        r.model_copy(update={"text": r.text + MARK, "meta": {**r.meta, "mitigation": "toy"}})
        if only_source is None or r.source == only_source
        else r
        for r in records
    ]


@pytest.fixture
def toy_strategy() -> Iterator[str]:
    MITIGATIONS.register(
        TOY_STRATEGY, toy_mark, pipelines=("equilibrium", "inheritance"), kind="data"
    )
    yield TOY_STRATEGY
    if TOY_STRATEGY in MITIGATIONS:
        MITIGATIONS.unregister(TOY_STRATEGY)


def _eq_config(strategies: list[str]) -> ExperimentConfig:
    return parse_config(
        {
            "generator": {"backend": "fake", "cache": "off"},
            "study": {
                "levels": [0.3],
                "generations": 1,
                "n": 12,
                "mitigation": {"strategies": strategies},
            },
            "measure": {"embedding": False, "n_resamples": 50},
        }
    )


def test_new_mitigation_is_a_valid_choice_everywhere(toy_strategy: str) -> None:
    assert toy_strategy in strategy_names("equilibrium")
    assert toy_strategy in strategy_names("inheritance")
    cfg = parse_config(
        {
            "kind": "mitigation",
            "inheritance": {"mitigation": {"strategies": [toy_strategy]}},
            "mitigation_study": {
                "equilibrium": [toy_strategy, f"swap+{toy_strategy}"],
                "inheritance": [toy_strategy],
            },
        }
    )
    assert cfg.mitigation_study.equilibrium == [toy_strategy, f"swap+{toy_strategy}"]
    MITIGATIONS.unregister(toy_strategy)
    with pytest.raises(ConfigError, match=f"unknown strategy '{toy_strategy}'"):
        parse_config({"kind": "mitigation", "mitigation_study": {"equilibrium": [toy_strategy]}})
    with pytest.raises(ConfigError, match="study.mitigation.strategies"):
        _eq_config([toy_strategy])


def test_new_mitigation_runs_in_the_recursive_study(toy_strategy: str, tmp_path: Path) -> None:
    cfg = _eq_config(["swap", toy_strategy])
    records = [Record(id=f"r{i}", text=t, source="synthetic") for i, t in enumerate(TEXTS)]
    edited = after_generation(records, cfg.study, seed=0)
    assert all(r.text.endswith(MARK) for r in edited)  # swap first, then the new one
    assert any(r.meta.get("mitigation") == "toy" for r in edited)
    synthbias.run(cfg, out=tmp_path)
    gen1 = read_jsonl(tmp_path / "corpora" / "level-0.3" / "gen-1.jsonl")
    raw1 = read_jsonl(tmp_path / "corpora" / "level-0.3" / "raw-gen-1.jsonl")
    assert gen1 and all(r.text.endswith(MARK) for r in gen1)
    assert not any(r.text.endswith(MARK) for r in raw1)


# --------------------------------------------------------------------------- backends


class IndexedFake(FakeBackend):
    """The fake with its own ``generate_indexed`` (records the calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.indexed_calls = 0

    def generate_indexed(
        self,
        prompts: Sequence[Prompt],
        params: SamplingParams,
        indices: Sequence[int],
        on_result: Any = None,
    ) -> list[Completion]:
        self.indexed_calls += 1
        return generate_indexed(FakeBackend(), prompts, params, indices, on_result)


@pytest.fixture
def toy_backend() -> Iterator[str]:
    BACKENDS.register(
        "toy-gen", IndexedFake, indexed=True, requires={"base_url": "where it listens"}
    )
    yield "toy-gen"
    BACKENDS.unregister("toy-gen")


def test_new_backend_in_loader_and_config(toy_backend: str) -> None:
    assert isinstance(load_backend("Toy_Gen"), IndexedFake)  # spelling normalised
    cfg = GeneratorConfig(backend=toy_backend, base_url="http://x")
    assert cfg.backend == toy_backend
    with pytest.raises(ValueError, match=f"backend '{toy_backend}' needs base_url"):
        GeneratorConfig(backend=toy_backend)
    with pytest.raises(ValueError, match="unknown backend 'gpt9'; choose from llamacpp, hf"):
        GeneratorConfig(backend="gpt9")


def test_generate_indexed_is_the_same_on_every_backend(toy_backend: str) -> None:
    params = SamplingParams(max_tokens=8, seed=3)
    prompts = [f"prompt {i}" for i in range(6)]
    full = FakeBackend().generate(prompts, params)
    want = [4, 1, 5]
    plain, own = FakeBackend(), load_backend(toy_backend)
    assert not is_indexed(plain) and is_indexed(own)
    seen: list[int] = []
    got = generate_indexed(
        plain, [prompts[i] for i in want], params, want, lambda j, c: seen.append(j)
    )
    assert [c.text for c in got] == [full[i].text for i in want] and seen == [0, 1, 2]
    got = generate_indexed(own, [prompts[i] for i in want], params, want)
    assert [c.text for c in got] == [full[i].text for i in want] and own.indexed_calls == 1
    assert BACKENDS.names(indexed=True) == ("openai", "vllm", toy_backend)


@pytest.mark.parametrize("kind", ["llamacpp", "hf", "fake", "openai", "vllm"])
def test_backend_config_kwargs_match_the_ray_spec(kind: str) -> None:
    """Each backend's registered ``config_kwargs`` gives what ``backend_spec`` builds it with."""
    cfg = GeneratorConfig(
        backend=kind,
        base_url="http://127.0.0.1:1/v1",
        model_path="m.gguf",
        n_threads=None,
        ray={"num_cpus": 3},
        options={"extra": 1},
    )
    spec = backend_spec(cfg, seed=7)
    assert spec.kwargs == {**BACKENDS.meta(kind)["config_kwargs"](cfg, 7), "extra": 1}


# --------------------------------------------------------------------------- tasks and studies


def test_tasks_are_registered_with_their_spec(tmp_path: Path) -> None:
    packaged = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
    assert list_tasks() == packaged == sorted(TASKS.names())
    meta = TASKS.meta("coreference")
    assert meta["kind"] == "classification" and meta["axis"] == "gender" and meta["bias_related"]
    text = (
        (TASKS_DIR / "coreference.yaml")
        .read_text()
        .replace("name: coreference", "name: coreference_copy")
    )
    (tmp_path / "copy.yaml").write_text(text)
    shutil.copytree(TASKS_DIR / "templates", tmp_path / "templates", dirs_exist_ok=True)
    try:
        assert register_task(tmp_path / "copy.yaml") == "coreference_copy"
        assert "coreference_copy" in list_tasks()
        assert load_task("coreference_copy").name == "coreference_copy"
    finally:
        TASKS.unregister("coreference_copy")
    assert list_tasks() == packaged


def test_studies_are_registered_with_section_runner_and_printer() -> None:
    assert set(experiment_kinds()) >= {"equilibrium", "inheritance", "mitigation"}
    assert "audit" in STUDIES and "audit" not in experiment_kinds()  # not run from a config
    fields = set(ExperimentConfig.model_fields)
    for kind in experiment_kinds():
        meta = STUDIES.meta(kind)
        assert {meta["section"], *meta["uses"]} <= fields, kind
        assert callable(STUDIES.get(kind)) and callable(meta["printer"]) and meta["report"]
    with pytest.raises(ConfigError, match="unknown experiment kind 'audit'; choose from"):
        parse_config({"kind": "audit"})


def test_new_study_runs_from_a_config(tmp_path: Path) -> None:
    def run_toy(config: Any, out: Any, progress: Any = None, resume: bool = True) -> dict:
        Path(out).mkdir(parents=True, exist_ok=True)
        return {"kind": "toy_study", "seed": config.seed}

    def print_toy(results: dict, console: Any, out: Any) -> None:
        console.print(f"toy study done, seed {results['seed']}")

    STUDIES.register("toy_study", run_toy, section="study", printer=print_toy)
    try:
        cfg = parse_config({"kind": "toy_study", "seed": 5})
        assert run_experiment(cfg, tmp_path / "a") == {"kind": "toy_study", "seed": 5}
        assert cfg.content_hash() != parse_config({"kind": "toy_study", "seed": 6}).content_hash()
        (tmp_path / "toy.yaml").write_text("kind: toy_study\nseed: 4\n")
        res = CliRunner().invoke(
            app, ["run", str(tmp_path / "toy.yaml"), "-o", str(tmp_path / "b")]
        )
        assert res.exit_code == 0, res.output
        assert "toy study done, seed 4" in res.output
    finally:
        STUDIES.unregister("toy_study")
    with pytest.raises(ConfigError, match="unknown experiment kind 'toy_study'"):
        parse_config({"kind": "toy_study"})
