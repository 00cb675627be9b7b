"""Shapes, the built-in procedural categories, normalisation and prepared datasets."""

from kptool.data.shape import Shape
from kptool.data.transform import Transform

__all__ = ["Shape", "Transform"]
