"""Which model or ground truth fills each stage of the transfer pipeline.

Users name the trained models per stage (a run folder or a ``.pt`` checkpoint), or a
bundle folder holding them under fixed names (``--models DIR``)::

    DIR/reconstruction   # a folder holding sketch and voxels (run folders or .pt files)
    DIR/viewpoint        # run folder or viewpoint.pt
    DIR/embedding        # run folder or embedding.pt (dense-embedding with its database)

An option given explicitly overrides the bundle's entry. On a rendered dataset a stage may
also be ``true`` (the ground truth: the true mesh, the true camera, the true shape's own
embedding database); the viewpoint may be ``search`` (no network: the grid view whose
silhouette overlaps best, then refined).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kptool.errors import InputError, KptoolError
from kptool.transfer.pipeline import Stages
from kptool.transfer.stages import (MARCHING_CUBES_LEVEL, EmbeddingKeypoints, LearnedShape, LearnedViewpoint, ModelDatabase, RenderTruth,
                                    SilhouetteSearch, TrueDatabase, TrueShape, TrueViewpoint)

TRUE = "true"
SEARCH = "search"
BUNDLE_ENTRIES = ("reconstruction", "viewpoint", "embedding")      # and, for the 2D baseline, direct


@dataclass
class ModelChoice:
    """What fills each stage: a checkpoint path, ``true`` or ``search`` (viewpoint), or None."""

    reconstruction: str | None = None
    viewpoint: str | None = None
    embedding: str | None = None
    semantic_model: str = "database"    # or true
    direct: str | None = None           # a heatmap2d run: no 3D at all

    def with_bundle(self, bundle: str | os.PathLike | None) -> "ModelChoice":
        """Fill the stages not given from a bundle folder."""
        if bundle is None:
            return self
        root = Path(bundle)
        if not root.is_dir():
            raise InputError(root, "no such models folder")
        found = {}
        for entry in BUNDLE_ENTRIES:
            for candidate in (root / entry, root / f"{entry}.pt"):
                if candidate.exists():
                    found[entry] = str(candidate)
                    break
        if not found:
            raise InputError(root, f"a models folder holds {', '.join(BUNDLE_ENTRIES)} (run folders or .pt files); "
                                   f"none is here")
        return ModelChoice(self.reconstruction or found.get("reconstruction"),
                           self.viewpoint or found.get("viewpoint"), self.embedding or found.get("embedding"),
                           self.semantic_model, self.direct)


def reconstruction_stage(spec: str, device: str, level: float = MARCHING_CUBES_LEVEL) -> LearnedShape:
    """The learned single-view reconstruction from ``SKETCH,VOXELS`` (two run folders or .pt files) or a
    folder holding ``sketch`` and ``voxels`` (run folders or .pt files)."""
    if "," in spec:
        sketch, _, voxels = spec.partition(",")
    else:
        root = Path(spec)
        found = {name: next((c for c in (root / name, root / f"{name}.pt") if c.exists()), None)
                 for name in ("sketch", "voxels")}
        if not root.is_dir() or None in found.values():
            raise InputError(root, "--reconstruction takes SKETCH,VOXELS (two runs) or a folder holding sketch and "
                                   "voxels (run folders or .pt files)")
        sketch, voxels = found["sketch"], found["voxels"]
    return LearnedShape(sketch, voxels, device, level)


def build_stages(choice: ModelChoice, truth: RenderTruth | None = None, device: str = "cpu",
                 category: str | None = None, level: float = MARCHING_CUBES_LEVEL) -> Stages:
    """The pipeline's stages for ``choice``; ``truth`` (a rendered dataset) for the ``true`` ones."""
    def need_truth(option: str) -> RenderTruth:
        if truth is None:
            raise KptoolError(f"{option} true needs a rendered dataset as input (the ground truth is read from it)")
        return truth

    if choice.embedding is None:
        raise KptoolError("name the embedding model: --embedding RUN (a dense-embedding run) or --models DIR")
    keypoints = EmbeddingKeypoints(choice.embedding, device)
    if category and keypoints.category and keypoints.category != category:
        raise InputError(choice.embedding, f"the embedding model is for {keypoints.category!r}, not {category!r}")
    if choice.reconstruction is None:
        raise KptoolError("name the reconstruction: --reconstruction RUN or --models DIR (or true on renders)")
    shape = (TrueShape(need_truth("--reconstruction")) if choice.reconstruction == TRUE
             else reconstruction_stage(choice.reconstruction, device, level))
    if choice.viewpoint in (None, SEARCH):
        viewpoint = SilhouetteSearch()
    elif choice.viewpoint == TRUE:
        viewpoint = TrueViewpoint(need_truth("--viewpoint"))
    else:
        viewpoint = LearnedViewpoint(choice.viewpoint, device)
    if choice.semantic_model == TRUE:
        database = TrueDatabase(need_truth("--semantic-model"))
    elif choice.semantic_model == "database":
        database = ModelDatabase()
    else:
        raise KptoolError(f"--semantic-model must be database or true, got {choice.semantic_model!r}")
    return Stages(shape, viewpoint, keypoints, database)


def build_method(choice: ModelChoice, input: str | os.PathLike, options, device: str = "cpu",
                 category: str | None = None):
    """The method ``kptool transfer`` runs on ``input``: the 2D-3D-2D pipeline, or the direct 2D model."""
    from kptool.transfer.pipeline import Pipeline

    if choice.direct is not None:
        from kptool.transfer.direct import DirectKeypoints

        return DirectKeypoints(choice.direct, device)
    p = Path(input)
    truth = RenderTruth(p) if p.is_dir() and (p / "manifest.json").is_file() else None
    return Pipeline(build_stages(choice, truth, device, category), options)
