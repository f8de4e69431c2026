"""Polysemanticity: does a unit respond to one thing, or to several unrelated ones?

A unit's strongest dataset examples are described by what the rest of its layer
does there: the layer's activation vector at the place the unit fired, centred on
each channel's mean over the dataset, with the unit's own direction taken out (it
is large in every strong example by construction) and scaled to unit length. Things
the layer represents differently then point in different directions. (Channels are
not scaled to equal variance: a channel that is almost never active would then
dominate every vector it appears in; on AlexNet-like layers with many silent
channels, that made nearly every unit look mixed.) The examples are split in two by
spherical 2-means, and

    score = separation x min(1, balance / BALANCED) x clip((z - Z_NONE) / Z_WIDTH, 0, 1)

Separation is ``1 - cos`` between the clusters' mean directions (0 when they point the
same way, 1 when orthogonal, capped at 1); balance is the smaller cluster's share of
the examples, so that a few odd examples are not a second meaning; z says how far the
share of the vectors' variance that the split explains lies above what the same split
finds in structureless data: the examples with each channel's values shuffled among
them (``SHUFFLES`` times; same channels, same values, no joint structure), in
standard deviations of those shuffles. The last factor is a gate: 2-means splits
high-dimensional noise into two "orthogonal" halves every time, so without it a unit
whose examples share no context (as in a dense, signed layer) scored 1. In 200 draws
of noise z reached 4.2 at most (a gate of 0.4); two meanings, each a random direction
at 1.5 times the noise, gave 5.8 and more in 98 of 100 draws; on the zoo's ReLU layers the gate changes scores and their agreement with the ground truth
very little. A unit whose strongest responses are all equal (a channel that never
fires, after a ReLU) has no score. Evidence beside the
score: the labels behind each cluster (the dataset's class, and on the embedded
world the object part under the place it fired, from the scene's ground truth) and,
when the unit has diversity visualizations, how much they disagree in the same
representation.

``strongest`` takes any readout of a layer (a ``Probe``): the layer's own channels
(this stage) or the features of a sparse dictionary over it
(``atlas.stages.dictionary``), whose directions are then the dictionary's, so both
are judged by the same measure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from atlas import artifacts, registry
from atlas.artifacts import Featurevis
from atlas.images import save_webp
from atlas.models import LoadedModel
from atlas.nn.capture import capture
from atlas.nn.response import Response, as_read, layer_response
from atlas.stages import (Cost, LayerInfo, Made, Measured, StageContext, artifact_key, layer_receptive_field,
                          model_identity)
from atlas.stages.examples import StreamingTopK, spatial_max
from atlas.stages.polysemantic import mixing
from atlas.stages.polysemantic.meanings import BALANCED, Meanings, meanings, unit_rows

STAGE = "polysemanticity"
FORMAT = 6  # 2: channels centred, not standardised; silent units unscored. 3: "star", not "star star". 4, 5: the null;
# 6: an unscored unit's reason
SILENT = "its strongest responses are all equal: nothing tells its examples apart"
NOT_FINITE = "its responses are not finite (NaN or infinity)"
SUMMARY_FORMAT = 1  # of the model's summary (atlas.stages.polysemantic.mixing)
TOP = 48  # strong examples clustered per unit
SHOWN = 6  # examples shown (and cropped) per cluster
CROP = 64

Readout = Callable[[torch.Tensor], torch.Tensor]  # a layer's output (B, C, H, W) -> unit values (B, K, H, W)


@dataclass
class Strongest:
    """Each unit's strongest examples and the layer's centred vector at each."""

    values: np.ndarray  # (K, top) strongest first
    images: np.ndarray  # (K, top)
    positions: np.ndarray  # (K, top) flat positions in the layer's grid
    vectors: np.ndarray  # (K, top, C) float32, centred
    grid: tuple[int, int]
    mean: np.ndarray  # (C,) each channel's mean over every position of the dataset


@dataclass(frozen=True)
class Probe:
    """What to find strong examples of in one layer: ``units`` values read from its output."""

    layer: LayerInfo
    readout: Readout
    units: int


def strongest(model: LoadedModel, probes: Sequence[Probe], dataset, *, top: int, batch_size: int,
              device: torch.device, progress=None) -> list[Strongest]:
    """Two passes over ``dataset`` for all probes at once: the top examples of every
    readout unit and each channel's mean, then each layer's vectors at its examples
    only (the images some unit needs, loaded once for all layers); one result per probe."""
    names = list(dict.fromkeys(p.layer.name for p in probes))
    sums = {name: 0.0 for name in names}
    count = {name: 0 for name in names}
    best = [StreamingTopK(p.units, top) for p in probes]
    grids: dict[str, tuple[int, int]] = {}

    def forward(pixels: np.ndarray) -> dict[str, torch.Tensor]:
        x = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float() / 255
        found = capture(model.module, model.normalize(x), names)
        return {name: acts.float() if acts.dim() == 4 else acts.float()[:, :, None, None]
                for name, acts in found.items()}

    with torch.no_grad():
        for indices, pixels in dataset.batches(model.input_size, batch_size):
            outputs = forward(pixels)
            for name, acts in outputs.items():
                sums[name] = sums[name] + acts.sum((0, 2, 3)).double().cpu()
                count[name] += acts.shape[0] * acts.shape[2] * acts.shape[3]
                grids[name] = (int(acts.shape[2]), int(acts.shape[3]))
            for probe, top_k in zip(probes, best):
                values, positions = spatial_max(probe.readout(outputs[probe.layer.name]))
                top_k.update(values, torch.tensor(indices), positions)
            if progress is not None:
                progress.update(len(indices))
    means = {name: (sums[name] / max(count[name], 1)).float() for name in names}
    # Every (probe, unit, rank) that needs a vector, grouped by image.
    wanted: dict[int, list[tuple[int, int, int]]] = {}
    for p, top_k in enumerate(best):
        finite = np.argwhere(np.isfinite(top_k.values.numpy()))
        for unit, rank in finite.tolist():
            wanted.setdefault(int(top_k.images[unit, rank]), []).append((p, unit, rank))
    vectors = [np.zeros((*top_k.values.shape, probe.layer.channels), np.float32)
               for probe, top_k in zip(probes, best)]
    order = sorted(wanted)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            outputs = forward(np.stack([dataset.load(i, model.input_size) for i in ids]))
            centred = {name: (acts.cpu() - means[name][None, :, None, None]).flatten(2).numpy()
                       for name, acts in outputs.items()}
            for row, image in enumerate(ids):
                for p, unit, rank in wanted[image]:
                    position = int(best[p].positions[unit, rank])
                    vectors[p][unit, rank] = centred[probes[p].layer.name][row, :, position]
    return [Strongest(top_k.values.numpy(), top_k.images.numpy(), top_k.positions.numpy(), v,
                      grids[probe.layer.name], means[probe.layer.name].numpy())
            for probe, top_k, v in zip(probes, best, vectors)]


def unit_directions(layer: LayerInfo) -> np.ndarray:
    """Each swept unit's own direction in the layer: a one-hot vector per unit."""
    return np.eye(layer.channels, dtype=np.float32)[list(layer.units)]


