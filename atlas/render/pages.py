"""Page models: the sweep plan and its artifacts as plain data for templates.

``build_site`` reads the plan and each artifact's ``data.json`` once and returns a
``SiteModel``: every model, layer and unit with the site-relative paths of its
images, plus the list of files to copy from the store into the site. Templates
and ``catalog.json`` are both made from it, so they always agree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atlas.names import slug
from atlas.store import Store


@dataclass
class Example:
    src: str  # site-relative path of the whole image's thumbnail
    value: float
    name: str  # the image's name in the dataset
    label: str
    x: float  # where the unit fired, as a fraction of the image width
    y: float
    crop: str | None = None  # site-relative path of the receptive-field crop (top examples)


@dataclass
class Variant:
    """A feature visualization other than the channel one (neuron, negative, diversity)."""

    kind: str  # neuron | negative | diversity-0 ...
    src: str
    activation: float
    failed: bool = False  # the image did not raise its objective clearly


@dataclass
class Edge:
    """A weight between two units: ``other`` is the unit at the other end."""

    other: "Unit"
    layer: str  # the other unit's layer
    weight: float  # the strongest weight of the map (the most negative, for inhibition)
    map: np.ndarray  # the expanded weight's spatial map (float32, height x width)


@dataclass
class Match:
    """A unit's best counterpart in another model (universality)."""

    model: str
    unit: "Unit"
    layer: str
    score: float  # correlation of the two units' activations on the same images
    chance: float  # the unit's best correlation with the other architecture with random weights
    buddy: bool  # each is the other's best match
    above_chance: bool


NAMED = 0.4  # a cluster is named after the thing under most of its examples when that is at least this share


@dataclass
class Meaning:
    """One cluster of a unit's strong examples."""

    size: int  # examples in it (of the unit's strongest, ``Polysemanticity.top``)
    examples: list[Example]  # the strongest few, cropped
    things: list[list[Any]]  # [[what is under the place it fired, share]], most common first
    labels: list[list[Any]]  # [[image label, share]]

    @property
    def name(self) -> str | None:
        """What most of its examples are on, if one thing is (at least NAMED of them)."""
        return self.things[0][0] if self.things and self.things[0][1] >= NAMED else None


@dataclass
class Polysemanticity:
    score: float  # higher = more mixed (see atlas.stages.polysemantic)
    separation: float
    balance: float
    purity: float  # share of the strong examples on the most common ground-truth object
    meanings: list[Meaning]
    diversity: float | None = None  # disagreement of the diversity visualizations, when made
    top: int = 0
    explained: float | None = None  # variance the split explains; and the same with channels shuffled
    null: float | None = None

    @property
    def distinct(self) -> bool:
        """Each cluster is mostly one thing, and not the same one (by the ground truth or labels)."""
        names = [m.name for m in self.meanings]
        return len(names) == 2 and None not in names and names[0] != names[1]


@dataclass
class Unit:
    index: int
    url: str
    featurevis: str | None = None
    featurevis_thumb: str | None = None
    featurevis_activation: float | None = None
    featurevis_start: float | None = None  # the same objective on the starting image
    featurevis_random: float | None = None  # ... and on the best of a few random images
    featurevis_failed: bool = False  # the image did not raise its objective clearly
    featurevis_objective: str | None = None  # what the channel objective maximised
    dead: bool = False  # never active on the dataset
    dead_reason: str = "never active on the dataset"  # why its numbers are noise
    variants: list[Variant] = field(default_factory=list)
    weights: str | None = None
    examples: list[Example] = field(default_factory=list)  # strongest first
    quantiles: list[list[Example]] = field(default_factory=list)  # tenths of the range, top first
    activation_quantiles: list[float] = field(default_factory=list)  # 0%, 10%, ..., 100%
    histogram: dict[str, list[float]] | None = None
    fraction_active: float | None = None
    negative_examples: list[Example] = field(default_factory=list)  # an unrectified layer's most negative
    unrectified: bool = False  # its layer is signed and no activation follows: no "active", two ends
    tuning: dict[str, Any] | None = None  # summary numbers, preferred stimuli, orientation curves
    takeover: list[dict[str, Any]] = field(default_factory=list)  # joint tuning: units owning each angle
    prev_url: str | None = None
    next_url: str | None = None
    family: "Family | None" = None
    family_confidence: float | None = None
    # The best-scoring named family other than its own, its score, and whether the two are close.
    family_second: dict[str, Any] | None = None
    # Circuits: strongest inputs from the swept layer before, uses in the one after.
    inputs: list[Edge] = field(default_factory=list)
    inhibitory: list[Edge] = field(default_factory=list)
    outputs: list[Edge] = field(default_factory=list)
    outputs_inhibitory: list[Edge] = field(default_factory=list)
    edit: dict[str, Any] | None = None  # the drop when its top inputs are removed, and for random ones
    union: list["Unit"] = field(default_factory=list)  # two mirror-image inputs this unit unions, if it does
    matches: list[Match] = field(default_factory=list)  # best counterpart per other model, best first
    polysemanticity: Polysemanticity | None = None

    @property
    def circuit_url(self) -> str | None:
        if not (self.inputs or self.inhibitory or self.outputs or self.outputs_inhibitory):
            return None
        folder, _, name = self.url.rpartition("/")
        return f"{folder}/circuits/{name}"


