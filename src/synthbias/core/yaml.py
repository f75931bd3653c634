"""Reading YAML so that every error can name the file and the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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


def read_yaml_mapping(
    path: str | Path, error: type[ValueError] = ValueError, what: str = "file"
) -> tuple[dict[str, Any], str]:
    """A YAML file's top-level mapping and its text; errors name the file and line.

    An empty file is an empty mapping. ``error`` is the exception type raised (e.g.
    :class:`ConfigError`), ``what`` names the kind of file in the "no such" message.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {what}")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise error(f"{where}: invalid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data, text
