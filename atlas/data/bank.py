"""The stimulus bank: every synthetic stimulus Atlas shows a unit, at one size and extent.

Drawn from ``atlas.data.stimuli`` (curves, curved edges, edges, high-low boundaries,
lines, gratings, color edges, spots and fields), each seen through a disc the size of
the receptive field on grey. The tuning stage responds to it; circuits, the handwritten
detectors of the families' evidence and universality draw from it too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from atlas.data import stimuli

ORIENTATIONS = tuple(range(0, 360, 15))  # 24 directions for stimuli that differ at 180 degrees
AXES = tuple(range(0, 180, 15))  # 12 axes for stimuli that repeat every 180 degrees
PERIODIC_180 = {"line", "grating"}  # kinds whose orientation repeats every 180 degrees
ORIENTED = ("curve", "curved_edge", "edge", "color_edge", "high_low", "line", "grating")
STRAIGHT = ("edge", "color_edge", "line", "grating")  # high-low boundaries are random texture: too noisy
CURVED = ("curve", "curved_edge")
SMALL_CENTRE = 0.5  # an effective diameter under this share of the field's extent gets spots of its own size
SMALLEST = 6.0  # pixels: the narrowest field stimuli are drawn in (a smaller one is drawn at this size)



@dataclass
class Bank:
    images: list[np.ndarray] = field(default_factory=list)  # (3, S, S) float32 in [0, 1]
    params: list[dict[str, Any]] = field(default_factory=list)  # {"kind": ..., parameters}

    def add(self, image: np.ndarray, extent: float, **params: Any) -> None:
        self.images.append(stimuli.windowed(image, extent))
        self.params.append(params)

    def kind(self, name: str) -> np.ndarray:
        return np.array([i for i, p in enumerate(self.params) if p["kind"] == name])


def spot_scales(size: int, extent: float, effective: float | None) -> tuple[float, ...]:
    """The diameters spots are drawn at on images of ``size``: the field's extent (at
    least ``SMALLEST``, at most the image), and its effective diameter (at least
    ``SMALLEST``) where that is under ``SMALL_CENTRE`` of the extent (a unit whose
    weight lies in the middle of a wide field, through pooling or attention that mixes
    in neighbouring patches, prefers a spot of its own size)."""
    extent = float(min(max(extent, SMALLEST), size))
    centre = max(effective or extent, SMALLEST)
    return (extent,) + ((centre,) if centre < SMALL_CENTRE * extent else ())


def stimulus_bank(size: int, extent: float, centre: tuple[float, float] | None = None,
                  effective: float | None = None) -> Bank:
    """Every stimulus, drawn within a disc of diameter ``extent`` on grey, centred on the
    image or on ``centre`` (row, column; to the nearest half pixel: each stimulus is
    drawn on a larger canvas whose centre lands there, and cut out); spots also at the
    scale of the field's ``effective`` diameter where it is small (``spot_scales``).

    Tuning, the null, circuits and the families' evidence all ask for a layer's bank,
    and drawing one takes a quarter of a second or more: the last few are kept, their
    images read-only, and each caller gets its own lists."""
    # Decided at the image's size: a centred bank is drawn on a larger canvas.
    small = tuple(float(d) for d in spot_scales(size, extent, effective)[1:])
    drawn = _drawn(size, float(extent), None if centre is None else tuple(float(c) for c in centre), small)
    return Bank(list(drawn.images), [dict(p) for p in drawn.params])


def tuning_bank(size: int, tuning: dict[str, Any]) -> Bank:
    """The bank the tuning stage showed a layer, drawn again from its record (``extent``,
    ``centre``, ``effective``): a pure function of them and the input size."""
    centre = tuning.get("centre")
    return stimulus_bank(size, tuning["extent"], tuple(centre) if centre else None, tuning.get("effective"))


@functools.lru_cache(maxsize=4)  # a bank of 224 px images holds about 0.5 GB
def _drawn(size: int, extent: float, centre: tuple[float, float] | None, small: tuple[float, ...]) -> Bank:
    bank = _draw(size, extent, centre, small)
    for image in bank.images:
        image.setflags(write=False)
    return bank


def _draw(size: int, extent: float, centre: tuple[float, float] | None = None,
          small: tuple[float, ...] = ()) -> Bank:
    """The bank at ``size`` px, spots also at the diameters ``small``."""
    if centre is not None:
        margin = int(np.ceil(max(abs(c - (size - 1) / 2) for c in centre))) + 1
        canvas = size + 2 * margin
        if canvas % 2 == int(round(2 * centre[0])) % 2:  # an integer centre needs an odd canvas, a half one even
            canvas += 1
        middle = (canvas - 1) / 2
        top, left = (int(round(middle - c)) for c in centre)
        bank = _draw(canvas, extent, small=small)
        bank.images = [image[:, top:top + size, left:left + size].copy() for image in bank.images]
        return bank
    bank = Bank()
    extent = float(min(max(extent, SMALLEST), size))
    scales = (extent, *small)
    for orientation in ORIENTATIONS:
        for radius in (0.25 * extent, 0.5 * extent, extent):
            for ink, paper in ((1.0, 0.0), (0.0, 1.0)):
                arc = stimuli.curve(size, orientation, radius, span=100.0, width=max(1.0, extent / 16))
                bank.add(paper + (ink - paper) * arc, extent, kind="curve", orientation=orientation,
                         radius=round(radius, 2), polarity="light" if ink else "dark")
                # The boundary of a disc, a curved edge, is compared with straight edges; its
                # orientation is an edge's, the way its bright side faces (the disc bulges
                # towards its bright side when the disc is dark).
                if radius < 0.5 * extent:
                    continue  # a small disc is a spot, not an edge
                disc = stimuli.curved_edge(size, orientation, radius)
                bank.add(paper + (ink - paper) * disc, extent, kind="curved_edge",
                         orientation=(orientation + 180 * bool(ink)) % 360, radius=round(radius, 2),
                         bulge="dark" if ink else "bright")
        bank.add(stimuli.edge(size, orientation), extent, kind="edge", orientation=orientation)
        bank.add(stimuli.high_low(size, orientation), extent, kind="high_low", orientation=orientation)
    for orientation in AXES:
        for ink, paper in ((1.0, 0.0), (0.0, 1.0)):
            # As long as the aperture is wide, as the arcs are: like is compared with like.
            bar = stimuli.line(size, orientation, extent, width=max(1.0, extent / 16))
            bank.add(paper + (ink - paper) * bar, extent, kind="line", orientation=orientation,
                     polarity="light" if ink else "dark")
        for period in (2.5, 4.0, 7.0, 12.0):
            for phase in (0, 90, 180, 270):
                bank.add(stimuli.grating(size, orientation, 1 / period, phase), extent, kind="grating",
                         orientation=orientation, frequency=round(1 / period, 3), phase=phase)
    for orientation in range(0, 360, 45):
        for near, far in ((a, b) for a in stimuli.HUES for b in stimuli.HUES if a != b):
            bank.add(stimuli.color_edge(size, orientation, stimuli.HUES[near], stimuli.HUES[far]), extent,
                     kind="color_edge", orientation=orientation, near=near, far=far)
    colors = {**stimuli.HUES, "white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
    grey = (stimuli.GREY,) * 3
    for name, rgb in colors.items():
        for radius in (fraction * scale for scale in scales for fraction in (0.15, 0.3)):
            bank.add(stimuli.blob(size, radius, rgb, grey), extent, kind="blob", color=name, radius=round(radius, 2))
        # The same color over the whole receptive field: a centre-surround unit's
        # surround cancels its centre, so it prefers the spot.
        bank.add(stimuli.blob(size, extent, rgb, grey), extent, kind="field", color=name)
    for near, far in ((a, b) for a in stimuli.HUES for b in stimuli.HUES if a != b):
        # A spot on its opponent: what drives a color-opponent centre and its surround at once.
        for scale in scales:
            bank.add(stimuli.blob(size, 0.3 * scale, stimuli.HUES[near], stimuli.HUES[far]), extent,
                     kind="blob", color=near, surround=far, radius=round(0.3 * scale, 2))
    return bank


def field_centre(field, size: int) -> tuple[float, float]:
    """(row, column) in pixels of the centre of the receptive field of the unit ``respond``
    reads (the feature map's centre). Half a pixel or a stride from the image's centre
    on even sizes: nothing in a field of 200 px, everything in one of 3 (every edge
    through a 3 px stem's centre would look oriented), so stimuli are drawn there."""
    def axis(offset: float, stride: float, extent: int) -> float:
        return offset + (round(size / stride) // 2) * stride + (extent - 1) / 2
    return axis(field.offset_y, field.stride_y, field.size_y), axis(field.offset_x, field.stride_x, field.size_x)


def resultant(curve: np.ndarray, angles: Sequence[int], period: int) -> tuple[np.ndarray, np.ndarray]:
    """Preferred orientation (degrees) and selectivity (resultant length, 0..1) per unit."""
    weights = np.clip(curve, 0, None)
    phase = np.exp(1j * np.radians(np.asarray(angles)) * (360 / period))[:, None]
    vector = (weights * phase).sum(0) / np.clip(weights.sum(0), 1e-12, None)
    preferred = (np.degrees(np.angle(vector)) * period / 360) % period
    return preferred, np.abs(vector)
