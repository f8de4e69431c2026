"""What a model's polysemanticity page summarises, from its units' page models."""

from __future__ import annotations

from typing import Any

import numpy as np

from atlas.render.model import Layer, Model

MOST_MIXED = 6  # units shown per layer on a polysemanticity page


def polysemantic_overview(model: Model) -> dict[str, Any]:
    """What a model's polysemanticity page shows: per layer its most mixed units and
    how the score agrees with the ground truth; and the features that one pure unit
    carries in one layer and several mixed units share in the next (``spread``)."""
    layers = []
    for layer in model.layers:
        scored = [u for u in layer.units if u.polysemanticity]
        if not scored:
            continue
        scores = np.array([u.polysemanticity.score for u in scored])
        mixing = np.array([1 - u.polysemanticity.purity for u in scored])
        layers.append({"layer": layer, "median": float(np.median(scores)),
                       "mixed": sorted(scored, key=lambda u: -u.polysemanticity.score)[:MOST_MIXED],
                       "agreement": _rank_correlation(scores, mixing)})
    top = next((u.polysemanticity.top for layer in model.layers for u in layer.units if u.polysemanticity), 0)
    return {"layers": layers, "spread": spread_features(model), "top": top}


def spread_features(model: Model, limit: int = 8) -> list[dict[str, Any]]:
    """"Cars in superposition": a unit among the purest third of its layer whose strongest
    uses in the next swept layer (outputs within half of its strongest weight) are
    several units among the most mixed third of theirs. Best first: most mixed uses."""
    def thirds(layer: Layer) -> tuple[float, float]:
        scores = [u.polysemanticity.score for u in layer.units if u.polysemanticity]
        return (float(np.quantile(scores, 1 / 3)), float(np.quantile(scores, 2 / 3))) if scores else (-1.0, 2.0)

    found = []
    for before, after in zip(model.layers, model.layers[1:]):
        pure, _ = thirds(before)
        _, mixed = thirds(after)
        for unit in before.units:
            if not unit.polysemanticity or unit.polysemanticity.score > pure or not unit.outputs:
                continue
            strongest = max(e.weight for e in unit.outputs)
            uses = [e for e in unit.outputs if e.weight >= strongest / 2]
            mixed_uses = [e for e in uses if e.other.polysemanticity and e.other.polysemanticity.score >= mixed]
            if len(mixed_uses) >= 2:
                found.append({"unit": unit, "layer": before.name, "next": after.name, "uses": uses,
                              "mixed": len(mixed_uses)})
    found.sort(key=lambda f: (-f["mixed"], f["unit"].polysemanticity.score))
    return found[:limit]


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's rank correlation (ties broken by order), None when either is constant."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ranks = [np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])
