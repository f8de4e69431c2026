"""Arrays to WebP files: the one place that decides how images are encoded."""

from __future__ import annotations

import shutil

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

WEBP_QUALITY = 90  # visually lossless for feature visualizations at a third of PNG's size


def save_webp(pixels: np.ndarray, path: Path, *, size: int | None = None, lossless: bool = False) -> None:
    """Save uint8 (H, W, 3) pixels, optionally resized to ``size`` x ``size``.

    ``lossless`` (with nearest-neighbour resizing) is for weights, whose individual
    pixels are the data; photos and feature visualizations use smooth resizing.
    """
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if size is not None and image.size != (size, size):
        resample = Image.Resampling.NEAREST if lossless else Image.Resampling.LANCZOS
        image = image.resize((size, size), resample)
    image.save(path, "WEBP", quality=WEBP_QUALITY, lossless=lossless, method=4)


SPRITE_QUALITY = 55  # crops are small photographs, shown at most 1.5x: no loss seen at 3x against 70, 13% fewer bytes
WEBP_SIDE = 16383  # WebP's largest side in pixels: a sprite holds at most this // its tiles' side


def sprite(sources: Sequence[Path | str], target: Path, side: int) -> None:
    """Stack images (each resized to ``side`` x ``side``) top to bottom into one WebP."""
    sheet = Image.new("RGB", (side, side * len(sources)))
    for i, source in enumerate(sources):
        with Image.open(source) as tile:
            tile = tile.convert("RGB")
            if tile.size != (side, side):
                tile = tile.resize((side, side), Image.Resampling.LANCZOS)
            sheet.paste(tile, (0, i * side))
    sheet.save(target, "WEBP", quality=SPRITE_QUALITY, method=4)


SITE_QUALITY = 80  # feature visualizations and stimuli on the site: two thirds of the bytes, no loss seen at 3x
THUMB_QUALITY = 70  # their 64 px thumbnails, shown at their size on grids and strips


def recode(source: Path | str, target: Path, quality: int = SITE_QUALITY) -> None:
    """``source`` (an image of the store) as the site holds it: WebP at ``quality``, or
    the source's own bytes where those are fewer."""
    with Image.open(source) as image:
        image.convert("RGB").save(target, "WEBP", quality=quality, method=4)
    if target.stat().st_size >= Path(source).stat().st_size:
        shutil.copyfile(source, target)


def to_uint8(images01: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] to uint8, rounding rather than truncating (NaN: black)."""
    return np.clip(np.rint(np.nan_to_num(images01 * 255)), 0, 255).astype(np.uint8)
