"""The world: procedural scenes with the things the Circuits papers study.

Each scene is a 64x64 RGB image of one labelled object (an animal head, a vehicle,
a face, a flower, a fish, a house, a tree or a star) in front of a background with
natural-looking colors, texture and blur, among distractor strokes: lines, edges,
curves, circles, corners and gratings of every orientation. Some objects face left
or right (a snout, a tail, a vehicle's front), so pose-specific detectors and their
union can form; blur makes out-of-focus regions, so high-low frequency boundaries
exist; distractors drawn in front occlude the object.

Scenes are drawn with PIL at twice the size and reduced (antialiasing), from a
random generator seeded by (seed, split, index): the same index gives the same
image on any machine, and any image can be made alone, so the world streams.
Every scene keeps its ground truth: the class, the pose and a box per object part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

VERSION = 2  # bump when scenes change: it is part of every cache key that uses the world
SIZE = 64  # side of a scene, in pixels
_SS = 2  # supersampling factor
CLASSES = ("animal", "vehicle", "face", "flower", "fish", "house", "tree", "star")
SPLITS = {"train": 0, "test": 1, "atlas": 2}  # disjoint random streams

# Colors with natural correlations (sky, foliage, soil, skin, ...), jittered per use.
PALETTE = np.array([
    (110, 160, 220), (70, 120, 50), (110, 150, 60), (120, 90, 60), (200, 180, 130),
    (130, 130, 125), (90, 70, 50), (220, 180, 150), (190, 50, 40), (220, 130, 40),
    (230, 200, 60), (50, 80, 170), (120, 70, 140), (235, 235, 230), (30, 30, 30),
], dtype=np.float64)


@dataclass
class Scene:
    image: np.ndarray  # uint8 (SIZE, SIZE, 3)
    label: int  # index into CLASSES
    objects: list[dict[str, Any]] = field(default_factory=list)  # ground truth, in pixels

    @property
    def name(self) -> str:
        return CLASSES[self.label]


def scene_label(seed: int, index: int, split: str = "train") -> int:
    """The class of a scene, without drawing it (it is the scene's first random draw)."""
    return int(_rng(seed, index, split).integers(len(CLASSES)))


def make_scene(seed: int, index: int, split: str = "train") -> Scene:
    """Scene ``index`` of a split: a pure function of (seed, split, index)."""
    rng = _rng(seed, index, split)
    label = int(rng.integers(len(CLASSES)))
    canvas = _Canvas(rng)
    _background(canvas)
    behind, front = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    for _ in range(behind):
        _distractor(canvas)
    obj = _DRAW[CLASSES[label]](canvas)
    for _ in range(front):
        _distractor(canvas)
    image = canvas.finish()
    return Scene(image=image, label=label, objects=[{"class": CLASSES[label], **obj}])


def make_batch(seed: int, start: int, count: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Scenes ``start .. start+count`` as uint8 images (N, 64, 64, 3) and labels (N,)."""
    scenes = [make_scene(seed, i, split) for i in range(start, start + count)]
    return np.stack([s.image for s in scenes]), np.array([s.label for s in scenes], dtype=np.int64)


def _rng(seed: int, index: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], index])


class _Canvas:
    """A supersampled drawing surface in scene coordinates (0..64)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.image = Image.new("RGB", (SIZE * _SS, SIZE * _SS))
        self.draw = ImageDraw.Draw(self.image)

    def color(self, spread: float = 25.0) -> tuple[int, int, int]:
        base = PALETTE[self.rng.integers(len(PALETTE))] * self.rng.uniform(0.75, 1.2)
        return tuple(int(v) for v in np.clip(base + self.rng.normal(0, spread, 3), 0, 255))

    def xy(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * _SS, y * _SS) for x, y in points]

    def box(self, cx: float, cy: float, rx: float, ry: float) -> list[float]:
        return [(cx - rx) * _SS, (cy - ry) * _SS, (cx + rx) * _SS, (cy + ry) * _SS]

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=1.0) -> None:
        self.draw.ellipse(self.box(cx, cy, rx, ry), fill=fill, outline=outline, width=max(1, round(width * _SS)))

    def polygon(self, points, fill=None, outline=None, width=1.0) -> None:
        self.draw.polygon(self.xy(points), fill=fill, outline=outline, width=max(1, round(width * _SS)))

    def line(self, points, fill, width=1.0) -> None:
        self.draw.line(self.xy(points), fill=fill, width=max(1, round(width * _SS)), joint="curve")

    def arc(self, cx, cy, r, start, end, fill, width=1.0) -> None:
        self.draw.arc(self.box(cx, cy, r, r), start, end, fill=fill, width=max(1, round(width * _SS)))

    def blur_region(self, radius: float, mask: Image.Image | None = None) -> None:
        blurred = self.image.filter(ImageFilter.GaussianBlur(radius * _SS))
        self.image = blurred if mask is None else Image.composite(blurred, self.image, mask)
        self.draw = ImageDraw.Draw(self.image)

    def finish(self) -> np.ndarray:
        return np.asarray(self.image.reduce(_SS), dtype=np.uint8)


