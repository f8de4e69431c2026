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
    return _bars(rows, "unit:O", "unit", "activation reached by feature vis", "unit:O", height=160)


def example_values(unit: Unit) -> dict[str, Any] | None:
    """Bar chart: the unit's activation on each of its top dataset examples."""
    rows = [{"rank": i + 1, "activation": e.value, "image": e.name} for i, e in enumerate(unit.examples)]
    return _bars(rows, "rank:O", "example rank", "max activation over space", "image:N", height=140)


def _bars(rows: list[dict], x: str, x_title: str, y_title: str, label: str, *, height: int
          ) -> dict[str, Any] | None:
    """Bars of ``activation`` over ``x``, with a tooltip naming each bar by ``label``."""
    if not rows:
        return None
    chart = alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X(x, title=x_title),
        y=alt.Y("activation:Q", title=y_title),
        tooltip=[label, alt.Tooltip("activation:Q", format=".3f")],
    ).properties(width=_WIDTH, height=height)
    return chart.to_dict(validate=False)
