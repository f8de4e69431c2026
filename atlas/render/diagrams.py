"""Circuit diagrams: where each unit and weight of a drawn circuit goes.

``circuit_diagram`` lays a unit out as the Circuits articles draw one: the unit large
in the middle, its strongest inputs in a row above and its strongest uses in a row
below, each linked to it by an edge whose color is the weight's sign and whose width
its strength, with the edge's expanded weight map beside the other unit. Each row
has one color scale and one stroke scale (a layer's weights into the unit and the
next layer's out of it can differ tenfold). ``static/figures.js`` draws
the layout as SVG from the page's data; this module only places things, so the geometry is testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atlas.render.model import Edge, Unit

COLUMN = 124  # width of one input's column
PICTURE = 64  # the other unit's feature visualization
MAP = 96  # an edge's weight map: a 5x5 kernel's taps ~19 px each
CENTRE = 176  # the unit itself
LABEL = 18  # a line of text under a picture or map
SPAN = 72  # vertical run of an edge between a row and the unit
INPUTS, INHIBITORY = 4, 3  # edges of each sign drawn per row; the page lists the rest
MIN_WIDTH, MAX_WIDTH = 1.0, 7.0  # stroke of the weakest and strongest edge


@dataclass
class Drawn:
    """One edge of the diagram with where its parts go (pixels of the SVG's viewBox)."""

    edge: Edge
    sign: str  # excites | inhibits
    x: float  # left of the column's pictures
    picture_y: float
    map_y: float
    label_y: float
    ends: tuple[float, float, float, float]  # the edge's curve runs from (x1, y1) to (x2, y2)
    stroke: float
    scale: float  # |weight| drawn at full color: the row's largest tap

    @property
    def path(self) -> str:
        """The edge's curve as an SVG path: a vertical S-curve (``figures.js`` draws the same)."""
        x1, y1, x2, y2 = self.ends
        middle = (y1 + y2) / 2
        return f"M{x1:.1f},{y1:.1f} C{x1:.1f},{middle:.1f} {x2:.1f},{middle:.1f} {x2:.1f},{y2:.1f}"


@dataclass
class CircuitDiagram:
    width: float
    height: float
    unit: Unit
    centre_x: float
    centre_y: float
    inputs: list[Drawn] = field(default_factory=list)
    uses: list[Drawn] = field(default_factory=list)
    centre_size: int = CENTRE
    picture: int = PICTURE
    map: int = MAP

    @property
    def edges(self) -> list[Drawn]:
        return self.inputs + self.uses

    @property
    def scales(self) -> list[tuple[str, float]]:
        """(row, its color scale) for each drawn row: the figure's legends."""
        return [(name, row[0].scale) for name, row in (("inputs", self.inputs), ("uses", self.uses)) if row]


def _row(excitatory: list[Edge], inhibitory: list[Edge]) -> list[tuple[Edge, str]]:
    return ([(e, "excites") for e in excitatory[:INPUTS]] + [(e, "inhibits") for e in inhibitory[:INHIBITORY]])


def circuit_diagram(unit: Unit) -> CircuitDiagram | None:
    """The unit's diagram, or None when it has no edges to draw."""
    above = _row(unit.inputs, unit.inhibitory)
    below = _row(unit.outputs, unit.outputs_inhibitory)
    if not above and not below:
        return None
    width = max(len(above), len(below), 2) * COLUMN
    block = PICTURE + LABEL + MAP  # a row: picture, its label, the map (nearest the unit)
    centre_y = (block + SPAN) if above else 0
    top = centre_y + CENTRE + LABEL + SPAN  # of the row of uses
    height = (top + block) if below else centre_y + CENTRE + LABEL
    diagram = CircuitDiagram(width=width, height=height, unit=unit, centre_x=width / 2, centre_y=centre_y)

    def columns(row: list[tuple[Edge, str]]) -> list[float]:
        left = (width - len(row) * COLUMN) / 2
        return [left + i * COLUMN + (COLUMN - MAP) / 2 for i in range(len(row))]

    def scales(row: list[tuple[Edge, str]]) -> tuple[float, float]:  # (largest tap, strongest weight)
        return (max((float(np.abs(e.map).max(initial=0.0)) for e, _ in row), default=0.0) or 1.0,
                max((abs(e.weight) for e, _ in row), default=0.0) or 1.0)

    def stroke(e: Edge, strongest: float) -> float:
        return round(MIN_WIDTH + (MAX_WIDTH - MIN_WIDTH) * abs(e.weight) / strongest, 2)

    def landing(i: int, n: int) -> float:  # edges meet the unit spread along its side, in column order
        return width / 2 + (i - (n - 1) / 2) * min(CENTRE / max(n, 1), 22)

    scale, strongest = scales(above)
    for i, ((e, sign), x) in enumerate(zip(above, columns(above))):
        diagram.inputs.append(Drawn(e, sign, x, picture_y=0, label_y=PICTURE + LABEL - 5, map_y=PICTURE + LABEL,
                                    ends=(x + MAP / 2, block, landing(i, len(above)), centre_y),
                                    stroke=stroke(e, strongest), scale=scale))
    scale, strongest = scales(below)
    for i, ((e, sign), x) in enumerate(zip(below, columns(below))):
        diagram.uses.append(Drawn(e, sign, x, map_y=top, label_y=top + MAP + LABEL - 5, picture_y=top + MAP + LABEL,
                                  ends=(landing(i, len(below)), centre_y + CENTRE + LABEL, x + MAP / 2, top),
                                  stroke=stroke(e, strongest), scale=scale))
    return diagram

