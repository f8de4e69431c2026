"""The data of a page's image-heavy figures, drawn in the browser by ``static/figures.js``.

A unit's page shows some hundred images (its crops, the dataset images across its
range, its stimuli, the units that take over as its examples turn) and its circuit page
some fifty tiles and weight maps. As markup, that was most of their bytes (the whole
EfficientNet-Lite0: 34 KB a unit page and 29 KB a circuit page; as data, 14.6 and 10.3 KB,
text included): each page holds one JSON object (``figures``) and ``figures.js`` builds
the same elements from it, from file:// as from a server. Links and image paths are
relative to the page, as everywhere else.

The formats (lists, not objects, so that a thousand pages stay small):

- a picture: ``[src]`` for a file, ``[sheet, tile]`` for a tile of a sprite, ``sheet`` an
  index into the page's ``sprites`` (``[src, tiles]`` each: a unit's thirty crops name one
  sheet), or ``[src, tile, tiles]`` where a tile stands alone (an edge's);
- an example: ``[image, value, crop]`` (``crop`` a picture, or None: the image's thumbnail;
  ``value`` to the two places pages show), and across a unit's range ``[image, value, x, y]``
  (the whole image, ``x`` and ``y`` where the unit fired, as fractions of it);
  the dataset image's name and label are in the site's ``data/images.js`` (every page
  shows the same few hundred), its thumbnail's path is ``data`` + ``urls.dataset_image``'s
  folder, computed from ``per_folder``;
- a unit tile: ``[index, href, picture or None, what it is (a ``WHAT`` key), failed, dead]``,
  its picture 1 where it is the unit's thumbnail beside its page (``THUMB`` there, the page's
  ``thumb``: a grid of a thousand need not spell each path out)
  (``Unit.tile``, as ``unit_tile`` draws it: a failed feature visualization dimmed), on a layer's grid
  with its top example's crop after; a unit in the diagram the same with
  its ``Unit.picture`` (never a failed one), or None for an edge's unit whose tile shows that;
- an edge: ``[layer, tile, family symbol or None, weight, map]``, its map
  ``[largest |tap|, width, [taps as thousandths of it, row by row]]``, ``layer`` an index
  into the page's ``layers`` (``[name, its folder from the page]`` each), its tile's paths
  relative to that folder.
"""

from __future__ import annotations

import posixpath
from typing import Any

import numpy as np

from atlas import artifacts as records
from atlas.render.diagrams import CircuitDiagram
from atlas.render.model import Edge, Example, Family, Layer, Picture, Unit
from atlas.render.urls import IMAGES_PER_FOLDER, relative_url


WHAT = {"feature visualization": "fv", "weights": "w", "top dataset example": "ex"}  # figures.js reads the keys
THUMB = f"img/fv-{records.Featurevis.thumb('{}')}"  # a unit's thumbnail from its page's folder, where read.py puts it


