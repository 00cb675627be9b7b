"""Training configuration: presets, ``--set`` overrides, validation.

A configuration is a plain dict with the sections of a preset YAML file::

    base: skeleton-mutual          # optional: start from this preset, then only the keys that differ
    name: skeleton-mutual          # informational
    description: ...
    model:                         # kwargs of the registered model class
      name: skeleton-mutual
      num_keypoints: 10            # (models that have keypoints)
      backbone: {name: pointnet2-msg, ...}       # kptool.models.backbones.BACKBONES
      loss: {name: mutual-reconstruction, ...}   # kptool.losses.LOSSES
    train: {epochs: 80, batch_size: 8, val_metrics: [loss, das], best: {metric: das, mode: max}, ...}
    data: {points: 2048}

A preset with ``base:`` is merged onto its base key by key; a nested section whose
``name`` differs from the base's replaces it whole (another model or loss keeps
none of the old one's keys). :func:`resolve_config` loads a preset, applies
``section.key=value`` overrides and returns the validated config with every default
filled in; that resolved dict is what a run saves as ``config.yaml`` and stores in its
checkpoints. Configs stored by older versions are rewritten into today's form
(:func:`validate_config`), so old runs and weights load unchanged.
"""

from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from kptool.errors import InputError, KptoolError
from kptool.io.safe_load import parse_yaml

SECTIONS = ("base", "name", "description", "model", "train", "data")

OPTIMIZERS = ("adadelta", "adam", "adamw", "sgd")
SCHEDULERS = ("none", "step", "cosine")
BEST_MODES = ("min", "max")
# kptool 0.1's train.best_metric, as a best rule (auto: das, or the loss without annotations)
LEGACY_BEST = {"auto": {"metric": "das", "mode": "max"}, "das": {"metric": "das", "mode": "max"},
               "val_loss": {"metric": "loss", "mode": "min"}}

# Every key of the ``train:`` section with its default. Reference values (Skeleton
# Merger code): Adadelta with eps 1e-2 (set in the presets), lr 1, batch 8, 80 epochs.
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 80,
    "batch_size": 8,            # shapes per step and per process (must be even for paired models)
    "optimizer": "adadelta",
    "lr": 1.0,
    "weight_decay": 0.0,
    "optimizer_options": {},    # extra keyword arguments of the torch optimiser (presets: {eps: 0.01})
    "scheduler": "none",
    "scheduler_options": {},    # step: step_size, gamma; cosine: eta_min (T_max = epochs)
    "grad_clip": None,          # max gradient norm, or None
    "seed": 0,
    "val_every": 1,             # validate every N epochs (and after the last); 0 = never
    "val_split": "val",
    "val_metrics": ["loss", "das"],   # "loss" (the training objective) and registered metrics (kptool list metrics)
    # checkpoints/best.pt: the validation value to follow and whether higher (max) or lower
    # (min) is better; a value the validation split cannot give (no annotations) falls back to the loss
    "best": {"metric": "das", "mode": "max"},
    "keep_every": 0,            # also keep checkpoints/epoch-NNN.pt every N epochs; 0 = last + best only
    "num_workers": 0,           # DataLoader worker processes
    "init": None,               # a run or checkpoint whose backbone weights the model starts from (fine-tuning)
    "label_fraction": 1.0,      # train on this class-stratified, seeded fraction of the train split
}
# points: per shape (prepared datasets); image_size: square side images are resized to (rendered datasets; None: as rendered)
DATA_DEFAULTS: dict[str, Any] = {"points": 2048, "image_size": None}
MAX_EPOCHS = 1_000_000   # more is a typo (1e40), not a plan

# Keys that may change when a run is resumed; anything else would not continue the same run.
RESUMABLE_KEYS = ("train.epochs", "train.val_every", "train.keep_every", "train.num_workers")


