"""A model's polysemanticity page: the polysemanticity stage's summary of the model
(``atlas.stages.polysemantic.mixing``) with its units as page models."""

from __future__ import annotations

from typing import Any

from atlas.render.model import Model


def polysemantic_overview(model: Model) -> dict[str, Any]:
    """Per layer its most mixed units and how the score agrees with the ground truth; and
    the features one pure unit carries and several mixed units share in the next layer."""
    summary = model.mixing
    if summary is None:
        return {"layers": [], "spread": [], "top": 0}
    layers = {layer.name: layer for layer in model.layers}
    units = {(layer.name, u.index): u for layer in model.layers for u in layer.units}
    return {
        "layers": [{**entry, "layer": layers[entry["layer"]],
                    "mixed": [units[entry["layer"], u] for u in entry["mixed"]]} for entry in summary.layers],
        "spread": [{**s, "unit": units[s["layer"], s["unit"]],
                    "uses": [next(e for e in units[s["layer"], s["unit"]].outputs if e.other.index == other)
                             for other, _ in s["uses"]]} for s in summary.spread],
        "top": summary.top,
    }