@dataclass
class Family:
    """A family in one layer: a cell of the periodic table, with its own page."""

    symbol: str
    name: str
    layer: str
    kind: str  # named | discovered
    description: str
    url: str
    members: list[Unit]  # in the family's order (orientation, hue or confidence)
    share: float  # of the layer's swept units
    representative: Unit
    order_by: str
    evidence: list[dict[str, Any]]  # the seven arguments in order: {argument, verdict, value, rule}
    confidence: float | None = None  # the members' median confidence
    borderline: int = 0  # members whose runner-up family scores within a margin of their own
    handwritten_scatter: dict[str, list[float]] | None = None  # the representative's and its detector's responses
    # Grids of weights from the previous layer's families: {source, source_name, strength, equivariance,
    # rows (Units of this family), columns (Units of the source family), maps}.
    circuits_from: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Layer:
    name: str
    url: str
    shape: list[int]
    units: list[Unit]
    families: list[Family] = field(default_factory=list)
    prev_url: str | None = None  # the model's previous and next swept layers
    next_url: str | None = None
    dictionary: dict[str, Any] | None = None  # a dictionary's features: its training numbers, {"of": layer}
    # Named families this layer cannot show (a first layer's linear filters, or a field too small for them).
    impossible: list[str] = field(default_factory=list)

    def family(self, symbol: str) -> Family | None:
        return next((f for f in self.families if f.symbol == symbol), None)

    @property
    def discovered(self) -> list[Family]:
        return [f for f in self.families if f.kind == "discovered"]

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass
class Model:
    name: str
    slug: str
    url: str
    arch: str
    weights: str
    digest: str
    input_size: int
    layers: list[Layer]
    criteria: list[dict[str, Any]] = field(default_factory=list)  # the named families, as the sweep defined them
    dictionaries: list[Layer] = field(default_factory=list)  # sparse dictionaries' features, as pseudo-layers

    @property
    def polysemanticity_url(self) -> str | None:
        if not any(u.polysemanticity for layer in self.layers for u in layer.units):
            return None
        return f"models/{self.slug}/polysemanticity.html"

    @property
    def families_url(self) -> str:
        return f"models/{self.slug}/families.html"

    @property
    def columns(self) -> list[dict[str, Any]]:
        """The periodic table's named-family columns: those found in some layer, in definition order."""
        found = {f.symbol for layer in self.layers for f in layer.families}
        return [c for c in self.criteria if c["symbol"] in found]


@dataclass
class Universality:
    """What the universality page shows: matched sets of units across models, and the
    layer-by-layer CKA of every pair of models."""

    url: str
    margin: float  # a match counts when it beats its chance level by this much
    sets: list[dict[str, Any]]  # {"units": [(model name, layer name, Unit)], "score"}
    cka: list[dict[str, Any]]  # {"a", "b", "layers_a", "layers_b", "trained", "random"}
    # Named families x models: {"symbol", "name", "cells": [(Model, [Family per layer it appears in])], "models"}
    families: list[dict[str, Any]] = field(default_factory=list)
    # Best buddies above chance whose units both have a named family: how often it is the same one,
    # against how often it would be if families were drawn independently: {"pairs", "same", "expected"}.
    agreement: dict[str, Any] | None = None