def where_it_fired(dataset, image: int, fx: float, fy: float) -> tuple[str, str | None]:
    """What the ground truth has at a place (fractions of the width and height) of an
    image, as (object, part): ("animal", "snout"), ("animal", None) on the object but
    no named part, ("background", None); (the image's label, None) where the dataset
    has no ground truth."""
    truth = dataset.truth(image)
    if truth is None:
        return dataset.records[image].label or "?", None
    size = dataset.truth_size
    x, y = fx * size, fy * size
    for obj in truth:
        inside = [p for p in obj.get("parts", []) if _inside(p["box"], x, y)]
        if inside:
            part = min(inside, key=lambda p: (p["box"][2] - p["box"][0]) * (p["box"][3] - p["box"][1]))
            return obj["class"], None if part["name"] == obj["class"] else part["name"]
        if _inside(obj["box"], x, y):
            return obj["class"], None
    return "background", None


def _inside(box: Sequence[float], x: float, y: float) -> bool:
    return box[0] <= x <= box[2] and box[1] <= y <= box[3]


def describe(found: Strongest, row: int, result: Meanings, dataset) -> list[dict[str, Any]]:
    """The two clusters of one unit: size, examples (strongest first), labels and
    ground-truth things behind them (most common first, as shares)."""
    height, width = found.grid
    clusters = []
    valid = np.isfinite(found.values[row])
    for k in (0, 1):
        members = [r for r in range(len(valid)) if valid[r] and result.assignment[r] == k]
        if not members:
            continue
        examples = []
        for r in members:
            image, position = int(found.images[row, r]), int(found.positions[row, r])
            y, x = divmod(position, width)
            obj, part = where_it_fired(dataset, image, (x + 0.5) / width, (y + 0.5) / height)
            examples.append({"image": image, "value": float(found.values[row, r]), "y": y, "x": x,
                             "object": obj, "thing": obj if part is None else f"{obj} {part}",
                             "label": dataset.records[image].label})
        clusters.append({"size": len(members), "examples": examples,
                         "labels": _shares(e["label"] for e in examples),
                         "things": _shares(e["thing"] for e in examples)})
    return clusters


