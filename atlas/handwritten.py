"""Handwritten circuits: detectors whose weights are set by hand, not learned.

"Zoom In"'s seventh argument: if we understand a feature, we can write its
circuit ourselves, and the handwritten detector should respond where the unit
does. Each detector here looks at the centre of an image (the stimulus bank's and
the tuning stage's convention) and is built for one unit from that unit's
preferred stimulus parameters:

- ``curve``: the Curve Circuits construction. A layer of line detectors (zero-mean
  segment kernels at 12 orientations, rectified for both polarities) feeds a curve
  unit that adds up the line detectors tangent to an arc at points along it.
- ``line``: one line detector, the unit's orientation.
- ``template``: a matched filter, the unit's preferred stimulus minus grey (an
  oriented edge for Gabor units, a two-color edge for color contrast units, a
  colored spot for center-surround units), rectified.

``respond(detector, images)`` gives one number per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from atlas.data import stimuli

LINE_AXES = tuple(range(0, 180, 15))
ARC_POINTS = 7  # points along the arc where line detectors are read


@dataclass
class Detector:
    kind: str  # "curve", "line" or "template"
    kernels: torch.Tensor  # (K, 3, k, k): line detectors or one template
    samples: list[tuple[int, float, float]]  # (kernel, x, y): where each kernel is read, pixels from the centre


def line_kernels(extent: float) -> torch.Tensor:
    """Zero-mean segments at ``LINE_AXES`` (normal orientation), about a quarter of the field long."""
    k = max(5, int(round(extent / 3)) | 1)
    width = max(1.0, extent / 16)
    kernels = np.stack([stimuli.line(k, axis, 0.8 * k, width=width) for axis in LINE_AXES])
    kernels = kernels - kernels.mean((1, 2), keepdims=True)
    kernels /= np.linalg.norm(kernels.reshape(len(LINE_AXES), -1), axis=1)[:, None, None]
    return torch.from_numpy(np.repeat(kernels[:, None] / math.sqrt(3), 3, axis=1)).float()


def _axis_index(orientation: float) -> int:
    return int(round((orientation % 180) / 15)) % len(LINE_AXES)


def curve(orientation: float, radius: float, extent: float, span: float = 100.0) -> Detector:
    """Line detectors tangent to an arc through the centre bulging towards ``orientation``."""
    theta = math.radians(orientation)
    cx, cy = -radius * math.cos(theta), -radius * math.sin(theta)  # as stimuli.curve draws it
    samples = []
    for phi in np.linspace(-span / 2, span / 2, ARC_POINTS):
        a = theta + math.radians(phi)
        samples.append((_axis_index(math.degrees(a)), cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return Detector("curve", line_kernels(extent), samples)


def line(orientation: float, extent: float) -> Detector:
    return Detector("line", line_kernels(extent), [(_axis_index(orientation), 0.0, 0.0)])


def template(stimulus: np.ndarray) -> Detector:
    """A matched filter: the stimulus (3, S, S) minus grey, unit norm."""
    kernel = torch.from_numpy(stimulus - stimuli.GREY).float()
    return Detector("template", (kernel / kernel.norm().clamp_min(1e-12))[None], [(0, 0.0, 0.0)])


def line_maps(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The line detectors' rectified responses everywhere: (N, len(LINE_AXES), S, S)."""
    maps = F.conv2d(images.float() - stimuli.GREY, kernels, padding=kernels.shape[-1] // 2)
    return F.relu(maps) + F.relu(-maps)  # a line detector answers light and dark lines


def respond(detector: Detector, images: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
    """The detector's response to each image (N, 3, S, S) in [0, 1]: (N,). ``maps``:
    the images' ``line_maps`` when already computed (they do not depend on the unit)."""
    if detector.kind == "template":
        return F.relu(((images.float() - stimuli.GREY) * detector.kernels[0]).flatten(1).sum(1))
    if maps is None:
        maps = line_maps(images, detector.kernels)
    size = images.shape[-1]
    total = torch.zeros(len(images))
    for index, px, py in detector.samples:
        # Pixel offsets from the centre (y up) -> grid_sample's [-1, 1] coordinates (y down).
        grid = torch.tensor([[[[px / (size / 2), -py / (size / 2)]]]], dtype=torch.float32).expand(len(images), 1, 1, 2)
        total += F.grid_sample(maps[:, index:index + 1], grid, align_corners=False).flatten()
    return total
