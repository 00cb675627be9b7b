"""kptool: unsupervised 3D semantic keypoint detection and evaluation.

The public API is deliberately small and flat; see the sub-packages:
``kptool.io`` (reading/writing shapes), ``kptool.data`` (shapes, built-in
categories, prepared datasets), ``kptool.ops`` (point-cloud ops),
``kptool.geodesic``, ``kptool.models``, ``kptool.train``, ``kptool.metrics``,
``kptool.detect`` and ``kptool.viz``; :func:`kptool.evaluate` scores a predictions file
(:mod:`kptool.evaluation`). The layers and the model contract: docs/architecture.md.
"""

__version__ = "0.1.0"

from kptool.errors import KptoolError  # noqa: E402,F401


def __getattr__(name: str):
    # kptool.evaluate without importing torch and the metrics at `import kptool`
    if name == "evaluate":
        from kptool.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'kptool' has no attribute {name!r}")
