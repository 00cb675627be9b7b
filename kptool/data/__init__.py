"""Shapes, the built-in procedural categories, normalisation and prepared datasets."""

from kptool.core.shape import Shape
from kptool.core.transform import Transform

__all__ = ["Shape", "Transform"]