@dataclass
class SiteModel:
    models: list[Model]
    data: dict[str, Any] | None
    copies: dict[str, Path | str] = field(default_factory=dict)  # site path -> store file
    universality: Universality | None = None
    superposition: dict[str, Any] | None = None  # the toy models' results, when trained

    @property
    def superposition_url(self) -> str | None:
        return "superposition.html" if self.superposition else None

    @property
    def symbols(self) -> list[str]:
        """Named families found in any model, in definition order: the combined table's columns."""
        return list(dict.fromkeys(c["symbol"] for m in self.models for c in m.columns))


def build_site(plan: dict[str, Any], store: Store) -> SiteModel:
    site = SiteModel(models=[], data=plan.get("data"))
    for entry in plan["models"]:
        base = f"models/{slug(entry['name'])}"
        layers = [_layer(layer, f"{base}/{slug(layer['name'])}", store, site.copies, site.data)
                  for layer in entry["layers"]]
        criteria = next((_read(store.path("families", layer["artifacts"]["families"][0]))["criteria"]
                         for layer in entry["layers"] if layer["artifacts"].get("families")), [])
        by_name = {layer.name: layer for layer in layers}
        for before, after in zip(layers, layers[1:]):
            before.next_url, after.prev_url = after.url, before.url
        for layer in entry["layers"]:
            for key in layer["artifacts"].get("circuits", []):
                _circuits(store.path("circuits", key), by_name)
        with_families = [(layer, store.path("families", layer["artifacts"]["families"][0]))
                         for layer in entry["layers"] if layer["artifacts"].get("families")]
        for (before, _), (after, folder) in zip(with_families, with_families[1:]):
            _family_grids(_read(folder), by_name[before["name"]], by_name[after["name"]])
        dictionaries = []
        for derived in entry.get("dictionaries", []):
            layer = _layer(derived, f"{base}/{slug(derived['name'])}", store, site.copies, site.data)
            layer.dictionary = {"of": derived["of"], "url": by_name[derived["of"]].url,
                                **_read(store.path("dictionary", derived["artifacts"]["dictionary"][0]))}
            dictionaries.append(layer)
        site.models.append(Model(
            name=entry["name"], slug=slug(entry["name"]), url=f"{base}/index.html",
            arch=entry["arch"], weights=entry["weights"], digest=entry["digest"],
            input_size=entry["input_size"], layers=layers, criteria=criteria, dictionaries=dictionaries,
        ))
    if plan.get("superposition"):
        site.superposition = _read(store.path("superposition", plan["superposition"]))
    if plan.get("universality"):
        site.universality = _universality(store.path("universality", plan["universality"]["summary"]), site)
    return site


def _universality(folder: Path, site: SiteModel) -> Universality:
    """Point every unit at its matches in the other models; gather the matched sets."""
    found = json.loads((folder / "summary.json").read_text())
    units = {(m.name, layer.name, u.index): u for m in site.models for layer in m.layers for u in layer.units}
    for model, layers in found["matches"].items():
        for layer, by_unit in layers.items():
            for index, matches in by_unit.items():
                units[model, layer, int(index)].matches = [
                    Match(m["model"], units[m["model"], m["layer"], m["index"]], m["layer"], m["score"],
                          m["chance"], m["buddy"], m["above_chance"]) for m in matches]
    sets = [{"units": [(u["model"], u["layer"], units[u["model"], u["layer"], u["index"]]) for u in s["units"]],
             "score": s["score"]} for s in found["sets"]]
    return Universality(url="universality.html", margin=found["margin"], sets=sets, cka=found["cka"],
                        families=_family_table(site), agreement=_family_agreement(site))


def _family_table(site: SiteModel) -> list[dict[str, Any]]:
    """Which named families appear in which model, and in which of its layers."""
    rows = []
    for symbol in site.symbols:
        if symbol == "Ot":
            continue
        cells = [(m, [f for layer in m.layers if (f := layer.family(symbol))]) for m in site.models]
        name = next(f.name for _, families in cells for f in families)
        rows.append({"symbol": symbol, "name": name, "cells": cells,
                     "models": sum(1 for _, families in cells if families)})
    return sorted(rows, key=lambda row: -row["models"])


