"""Charts as Vega-Lite specs, made with altair and embedded in the page.

Specs are plain dicts. Building a chart with altair costs tens of milliseconds,
more than rendering its page, so each kind of chart is built once, without data
(``_template``), and every page gets a copy with its own rows filled in. The site
holds each template once (``static/charts.js``, ``script``) and a page only what its
chart adds to it (``embedded``: the data as columns, and a patch where the chart
differs); ``static/atlas.js`` puts them together and draws them with the one vendored
vega bundle.
"""

from __future__ import annotations

import collections
import functools
import json
from typing import Any, Callable, Iterable

import altair as alt
import numpy as np

from atlas.data.bank import PERIODIC_180
from atlas.render.model import Family, Layer, Model, Unit

_WIDTH = "container"


def _short(value: float) -> float:
    """A plotted number to five significant digits: what a chart and its tooltips show,
    in a third of the characters of a float32 read as a double."""
    return float(f"{value:.5g}")


def layer_activations(layer: Layer) -> dict[str, Any] | None:
    """Bar chart: the activation each unit's feature visualization reached."""
    rows = [{"unit": u.index, "activation": float(f"{u.featurevis_activation:.4g}"),  # a bar: 4 digits
             "result": "failed" if u.featurevis_failed else "raised"}
            for u in layer.units if u.featurevis_activation is not None]
    return _bars(rows, "unit:O", "unit", "activation reached by feature vis", "unit:O", height=160, color="result:N")


def orientation_tuning(unit: Unit) -> dict[str, Any] | None:
    """Radial plot: the unit's response to its strongest oriented stimulus kind at each angle
    (as "Curve Detectors" draws them), on a 360-degree circle."""
    if not unit.tuning:
        return None
    kind = unit.tuning["orientation_kind"]
    curve = unit.tuning["curves"][kind]
    angles, response = list(curve["angles"]), [_short(max(r, 0.0)) for r in curve["response"]]
    if kind in ("line", "grating"):  # these repeat every 180 degrees: draw the full circle
        angles, response = angles + [a + 180 for a in angles], response + response
    angles, response = angles + angles[:1], response + response[:1]  # close the loop
    rows = [{"order": i, "angle": a % 360, "response": r} for i, (a, r) in enumerate(zip(angles, response))]
    spec = _filled(_radial, rows, kind)
    extent = max(response) or 1.0  # short already
    for axis in ("x", "y"):  # a square, centred scale: the loop keeps its shape
        spec["encoding"][axis]["scale"] = {"domain": [-extent, extent]}
    return spec


def _radial(kind: str) -> alt.Chart:
    """Each point at its angle, its response the distance from the centre (Vega computes
    where: the page holds only the angles and responses)."""
    return alt.Chart(alt.Data(values=[])).transform_calculate(
        x="datum.response * cos(datum.angle * PI / 180)", y="datum.response * sin(datum.angle * PI / 180)",
    ).mark_line(point=True).encode(
        x=alt.X("x:Q", title=None, axis=None), y=alt.Y("y:Q", title=None, axis=None),
        order="order:Q", tooltip=["angle:Q", alt.Tooltip("response:Q", format=".3f")],
    ).properties(width=200, height=200, title=f"response to {kind.replace('_', '-')}s by orientation")


def joint_tuning(unit: Unit) -> dict[str, Any] | None:
    """Lines: this unit's response as its top examples turn, and the strongest unit of the
    layer at each angle (each unit scaled by its own largest response)."""
    joint = (unit.tuning or {}).get("joint")
    if not joint:
        return None
    rows = [{"angle": a, "self": _short(r), "strongest": _short(top), "owner": owner, "unit": unit.index}
            for a, r, top, owner in zip(joint["angles"], joint["self"], joint["takeover_response"], joint["takeover"])]
    return _filled(_joint, rows)


