"""Circuit diagrams: where the layout puts units, maps and edges."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.render import diagrams
from atlas.render.diagrams import circuit_diagram
from atlas.render.model import Edge, Unit


def unit(i: int) -> Unit:
    return Unit(index=i, url=f"models/m/l/{i}.html")


def edge(i: int, weight: float, layer: str = "before") -> Edge:
    m = np.zeros((3, 3), np.float32)
    m[1, 1] = weight
    return Edge(unit(i), layer, weight, m)


def test_no_edges_no_diagram():
    assert circuit_diagram(unit(0)) is None


def test_inputs_sit_above_the_unit_and_uses_below_each_in_its_own_column():
    u = unit(0)
    u.inputs = [edge(i, 1.0 - 0.1 * i) for i in range(6)]
    u.inhibitory = [edge(10 + i, -0.2 - 0.1 * i) for i in range(5)]
    u.outputs = [edge(20, 0.3, "after")]
    d = circuit_diagram(u)
    assert [e.sign for e in d.inputs] == ["excites"] * diagrams.INPUTS + ["inhibits"] * diagrams.INHIBITORY
    assert [e.edge.other.index for e in d.inputs] == [0, 1, 2, 3, 10, 11, 12]
    assert all(e.map_y + diagrams.MAP <= d.centre_y for e in d.inputs)
    assert all(e.map_y >= d.centre_y + d.centre_size for e in d.uses)
    assert all(e.picture_y + diagrams.PICTURE <= d.height for e in d.uses)
    lefts = [e.x for e in d.inputs]
    assert lefts == sorted(lefts) and min(np.diff(lefts)) >= diagrams.MAP  # maps do not overlap
    assert lefts[0] >= 0 and lefts[-1] + diagrams.MAP <= d.width
    assert abs(d.uses[0].x + diagrams.MAP / 2 - d.centre_x) < 1e-6  # a lone use sits under the unit


def test_edge_width_follows_strength_and_each_row_has_one_scale():
    u = unit(0)
    u.inputs = [edge(1, 0.8), edge(2, 0.2)]
    u.inhibitory = [edge(4, -0.4)]
    u.outputs_inhibitory = [edge(3, -0.04, "after"), edge(5, -0.01, "after")]  # the next layer's: ten times weaker
    d = circuit_diagram(u)
    strokes = {e.edge.other.index: e.stroke for e in d.edges}
    assert strokes[1] == strokes[3] == diagrams.MAX_WIDTH  # each row's strongest
    assert strokes[1] > strokes[4] > strokes[2] >= diagrams.MIN_WIDTH
    assert strokes[5] == pytest.approx(diagrams.MIN_WIDTH + (diagrams.MAX_WIDTH - diagrams.MIN_WIDTH) / 4)
    assert [e.scale for e in d.inputs] == pytest.approx([0.8] * 3)  # the row's largest |tap|
    assert [e.scale for e in d.uses] == pytest.approx([0.04] * 2)
    assert [name for name, _ in d.scales] == ["inputs", "uses"]
    assert d.uses[0].sign == "inhibits"
    # each curve runs from its map's edge nearest the unit to the unit's side
    start = d.inputs[0].path.split()[0][1:].split(",")
    assert float(start[1]) == d.inputs[0].map_y + diagrams.MAP
    assert d.inputs[0].path.endswith(f",{d.centre_y:.1f}")
