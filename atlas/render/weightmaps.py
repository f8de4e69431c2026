"""Weight maps as tiny inline PNGs (the ``weight_png`` template filter): one pixel
per tap, white at zero, red for excitation and blue for inhibition."""

from __future__ import annotations

import base64
import functools
import struct
import zlib
from typing import Any

import numpy as np


def abs_max(values: Any) -> float:
    """The largest magnitude in a weight map, or in nested lists of them: a color scale."""
    if isinstance(values, np.ndarray):
        return float(np.abs(values).max(initial=0.0))
    return max((abs_max(v) if isinstance(v, (list, np.ndarray)) else abs(v) for v in values), default=0.0)


def _weight_colors() -> np.ndarray:
    """511 colors for signed strengths -255..255: blue, fading to white at 0, then red."""
    fade = 255 - np.abs(np.arange(-255, 256))
    full = np.full_like(fade, 255)
    positive = np.arange(-255, 256) > 0
    return np.where(positive[:, None], np.stack([full, fade, fade], -1),
                    np.stack([fade, fade, full], -1)).astype(np.uint8)


WEIGHT_COLORS = _weight_colors()


@functools.lru_cache(maxsize=65536)
def _weight_png_cached(data: bytes, shape: tuple[int, int], scale: float) -> str:
    w = np.frombuffer(data, dtype=np.float32).reshape(shape)
    strength = np.clip(np.trunc(w * (255 / scale)), -255, 255).astype(np.int16) if scale else np.zeros(shape, np.int16)
    return "data:image/png;base64," + base64.b64encode(_png(WEIGHT_COLORS[strength + 255])).decode()


def weight_png(weights: Any, scale: float) -> str:
    """A weight map as a data-URI PNG, one pixel per position: white at zero, red for
    excitation and blue for inhibition at full strength when ``|w| == scale``. The same
    map at the same scale (a unit's page and its circuit page) is encoded once."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    return _weight_png_cached(w.tobytes(), w.shape, float(scale))


def _png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB image as PNG bytes: for maps of a few pixels, PIL's per-image
    overhead was most of the render's time."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)  # filter 0

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))