# -- backgrounds ----------------------------------------------------------------------

def _background(c: _Canvas) -> None:
    rng = c.rng
    n = SIZE * _SS
    a, b = np.array(c.color(), float), np.array(c.color(), float)
    kind = rng.choice(["gradient", "grating", "blobs"], p=[0.35, 0.3, 0.35])
    yy, xx = np.mgrid[0:n, 0:n] / n
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)
    if kind == "gradient":
        t = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    elif kind == "grating":
        period = rng.uniform(0.06, 0.2)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * ramp / period + rng.uniform(0, 2 * math.pi))
    else:  # low-pass noise: soft blobs like foliage or clouds
        coarse = rng.random((int(rng.integers(3, 9)),) * 2)
        t = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((n, n), Image.Resampling.BICUBIC)) / 255
    pixels = a * (1 - t[..., None]) + b * t[..., None] + rng.normal(0, 4, (n, n, 3))
    c.image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    c.draw = ImageDraw.Draw(c.image)
    blur = rng.random()
    if blur < 0.35:  # out of focus everywhere
        c.blur_region(rng.uniform(0.8, 3.0))
    elif blur < 0.65:  # out of focus on one side of a line: a high-low frequency boundary
        c.blur_region(rng.uniform(1.0, 3.0), _half_plane_mask(rng))


def _half_plane_mask(rng: np.random.Generator) -> Image.Image:
    n = SIZE * _SS
    yy, xx = np.mgrid[0:n, 0:n] - n / 2
    angle = rng.uniform(0, 2 * math.pi)
    side = np.cos(angle) * xx + np.sin(angle) * yy > rng.uniform(-n / 4, n / 4)
    return Image.fromarray((side * 255).astype(np.uint8))


# -- distractors: the primitives of early vision ----------------------------------------

def _distractor(c: _Canvas) -> None:
    rng = c.rng
    color, width = c.color(), rng.uniform(0.8, 2.5)
    x, y = rng.uniform(0, SIZE, 2)
    angle = rng.uniform(0, 2 * math.pi)
    kind = rng.integers(6)
    if kind == 0:  # line
        length = rng.uniform(10, 40)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        c.line([(x - dx, y - dy), (x + dx, y + dy)], color, width)
    elif kind == 1:  # curve
        start = rng.uniform(0, 360)
        c.arc(x, y, rng.uniform(5, 20), start, start + rng.uniform(60, 180), color, width)
    elif kind == 2:  # circle, outlined or filled
        r = rng.uniform(2, 9)
        c.ellipse(x, y, r, r, fill=color if rng.random() < 0.5 else None, outline=color, width=width)
    elif kind == 3:  # corner
        length, turn = rng.uniform(6, 16), rng.uniform(0.4 * math.pi, 0.8 * math.pi)
        p1 = (x + math.cos(angle) * length, y + math.sin(angle) * length)
        p2 = (x + math.cos(angle + turn) * length, y + math.sin(angle + turn) * length)
        c.line([p1, (x, y), p2], color, width)
    elif kind == 4:  # edge: a filled half-disc gives a straight edge and a curved one
        r = rng.uniform(6, 14)
        c.draw.pieslice(c.box(x, y, r, r), math.degrees(angle), math.degrees(angle) + 180, fill=color)
    else:  # grating patch
        spacing, length = rng.uniform(2.5, 4.5), rng.uniform(8, 16)
        ux, uy = math.cos(angle), math.sin(angle)
        for k in range(-2, 3):
            ox, oy = -uy * k * spacing, ux * k * spacing
            c.line([(x + ox - ux * length / 2, y + oy - uy * length / 2),
                    (x + ox + ux * length / 2, y + oy + uy * length / 2)], color, width * 0.7)


# -- objects: each returns its ground truth (pose, box, parts) ----------------------------

def _placement(c: _Canvas, lo: float = 0.24, hi: float = 0.46) -> tuple[float, float, float, int]:
    rng = c.rng
    s = rng.uniform(lo, hi) * SIZE  # the object's half size
    cx, cy = rng.uniform(s * 0.8, SIZE - s * 0.8, 2)
    return float(cx), float(cy), float(s), 1 if rng.random() < 0.5 else -1


