"""kptool: unsupervised 3D semantic keypoint detection and evaluation.

The public API is deliberately small and flat; see the sub-packages:
``kptool.io`` (reading/writing shapes), ``kptool.data`` (shapes, built-in
categories, prepared datasets), ``kptool.ops`` (point-cloud ops),
``kptool.geodesic``, ``kptool.models``, ``kptool.train``, ``kptool.metrics``,
``kptool.detect`` and ``kptool.viz``.
"""

__version__ = "0.1.0"

from kptool.errors import KptoolError  # noqa: E402,F401