def _family_agreement(site: SiteModel) -> dict[str, Any] | None:
    """Do best buddies share their family? Counted over pairs of units that both have a named
    family (not "other"), against the agreement expected if families were independent."""
    def named(unit: Unit) -> str | None:
        family = unit.family
        return family.symbol if family and family.kind == "named" and family.symbol != "Ot" else None

    pairs = {tuple(sorted(((a.url, named(a)), (m.unit.url, named(m.unit)))))
             for model in site.models for layer in model.layers for a in layer.units
             for m in a.matches if m.buddy and m.above_chance and named(a) and named(m.unit)}
    if not pairs:
        return None
    left = [a[1] for a, _ in pairs]
    right = [b[1] for _, b in pairs]
    same = sum(1 for a, b in pairs if a[1] == b[1])
    expected = sum(left.count(s) * right.count(s) for s in set(left)) / len(pairs)
    return {"pairs": len(pairs), "same": same, "expected": round(expected, 1)}


def _layer(entry: dict[str, Any], base: str, store: Store, copies: dict[str, Path | str],
           data: dict[str, Any] | None) -> Layer:
    units = {i: Unit(index=i, url=f"{base}/{i}.html") for i in entry["units"]}
    artifacts = entry["artifacts"]
    for key in artifacts.get("featurevis", []):
        folder = store.path("featurevis", key)
        found = _read(folder)
        for unit, values in found["activation"].items():
            u = units[int(unit)]
            failed = found["failed"].get(unit, [])
            for kind, value in values.items():
                if kind == "channel":
                    u.featurevis = _copy(copies, f"{base}/img/fv-{unit}.webp", folder / f"{unit}.webp")
                    u.featurevis_thumb = _copy(copies, f"{base}/img/fv-{unit}-thumb.webp",
                                               folder / f"{unit}-thumb.webp")
                    u.featurevis_activation = value
                    u.featurevis_start = found["start"][unit][kind]
                    u.featurevis_random = found["random"][unit][kind]
                    u.featurevis_failed = kind in failed
                    u.featurevis_objective = found["response"]
                else:
                    src = _copy(copies, f"{base}/img/fv-{unit}-{kind}.webp", folder / f"{unit}-{kind}.webp")
                    u.variants.append(Variant(kind, src, value, kind in failed))
    for key in artifacts.get("weights", []):
        folder = store.path("weights", key)
        for unit in _read(folder)["units"]:
            units[unit].weights = _copy(copies, f"{base}/img/w-{unit}.webp", folder / f"{unit}.webp")
    thumbnails = store.path("thumbnails", data["thumbnails"]) if data and data.get("thumbnails") else None
    for key in artifacts.get("examples", []):
        folder = store.path("examples", key)
        found = _read(folder)
        for unit, summary in found["units"].items():
            u = units[int(unit)]
            u.dead = summary["dead"]
            if not u.dead:  # a dead unit's "strongest" images are ranked on zeros: none are shown
                u.examples = [_example(ex, found, folder, base, thumbnails, copies) for ex in summary["top"]]
                u.quantiles = [[_example(ex, found, folder, base, thumbnails, copies) for ex in group]
                               for group in summary["quantiles"]]
            u.activation_quantiles = summary["activation_quantiles"]
            u.histogram = summary["histogram"]
            u.fraction_active = summary["fraction_active"]
            u.unrectified = found.get("unrectified", False)
            u.negative_examples = [_example(ex, found, folder, base, thumbnails, copies)
                                   for ex in summary.get("bottom", [])]
    for key in artifacts.get("tuning", []):
        folder = store.path("tuning", key)
        for unit, summary in _read(folder)["units"].items():
            for preferred in summary["preferred"].values():
                index = preferred["index"]
                preferred["src"] = _copy(copies, f"{base}/img/stimulus-{index}.webp", folder / f"s-{index}.webp")
            units[int(unit)].tuning = summary
    for key in artifacts.get("polysemanticity", []):
        folder = store.path("polysemanticity", key)
        found = _read(folder)
        for unit, scored in found["units"].items():
            if scored["score"] is None:
                continue  # silent: its strongest responses are all equal (a channel that never fires)
            units[int(unit)].polysemanticity = Polysemanticity(
                score=scored["score"], separation=scored["separation"], balance=scored["balance"],
                purity=scored["purity"], diversity=scored.get("diversity"), top=found["top"],
                explained=scored.get("explained"), null=scored.get("null"),
                meanings=[Meaning(c["size"], [_example(ex, found, folder, base, thumbnails, copies)
                                              for ex in c["examples"] if "crop" in ex], c["things"], c["labels"])
                          for c in scored["clusters"]])
    for u in units.values():  # joint tuning: which units take over as the examples turn
        joint = (u.tuning or {}).get("joint")
        if joint:
            owners: dict[int, list[int]] = {}
            for angle, owner in zip(joint["angles"], joint["takeover"]):
                owners.setdefault(owner, []).append(angle)
            u.takeover = [{"index": owner, "url": units[owner].url, "thumb": units[owner].featurevis_thumb,
                           "angles": angles} for owner, angles in owners.items() if owner in units]
    ordered = list(units.values())
    for before, after in zip(ordered, ordered[1:]):
        before.next_url, after.prev_url = after.url, before.url
    found = [_read(store.path("families", key)) for key in artifacts.get("families", [])]
    return Layer(name=entry["name"], url=f"{base}/index.html", shape=entry["shape"], units=ordered,
                 families=[f for data in found for f in _families(data, entry["name"], units, base)],
                 impossible=[c["name"] for data in found if "possible" in data for c in data["criteria"]
                             if c["symbol"] not in data["possible"] and c["symbol"] != "Ot"])


