"""What a model's polysemanticity page reports, computed from the stages' records
(pure: the polysemanticity stage stores it as the model's summary artifact).

Per layer: the median score, the most mixed units and how the score agrees with the
ground truth (Spearman's rank correlation of the score with the share of a unit's
strong examples not on its most common object). Across layers: features "spread in
superposition" ("Zoom In"'s car feature), a unit among the purest third of its layer
whose strongest uses in the next swept layer (outputs within half of its strongest
weight) are at least two units among the most mixed third of theirs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

MOST_MIXED = 6  # units listed per layer
SPREAD_SHOWN = 8  # spread features listed per model
MIXED_USES = 2  # mixed units among a pure unit's strongest uses for it to count as spread


def rank_correlation(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties broken by order), None when either is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    ranks = [np.argsort(np.argsort(v, kind="stable"), kind="stable") for v in (a, b)]
    return float(np.corrcoef(*ranks)[0, 1])


def layer_summary(scores: dict[int, float], purity: dict[int, float]) -> dict[str, Any] | None:
    """The median score, the most mixed units (most first) and the agreement with the
    ground truth, over a layer's scored units (unit -> score, unit -> purity)."""
    if not scores:
        return None
    units = list(scores)
    values = [scores[u] for u in units]
    return {"median": float(np.median(values)),
            "mixed": sorted(units, key=lambda u: -scores[u])[:MOST_MIXED],
            "agreement": rank_correlation(values, [1 - purity[u] for u in units])}


def _thirds(scores: dict[int, float]) -> tuple[float, float]:
    """The scores at a third and two thirds of a layer (none pure or mixed when unscored)."""
    values = list(scores.values())
    return (float(np.quantile(values, 1 / 3)), float(np.quantile(values, 2 / 3))) if values else (-1.0, 2.0)


def spread_features(layers: Sequence[str], scores: dict[str, dict[int, float]],
                    outputs: dict[str, tuple[str, dict[int, list[tuple[int, float]]]]],
                    limit: int = SPREAD_SHOWN) -> list[dict[str, Any]]:
    """Spread features over consecutive swept ``layers``: ``scores`` per layer and unit;
    ``outputs[layer] = (target layer, {unit: [(target unit, weight)]})``, a unit's
    strongest excitatory uses. Best first: most mixed uses, then the purest."""
    found = []
    for before, after in zip(layers, layers[1:]):
        pure, _ = _thirds(scores.get(before, {}))
        _, mixed = _thirds(scores.get(after, {}))
        target, uses_of = outputs.get(before, (None, {}))
        target_scores = scores.get(target, {})
        for unit, score in scores.get(before, {}).items():
            edges = uses_of.get(unit, [])
            if score > pure or not edges:
                continue
            strongest = max(weight for _, weight in edges)
            uses = [(other, weight) for other, weight in edges if weight >= strongest / 2]
            mixed_uses = [other for other, _ in uses if other in target_scores and target_scores[other] >= mixed]
            if len(mixed_uses) >= MIXED_USES:
                found.append({"unit": unit, "score": score, "layer": before, "next": after, "target": target,
                              "uses": [list(use) for use in uses], "mixed": len(mixed_uses)})
    found.sort(key=lambda f: (-f["mixed"], f["score"]))
    return found[:limit]


def family_agreement(pairs: Sequence[tuple[str, str]]) -> dict[str, Any] | None:
    """Do best buddies share their family? ``pairs``: the named families of the two units
    of each best-buddy pair. The count of pairs whose families agree, against the count
    expected if each side's families were drawn independently with their frequencies."""
    if not pairs:
        return None
    left = [a for a, _ in pairs]
    right = [b for _, b in pairs]
    same = sum(1 for a, b in pairs if a == b)
    expected = sum(left.count(s) * right.count(s) for s in set(left)) / len(pairs)
    return {"pairs": len(pairs), "same": same, "expected": round(expected, 1)}
