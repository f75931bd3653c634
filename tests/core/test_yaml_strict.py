"""Duplicate YAML keys are errors naming both lines and the key's path (issue 29, item 10).

PyYAML keeps the last of two equal keys silently (``n: 8`` then ``n: 9`` gives 9); every config
and task file goes through ``synthbias.core.yaml``, which refuses them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synthbias.config import load_config
from synthbias.core.schema import ConfigError
from synthbias.core.yaml import DuplicateKeyError, load_strict, read_yaml_mapping
from synthbias.tasks.spec import TaskError, read_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_duplicate_key_in_config_names_both_lines(tmp_path: Path) -> None:
    p = tmp_path / "exp.yaml"
    p.write_text("kind: equilibrium\nstudy:\n  n: 8\n  levels: [0.3]\n  n: 9\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}:5: duplicate key study.n (first given at line 3)"


def test_duplicate_key_paths_and_lines() -> None:
    cases = {
        "a: 1\na: 2\n": ("a", 1, 2),
        "a:\n  - x: 1\n    y: 2\n    x: 3\n": ("a.0.x", 2, 4),
        "a: {b: {c: 1, c: 2}}\n": ("a.b.c", 1, 1),
        "yes: 1\ntrue: 2\n": ("true", 1, 2),  # the same bool key
    }
    for text, (path, first, again) in cases.items():
        with pytest.raises(DuplicateKeyError) as exc:
            load_strict(text)
        err = exc.value
        assert (err.key_path, err.first_line, err.line) == (path, first, again), text
        assert isinstance(err, yaml.YAMLError) and err.problem_mark.line + 1 == again
        assert f"duplicate key {path!r} at line {again} (first given at line {first})" == str(err)


def test_what_is_not_a_duplicate_loads_like_safe_load() -> None:
    for text in (
        "1: a\n'1': b\n",  # int and str keys differ
        "base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n",  # overriding a merged key
        "a: &a {k: 1}\nb: [*a, *a]\nc: *a\n",  # one node reached through aliases
        "- {k: 1}\n- {k: 2}\n",  # equal keys in different mappings
        "",
        "x\n",
    ):
        assert load_strict(text) == yaml.safe_load(text), text


def test_packaged_and_example_yaml_unchanged() -> None:
    files = sorted((ROOT / "src").rglob("*.yaml")) + sorted((ROOT / "examples").rglob("*.yaml"))
    assert len(files) > 10
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert load_strict(text) == yaml.safe_load(text), f


def test_task_files_and_other_readers(tmp_path: Path) -> None:
    p = tmp_path / "task.yaml"
    p.write_text("name: t\nmetrics:\n  a: 1\nname: u\n")
    with pytest.raises(
        TaskError, match=r"task\.yaml:4: duplicate key name \(first given at line 1\)"
    ):
        read_yaml(p)
    with pytest.raises(ValueError, match=r":4: duplicate key name"):
        read_yaml_mapping(p)
    # syntax errors keep their line
    p.write_text("a: [1\nb: 2\n")
    with pytest.raises(ValueError, match=r"task\.yaml:\d: invalid YAML"):
        read_yaml_mapping(p)


def test_user_data_files_name_the_duplicate(tmp_path: Path) -> None:
    """Every user-supplied YAML reader (axis lexicon, gender anchors, WEAT word sets and SEAT
    templates, task template files) refuses a repeated key with file:line."""
    from synthbias.lexicon.loader import LexiconError, load_axis
    from synthbias.measure.embedding import load_gender_anchors
    from synthbias.measure.weat import load_seat_templates, load_word_sets
    from synthbias.tasks.builders import _templates

    p = tmp_path / "user.yaml"
    p.write_text("name: x\nterms:\n  a: 1\n  a: 2\n")
    pattern = r"user\.yaml:4: duplicate key terms\.a \(first given at line 3\)"
    with pytest.raises(LexiconError, match=pattern):
        load_axis(p)
    for reader in (load_gender_anchors, load_word_sets, load_seat_templates):
        with pytest.raises(ValueError, match=pattern):
            reader(p)
    with pytest.raises(TaskError, match=pattern):
        _templates({"templates": str(p)}, "unused.yaml")