def _families(found: dict[str, Any], layer: str, units: dict[int, Unit], base: str) -> list[Family]:
    """A families artifact's families, each unit pointed at its own."""
    for index, record in found["units"].items():
        if record.get("dead") and int(index) in units:  # numbers at noise: in no family
            units[int(index)].dead, units[int(index)].dead_reason = True, record["dead"]
    families = []
    for f in found["families"]:
        family = Family(
            symbol=f["symbol"], name=f["name"], layer=layer, kind=f["kind"], description=f["description"],
            url=f"{base}/families/{f['symbol']}.html", members=[units[u] for u in f["members"]],
            share=f["share"], representative=units[f["representative"]], order_by=f["order_by"],
            evidence=f["evidence"], handwritten_scatter=f.get("handwritten_scatter"))
        confidences = [found["units"][str(u.index)]["confidence"] for u in family.members]
        family.confidence = float(np.median(confidences)) if confidences else None
        family.borderline = sum(bool(found["units"][str(u.index)].get("borderline")) for u in family.members)
        for u in family.members:
            record = found["units"][str(u.index)]
            u.family, u.family_confidence = family, record["confidence"]
            if record.get("second"):
                second = next((c for c in found["criteria"] if c["symbol"] == record["second"]), None)
                u.family_second = {"symbol": record["second"], "name": second["name"] if second else record["second"],
                                   "score": record["second_score"], "borderline": record.get("borderline", False)}
        families.append(family)
    return families


def _example(ex: dict[str, Any], found: dict[str, Any], folder: Path, base: str, thumbnails: Path,
             copies: dict[str, Path | str]) -> Example:
    """One example of an examples artifact (``found``), its images queued for copying."""
    image = found["images"][str(ex["image"])]
    height, width = found["grid"]
    # Sources as strings: pathlib's joins were a third of reading the site (125k examples).
    src = _copy(copies, f"data/img-{ex['image']}.webp", f"{thumbnails}/{ex['image']}.webp")
    crop = _copy(copies, f"{base}/img/{ex['crop']}", f"{folder}/{ex['crop']}") if "crop" in ex else None
    return Example(src=src, value=ex["value"], name=image["name"], label=image["label"],
                   x=(ex["x"] + 0.5) / width, y=(ex["y"] + 0.5) / height, crop=crop)


def _circuits(folder: Path, layers: dict[str, Layer]) -> None:
    """Attach a circuits artifact's edges to the units at both ends."""
    found = _read(folder)
    if not found["connected"] or found["source"] not in layers:
        return
    source, target = layers[found["source"]], layers[found["target"]]
    sources = {u.index: u for u in source.units}
    targets = {u.index: u for u in target.units}
    weights = np.load(folder / "weights.npy").astype(np.float32)
    row = {unit: i for i, unit in enumerate(found["units_order"])}

    def edge(other: Unit | None, layer: Layer, weight: float, t: int, s: int) -> Edge | None:
        if other is None:
            return None  # a source channel that was not swept has no page to link to
        return Edge(other, layer.name, weight, weights[row[t], s])

    for t, d in found["units"].items():
        unit = targets[int(t)]
        unit.inputs = [e for e in (edge(sources.get(i["index"]), source, i["weight"], int(t), i["index"])
                                   for i in d["inputs"]) if e]
        unit.inhibitory = [e for e in (edge(sources.get(i["index"]), source, i["weight"], int(t), i["index"])
                                       for i in d["inhibitory"]) if e]
        unit.edit = d.get("edit")
    for s, d in found["outputs"].items():
        unit = sources.get(int(s))
        if unit is not None:
            unit.outputs = [edge(targets[o["index"]], target, o["weight"], o["index"], int(s)) for o in d["excitatory"]]
            unit.outputs_inhibitory = [edge(targets[o["index"]], target, o["weight"], o["index"], int(s))
                                       for o in d["inhibitory"]]


