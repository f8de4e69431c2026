"""The machine-readable index (``site/catalog.json``, each layer's units in its own
``units.json``) and the search box's index."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any, Callable

from atlas.render.model import Edge, Layer, SiteModel, Unit
from atlas.render.urls import relative_url

TUNING_NUMBERS = ("best_kind", "orientation_kind", "orientation_deg", "orientation_selectivity", "curve_vs_line",
                  "frequency_preference", "color_opponency", "center_surround")


def _edges(edges: list[Edge]) -> list[dict[str, Any]]:
    """Edges for the catalog, strongest (by magnitude) first."""
    return [{"layer": e.layer, "index": e.other.index, "weight": e.weight}
            for e in sorted(edges, key=lambda e: -abs(e.weight))]


UNITS = "units.json"  # a layer's units, in the layer's folder
# units.json holds a layer's units as rows of one list of fields (a thousand units need
# not each name forty keys), site paths relative to the layer's folder, each edge as
# [layer, index, weight], numbers to ``DIGITS`` significant digits; ``read_catalog``
# gives back the entries ``_catalog_unit`` made.
PATHS = ("url", "featurevis", "weights")
PATH_LISTS = ("examples", "negative_examples")
EDGE_LISTS = ("inputs", "outputs")
EDGE = ("layer", "index", "weight")
DIGITS = 6  # more than any page shows, in a third of the characters of a float32 read as a double


def _digits(value: Any) -> Any:
    """``value`` with each float in it to ``DIGITS`` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, list):
        return [_digits(v) for v in value]
    if isinstance(value, dict):
        return {k: _digits(v) for k, v in value.items()}
    return value


def units_file(layer: Layer) -> str:
    """The site path of a layer's units' catalog entries."""
    return f"{layer.url.rpartition('/')[0]}/{UNITS}"


def catalog_files(site: SiteModel) -> dict[str, str]:
    """``catalog.json`` (models, layers, families; each layer naming its ``units.json``)
    and every layer's ``units.json``, as site path -> compact JSON: a whole network's
    units in one file would pass GitHub Pages' 100 MB a file near 20,000 units."""
    files = {"catalog.json": _json(catalog(site))}
    for m in site.models:
        for layer in m.layers + m.dictionaries:
            path = units_file(layer)
            files[path] = _json(packed([_catalog_unit(u) for u in layer.units], path.rpartition("/")[0] + "/"))
    return files


def packed(units: list[dict[str, Any]], folder: str) -> dict[str, Any]:
    """A layer's catalog entries as ``units.json`` holds them (``folder``: the layer's)."""
    fields = list(dict.fromkeys(key for u in units for key in u))
    here = lambda path: path if path is None else relative_url(path, folder + UNITS)  # noqa: E731
    edge = lambda e: [e[k] for k in EDGE]  # noqa: E731
    return {"fields": fields, "units": [[_digits(_mapped(key, u.get(key), here, edge)) for key in fields]
                                         for u in units]}


def unpacked(found: dict[str, Any], folder: str) -> list[dict[str, Any]]:
    """``packed``'s entries back, paths from the site's root again."""
    site = lambda path: path if path is None else posixpath.normpath(folder + path)  # noqa: E731
    edge = lambda e: dict(zip(EDGE, e))  # noqa: E731
    return [{key: _mapped(key, v, site, edge) for key, v in zip(found["fields"], row)
             if not (key == "measures" and v is None)} for row in found["units"]]


def _mapped(key: str, value: Any, path: Callable[[str | None], str | None], edge: Callable[[Any], Any]) -> Any:
    """A unit's ``key`` with each site path in it through ``path`` and each edge through ``edge``."""
    if key in PATHS:
        return path(value)
    if key in PATH_LISTS:
        return [path(p) for p in value]
    if key in EDGE_LISTS:
        return [edge(e) for e in value]
    if key == "featurevis_variants":
        return {kind: {**v, "src": path(v["src"])} for kind, v in value.items()}
    return value


def _json(found: Any) -> str:
    return json.dumps(found, separators=(",", ":"))  # indented, it was twice the size


def read_catalog(site: Path) -> dict[str, Any]:
    """A built site's ``catalog.json`` with each layer's units read into it (``units``), as
    one document."""
    found = json.loads((Path(site) / "catalog.json").read_text(encoding="utf-8"))
    for m in found["models"]:
        for layer in m["layers"] + m["dictionaries"]:
            units = json.loads((Path(site) / layer["units_url"]).read_text(encoding="utf-8"))
            layer["units"] = unpacked(units, layer["units_url"].rpartition("/")[0] + "/")
    return found


def catalog(site: SiteModel) -> dict[str, Any]:
    """The machine-readable index of the atlas (``site/catalog.json``): its layers' units
    are in ``units_url`` (``catalog_files``)."""
    found = {"models": [{
        "name": m.name, "arch": m.arch, "weights": m.weights, "digest": m.digest, "url": m.url,
        "layers": [_catalog_layer(layer) for layer in m.layers],
        "dictionaries": [{**_catalog_layer(layer), "of": layer.dictionary["of"]} for layer in m.dictionaries],
        # The polysemanticity page's findings: per layer, and the features spread over mixed units.
        "polysemanticity": None if m.mixing is None else {"layers": m.mixing.layers, "spread": m.mixing.spread},
    } for m in site.models]}
    if site.universality:
        found["universality"] = {"margin": site.universality.margin, "family_agreement": site.universality.agreement}
    return found


