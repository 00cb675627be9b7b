"""JSON and YAML parsing that turns hostile documents into one clear :class:`InputError`.

- JSON nested deeper than Python's recursion limit raises ``RecursionError`` in :func:`json.loads`;
- a YAML "alias bomb" (anchors referring to anchors, nine times over, a dozen levels deep) is small
  on disk but billions of nodes once expanded, which any later walk over it (copying, printing,
  validating) would do. Its expanded size is counted on the composed node graph first.
"""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

from kptool.errors import InputError

MAX_YAML_NODES = 100_000


def parse_json(data: bytes | str, where: str | os.PathLike, what: str = "JSON file") -> Any:
    """``json.loads`` of a file's bytes or text; any problem is an InputError naming ``where``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text)
    except UnicodeDecodeError:
        raise InputError(where, f"not a {what} (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise InputError(where, f"not a {what} ({e})") from None
    except RecursionError:
        raise InputError(where, f"not a {what}: nested too deeply") from None


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    if id(node) in memo:
        return memo[id(node)]
    if depth > 200:
        raise RecursionError
    memo[id(node)] = 1   # a node seen again while being counted: recursive, counted once
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, memo, depth + 1) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1) for k, v in node.value)
    memo[id(node)] = size
    return size


def parse_yaml(text: str, where: str | os.PathLike) -> Any:
    """``yaml.safe_load`` that refuses alias bombs and very deep nesting (InputError naming ``where``)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node, {}) > MAX_YAML_NODES:
            raise InputError(where, f"YAML aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InputError(where, f"invalid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(where, "YAML nested too deeply") from None
