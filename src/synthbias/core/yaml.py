"""Where in a YAML text a key path lies, so config errors can name the line."""

from __future__ import annotations

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