def _catalog_layer(layer: Layer) -> dict[str, Any]:
    return {
        "name": layer.name, "url": layer.url, "shape": layer.shape,
        "units_url": units_file(layer), "unit_count": len(layer.units),
        "impossible_families": layer.impossible,
        "families": [{"symbol": f.symbol, "name": f.name, "kind": f.kind, "count": len(f.members),
                      "share": f.share, "url": f.url, "null": f.null} for f in layer.families],
        # What the labels were tested against: the null networks, and what their units show.
        "null": layer.null,
        "activation_atlas": None if layer.atlas is None else {
            "url": layer.atlas.url, "method": layer.atlas.method, "points": layer.atlas.points,
            "trustworthiness": layer.atlas.trustworthiness,
            "cells": [{"row": c.row, "column": c.column, "count": c.count, "src": c.src, "failed": c.failed,
                       "labels": c.labels, "units": [index for _, index, _ in c.units]} for c in layer.atlas.cells]},
    }


def _catalog_unit(u: Unit) -> dict[str, Any]:
    tuned = None if u.tuning is None or u.tuning.get("no_answer") else u.tuning  # measured, with an answer
    entry = {
        "index": u.index, "url": u.url,
        "featurevis": u.featurevis, "featurevis_activation": u.featurevis_activation,
        "featurevis_start": u.featurevis_start, "featurevis_random": u.featurevis_random,
        "featurevis_failed": u.featurevis_failed, "featurevis_objective": u.featurevis_objective,
        "featurevis_variants": {v.kind: {"src": v.src, "activation": v.activation, "failed": v.failed}
                                for v in u.variants},
        "dead": u.dead,
        "dead_reason": u.dead_reason if u.dead else None,
        "weights": u.weights,
        "weights_no_answer": u.weights_no_answer,
        "examples": [e.picture.ref for e in u.examples], "duplicates": u.duplicates,
        "example_values": [e.value for e in u.examples],
        "activation_quantiles": u.activation_quantiles,
        "fraction_active": u.fraction_active,
        "unrectified": u.unrectified,
        "negative_examples": [e.picture.ref for e in u.negative_examples],
        "tuning": None if tuned is None else {k: tuned[k] for k in TUNING_NUMBERS},
        "tuning_no_answer": (u.tuning or {}).get("no_answer"),
        "circuit": u.circuit,  # from which layer, the linear path's rules, or why there is no answer
        "inputs": _edges(u.inputs + u.inhibitory),
        "outputs": _edges(u.outputs + u.outputs_inhibitory),
        "matches": [{"model": m.model, "layer": m.layer, "index": m.unit.index, "score": m.score}
                    for m in u.matches if m.above_chance],
        "polysemanticity": u.polysemanticity.score if u.polysemanticity else None,
        "polysemanticity_no_answer": u.polysemanticity_no_answer,
        "polysemanticity_evidence": None if u.polysemanticity is None else {
            key: getattr(u.polysemanticity, key)
            for key in ("separation", "balance", "purity", "diversity", "explained", "null")},
        "polysemanticity_clusters": None if u.polysemanticity is None else [
            {"size": m.size, "things": m.things, "labels": m.labels} for m in u.polysemanticity.meanings],
        "family": u.family.name if u.family else None,
        "family_symbol": u.family.symbol if u.family else None,
        "family_confidence": u.family_confidence,
        "family_second": u.family_second["symbol"] if u.family_second else None,
        "family_second_score": u.family_second["score"] if u.family_second else None,
        "family_borderline": bool(u.family_second and u.family_second["borderline"]),
        # The label against the null: the family tested, its statistic, the null's summary, p and q.
        "family_test": u.family_test,
        "orientation_deg": tuned["orientation_deg"] if tuned else None,
        "preferred": None if tuned is None else {
            kind: {k: v for k, v in p.items() if k not in ("index", "src")}
            for kind, p in tuned["preferred"].items()},
    }
    if u.measures:  # only where a per-unit stage made some (the catalog of an atlas without is unchanged)
        entry["measures"] = {m["stage"]: m["values"] for m in u.measures}
    return entry


def search_index(site: SiteModel) -> list[list[str]]:
    """What the search box searches: ``[kind, text, site path]`` per model, layer, family
    and unit; a unit's text names its family and its matches in other models."""
    entries = []
    for m in site.models:
        entries.append(["model", f"{m.name} · {m.arch}", m.url])
        for layer in m.layers:
            entries.append(["layer", f"{m.name} · {layer.name} · {layer.channels} units", layer.url])
            for f in layer.families:
                text = f"{m.name} · {layer.name} · {f.symbol} {f.name} · {len(f.members)} units"
                entries.append(["family", text, f.url])
            for u in layer.units:
                text = f"{m.name} · {layer.name} · unit {u.index}"
                if u.family:
                    text += f" · {u.family.symbol} {u.family.name}"
                found = [f"{x.model} {x.layer} {x.unit.index}" for x in u.matches if x.above_chance]
                if found:
                    text += " · also in " + ", ".join(found)
                entries.append(["unit", text, u.url])
    for m in site.models:
        if m.polysemanticity_url:
            entries.append(["page", f"{m.name} · polysemanticity · superposition · mixed units", m.polysemanticity_url])
        for layer in m.dictionaries:
            entries.append(["layer", f"{m.name} · {layer.name} · {len(layer.units)} features · sparse autoencoder",
                            layer.url])
    if site.universality:
        entries.append(["page", "universality · matched units across models · CKA", site.universality.url])
    if site.superposition:
        entries.append(["page", "toy models of superposition · sparsity · phase change", site.superposition_url])
    return entries
