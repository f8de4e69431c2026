"""The families stage: every swept unit gets a family, named or discovered.

The criteria, the classification and the discovery of families are pure functions in
``taxonomy`` beside this module; this stage gathers what they read (tuning, kernel
statistics, dataset examples, feature visualizations, circuits) from the other stages'
artifacts, tests each label against the null (``chance``), adds the seven arguments of
each family (``evidence``) and the family-to-family circuits (``motifs``), and stores
one artifact per layer.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from atlas.artifacts import Circuits, Families, Null, Tuning, write
from atlas.data.bank import Bank, tuning_bank
from atlas.models import LoadedModel
from atlas.registry import PRIMARY
from atlas.seeds import derive_seed
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key
from atlas.stages.families import chance, evidence, motifs
from atlas.stages.families.calibration import CALIBRATION
from atlas.stages.families.discovery import discover
from atlas.stages.families.handwritten import Matches
from atlas.stages.families.taxonomy import (CONFIDENT, DEAD, DETECTORS, FAMILIES, OTHER, label_units,
                                            order_members, possible_families)
from atlas.stages.tuning import summarize

log = logging.getLogger(__name__)

STAGE = "families"
FORMAT = 15  # part of the key: bump when the artifact changes


def criteria() -> list[dict[str, Any]]:
    """The named families and their conditions, as stored with every artifact (the site prints them)."""
    return [{"symbol": f.symbol, "name": f.name, "definition": f.definition,
             "conditions": [c.text() for c in f.conditions], "order_by": f.order_by,
             "handwritten": f.handwritten} for f in (*FAMILIES, OTHER)]


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    images: dict[int, np.ndarray | None] = {}  # dataset images, shared by the model's layers
    spatial = [layer.name for layer in layers if layer.spatial]
    previous: str | None = None  # the key of the previous layer's families: circuits between families need both
    for layer in layers:
        inputs = dict(ctx.artifacts.get(layer.name, {}))
        if not inputs.get("tuning"):
            continue  # families are read from tuning: no stimuli, no families
        following = spatial[spatial.index(layer.name) + 1:]
        # The next layer's circuits read this one: they hold this layer's downstream uses.
        inputs["uses"] = ctx.artifacts.get(following[0], {}).get("circuits", []) if following else []
        inputs["previous_families"] = [previous] if previous else []
        key = artifact_key(stage=STAGE, format=FORMAT, criteria=criteria(), inputs=inputs,
                           data=ctx.dataset.digest() if ctx.dataset is not None else None,
                           rate=ctx.config.null.rate, calibration=CALIBRATION)
        keys[layer.name] = [key]
        with ctx.artifact(STAGE, key, model=model.name, layer=layer.name) as folder:
            if folder is not None:
                data = layer_families(ctx, model, layer, inputs, images)
                data["circuits_from"], data["unions"] = family_circuits(ctx, inputs, data)
                write(folder, Families(**data))
        ctx.sync()  # the next layer's family circuits read this layer's families
        previous = key
    return keys


GRID = 8  # members of each family shown in a family-to-family grid
SOURCES_SHOWN = 3  # the source families a target family reads most, given a grid each


def family_circuits(ctx: StageContext, inputs: dict[str, list[str]], data: dict[str, Any]
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Weights between the previous layer's families and this layer's: for each target
    family the source families it reads most (mean of its members' strongest weight from
    each), with a grid of weight maps and, for two oriented families, the equivariance
    score; and the units that union a feature over two opposite orientations."""
    circuits = next(iter(_read(ctx, "circuits", inputs.get("circuits", []))), None)
    before = next(iter(_read(ctx, STAGE, inputs.get("previous_families", []))), None)
    if not circuits or not circuits["connected"] or not before:
        return [], []
    weights = np.load(ctx.store.path("circuits", inputs["circuits"][0]) / Circuits.WEIGHTS).astype(np.float32)
    row = {u: i for i, u in enumerate(circuits["units_order"])}
    source_units = {int(u): d for u, d in before["units"].items()}
    sources = [f for f in before["families"] if f["symbol"] != OTHER.symbol and f["count"] >= 2]
    found = []
    for target in (f for f in data["families"] if f["symbol"] != OTHER.symbol and f["count"] >= 2):
        rows = [row[u] for u in target["members"]]
        strengths = {f["symbol"]: float(weights[rows][:, f["members"]].max((2, 3)).mean()) for f in sources}
        for source in sorted(sources, key=lambda f: -strengths[f["symbol"]])[:SOURCES_SHOWN]:
            block = weights[rows][:, source["members"]]
            entry = {"target": target["symbol"], "source": source["symbol"], "source_name": source["name"],
                     "strength": round(strengths[source["symbol"]], 5), "equivariance": None,
                     "rows": target["members"][:GRID], "columns": source["members"][:GRID],
                     "maps": block[:GRID, :GRID].round(4).tolist()}
            if target["order_by"] == source["order_by"] == "orientation":  # the source family's period: its first's
                entry["equivariance"] = motifs.equivariance(
                    block, [data["units"][str(u)]["orientation_deg"] for u in target["members"]],
                    [source_units[u]["orientation_deg"] for u in source["members"]],
                    source_units[source["members"][0]]["orientation_period"])
            found.append(entry)
    unions = motifs.unions({int(u): d["inputs"] for u, d in circuits["units"].items()},
                           {u: d["family"] for u, d in source_units.items()},
                           {u: d["orientation_deg"] for u, d in source_units.items()})
    return found, unions