def _joint() -> alt.Chart:
    """Two lines from one row an angle: the unit's own response and the strongest unit's."""
    return alt.Chart(alt.Data(values=[])).transform_fold(["self", "strongest"], as_=["line", "response"]
    ).transform_calculate(series="datum.line == 'self' ? 'unit ' + datum.unit : 'strongest unit'"
    ).transform_calculate(unit="datum.line == 'self' ? datum.unit : datum.owner").mark_line(point=True).encode(
        x=alt.X("angle:Q", title="rotation of the examples (degrees)", scale=alt.Scale(domain=[0, 345])),
        y=alt.Y("response:Q", title="response (of its maximum)"),
        color=alt.Color("series:N", title=None),
        tooltip=["angle:Q", "unit:O", alt.Tooltip("response:Q", format=".2f")],
    ).properties(width=_WIDTH, height=160)


OVERLAID = 12  # members' curves a family's tuning figure overlays, spread over its order


def family_tuning(family: Family) -> dict[str, Any] | None:
    """Lines, one per member in the family's order (at most ``OVERLAID``, evenly spread
    over it): its response by orientation to the stimulus kind most members are most
    oriented to, each scaled by its own largest, colored by the orientation the member
    prefers: "Curve Detectors"' overlaid tuning curves."""
    tuned = [m for m in family.members if m.tuning]
    if family.order_by != "orientation" or len(tuned) < 2:
        return None
    kind = collections.Counter(m.tuning["orientation_kind"] for m in tuned).most_common(1)[0][0]
    period = 180 if kind in PERIODIC_180 else 360
    shown = [tuned[round(i)] for i in np.linspace(0, len(tuned) - 1, min(OVERLAID, len(tuned)))]
    rows = []
    for rank, member in enumerate(shown):
        curve = (member.tuning or {}).get("curves", {}).get(kind)
        if not curve:
            continue
        peak = max(max(curve["response"]), 1e-12)
        rows += [{"angle": a, "response": _short(max(r, 0.0) / peak), "unit": member.index, "rank": rank,
                  "preferred": member.tuning["orientation_deg"] % period}
                 for a, r in zip(curve["angles"], curve["response"])]
    if len({row["unit"] for row in rows}) < 2:
        return None
    spec = _filled(_family_curves, rows, kind.replace("_", "-"))
    spec["encoding"]["color"]["scale"]["domain"] = [0, period]
    return spec


def _family_curves(kind: str) -> alt.Chart:
    return alt.Chart(alt.Data(values=[])).mark_line(strokeWidth=1.5, opacity=0.85).encode(
        x=alt.X("angle:Q", title=f"orientation of the {kind} (degrees)"),
        y=alt.Y("response:Q", title="response (of the member's largest)"),
        color=alt.Color("preferred:Q", title="preferred (°)", scale=alt.Scale(scheme="sinebow", domain=[0, 360])),
        detail="unit:N", order="rank:Q",
        tooltip=["unit:N", "angle:Q", alt.Tooltip("response:Q", format=".2f"),
                 alt.Tooltip("preferred:Q", format=".0f")],
    ).properties(width=_WIDTH, height=180)


def handwritten_scatter(family: Family) -> dict[str, Any] | None:
    """Points: the family's most typical unit against its handwritten detector, one per stimulus."""
    found = family.handwritten_scatter
    if not found:
        return None
    rows = [{"detector": d, "unit": u} for d, u in zip(found["detector"], found["unit"])]
    return _filled(_scatter, rows, family.representative.index)


def _scatter(unit: int) -> alt.Chart:
    return alt.Chart(alt.Data(values=[])).mark_circle(size=14, opacity=0.5).encode(
        x=alt.X("detector:Q", title="handwritten detector"),
        y=alt.Y("unit:Q", title=f"unit {unit}"),
        tooltip=[alt.Tooltip("detector:Q", format=".3f"), alt.Tooltip("unit:Q", format=".3f")],
    ).properties(width=220, height=160)


def activation_histogram(unit: Unit) -> dict[str, Any] | None:
    """Bar chart: how often the unit's per-image maximum falls in each range."""
    if not unit.histogram or not unit.histogram["counts"]:
        return None
    edges = unit.histogram["edges"]
    rows = [{"from": round(lo, 3), "to": round(hi, 3), "activation": count}
            for lo, hi, count in zip(edges, edges[1:], unit.histogram["counts"])]
    return _filled(_histogram, rows)