def _family_grids(found: dict[str, Any], before: Layer, after: Layer) -> None:
    """Attach the weights between the previous layer's families and this layer's, and the unions."""
    sources = {u.index: u for u in before.units}
    targets = {u.index: u for u in after.units}
    for grid in found.get("circuits_from", []):
        family = after.family(grid["target"])
        family.circuits_from.append({**grid, "rows": [targets[u] for u in grid["rows"]],
                                     "columns": [sources[u] for u in grid["columns"]],
                                     "source_url": before.family(grid["source"]).url})
    for union in found.get("unions", []):
        targets[union["unit"]].union = [sources[u] for u in union["inputs"]]


def _read(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "data.json").read_text())


def _copy(copies: dict[str, Path | str], site_path: str, source: Path | str) -> str:
    copies[site_path] = source
    return site_path


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


TUNING_NUMBERS = ("best_kind", "orientation_kind", "orientation_deg", "orientation_selectivity", "curve_vs_line",
                  "frequency_preference", "color_opponency", "center_surround")


def _edges(edges: list[Edge]) -> list[dict[str, Any]]:
    """Edges for the catalog, strongest (by magnitude) first."""
    return [{"layer": e.layer, "index": e.other.index, "weight": e.weight}
            for e in sorted(edges, key=lambda e: -abs(e.weight))]


def catalog(site: SiteModel) -> dict[str, Any]:
    """The machine-readable index of the atlas (``site/catalog.json``)."""
    return {"models": [{
        "name": m.name, "arch": m.arch, "weights": m.weights, "digest": m.digest, "url": m.url,
        "layers": [_catalog_layer(layer) for layer in m.layers],
        "dictionaries": [{**_catalog_layer(layer), "of": layer.dictionary["of"]} for layer in m.dictionaries],
    } for m in site.models]}


def _catalog_layer(layer: Layer) -> dict[str, Any]:
    return {
        "name": layer.name, "url": layer.url, "shape": layer.shape,
        "units": [{
            "index": u.index, "url": u.url,
            "featurevis": u.featurevis, "featurevis_activation": u.featurevis_activation,
            "featurevis_start": u.featurevis_start, "featurevis_random": u.featurevis_random,
            "featurevis_failed": u.featurevis_failed, "featurevis_objective": u.featurevis_objective,
            "featurevis_variants": {v.kind: {"src": v.src, "activation": v.activation, "failed": v.failed}
                                    for v in u.variants},
            "dead": u.dead,
            "dead_reason": u.dead_reason if u.dead else None,
            "weights": u.weights,
            "examples": [e.crop or e.src for e in u.examples],
            "example_values": [e.value for e in u.examples],
            "activation_quantiles": u.activation_quantiles,
            "fraction_active": u.fraction_active,
            "unrectified": u.unrectified,
            "negative_examples": [e.crop or e.src for e in u.negative_examples],
            "tuning": None if u.tuning is None else {k: u.tuning[k] for k in TUNING_NUMBERS},
            "inputs": _edges(u.inputs + u.inhibitory),
            "outputs": _edges(u.outputs + u.outputs_inhibitory),
            "matches": [{"model": m.model, "layer": m.layer, "index": m.unit.index, "score": m.score}
                        for m in u.matches if m.above_chance],
            "polysemanticity": u.polysemanticity.score if u.polysemanticity else None,
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
            "orientation_deg": u.tuning["orientation_deg"] if u.tuning else None,
            "preferred": None if u.tuning is None else {
                kind: {k: v for k, v in p.items() if k not in ("index", "src")}
                for kind, p in u.tuning["preferred"].items()},
        } for u in layer.units],
        "impossible_families": layer.impossible,
        "families": [{"symbol": f.symbol, "name": f.name, "kind": f.kind, "count": len(f.members),
                      "share": f.share, "url": f.url} for f in layer.families],
    }


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
