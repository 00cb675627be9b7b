"""Check config values against a constructor's annotations before calling it.

A preset value of the wrong type (``head_width: wide``) would otherwise fail deep inside
``torch.nn`` with a message that names no setting. Only plain annotations are checked
(``int``, ``float``, ``bool``, ``str``, sequences of those, ``Optional``); anything else is
left to the constructor.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from typing import Any, Callable

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _scalar_ok(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is int:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    if kind is str:
        return isinstance(value, str)
    return True


def _problem(hint: Any, value: Any) -> str | None:
    """What is wrong with ``value`` for annotation ``hint``, or None (also for hints not checked)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _problem(inner[0], value) if len(inner) == 1 else None
    if hint in _NAMES:
        return None if _scalar_ok(hint, value) else f"must be {_NAMES[hint]}"
    if origin in (list, tuple, Sequence, typing.Sequence) and args and args[0] in (int, float):
        item = args[0]
        if not isinstance(value, (list, tuple)) or not all(_scalar_ok(item, v) for v in value):
            return f"must be a list of {'integers' if item is int else 'numbers'}"
        if item is int and any(v < 1 for v in value):   # widths and counts
            return "must be a list of positive integers"
    return None


def check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], where: str) -> None:
    """Raise :class:`KptoolError` naming the first argument whose value does not fit its annotation."""
    from kptool.errors import KptoolError

    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        hints = typing.get_type_hints(target)
    except Exception:   # unresolvable annotations: nothing to check against
        return
    for key, value in kwargs.items():
        problem = _problem(hints.get(key), value) if key in hints else None
        if problem:
            raise KptoolError(f"{where}: {key} {problem}, got {value!r}")