def _histogram() -> alt.Chart:
    return alt.Chart(alt.Data(values=[])).mark_bar().encode(
        x=alt.X("from:Q", bin="binned", title="max activation over space"),
        x2="to:Q",
        y=alt.Y("activation:Q", title="images"),
        tooltip=["from:Q", "to:Q", alt.Tooltip("activation:Q", title="images")],
    ).properties(width=_WIDTH, height=140)


def layer_similarity(pair: dict[str, Any]) -> dict[str, Any]:
    """Heatmaps: linear CKA between every layer of one model and every layer of another,
    for the trained networks and with the second one's weights random (the baseline)."""
    rows = [{"network": network, "a": la, "b": lb, "cka": pair[key][i][j]}
            for network, key in zip(_networks(pair["b"]), ("trained", "random"))
            for i, la in enumerate(pair["layers_a"]) for j, lb in enumerate(pair["layers_b"])]
    return _filled(_heatmap, rows, pair["a"], pair["b"], tuple(pair["layers_a"]), tuple(pair["layers_b"]))


def _heatmap(a: str, b: str, layers_a: tuple[str, ...], layers_b: tuple[str, ...]) -> alt.Chart:
    cell = 28
    return alt.Chart(alt.Data(values=[])).mark_rect().encode(
        x=alt.X("b:N", title=b, sort=list(layers_b)),
        y=alt.Y("a:N", title=a, sort=list(layers_a)),
        color=alt.Color("cka:Q", title="CKA", scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["a:N", "b:N", alt.Tooltip("cka:Q", format=".2f")],
    ).properties(width=cell * len(layers_b), height=cell * len(layers_a)).facet(
        column=alt.Column("network:N", title=None, sort=_networks(b)))


def _networks(b: str) -> list[str]:
    return ["trained", f"{b} with random weights"]


def polysemanticity_by_layer(model: Model) -> dict[str, Any] | None:
    """Box plots: the polysemanticity scores of each layer's units, layers in order."""
    rows = [{"group": layer.name, "unit": u.index, "score": u.polysemanticity.score}
            for layer in model.layers for u in layer.units if u.polysemanticity]
    if not rows:
        return None
    return _filled(_score_boxes, rows, "layer", tuple(layer.name for layer in model.layers))


def units_against_features(layer: Layer, dictionary: Layer) -> dict[str, Any] | None:
    """Box plots: a layer's units and its dictionary's features, by the same two
    measures: the polysemanticity score, and the ground truth's mixing (the share of
    strong examples not on the most common object)."""
    groups = ((f"{layer.name} units", layer), ("dictionary features", dictionary))
    rows = [{"group": name, "unit": u.index, "measure": measure, "score": round(value, 4)}
            for name, source in groups for u in source.units if u.polysemanticity
            for measure, value in (("polysemanticity score", u.polysemanticity.score),
                                   ("ground-truth mixing", 1 - u.polysemanticity.purity))]
    if not rows:
        return None
    return _filled(_measure_boxes, rows, tuple(name for name, _ in groups))


def _measure_boxes(order: tuple[str, ...]) -> alt.Chart:
    return alt.Chart(alt.Data(values=[])).mark_boxplot(extent="min-max").encode(
        x=alt.X("score:Q", title="higher = more mixed", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("group:N", title=None, sort=list(order)),
    ).properties(width=300, height=28 * len(order)).facet(
        column=alt.Column("measure:N", title=None, sort=["polysemanticity score", "ground-truth mixing"]))


def _score_boxes(title: str, order: tuple[str, ...]) -> alt.Chart:
    return alt.Chart(alt.Data(values=[])).mark_boxplot(extent="min-max").encode(
        x=alt.X("score:Q", title="polysemanticity (higher = more mixed)", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("group:N", title=title or None, sort=list(order)),
    ).properties(width=_WIDTH, height=28 * len(order))


def toy_geometry(result: dict[str, Any]) -> dict[str, Any]:
    """Each feature's column of W in the hidden plane, one model per sparsity, chosen
    with a slider (Elhage et al.'s pentagon appears as features grow sparse)."""
    rows = [{"step": k, "sparsity": m["sparsity"], "feature": i, "x": round(c[0], 4), "y": round(c[1], 4),
             "norm": m["norms"][i]}
            for k, m in enumerate(result["models"]) for i, c in enumerate(m["columns"])]
    return _filled(_geometry, rows, len(result["models"]))


def _geometry(models: int) -> alt.Chart:
    step = alt.param(name="step", value=models - 1,
                     bind=alt.binding_range(min=0, max=models - 1, step=1, name="sparsity step "))
    base = alt.Chart(alt.Data(values=[])).transform_filter("datum.step == step")
    scale = alt.Scale(domain=[-1.6, 1.6])
    arrows = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("zero:Q", scale=scale, title="hidden dimension 1"), y=alt.Y("zero_y:Q", scale=scale,
                                                                             title="hidden dimension 2"),
        x2="x:Q", y2="y:Q", color=alt.Color("feature:N", title="feature")).transform_calculate(zero="0", zero_y="0")
    heads = base.mark_point(filled=True, size=60).encode(
        x=alt.X("x:Q", scale=scale), y=alt.Y("y:Q", scale=scale), color="feature:N",
        tooltip=["feature:N", alt.Tooltip("sparsity:Q", format=".3f"), alt.Tooltip("norm:Q", format=".2f")])
    label = base.mark_text(align="left", x=4, y=8).encode(
        text=alt.Text("label:N")).transform_calculate(label="'sparsity ' + datum.sparsity").transform_filter(
        "datum.feature == 0")
    return (arrows + heads + label).add_params(step).properties(width=260, height=260)


def toy_capacity(result: dict[str, Any]) -> dict[str, Any]:
    """Bars: how strongly each feature is stored (|W_i|), colored by how much the other
    features interfere with it, one model per sparsity chosen with a slider."""
    rows = [{"step": k, "sparsity": m["sparsity"], "feature": i, "norm": m["norms"][i],
             "interference": min(m["interference"][i], 1.0)}
            for k, m in enumerate(result["models"]) for i in range(result["features"])]
    return _filled(_capacity, rows, len(result["models"]))


def _capacity(models: int) -> alt.Chart:
    step = alt.param(name="step", value=models - 1,
                     bind=alt.binding_range(min=0, max=models - 1, step=1, name="sparsity step "))
    return alt.Chart(alt.Data(values=[])).transform_filter("datum.step == step").mark_bar().encode(
        x=alt.X("feature:O", title="feature (most important first)"),
        y=alt.Y("norm:Q", title="|W_i| (stored when ≥ 0.5)", scale=alt.Scale(domain=[0, 1.3])),
        color=alt.Color("interference:Q", title="interference", scale=alt.Scale(domain=[0, 1], scheme="plasma")),
        tooltip=["feature:O", alt.Tooltip("sparsity:Q", format=".3f"), alt.Tooltip("norm:Q", format=".2f"),
                 alt.Tooltip("interference:Q", format=".2f")],
    ).add_params(step).properties(width=_WIDTH, height=180)


def toy_phase(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Lines: features stored against 1 / (1 - sparsity), per experiment, with each
    model's dimensions (stored = dimensions is the dense regime)."""
    rows = [{"experiment": f"{r['features']} features in {r['dims']} dims", "density": round(1 - m["sparsity"], 4),
             "inverse": round(1 / max(1 - m["sparsity"], 1e-6), 2), "stored": m["stored"], "dims": r["dims"]}
            for r in results.values() for m in r["models"]]
    return _filled(_phase, rows)


def _phase() -> alt.Chart:
    base = alt.Chart(alt.Data(values=[]))
    x = alt.X("inverse:Q", scale=alt.Scale(type="log"), title="1 / (1 - sparsity)")
    lines = base.mark_line(point=True).encode(
        x=x, y=alt.Y("stored:Q", title="features stored"), color=alt.Color("experiment:N", title=None),
        tooltip=["experiment:N", "density:Q", "stored:Q"])
    dims = base.mark_line(strokeDash=[4, 4]).encode(x=x, y="dims:Q", color="experiment:N")
    return (dims + lines).properties(width=_WIDTH, height=200)


def _bars(rows: list[dict], x: str, x_title: str, y_title: str, label: str, *, height: int,
          color: str | None = None) -> dict[str, Any] | None:
    """Bars of ``activation`` over ``x``, with a tooltip naming each bar by ``label``,
    colored by the field ``color`` if given."""
    if not rows:
        return None
    return _filled(_bar_chart, rows, x, x_title, y_title, label, height, color)


def _bar_chart(x: str, x_title: str, y_title: str, label: str, height: int, color: str | None) -> alt.Chart:
    tooltip = [label, alt.Tooltip("activation:Q", format=".3f")]
    encoding = dict(x=alt.X(x, title=x_title), y=alt.Y("activation:Q", title=y_title))
    if color is not None:
        encoding["color"] = alt.Color(color, title=None, scale=alt.Scale(domain=["raised", "failed"]))
        tooltip.append(color)
    return alt.Chart(alt.Data(values=[])).mark_bar().encode(**encoding, tooltip=tooltip
                                                            ).properties(width=_WIDTH, height=height)


@functools.lru_cache(maxsize=None)
def _template(build: Callable[..., alt.Chart], *params: Any) -> str:
    """The chart ``build(*params)`` makes, as JSON, without data (built once per kind)."""
    return json.dumps(build(*params).to_dict(validate=False))


_BUILT: dict[str, tuple[Callable[..., alt.Chart], tuple]] = {}  # a template's name -> how to build it


def _filled(build: Callable[..., alt.Chart], rows: list[dict], *params: Any) -> dict[str, Any]:
    """The chart ``build(*params)`` with ``rows`` as its data, naming its template in its
    ``usermeta`` (Vega-Lite's key for the embedder's own use)."""
    name = ":".join([build.__name__.lstrip("_"), *map(str, params)])
    _BUILT[name] = (build, params)
    spec = json.loads(_template(build, *params))
    spec["data"] = {"values": rows}
    spec["usermeta"] = {"template": name}
    return spec


def script(specs: Iterable[dict[str, Any]]) -> str:
    """``static/charts.js``: the templates ``specs`` were filled from, by name, set as a
    global (a script, so charts draw from file:// too): each page holds only what its
    charts add to their template (``embedded``)."""
    names = sorted({spec["usermeta"]["template"] for spec in specs if "template" in spec.get("usermeta", {})})
    found = {name: _template_named(name) for name in names}
    return f"window.ATLAS_CHARTS = {json.dumps(found, separators=(',', ':'), sort_keys=True)};\n"


def embedded(spec: dict[str, Any]) -> dict[str, Any]:
    """What a page holds of a chart: its template's name (``t``), a JSON merge patch
    (RFC 7386) from the template to the chart without its data (``p``), and its rows as
    columns (``c``: one list per field), or as rows (``v``) where they differ in fields;
    the whole spec (``s``) for a chart without a template, or whose patch would need a
    null (which a merge patch reads as a removal)."""
    name = spec.get("usermeta", {}).get("template")
    if name not in _BUILT:
        return {"s": spec}
    template = _template_named(name)
    try:
        patch = _patch({k: v for k, v in template.items() if k != "data"},
                       {k: v for k, v in spec.items() if k not in ("data", "usermeta")})
    except _NeedsNull:
        return {"s": spec}
    rows = spec.get("data", {}).get("values", [])
    fields = list(rows[0]) if rows else []
    found: dict[str, Any] = {"t": name, "p": patch}
    if all(list(row) == fields for row in rows):
        found["c"] = {field_: [row[field_] for row in rows] for field_ in fields}
    else:
        found["v"] = rows
    return found


def _template_named(name: str) -> dict[str, Any]:
    build, params = _BUILT[name]
    return json.loads(_template(build, *params))


class _NeedsNull(Exception):
    """A chart sets a value to null, which a merge patch cannot say."""


def _patch(base: dict, target: dict) -> dict:
    """The JSON merge patch that turns ``base`` into ``target`` (both objects)."""
    patch: dict[str, Any] = {key: None for key in base if key not in target}  # None: remove
    for key, value in target.items():
        if key in base and base[key] == value:
            continue
        if key in base and isinstance(base[key], dict) and isinstance(value, dict):
            patch[key] = _patch(base[key], value)
        elif _has_null(value):
            raise _NeedsNull(key)
        else:
            patch[key] = value
    return patch


def _has_null(value: Any) -> bool:
    """A null where a merge patch would read it as a removal (arrays are set whole)."""
    return value is None or (isinstance(value, dict) and any(_has_null(v) for v in value.values()))
