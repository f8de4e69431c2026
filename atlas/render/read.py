"""From the store to page models: ``build_site`` reads the plan and each artifact's
record (``atlas.artifacts``) once, and lists the files to copy into the site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atlas import artifacts as records
from atlas import registry
from atlas.artifacts import OTHER, LayerEntry, Plan
from atlas.images import SITE_QUALITY, THUMB_QUALITY
from atlas.names import slug
from atlas.registry import PRIMARY
from atlas.render.model import (ActivationAtlas, AtlasCell, Edge, Example, Family, Layer, Match, Meaning, Model,
                                Picture, Polysemanticity, SiteModel, Sprite, Unit, Universality, Variant)
from atlas.render.urls import dataset_image, unit_folder
from atlas.store import Store


def build_site(plan: Plan, store: Store) -> SiteModel:
    site = SiteModel(models=[], data=plan.data)
    thumbnails = str(store.path(records.THUMBNAILS, plan.data["thumbnails"])) \
        if plan.data and plan.data.get("thumbnails") else None
    for entry in plan.models:
        base = f"models/{slug(entry.name)}"
        reader = _Reader(store, site.copies, site.recoded, site.sprites, site.images, thumbnails)
        layers = [reader.layer(layer, f"{base}/{slug(layer.name)}") for layer in entry.layers]
        with_families = [(layer, store.read(records.Families, layer.key("families")))
                         for layer in entry.layers if layer.key("families")]
        criteria = with_families[0][1].criteria if with_families else []
        by_name = {layer.name: layer for layer in layers}
        for before, after in zip(layers, layers[1:]):
            before.next_url, after.prev_url = after.url, before.url
        for layer in entry.layers:
            for key in layer.keys("circuits"):
                _circuits(store, key, by_name)
        for (before, _), (after, found) in zip(with_families, with_families[1:]):
            _family_grids(found, by_name[before.name], by_name[after.name])
        dictionaries = []
        for derived in entry.dictionaries:
            layer = reader.layer(derived, f"{base}/{slug(derived.name)}")
            layer.dictionary = {"of": derived.of, "url": by_name[derived.of].url,
                                **store.read(records.Dictionary, derived.key("dictionary")).json()}
            dictionaries.append(layer)
        site.models.append(Model(
            name=entry.name, slug=slug(entry.name), url=f"{base}/index.html",
            arch=entry.arch, weights=entry.weights, digest=entry.digest,
            input_size=entry.input_size, layers=layers, criteria=criteria, dictionaries=dictionaries,
            mixing=store.read(records.MixingSummary, entry.key("polysemanticity"))
            if entry.key("polysemanticity") else None,
        ))
    if "superposition" in plan.across:
        site.superposition = store.read(records.Superposition, plan.across["superposition"]).json()
    if "universality" in plan.across:
        site.universality = _universality(
            store.read(records.UniversalitySummary, plan.across["universality"]["summary"]), site)
    return site


def _universality(summary: records.UniversalitySummary, site: SiteModel) -> Universality:
    """Point every unit at its matches in the other models; gather the matched sets."""
    found = summary.json()
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
                        families=_family_table(site), agreement=summary.agreement)


def _family_table(site: SiteModel) -> list[dict[str, Any]]:
    """Which named families appear in which model, and in which of its layers."""
    rows = []
    for symbol in site.symbols:
        if symbol == OTHER:
            continue
        cells = [(m, [f for layer in m.layers if (f := layer.family(symbol))]) for m in site.models]
        name = next(f.name for _, families in cells for f in families)
        rows.append({"symbol": symbol, "name": name, "cells": cells,
                     "models": sum(1 for _, families in cells if families)})
    return sorted(rows, key=lambda row: -row["models"])


class _Reader:
    """Reads one model's layers: each stage's records onto the layer's units, the images
    they show queued in ``copies`` (site path -> store file), ``recoded`` (site path ->
    store file and the site's quality) and ``sprites`` (a unit's crops)."""

    def __init__(self, store: Store, copies: dict[str, Path | str], recoded: dict[str, tuple[Path | str, int]],
                 sprites: dict[str, Sprite], images: dict[int, list[str]], thumbnails: str | None):
        self.store, self.copies, self.recoded, self.sprites = store, copies, recoded, sprites
        self.images, self.thumbnails = images, thumbnails

    def layer(self, entry: LayerEntry, base: str) -> Layer:
        units = {i: Unit(index=i, url=f"{unit_folder(base, i)}/{i}.html") for i in entry.units}
        readers = {"featurevis": self.featurevis, "weights": self.weights, "examples": self.examples,
                   "tuning": self.tuning, "polysemanticity": self.polysemanticity}
        for stage, read in readers.items():
            for key in entry.keys(stage):
                read(key, units, base)
        for stage in registry.STAGES:
            if stage.measures:
                for key in entry.keys(stage.name):
                    self.measures(stage.name, key, units)
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
        found = [self.store.read(records.Families, key) for key in entry.keys("families")]
        return Layer(name=entry.name, url=f"{base}/index.html", shape=entry.shape, units=ordered,
                     families=[f for data in found for f in _families(data, entry.name, units, base)],
                     impossible=[c["name"] for data in found if data.possible is not None for c in data.criteria
                                 if c["symbol"] not in data.possible and c["symbol"] != OTHER],
                     atlas=self.atlas(entry.key("atlas"), units, base) if entry.key("atlas") else None,
                     null=next(({k: v for k, v in data.null.items() if k != "distributions"}
                                for data in found if data.null), None))

    def atlas(self, key: str, units: dict[int, Unit], base: str) -> ActivationAtlas:
        folder = self.store.path(records.ActivationAtlas.STAGE, key)
        found = records.ActivationAtlas.read(folder)

        cells = []
        for c in found.cells:
            name = records.ActivationAtlas.image(c["row"], c["column"])
            cells.append(AtlasCell(
                row=c["row"], column=c["column"], count=c["count"], failed=c["failed"], labels=c["labels"],
                src=self._copy(f"{base}/atlas/{name}", f"{folder}/{name}"),
                units=[(units.get(u), u, strength) for u, strength in c["units"]],
                images=[(self.dataset_thumbnail(i), found.images[str(i)]["name"]) for i in c["examples"]]
                if self.thumbnails else []))
        return ActivationAtlas(url=f"{base}/atlas.html", method=found.method, grid=found.grid, points=found.points,
                               sampled=found.sampled, cells=cells, seconds=found.seconds,
                               trustworthiness=found.trustworthiness)

    def dataset_thumbnail(self, image: int) -> str:
        """The site path of a dataset image's thumbnail, queued for copying."""
        # Sources as strings: pathlib's joins were a third of reading the site (125k examples).
        return self._copy(dataset_image(image), f"{self.thumbnails}/{records.thumbnail(image)}")

    def _copy(self, site_path: str, source: Path | str) -> str:
        self.copies[site_path] = source
        return site_path

    def _recode(self, site_path: str, source: Path | str, quality: int = SITE_QUALITY) -> str:
        """An image of the store made in a stage's quality (feature visualizations, stimuli),
        encoded for the site at ``quality`` (``images.recode``) as the pages render."""
        self.recoded[site_path] = (source, quality)
        return site_path

    def featurevis(self, key: str, units: dict[int, Unit], base: str) -> None:
        folder = self.store.path(records.Featurevis.STAGE, key)
        found = records.Featurevis.read(folder)
        for unit, values in found.activation.items():
            u, here = units[int(unit)], unit_folder(base, int(unit))
            failed = found.failed.get(unit, [])
            for kind, value in values.items():
                image = self._recode(f"{here}/img/fv-{records.Featurevis.image(unit, kind)}",
                                     folder / records.Featurevis.image(unit, kind))
                if kind == PRIMARY:
                    u.featurevis = image
                    u.featurevis_thumb = self._recode(f"{here}/img/fv-{records.Featurevis.thumb(unit)}",
                                                      folder / records.Featurevis.thumb(unit), THUMB_QUALITY)
                    u.featurevis_activation = value
                    u.featurevis_start = found.start[unit][kind]
                    u.featurevis_random = found.random[unit][kind]
                    u.featurevis_failed = kind in failed
                    u.featurevis_objective = found.response
                else:
                    u.variants.append(Variant(kind, image, value, kind in failed))

    def weights(self, key: str, units: dict[int, Unit], base: str) -> None:
        folder = self.store.path(records.Weights.STAGE, key)
        found = records.Weights.read(folder)
        for unit in found.units:
            if str(unit) in found.no_answer:
                units[unit].weights_no_answer = found.no_answer[str(unit)]
                continue
            units[unit].weights = self._copy(f"{unit_folder(base, unit)}/img/w-{records.Weights.image(unit)}",
                                             folder / records.Weights.image(unit))
            units[unit].weights_side = found.region[2] if found.region else None

    def examples(self, key: str, units: dict[int, Unit], base: str) -> None:
        folder = self.store.path(records.Examples.STAGE, key)
        found = records.Examples.read(folder)
        for unit, summary in found.units.items():
            u, here = units[int(unit)], unit_folder(base, int(unit))
            u.dead = bool(summary["dead"])
            if isinstance(summary["dead"], str):  # the reason (True before examples' format 6)
                u.dead_reason = summary["dead"]
            if not u.dead:  # a dead unit's "strongest" images are ranked on zeros: none are shown
                u.examples = [self.example(ex, found, folder, here, u.index) for ex in summary["top"]]
                u.duplicates = summary["duplicates"]
                u.quantiles = [[self.example(ex, found, folder, here, u.index) for ex in group]
                               for group in summary["quantiles"]]
            u.activation_quantiles = summary["activation_quantiles"]
            u.histogram = summary["histogram"]
            u.fraction_active = summary["fraction_active"]
            u.unrectified = found.unrectified
            u.through_attention = bool((found.receptive_field or {}).get("through_attention"))
            u.negative_examples = [self.example(ex, found, folder, here, u.index) for ex in summary.get("bottom", [])]

    def tuning(self, key: str, units: dict[int, Unit], base: str) -> None:
        folder = self.store.path(records.Tuning.STAGE, key)
        for unit, summary in records.Tuning.read(folder).units.items():
            for preferred in summary["preferred"].values():
                index = preferred["index"]
                preferred["src"] = self._recode(f"{base}/img/stimulus-{index}.webp",
                                                folder / records.Tuning.stimulus(index))
            units[int(unit)].tuning = summary

    def polysemanticity(self, key: str, units: dict[int, Unit], base: str) -> None:
        folder = self.store.path(records.Polysemanticity.STAGE, key)
        found = records.Polysemanticity.read(folder)
        for unit, scored in found.units.items():
            here = unit_folder(base, int(unit))
            if scored["score"] is None:  # before format 6, "silent" alone
                units[int(unit)].polysemanticity_no_answer = scored.get("no_answer", "its strongest responses are all equal")
                continue
            units[int(unit)].polysemanticity = Polysemanticity(
                score=scored["score"], separation=scored["separation"], balance=scored["balance"],
                purity=scored["purity"], diversity=scored.get("diversity"), top=found.top,
                explained=scored.get("explained"), null=scored.get("null"),
                meanings=[Meaning(c["size"], [self.example(ex, found, folder, here, int(unit))
                                              for ex in c["examples"] if "crop" in ex], c["things"], c["labels"])
                          for c in scored["clusters"]])

    def measures(self, stage: str, key: str, units: dict[int, Unit]) -> None:
        found = records.Measures.read(self.store.path(stage, key))
        for unit, values in found.units.items():
            units[int(unit)].measures.append({"stage": stage, "title": found.title, "about": found.about,
                                              "values": values})

    def example(self, ex: dict[str, Any], found: records.Examples | records.Polysemanticity, folder: Path,
                here: str, unit: int) -> Example:
        """One example of an examples (or polysemanticity) record, its images queued: its
        thumbnail for copying, its crop for the unit's sprite in its folder ``here`` (the
        same image and place, cropped by either stage, is one tile)."""
        image = found.images[str(ex["image"])]
        self.images[ex["image"]] = [image["name"], image["label"]]
        height, width = found.grid
        src = self.dataset_thumbnail(ex["image"])
        crop = self.crop((ex["image"], ex["y"], ex["x"]), f"{folder}/{ex['crop']}", here, unit) if "crop" in ex else None
        return Example(image=ex["image"], src=src, value=ex["value"], name=image["name"], label=image["label"],
                       x=(ex["x"] + 0.5) / width, y=(ex["y"] + 0.5) / height, crop=crop)


    def crop(self, key: tuple[int, int, int], source: str, here: str, unit: int) -> Picture:
        """A crop as a tile of its unit's sprite (a further sheet when one is full)."""
        sheet = 0
        while True:
            path = f"{here}/img/crops-{unit}{f'-{sheet}' if sheet else ''}.webp"
            sprite = self.sprites.setdefault(path, Sprite(path))
            if key in sprite.tiles or not sprite.full:
                return Picture(path, sprite, sprite.tile(key, source))
            sheet += 1


