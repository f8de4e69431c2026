"""Motifs in the weights between two families: equivariance, and unions over cases.

**Equivariance** ("Naturally Occurring Equivariance in Neural Networks", Olah et
al. 2020): when a family tiles orientation and is built from another that does,
the weights rotate with the units. Rotate every weight map into its target unit's
frame (by minus the unit's orientation); then maps that connect units at the same
*relative* orientation should look alike, whichever target unit they belong to.
The score is the mean correlation between such maps (from different target
units), over all relative orientations: near 1 for an equivariant circuit, near 0
for unrelated weights. Maps that look the same turned a quarter (a point from a 1x1
path, a round blob from pooling) carry no orientation and are left out.

**Unions over cases**: a unit whose two strongest excitatory inputs are the same
feature facing opposite ways (one family, orientations about 180 degrees apart,
comparable weights) responds to the feature whichever way it faces.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

BIN = 15.0  # degrees: relative orientations within one bin count as the same
MIRROR_TOLERANCE = 30.0  # degrees from exactly opposite
MIRROR_RATIO = 2.0  # the weaker of a union's two inputs is at least half the stronger


def rotate(maps: np.ndarray, degrees: float) -> np.ndarray:
    """Maps (..., k, k) with their content turned ``degrees`` counter-clockwise (y up), bilinear, zero outside."""
    k_y, k_x = maps.shape[-2:]
    flat = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).reshape(-1, 1, k_y, k_x)
    t = math.radians(degrees)
    # Output point p comes from R(-t) p (y up); in grid_sample's coordinates (y down) that is R(t).
    theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]], dtype=torch.float32)
    grid = F.affine_grid(theta.expand(len(flat), 2, 3), list(flat.shape), align_corners=False)
    return F.grid_sample(flat, grid, align_corners=False).reshape(maps.shape).numpy()


def equivariance(maps: np.ndarray, target_deg: Sequence[float], source_deg: Sequence[float],
                 source_period: float) -> float | None:
    """How well the weights ``maps`` (targets, sources, k, k) rotate with the units'
    orientations; None when no relative orientation is shared by two target units."""
    groups: dict[int, list[tuple[int, np.ndarray]]] = {}
    for g, theta in enumerate(target_deg):
        turned = rotate(maps[g], -theta)
        for f, phi in enumerate(source_deg):
            if not _oriented(maps[g, f]):
                continue  # a point or a round blob looks the same at every angle: no evidence either way
            vector = turned[f].ravel() - turned[f].mean()
            norm = np.linalg.norm(vector)
            if norm > 1e-12:
                relative = int(round(((phi - theta) % source_period) / BIN)) % int(round(source_period / BIN))
                groups.setdefault(relative, []).append((g, vector / norm))
    total, pairs = 0.0, 0
    for members in groups.values():
        for i, (g, a) in enumerate(members):
            for h, b in members[i + 1:]:
                if g != h:
                    total += float(a @ b)
                    pairs += 1
    return round(total / pairs, 4) if pairs else None


def _oriented(weights: np.ndarray, most: float = 0.9) -> bool:
    """Whether a map changes when turned a quarter: its correlation with itself turned
    90 degrees is below ``most`` (a point, a 1x1 path, or a pooled blob is not)."""
    a = weights - weights.mean()
    b = np.rot90(weights) - weights.mean()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return norm > 1e-12 and float((a * b).sum()) / norm < most


def unions(inputs: dict[int, list[dict[str, Any]]], family: dict[int, str], orientation: dict[int, float]
           ) -> list[dict[str, Any]]:
    """Target units whose two strongest excitatory inputs are one family's feature facing opposite ways."""
    found = []
    for unit, edges in inputs.items():
        if len(edges) < 2:
            continue
        a, b = edges[0], edges[1]
        same = family.get(a["index"]) == family.get(b["index"]) and family.get(a["index"]) not in (None, "Ot")
        if not same or a["index"] not in orientation or b["index"] not in orientation:
            continue
        apart = abs((orientation[a["index"]] - orientation[b["index"]]) % 360 - 180)
        if apart <= MIRROR_TOLERANCE and b["weight"] > 0 and a["weight"] <= MIRROR_RATIO * b["weight"]:
            found.append({"unit": unit, "inputs": [a["index"], b["index"]], "family": family[a["index"]]})
    return found
