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
  oriented edge or grating for Gabor units: a simple cell; for color units a
  two-color edge or a colored spot with its luminance taken out, so the filter is
  color-opponent; for a spot, its mean taken out too, so that the same color
  everywhere cancels: a center-surround filter), rectified.
- ``energy``: a complex cell, the energy model: the root of the summed squares of
  two matched filters in quadrature, the preferred grating and the same grating a
  quarter period on. A Gabor unit is given the simple or the complex detector,
  whichever it follows better (``Matches.detector``): a unit that pools Gabors of
  one orientation over space does not care where the grating's bars fall.

``respond(detector, images)`` gives one number per image: the detector's
pre-activation, which is compared with the unit's by correlation. Every detector is
linear up to its last step (``reading``, then ``finish``), so a layer's detectors see
the stimuli in one matrix product (``respond_all``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from atlas.data import stimuli
from atlas.data.bank import Bank

LINE_AXES = tuple(range(0, 180, 15))
# The preferred stimulus a family's matched filter is made from.
TEMPLATES = {"Ga": ("edge", "grating"), "Cc": ("color_edge",), "Cs": ("blob",)}
# The metric that says how well a unit matches its family's detector (``Matches``).
MATCH = {"Ga": "gabor_match", "Cc": "color_edge_match", "Cs": "spot_match", "Ln": "line_match", "Cv": "curve_match"}
ARC_POINTS = 7  # points along the arc where line detectors are read


@dataclass
class Detector:
    kind: str  # "curve", "line", "template" or "energy"
    kernels: torch.Tensor  # (K, 3, k, k): line detectors, one template or two in quadrature
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


def energy(stimulus: np.ndarray, quadrature: np.ndarray) -> Detector:
    """A complex cell: the energy of two matched filters in quadrature (each (3, S, S))."""
    kernels = torch.cat([template(stimulus).kernels, template(quadrature).kernels])
    return Detector("energy", kernels, [(0, 0.0, 0.0, 1.0), (1, 0.0, 0.0, 1.0)])


def reading(detector: Detector, size: int) -> torch.Tensor:
    """The detector's linear part over an image of ``size`` pixels: one column per
    filter it reads, (3 S S, K); ``respond`` is ``finish`` of (image - grey) times it.

    Line detectors are read only where a circuit samples them, not convolved over
    the whole image: a field of 200 px needs 70 px line detectors, and a full
    convolution of those over every stimulus is minutes and gigabytes. Reading a
    patch (bilinearly, between pixels) and weighing it is linear in the image, so each
    detector at its point is one column over the image's pixels (``_sampling_matrix``)."""
    if detector.kind in ("template", "energy"):
        return detector.kernels.flatten(1).T.float()
    index = [i for i, _, _, _ in detector.samples]
    return _sampling_matrix(detector.kernels[index], [(px, py) for _, px, py, _ in detector.samples], size)


def finish(detector: Detector, signed: torch.Tensor) -> torch.Tensor:
    """The detector's response from its filters' signed responses (N, K): (N,)."""
    if detector.kind == "template":
        return signed[:, 0]
    if detector.kind == "energy":
        return signed.square().sum(1).sqrt()
    light, dark = F.relu(signed), F.relu(-signed)
    read = {"light": light, "dark": dark, "both": light + dark}[detector.polarity]
    return read @ torch.tensor([weight for _, _, _, weight in detector.samples])


def respond(detector: Detector, images: torch.Tensor) -> torch.Tensor:
    """The detector's response to each image (N, 3, S, S) in [0, 1], before any
    rectification of its own: (N,)."""
    return respond_all([detector], images)[0]


def respond_all(detectors: Sequence[Detector], images: torch.Tensor, budget: int = 2 ** 27) -> list[torch.Tensor]:
    """``respond`` for many detectors, their filters read in as few passes over the
    images as ``budget`` (floats of filters held at once) allows: reading the images is
    the cost, not the filters."""
    size = images.shape[-1]
    flat = images.float().flatten(1)
    found: list[torch.Tensor] = []
    group: list[tuple[Detector, torch.Tensor]] = []

    def flush() -> None:
        weights = torch.cat([w for _, w in group], 1)
        # (images - grey) . w; outside the image counts as grey (nothing is read there).
        signed = flat @ weights - stimuli.GREY * weights.sum(0)
        for (detector, _), part in zip(group, signed.split([w.shape[1] for _, w in group], 1)):
            found.append(finish(detector, part))
        group.clear()

    for detector in detectors:
        weights = reading(detector, size)
        if group and sum(w.numel() for _, w in group) + weights.numel() > budget:
            flush()
        group.append((detector, weights))
    if group:
        flush()
    return found


def _sampling_matrix(kernels: torch.Tensor, points: list[tuple[float, float]], size: int) -> torch.Tensor:
    """(3 S S, P): column i reads line detector ``kernels[i]`` (3, k, k) at ``points[i]``
    = (px, py) pixels from the centre (y up), as ``grid_sample`` would (bilinear,
    align_corners=False, zeros outside). Built as the gradient of those reads: one
    backward pass over P blank images, image i read by detector i only."""
    count, k = len(points), kernels.shape[-1]
    offsets = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    # Pixel positions of each patch (x right, y down in the image) -> grid_sample's [-1, 1] (align_corners=False).
    xs = (size - 1) / 2 + torch.tensor([px for px, _ in points])[:, None] + offsets  # (P, k)
    ys = (size - 1) / 2 - torch.tensor([py for _, py in points])[:, None] + offsets
    gx, gy = (2 * xs + 1) / size - 1, (2 * ys + 1) / size - 1
    grid = torch.stack([gx[:, None, :].expand(count, k, k), gy[:, :, None].expand(count, k, k)], dim=-1)
    blank = torch.zeros(count, 3, size, size, requires_grad=True)
    with torch.enable_grad():
        patches = F.grid_sample(blank, grid, align_corners=False, padding_mode="zeros")  # (P, 3, k, k)
        reads = (patches * kernels.float()).sum((1, 2, 3))  # image i through detector i
        (gradient,) = torch.autograd.grad(reads.sum(), blank)
    return gradient.flatten(1).T


def _quadrature(bank: Bank, index: int) -> int | None:
    """The bank's grating a quarter period on from grating ``index`` (None: none)."""
    grating = bank.params[index]
    for i, p in enumerate(bank.params):
        if (p["kind"] == "grating" and p["orientation"] == grating["orientation"]
                and p["frequency"] == grating["frequency"] and p["phase"] == (grating["phase"] + 90) % 360):
            return i
    return None


def recipes(symbol: str, kind: str, preferred: dict[str, Any], bank: Bank) -> list[tuple]:
    """What decides each detector a unit of family ``symbol`` may be given: their
    parameters. One, except for a Gabor unit: the simple cell and, where its preferred
    grating has a quadrature in the bank, the complex one."""
    if kind == "curve":
        c = preferred["curve"]
        return [("curve", c["orientation"], c["radius"], c["polarity"])]
    if kind == "line":
        return [("line", preferred["line"]["orientation"], preferred["line"]["polarity"])]
    best = max(TEMPLATES[symbol], key=lambda k: preferred[k]["response"])
    found = [("template", symbol, preferred[best]["index"])]
    if symbol == "Ga" and "grating" in preferred:
        quadrature = _quadrature(bank, preferred["grating"]["index"])
        if quadrature is not None:
            found.append(("energy", preferred["grating"]["index"], quadrature))
    return found


def build(recipe: tuple, bank: Bank, extent: float) -> Detector:
    """The detector a recipe (``recipes``) describes, over the stimulus bank's images."""
    if recipe[0] == "curve":
        return curve(recipe[1], recipe[2], extent, polarity=recipe[3])
    if recipe[0] == "line":
        return line(recipe[1], extent, polarity=recipe[2])
    if recipe[0] == "energy":
        return energy(bank.images[recipe[1]], bank.images[recipe[2]])
    symbol = recipe[1]
    return template(bank.images[recipe[2]], chromatic=symbol in ("Cc", "Cs"),
                    surround=extent if symbol == "Cs" else None)


class Matches:
    """How well each unit's responses to the stimulus bank follow the detector built
    for it, for every family with a detector: the correlation (``MATCH`` names the
    metric), the detector rectified where the unit is. A unit that merely prefers
    curves to lines need not follow a curve detector over the whole bank; a curve
    detector does. Detectors with the same recipe are built and shown the bank once,
    so a layer costs at most one pass per distinct preferred stimulus."""

    def __init__(self, bank: Bank, extent: float, handwritten: dict[str, str]):
        self.bank, self.extent, self.handwritten = bank, extent, handwritten  # symbol -> detector kind
        self._stacked: torch.Tensor | None = None
        self._responses: dict[tuple, np.ndarray] = {}

    @property
    def stimuli(self) -> torch.Tensor:
        """The bank's images as one tensor (N, 3, S, S)."""
        if self._stacked is None:
            self._stacked = torch.from_numpy(np.stack(self.bank.images))
        return self._stacked

    def response(self, recipe: tuple) -> np.ndarray:
        """The detector's response to every stimulus (unrectified)."""
        if recipe not in self._responses:
            self.prepare([recipe])
        return self._responses[recipe]

    def prepare(self, wanted: Iterable[tuple]) -> None:
        """Show the bank to every detector of ``wanted`` (recipes) not shown it yet, all at once."""
        todo = list(dict.fromkeys(r for r in wanted if r not in self._responses))
        found = respond_all([build(r, self.bank, self.extent) for r in todo], self.stimuli)
        self._responses.update((r, response.numpy()) for r, response in zip(todo, found))

    def prepare_units(self, preferred: Iterable[dict[str, Any]]) -> None:
        """``prepare`` every detector that units with these preferred stimuli may be given."""
        self.prepare(r for p in preferred for symbol in self.handwritten
                     for r in recipes(symbol, self.handwritten[symbol], p, self.bank))

    def best(self, symbol: str, preferred: dict[str, Any], responses: np.ndarray) -> tuple[tuple, float | None]:
        """The recipe of the detector the unit (``responses``: one per stimulus) follows
        best, of those its family allows, and the correlation."""
        rectified = responses.min() >= 0
        found = []
        for recipe in recipes(symbol, self.handwritten[symbol], preferred, self.bank):
            response = self.response(recipe)
            found.append((recipe, correlation(np.clip(response, 0, None) if rectified else response, responses)))
        return max(found, key=lambda pair: -np.inf if pair[1] is None else pair[1])

    def detector(self, symbol: str, preferred: dict[str, Any], responses: np.ndarray) -> Detector:
        return build(self.best(symbol, preferred, responses)[0], self.bank, self.extent)

    def of(self, preferred: dict[str, Any], responses: np.ndarray) -> dict[str, float | None]:
        """{metric: correlation} for one unit (``responses``: its response to each stimulus)."""
        out = {}
        for symbol in self.handwritten:
            r = self.best(symbol, preferred, responses)[1]
            out[MATCH[symbol]] = None if r is None else round(r, 4)
        return out


def correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson's r; None when either side is constant or there are fewer than 3 pairs."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
