"""The null stage: what units of networks that learned nothing show under the same tests.

For every swept layer that tuning measured, the null networks (``atlas.models.twin``:
untrained twins of the model's architecture, or its kernels permuted) are shown the
same stimulus bank, drawn at the same place, and every channel of the layer responds;
for a first layer (or one affine in the pixels), their kernels are measured as the
weights stage measures the model's. The families stage reads these as the null distribution of each family's
evidence (``atlas.stages.families.significance``).

Twins are drawn until the layer has ``[null] units`` null units (at least two networks,
at most ``[null] twins``): the smallest p-value a label can have is one over the null's
size, so a layer with many units to label needs many null units. No feature
visualization, dataset examples or circuits are computed for the null: the family
criteria read tuning and kernels only.

The artifact is keyed by what decides it: for twins the architecture, the seeds and
the calibration images, not the trained weights (models of one architecture share
their twins); for permuted kernels the model itself.
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

import numpy as np
import torch

from atlas.artifacts import Null, Tuning, Weights, write
from atlas.data.bank import spot_scales, stimulus_bank
from atlas.models import LoadedModel
from atlas.models.twin import NullKind, calibration_images, has_batchnorm, null_kind, null_model, recalibrate
from atlas.nn.affine import Region
from atlas.nn.response import layer_response
from atlas.seeds import derive_seed
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, model_identity
from atlas.stages.tuning import respond
from atlas.stages.weights import KernelSource
from atlas.stages.weights.kernels import kernel_stats

log = logging.getLogger(__name__)

STAGE = "null"
FORMAT = 1


def networks_for(channels: int, units: int, most: int) -> int:
    """How many null networks give a layer of ``channels`` at least ``units`` null units:
    at least two (one network's units share its draw), unless at most one is allowed."""
    return min(most, max(2, math.ceil(units / max(channels, 1))))


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    spec = next(m for m in ctx.config.models if m.name == model.name)
    settings = ctx.config.null
    if settings.kind == "none":
        return {}  # asked for no null: the families stage marks its labels untested
    kind: NullKind | None = None
    keys: dict[str, list[str]] = {}
    todo: list[tuple[LayerInfo, str, dict]] = []
    for layer in layers:
        tuning_keys = ctx.artifacts.get(layer.name, {}).get("tuning")
        if not tuning_keys:
            continue  # the null is measured as tuning measured the layer
        kind = kind or null_kind(spec, model, ctx.config.root, settings.kind)
        tuning = ctx.store.read(Tuning, tuning_keys[0])
        count = networks_for(layer.channels, settings.units, settings.twins)
        weights = ctx.artifacts[layer.name].get("weights")
        # A first layer's kernels: a convolution's (True), or a layer's gradients over a region of the input.
        first = (ctx.store.read(Weights, weights[0]).region or True) if weights else False
        seeds = [derive_seed(ctx.config.sweep.seed, STAGE, i) for i in range(count)]
        bank = {"input_size": model.input_size, "extent": tuning.extent, "centre": tuning.centre}
        if spot_scales(model.input_size, tuning.extent, tuning.effective)[1:]:  # spots at its effective scale too
            bank["effective"] = tuning.effective
        key = artifact_key(
            stage=STAGE, format=FORMAT, kind=kind.method, layer=layer.name, seeds=seeds, first_layer=first,
            bank=bank, channels=layer.channels,
            network={"arch": spec.untrained or spec.arch, "mean": model.mean, "std": model.std}
            if kind.method == "rebuild" else model_identity(model),
            calibration=[ctx.dataset.digest() if ctx.dataset is not None else "noise", settings.images])
        keys[layer.name] = [key]
        if ctx.needs(STAGE, key, cost=count):
            todo.append((layer, key, {"seeds": seeds, "first": first, **bank}))
    if todo:
        _compute(ctx, spec, model, kind, todo)
    return ctx.recorded(STAGE, model.name, keys)


def _compute(ctx: StageContext, spec, model: LoadedModel, kind: NullKind,
             todo: list[tuple[LayerInfo, str, dict]]) -> None:
    """Draw each null network once and measure every layer that needs it; a layer's
    artifact is written as soon as its last network is measured (an interrupted sweep
    keeps the layers done)."""
    settings = ctx.config.null
    responses: dict[str, list[np.ndarray]] = {layer.name: [] for layer, _, _ in todo}
    kernels: dict[str, list[dict[str, np.ndarray]]] = {layer.name: [] for layer, _, _ in todo}
    banks = {layer.name: stimulus_bank(job["input_size"], job["extent"], tuple(job["centre"]), job.get("effective"))
             for layer, _, job in todo}
    cached: list[torch.Tensor] | None = None  # the calibration images, loaded once
    count = max(len(job["seeds"]) for _, _, job in todo)
    with ctx.progress(count, f"{model.name}: null networks") as bar:
        for i in range(count):
            waiting = [(layer, key, job) for layer, key, job in todo if i < len(job["seeds"])]
            network = null_model(spec, model, kind, waiting[0][2]["seeds"][i], ctx.config.root).to(ctx.device)
            if has_batchnorm(network.module):
                if cached is None:
                    cached = list(calibration_images(ctx.dataset, model.input_size, settings.images,
                                                     waiting[0][2]["seeds"][0]))
                recalibrate(network, cached, ctx.device, upto=[layer.name for layer, _, _ in waiting])
            for layer, key, job in waiting:
                response = layer_response(network, layer.name, ctx.device)
                responses[layer.name].append(respond(network, layer.name, banks[layer.name],
                                                     list(range(layer.channels)), ctx.device, response=response))
                if job["first"]:
                    region = None if job["first"] is True else Region(*job["first"])
                    kernels[layer.name].append(kernel_stats(
                        KernelSource(region).kernels(network, layer.name, layer.channels)))
                if i + 1 == len(job["seeds"]):
                    _write(ctx, key, kind, job, layer, responses.pop(layer.name), kernels.pop(layer.name))
            del network
            bar.update(1)


def _write(ctx: StageContext, key: str, kind: NullKind, job: dict, layer: LayerInfo, responses: list[np.ndarray],
           kernels: list[dict[str, np.ndarray]]) -> None:
    stats = {name: np.concatenate([k[name] for k in kernels]).round(4).tolist() for name in kernels[0]} \
        if kernels else None
    with ctx.store.writing(STAGE, key) as folder:
        np.save(folder / Null.RESPONSES, np.concatenate(responses, axis=1).astype(np.float32))
        write(folder, Null(kind=kind.kind, why=kind.why, networks=len(job["seeds"]), seeds=job["seeds"],
                           channels=layer.channels, kernels=stats,
                           calibration=_calibration(ctx, ctx.config.null.images)))


def _calibration(ctx: StageContext, images: int) -> str:
    if ctx.dataset is None:
        return f"{images} images of 1/f noise (no dataset)"
    return f"the first {min(images, len(ctx.dataset.records))} dataset images"


def cost(m: Measured) -> Cost | None:
    """Each layer's stimulus bank drawn; each null network built, its batch norms
    re-estimated on images up to the deepest layer that still needs it, then shown each of
    those layers' bank (as tuning shows it). A layer needs ``networks_for`` of them: the
    narrow early layers many, the wide late ones two, so the later networks run only the
    front of the model."""
    from atlas.stages import tuning

    settings = m.config.null
    if not m.spatial or settings.kind == "none":
        return None
    counts = {layer.name: networks_for(layer.channels, settings.units, settings.twins) for layer in m.spatial}
    images = min(m.images or settings.images, settings.images) if m.model is None or has_batchnorm(m.model.module) else 0
    items = {name: tuning.BANK * (tuning.drawing_seconds(m) + count * m.shown(name) * tuning.PASSES)
             for name, count in counts.items()}
    for i in range(max(counts.values())):
        waiting = [name for name, count in counts.items() if count > i]
        network = m.build + images * max(m.to(name) for name in waiting)
        for name in waiting:  # a network's build and calibration, shared by the layers it serves
            items[name] += network / len(waiting)
    return Cost(list(items.values()), f"{max(counts.values())} null networks x {tuning.BANK} stimuli per layer")
