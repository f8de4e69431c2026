"""Families no rule names: units whose responses to the stimuli correlate, clustered.

A unit's signature is its response to every stimulus, standardised; units whose
signatures correlate beyond ``CLUSTER_CORRELATION`` are clustered (average linkage),
and a cluster of at least ``MIN_MEMBERS`` units left in Other becomes a discovered family,
described by what its members share (``describe_cluster``) and scored by how coherent it is.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from atlas.stages.families.taxonomy import OTHER

CLUSTER_CORRELATION = 0.6  # discovered families: members' signatures correlate at least this much on average
MIN_MEMBERS = 3


def signatures(responses: np.ndarray) -> np.ndarray:
    """Each unit's responses (stimuli, units), centred and scaled to unit length:
    dot products of signatures are correlations."""
    centred = responses - responses.mean(0, keepdims=True)
    return (centred / np.clip(np.linalg.norm(centred, axis=0, keepdims=True), 1e-12, None)).T


def cluster(signature: np.ndarray, threshold: float = CLUSTER_CORRELATION) -> list[list[int]]:
    """Average-linkage clustering of unit signatures, merging while the two closest
    clusters' mean correlation is at least ``threshold``. Clusters as row lists."""
    n = len(signature)
    similarity = signature @ signature.T
    sums = similarity.copy()  # sums[a, b]: total correlation between clusters a and b
    sizes = np.ones(n)
    members = [[i] for i in range(n)]
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        mean = sums / np.outer(sizes, sizes)
        mean[~alive, :] = -np.inf
        mean[:, ~alive] = -np.inf
        np.fill_diagonal(mean, -np.inf)
        a, b = np.unravel_index(np.argmax(mean), mean.shape)
        if mean[a, b] < threshold:
            break
        sums[a, :] += sums[b, :]
        sums[:, a] += sums[:, b]
        sizes[a] += sizes[b]
        members[a] += members[b]
        alive[b] = False
    return [sorted(members[i]) for i in np.flatnonzero(alive)]


def describe_cluster(rows: Sequence[int], responses: np.ndarray, params: list[dict],
                     labels: Sequence[str]) -> str:
    """What drives a discovered family: its most exciting stimuli and top-example labels."""
    mean = signatures(responses)[list(rows)].mean(0)
    top = []
    for i in np.argsort(-mean):
        p = params[i]
        words = p["kind"].replace("_", " ") + "".join(
            f" {p[k]}" for k in ("color", "near", "far", "polarity") if k in p) + (
            f" at {p['orientation']}°" if "orientation" in p else "")
        if words not in top:
            top.append(words)
        if len(top) == 3:
            break
    text = "Driven most by: " + "; ".join(top) + "."
    if labels:
        names, counts = np.unique(labels, return_counts=True)
        order = np.argsort(-counts)[:2]
        text += " Top dataset examples: " + ", ".join(
            f"{counts[i] / len(labels):.0%} {names[i]}" for i in order) + "."
    return text


def coherence(signature: np.ndarray, rows: Sequence[int]) -> float:
    """The mean correlation between distinct members of a cluster."""
    block = signature[list(rows)] @ signature[list(rows)].T
    return (block.sum() - np.trace(block)) / max(len(rows) * (len(rows) - 1), 1)


def discover(units: Sequence[int], family: dict[int, str], responses: np.ndarray, params: list[dict],
             labels: dict[int, list[str]]) -> list[dict[str, Any]]:
    """Clusters of mostly-unnamed units: [{symbol, rows, units, coherence, description}]."""
    signature = signatures(responses)
    found = []
    for rows in cluster(signature):
        others = [r for r in rows if family[units[r]] == OTHER.symbol]
        if len(rows) < MIN_MEMBERS or len(others) * 2 < len(rows):
            continue
        centroid = signature[rows].mean(0)
        centroid /= max(np.linalg.norm(centroid), 1e-12)
        fit = {units[r]: round(float(np.clip(signature[r] @ centroid, 0, 1)), 4) for r in others}
        member_labels = [label for r in rows for label in labels.get(units[r], [])]
        found.append({"symbol": f"X{len(found) + 1}", "units": [units[r] for r in others], "fit": fit,
                      "coherence": round(float(coherence(signature, rows)), 4),
                      "description": describe_cluster(rows, responses, params, member_labels)})
    return found
