"""Bad-input corpus: hostile and broken inputs for every ``kptool`` command, generated, never committed.

``build_corpus(root)`` writes the inputs under ``root`` and returns the cases; each case is one
command line that must end in exactly one ``error:`` line naming the input, exit code 2, no
traceback, nothing on stdout and no output file (tests/test_hostile_inputs.py runs them through
the installed command). Run as a script to look at the inputs::

    python tests/hostile_corpus.py /tmp/corpus      # writes the files, prints one line per case

A *kind* is one hostile input (a file or an option value); a kind may be run through several
commands. Payloads that would execute code (pickles, YAML tags) create ``root/EXECUTED`` if they
ever run, and every case checks that it does not exist.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

@dataclass
class Case:
    kind: str                    # the hostile input, e.g. "preset: head_width: wide"
    command: str                 # which command it goes through: "train", "detect", ...
    args: list[str]
    names: list[str]             # what the error line must name (file, option, key)
    outputs: list[Path] = field(default_factory=list)   # must not exist afterwards
    unchanged: tuple | None = None   # (folder, sorted names in it) that the command must leave as they are

    @property
    def id(self) -> str:
        return f"{self.command}: {self.kind}"


class Corpus:
    """Writes input files under ``root`` and collects the cases that use them."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.cases: list[Case] = []
        self.marker = self.root / "EXECUTED"
        self._n = 0

    def path(self, name: str) -> Path:
        p = self.root / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def write(self, name: str, content: str | bytes) -> Path:
        p = self.path(name)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
        return p

    def out(self, suffix: str = "") -> Path:
        self._n += 1
        return self.root / "out" / f"{self._n:03d}{suffix}"

    def add(self, kind: str, command: str, args: list, names: list, outputs: list | None = None) -> None:
        self.cases.append(Case(kind, command, [str(a) for a in args], [str(n) for n in names],
                               [Path(o) for o in outputs or []]))

    @property
    def kinds(self) -> list[str]:
        return sorted({c.kind for c in self.cases})


# --- valid inputs the hostile ones are variations of ------------------------------------------------

