"""The direct 2D baseline as a method of ``kptool transfer``: a ``heatmap2d`` run, no 3D.

Same inputs, outputs and PCK as the 2D-3D-2D pipeline, so the two compare image for image.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from kptool.errors import InputError
from kptool.transfer.inputs import TransferInput, resize_input, scale_pixels
from kptool.transfer.pipeline import ImageKeypoints

VISIBLE = 0.5    # visibility probability above which a keypoint is called visible


class DirectKeypoints:
    """Keypoints straight from the image with a trained ``heatmap2d`` model."""

    stages_run = ("keypoints",)

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
        from kptool.detect.learned import load_detector

        detector = load_detector(checkpoint, device)
        if "keypoints_2d" not in detector.model.outputs:
            raise InputError(checkpoint, f"{detector.name} does not predict 2D keypoints (train --preset "
                                         f"heatmap2d-resnet18)")
        self.model, self.device, self.name = detector.model, detector.device, detector.name
        self.image_size = int(detector.config.get("data", {}).get("image_size") or 128)
        self.checkpoint = str(checkpoint)

    def describe(self) -> dict:
        return {"method": "direct-2d", "model": self.name, "checkpoint": self.checkpoint,
                "image_size": self.image_size}

    def __call__(self, inp: TransferInput) -> ImageKeypoints:
        start = time.perf_counter()
        work = resize_input(inp, self.image_size)
        image = torch.as_tensor(np.array(work.rgb, dtype=np.float32) / 255, device=self.device).permute(2, 0, 1)[None]
        out = self.model.predict({"image": image})["keypoints_2d"][0].cpu().numpy()    # (J, 4)
        known = np.flatnonzero(out[:, 3] > 0.5)
        uv = scale_pixels(out[known, :2], self.image_size, inp.size)
        return ImageKeypoints(inp.name, uv, known.astype(np.int64), out[known, 2] > VISIBLE,
                              {"keypoints": time.perf_counter() - start})
