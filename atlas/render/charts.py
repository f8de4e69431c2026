"""Charts as Vega-Lite specs, made with altair and embedded in the page.

Specs are plain dicts (``to_dict(validate=False)``: our specs are fixed, and
schema validation would cost more than rendering the page). The page holds each
spec inline; ``static/atlas.js`` draws it with the one vendored vega bundle.
"""

from __future__ import annotations

from typing import Any

import altair as alt

from atlas.render.pages import Layer, Unit

_WIDTH = "container"


def layer_activations(layer: Layer) -> dict[str, Any] | None:
    """Bar chart: the activation each unit's feature visualization reached."""
    rows = [{"unit": u.index, "activation": u.featurevis_activation}
            for u in layer.units if u.featurevis_activation is not None]
    if not rows:
        return None
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("unit:O", title="unit"),
        y=alt.Y("activation:Q", title="activation reached by feature vis"),
        tooltip=["unit:O", alt.Tooltip("activation:Q", format=".3f")],
    ).properties(width=_WIDTH, height=160)
    return chart.to_dict(validate=False)


def example_values(unit: Unit) -> dict[str, Any] | None:
    """Bar chart: the unit's activation on each of its top dataset examples."""
    if not unit.examples:
        return None
    rows = [{"rank": i + 1, "activation": e.value, "image": e.name} for i, e in enumerate(unit.examples)]
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("rank:O", title="example rank"),
        y=alt.Y("activation:Q", title="max activation over space"),
        tooltip=["image:N", alt.Tooltip("activation:Q", format=".3f")],
    ).properties(width=_WIDTH, height=140)
    return chart.to_dict(validate=False)
