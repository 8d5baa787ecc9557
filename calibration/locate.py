"""Where in a file a value sits: line and column of a YAML or JSON path, for error messages.

Readers validate parsed data; when a value is wrong they ask these helpers for its
position so the message names ``file: line L, column C``. Both are only called on the
error path, so they favour simplicity over speed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import yaml

Path_ = Sequence[str | int]


def yaml_position(text: str, path: Path_) -> tuple[int, int] | None:
    """1-based (line, column) of the node at `path` (mapping keys / sequence indices).

    When the path leads to a missing key, the position of the deepest existing node.
    """
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    for key in path:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(key):
                    nxt = v
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        if nxt is None:
            break
        node = nxt
    m = node.start_mark
    return m.line + 1, m.column + 1


def _line_col(text: str, i: int) -> tuple[int, int]:
    line = text.count("\n", 0, i) + 1
    return line, i - (text.rfind("\n", 0, i) + 1) + 1


def _ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def json_position(text: str, path: Path_) -> tuple[int, int] | None:
    """1-based (line, column) where the JSON value at `path` starts (None if not found)."""
    dec = json.JSONDecoder()
    i = _ws(text, 0)
    try:
        for key in path:
            if text[i] == "{" and isinstance(key, str):
                i = _ws(text, i + 1)
                while text[i] != "}":
                    k, i = dec.raw_decode(text, i)
                    i = _ws(text, i)
                    i = _ws(text, i + 1)  # ':'
                    if k == key:
                        break
                    _, i = dec.raw_decode(text, i)
                    i = _ws(text, i)
                    if text[i] == ",":
                        i = _ws(text, i + 1)
                else:
                    return None
            elif text[i] == "[" and isinstance(key, int):
                i = _ws(text, i + 1)
                for _ in range(key):
                    if text[i] == "]":
                        return None
                    _, i = dec.raw_decode(text, i)
                    i = _ws(text, i)
                    if text[i] == ",":
                        i = _ws(text, i + 1)
                if text[i] == "]":
                    return None
            else:
                return None
    except (IndexError, ValueError):
        return None
    return _line_col(text, i)


def where(path: object, pos: tuple[int, int] | None) -> str:
    """``file: line L, column C`` (or just ``file``)."""
    return f"{path}: line {pos[0]}, column {pos[1]}" if pos else str(path)
