"""The polysemanticity score of one unit: its strong examples, described by the rest
of the layer, split in two (2-means on directions), scored by how far apart the two
clusters point, how balanced they are, and how far the split beats the same split of
structureless data. ``atlas.stages.polysemantic`` explains the measure in full and
applies it to every unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BALANCED = 0.25  # a smaller cluster with at least this share of the examples counts in full
ITERATIONS = 25
SHUFFLES = 16  # shuffled copies of a unit's examples that its split is compared with
Z_NONE, Z_WIDTH = 3.0, 3.0  # the split's z against the shuffled null: no structure up to 3, in full from 6


@dataclass
class Meanings:
    score: float
    separation: float
    balance: float
    assignment: np.ndarray  # (n,) cluster 0 or 1 per example; cluster 0 holds the strongest example
    explained: float = 0.0  # share of the variance of the examples' directions between the clusters
    null: float = 0.0  # the same for the examples with each channel shuffled among them: mean, spread
    null_spread: float = 0.0

    @property
    def z(self) -> float:
        """How many of the null's standard deviations the split's explained variance is above it."""
        return (self.explained - self.null) / max(self.null_spread, 1e-9)


def meanings(vectors: np.ndarray, direction: np.ndarray | None = None, *, shuffles: int = SHUFFLES,
             seed: int = 0) -> Meanings:
    """Split examples (rows of ``vectors``, strongest first) in two and score how much
    more the split explains than it does in the same values with no joint structure;
    ``direction`` (the unit's own) is projected out first."""
    v = np.asarray(vectors, dtype=np.float64)
    if direction is not None:
        d = np.asarray(direction, dtype=np.float64)
        d = d / (np.linalg.norm(d) or 1.0)
        v = v - np.outer(v @ d, d)
    v = unit_rows(v)
    n = len(v)
    if n < 4:
        return Meanings(0.0, 0.0, 0.0, np.zeros(n, dtype=int))
    assignment = _two_means(v)
    balance = float(min(assignment.mean(), 1 - assignment.mean()))
    if balance == 0:
        return Meanings(0.0, 0.0, 0.0, assignment)
    means = unit_rows(np.stack([v[assignment == k].mean(0) for k in (0, 1)]))
    separation = float(np.clip(1 - means[0] @ means[1], 0, 1))
    explained = _explained(v, assignment)
    rng = np.random.default_rng(seed)
    nulls = []
    for _ in range(shuffles):
        shuffled = unit_rows(rng.permuted(v, axis=0))  # each column (channel) shuffled on its own
        nulls.append(_explained(shuffled, _two_means(shuffled)))
    found = Meanings(0.0, separation, balance, assignment, explained, float(np.mean(nulls)) if nulls else 0.0,
                     float(np.std(nulls)) if nulls else 0.0)
    gate = float(np.clip((found.z - Z_NONE) / Z_WIDTH, 0, 1)) if nulls else 1.0
    found.score = separation * min(1.0, balance / BALANCED) * gate
    return found


def _two_means(v: np.ndarray) -> np.ndarray:
    """Spherical 2-means of unit rows; deterministic start: the first row, and the row
    least like it. Cluster 0 holds the first row."""
    centers = np.stack([v[0], v[int(np.argmin(v @ v[0]))]])
    assignment = None
    for _ in range(ITERATIONS):
        new = np.argmax(v @ centers.T, axis=1)
        if assignment is not None and np.array_equal(new, assignment):
            break
        assignment = new
        centers = np.stack([unit_rows(v[assignment == k].sum(0, keepdims=True))[0] if (assignment == k).any()
                            else centers[k] for k in (0, 1)])
    return 1 - assignment if assignment[0] == 1 else assignment


def _explained(v: np.ndarray, assignment: np.ndarray) -> float:
    """Share of the rows' total variance that lies between the two clusters' means."""
    centre = v.mean(0)
    total = float(((v - centre) ** 2).sum())
    between = sum(float((assignment == k).sum() * ((v[assignment == k].mean(0) - centre) ** 2).sum())
                  for k in (0, 1) if (assignment == k).any())
    return between / total if total > 1e-12 else 0.0


def unit_rows(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 1e-12)
