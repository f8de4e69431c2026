"""A model whose units are hand-set to known families, in shuffled channel order.

- ``early`` (conv over RGB, 11x11): Gabor edge detectors at four orientations,
  red-green and blue-yellow color contrast edges, red and blue center-surround spots;
- ``lines`` (7x7, over a fixed 1x1 "retina" that passes RGB on, then rectified: not a
  linear filter of the image, which would be Gabor-like, as a first layer's are):
  light-line detectors at eight orientations;
- ``curves`` (conv over ``lines``): curve detectors at eight orientations, each
  adding up the line detectors tangent to an arc (the Curve Circuits construction).

``KINDS[layer][channel]`` is the family each channel was built to be, and
``CURVE_ORIENTATIONS[channel]`` each curve unit's orientation (degrees, y up).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from atlas.data import stimuli

K = 11
LINE_K, CURVE_K = 7, 17  # short line detectors, read along arcs that span the curve kernel
LINE_AXES = [i * 22.5 for i in range(8)]
CURVE_RADIUS = 7.0


def _grid(k: int):
    c = np.arange(k) - (k - 1) / 2
    return c[None, :], -c[:, None]  # x right, y up (the stimuli's convention)


def gabor(orientation: float, frequency: float = 0.12, sigma: float = 2.5) -> np.ndarray:
    """An odd Gabor: positive on the side ``orientation`` points to, as stimuli.edge draws it bright."""
    x, y = _grid(K)
    t = math.radians(orientation)
    along = x * math.cos(t) + y * math.sin(t)
    return np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * np.sin(2 * math.pi * frequency * along)


def disc(radius: float) -> np.ndarray:
    x, y = _grid(K)
    return (np.hypot(x, y) <= radius).astype(np.float64)


def _rgb(spatial: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    return np.stack([spatial * c for c in color])


def early_kernels() -> tuple[np.ndarray, list[str]]:
    kernels, kinds = [], []
    for orientation in (0, 45, 90, 135):
        kernels.append(_rgb(gabor(orientation), (1, 1, 1)))
        kinds.append("Ga")
    step = gabor(0, frequency=0.05, sigma=3.0)
    for color in ((1, -1, 0), (-0.5, -0.5, 1)):  # red vs green, blue vs yellow: no luminance term
        kernels.append(_rgb(step, color))
        kinds.append("Cc")
    dog = disc(2.0) / disc(2.0).sum() - disc(5.0) / disc(5.0).sum()
    for hue in ("red", "blue"):
        rgb = np.array(stimuli.HUES[hue])
        kernels.append(_rgb(dog * 30, tuple(rgb - rgb.mean())))  # chromatic only: white and black do nothing
        kinds.append("Cs")
    return np.stack(kernels), kinds


def line_kernels() -> np.ndarray:
    lines = np.stack([stimuli.line(LINE_K, axis, 5.0, width=1.0) for axis in LINE_AXES])
    lines = lines - lines.mean((1, 2), keepdims=True)
    return np.repeat(lines[:, None], 3, axis=1) / 3


def curve_kernels(orientations: list[float], k: int = CURVE_K) -> np.ndarray:
    """(len(orientations), len(LINE_AXES), k, k): each curve reads the line detectors
    along its arc, excited by the one tangent to the arc and inhibited by those at
    45 degrees or more from it, and inhibited along the arc bulging the other way
    (as InceptionV1's curve detectors are); the two arcs cancel at the centre."""
    weights = np.zeros((len(orientations), len(LINE_AXES), k, k))
    centre = (k - 1) / 2
    axes = np.array(LINE_AXES)

    def splat(row: int, px: float, py: float, w: np.ndarray) -> None:
        r, c = centre - py, centre + px  # bilinearly: no aliasing from rounding positions
        r0, c0 = int(math.floor(r)), int(math.floor(c))
        for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
            if 0 <= r0 + dr < k and 0 <= c0 + dc < k:
                weights[row, :, r0 + dr, c0 + dc] += (1 - abs(r - r0 - dr)) * (1 - abs(c - c0 - dc)) * w

    for row, theta_deg in enumerate(orientations):
        for sign, bulge in ((1.0, theta_deg), (-1.0, theta_deg + 180)):
            theta = math.radians(bulge)
            cx, cy = -CURVE_RADIUS * math.cos(theta), -CURVE_RADIUS * math.sin(theta)
            for phi in np.linspace(-60, 60, 13):
                a = theta + math.radians(phi)
                apart = np.abs((axes - math.degrees(a) % 180 + 90) % 180 - 90)
                splat(row, cx + CURVE_RADIUS * math.cos(a), cy + CURVE_RADIUS * math.sin(a),
                      sign * np.where(apart < 12, 1.0, np.where(apart >= 45, -0.5, 0.0)))
        # A straight line continuing the centre's tangent, where the arc has curved away, inhibits.
        theta = math.radians(theta_deg)
        tangent = np.zeros(len(axes))
        tangent[int(round((theta_deg % 180) / 22.5)) % len(axes)] = -1.0
        for t in (-7, -6, -5, 5, 6, 7):
            splat(row, -t * math.sin(theta), t * math.cos(theta), tangent)
    return weights

def _shuffled(weights: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(weights))
    return weights[order], order


class FamilyNet(nn.Module):
    def __init__(self):
        super().__init__()
        early, early_kinds = early_kernels()
        early, order = _shuffled(early, 1)
        self.kinds = {"early": [early_kinds[i] for i in order]}
        curve_orients = [i * 45.0 for i in range(8)]
        curves, curve_order = _shuffled(curve_kernels(curve_orients), 2)
        self.kinds["lines"] = ["Ln"] * len(LINE_AXES)
        self.kinds["curves"] = ["Cv"] * len(curve_orients)
        self.curve_orientations = [curve_orients[i] for i in curve_order]
        self.early = nn.Conv2d(3, len(early), K, padding=K // 2)
        retina = nn.Conv2d(3, 4, 1, bias=False)  # RGB passed on, and a fourth channel of nothing
        lines = nn.Conv2d(4, len(LINE_AXES), LINE_K, padding=LINE_K // 2)
        self.lines = nn.Sequential(retina, lines, nn.ReLU())
        conv = nn.Conv2d(len(LINE_AXES), len(curves), CURVE_K, padding=CURVE_K // 2)
        self.curves = nn.Sequential(conv, nn.ReLU())
        with torch.no_grad():
            retina.weight.copy_(torch.eye(4, 3)[:, :, None, None])
            over_retina = np.concatenate([line_kernels(), np.zeros((len(LINE_AXES), 1, LINE_K, LINE_K))], axis=1)
            for layer, w in ((self.early, early), (lines, over_retina), (conv, curves)):
                layer.weight.copy_(torch.from_numpy(w).float())
                layer.bias.zero_()
            # A threshold at half of what each unit's own curve gives it: only close
            # matches fire, as in a trained network.
            own = torch.from_numpy(np.stack([stimuli.windowed(stimuli.curve(48, o, CURVE_RADIUS, width=1.5), 24)
                                             for o in self.curve_orientations]))
            peak = conv(torch.relu(self.lines(own)))[:, :, 24, 24].diagonal()
            conv.bias.copy_(-0.5 * peak)

    def forward(self, x):
        early = torch.relu(self.early(x))
        curves = self.curves(torch.relu(self.lines(x)))
        return early.mean((2, 3)).sum(1) + curves.mean((2, 3)).sum(1)


def make_family_net() -> FamilyNet:
    return FamilyNet()
