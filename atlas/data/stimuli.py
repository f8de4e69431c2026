"""Synthetic stimuli: controlled images for measuring what a unit responds to.

Stimuli are drawn from distance fields, so strokes are exactly as wide as asked
and antialiased, and a whole bank (every orientation, every curvature) is one
vectorised computation. Each is centred on the image, so the unit at the centre of
a feature map sees it in the middle of its receptive field.

Orientation follows "Curve Detectors" (Cammarata et al., 2020): a curve's
orientation is the direction its convex side faces, in degrees counter-clockwise
from "right" (image y points down, so 90 faces up). A line's orientation is its
normal's, so a line at 0 is vertical and lines repeat every 180 degrees.
"""

from __future__ import annotations

import numpy as np


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates relative to the image centre, y pointing up."""
    coords = np.arange(size) - (size - 1) / 2
    return coords[None, :], -coords[:, None]


def _ink(distance: np.ndarray, width: float) -> np.ndarray:
    """Antialiased stroke coverage (0..1) from the distance to the stroke's centre line."""
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0)


def curve(size: int, orientation: float, radius: float, *, span: float = 100.0,
          width: float = 2.0) -> np.ndarray:
    """A circular arc through the centre, bulging towards ``orientation`` (degrees).

    ``radius`` in pixels; ``span`` is the arc's angle in degrees. Returns (size, size)
    stroke coverage in [0, 1]."""
    x, y = _grid(size)
    theta = np.radians(orientation)
    cx, cy = -radius * np.cos(theta), -radius * np.sin(theta)  # centre of curvature
    angle = np.arctan2(y - cy, x - cx)
    offset = np.angle(np.exp(1j * (angle - theta)))  # angle from the arc's midpoint
    half = np.radians(span) / 2
    on_arc = np.abs(np.hypot(x - cx, y - cy) - radius)
    ends = [(cx + radius * np.cos(theta + s * half), cy + radius * np.sin(theta + s * half)) for s in (-1, 1)]
    to_ends = np.minimum(*[np.hypot(x - ex, y - ey) for ex, ey in ends])
    return _ink(np.where(np.abs(offset) <= half, on_arc, to_ends), width)


def line(size: int, orientation: float, length: float, *, width: float = 2.0) -> np.ndarray:
    """A straight segment through the centre whose normal points at ``orientation``."""
    x, y = _grid(size)
    theta = np.radians(orientation)
    along = -x * np.sin(theta) + y * np.cos(theta)
    across = x * np.cos(theta) + y * np.sin(theta)
    beyond = np.clip(np.abs(along) - length / 2, 0, None)
    return _ink(np.hypot(across, beyond), width)


def to_rgb(coverage: np.ndarray, *, ink: float = 1.0, paper: float = 0.0) -> np.ndarray:
    """Coverage (..., H, W) -> grey images (..., 3, H, W) in [0, 1]: ink on paper."""
    grey = paper + (ink - paper) * coverage
    return np.repeat(grey[..., None, :, :], 3, axis=-3).astype(np.float32)


def curve_bank(size: int, orientations: np.ndarray, radii: tuple[float, ...], **kwargs) -> np.ndarray:
    """Curves for every (radius, orientation): coverage (len(radii), len(orientations), size, size)."""
    return np.stack([np.stack([curve(size, o, r, **kwargs) for o in orientations]) for r in radii])


def line_bank(size: int, orientations: np.ndarray, lengths: tuple[float, ...], **kwargs) -> np.ndarray:
    """Lines for every (length, orientation): coverage (len(lengths), len(orientations), size, size)."""
    return np.stack([np.stack([line(size, o, n, **kwargs) for o in orientations]) for n in lengths])


# -- the rest of the bank: edges, gratings, high-low frequency, color -------------------

HUES = {  # saturated colors for color-contrast stimuli, RGB in [0, 1]
    "red": (1.0, 0.1, 0.1), "yellow": (0.95, 0.9, 0.1), "green": (0.1, 0.8, 0.1),
    "cyan": (0.1, 0.85, 0.9), "blue": (0.15, 0.2, 1.0), "magenta": (0.9, 0.1, 0.9),
}
GREY = 0.5


def _along(size: int, orientation: float) -> np.ndarray:
    """Signed distance from the centre along the direction ``orientation`` points to."""
    x, y = _grid(size)
    theta = np.radians(orientation)
    return x * np.cos(theta) + y * np.sin(theta)


def aperture(size: int, extent: float) -> np.ndarray:
    """A soft disc of diameter ``extent`` at the centre: where a stimulus is drawn."""
    x, y = _grid(size)
    return np.clip(extent / 2 + 0.5 - np.hypot(x, y), 0.0, 1.0)


def edge(size: int, orientation: float) -> np.ndarray:
    """A luminance edge through the centre: 1 on the side ``orientation`` points to, 0 opposite."""
    return np.clip(0.5 + _along(size, orientation), 0.0, 1.0)


def curved_edge(size: int, orientation: float, radius: float) -> np.ndarray:
    """The boundary of a disc of ``radius`` through the centre, bulging towards
    ``orientation`` as ``curve`` does: 1 inside the disc, 0 outside, antialiased."""
    x, y = _grid(size)
    theta = np.radians(orientation)
    cx, cy = -radius * np.cos(theta), -radius * np.sin(theta)
    return np.clip(radius + 0.5 - np.hypot(x - cx, y - cy), 0.0, 1.0)


def grating(size: int, orientation: float, frequency: float, phase: float) -> np.ndarray:
    """A sinusoidal grating in [0, 1] varying along ``orientation``; ``frequency`` in cycles/pixel."""
    return 0.5 + 0.5 * np.cos(2 * np.pi * frequency * _along(size, orientation) + np.radians(phase))


def high_low(size: int, orientation: float, seed: int = 0) -> np.ndarray:
    """Fine texture on the side ``orientation`` points to, its blurred (flat) version opposite."""
    texture = np.random.default_rng(seed).random((size, size)) > 0.5
    sharp = edge(size, orientation)
    return sharp * texture + (1 - sharp) * GREY


def color_edge(size: int, orientation: float, near: tuple[float, float, float],
               far: tuple[float, float, float]) -> np.ndarray:
    """An edge between two colors: ``near`` on the side ``orientation`` points to. (3, H, W)."""
    side = edge(size, orientation)[None]
    return side * np.array(near)[:, None, None] + (1 - side) * np.array(far)[:, None, None]


def blob(size: int, radius: float, inside: tuple[float, float, float],
         outside: tuple[float, float, float]) -> np.ndarray:
    """A disc of one color on another: centre-surround stimuli. (3, H, W)."""
    disc = aperture(size, 2 * radius)[None]
    return disc * np.array(inside)[:, None, None] + (1 - disc) * np.array(outside)[:, None, None]


def windowed(image: np.ndarray, extent: float) -> np.ndarray:
    """Show a stimulus (H, W) or (3, H, W) through a centred aperture on grey: (3, H, W)."""
    if image.ndim == 2:
        image = np.repeat(image[None], 3, axis=0)
    window = aperture(image.shape[-1], extent)[None]
    return (window * image + (1 - window) * GREY).astype(np.float32)