def _shares(items) -> list[list[Any]]:
    counts = Counter(items)
    total = sum(counts.values())
    return [[name, round(n / total, 3)] for name, n in counts.most_common(5)]


def label_purity(clusters: list[dict[str, Any]]) -> float:
    """Share of all examples on the most common ground-truth object (or label)."""
    classes = Counter(e["object"] for c in clusters for e in c["examples"])
    return max(classes.values()) / sum(classes.values()) if classes else 1.0


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> Made:
    if ctx.dataset is None:
        return Made({})
    keys = {layer.name: artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model),
                                     input_size=model.input_size, layer=layer.name, units=layer.units,
                                     data=ctx.dataset.digest(), top=TOP, diversity=_diversity_source(ctx, layer))
            for layer in layers}
    todo = [layer for layer in layers if ctx.needs(STAGE, keys[layer.name])]
    if todo:
        probes = [Probe(layer, _channels(layer, layer_response(model, layer.name, ctx.device), ctx.device),
                        len(layer.units)) for layer in todo]
        with ctx.progress(len(ctx.dataset.records), f"{model.name}: polysemanticity") as bar:
            found = strongest(model, probes, ctx.dataset, top=TOP, batch_size=ctx.config.sweep.batch_size,
                              device=ctx.device, progress=bar)
        for layer, result in zip(todo, found):
            write(ctx, model, STAGE, keys[layer.name], layer, result, unit_directions(layer),
                  _diversity_vectors(ctx, model, layer, result))
    recorded = ctx.recorded(STAGE, model.name, keys)
    ctx.sync()  # the summary reads every layer's record, whichever rank made it
    return Made(recorded, model=[_summary(ctx, model, layers, keys)])


def _summary(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo], keys: dict[str, str]) -> str:
    """The model's summary artifact (``mixing``), from its layers' records and the circuits'."""
    circuits = {layer.name: ctx.artifacts.get(layer.name, {}).get("circuits", []) for layer in layers}
    key = artifact_key(stage=STAGE, summary=SUMMARY_FORMAT, layers=[keys[layer.name] for layer in layers],
                       circuits=circuits)
    with ctx.artifact(STAGE, key, model=model.name, summary=True) as folder:
        if folder is not None:
            scores, purity = {}, {}
            for layer in layers:  # in unit order: it breaks ties between spread features
                found = ctx.store.read(artifacts.Polysemanticity, keys[layer.name]).units
                scored = [(u, found[str(u)]) for u in layer.units if found[str(u)]["score"] is not None]
                scores[layer.name] = {u: entry["score"] for u, entry in scored}
                purity[layer.name] = {u: entry["purity"] for u, entry in scored}
            outputs = {}
            for found in (ctx.store.read(artifacts.Circuits, k) for ks in circuits.values() for k in ks):
                if found.connected:
                    outputs[found.source] = (found.target, {int(u): [(e["index"], e["weight"]) for e in d["excitatory"]]
                                                            for u, d in found.outputs.items()})
            summaries = [(layer.name, mixing.layer_summary(scores[layer.name], purity[layer.name])) for layer in layers]
            artifacts.write(folder, artifacts.MixingSummary(
                top=TOP, layers=[{"layer": name, **summary} for name, summary in summaries if summary],
                spread=mixing.spread_features([layer.name for layer in layers], scores, outputs)))
    return key


def _channels(layer: LayerInfo, response: Response, device: torch.device) -> Readout:
    """The swept units of a layer, as the network reads them (see ``atlas.stages.examples``)."""
    index = torch.tensor(layer.units, device=device)
    return lambda acts: as_read(response, acts.index_select(1, index), index)


