"""Feature visualization of every swept unit: channel, neuron, negative, diversity.

``render_units`` (``atlas.optvis.render``) optimises one image per (unit, objective)
element, all in one batch (the pieces are ``atlas.optvis``'s). The forward pass stops at the target layer's input and the
layer computes only each element's own channel (``atlas.nn.narrow``: one Inception
branch, a few of its convolution's channels), the model's weights are frozen
(autograd computes gradients for the images only), convolutions run channels-last,
and where the device has native bf16 arithmetic (CUDA; CPUs with AVX512-BF16 or AMX)
the model runs under bf16 autocast (``featurevis.precision``). ``prepare`` folds the model's batch
norms into its convolutions first (``atlas.models.fold``).

What is maximised is the unit's response (``atlas.nn.response``: the activation that
follows a linear layer, or its positive part), and the first ``featurevis.redirect``
steps run with redirected rectifier gradients (``atlas.nn.redirect``) on the signed value,
so no image starts dead. Every image is then checked (``optvis.render.failures``) against its
starting image and a few random ones; a failure is stored, shown and logged, never
passed off as what the unit detects.

Artifacts are chunks of ``CHUNK`` units, so a sweep resumes chunk by chunk. How many
units run in one optimisation is separate: ``featurevis.batch`` if set, else as
many as fit in the device's memory (a fixed number on the CPU), halved and retried
when the device runs out of memory. On a CPU, ``featurevis.workers`` forked
processes of one thread each (default: one per torch thread) optimise batches side by
side (``render_batches``). Because every element has its own seed and its
own transform draws, a unit's images are the same whatever its batch-mates.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Sequence

import numpy as np
import torch

from atlas import optvis, registry
from atlas.artifacts import Featurevis, write
from atlas.config import Config
from atlas.forked import can_fork, map_forked
from atlas.images import save_webp
from atlas.models import LoadedModel
from atlas.nn.capture import device_of, layer_grid
from atlas.optvis.render import FLOOR, GAIN, PROBES, Rendered, prepare, render_units
from atlas.registry import OBJECTIVES, PRIMARY
from atlas.seeds import derive_seed
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, chunks, model_identity

log = logging.getLogger(__name__)
STAGE = "featurevis"
CHUNK = 16  # units per stored artifact: the unit of resumption
# Images optimised together on a CPU when featurevis.batch is unset, as a budget of
# input pixels: per-image cost was lowest at 8 images of 152 px (GoogLeNet) and 16-32
# of 88 px (the zoo) on a 2-core CPU; larger batches fall out of cache and slow down.
CPU_PIXELS = 200_000


def resolve_precision(setting: str, device: torch.device) -> str:
    """``featurevis.precision`` on this device: "auto" is bf16 where the device computes
    it natively (CUDA; a CPU with AVX512-BF16 or AMX, through oneDNN: 2.0x faster than
    fp32 for GoogLeNet's forward and backward to inception4a on a 2-core EPYC), else fp32."""
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16"
    native = device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return "bf16" if native else "fp32"


def elements_per_unit(objectives: Sequence[str], diversity: int) -> int:
    return sum(diversity if registry.objective(kind).grouped else 1 for kind in objectives)


def layer_objectives(objectives: Sequence[str], model: LoadedModel, layer: str) -> tuple[str, ...]:
    """The objectives a layer's units get: one that reads a class token only where the
    layer is a token layer that has one."""
    if not any(registry.objective(kind).extra_token for kind in objectives):
        return tuple(objectives)
    blank = torch.zeros(1, 3, model.input_size, model.input_size, device=device_of(model.module))
    grid = layer_grid(model.module, layer, model.normalize(blank))
    extra = grid is not None and grid.tokens and grid.extra > 0
    return tuple(kind for kind in objectives if extra or not registry.objective(kind).extra_token)


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    cfg = ctx.config.featurevis
    objectives = {layer.name: layer_objectives(cfg.objectives, model, layer.name) for layer in layers}
    params = {"diversity": cfg.diversity, "diversity_weight": cfg.diversity_weight,
              "steps": cfg.steps, "size": cfg.size, "lr": cfg.lr, "thumbnail": cfg.thumbnail,
              "seed": ctx.config.sweep.seed, "param": cfg.param, "redirect": cfg.redirect, "check": [PROBES, GAIN, FLOOR],
              "precision": resolve_precision(cfg.precision, ctx.device)}
    custom = {kind: optvis.objectives.resolve(kind).caption for kind in cfg.objectives if kind not in OBJECTIVES}
    if custom:  # a user's objective is keyed by what it says it maximises, not its name alone
        params["custom"] = custom
    keys = {layer.name: [artifact_key(stage=STAGE, model=model_identity(model), layer=layer.name, units=units,
                                      objectives=list(objectives[layer.name]), **params)
                         for units in chunks(layer.units, CHUNK)] for layer in layers}
    pending = {layer.name: [(units, key) for units, key in zip(chunks(layer.units, CHUNK), keys[layer.name])
                            if ctx.needs(STAGE, key, cost=len(units))] for layer in layers}
    if any(pending.values()):
        model = prepare(model, [layer.name for layer in layers], ctx.device)
    total = sum(len(layer.units) for layer in layers)
    with ctx.progress(total, f"{model.name}: feature vis") as bar:
        bar.update(total - sum(len(units) for todo in pending.values() for units, _ in todo))
        for layer in layers:
            _render_pending(ctx, model, layer.name, objectives[layer.name], pending[layer.name], bar)
            for units, key in zip(chunks(layer.units, CHUNK), keys[layer.name]):
                ctx.store.record(STAGE, key, {"model": model.name, "layer": layer.name, "units": list(units)})
    ctx.sync()  # the report reads every chunk, some of which other ranks made
    if ctx.shard.main:
        for layer in layers:
            _report_failures(ctx, model.name, layer, keys[layer.name])
    return keys


def _report_failures(ctx: StageContext, model: str, layer: LayerInfo, keys: list[str]) -> None:
    """Say how many of the layer's channel images failed (``failures``)."""
    failed = sorted(int(u) for key in keys for u, variants in ctx.store.read(Featurevis, key).failed.items()
                    if PRIMARY in variants)
    if failed:
        shown = ", ".join(map(str, failed[:12])) + (" ..." if len(failed) > 12 else "")
        log.warning("%s %s: feature visualization failed for %d of %d units (%s)", model, layer.name,
                    len(failed), len(layer.units), shown)
    else:
        log.info("%s %s: feature visualization raised every unit's objective", model, layer.name)


def _render_pending(ctx: StageContext, model: LoadedModel, layer: str, objectives: Sequence[str],
                    pending: list[tuple[tuple[int, ...], str]], bar) -> None:
    """Render pending chunks, several per optimisation (and one optimisation per
    worker), shrinking the batch on OOM."""
    cfg = ctx.config.featurevis
    per_unit = elements_per_unit(objectives, cfg.diversity)
    batch_units = cfg.batch or auto_batch(ctx.device, per_unit, cfg.size + 2 * optvis.Robustness.pad)
    workers = workers_for(ctx.device, cfg.workers)
    options = dict(objectives=objectives, diversity=cfg.diversity, diversity_weight=cfg.diversity_weight,
                   steps=cfg.steps, size=cfg.size, lr=cfg.lr, param=cfg.param, redirect=cfg.redirect,
                   precision=resolve_precision(cfg.precision, ctx.device),
                   seed=derive_seed(ctx.config.sweep.seed, model.digest, layer), device=ctx.device)
    while pending:
        group, used = [], 0
        while pending and (not group or used + len(pending[0][0]) <= batch_units * workers):
            group.append(pending.pop(0))
            used += len(group[-1][0])
        units = [u for chunk_units, _ in group for u in chunk_units]
        try:
            rendered = render_batches(model, layer, units, batch_units=batch_units, workers=workers, **options)
        except torch.cuda.OutOfMemoryError:
            if batch_units == 1:
                raise
            batch_units = max(1, batch_units // 2)
            log.warning("out of device memory: retrying %s with %d units per batch", layer, batch_units)
            torch.cuda.empty_cache()
            pending[:0] = group
            continue
        for chunk_units, key in group:
            _write_chunk(ctx, key, chunk_units, rendered, objectives)
            bar.update(len(chunk_units))


def render_batches(model: LoadedModel, layer: str, units: Sequence[int], *, batch_units: int, workers: int = 1,
                   **options) -> Rendered:
    """``render_units`` over ``units`` in batches of at most ``batch_units``. With
    ``workers`` > 1 (a CPU), the batches are shared among that many forked processes of
    one thread each, which inherit the model (nothing is pickled but the units and the
    images back): independent optimisations side by side use two cores better than one
    optimisation's operations split over two threads (1.14x at GoogLeNet's inception3a,
    1.06x at 5a). The model must be ``prepare``d."""
    size = batch_units if workers <= 1 else max(1, min(batch_units, math.ceil(len(units) / workers)))
    parts = [list(part) for part in chunks(units, size)]
    render = functools.partial(render_units, model, layer, **options)
    if workers > 1 and len(parts) > 1:
        results = map_forked(render, parts, workers, initializer=functools.partial(torch.set_num_threads, 1))
    else:
        results = [render(part) for part in parts]
    return Rendered(sum((r.units for r in results), []), sum((r.kinds for r in results), []),
                    *(np.concatenate([getattr(r, f) for r in results])
                      for f in ("images", "activations", "start", "random", "failed", "layer_mean")),
                    results[0].response)


def workers_for(device: torch.device, configured: int | None = None) -> int:
    """Processes rendering side by side: one on CUDA (the device is shared) or without fork."""
    if device.type != "cpu" or not can_fork():
        return 1
    return configured or torch.get_num_threads()


def auto_batch(device: torch.device, per_unit: int, side: int) -> int:
    """Units per optimisation: a pixel budget on a CPU; on CUDA, what fits in memory."""
    if device.type != "cuda":
        return max(1, CPU_PIXELS // (side * side) // per_unit)
    free, _ = torch.cuda.mem_get_info(device)
    # About 40 MB per 128 px image through a mid-sized network, with margin; the
    # out-of-memory retry corrects an overestimate.
    return max(1, int(free * 0.5 / 40e6) // per_unit)


def _write_chunk(ctx: StageContext, key: str, units: tuple[int, ...], rendered: Rendered,
                 objectives: Sequence[str]) -> None:
    """Files per unit: ``U.webp`` and ``U-thumb.webp`` (channel), ``U-neuron.webp``,
    ``U-negative.webp``, ``U-diversity-K.webp``; ``data.json`` has each one's
    activation, the same on its starting image and on the best random image, which
    failed, and what the channel objective maximised."""
    cfg = ctx.config.featurevis
    activation: dict[str, dict[str, float]] = {}
    start: dict[str, dict[str, float]] = {}
    random: dict[str, dict[str, float]] = {}
    failed: dict[str, list[str]] = {}
    layer_mean: dict[str, float] = {}
    with ctx.store.writing(STAGE, key) as folder:
        for i, (unit, kind, pixels) in enumerate(zip(rendered.units, rendered.kinds, rendered.images)):
            if unit not in units:
                continue
            u = str(unit)
            variants = activation.setdefault(u, {})
            variant = registry.variant(kind, sum(registry.objective_of(v) == kind for v in variants))
            variants[variant] = _finite(rendered.activations[i])
            start.setdefault(u, {})[variant] = _finite(rendered.start[i])
            random.setdefault(u, {})[variant] = _finite(rendered.random[i])
            if rendered.failed[i]:  # always, when a value is not finite
                failed.setdefault(u, []).append(variant)
            if variant == PRIMARY:
                layer_mean[u] = _finite(rendered.layer_mean[i])
                save_webp(pixels, folder / Featurevis.thumb(unit), size=cfg.thumbnail)
            save_webp(pixels, folder / Featurevis.image(unit, variant))
        write(folder, Featurevis(units=list(units), activation=activation, start=start, random=random,
                                 failed=failed, layer_mean=layer_mean, response=rendered.response, param=cfg.param,
                                 objectives=list(objectives), diversity=cfg.diversity, size=cfg.size,
                                 thumbnail=cfg.thumbnail))


def _finite(value: float) -> float | None:
    """A value to store: None where it is not finite (its image failed: ``failures``)."""
    return float(value) if math.isfinite(value) else None


def cost(m: Measured) -> Cost:
    per_unit = unit_seconds(m)
    items = [per_unit[layer.name] * len(c) for layer in m.layers for c in chunks(layer.units, CHUNK)]
    parts = ", ".join(f"{name} {ms:.1f} ms" for name, ms in m.notes["featurevis"]["unit-step ms"].items())
    return Cost(items, f"{sum(m.units.values())} units x {m.config.featurevis.steps} steps; per unit-step {parts}")


def unit_seconds(m: Measured) -> dict[str, float]:
    """Seconds per unit of each layer (every objective of it), measured once per model:
    one full optimisation batch, as the stage batches and forks them, timed at two step
    counts; the slope is the time per step, the rest each batch's fixed cost (starting
    image, checks against random probes)."""
    if "featurevis" not in m.notes:
        cfg = m.config.featurevis
        prepared = prepare(m.model, [layer.name for layer in m.layers], m.device)
        timed = m.notes["featurevis"] = {"per unit": {}, "unit-step ms": {}}
        for layer in m.layers:
            per_step, fixed, group = _batch_seconds(m.config, prepared, layer, m.device)
            seconds = math.ceil(len(layer.units) / group) * (fixed + cfg.steps * per_step)
            timed["per unit"][layer.name] = seconds / len(layer.units)
            timed["unit-step ms"][layer.name] = per_step * 1e3 / group
    return m.notes["featurevis"]["per unit"]


def _batch_seconds(config: Config, model: LoadedModel, layer: LayerInfo, device: torch.device,
                   probe_steps: tuple[int, int] = (2, 6)) -> tuple[float, float, int]:
    """(seconds per step, fixed seconds, units) of one full optimisation batch of the layer."""
    cfg = config.featurevis
    objectives = layer_objectives(cfg.objectives, model, layer.name)
    per_unit = elements_per_unit(objectives, cfg.diversity)
    workers = workers_for(device, cfg.workers)
    batch = cfg.batch or auto_batch(device, per_unit, cfg.size + 2 * optvis.Robustness.pad)
    units = list(layer.units[:batch * workers])
    options = dict(objectives=objectives, diversity=cfg.diversity, diversity_weight=cfg.diversity_weight,
                   size=cfg.size, lr=cfg.lr, param=cfg.param, redirect=min(cfg.redirect, probe_steps[0]),
                   precision=resolve_precision(cfg.precision, device), seed=0, device=device)
    timed = []
    for steps in (1, *probe_steps):  # the first is a warm-up
        start = time.perf_counter()
        render_batches(model, layer.name, units, batch_units=batch, workers=workers, steps=steps, **options)
        timed.append(time.perf_counter() - start)
    (a, b), (ta, tb) = probe_steps, timed[1:]
    per_step = max(tb - ta, 0.0) / (b - a)
    return per_step, max(ta - a * per_step, 0.0), len(units)