def _families(found: records.Families, layer: str, units: dict[int, Unit], base: str) -> list[Family]:
    """A families artifact's families, each unit pointed at its own."""
    for index, record in found.units.items():
        if record.get("dead") and int(index) in units:  # numbers at noise: in no family
            units[int(index)].dead, units[int(index)].dead_reason = True, record["dead"]
    families = []
    for f in found.families:
        family = Family(
            symbol=f["symbol"], name=f["name"], layer=layer, kind=f["kind"], description=f["description"],
            url=f"{base}/families/{f['symbol']}.html", members=[units[u] for u in f["members"]],
            share=f["share"], representative=units[f["representative"]], order_by=f["order_by"],
            evidence=[{**card, "id": _ARGUMENT_IDS[card["argument"]]} for card in f["evidence"]],
            handwritten_scatter=f.get("handwritten_scatter"), null=f.get("null"))
        confidences = [found.units[str(u.index)]["confidence"] for u in family.members]
        family.confidence = float(np.median(confidences)) if confidences else None
        family.borderline = sum(bool(found.units[str(u.index)].get("borderline")) for u in family.members)
        for u in family.members:
            record = found.units[str(u.index)]
            u.family, u.family_confidence, u.family_test = family, record["confidence"], record.get("test")
            if record.get("second"):
                second = next((c for c in found.criteria if c["symbol"] == record["second"]), None)
                u.family_second = {"symbol": record["second"], "name": second["name"] if second else record["second"],
                                   "score": record["second_score"], "borderline": record.get("borderline", False)}
        families.append(family)
    return families