def _part(name: str, cx: float, cy: float, rx: float, ry: float) -> dict[str, Any]:
    return {"name": name, "box": [round(cx - rx, 1), round(cy - ry, 1), round(cx + rx, 1), round(cy + ry, 1)]}


def _truth(cx, cy, s, parts, facing: int | None = None) -> dict[str, Any]:
    pose = None if facing is None else ("right" if facing > 0 else "left")
    return {"pose": pose, "box": _part("object", cx, cy, s, s)["box"], "parts": parts}


def _animal(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, f = _placement(c)
    fur, dark = c.color(), (25, 20, 20)
    r = s * 0.55
    hx = cx - f * s * 0.2
    ear = [(hx - f * r * 0.1, cy - r * 0.7), (hx + f * r * 0.3, cy - r * 1.45), (hx + f * r * 0.6, cy - r * 0.55)]
    c.polygon(ear, fill=fur, outline=dark)
    c.ellipse(hx, cy, r, r, fill=fur, outline=dark)
    snout = [(hx + f * r * 0.6, cy - r * 0.35), (hx + f * r * 1.75, cy + r * 0.1), (hx + f * r * 0.6, cy + r * 0.55)]
    c.polygon(snout, fill=fur, outline=dark)
    c.ellipse(hx + f * r * 1.65, cy + r * 0.08, r * 0.14, r * 0.14, fill=dark)
    c.ellipse(hx + f * r * 0.35, cy - r * 0.25, r * 0.13, r * 0.13, fill=dark)
    return _truth(cx, cy, s, [_part("head", hx, cy, r, r), _part("snout", hx + f * r * 1.2, cy + r * 0.1, r * 0.6, r * 0.45),
                              _part("ear", hx + f * r * 0.25, cy - r * 1.0, r * 0.35, r * 0.45)], f)


def _vehicle(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, f = _placement(c)
    body, glass, dark = c.color(), c.color(10), (25, 25, 25)
    w, h = s, s * 0.32
    c.draw.rounded_rectangle(c.box(cx, cy, w, h), radius=h * 0.5 * _SS, fill=body, outline=dark)
    cabin = [(cx - f * w * 0.55, cy - h), (cx - f * w * 0.4, cy - h * 2.3),
             (cx + f * w * 0.25, cy - h * 2.3), (cx + f * w * 0.55, cy - h)]
    c.polygon(cabin, fill=body, outline=dark)
    for wx in (cx - f * w * 0.28, cx + f * w * 0.15):
        c.draw.rectangle(c.box(wx, cy - h * 1.6, w * 0.13, h * 0.45), fill=glass)
    for wx in (cx - w * 0.6, cx + w * 0.6):
        c.ellipse(wx, cy + h, h * 0.85, h * 0.85, fill=dark)
        c.ellipse(wx, cy + h, h * 0.35, h * 0.35, fill=(150, 150, 150))
    return _truth(cx, cy, s, [_part("body", cx, cy, w, h), _part("windows", cx - f * w * 0.06, cy - h * 1.6, w * 0.4, h * 0.5),
                              _part("wheel", cx - w * 0.6, cy + h, h * 0.85, h * 0.85),
                              _part("wheel", cx + w * 0.6, cy + h, h * 0.85, h * 0.85)], f)


def _face(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, _ = _placement(c)
    # Mostly skin tones, but not always: the face must be recognised by its shape.
    natural = np.clip(np.array([220, 180, 150]) * c.rng.uniform(0.5, 1.1), 0, 255)
    skin, dark = (tuple(int(v) for v in natural) if c.rng.random() < 0.6 else c.color()), (30, 25, 25)
    rx, ry = s * 0.75, s * 0.9
    c.ellipse(cx, cy, rx, ry, fill=skin, outline=dark)
    c.arc(cx, cy - ry * 0.15, rx * 0.95, 200, 340, c.color(), width=s * 0.12)  # hair
    for ex in (cx - rx * 0.38, cx + rx * 0.38):
        c.ellipse(ex, cy - ry * 0.15, rx * 0.12, rx * 0.12, fill=dark)
    c.arc(cx, cy + ry * 0.1, rx * 0.45, 30, 150, dark, width=max(1.0, s * 0.06))  # smile
    return _truth(cx, cy, s, [_part("eyes", cx, cy - ry * 0.15, rx * 0.55, rx * 0.15),
                              _part("mouth", cx, cy + ry * 0.38, rx * 0.45, ry * 0.15)])


def _flower(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, _ = _placement(c)
    petal, centre, stem = c.color(), c.color(), (60, 120, 50)
    r = s * 0.55
    fy = cy - s * 0.3
    c.line([(cx, fy), (cx, cy + s)], stem, width=s * 0.08)
    n, turn = int(c.rng.integers(5, 9)), c.rng.uniform(0, 2 * math.pi)
    for k in range(n):
        a = turn + 2 * math.pi * k / n
        px, py = cx + math.cos(a) * r * 0.6, fy + math.sin(a) * r * 0.6
        c.ellipse(px, py, r * 0.38, r * 0.38, fill=petal, outline=(40, 40, 40))
    c.ellipse(cx, fy, r * 0.33, r * 0.33, fill=centre)
    return _truth(cx, cy, s, [_part("blossom", cx, fy, r, r), _part("stem", cx, cy + s * 0.4, s * 0.1, s * 0.6)])


def _fish(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, f = _placement(c)
    scales, dark = c.color(), (25, 25, 30)
    rx, ry = s * 0.7, s * 0.4
    bx = cx + f * s * 0.2
    tail = [(bx - f * rx * 0.8, cy), (bx - f * rx * 1.45, cy - ry * 0.9), (bx - f * rx * 1.45, cy + ry * 0.9)]
    c.polygon(tail, fill=scales, outline=dark)
    c.ellipse(bx, cy, rx, ry, fill=scales, outline=dark)
    c.ellipse(bx + f * rx * 0.55, cy - ry * 0.2, ry * 0.15, ry * 0.15, fill=dark)
    return _truth(cx, cy, s, [_part("body", bx, cy, rx, ry), _part("tail", bx - f * rx * 1.15, cy, rx * 0.35, ry * 0.9)], f)


def _house(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, _ = _placement(c)
    wall, roof, dark = c.color(), c.color(), (30, 30, 30)
    w, top = s * 0.7, cy - s * 0.15
    c.draw.rectangle(c.box(cx, cy + s * 0.35, w, s * 0.5), fill=wall, outline=dark)
    c.polygon([(cx - w * 1.15, top), (cx, cy - s * 0.95), (cx + w * 1.15, top)], fill=roof, outline=dark)
    c.draw.rectangle(c.box(cx - w * 0.4, cy + s * 0.6, w * 0.2, s * 0.25), fill=dark)
    c.draw.rectangle(c.box(cx + w * 0.4, cy + s * 0.2, w * 0.22, s * 0.16), fill=(170, 210, 235), outline=dark)
    return _truth(cx, cy, s, [_part("roof", cx, (top + cy - s * 0.95) / 2, w * 1.15, s * 0.4),
                              _part("walls", cx, cy + s * 0.35, w, s * 0.5)])


def _tree(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, _ = _placement(c)
    natural = np.clip(np.array([70, 130, 50]) * c.rng.uniform(0.6, 1.3), 0, 255)  # mostly green
    leaves = tuple(int(v) for v in natural) if c.rng.random() < 0.6 else c.color()
    c.draw.rectangle(c.box(cx, cy + s * 0.55, s * 0.12, s * 0.45), fill=(95, 70, 45))
    for dx, dy, r in ((0, -0.3, 0.5), (-0.35, 0.0, 0.38), (0.35, 0.0, 0.38)):
        c.ellipse(cx + dx * s, cy + dy * s, r * s, r * s, fill=leaves, outline=(30, 60, 25))
    return _truth(cx, cy, s, [_part("canopy", cx, cy - s * 0.2, s * 0.75, s * 0.6),
                              _part("trunk", cx, cy + s * 0.55, s * 0.12, s * 0.45)])


def _star(c: _Canvas) -> dict[str, Any]:
    cx, cy, s, _ = _placement(c)
    turn = c.rng.uniform(0, 2 * math.pi)
    points = [(cx + math.cos(turn + k * math.pi / 5) * s * (0.9 if k % 2 == 0 else 0.38),
               cy + math.sin(turn + k * math.pi / 5) * s * (0.9 if k % 2 == 0 else 0.38)) for k in range(10)]
    c.polygon(points, fill=c.color(), outline=(30, 30, 30))
    return _truth(cx, cy, s, [_part("star", cx, cy, s * 0.9, s * 0.9)])


_DRAW: dict[str, Callable[[_Canvas], dict[str, Any]]] = {
    "animal": _animal, "vehicle": _vehicle, "face": _face, "flower": _flower,
    "fish": _fish, "house": _house, "tree": _tree, "star": _star,
}
