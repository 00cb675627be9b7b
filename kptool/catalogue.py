"""What exists, by kind: the registered models, backbones, losses, metrics, detection methods,
prepare sources and the shipped presets, each with a one-line description (``kptool list``)."""

from __future__ import annotations

from typing import Callable

from kptool.errors import KptoolError


def _registry(module: str, name: str) -> Callable[[], list[tuple[str, str]]]:
    def entries() -> list[tuple[str, str]]:
        import importlib

        return getattr(importlib.import_module(module), name).items()
    return entries


def _presets() -> list[tuple[str, str]]:
    from kptool.train.config import available_presets, load_preset

    out = []
    for name in available_presets():
        text = " ".join(str(load_preset(name).get("description") or "").split())
        out.append((name, text))
    return out


def _methods() -> list[tuple[str, str]]:
    from kptool.baselines import BASELINES

    trained = ("checkpoint", "a trained model: --checkpoint RUN_OR_FILE, or --category NAME for shipped weights")
    return [trained, *BASELINES.items()]


KINDS: dict[str, Callable[[], list[tuple[str, str]]]] = {
    "models": _registry("kptool.models", "MODELS"),
    "backbones": _registry("kptool.models.backbones", "BACKBONES"),
    "losses": _registry("kptool.losses", "LOSSES"),
    "metrics": _registry("kptool.metrics", "METRICS"),
    "presets": _presets,
    "methods": _methods,
    "sources": _registry("kptool.data.sources", "SOURCES"),
}


def catalogue(kind: str) -> list[tuple[str, str]]:
    """``(name, one-line description)`` of everything of ``kind`` (one of :data:`KINDS`)."""
    if kind not in KINDS:
        raise KptoolError(f"unknown kind {kind!r} to list: expected one of {', '.join(KINDS)}")
    return KINDS[kind]()