_ARGUMENT_IDS = {name: id_ for id_, name in records.ARGUMENTS.items()}


def _circuits(store: Store, key: str, layers: dict[str, Layer]) -> None:
    """Attach a circuits artifact's edges to the units at both ends."""
    folder = store.path(records.Circuits.STAGE, key)
    found = records.Circuits.read(folder)
    if not found.connected or found.source not in layers:
        return
    source, target = layers[found.source], layers[found.target]
    for unit in target.units:
        strongest = found.units.get(str(unit.index), {})
        unit.circuit = {"source": found.source, "linearised": found.linearised, "no_answer": found.no_answer,
                        # its strongest inputs whether swept or not (only swept ones have pages and edges)
                        "inputs": [i["index"] for i in strongest.get("inputs", [])],
                        "inhibitory": [i["index"] for i in strongest.get("inhibitory", [])]}
    if found.no_answer:
        return
    sources = {u.index: u for u in source.units}
    targets = {u.index: u for u in target.units}
    weights = np.load(folder / records.Circuits.WEIGHTS).astype(np.float32)
    row = {unit: i for i, unit in enumerate(found.units_order)}

    def edge(other: Unit | None, layer: Layer, weight: float, t: int, s: int) -> Edge | None:
        if other is None:
            return None  # a source channel that was not swept has no page to link to
        return Edge(other, layer.name, weight, weights[row[t], s])

    for t, d in found.units.items():
        unit = targets[int(t)]
        unit.inputs = [e for e in (edge(sources.get(i["index"]), source, i["weight"], int(t), i["index"])
                                   for i in d["inputs"]) if e]
        unit.inhibitory = [e for e in (edge(sources.get(i["index"]), source, i["weight"], int(t), i["index"])
                                       for i in d["inhibitory"]) if e]
        unit.edit = d.get("edit")
    for s, d in found.outputs.items():
        unit = sources.get(int(s))
        if unit is not None:
            unit.outputs = [edge(targets[o["index"]], target, o["weight"], o["index"], int(s)) for o in d["excitatory"]]
            unit.outputs_inhibitory = [edge(targets[o["index"]], target, o["weight"], o["index"], int(s))
                                       for o in d["inhibitory"]]


def _family_grids(found: records.Families, before: Layer, after: Layer) -> None:
    """Attach the weights between the previous layer's families and this layer's, and the unions."""
    sources = {u.index: u for u in before.units}
    targets = {u.index: u for u in after.units}
    for grid in found.circuits_from:
        family = after.family(grid["target"])
        family.circuits_from.append({**grid, "rows": [targets[u] for u in grid["rows"]],
                                     "columns": [sources[u] for u in grid["columns"]],
                                     "source_url": before.family(grid["source"]).url})
    for union in found.unions:
        targets[union["unit"]].union = [sources[u] for u in union["inputs"]]
