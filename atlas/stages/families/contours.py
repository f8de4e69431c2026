"""The weights of ground-truth curve and line detectors, built from line detectors.

As the Circuits articles describe curve detectors: a second layer whose units read a first
layer of oriented line detectors along an arc (a curve) or a straight line (a line),
the taps of each tangent detector splatted at their place and weighted by how well
their orientation matches the contour's there (``groundtruth.contour_layer`` builds
the layer from them).
"""

from __future__ import annotations

import math

import numpy as np

CONTOUR_AXES = tuple(range(0, 180, 15))  # the line detectors' normals, as atlas.data.stimuli draws lines


def line_detectors(k: int, width: float) -> np.ndarray:
    """Zero-mean bars through the centre at every ``CONTOUR_AXES`` normal, light then
    dark: (2 * 12, 3, k, k), unit norm."""
    from atlas.data import stimuli  # a light import, kept local: the stimuli module draws the bars

    bars = np.stack([stimuli.line(k, axis, 0.8 * k, width=width) for axis in CONTOUR_AXES])
    bars = bars - bars.mean((1, 2), keepdims=True)
    bars /= np.sqrt((bars ** 2).sum((1, 2), keepdims=True) * 3)
    bars = np.concatenate([bars, -bars])
    return np.repeat(bars[:, None], 3, axis=1)


def _splat(weights: np.ndarray, px: float, py: float, taps: np.ndarray) -> None:
    """Add ``taps`` (one per channel) at (px, py) pixels from the centre, y up, bilinearly."""
    k = weights.shape[-1]
    r, c = (k - 1) / 2 - py, (k - 1) / 2 + px
    r0, c0 = int(math.floor(r)), int(math.floor(c))
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        if 0 <= r0 + dr < k and 0 <= c0 + dc < k:
            weights[:, r0 + dr, c0 + dc] += (1 - abs(r - r0 - dr)) * (1 - abs(c - c0 - dc)) * taps


def _tangent_taps(normal: float, polarity: int) -> np.ndarray:
    """Excite the line detector along ``normal``, inhibit those 45 degrees or more from it."""
    apart = np.abs((np.array(CONTOUR_AXES) - normal % 180 + 90) % 180 - 90)
    taps = np.zeros(2 * len(CONTOUR_AXES))
    block = slice(polarity * len(CONTOUR_AXES), (polarity + 1) * len(CONTOUR_AXES))
    taps[block] = np.where(apart < 8, 1.0, np.where(apart >= 45, -0.5, 0.0))
    return taps


def curve_weights(k: int, orientation: float, radius: float, polarity: int) -> np.ndarray:
    """A curve unit (the Curve Circuits construction): line detectors tangent to an arc
    through the centre bulging towards ``orientation`` excite it; along the mirror arc,
    and along the straight line that continues the centre's tangent, they inhibit it."""
    weights = np.zeros((2 * len(CONTOUR_AXES), k, k))
    for sign, bulge in ((1.0, orientation), (-1.0, orientation + 180)):
        theta = math.radians(bulge)
        cx, cy = -radius * math.cos(theta), -radius * math.sin(theta)  # the centre of curvature
        for phi in np.linspace(-60, 60, 13):
            a = theta + math.radians(phi)
            _splat(weights, cx + radius * math.cos(a), cy + radius * math.sin(a),
                   sign * _tangent_taps(math.degrees(a), polarity))
    theta = math.radians(orientation)
    straight = -np.clip(_tangent_taps(orientation, polarity), 0, None)
    for t in np.linspace(0.7 * radius, radius, 3):
        for s in (-1, 1):
            _splat(weights, -s * t * math.sin(theta), s * t * math.cos(theta), straight)
    return weights


def line_weights(k: int, normal: float, polarity: int) -> np.ndarray:
    """A long-line unit: the line detectors of its axis, collinear along the whole kernel."""
    weights = np.zeros((2 * len(CONTOUR_AXES), k, k))
    theta = math.radians(normal)
    half = (k - 1) / 2
    for t in np.arange(-half, half + 0.5):
        _splat(weights, -t * math.sin(theta), t * math.cos(theta), _tangent_taps(normal, polarity))
    return weights
