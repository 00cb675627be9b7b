"""The records every layer shares: :class:`Shape` (one shape and its annotations) and
:class:`Transform` (a similarity between frames). They import nothing else of kptool but
its errors, so file readers (``kptool.io``) and datasets (``kptool.data``) both build on
them without importing each other's packages in a circle."""

from kptool.core.shape import Shape
from kptool.core.transform import Transform

__all__ = ["Shape", "Transform"]
