"""One registry mechanism for everything a preset or a command picks by name.

Models, backbones, losses, metrics, detection methods and prepare sources each have
one :class:`Registry`. An entry is registered with a decorator, carries a one-line
description (the first line of its docstring unless given), and is built from a
config section ``{name: ..., **kwargs}`` with its keyword arguments checked against
the constructor's signature first, so a typo in a preset is one clear error instead
of a ``TypeError`` deep inside a constructor.

    BACKBONES = Registry("backbone")

    @BACKBONES.register("pointnet")
    class PointNet(nn.Module):
        '''PointNet (Qi et al. 2017): shared MLPs and a max-pool.'''

    BACKBONES.build({"name": "pointnet", "out_channels": 128})
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, TypeVar

from kptool.errors import KptoolError
from kptool.kwargs_check import check_kwargs

T = TypeVar("T")


def first_docstring_line(obj: Any) -> str:
    """The first non-empty line of ``obj``'s docstring, or '' when it has none."""
    doc = inspect.getdoc(obj) or ""
    return next((line.strip() for line in doc.splitlines() if line.strip()), "")


class Registry:
    """Named entries of one kind (``kind`` names them in error messages: "unknown backbone 'x'")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._descriptions: dict[str, str] = {}

    def register(self, name: str, description: str | None = None) -> Callable[[T], T]:
        """Decorator: register a class or function under ``name``.

        Registering the same object twice is harmless (modules can be re-imported);
        another object under a taken name is a programming error (ValueError).
        """
        def add(obj: T) -> T:
            self.add(name, obj, description)
            return obj
        return add

    def add(self, name: str, obj: Any, description: str | None = None) -> None:
        """Register ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} name {name!r} is already registered to {self._entries[name]!r}")
        self._entries[name] = obj
        self._descriptions[name] = description if description is not None else first_docstring_line(obj)

    def get(self, name: Any) -> Any:
        """The entry registered as ``name``; KptoolError listing the known names otherwise."""
        if not isinstance(name, str) or name not in self._entries:
            raise KptoolError(f"unknown {self.kind} {name!r} (available: {', '.join(sorted(self._entries))})")
        return self._entries[name]

    def describe(self, name: str) -> str:
        """The one-line description of ``name``."""
        self.get(name)
        return self._descriptions[name]

    def build(self, cfg: dict[str, Any], **extra: Any) -> Any:
        """Call the entry ``cfg["name"]`` with the other keys of ``cfg`` (and ``extra``) as kwargs.

        Raises:
            KptoolError: unknown name, or keyword arguments the constructor does not take.
        """
        if not isinstance(cfg, dict):
            raise KptoolError(f"a {self.kind} section must be a mapping with a 'name', got {cfg!r}")
        kwargs = {k: v for k, v in cfg.items() if k != "name"}
        kwargs.update(extra)
        name = cfg.get("name")
        obj = self.get(name)
        try:
            inspect.signature(obj).bind(**kwargs)
        except TypeError as e:
            raise KptoolError(f"{self.kind} {name!r}: {e}") from None
        check_kwargs(obj, kwargs, f"{self.kind} {name!r}")
        try:
            return obj(**kwargs)
        except (TypeError, ValueError, OverflowError) as e:   # a value in range for its type, not for its use
            raise KptoolError(f"{self.kind} {name!r} cannot be built from these settings: {e}") from None

    def items(self) -> list[tuple[str, str]]:
        """``(name, description)`` of every entry, sorted by name."""
        return [(name, self._descriptions[name]) for name in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