def _box(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    half = rng.uniform(0.3, 1.0, size=3)
    p = rng.uniform(-1, 1, size=(n, 3)) * half
    face = rng.integers(0, 3, size=n)
    p[np.arange(n), face] = np.sign(rng.uniform(-1, 1, size=n)) * half[face]
    return p.astype(np.float32), (np.array([[1, 1, 1], [-1, 1, 1], [1, -1, -1]]) * half).astype(np.float32)


POINTS = 1024   # the least that skeleton-mutual's PointNet++ backbone takes


def good_dataset(root: Path, points: int = POINTS) -> Path:
    """A small prepared dataset (box shapes, 3 keypoints) written with the library."""
    from kptool.data.prepared import save_shape, write_manifest
    from kptool.data.shape import Shape
    from kptool.data.transform import Transform

    rng = np.random.default_rng(0)
    records = []
    for split, count in (("train", 4), ("val", 2), ("test", 2)):
        for i in range(count):
            pts, kp = _box(rng, points)
            shape = Shape(points=pts, id=f"{split}{i}", keypoints=kp, keypoint_ids=np.arange(3))
            save_shape(root, shape, Transform.identity())
            records.append({"id": shape.id, "split": split, "file": f"shapes/{shape.id}.npz", "num_points": points,
                            "num_keypoints": 3, "has_mesh": False, "meta": {}})
    write_manifest(root, {"format": "kptool-prepared", "version": 1, "category": "box",
                          "frame": {"normalize": "none"}, "shapes": records, "extras": {}})
    return root


def good_preset() -> dict:
    """skeleton-mutual, small enough for the corpus; every hostile preset changes one thing."""
    return {"name": "corpus", "model": {"name": "skeleton-mutual", "num_keypoints": 3},
            "train": {"epochs": 1, "batch_size": 2, "optimizer": "adam", "lr": 0.001}, "data": {"points": POINTS}}


def good_checkpoint(run: Path, preset: dict, data: Path) -> Path:
    """A real (untrained) training checkpoint of ``preset``: what `kptool train` saves after an epoch."""
    import torch

    from kptool.models import build_model
    from kptool.train.checkpoint import rng_state, save_checkpoint
    from kptool.train.config import dump_config, resolve_config
    from kptool.train.loop import _build_scheduler, build_optimizer

    config = resolve_config(preset)
    torch.manual_seed(0)
    model = build_model(config["model"])
    optimizer = build_optimizer(model, config["train"])
    scheduler = _build_scheduler(optimizer, config["train"])
    ckpt = {"format": "kptool-checkpoint", "version": 1, "config": config, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": 1, "batch": 0,
            "step": 2, "running": {}, "rng": rng_state(), "best": None, "history": [], "interrupted": False,
            "data_dir": str(data.resolve()), "world_size": 1, "frame": {"normalize": "none"}}
    (run / "config.yaml").parent.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(dump_config(config))
    save_checkpoint(run / "checkpoints" / "last.pt", ckpt)
    return run / "checkpoints" / "last.pt"


class _Executes:
    """Unpickling this creates the marker file: proof that a loader ran foreign code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# --- the corpus ---------------------------------------------------------------------------------------

def build_corpus(root: str | os.PathLike) -> Corpus:
    import torch

    c = Corpus(Path(root))
    data = good_dataset(c.root / "good")
    preset = good_preset()
    preset_file = c.write("good.yaml", yaml.safe_dump(preset))
    run = c.root / "run"
    checkpoint = good_checkpoint(run, preset, data)

    _usage(c, data, preset_file)
    _presets(c, data, preset)
    _overrides(c, data, preset_file)
    _datasets(c, preset_file)
    _checkpoints(c, data, preset, checkpoint, torch)
    _predictions(c, data)
    _keypointnet(c)
    _shapes(c)
    _prepare_options(c)
    return c


def _usage(c: Corpus, data: Path, preset_file: Path) -> None:
    """Option values of the wrong type or out of range (no file involved)."""
    def train(kind, flag, value, names=None):
        out = c.out()
        c.add(kind, "train", ["train", "--preset", preset_file, "--data", data, "--out", out, "--device", "cpu",
                              flag, value], names or [flag], [out])
    train("--epochs three", "--epochs", "three")
    train("--epochs 0", "--epochs", "0", ["epochs"])
    train("--lr nan", "--lr", "nan", ["lr"])
    train("--lr -1", "--lr", "-1", ["lr"])
    train("--lr inf", "--lr", "inf", ["lr"])
    train("--batch-size 3 (paired model)", "--batch-size", "3", ["batch_size"])
    train("--batch-size 0", "--batch-size", "0", ["batch_size"])
    train("--keypoints 0", "--keypoints", "0", ["num_keypoints"])
    train("--seed -1", "--seed", "-1", ["seed"])
    train("--device bogus", "--device", "bogus", ["bogus"])
    train("--device cuda:99", "--device", "cuda:99", ["cuda"])
    out = c.out()
    c.add("train without --preset", "train", ["train", "--data", data, "--out", out], ["--preset"], [out])
    out = c.out()
    c.add("--resume and --force", "train", ["train", "--resume", "--force", "--out", out], ["--resume"], [out])
    out = c.out()
    c.add("train --data missing folder", "train", ["train", "--preset", preset_file, "--data", c.root / "nope",
                                                   "--out", out], ["nope"], [out])
    out = c.out()
    c.add("unknown preset name", "train", ["train", "--preset", "no-such-preset", "--data", data, "--out", out],
          ["no-such-preset"], [out])


def _presets(c: Corpus, data: Path, good: dict) -> None:
    """Preset YAML files with one bad thing each, through `kptool train --preset FILE`."""
    def with_(section, key, value):
        p = json.loads(json.dumps(good))
        p[section][key] = value
        return yaml.safe_dump(p)

    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(12))
    presets = {
        "preset: invalid YAML": "model: [unclosed\n",
        "preset: empty file": "",
        "preset: a list": "- 1\n- 2\n",
        "preset: binary garbage": bytes(range(256)) * 4,
        "preset: not UTF-8": "name: caf\xe9\n".encode("latin-1"),
        "preset: YAML alias bomb": bomb,
        "preset: python tag": f"!!python/object/apply:os.system ['touch {c.marker}']\n",
        "preset: python tag inside": f"model: !!python/object/apply:os.system ['touch {c.marker}']\n",
        "preset: unknown section": yaml.safe_dump({**good, "bogus": {}}),
        "preset: model is a list": yaml.safe_dump({**good, "model": [1, 2]}),
        "preset: no model name": yaml.safe_dump({**good, "model": {"num_keypoints": 3}}),
        "preset: unknown model": with_("model", "name", "no-such-model"),
        "preset: head_width: wide": with_("model", "head_width", "wide"),
        "preset: activation_widths: abc": with_("model", "activation_widths", "abc"),
        "preset: activation_widths: [-5]": with_("model", "activation_widths", [-5]),
        "preset: dropout: 7": with_("model", "dropout", 7),
        "preset: unknown model key": with_("model", "bogus_width", 3),
        "preset: num_keypoints: 1e40": with_("model", "num_keypoints", 1e40),
        "preset: epochs: three": with_("train", "epochs", "three"),
        "preset: epochs: 1e40": with_("train", "epochs", 1e40),
        "preset: seed: 1e40": with_("train", "seed", 1e40),
        "preset: lr: .nan": with_("train", "lr", float("nan")),
        "preset: unknown train key": with_("train", "bogus", 1),
        "preset: optimizer: bogus": with_("train", "optimizer", "bogus"),
        "preset: optimizer_options: eps -1": with_("train", "optimizer_options", {"eps": -1}),
        "preset: optimizer_options: betas abc": with_("train", "optimizer_options", {"betas": "abc"}),
        "preset: optimizer_options: unknown": with_("train", "optimizer_options", {"bogus": 1}),
        "preset: optimizer_options: list": with_("train", "optimizer_options", [1, 2]),
        "preset: scheduler: bogus": with_("train", "scheduler", "bogus"),
        "preset: scheduler step, gamma abc": yaml.safe_dump({**good, "train": {
            **good["train"], "scheduler": "step", "scheduler_options": {"gamma": "abc"}}}),
        "preset: scheduler step, step_size 0": yaml.safe_dump({**good, "train": {
            **good["train"], "scheduler": "step", "scheduler_options": {"step_size": 0}}}),
        "preset: scheduler cosine, unknown option": yaml.safe_dump({**good, "train": {
            **good["train"], "scheduler": "cosine", "scheduler_options": {"bogus": 1}}}),
        "preset: grad_clip: abc": with_("train", "grad_clip", "abc"),
        "preset: val_split: bogus": with_("train", "val_split", "bogus"),
        "preset: data.points: 0": with_("data", "points", 0),
        "preset: data.points other than the dataset's": with_("data", "points", 2 * POINTS),
        "preset: data.points below the model's minimum": with_("data", "points", 64),
    }
    for kind, content in presets.items():
        f = c.write(f"presets/{len(c.cases):03d}.yaml", content)
        out = c.out()
        c.add(kind, "train", ["train", "--preset", f, "--data", data, "--out", out, "--device", "cpu"],
              [f.name] if kind in _FILE_NAMED else [], [out])
    # the error line must name the file for file-level problems, the key for key-level ones
    for case in c.cases:
        if case.command == "train" and case.kind in _KEY_NAMED:
            case.names = [_KEY_NAMED[case.kind]]


_FILE_NAMED = {"preset: invalid YAML", "preset: empty file", "preset: a list", "preset: binary garbage",
               "preset: not UTF-8", "preset: YAML alias bomb", "preset: python tag", "preset: python tag inside"}
_KEY_NAMED = {
    "preset: unknown section": "bogus", "preset: model is a list": "model", "preset: no model name": "model.name",
    "preset: unknown model": "no-such-model", "preset: head_width: wide": "head_width",
    "preset: activation_widths: abc": "activation_widths", "preset: activation_widths: [-5]": "activation_widths",
    "preset: dropout: 7": "dropout", "preset: unknown model key": "bogus_width",
    "preset: num_keypoints: 1e40": "num_keypoints", "preset: epochs: three": "epochs",
    "preset: epochs: 1e40": "epochs", "preset: seed: 1e40": "seed", "preset: lr: .nan": "lr",
    "preset: unknown train key": "bogus", "preset: optimizer: bogus": "optimizer",
    "preset: optimizer_options: eps -1": "eps", "preset: optimizer_options: betas abc": "betas",
    "preset: optimizer_options: unknown": "bogus", "preset: optimizer_options: list": "optimizer_options",
    "preset: scheduler: bogus": "scheduler", "preset: scheduler step, gamma abc": "gamma",
    "preset: scheduler step, step_size 0": "step_size", "preset: scheduler cosine, unknown option": "bogus",
    "preset: grad_clip: abc": "grad_clip", "preset: val_split: bogus": "val_split",
    "preset: data.points: 0": "points", "preset: data.points other than the dataset's": "points",
    "preset: data.points below the model's minimum": "data.points",
}


def _overrides(c: Corpus, data: Path, preset_file: Path) -> None:
    """``--set`` values of the wrong type or shape."""
    sets = {
        "--set model.activation_widths=abc": ("model.activation_widths=abc", "activation_widths"),
        "--set train.optimizer_options.eps=-1": ("train.optimizer_options.eps=-1", "eps"),
        "--set train.seed=1e40": ("train.seed=1e40", "seed"),
        "--set train.lr=nan": ("train.lr=nan", "lr"),
        "--set without =": ("train.lr", "train.lr"),
        "--set unknown section": ("bogus.x=1", "bogus"),
        "--set into a value": ("train.lr.x=1", "train.lr.x=1"),
        "--set train.epochs=[1]": ("train.epochs=[1]", "epochs"),
        "--set model.num_keypoints=-3": ("model.num_keypoints=-3", "num_keypoints"),
        "--set model.head_width=wide": ("model.head_width=wide", "head_width"),
        "--set train.scheduler_options.gamma=abc": ("train.scheduler_options.gamma=abc", "gamma"),
        "--set data.points=two": ("data.points=two", "points"),
        "--set YAML python tag": (f"train.lr=!!python/object/apply:os.system ['touch {c.marker}']", "train.lr"),
    }
    for kind, (value, name) in sets.items():
        out = c.out()
        extra = ["--set", "train.scheduler=step"] if "scheduler_options" in value else []
        c.add(kind, "train", ["train", "--preset", preset_file, "--data", data, "--out", out, "--device", "cpu",
                              *extra, "--set", value], [name], [out])


def _datasets(c: Corpus, preset_file: Path) -> None:
    """Prepared dataset folders broken in one way each, through `info`, `train` and `eval das`."""
    def dataset(name: str, edit: Callable[[Path, dict], dict | None]) -> Path:
        root = good_dataset(c.root / "in" / "datasets" / name)
        manifest = json.loads((root / "manifest.json").read_text())
        result = edit(root, manifest)
        if isinstance(result, (dict, list)):   # an edited manifest (file edits return byte counts)
            (root / "manifest.json").write_text(json.dumps(result))
        return root

    def shape(root: Path, **arrays) -> None:
        np.savez(root / "shapes" / "train0.npz", **{"transform": np.eye(4), **arrays})

    def record(key, value):
        def edit(root, m):
            m["shapes"][0][key] = value
            return m
        return edit

    def drop(key):
        def edit(root, m):
            del m["shapes"][0][key]
            return m
        return edit

    pts = np.zeros((POINTS, 3), np.float32)
    cases = {
        "dataset: no manifest": (lambda r, m: (r / "manifest.json").unlink(), "manifest.json"),
        "dataset: manifest not JSON": (lambda r, m: (r / "manifest.json").write_text("{oops"), "manifest.json"),
        "dataset: manifest deeply nested JSON": (
            lambda r, m: (r / "manifest.json").write_text("[" * 100000 + "]" * 100000), "manifest.json"),
        "dataset: manifest a list": (lambda r, m: [m], "manifest.json"),
        "dataset: manifest binary": (lambda r, m: (r / "manifest.json").write_bytes(bytes(range(256))),
                                     "manifest.json"),
        "dataset: wrong format tag": (lambda r, m: {**m, "format": "other"}, "manifest.json"),
        "dataset: wrong version": (lambda r, m: {**m, "version": 99}, "manifest.json"),
        "dataset: shapes is {}": (lambda r, m: {**m, "shapes": {}}, "manifest.json"),
        "dataset: shapes missing": (lambda r, m: {k: v for k, v in m.items() if k != "shapes"}, "manifest.json"),
        "dataset: record is a string": (lambda r, m: {**m, "shapes": ["x"] + m["shapes"][1:]}, "manifest.json"),
        "dataset: record lacks split": (drop("split"), "split"),
        "dataset: record lacks id": (drop("id"), "id"),
        "dataset: record lacks file": (drop("file"), "file"),
        "dataset: record split bogus": (record("split", "bogus"), "bogus"),
        "dataset: record file escapes": (record("file", "../../../etc/passwd"), "../../../etc/passwd"),
        "dataset: record file absolute": (record("file", "/etc/passwd"), "/etc/passwd"),
        "dataset: num_points a string": (record("num_points", "many"), "num_points"),
        "dataset: duplicate ids": (lambda r, m: {**m, "shapes": m["shapes"] + m["shapes"][:1]}, "train0"),
        "dataset: shape file missing": (lambda r, m: (r / "shapes" / "train0.npz").unlink(), "train0.npz"),
        "dataset: shape file truncated": (
            lambda r, m: (r / "shapes" / "train0.npz").write_bytes((r / "shapes" / "train0.npz").read_bytes()[:200]),
            "train0.npz"),
        "dataset: shape file garbage": (lambda r, m: (r / "shapes" / "train0.npz").write_bytes(b"\0" * 500),
                                        "train0.npz"),
        "dataset: shape NaN points": (lambda r, m: shape(r, points=np.full((POINTS, 3), np.nan, np.float32)),
                                      "train0.npz"),
        "dataset: shape inf points": (lambda r, m: shape(r, points=np.full((POINTS, 3), np.inf, np.float32)),
                                      "train0.npz"),
        "dataset: shape points (N, 2)": (lambda r, m: shape(r, points=np.zeros((POINTS, 2), np.float32)),
                                          "train0.npz"),
        "dataset: shape points strings": (lambda r, m: shape(r, points=np.array(["a"] * POINTS)), "train0.npz"),
        "dataset: shape without points": (lambda r, m: shape(r), "train0.npz"),
        "dataset: shape pickled object array": (
            lambda r, m: shape(r, points=np.array([_Executes(c.marker)], dtype=object)), "train0.npz"),
        "dataset: shape transform (3, 3)": (
            lambda r, m: np.savez(r / "shapes" / "train0.npz", points=pts, transform=np.eye(3)), "train0.npz"),
        "dataset: shape keypoints NaN": (
            lambda r, m: shape(r, points=pts, keypoints=np.full((3, 3), np.nan), keypoint_ids=np.arange(3)),
            "train0.npz"),
    }
    for kind, (edit, name) in cases.items():
        root = dataset(f"{len(c.cases):03d}", edit)
        if not kind.startswith("dataset: shape"):   # `info` reads the manifest, not every shape file
            c.add(kind, "info", ["info", root], [name])
        out = c.out()
        c.add(kind, "train", ["train", "--preset", preset_file, "--data", root, "--out", out, "--device", "cpu"],
              [name], [out])
    # the same dataset problems reach `eval` through its --data (the evaluated shape is test0)
    nan_test0 = dataset("eval-nan", lambda r, m: np.savez(r / "shapes" / "test0.npz", transform=np.eye(4),
                                                          points=np.full((POINTS, 3), np.nan, np.float32)))
    cases["dataset: shape NaN points"] = (None, "test0.npz")
    for kind in ("dataset: record lacks split", "dataset: shapes is {}", "dataset: shape NaN points"):
        root = nan_test0 if kind == "dataset: shape NaN points" else next(
            Path(case.args[case.args.index("--data") + 1]) for case in c.cases
            if case.kind == kind and case.command == "train")
        preds = c.write(f"preds-for-{root.name}.json", json.dumps(
            {"format": "kptool-predictions", "version": 1, "shapes": [
                {"id": "test0", "keypoints": [[0, 0, 0]] * 3}]}))
        out = c.out()
        c.add(kind, "eval das", ["eval", "das", preds, "--data", root, "--out", out],
              [dict(cases)[kind][1]], [out])


def _checkpoints(c: Corpus, data: Path, preset: dict, checkpoint: Path, torch) -> None:
    """Checkpoint files: foreign pickles, wrong content, incompatible runs."""
    good = torch.load(checkpoint, weights_only=True)

    def saved(name: str, obj) -> Path:
        p = c.path(f"checkpoints/{name}.pt")
        torch.save(obj, p)
        return p

    files = {
        "checkpoint: malicious pickle": saved("malicious", {"x": _Executes(c.marker)}),
        "checkpoint: plain pickle": c.write("checkpoints/plain.pt", b"\x80\x04K\x01."),
        "checkpoint: garbage": c.write("checkpoints/garbage.pt", bytes(range(256)) * 8),
        "checkpoint: empty file": c.write("checkpoints/empty.pt", b""),
        "checkpoint: truncated": c.write("checkpoints/truncated.pt", checkpoint.read_bytes()[:1000]),
        "checkpoint: a tensor": saved("tensor", torch.zeros(3)),
        "checkpoint: no format tag": saved("untagged", {"model": good["model"]}),
        "checkpoint: other version": saved("v99", {**good, "version": 99}),
        "checkpoint: empty config": saved("emptyconfig", {**good, "config": {}}),
        "checkpoint: config without model": saved("nomodel", {**good, "config": {
            k: v for k, v in good["config"].items() if k != "model"}}),
        "checkpoint: unknown model name": saved("unknownmodel", {**good, "config": {
            **good["config"], "model": {**good["config"]["model"], "name": "no-such-model"}}}),
        "checkpoint: weights of another K": saved("otherk", {**good, "config": {
            **good["config"], "model": {**good["config"]["model"], "num_keypoints": 5}}}),
        "checkpoint: model weights a list": saved("weightslist", {**good, "model": [1, 2]}),
    }
    for kind, f in files.items():
        out = c.out(".pt")
        c.add(kind, "export-weights", ["export-weights", f, "--out", out], [f.name], [out])
        out = c.out(".json")
        c.add(kind, "detect", ["detect", data, "--checkpoint", f, "--out", out, "--device", "cpu"], [f.name], [out])

    def resume(kind: str, edit: Callable[[dict], dict], name: str) -> None:
        run = c.root / "in" / "runs" / f"{len(c.cases):03d}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text(yaml.safe_dump(good["config"]))
        torch.save(edit(dict(good)), run / "checkpoints" / "last.pt")
        before = sorted(p.name for p in run.rglob("*"))
        c.add(kind, "train --resume", ["train", "--resume", "--out", run, "--epochs", "3", "--device", "cpu"],
              [name], [])
        c.cases[-1].unchanged = (run, before)

    def arch(ck):
        cfg = json.loads(json.dumps(ck["config"]))
        cfg["model"]["name"] = "skeleton-merger"
        return {**ck, "config": cfg}

    def other_k(ck):
        cfg = json.loads(json.dumps(ck["config"]))
        cfg["model"]["num_keypoints"] = 5
        return {**ck, "config": cfg}

    resume("resume: checkpoint of another architecture", arch, "last.pt")
    resume("resume: checkpoint of another K", other_k, "last.pt")
    resume("resume: broken optimizer state", lambda ck: {**ck, "optimizer": {"state": {}, "param_groups": []}},
           "optimizer")
    resume("resume: empty config", lambda ck: {**ck, "config": {}}, "last.pt")
    resume("resume: rng state missing", lambda ck: {k: v for k, v in ck.items() if k != "rng"}, "last.pt")
    resume("resume: epoch a string", lambda ck: {**ck, "epoch": "one"}, "last.pt")
    resume("resume: data_dir gone", lambda ck: {**ck, "data_dir": str(c.root / "gone")}, "gone")
    out = c.out()
    c.add("resume: no checkpoint", "train --resume", ["train", "--resume", "--out", out], [out.name], [out])
    out = c.out(".json")
    c.add("--category ../../x/checkpoints/last", "detect",
          ["detect", data, "--category", "../../x/checkpoints/last", "--out", out], ["--category"], [out])


def _predictions(c: Corpus, data: Path) -> None:
    """Predictions files for `kptool eval das`."""
    def preds(shapes, **top):
        return json.dumps({"format": "kptool-predictions", "version": 1, "shapes": shapes, **top})

    three = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]
    files = {
        "predictions: not JSON": "{oops",
        "predictions: deeply nested JSON": "[" * 100000 + "]" * 100000,
        "predictions: empty file": "",
        "predictions: binary": bytes(range(256)),
        "predictions: a list": json.dumps([1, 2]),
        "predictions: wrong format tag": json.dumps({"format": "other", "version": 1, "shapes": []}),
        "predictions: no shapes": preds([]),
        "predictions: shapes a dict": preds({}),
        "predictions: unknown shape id": preds([{"id": "nope", "keypoints": three}]),
        "predictions: scores abc": preds([{"id": "test0", "keypoints": three, "scores": "abc"}]),
        "predictions: scores of another length": preds([{"id": "test0", "keypoints": three, "scores": [1]}]),
        "predictions: flat keypoints": preds([{"id": "test0", "keypoints": [0.1] * 30}]),
        "predictions: keypoints 1e38": preds([{"id": "test0", "keypoints": [[1e38, 1e38, 1e38]] * 3}]),
        "predictions: keypoints NaN": json.dumps({"format": "kptool-predictions", "version": 1, "shapes": [
            {"id": "test0", "keypoints": [[float("nan")] * 3] * 3}]}),
        "predictions: keypoints strings": preds([{"id": "test0", "keypoints": [["a", "b", "c"]]}]),
        "predictions: duplicate ids": preds([{"id": "test0", "keypoints": three}] * 2),
        "predictions: frame bogus": preds([{"id": "test0", "keypoints": three}], frame="bogus"),
    }
    for kind, content in files.items():
        f = c.write(f"predictions/{len(c.cases):03d}.json", content)
        out = c.out()
        c.add(kind, "eval das", ["eval", "das", f, "--data", data, "--out", out], [f.name], [out])


def _keypointnet(c: Corpus) -> None:
    """KeypointNet roots with hostile annotation files, through `kptool prepare keypointnet`."""
    def root(annotations: str | bytes) -> Path:
        r = c.root / "in" / "keypointnet" / f"{len(c.cases):03d}"
        (r / "annotations").mkdir(parents=True)
        (r / "pcds" / "03001627").mkdir(parents=True)
        data = annotations if isinstance(annotations, bytes) else annotations.encode()
        (r / "annotations" / "chair.json").write_bytes(data)
        return r

    ann = lambda **kw: json.dumps([{"class_id": "03001627", "model_id": "m1",  # noqa: E731
                                    "keypoints": [{"xyz": [0, 0, 0], "semantic_id": 0, "pcd_info": {"point_index": 0}}],
                                    **kw}])
    annotations = {
        "annotations: deeply nested JSON": "[" * 100000 + "]" * 100000,
        "annotations: not JSON": "{oops",
        "annotations: a dict": json.dumps({"a": 1}),
        "annotations: model_id an absolute path": ann(model_id="/etc/passwd"),
        "annotations: model_id escapes": ann(model_id="../../../../etc/passwd"),
        "annotations: keypoints a string": ann(keypoints="abc"),
        "annotations: xyz strings": json.dumps([{"class_id": "03001627", "model_id": "m1", "keypoints": [
            {"xyz": ["a", "b", "c"], "semantic_id": 0, "pcd_info": {"point_index": 0}}]}]),
        "annotations: binary": bytes(range(256)),
    }
    for kind, content in annotations.items():
        r = root(content)
        out = c.out()
        c.add(kind, "prepare keypointnet", ["prepare", "keypointnet", "--root", r, "--category", "chair",
                                           "--out", out, "--points", "64"], ["chair.json"], [out])


def _shape_files(c: Corpus) -> dict[str, Path]:
    """Hostile shape files of every format kptool reads."""
    good_ply = "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n" \
               "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
    tri = "v 0 0 0\nv 1 0 0\nv 0 1 0\n"
    npy_header = b"\x93NUMPY\x01\x00" + (lambda h: struct.pack("<H", len(h)) + h)(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 3), }".ljust(117) + b"\n")
    files: dict[str, tuple[str, bytes | str]] = {
        "ply: empty": ("x.ply", b""),
        "ply: garbage": ("x.ply", bytes(range(256)) * 4),
        "ply: header only": ("x.ply", good_ply.split("0 0 0")[0]),
        "ply: truncated body": ("x.ply", good_ply[:-12]),
        "ply: 1e9 vertices claimed": ("x.ply", good_ply.replace("vertex 3", "vertex 1000000000")),
        "ply: NaN vertices": ("x.ply", good_ply.replace("1 0 0", "nan nan nan")),
        "ply: face index out of range": ("x.ply", good_ply.replace("3 0 1 2", "3 0 1 99")),
        "obj: empty": ("x.obj", b""),
        "obj: face index overflows int64": ("x.obj", tri + "f 1 2 99999999999999999999999\n"),
        "obj: face index out of range": ("x.obj", tri + "f 1 2 9\n"),
        "obj: NaN vertex": ("x.obj", "v nan nan nan\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"),
        "obj: 1e308 coordinates": ("x.obj", "v 1e308 1e308 1e308\nv -1e308 0 0\nv 0 1e308 0\nf 1 2 3\n"),
        "obj: text without vertices": ("x.obj", "hello world\n"),
        "off: empty": ("x.off", b""),
        "off: header claims more vertices": ("x.off", "OFF\n100 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"),
        "off: garbage": ("x.off", "OFF\nabc def\n"),
        "stl: empty": ("x.stl", b""),
        "stl: binary claims 1e9 triangles": ("x.stl", b"\0" * 80 + struct.pack("<I", 10**9)),
        "stl: ascii garbage": ("x.stl", "solid x\nfacet normal nope\n"),
        "pcd: empty": ("x.pcd", b""),
        "pcd: header only": ("x.pcd", "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                                      "WIDTH 10\nHEIGHT 1\nPOINTS 10\nDATA ascii\n"),
        "pcd: binary truncated": ("x.pcd", "VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                                           "WIDTH 10\nHEIGHT 1\nPOINTS 10\nDATA binary\n" + "abc"),
        "xyz: letters": ("x.xyz", "a b c\nd e f\n"),
        "xyz: two columns": ("x.xyz", "1 2\n3 4\n5 6\n"),
        "xyz: NaN": ("x.xyz", "nan nan nan\n1 2 3\n4 5 6\n"),
        "xyz: 4096 identical points": ("x.xyz", "0.5 0.5 0.5\n" * 4096),
        "npy: garbage": ("x.npy", bytes(range(256))),
        "npy: header claims (1e12, 3)": ("x.npy", npy_header),
        "npy: pickled object array": ("x.npy", None),
        "npy: shape (5, 2)": ("x.npy", None),
        "npz: truncated": ("x.npz", None),
        "npz: no arrays": ("x.npz", None),
        "glb: garbage": ("x.glb", b"glTF" + bytes(range(200))),
        "gltf: invalid JSON": ("x.gltf", "{oops"),
        "gltf: external buffer escapes": ("x.gltf", json.dumps({
            "asset": {"version": "2.0"}, "buffers": [{"uri": "../../../../etc/passwd", "byteLength": 36}],
            "bufferViews": [{"buffer": 0, "byteLength": 36}], "accessors": [
                {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
            "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}], "nodes": [{"mesh": 0}],
            "scenes": [{"nodes": [0]}], "scene": 0})),
        "unknown suffix": ("x.docx", "hello"),
    }
    out: dict[str, Path] = {}
    for kind, (name, content) in files.items():
        folder = c.root / "in" / "shapes" / f"{len(out):03d}"
        folder.mkdir(parents=True)
        p = folder / name
        if content is not None:
            (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        elif kind == "npy: pickled object array":
            np.save(p, np.array([_Executes(c.marker)], dtype=object), allow_pickle=True)
        elif kind == "npy: shape (5, 2)":
            np.save(p, np.zeros((5, 2)))
        elif kind == "npz: truncated":
            np.savez(p, points=np.zeros((100, 3)))
            p.write_bytes(p.read_bytes()[:300])
        elif kind == "npz: no arrays":
            with zipfile.ZipFile(p, "w"):
                pass
        out[kind] = p
    link = c.root / "in" / "shapes" / "zero" / "zero.ply"
    link.parent.mkdir(parents=True)
    link.symlink_to("/dev/zero")
    out["symlink to /dev/zero"] = link
    return out


def _shapes(c: Corpus) -> None:
    """Every hostile shape file through `detect` (helper 21's) and `prepare folder --strict`."""
    for kind, path in _shape_files(c).items():
        out = c.out(".json")
        c.add(kind, "detect", ["detect", path, "--method", "fps", "-k", "3", "--out", out], [path.name], [out])
        out = c.out()
        named = path.parent.name if kind == "unknown suffix" else path.name   # no shape file: the folder
        c.add(kind, "prepare folder", ["prepare", "folder", "--root", path.parent, "--out", out, "--strict",
                                       "--points", "64"], [named], [out])


def _prepare_options(c: Corpus) -> None:
    """`kptool prepare` options out of range."""
    opts = {
        "--points 0": (["--points", "0"], "--points"),
        "--points -5": (["--points", "-5"], "--points"),
        "--count 0": (["--count", "0"], "--count"),
        "--count -1": (["--count", "-1"], "--count"),
        "--splits abc": (["--splits", "abc"], "--splits"),
        "--splits 0.5,0.5": (["--splits", "0.5,0.5"], "--splits"),
        "--splits -1,1,1": (["--splits", "-1,1,1"], "--splits"),
        "--splits nan,0,1": (["--splits", "nan,0,1"], "--splits"),
        "--normalize bogus": (["--normalize", "bogus"], "bogus"),
        "--workers -2": (["--workers", "-2"], "--workers"),
        "--category bogus": (["--category", "bogus"], "bogus"),
    }
    for kind, (extra, name) in opts.items():
        out = c.out()
        args = ["prepare", "synthetic", "--category", "chair", "--count", "4", "--out", out, *extra]
        if kind == "--category bogus":
            args = ["prepare", "synthetic", "--count", "4", "--out", out, *extra]
        c.add(kind, "prepare synthetic", args, [name], [out])
    out = c.out()
    c.add("--up w", "prepare folder", ["prepare", "folder", "--root", c.root / "in" / "shapes" / "000", "--out", out,
                                       "--up", "w"], ["--up"], [out])
    both_bad = c.root / "in" / "all-fail"
    both_bad.mkdir()
    (both_bad / "a.xyz").write_text("1 2\n")
    (both_bad / "b.xyz").write_text("x y z\n")
    out = c.out()
    c.add("folder where every shape fails", "prepare folder", ["prepare", "folder", "--root", both_bad, "--out", out,
                                                               "--points", "64"], ["a.xyz"], [out])
    out = c.out()
    c.add("--root missing", "prepare folder", ["prepare", "folder", "--root", c.root / "nope", "--out", out],
          ["nope"], [out])
    out = c.out()
    c.add("--root a file", "prepare folder", ["prepare", "folder", "--root", c.root / "in" / "good.yaml",
                                              "--out", out], ["good.yaml"], [out])
    out = c.write("out-is-a-file", "x")
    c.add("--out an existing file", "prepare synthetic", ["prepare", "synthetic", "--category", "chair", "--count",
                                                          "4", "--out", out], [out.name], [])


if __name__ == "__main__":
    corpus = build_corpus(sys.argv[1] if len(sys.argv) > 1 else "corpus")
    for case in corpus.cases:
        print(f"{case.id}\tkptool {' '.join(case.args)}")
    print(f"{len(corpus.kinds)} kinds, {len(corpus.cases)} commands", file=sys.stderr)
