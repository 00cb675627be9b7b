"""``kptool.data.shape.Shape`` is :class:`kptool.core.shape.Shape` (its home since kptool.io reads into it)."""

from kptool.core.shape import Shape

__all__ = ["Shape"]