def write(ctx: StageContext, model: LoadedModel, stage: str, key: str, layer: LayerInfo, found: Strongest,
          directions: np.ndarray, diversity: dict[int, np.ndarray] | None = None,
          names: Sequence[int] | None = None) -> None:
    """Score every unit (or feature: ``names`` are their indices) and write its clusters,
    with crops of the examples shown."""
    height, width = found.grid
    spatial = layer.spatial
    field = layer_receptive_field(ctx, model, layer.name) if spatial else None
    names = list(layer.units) if names is None else list(names)
    loaded: dict[int, np.ndarray] = {}
    units = {}
    with ctx.store.writing(stage, key) as folder:
        for row, unit in enumerate(names):
            valid = found.values[row] != -np.inf  # slots an image filled
            strongest_values = found.values[row][valid]
            if not np.isfinite(strongest_values).all():
                units[str(unit)] = {"score": None, "no_answer": NOT_FINITE, "clusters": []}
                continue
            if np.ptp(strongest_values) <= 1e-6 * max(1.0, float(np.abs(strongest_values).max())):
                units[str(unit)] = {"score": None, "no_answer": SILENT, "clusters": []}
                continue  # the same everywhere (a dead ReLU channel)
            # A channel of the layer that is not finite says nothing about the examples.
            result = meanings(np.nan_to_num(found.vectors[row][valid], nan=0.0, posinf=0.0, neginf=0.0),
                              directions[row])
            assignment = np.zeros(len(valid), dtype=int)
            assignment[valid] = result.assignment
            clusters = describe(found, row, Meanings(result.score, result.separation, result.balance, assignment),
                                ctx.dataset)
            for c, cluster in enumerate(clusters):
                for rank, ex in enumerate(cluster["examples"][:SHOWN]):
                    if ex["image"] not in loaded:
                        loaded[ex["image"]] = ctx.dataset.load(ex["image"], model.input_size)
                    box = field.box(ex["y"], ex["x"]) if field else (0, 0, model.input_size, model.input_size)
                    ex["crop"] = f"crop-{unit}-{c}-{rank}.webp"
                    pixels = loaded[ex["image"]]
                    save_webp(pixels[box[0]:box[2], box[1]:box[3]], folder / ex["crop"], size=CROP)
            entry = {"score": round(result.score, 4), "separation": round(result.separation, 4),
                     "balance": round(result.balance, 4), "explained": round(result.explained, 4),
                     "null": round(result.null, 4), "null_spread": round(result.null_spread, 4),
                     "purity": round(label_purity(clusters), 4),
                     "clusters": clusters}
            if diversity and unit in diversity:
                entry["diversity"] = round(_disagreement(diversity[unit], directions[row]), 4)
            units[str(unit)] = entry
        records = ctx.dataset.records
        artifacts.write(folder, artifacts.Polysemanticity(
            units=units, grid=[height, width], top=TOP, balanced=BALANCED,
            images={str(i): {"name": records[i].name, "label": records[i].label} for i in sorted(loaded)}))
    ctx.unanswered(stage, f"{model.name} {layer.name}",
                   {int(u): d["no_answer"] for u, d in units.items() if d.get("no_answer")})


def _disagreement(vectors: np.ndarray, direction: np.ndarray) -> float:
    """Mean ``1 - cos`` between a unit's diversity images, in the representation the
    examples are clustered in (its own direction taken out)."""
    d = direction / (np.linalg.norm(direction) or 1.0)
    v = unit_rows(vectors - np.outer(vectors @ d, d))
    n = len(v)
    if n < 2:
        return 0.0
    similarity = v @ v.T
    return float(np.clip(1 - similarity[~np.eye(n, dtype=bool)].mean(), 0, 2))


def _diversity_source(ctx: StageContext, layer: LayerInfo) -> list[str]:
    """The feature visualization artifacts whose diversity images this stage reads (none
    when the sweep makes no diversity images)."""
    if "diversity" not in ctx.config.featurevis.objectives:
        return []
    return ctx.artifacts.get(layer.name, {}).get("featurevis", [])


def _diversity_vectors(ctx: StageContext, model: LoadedModel, layer: LayerInfo,
                       found: Strongest) -> dict[int, np.ndarray]:
    """The layer's centred vector at the centre of each diversity visualization of
    each unit, when the sweep made them."""
    from PIL import Image

    images: dict[int, list[np.ndarray]] = {}
    for key in _diversity_source(ctx, layer):
        folder = ctx.store.path(Featurevis.STAGE, key)
        for unit, variants in Featurevis.read(folder).activation.items():
            for variant in (v for v in variants if registry.objective_of(v) == "diversity"):
                image = Image.open(folder / Featurevis.image(unit, variant)).convert("RGB")
                images.setdefault(int(unit), []).append(np.asarray(image.resize((model.input_size,) * 2)))
    if not images:
        return {}
    vectors = {}
    with torch.no_grad():
        for unit, pictures in images.items():
            x = torch.from_numpy(np.stack(pictures)).to(ctx.device).permute(0, 3, 1, 2).float() / 255
            acts = capture(model.module, model.normalize(x), [layer.name])[layer.name].float().cpu()
            if acts.dim() == 4:
                acts = acts[:, :, acts.shape[2] // 2, acts.shape[3] // 2]
            vectors[unit] = acts.numpy() - found.mean[None, :]
    return vectors


PASSES = 2.6  # forward passes' worth of work per image: two passes, the second reading every layer's vectors
COST_PER_UNIT = 0.035  # seconds per unit: its split, the shuffles and its crops


def cost(m: Measured) -> Cost | None:
    if not m.images:
        return None
    share = m.images * m.forward * PASSES / len(m.layers)
    return Cost([share + COST_PER_UNIT * m.units[layer.name] for layer in m.layers],
                f"{m.images} images x {m.forward * 1e3:.2f} ms, two passes")
