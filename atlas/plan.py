"""``atlas plan``: what a sweep will cost, before any of it is done.

Every estimate is a count of the work a stage does times a time measured here, on
this device, with the code the stage runs:

- feature visualization: one optimisation of a full batch (as the stage batches and
  forks them) timed at two step counts, per layer; the slope is the time per step, the
  rest is each batch's fixed cost (starting image, checks against random probes);
- everything that shows images to the network (dataset examples, polysemanticity,
  dictionaries, tuning's stimuli and rotated examples, universality): images times
  the measured time per image of a forward pass through the model, times the
  stage's passes over them (``PASSES``);
- the rest (weights, circuits, families, superposition) is small and costed per unit
  (``PER_UNIT``) or once, from measured builds.

The multipliers (``PASSES``, ``PER_IMAGE``, ``PER_UNIT``) were fitted on the full zoo's
cold build on a 2-core CPU (2026-12-02) and checked on two other configs (see the
README, "Performance").

Each stage's cost is a list of the artifacts it claims, so the wall time for N ranks
follows the rule ``atlas.distributed`` assigns them by: the least loaded rank takes the
next artifact, and every rank waits for the others at the end of each stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from atlas import optvis, registry
from atlas.config import Config
from atlas.data import open_dataset
from atlas.models import LoadedModel, load_model
from atlas.nn.capture import capture
from atlas.stages import LayerInfo, chunks, featurevis, tuning, universality
from atlas.stages.null import networks_for

# Fitted on the default zoo's cold build (5 models, 24 layers, 2,112 units, 2,000
# scenes) on a 2-core CPU, 2026-12-02; each is a measured quantity's multiplier.
PASSES = {  # forward passes' worth of work per image shown, relative to one bare forward pass
    "examples": 1.0, "polysemanticity": 2.6, "tuning": 0.61, "universality": 2.4, "dictionary": 1.0}
PER_IMAGE_LAYER = {"examples": 0.00095}  # seconds per image per layer: top-k and reservoir bookkeeping
PER_IMAGE = {"tuning": 0.00036}  # seconds per stimulus or rotated example: drawing and rotating it
PER_UNIT = {  # seconds per unit swept (circuits: per unit of the layer read from the one before)
    "weights": 0.002, "examples": 0.0052, "circuits": 0.027, "families": 0.05, "polysemanticity": 0.035}
PER_NULL_UNIT = 0.01  # seconds per null unit in families: its tuning summary, metrics and detector matches
FORWARDS_PER_UNIT = {"circuits": 10.8}  # forward passes' worth of backward passes per target unit
SUPERPOSITION_PER_STEP = 0.0024  # both toy experiments, all sparsities
SAE_PER_STEP = 0.016  # one Adam step of a dictionary of 576 features, per 1,000 vectors
BANK = 798  # stimuli in tuning's bank, whatever the field's size


@dataclass
class Phase:
    """One stage of one model (or of the atlas): its artifacts' estimated seconds."""

    model: str | None
    stage: str
    items: list[float]
    detail: str

    @property
    def seconds(self) -> float:
        return sum(self.items)


def wall_seconds(phases: Sequence[Phase], ranks: int) -> float:
    """The sweep's wall time on ``ranks`` ranks: each stage's artifacts assigned as
    ``atlas.distributed`` assigns them (to the least loaded rank so far), each stage as
    long as its busiest rank."""
    total, load = 0.0, [0.0] * ranks
    for phase in phases:
        added = [0.0] * ranks
        for cost in phase.items:
            rank = min(range(ranks), key=lambda r: (load[r], r))
            load[rank] += cost
            added[rank] += cost
        total += max(added)
    return total


