"""Handwritten circuits: detectors whose weights are set by hand, not learned.

"Zoom In"'s seventh argument: if we understand a feature, we can write its
circuit ourselves, and the handwritten detector should respond where the unit
does. Each detector here looks at the centre of an image (the stimulus bank's and
the tuning stage's convention) and is built for one unit from that unit's
preferred stimulus parameters:

- ``curve``: the Curve Circuits construction. A layer of line detectors (zero-mean
  segment kernels at 12 orientations, rectified for the unit's polarity) feeds a
  curve unit that adds up the line detectors tangent to an arc at points along it
  and subtracts those tangent to the mirror arc.
- ``line``: one line detector, the unit's orientation.
- ``template``: a matched filter, the unit's preferred stimulus minus grey (an
  oriented edge for Gabor units; for color units a two-color edge or a colored
  spot with its luminance taken out, so the filter is color-opponent; for a spot,
  its mean taken out too, so that the same color everywhere cancels: a
  center-surround filter), rectified.

``respond(detector, images)`` gives one number per image: the detector's
pre-activation, which is compared with the unit's by correlation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from atlas.data import stimuli

LINE_AXES = tuple(range(0, 180, 15))
# The preferred stimulus a family's matched filter is made from.
TEMPLATES = {"Ga": ("edge", "grating"), "Cc": ("color_edge",), "Cs": ("blob",)}
# The metric that says how well a unit matches its family's detector (``Matches``).
MATCH = {"Ga": "edge_match", "Cc": "color_edge_match", "Cs": "spot_match", "Ln": "line_match", "Cv": "curve_match"}
ARC_POINTS = 7  # points along the arc where line detectors are read


@dataclass
class Detector:
    kind: str  # "curve", "line" or "template"
    kernels: torch.Tensor  # (K, 3, k, k): line detectors or one template
    samples: list[tuple[int, float, float, float]]  # (kernel, x, y, weight): x, y in pixels from the centre
    polarity: str = "both"  # line detectors: "light", "dark" or "both" kinds of line


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


def curve(orientation: float, radius: float, extent: float, span: float = 100.0,
          polarity: str = "both") -> Detector:
    """Excited by line detectors tangent to an arc through the centre bulging towards
    ``orientation`` (as stimuli.curve draws it), inhibited by those tangent to the
    arc bulging the other way: the curve's mirror image does not drive it."""
    samples = []
    for weight, bulge in ((1.0, orientation), (-1.0, orientation + 180)):
        theta = math.radians(bulge)
        cx, cy = -radius * math.cos(theta), -radius * math.sin(theta)  # the centre of curvature
        for phi in np.linspace(-span / 2, span / 2, ARC_POINTS):
            a = theta + math.radians(phi)
            samples.append((_axis_index(math.degrees(a)), cx + radius * math.cos(a), cy + radius * math.sin(a),
                            weight))
    return Detector("curve", line_kernels(extent), samples, polarity)


def line(orientation: float, extent: float, polarity: str = "both") -> Detector:
    return Detector("line", line_kernels(extent), [(_axis_index(orientation), 0.0, 0.0, 1.0)], polarity)


def template(stimulus: np.ndarray, chromatic: bool = False, surround: float | None = None) -> Detector:
    """A matched filter: the stimulus (3, S, S) minus grey; minus its luminance too
    when ``chromatic``; with ``surround`` (a diameter), minus its mean over that
    centred disc, which makes a spot's filter center-surround; unit norm."""
    kernel = torch.from_numpy(stimulus - stimuli.GREY).float()
    if chromatic:
        kernel = kernel - kernel.mean(0, keepdim=True)
    if surround:
        disc = torch.from_numpy(stimuli.aperture(kernel.shape[-1], surround) > 0.5)
        kernel[:, disc] -= kernel[:, disc].mean(1, keepdim=True)
    return Detector("template", (kernel / kernel.norm().clamp_min(1e-12))[None], [(0, 0.0, 0.0, 1.0)])


