"""Images for keypoint transfer: reading, checking, and the object's mask.

An input is a square RGB image of one object, roughly centred. Its mask (the object's
silhouette) comes from a mask file (any photo) or, for an object on a plain background,
from the background: the colour of the image border, taken as the median of the border
pixels, and every pixel farther from it than a tolerance is the object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kptool.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MIN_SIZE = 32                 # pixels: smaller images hold too little of the object to place keypoints
BACKGROUND_TOLERANCE = 0.08   # colour distance (RGB in [0, 1]) from the border colour that counts as object
PLAIN_BORDER = 0.9            # share of border pixels that must match the border colour for a plain background
MIN_OBJECT_SHARE = 0.002      # of the image's pixels: less than this is "no object"


@dataclass
class TransferInput:
    """One image to transfer keypoints to.

    Attributes:
        name: the image's name in the predictions (its path relative to the input folder, or
            ``<shape>/<view>`` for a rendered dataset).
        rgb: ``(S, S, 3)`` uint8.
        mask: ``(S, S)`` bool, the object's silhouette.
        source: the file it was read from.
    """

    name: str
    rgb: np.ndarray
    mask: np.ndarray
    source: str = ""

    @property
    def size(self) -> int:
        return int(self.rgb.shape[0])


def image_files(path: str | os.PathLike) -> list[Path]:
    """An image file, or the image files under a folder (sorted, recursively)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(p, "no such image file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(p, f"no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """A square RGB image as ``(S, S, 3)`` uint8 (alpha composited on white)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = im.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
            else:
                rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(path, f"unreadable image ({e})") from None
    check_square(path, rgb.shape[:2], "image")
    return rgb


def check_square(path, shape: tuple[int, int], what: str) -> None:
    h, w = shape
    if h != w:
        raise InputError(path, f"{what} is {w} x {h} pixels: transfer needs square images (crop or pad it around "
                               f"the object)")
    if h < MIN_SIZE:
        raise InputError(path, f"{what} is {w} x {h} pixels: at least {MIN_SIZE} x {MIN_SIZE} needed")


def read_mask(path: str | os.PathLike, size: int) -> np.ndarray:
    """A mask image of ``size x size`` pixels as ``(S, S)`` bool (brighter than half = object)."""
    from kptool.render.refine import read_silhouette

    mask = read_silhouette(path)
    if mask.shape != (size, size):
        raise InputError(path, f"mask is {mask.shape[1]} x {mask.shape[0]} pixels, the image {size} x {size}")
    return mask


def border_pixels(rgb: np.ndarray) -> np.ndarray:
    """``(4 S - 4, 3)`` the pixels on the image's border."""
    return np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]])


def mask_from_background(rgb: np.ndarray, tolerance: float = BACKGROUND_TOLERANCE,
                         source: str | os.PathLike | None = None) -> np.ndarray:
    """``(S, S)`` bool: the pixels that differ from a plain background by more than ``tolerance``.

    Raises InputError when the border is not one colour (the background is not plain: give a
    mask) or when nothing differs from it (no object).
    """
    image = np.asarray(rgb, dtype=np.float64) / 255.0
    border = border_pixels(image)
    colour = np.median(border, axis=0)
    if np.mean(np.linalg.norm(border - colour, axis=1) <= tolerance) < PLAIN_BORDER:
        raise InputError(source, "the background is not plain (the image border is not one colour): give the "
                                 "object's mask with --mask")
    mask = np.linalg.norm(image - colour, axis=2) > tolerance
    check_object(mask, source)
    return mask


def check_object(mask: np.ndarray, source: str | os.PathLike | None) -> None:
    """InputError when the mask holds (almost) no object."""
    if mask.mean() < MIN_OBJECT_SHARE:
        raise InputError(source, "no object in the image (it is all background)" if not mask.any() else
                                 f"no object in the image (only {int(mask.sum())} pixels differ from the background)")


def load_input(path: str | os.PathLike, name: str, mask_path: str | os.PathLike | None = None) -> TransferInput:
    """Read an image and its mask (from ``mask_path`` or from the background)."""
    rgb = read_rgb(path)
    if mask_path is not None:
        mask = read_mask(mask_path, rgb.shape[0])
        check_object(mask, mask_path)
    else:
        mask = mask_from_background(rgb, source=path)
    return TransferInput(name, rgb, mask, str(path))


def resize_input(inp: TransferInput, size: int) -> TransferInput:
    """The input at ``size x size`` pixels (RGB by area averaging, the mask by the majority of its area)."""
    if inp.size == size:
        return inp
    from PIL import Image

    rgb = np.asarray(Image.fromarray(inp.rgb).resize((size, size), Image.Resampling.BOX))
    mask = np.asarray(Image.fromarray(inp.mask.astype(np.uint8) * 255).resize((size, size),
                                                                                 Image.Resampling.BOX)) >= 128
    return TransferInput(inp.name, rgb, mask, inp.source)


def scale_pixels(uv: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """Pixel coordinates ``(K, 2)`` (integers at pixel centres) from one image size to another."""
    s = to_size / from_size
    return (np.asarray(uv, dtype=np.float64) + 0.5) * s - 0.5