def _read(ctx: StageContext, stage: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    return [ctx.store.read_json(stage, key) for key in keys]


@dataclass
class _Inputs:
    """What a layer's families are decided from: the other stages' artifacts, read."""

    tuning: dict[str, Any]
    responses: np.ndarray  # (stimuli, units)
    kernels: dict[int, dict[str, Any]]  # first layer: each unit's kernel measures, or why it has none
    examples_data: dict[str, Any] | None
    examples: dict[int, dict[str, Any]]
    image_labels: dict[int, str]
    featurevis: dict[int, float]  # the layer's own mean on the unit's image; -inf where it failed
    edits: dict[int, Any] | None  # circuits: the drop when a unit's top inputs are removed
    used: set[int] | None  # units among the strongest inputs of some downstream unit


def _read_inputs(ctx: StageContext, inputs: dict[str, list[str]]) -> _Inputs:
    tuning_folder = ctx.store.path("tuning", inputs["tuning"][0])
    weights = _read(ctx, "weights", inputs.get("weights", []))
    kernels = {int(u): s for d in weights for u, s in d["stats"].items()}
    kernels.update({int(u): {"no_answer": why} for d in weights for u, why in d.get("no_answer", {}).items()})
    examples_data = next(iter(_read(ctx, "examples", inputs.get("examples", []))), None)
    # The layer's own mean on the image, comparable with the dataset's values; a failed
    # visualization is evidence of nothing it detects.
    featurevis = {int(u): -math.inf if PRIMARY in d["failed"].get(u, []) else value
                  for d in _read(ctx, "featurevis", inputs.get("featurevis", []))
                  for u, value in d["layer_mean"].items()}
    circuits = next(iter(_read(ctx, "circuits", inputs.get("circuits", []))), None)
    uses = next(iter(_read(ctx, "circuits", inputs.get("uses", []))), None)
    return _Inputs(
        tuning=Tuning.read(tuning_folder).json(), responses=np.load(tuning_folder / Tuning.RESPONSES),
        kernels=kernels, examples_data=examples_data,
        examples={int(u): s for u, s in examples_data["units"].items()} if examples_data else {},
        image_labels={int(i): r["label"] for i, r in examples_data["images"].items() if r.get("label")}
        if examples_data else {},
        featurevis=featurevis,
        edits={int(u): d["edit"] for u, d in circuits["units"].items() if "edit" in d} if circuits else None,
        used={e["index"] for d in uses["units"].values() for e in d["inputs"][:evidence.USED_TOP]}
        if uses and uses["connected"] else None)


def layer_families(ctx: StageContext, model: LoadedModel, layer: LayerInfo, inputs: dict[str, list[str]],
                   images: dict[int, np.ndarray | None] | None = None) -> dict[str, Any]:
    """Every unit's family, the layer's families in order, and each family's scorecard."""
    read = _read_inputs(ctx, inputs)
    tuning, responses, kernels = read.tuning, read.responses, read.kernels
    params, units = tuning["stimuli"], list(layer.units)
    summaries = {u: tuning["units"][str(u)] for u in units}
    dead = dead_units(units, responses, kernels, read.examples)
    live = [u for u in units if u not in dead]
    rows = [units.index(u) for u in live]
    bank = tuning_bank(model.input_size, tuning)
    matcher = Matches(bank, tuning["extent"], DETECTORS)
    per_unit = label_units(live, summaries, responses[:, rows], params, kernels or None, tuning["extent"],
                           tuning.get("effective"), matches_of(matcher, summaries, responses[:, rows], live))
    labels = {u: [read.image_labels[ex["image"]] for ex in read.examples.get(u, {}).get("top", [])
                  if ex["image"] in read.image_labels] for u in live}
    null = None
    if inputs.get("null"):
        record = ctx.store.read(Null, inputs["null"][0])
        null_responses = np.load(ctx.store.path("null", inputs["null"][0]) / Null.RESPONSES)
        null = against_null(per_unit, live, record, null_responses, params, tuning["extent"], tuning.get("effective"),
                            bool(kernels), ctx.config.null.rate, matcher)
    discovered = discover(live, {u: per_unit[u]["family"] for u in live}, responses[:, rows], params, labels)
    if null is not None:  # a discovered family must beat the best cluster among as many null units
        discovered = beyond_cluster_null(discovered, null, len(live), ctx.config.null.rate,
                                         derive_seed(ctx.config.sweep.seed, STAGE, layer.name))
    for family in discovered:
        for u in family["units"]:
            per_unit[u].update(family=family["symbol"], confidence=family["fit"][u])

    detectors = evidence.Handwritten(ctx, model, layer, tuning, responses, read.examples_data,
                                     {} if images is None else images, bank)
    families = _families(live, per_unit, summaries, discovered, null)
    for family in families:
        members = family["members"]
        family.update(count=len(members), share=round(len(members) / len(live), 4), representative=max(
            members, key=lambda u: (per_unit[u]["confidence"], -u)))
        family["evidence"] = evidence.scorecard(
            members, oriented=family["order_by"] == "orientation",
            confidence={u: per_unit[u]["confidence"] for u in members}, featurevis=read.featurevis,
            examples=read.examples, joint={u: summaries[u]["joint"] for u in members if "joint" in summaries[u]},
            edits=read.edits, used=read.used,
            handwritten=detectors.correlations(family["symbol"], members)
            if family["handwritten"] else None, null=_null_evidence(family, per_unit, null))
        if family["handwritten"]:  # the seventh argument's figure, for the most typical member
            family["handwritten_scatter"] = detectors.scatter(family["symbol"], family["representative"])
    for u, why in dead.items():  # in no family and no scorecard: their numbers are noise
        per_unit[u] = {"family": None, "confidence": None, "dead": why, "scores": {}, "metrics": {},
                       "second": None, "second_score": None, "borderline": False,
                       "orientation_deg": summaries[u]["orientation_deg"], "orientation_period": 360}
    if null is not None:
        for family in (f for f in families if f["kind"] == "named" and f["symbol"] != OTHER.symbol):
            family["null"] = {"meets": null["meets"].get(family["symbol"], 0),
                              "passed": null["passed"].get(family["symbol"], 0), "units": null["units"]}
        null.pop("responses")
    return {"criteria": criteria(), "confident": CONFIDENT, "units": {str(u): per_unit[u] for u in units},
            "families": families, "dead": sorted(dead), "null": null,
            "possible": [f.symbol for f in possible_families(bool(kernels), tuning["extent"])]}


def _families(live: list[int], per_unit: dict[int, dict[str, Any]], summaries: dict[int, dict[str, Any]],
              discovered: list[dict[str, Any]], null: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The layer's families in order: the named ones (Other last), then those discovered."""
    families = []
    for family in (*FAMILIES, OTHER):
        members = [u for u in live if per_unit[u]["family"] == family.symbol]
        if members:
            families.append({"symbol": family.symbol, "name": family.name, "kind": "named",
                             "description": family.definition, "order_by": family.order_by,
                             "members": order_members(family.symbol, members, summaries,
                                                      {u: per_unit[u]["confidence"] for u in members}, family.order_by),
                             "handwritten": family.handwritten})
    for family in discovered:
        families.append({"symbol": family["symbol"], "name": f"Unnamed {family['symbol']}", "kind": "discovered",
                         "description": family["description"], "order_by": "confidence", "handwritten": None,
                         "members": sorted(family["units"], key=lambda u: (-per_unit[u]["confidence"], u)),
                         "null": None if "p" not in family else {
                             "coherence": family["coherence"], "p": family["p"], "units": null["units"],
                             "draws": null["clusters"]["draws"], "p95": null["clusters"]["p95"]}})
    return families


def _null_evidence(family: dict[str, Any], per_unit: dict[int, dict[str, Any]],
                   null: dict[str, Any] | None) -> evidence.NullEvidence | None:
    """What the null says about a family, for its scorecard (None: no null; Other: untested)."""
    if null is None or family["symbol"] == OTHER.symbol:
        return None
    if family["kind"] == "discovered":
        return evidence.NullEvidence(p=[family["null"]["p"]] if family.get("null") else [])
    return evidence.NullEvidence(p=[per_unit[u]["test"]["p"] for u in family["members"] if per_unit[u].get("test")],
                                 match_p95=null["matches"].get(family["symbol"]))


def matches_of(matcher: Matches, summaries: dict[int, dict[str, Any]], responses: np.ndarray,
               units: Sequence[int]) -> dict[int, dict[str, float | None]]:
    """How well each unit (``responses``: stimuli x units, in ``units`` order) follows its families' detectors."""
    matcher.prepare_units(summaries[u]["preferred"] for u in units)
    return {u: matcher.of(summaries[u]["preferred"], responses[:, row]) for row, u in enumerate(units)}


def null_units(record: Null, responses: np.ndarray, params: list[dict], extent: float, effective: float | None,
               first_layer: bool, matcher: Matches) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """The null units labelled as the layer's units are (``label_units``), live ones only:
    (per unit, the dead ones)."""
    units = list(range(responses.shape[1]))
    kernels = {u: {name: values[u] for name, values in record.kernels.items()} for u in units} \
        if first_layer and record.kernels else None
    dead = dead_units(units, responses, kernels or {}, {})
    live = [u for u in units if u not in dead]
    summaries = dict(zip(live, summarize(responses[:, live], Bank(params=params))))
    # Dead null units are left out, as the layer's own are: a live unit is compared with live ones.
    return label_units(live, summaries, responses[:, live], params, kernels, extent, effective,
                       matches_of(matcher, summaries, responses[:, live], live)), sorted(dead)


def against_null(per_unit: dict[int, dict[str, Any]], live: Sequence[int], record: Null, responses: np.ndarray,
                 params: list[dict], extent: float, effective: float | None, first_layer: bool,
                 rate: float, matcher: Matches) -> dict[str, Any] | None:
    """Test the layer's labels against the null networks' units (``chance.label_layer``,
    relabelling ``per_unit``); the layer's null report, with the live null units'
    responses (for the discovered families' null) under "responses"."""
    if first_layer and not record.kernels:  # its kernel criteria would have nothing to be compared with
        log.warning("the null of a first layer has no kernel statistics: its labels are not tested")
        return None
    null_per_unit, dead = null_units(record, responses, params, extent, effective, first_layer, matcher)
    report = chance.label_layer(per_unit, live, null_per_unit, possible_families(first_layer, extent), first_layer,
                                rate)
    report.update(kind=record.kind, why=record.why, networks=record.networks, calibration=record.calibration,
                  dead=len(dead), responses=responses[:, sorted(null_per_unit)])
    return report


def beyond_cluster_null(discovered: list[dict[str, Any]], null: dict[str, Any], size: int, rate: float,
                        seed: int) -> list[dict[str, Any]]:
    """The discovered families whose coherence beats the best cluster that the same
    clustering finds among ``size`` null units, drawn again and again; renumbered."""
    enough = null["responses"].shape[1] >= size  # as many null units as the layer has live ones
    best = chance.cluster_null(null["responses"], size, seed) if discovered and enough else []
    null["clusters"] = {"draws": len(best), "p95": round(float(np.quantile(best, 0.95)), 4) if best else None,
                        "found": sum(b > 0 for b in best),
                        "reason": None if enough else f"the null has fewer live units ({null['responses'].shape[1]}) "
                                                      f"than the layer ({size}): no discovered family can be tested"}
    if not best:
        return []
    kept = []
    for family in discovered:
        family["p"] = round(chance.beats_cluster_null(family["coherence"], best), 4)
        if family["p"] <= rate:
            kept.append({**family, "symbol": f"X{len(kept) + 1}"})
    return kept


def dead_units(units: Sequence[int], responses: np.ndarray, kernels: dict[int, dict[str, float]],
               examples: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Units whose numbers are noise, and why: a kernel or a response to every stimulus
    under ``DEAD`` of the layer's median (weights of 1e-8 are scaled up to look like
    filters, and ranked examples of such a unit rank rounding errors), or no positive
    response to any dataset image. Responses are read through the layer's activation,
    so a unit no stimulus lifts above it is dead only if the dataset does not show it
    alive (or there is no dataset to ask)."""
    dead = {}
    reach = np.abs(responses).max(0)
    floor = DEAD * float(np.median(reach))
    for row, u in enumerate(units):
        alive_on_data = u in examples and not examples[u].get("dead")
        if kernels.get(u, {}).get("no_answer"):
            dead[u] = kernels[u]["no_answer"]
        elif u in kernels and kernels[u].get("norm", 1.0) < DEAD:
            dead[u] = f"its kernel's norm is {kernels[u]['norm']:.1e} of the layer's median"
        elif reach[row] <= floor and not alive_on_data:
            dead[u] = "no stimulus moves it from zero"
        elif examples.get(u, {}).get("dead"):
            reason = examples[u]["dead"]  # its reason (True before examples' format 6)
            dead[u] = reason if isinstance(reason, str) else "never active on the dataset"
    return dead


COST_PER_UNIT = 0.05  # seconds per unit: its tuning summary, metrics, detector matches and scorecards
COST_PER_NULL_UNIT = 0.01  # seconds per null unit: its tuning summary, metrics and detector matches


def cost(m: Measured) -> Cost:
    from atlas.stages.null import networks_for

    settings = m.config.null
    null_units = {layer.name: networks_for(layer.channels, settings.units, settings.twins) * layer.channels
                  if settings.kind != "none" else 0 for layer in m.spatial}
    return Cost([COST_PER_UNIT * m.units[layer.name] + COST_PER_NULL_UNIT * null_units[layer.name]
                 for layer in m.spatial], "classification, tested against the null's units")