def forward_seconds(model: LoadedModel, layers: Sequence[str], batch: int, device: torch.device,
                    channels_last: bool = False) -> float:
    """Measured seconds per image of a forward pass to ``layers``, in batches of ``batch``."""
    x = torch.rand(batch, 3, model.input_size, model.input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        capture(model.module, model.normalize(x), list(layers))  # warm-up: kernels chosen, memory taken
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            capture(model.module, model.normalize(x), list(layers))
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
    return best / batch


def featurevis_seconds(config: Config, model: LoadedModel, layer: LayerInfo, device: torch.device,
                       probe_steps: tuple[int, int] = (2, 6)) -> tuple[float, float, int]:
    """(seconds per step, fixed seconds, units) of one full optimisation batch of the layer, as
    the stage runs it: measured at two step counts."""
    cfg = config.featurevis
    per_unit = featurevis.elements_per_unit(cfg.objectives, cfg.diversity)
    workers = featurevis.workers_for(device, cfg.workers)
    batch = cfg.batch or featurevis.auto_batch(device, per_unit, cfg.size + 2 * optvis.Robustness.pad)
    units = list(layer.units[:batch * workers])
    options = dict(objectives=cfg.objectives, diversity=cfg.diversity, diversity_weight=cfg.diversity_weight,
                   size=cfg.size, lr=cfg.lr, param=cfg.param, redirect=min(cfg.redirect, probe_steps[0]),
                   precision=featurevis.resolve_precision(cfg.precision, device), seed=0, device=device)
    timed = []
    for steps in (1, *probe_steps):  # the first is a warm-up
        start = time.perf_counter()
        featurevis.render_batches(model, layer.name, units, batch_units=batch, workers=workers, steps=steps,
                                  **options)
        timed.append(time.perf_counter() - start)
    (a, b), (ta, tb) = probe_steps, timed[1:]
    per_step = max(tb - ta, 0.0) / (b - a)
    return per_step, max(ta - a * per_step, 0.0), len(units)


def estimate(config: Config, device: torch.device) -> list[Phase]:
    """Every stage's phases for a cold sweep of ``config`` on ``device``, in sweep order."""
    from atlas.pipeline import inspect_layers

    stages = [s.name for s in registry.ordered(config.sweep.stages) if s.scope != "atlas"]
    images = 0
    if config.data is not None:
        images = len(open_dataset(config.data.images, config.data.limit, config.root).records)
    batch = config.sweep.batch_size
    phases: list[Phase] = []
    per_image: dict[str, float] = {}
    for i, spec in enumerate(config.models):
        key = f"{config.source}: models[{i}]"
        start = time.perf_counter()
        model = load_model(spec, root=config.root, seed=config.sweep.seed, key=key).to(device)
        t_build = time.perf_counter() - start  # a null network is built like the model
        layers = inspect_layers(model, spec.layers, spec.units, device, key)
        spatial = [layer for layer in layers if layer.spatial]
        units = {layer.name: len(layer.units) for layer in layers}
        names = [layer.name for layer in layers]
        t_img = forward_seconds(model, names, batch, device)  # the model as the stages after feature vis run it
        # Universality runs each model folded and channels-last: timed so.
        per_image[spec.name] = forward_seconds(universality.for_inference(model, layers), names, batch, device,
                                               channels_last=True)

        def phase(stage: str, items: list[float], detail: str) -> None:
            phases.append(Phase(spec.name, stage, items, detail))

        fv_unit: dict[str, float] = {}  # feature visualization seconds per unit, per layer
        if "featurevis" in stages:
            prepared = featurevis.prepare(model, [layer.name for layer in layers], device)
            items, parts = [], []
            for layer in layers:
                per_step, fixed, group = featurevis_seconds(config, prepared, layer, device)
                groups = math.ceil(units[layer.name] / group)
                seconds = groups * (fixed + config.featurevis.steps * per_step)
                fv_unit[layer.name] = seconds / units[layer.name]
                items += [seconds * len(c) / units[layer.name] for c in chunks(layer.units, featurevis.CHUNK)]
                parts.append(f"{layer.name} {per_step * 1e3 / group:.1f} ms")
            phase("featurevis", items, f"{sum(units.values())} units x {config.featurevis.steps} steps; "
                  f"per unit-step {', '.join(parts)}")
        if "weights" in stages:
            phase("weights", [PER_UNIT["weights"] * n for n in units.values()], "kernel images")
        if "examples" in stages and images:
            share = images * t_img * PASSES["examples"] / len(layers)  # one dataset pass for the layers
            phase("examples", [share + images * PER_IMAGE_LAYER["examples"] + PER_UNIT["examples"] * units[l.name]
                               for l in layers], f"{images} images x {t_img * 1e3:.2f} ms")
        if "tuning" in stages:
            shown = {l.name: BANK + units[l.name] * tuning.JOINT_EXAMPLES * len(tuning.JOINT_ANGLES) * (images > 0)
                     for l in spatial}
            phase("tuning", [n * (t_img * PASSES["tuning"] + PER_IMAGE["tuning"]) for n in shown.values()],
                  f"{sum(shown.values())} stimuli and rotated examples x {t_img * 1e3:.2f} ms")
        if "circuits" in stages:
            phase("circuits", [units[l.name] * (PER_UNIT["circuits"] + FORWARDS_PER_UNIT["circuits"] * t_img)
                               for l in spatial[1:]], "expanded weights")
        if "null" in stages and spatial:
            # Each null network: built, its batch norms re-estimated on images, then shown each
            # layer's stimulus bank; a layer needs ``networks_for`` of them.
            counts = {l.name: networks_for(l.channels, config.null.units, config.null.twins) for l in spatial}
            calibration = min(images or config.null.images, config.null.images) * t_img * max(counts.values())
            phase("null", [calibration / len(spatial) + t_build * counts[l.name] / len(spatial)
                           + counts[l.name] * BANK * t_img * PASSES["tuning"] for l in spatial],
                  f"{max(counts.values())} null networks x {BANK} stimuli per layer")
        if "families" in stages:
            null_units = {l.name: networks_for(l.channels, config.null.units, config.null.twins) * l.channels
                          if "null" in stages else 0 for l in spatial}
            phase("families", [PER_UNIT["families"] * units[l.name] + PER_NULL_UNIT * null_units[l.name]
                               for l in spatial], "classification, tested against the null's units")
        if "polysemanticity" in stages and images:
            share = images * t_img * PASSES["polysemanticity"] / len(layers)
            phase("polysemanticity", [share + PER_UNIT["polysemanticity"] * units[l.name] for l in layers],
                  f"{images} images x {t_img * 1e3:.2f} ms, two passes")
        if "dictionary" in stages and images and spec.dictionary:
            items = []
            for layer in (l for l in layers if l.name in spec.dictionary):
                features = config.dictionary.expansion * layer.channels
                fv = features * fv_unit.get(layer.name, 0.0)  # its features are visualised like units
                items.append(images * t_img * (PASSES["dictionary"] + PASSES["examples"] + PASSES["polysemanticity"])
                             + config.dictionary.steps * SAE_PER_STEP * config.dictionary.batch / 1000 + fv)
            phase("dictionary", items, f"{len(items)} dictionaries")
        del model
    if "universality" in config.sweep.stages and len(config.models) > 1 and images:
        names = [spec.name for spec in config.models]
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        phases.append(Phase(None, "universality", [(images + BANK) * (per_image[a] + per_image[b]) * 2 *
                                                   PASSES["universality"] for a, b in pairs],
                            f"{len(pairs)} pairs of models and their random twins"))
    if "superposition" in config.sweep.stages:
        phases.append(Phase(None, "superposition", [config.superposition.steps * SUPERPOSITION_PER_STEP],
                            f"{config.superposition.steps} steps"))
    return phases