def line_responses(images: torch.Tensor, kernels: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
    """Line detectors' signed responses (light lines positive) to images minus grey,
    detector ``i`` (kernels: (P, 3, k, k)) read at ``points[i]`` = (px, py) pixels from
    the centre (y up) of each image: (N, P). The detectors are read only where a circuit
    samples them, not convolved over the whole image: a field of 200 px needs 70 px line
    detectors, and a full convolution of those over every stimulus is minutes and
    gigabytes, where the samples, all in one ``grid_sample``, are milliseconds."""
    n, _, size, _ = images.shape
    count, k = len(points), kernels.shape[-1]
    offsets = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    # Pixel positions of each patch (x right, y down in the image) -> grid_sample's [-1, 1] (align_corners=False).
    xs = (size - 1) / 2 + torch.tensor([px for px, _ in points])[:, None] + offsets  # (P, k)
    ys = (size - 1) / 2 - torch.tensor([py for _, py in points])[:, None] + offsets
    gx, gy = (2 * xs + 1) / size - 1, (2 * ys + 1) / size - 1
    grid = torch.stack([gx[:, None, :].expand(count, k, k), gy[:, :, None].expand(count, k, k)], dim=-1)
    grid = grid.reshape(1, count * k, k, 2)

    def read(x: torch.Tensor) -> torch.Tensor:  # (M, 3, S, S) -> each detector's response (M, P)
        patches = F.grid_sample(x, grid.expand(len(x), -1, -1, -1), align_corners=False, padding_mode="zeros")
        return (patches.view(len(x), 3, count, k, k).transpose(1, 2) * kernels).sum((2, 3, 4))

    # Sampling is linear: (images - grey) read = images read - grey x (a field of ones) read,
    # the grey outside the image included, without a copy of the images minus grey.
    return read(images.float()) - stimuli.GREY * read(torch.ones(1, 3, size, size))


def respond(detector: Detector, images: torch.Tensor) -> torch.Tensor:
    """The detector's response to each image (N, 3, S, S) in [0, 1], before any
    rectification of its own: (N,)."""
    if detector.kind == "template":
        kernel = detector.kernels[0].flatten()
        return images.float().flatten(1) @ kernel - stimuli.GREY * kernel.sum()  # (x - grey) . kernel
    index = [i for i, _, _, _ in detector.samples]
    signed = line_responses(images, detector.kernels[index],
                            [(px, py) for _, px, py, _ in detector.samples])
    light, dark = F.relu(signed), F.relu(-signed)
    read = {"light": light, "dark": dark, "both": light + dark}[detector.polarity]
    return read @ torch.tensor([weight for _, _, _, weight in detector.samples])


def _recipe(symbol: str, kind: str, preferred: dict[str, Any]) -> tuple:
    """What decides the detector built for a unit of family ``symbol``: its parameters."""
    if kind == "curve":
        c = preferred["curve"]
        return ("curve", c["orientation"], c["radius"], c["polarity"])
    if kind == "line":
        return ("line", preferred["line"]["orientation"], preferred["line"]["polarity"])
    best = max(TEMPLATES[symbol], key=lambda k: preferred[k]["response"])
    return ("template", symbol, preferred[best]["index"])


def for_unit(symbol: str, kind: str, preferred: dict[str, Any], images: list[np.ndarray], extent: float) -> Detector:
    """The detector of ``kind`` built for a unit of family ``symbol`` from its preferred
    stimuli (a tuning summary's ``preferred``) in the stimulus bank ``images``."""
    recipe = _recipe(symbol, kind, preferred)
    if recipe[0] == "curve":
        return curve(recipe[1], recipe[2], extent, polarity=recipe[3])
    if recipe[0] == "line":
        return line(recipe[1], extent, polarity=recipe[2])
    return template(images[recipe[2]], chromatic=symbol in ("Cc", "Cs"), surround=extent if symbol == "Cs" else None)


class Matches:
    """How well each unit's responses to the stimulus bank follow the detector built
    for it, for every family with a detector: the correlation (``MATCH`` names the
    metric), the detector rectified where the unit is. A unit that merely prefers
    curves to lines need not follow a curve detector over the whole bank; a curve
    detector does. Detectors with the same recipe are built and shown the bank once,
    so a layer costs at most one pass per distinct preferred stimulus."""

    def __init__(self, images: list[np.ndarray], extent: float, handwritten: dict[str, str]):
        self.images, self.extent, self.handwritten = images, extent, handwritten  # symbol -> detector kind
        self._stacked: torch.Tensor | None = None
        self._responses: dict[tuple, np.ndarray] = {}

    def response(self, symbol: str, preferred: dict[str, Any]) -> np.ndarray:
        """The detector's response to every stimulus (unrectified)."""
        kind = self.handwritten[symbol]
        recipe = _recipe(symbol, kind, preferred)
        if recipe not in self._responses:
            if self._stacked is None:
                self._stacked = torch.from_numpy(np.stack(self.images))
            detector = for_unit(symbol, kind, preferred, self.images, self.extent)
            self._responses[recipe] = respond(detector, self._stacked).numpy()
        return self._responses[recipe]

    def of(self, preferred: dict[str, Any], responses: np.ndarray) -> dict[str, float | None]:
        """{metric: correlation} for one unit (``responses``: its response to each stimulus)."""
        rectified = responses.min() >= 0
        out = {}
        for symbol in self.handwritten:
            found = self.response(symbol, preferred)
            r = correlation(np.clip(found, 0, None) if rectified else found, responses)
            out[MATCH[symbol]] = None if r is None else round(r, 4)
        return out


def correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson's r; None when either side is constant or there are fewer than 3 pairs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