def available_presets() -> list[str]:
    """Names of the presets shipped in ``kptool.presets``."""
    folder = resources.files("kptool.presets")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def merge_sections(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` laid over ``base`` key by key; a mapping whose ``name`` differs replaces the base's whole."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and value.get("name", old.get("name")) == old.get("name"):
            out[key] = merge_sections(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_preset(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Read a preset by name (shipped with kptool) or from a YAML file path, with its ``base:`` merged in.

    The result is the raw YAML content (no defaults filled); see :func:`resolve_config`.
    A ``base:`` is a shipped preset's name or a YAML path (relative to the preset's folder).
    """
    doc = _read_preset(name_or_path)
    base = doc.pop("base", None)
    if base is None:
        return doc
    if not isinstance(base, str):
        raise InputError(str(name_or_path), f"base: must be a preset name or YAML path, got {base!r}")
    if "/" in base or base.endswith((".yaml", ".yml")):
        here = Path(str(name_or_path)).parent if "/" in str(name_or_path) or Path(str(name_or_path)).is_file() \
            else Path(".")
        base = str(here / base)
    if base in _seen or base == str(name_or_path):
        raise InputError(str(name_or_path), f"base: presets inherit from each other in a cycle ({base})")
    return merge_sections(load_preset(base, (*_seen, str(name_or_path))), doc)


def _read_preset(name_or_path: str | Path) -> dict[str, Any]:
    """The YAML mapping of one preset file (shipped name or path)."""
    text, where = None, str(name_or_path)
    shipped = resources.files("kptool.presets") / f"{name_or_path}.yaml"
    if "/" not in str(name_or_path) and shipped.is_file():
        text = shipped.read_text(encoding="utf-8")
    else:
        path = Path(name_or_path)
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise InputError(path, f"unreadable preset ({e})") from None
    if text is None:
        raise KptoolError(f"unknown preset {str(name_or_path)!r}: neither a YAML file nor one of "
                          f"{', '.join(available_presets()) or '(none shipped)'}")
    doc = parse_yaml(text, where)
    if not isinstance(doc, dict):
        raise InputError(where, "a preset must be a YAML mapping with model:, train: and data: sections")
    return doc


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-3"`` -> ``(["train", "lr"], 0.001)``; the value is read as YAML."""
    key, sep, raw = text.partition("=")
    path = [k.strip() for k in key.split(".")]
    if not sep or not all(path):
        raise KptoolError(f"bad override {text!r}: expected section.key=value, e.g. train.lr=0.5")
    try:
        value = parse_yaml(raw, f"--set {key}") if raw.strip() else None
    except InputError:
        value = raw
    return path, value


def apply_overrides(config: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of ``config`` with each ``a.b=value`` override set (sections are created as needed)."""
    out = copy.deepcopy(config)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] not in SECTIONS:
            raise KptoolError(f"bad override {text!r}: unknown section {path[0]!r} "
                              f"(expected one of {', '.join(SECTIONS)})")
        node = out
        for k in path[:-1]:
            if node.get(k) is None:
                node[k] = {}
            if not isinstance(node[k], dict):
                raise KptoolError(f"bad override {text!r}: {k!r} is not a section")
            node = node[k]
        node[path[-1]] = value
    return out


def _number(section: str, key: str, value: Any, kind: type, minimum: float | None = None,
            allow_none: bool = False, maximum: float | None = None) -> Any:
    """Coerce a YAML value to ``kind``; PyYAML reads ``1e-3`` (no dot) as a string, so accept that."""
    if value is None and allow_none:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if not math.isfinite(number):
            raise KptoolError(f"{section}.{key} must be a finite number, got {value!r}")
        if kind is int:
            if number != int(number):
                raise ValueError
            number = int(number)
    except (TypeError, ValueError):
        raise KptoolError(f"{section}.{key} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}") from None
    if minimum is not None and number < minimum:
        raise KptoolError(f"{section}.{key} must be at least {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise KptoolError(f"{section}.{key} must be at most {maximum}, got {value!r}")
    return number


def _options(section: str, key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise KptoolError(f"{section}.{key} must be a mapping, got {value!r}")
    # Optimiser/scheduler kwargs are numbers almost always; convert "1e-8" strings.
    out = {}
    for k, v in value.items():
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                pass
        out[k] = v
    return out


def _check_choice(section: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise KptoolError(f"{section}.{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _unknown_keys(section: str, given: dict, known: Iterable[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise KptoolError(f"unknown {section} key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})")


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check every key and fill in defaults; returns a new, resolved config."""
    if not isinstance(config, dict):
        raise KptoolError("a configuration must be a mapping")
    _unknown_keys("top-level", config, SECTIONS)
    for section in ("model", "train", "data"):
        if config.get(section) is not None and not isinstance(config[section], dict):
            raise KptoolError(f"{section}: must be a mapping, got {config[section]!r}")
    model = dict(config.get("model") or {})
    given_train = dict(config.get("train") or {})
    if "best_metric" in given_train:   # kptool 0.1 configs (checkpoints, weights)
        legacy = given_train.pop("best_metric")
        if legacy not in LEGACY_BEST:
            raise KptoolError(f"train.best_metric must be one of {', '.join(LEGACY_BEST)}, got {legacy!r} "
                              f"(or use train.best: {{metric, mode}})")
        given_train.setdefault("best", LEGACY_BEST[legacy])
    train = {**copy.deepcopy(TRAIN_DEFAULTS), **given_train}
    data = {**DATA_DEFAULTS, **(config.get("data") or {})}
    _unknown_keys("train", train, TRAIN_DEFAULTS)
    _unknown_keys("data", data, DATA_DEFAULTS)

    train["epochs"] = _number("train", "epochs", train["epochs"], int, minimum=1, maximum=MAX_EPOCHS)
    train["batch_size"] = _number("train", "batch_size", train["batch_size"], int, minimum=1)
    train["lr"] = _number("train", "lr", train["lr"], float, minimum=0)
    train["weight_decay"] = _number("train", "weight_decay", train["weight_decay"], float, minimum=0)
    train["grad_clip"] = _number("train", "grad_clip", train["grad_clip"], float, minimum=0, allow_none=True)
    train["seed"] = _number("train", "seed", train["seed"], int, minimum=0, maximum=2**32 - 1)
    for key in ("val_every", "keep_every", "num_workers"):
        train[key] = _number("train", key, train[key], int, minimum=0)
    train["optimizer"] = _check_choice("train", "optimizer", str(train["optimizer"]).lower(), OPTIMIZERS)
    train["scheduler"] = _check_choice("train", "scheduler", str(train["scheduler"]).lower(), SCHEDULERS)
    train["val_metrics"], train["best"] = _validation(train)
    if train["init"] is not None:
        train["init"] = str(train["init"])
    train["label_fraction"] = _number("train", "label_fraction", train["label_fraction"], float, minimum=0)
    train["val_split"] = _check_choice("train", "val_split", train["val_split"], ("train", "val", "test"))
    train["optimizer_options"] = _options("train", "optimizer_options", train["optimizer_options"])
    train["scheduler_options"] = _options("train", "scheduler_options", train["scheduler_options"])
    data["points"] = _number("data", "points", data["points"], int, minimum=1)
    data["image_size"] = _number("data", "image_size", data["image_size"], int, minimum=8, maximum=4096,
                                 allow_none=True)
    # the model's own keys are checked against its constructor by kptool.models.build_model
    if not model.get("name"):
        raise KptoolError("model.name is missing (the registered model to train)")
    if "num_keypoints" in model:   # the models that have keypoints take them from the points
        model["num_keypoints"] = _number("model", "num_keypoints", model["num_keypoints"], int, minimum=1,
                                         maximum=data["points"])
    from kptool.models import upgrade_model_config

    model = upgrade_model_config(model)
    return {"name": str(config.get("name") or model["name"]), "description": str(config.get("description") or ""),
            "model": model, "train": train, "data": data}


def _validation(train: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Checked ``train.val_metrics`` and ``train.best``."""
    from kptool.metrics import METRICS
    from kptool.metrics.viewpoint import IMAGE_METRICS

    names = train["val_metrics"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise KptoolError(f"train.val_metrics must be a list of metric names, got {names!r}")
    for n in names:
        if n != "loss" and n not in METRICS and n not in IMAGE_METRICS:
            raise KptoolError(f"train.val_metrics: unknown metric {n!r} (loss, one of: {', '.join(METRICS)}; "
                              f"on rendered images: {', '.join(IMAGE_METRICS)})")
    best = train["best"]
    if not isinstance(best, dict) or set(best) != {"metric", "mode"}:
        raise KptoolError(f"train.best must be a mapping {{metric: NAME, mode: min|max}}, got {best!r}")
    if not isinstance(best["metric"], str):
        raise KptoolError(f"train.best.metric must be a validation value's name, got {best['metric']!r}")
    _check_choice("train.best", "mode", best["mode"], BEST_MODES)
    return list(dict.fromkeys(names)), {"metric": best["metric"], "mode": best["mode"]}


def resolve_config(preset: str | Path | dict[str, Any], overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Preset (name, path or dict) + ``a.b=value`` overrides -> validated config with defaults."""
    doc = preset if isinstance(preset, dict) else load_preset(preset)
    if isinstance(doc, dict) and doc.get("base") is not None:
        doc = merge_sections(load_preset(doc["base"]), {k: v for k, v in doc.items() if k != "base"})
    return validate_config(apply_overrides(doc, overrides))


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configs."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        dotted = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changed += config_changes(a, b, dotted + ".")
        elif a != b:
            changed.append(dotted)
    return changed


def dump_config(config: dict[str, Any]) -> str:
    """YAML text of a config (what ``config.yaml`` in a run folder holds)."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
