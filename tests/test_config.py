from pathlib import Path

import pytest

from synthbias.config import ExperimentConfig, load_config, parse_config
from synthbias.core.schema import ConfigError


def test_defaults_round_trip_yaml(tmp_path: Path) -> None:
    cfg = ExperimentConfig()
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    again = load_config(p)
    assert again == cfg
    assert again.content_hash() == cfg.content_hash()
    assert cfg.study.levels == [0.1, 0.3, 0.6]


def test_hash_changes_with_content() -> None:
    a = ExperimentConfig()
    b = parse_config({"study": {"n": 50}})
    assert a.content_hash() != b.content_hash()


def test_unknown_key_named_with_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("kind: equilibrium\nseed: 1\nstudy:\n  levels: [0.1]\n  generashuns: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert "study.generashuns" in msg and "unknown key" in msg
    assert f"{p}:5" in msg


def test_bad_value_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("kind: equilibrium\nstudy:\n  levels: [0.1, 1.5]\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "study.levels.1" in str(exc.value)
    assert f"{p}:3" in str(exc.value)


def test_bad_backend_and_types() -> None:
    with pytest.raises(ConfigError, match="generator.backend"):
        parse_config({"generator": {"backend": "gpt9"}})
    with pytest.raises(ConfigError, match="sampling.top_p"):
        parse_config({"sampling": {"top_p": 0}})
    with pytest.raises(ConfigError, match="study.levels"):
        parse_config({"study": {"levels": []}})


def test_invalid_yaml_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("study: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_example_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1] / "examples"
    files = sorted(root.glob("*.yaml"))
    assert files, "no example configs"
    for f in files:
        load_config(f)


def test_unknown_prompt_lists_choices() -> None:
    with pytest.raises(ConfigError, match="study.prompt.*self_instruct_chat"):
        parse_config({"study": {"prompt": "nope"}})


@pytest.mark.parametrize(
    "name", ["inheritance", "inheritance_full", "mitigation", "mitigation_full"]
)
def test_example_task_sizes_are_defined(name: str, benchmarks: Path) -> None:
    """Every example's tasks.sizes is at or above each task's minimum on the real items (the
    mitigation example once failed this only after its 26-minute recursive part)."""
    from synthbias.studies.inheritance.runner import check_task_sizes

    cfg = load_config(Path(__file__).resolve().parents[1] / "examples" / f"{name}.yaml")
    cfg = cfg.model_copy(
        update={"tasks": cfg.tasks.model_copy(update={"data_dir": str(benchmarks)})}
    )
    sizes = check_task_sizes(cfg)
    assert sizes and all(n >= 2 for n in sizes.values())
    for task, n in cfg.tasks.sizes.items():
        assert sizes[task] == n


@pytest.mark.parametrize("text", ["", "\n# only a comment\n", "seed: 3\nstudy: {n: 8}\n"])
def test_config_file_without_kind_is_an_error(tmp_path: Path, text: str) -> None:
    """An empty file used to run the whole default study; a file must name its study."""
    p = tmp_path / "exp.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=rf"{p}:1: the config (is empty|has no 'kind:' key)"):
        load_config(p)
    p.write_text("kind: equilibrium\n" + text)
    assert load_config(p).kind == "equilibrium"
    assert parse_config({}).kind == "equilibrium"  # a Python mapping keeps its default


def test_check_inputs_reads_the_named_files(tmp_path: Path) -> None:
    from synthbias.config import check_inputs

    real = tmp_path / "real.csv"
    text = f"kind: inheritance\ngenerator:\n  model_path: {tmp_path}/no.gguf\ninheritance:\n"
    text += f"  real_data: {real}\n"
    p = tmp_path / "c.yaml"
    p.write_text(text)
    cfg = load_config(p)  # loading reads no data file: a finished run's config always loads
    with pytest.raises(ConfigError) as exc:
        check_inputs(cfg, p, text)
    msg = str(exc.value)
    assert f"{p}:3: generator.model_path: no such file: {tmp_path}/no.gguf" in msg
    assert f"{p}:5: inheritance.real_data: {real}: no such file" in msg
    real.write_text("id,sentence\n1,hello\n")
    with pytest.raises(ConfigError, match=r"real_data: .*real\.csv:1: no column 'text'"):
        check_inputs(cfg)
    real.write_text("id,text\n1,hello\n")
    gguf = tmp_path / "no.gguf"
    gguf.write_bytes(b"GGUF")
    check_inputs(cfg)
    eq = parse_config({"kind": "equilibrium", "inheritance": {"real_data": "missing.csv"}})
    check_inputs(eq)  # a section the study does not read is not checked