class Figures:
    """Builds one page's figures, every path relative to ``page``; sprites named once in
    the page's ``sprites`` unless ``sheets`` is False."""

    def __init__(self, page: str, sheets: bool = True):
        self.page = page
        self.sheets: dict[str, tuple[int, int]] | None = {} if sheets else None  # src -> (index, tiles)

    def url(self, target: str) -> str:
        return relative_url(target, self.page)

    def picture(self, p: Picture | None) -> list[Any] | None:
        if p is None:
            return None
        if not p.sprite:
            return [self.url(p.src)]
        if self.sheets is None:
            return [self.url(p.src), p.tile, p.tiles]
        return [self.sheets.setdefault(p.src, (len(self.sheets), p.tiles))[0], p.tile]

    def example(self, ex: Example) -> list[Any]:
        return [ex.image, round(ex.value, 2), self.picture(ex.crop)]  # as pages show it

    def placed(self, ex: Example) -> list[Any]:
        """A whole image with its value and where the unit fired (fractions of the image)."""
        return [ex.image, round(ex.value, 2), round(ex.x, 2), round(ex.y, 2)]  # a ring on a 48 px image

    def tile(self, u: Unit) -> list[Any]:
        """A unit as ``_macros.unit_tile`` shows it (``Unit.tile``)."""
        found = u.tile
        return [u.index, self.url(u.url), self.of(u, found[0]) if found else None, WHAT[found[1]] if found else "",
                int(u.featurevis_failed), int(u.dead)]

    def pictured(self, u: Unit) -> list[Any]:
        """A unit as the circuit diagram shows it (``Unit.picture``: never a failed feature visualization)."""
        found = u.picture
        return [u.index, self.url(u.url), self.of(u, found[0]) if found else None, WHAT[found[1]] if found else ""]

    def of(self, u: Unit, p: Picture) -> list[Any] | int | None:
        """A picture of ``u``: 1 where it is the thumbnail beside its page (``THUMB``)."""
        return 1 if not p.sprite and _beside(u.url, u.index, p.src) else self.picture(p)

    def done(self, **figures: Any) -> dict[str, Any]:
        sprites = [[self.url(src), tiles] for src, (_, tiles) in (self.sheets or {}).items()]
        return {**figures, "data": self.url("data/"), "per_folder": IMAGES_PER_FOLDER, "sprites": sprites,
                "thumb": THUMB}


def _beside(url: str, index: int, src: str) -> bool:
    """Whether ``src`` is the thumbnail of unit ``index`` beside its page ``url``."""
    return src == f"{posixpath.dirname(url)}/{THUMB.format(index)}"


def _layer_folder(u: Unit) -> str:
    """The site path of the folder of a unit's layer (its page is in a group's folder there)."""
    return posixpath.dirname(posixpath.dirname(u.url)) + "/"


def _weight_map(weights: np.ndarray) -> list[Any]:
    w = np.asarray(weights, dtype=np.float64)
    largest = float(np.abs(w).max(initial=0.0))
    taps = np.rint(w / largest * 1000).astype(int) if largest else np.zeros(w.shape, int)
    return [float(f"{largest:.6g}"), w.shape[1], taps.ravel().tolist()]  # legends print it to 3 places


def unit_figures(unit: Unit, page: str) -> dict[str, Any]:
    """A unit page's examples, examples across its range, clusters of meanings, preferred
    stimuli and the units that take over as its examples turn."""
    f = Figures(page)
    tuning = unit.tuning if unit.tuning and not unit.tuning.get("no_answer") else None
    q = unit.activation_quantiles
    return f.done(
        examples=[f.example(ex) for ex in unit.examples],
        negative=[f.example(ex) for ex in unit.negative_examples],
        quantiles=[[[q[9 - i], q[10 - i]], [f.placed(ex) for ex in group]] for i, group in enumerate(unit.quantiles)],
        meanings=[[f.example(ex) for ex in m.examples] for m in unit.polysemanticity.meanings]
        if unit.polysemanticity else [],
        stimuli=[[kind, f.url(p["src"]), round(p["response"], 2)] for kind, p in sorted(tuning["preferred"].items())]
        if tuning else [],
        takeover=[[owner["index"], f.url(owner["url"]),
                   (1 if _beside(owner["url"], owner["index"], owner["thumb"]) else [f.url(owner["thumb"])])
                   if owner["thumb"] else None, owner["angles"]] for owner in unit.takeover])


EVIDENCE_ROWS = 24  # members in a family page's table of evidence, member by member


