"""Reading YAML so that every error can name the file and the line.

PyYAML keeps the last of two equal keys in a mapping without a word (``n: 8`` then ``n: 9``
gives 9), so a config edited by appending a key silently ignores the earlier one. Every user
file read here goes through :func:`load_strict`, which refuses duplicate keys and names both
lines and the key's path; packaged data files may use ``yaml.safe_load`` directly.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping gives the same key twice; ``key_path`` is dotted (``study.n``, ``tasks.0.x``)."""

    def __init__(self, key_path: str, first: yaml.Mark, again: yaml.Mark) -> None:
        super().__init__(
            context=f"first given at line {first.line + 1}",
            context_mark=first,
            problem=f"duplicate key {key_path!r}",
            problem_mark=again,
        )
        self.key_path = key_path
        self.first_line = first.line + 1
        self.line = again.line + 1

    def __str__(self) -> str:
        return (
            f"duplicate key {self.key_path!r} at line {self.line} "
            f"(first given at line {self.first_line})"
        )


def _key_id(loader: yaml.SafeLoader, node: yaml.Node) -> Hashable:
    """What the key becomes in the Python dict (so ``1``/``"1"`` differ, ``yes``/``true`` not)."""
    if node.tag == "tag:yaml.org,2002:merge":
        return ("<merge>",)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_object(node, deep=True)
        if isinstance(value, Hashable):
            return value
    return ("<node>", node.tag, node.start_mark.line, node.start_mark.column)


def _check_unique_keys(loader: yaml.SafeLoader, root: yaml.Node) -> None:
    """Raise :class:`DuplicateKeyError` for the first mapping that repeats a key.

    Nodes reached again through aliases are checked once (no blow-up on alias bombs). Keys
    brought in by a merge (``<<: *base``) live in another node, so overriding them is allowed.
    """
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Hashable, yaml.Mark] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "<key>"
                sub = f"{path}.{name}" if path else name
                kid = _key_id(loader, key)
                if kid in first:
                    raise DuplicateKeyError(sub, first[kid], key.start_mark)
                first[kid] = key.start_mark
                stack.append((value, sub))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, f"{path}.{i}" if path else str(i)))


def load_strict(text: str) -> Any:
    """``yaml.safe_load(text)``, except that a repeated mapping key raises
    :class:`DuplicateKeyError` (a ``yaml.YAMLError``, with ``problem_mark`` at the repeat)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(loader, node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def yaml_line(text: str, loc: list[str] | tuple[str, ...]) -> int | None:
    """1-based line of the deepest YAML node found along ``loc`` (mapping keys and list
    indices as strings); ``None`` when the text does not parse or the first key is absent."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for k, v in node.value:
                if str(k.value) == part:
                    line = k.start_mark.line + 1
                    nxt = v
                    break
            if nxt is None:
                return line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def yaml_error_message(path: str | Path, exc: yaml.YAMLError) -> str:
    """``file:line: ...`` for a YAML error raised while reading ``path``."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark else str(path)
    if isinstance(exc, DuplicateKeyError):
        return f"{where}: duplicate key {exc.key_path} (first given at line {exc.first_line})"
    return f"{where}: invalid YAML: {exc}"


def read_yaml_mapping(
    path: str | Path, error: type[ValueError] = ValueError, what: str = "file"
) -> tuple[dict[str, Any], str]:
    """A YAML file's top-level mapping and its text; errors name the file and line.

    An empty file is an empty mapping. A key given twice in one mapping is an error naming both
    lines. ``error`` is the exception type raised (e.g. :class:`ConfigError`), ``what`` names
    the kind of file in the "no such" message.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    text = path.read_text(encoding="utf-8")
    try:
        data = load_strict(text)
    except yaml.YAMLError as exc:
        raise error(yaml_error_message(path, exc)) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data, text
