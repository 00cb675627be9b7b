"""Choosing a detector and running it on files or on a prepared dataset split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kptool.core.shape import Shape
from kptool.core.transform import Transform
from kptool.detect.base import Detector
from kptool.errors import InputError, KptoolError
from kptool.baselines import BASELINES
from kptool.failures import Failures
from kptool.io.predictions import Predictions

# "checkpoint" (a trained model) or a classical baseline (kptool.baselines.BASELINES)
METHODS = ("checkpoint", *BASELINES)


def get_detector(method: str = "checkpoint", checkpoint: str | os.PathLike | None = None,
                 category: str | None = None, num_keypoints: int | None = None, device: str = "auto",
                 seed: int = 0, batch_size: int = 16) -> Detector:
    """A detector by method.

    Args:
        method: ``checkpoint`` (a trained model) or a classical baseline
            (``iss``, ``harris3d``, ``fps``, ``random``; see :mod:`kptool.baselines`).
        checkpoint: run folder, checkpoint or weights file, for ``checkpoint``.
        category: use the default weights shipped for this built-in category
            (``checkpoint`` method without ``checkpoint``).
        num_keypoints: keypoints per shape for the baselines (a trained model has its own).
        device, batch_size: where and how many clouds at a time a trained model runs.
        seed: seeds the ``random`` baseline.
    """
    from kptool.detect.learned import default_weights, load_detector

    if method not in METHODS:
        raise KptoolError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    if method != "checkpoint":
        if checkpoint is not None or category is not None:
            raise KptoolError(f"--method {method} is a classical detector: it takes no --checkpoint or --category")
        from kptool.baselines import get_baseline

        return get_baseline(method, num_keypoints, seed)
    if checkpoint is not None and category is not None:
        raise KptoolError("give either --checkpoint or --category, not both")
    if checkpoint is None and category is None:
        raise KptoolError("a trained detector needs --checkpoint RUN_OR_FILE or --category NAME "
                          "(default weights), or pick a classical --method")
    if num_keypoints is not None:
        raise KptoolError("--keypoints applies to the classical methods; a trained model has its own count")
    return load_detector(checkpoint if checkpoint is not None else default_weights(category), device, batch_size)


@dataclass
class Detection:
    """Keypoints detected on one input file.

    Attributes:
        source: the input file.
        keypoints: ``(K, 3)`` float32 in the input file's own frame.
        prepared: the prepared shape the detector saw (prepared frame).
        prepared_keypoints: ``(K, 3)`` the keypoints in the prepared frame.
        transform: input frame -> prepared frame.
        input_points: ``(N, 3)`` the points (or mesh vertices) as read from the file.
    """

    source: Path
    keypoints: np.ndarray
    prepared: Shape
    prepared_keypoints: np.ndarray
    transform: Transform
    input_points: np.ndarray


def input_files(path: str | os.PathLike) -> list[Path]:
    """A file as given; for a folder every shape file below it that kptool reads, sorted (see ``shape_files``)."""
    from kptool.io.shapes import SUFFIXES, shape_files

    p = Path(path)
    if p.is_file():
        return [p]
    if not p.exists():
        raise InputError(p, "no such file or folder")
    files = shape_files(p)
    if not files:
        raise InputError(p, f"no shape files in this folder (looked for {', '.join(SUFFIXES)})")
    return files


def detect_files(detector: Detector, files: list[Path], points: int | None = None, normalize: str | None = None,
                 up: str = "y", seed: int = 0, chunk: int = 64, failures: Failures | None = None) -> list[Detection]:
    """Read, bring into the model's frame, detect, and map keypoints back to each file's frame.

    Each shape is prepared as ``kptool prepare`` does, after first being brought into
    :func:`~kptool.data.transform.canonical_frame` (bounding box centred, unit
    diagonal, ``up`` rotated to y), so that keypoints follow the shape, not the
    file's origin or units. Files that look unlike the training data get an
    :class:`~kptool.errors.InputWarning` (see :func:`kptool.detect.checks.check_input`).

    Args:
        points: points per cloud; default the detector's training ``num_points``, else 2048.
            A cloud with fewer points is used whole.
        normalize: normalisation; default the detector's training one, else ``skeleton-merger``.
        up: the files' up axis (``y`` or ``z``).
        chunk: files prepared and detected at a time (bounds memory on big folders).
        failures: collects files that cannot be read or prepared, and the run goes on;
            without it the first such file raises :class:`InputError`.
    """
    from kptool.data.preprocess import DEFAULT_POINTS
    from kptool.detect.checks import check_input

    points = points or getattr(detector, "num_points", DEFAULT_POINTS)
    normalize = normalize or getattr(detector, "normalize", "skeleton-merger")
    out: list[Detection] = []
    for start in range(0, len(files), chunk):
        batch = []
        for f in files[start:start + chunk]:
            try:
                batch.append(_prepare_file(f, points, normalize, up, seed))
            except InputError as e:
                if failures is None:
                    raise
                failures.add(f.as_posix(), f, str(e))
                continue
            check_input(f, batch[-1][2], detector, points)
        found = detector.detect_batch([b[2].points for b in batch])
        for (f, shape, prepared, transform), kp in zip(batch, found):
            kp = np.asarray(kp, dtype=np.float32)
            out.append(Detection(f, transform.apply_inverse(kp).astype(np.float32), prepared, kp, transform,
                                 np.asarray(shape.points)))
    return out


def _prepare_file(f: Path, points: int, normalize: str, up: str, seed: int) -> tuple[Path, Shape, Shape, Transform]:
    from kptool.data.preprocess import prepare_shape
    from kptool.io import load_shape

    shape = load_shape(f, up=up)
    if not shape.has_mesh:
        points = min(points, len(shape.points))   # a small cloud is used whole (check_input warns)
    try:
        prepared, transform = prepare_shape(shape, points=points, normalize=normalize, up=up, seed=seed,
                                            canonical=True)
    except InputError as e:
        raise InputError(f, e.problem) from None
    return f, shape, prepared, transform


def detect_dataset(detector: Detector, root: str | os.PathLike, split: str = "test",
                   kind: str | None = None) -> Predictions:
    """Predictions for every shape of a prepared dataset split, in its prepared frame.

    ``kind`` picks one of a trained model's outputs (kptool.models.base); by default
    keypoints when it has them, else its first declared output. Embedding baselines
    (``shot``, ``random-embedding``) give embeddings.
    """
    from kptool.data.prepared import PreparedDataset

    dataset = PreparedDataset(root, split)
    if len(dataset) == 0:
        raise InputError(root, f"the {split} split has no shapes")
    model = getattr(detector, "model", None)
    kinds = tuple(model.outputs) if model is not None else ("embeddings",) if hasattr(detector, "embed") \
        else ("keypoints",)
    kind = kind or ("keypoints" if "keypoints" in kinds else kinds[0])
    if kind not in kinds:
        raise KptoolError(f"{detector.name} predicts {', '.join(kinds)}, not {kind}")
    if kind != "keypoints":
        if model is None:
            found = {s.id: detector.embed(s.points) for s in dataset}
        else:   # another kind of output (embeddings, per-point logits...)
            from kptool.models.predict import predict_dataset

            found = predict_dataset(model, dataset, detector.device, detector.batch_size)[kind]
        return Predictions(arrays=found, kind=kind, method=detector.name, frame="prepared",
                           dataset=str(Path(root).resolve()), split=split,
                           class_names=getattr(model, "class_names", None) if kind == "class_logits" else None)
    shapes = list(dataset)
    if model is not None and model.details:
        # keypoints and the per-shape details (symmetry plane, nodes...) the model predicts beside them
        from kptool.models.predict import predict_dataset

        found = predict_dataset(model, dataset, detector.device, detector.batch_size)
        keypoints = {s.id: found["keypoints"][s.id] for s in shapes}
        details = {s.id: model.shape_details({k: v[s.id] for k, v in found.items()}, s.points) for s in shapes}
        return Predictions(keypoints, method=detector.name, ordered=bool(detector.ordered), frame="prepared",
                           dataset=str(Path(root).resolve()), split=split, details=details)
    found = detector.detect_batch([s.points for s in shapes])
    return Predictions({s.id: np.asarray(kp, dtype=np.float32) for s, kp in zip(shapes, found)},
                       method=detector.name, ordered=bool(detector.ordered), frame="prepared",
                       dataset=str(Path(root).resolve()), split=split, keypoint_ids=slot_ids(detector))


def slot_ids(detector: Detector) -> list[int] | None:
    """The semantic id of each keypoint slot, for models whose slots have one (embedding databases)."""
    return getattr(getattr(detector, "model", None), "keypoint_ids", None)


def predictions_of(detections: list[Detection], detector: Detector, root: Path) -> Predictions:
    """Detections on files as a predictions record in the files' own frames (``frame: original``).

    Shape ids are the file paths relative to ``root`` (the input folder, or the file's folder).
    """
    base = root if root.is_dir() else root.parent
    return Predictions({d.source.relative_to(base).as_posix(): d.keypoints for d in detections},
                       method=detector.name, ordered=bool(detector.ordered), frame="original",
                       dataset=str(root.resolve()), split="", keypoint_ids=slot_ids(detector))