def family_figures(family: Family, page: str) -> dict[str, Any]:
    """A family's members, each a tile with its top example's crop (as on the layer's grid)
    and its caption: ``[orientation or None, confidence, runner-up's symbol and score or None]``;
    and the first ``EVIDENCE_ROWS`` members' evidence: ``[index, href, feature visualization
    or None, its top 4 examples as [image, picture], its 3 strongest preferred stimuli as [kind, src, response]]``."""
    f = Figures(page)

    def evidence(u: Unit) -> list[Any]:
        preferred = sorted(u.tuning["preferred"].items(), key=lambda kind: -kind[1]["response"]) if u.tuning else []
        return [u.index, f.url(u.url), f.url(u.featurevis_thumb) if u.featurevis_thumb else None,
                [[ex.image, f.picture(ex.picture)] for ex in u.examples[:4]],
                [[kind, f.url(p["src"]), round(p["response"], 2)] for kind, p in preferred[:3]]]

    def caption(u: Unit) -> list[Any]:
        second = u.family_second if u.family_second and u.family_second["borderline"] else None
        oriented = family.order_by == "orientation" and u.tuning
        return [round(u.tuning["orientation_deg"]) if oriented else None, round(u.family_confidence, 2),
                [second["symbol"], round(second["score"], 2)] if second else None]

    return f.done(members=[f.tile(u) + [f.picture(u.examples[0].picture) if u.examples else None, caption(u)]
                           for u in family.members],
                  evidence=[evidence(u) for u in family.members[:EVIDENCE_ROWS]])


def layer_figures(layer: Layer, page: str) -> dict[str, Any]:
    """A layer's grid of units, each with its top example's crop for the grid's other view."""
    f = Figures(page)
    return f.done(grid=[f.tile(u) + [f.picture(u.examples[0].picture) if u.examples else None] for u in layer.units])


def circuit_figures(unit: Unit, diagram: CircuitDiagram | None, page: str) -> dict[str, Any]:
    """A circuit page's diagram and its rows of edges, each edge listed once."""
    f = Figures(page)
    edges: list[Edge] = []

    def ref(e: Edge) -> int:
        for i, known in enumerate(edges):
            if known is e:
                return i
        edges.append(e)
        return len(edges) - 1

    rows = {name: [ref(e) for e in getattr(unit, name)]
            for name in ("inputs", "inhibitory", "outputs", "outputs_inhibitory")}
    drawn = None
    if diagram:
        drawn_rows = [row for row in (diagram.inputs, diagram.uses) if row]  # as ``diagram.scales``
        drawn = {"width": diagram.width, "height": diagram.height, "centre": [diagram.centre_x, diagram.centre_y,
                                                                             diagram.centre_size],
                 "picture": diagram.picture, "map": diagram.map, "unit": f.pictured(unit),
                 "family": unit.family.name if unit.family else None,
                 # Each edge: [its edge, sign, x, its curve's ends, stroke, its row, a failed
                 # unit's picture]; a row: where its pictures, labels and maps go, and its scale.
                 "edges": [[ref(d.edge), d.sign, round(d.x, 1), [round(v, 1) for v in d.ends], d.stroke, i,
                            _in_layer(d.edge.other).pictured(d.edge.other) if d.edge.other.featurevis_failed else None]
                           for i, row in enumerate(drawn_rows) for d in row],
                 "ys": [[row[0].picture_y, row[0].label_y, row[0].map_y] for row in drawn_rows],
                 "scales": [[row, float(f"{scale:.6g}")] for row, scale in diagram.scales]}
    layers = {e.layer: f.url(_layer_folder(e.other)) for e in edges}
    order = list(layers)
    return f.done(edges=[_edge(e, order.index(e.layer)) for e in edges], rows=rows, diagram=drawn,
                  layers=[[name, folder] for name, folder in layers.items()])


def _in_layer(u: Unit) -> Figures:
    """Paths relative to the folder of ``u``'s layer, each sprite tile standing alone."""
    return Figures(_layer_folder(u) + "index.html", sheets=False)


def _edge(e: Edge, layer: int) -> list[Any]:
    family = e.other.family.symbol if e.other.family else None
    return [layer, _in_layer(e.other).tile(e.other), family, round(float(e.weight), 5), _weight_map(e.map)]
