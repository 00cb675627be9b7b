"""Detecting keypoints: trained models and classical baselines behind one protocol.

- :func:`get_detector`: a :class:`Detector` by method (``checkpoint`` or a baseline).
- :func:`load_detector`: a trained model from a run folder, checkpoint or weights file.
- :func:`default_weights`: the weights shipped for a built-in category.
- :func:`detect_files` / :func:`detect_dataset`: run a detector on shape files (keypoints
  mapped back to each file's frame) or on a prepared dataset split (prepared frame).
"""

from kptool.detect.base import Detector
from kptool.detect.learned import CheckpointDetector, available_weights, default_weights, load_detector
from kptool.detect.run import METHODS, Detection, detect_dataset, detect_files, get_detector, input_files

__all__ = ["Detector", "CheckpointDetector", "load_detector", "default_weights", "available_weights",
           "get_detector", "METHODS", "Detection", "detect_files", "detect_dataset", "input_files"]
