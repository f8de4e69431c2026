"""``atlas plan``: what a sweep will cost, before any of it is done.

Every estimate is a count of the work a stage does times a time measured here, on
this device, with the code the stage runs. ``estimate`` loads each model and measures
what the stages' costs are made of (``atlas.stages.Measured``: a forward pass per
image to the swept layers, the model's build, the model folded as universality runs
it); then it asks every stage of the sweep, in the registry's order, for its cost:
the ``cost`` function beside the stage's ``run`` (``Cost``: seconds per artifact it
claims). Feature visualization times one optimisation batch per layer at two step
counts; the stages that show images to the network multiply the forward pass by their
passes over them (each stage's ``PASSES``); the rest are costed per unit or once. The
multipliers were fitted on the full zoo's cold build on a 2-core CPU (2026-12-02) and
checked on two other configs (see the README, "Performance"). A stage without a cost
model is listed as not estimated, never left out.

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

from atlas import registry
from atlas.allocator import keep_freed_memory
from atlas.config import Config
from atlas.data import open_dataset
from atlas.models import LoadedModel, load_model
from atlas.names import slug
from atlas.nn.capture import capture, find_modules
from atlas.stages import Measured, universality


H100_PEAK = 989e12  # FLOP/s: an H100 SXM's dense bf16 tensor-core peak
# Of that peak a sweep is assumed to reach: small batches of small convolutions (depthwise
# ones above all) are bound by memory, not arithmetic. An assumption until
# benchmarks/gpu_sweep.py measures the share on a lent GPU.
GPU_SHARE = 0.05


@dataclass
class Estimate:
    """A cold sweep's phases, the units it would show (for the site's size), and the
    FLOP/s this device reaches on each model's forward pass (for the GPU estimate)."""

    phases: list[Phase]
    units: dict[str, int]  # a layer's folder in the site ("models/<model>/<layer>") -> units swept
    rates: dict[str, float]  # model -> FLOP/s measured here

    def on_h100(self) -> float:
        """The sweep's seconds on one H100, from FLOPs: each phase's work in FLOPs (its
        seconds here times the FLOP/s here on its model's forward pass) at ``GPU_SHARE``
        of the H100's peak. Work that is not arithmetic (drawing stimuli, encoding images,
        writing files) is counted as if it were, so this is a floor more than a forecast."""
        mean = sum(self.rates.values()) / max(len(self.rates), 1)
        return sum(phase.seconds * self.rates.get(phase.model or "", mean) for phase in self.phases) \
            / (H100_PEAK * GPU_SHARE)


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


SHOWN_BATCH = 16  # images a batch of stimuli or turned examples holds, about (tuning: 12 to 24 turns, 64 stimuli)


def forward_seconds(model: LoadedModel, layers: Sequence[str], batch: int, device: torch.device,
                    channels_last: bool = False) -> dict[str, float]:
    """Measured seconds per image of a forward pass that stops at each of ``layers`` (the
    time its output is ready, in one pass to the deepest), in batches of ``batch``."""
    x = torch.rand(batch, 3, model.input_size, model.input_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    modules = find_modules(model.module, layers)
    best = dict.fromkeys(layers, math.inf)
    ready: dict[str, float] = {}

    def hook_for(name: str):
        def hook(module, inputs, output) -> None:
            if name not in ready:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                ready[name] = time.perf_counter()
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in modules.items()]
    try:
        with torch.no_grad():
            capture(model.module, model.normalize(x), list(layers))  # warm-up: kernels chosen, memory taken
            for _ in range(5):
                ready.clear()
                start = time.perf_counter()
                capture(model.module, model.normalize(x), list(layers))
                for name in layers:
                    best[name] = min(best[name], ready[name] - start)
    finally:
        for handle in handles:
            handle.remove()
    return {name: seconds / batch for name, seconds in best.items()}


def forward_flops(model: LoadedModel, layers: Sequence[str], device: torch.device) -> float:
    """FLOPs of one image's forward pass to the deepest of ``layers`` (torch's count)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, model.input_size, model.input_size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        capture(model.module, model.normalize(x), list(layers))
    return float(counter.get_total_flops())


def estimate(config: Config, device: torch.device) -> Estimate:
    """Every stage's phases for a cold sweep of ``config`` on ``device``, in sweep order
    (with memory kept as the sweep keeps it: ``atlas.allocator``)."""
    from atlas.pipeline import inspect_layers

    keep_freed_memory()

    stages = registry.ordered(config.sweep.stages)
    images = 0
    if config.data is not None:
        images = len(open_dataset(config.data.images, config.data.limit, config.root).records)
    batch = config.sweep.batch_size
    phases: list[Phase] = []
    folded: dict[str, float] = {}  # per model: seconds per image as universality runs it
    units: dict[str, int] = {}
    rates: dict[str, float] = {}
    for i, spec in enumerate(config.models):
        key = f"{config.source}: models[{i}]"
        start = time.perf_counter()
        model = load_model(spec, root=config.root, seed=config.sweep.seed, key=key).to(device)
        build = time.perf_counter() - start
        layers = inspect_layers(model, spec.layers, spec.units, device, key)
        names = [layer.name for layer in layers]
        units.update({f"models/{spec.slug}/{slug(layer.name)}": len(layer.units) for layer in layers})
        to = forward_seconds(model, names, batch, device)
        rates[spec.name] = forward_flops(model, names, device) / max(to.values())
        measured = Measured(config, device, images, model=model, spec=spec, layers=layers, build=build,
                            forward=max(to.values()), forward_to=to,
                            shown_to=forward_seconds(model, names, SHOWN_BATCH, device))
        folded[spec.name] = max(forward_seconds(universality.for_inference(model, layers), names, batch, device,
                                                channels_last=True).values())
        phases += _costs([s for s in stages if s.scope != "atlas"], measured, spec.name)
        del model, measured
    phases += _costs([s for s in stages if s.scope == "atlas"], Measured(config, device, images, models=folded), None)
    return Estimate(phases, units, rates)


def _costs(stages: Sequence[registry.Stage], measured: Measured, model: str | None) -> list[Phase]:
    """Each stage's phase from its cost model (none where it has nothing to do)."""
    phases = []
    for stage in stages:
        model_cost = stage.cost_model()
        if model_cost is None:
            phases.append(Phase(model, stage.name, [], "not estimated: the stage has no cost model"))
        elif (cost := model_cost(measured)) is not None:
            phases.append(Phase(model, stage.name, cost.items, cost.detail))
    return phases
