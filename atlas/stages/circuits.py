"""Circuits: how each swept unit is built from the swept layer before it, and a test of that reading.

For each pair of consecutive swept spatial layers (source -> target) the stage
stores the expanded weights from every source channel to every swept target unit
(``atlas.stages.weights.expanded_weights``) and, per target unit, its strongest
excitatory and inhibitory inputs (ranked by the largest positive, or most
negative, weight in the spatial map), and per source unit its strongest
downstream uses.

**Edits that test the reading.** If a unit is built mostly from its strongest
inputs, removing them (zeroing those source channels in the real, nonlinear
network) should cut its response to the stimuli and images that drive it most,
far more than removing as many source channels at random. For each target unit the
stage measures the relative drop in its mean response over its preferred synthetic
stimuli and its top dataset examples, for its top ``EDIT_K`` excitatory inputs and
for ``RANDOM_DRAWS`` random sets of the same size.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from atlas.artifacts import Circuits, Examples, Tuning, write
from atlas.data.bank import stimulus_bank, tuning_bank
from atlas.models import LoadedModel
from atlas.nn.capture import capture, find_modules
from atlas.nn.tokens import edited
from atlas.seeds import derive_seed
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, model_identity
from atlas.stages.weights import expanded_weights

STAGE = "circuits"
FORMAT = 2  # 2: every elementwise activation linearised, norms and gates held, "no answer" stored
REFERENCE = 16  # images that the linear path's held norms and gates are measured on
TOP = 6  # inputs (and outputs) kept per unit, of each sign
EDIT_K = 3  # inputs removed by an edit
RANDOM_DRAWS = 3  # random edits per unit, the baseline
PROBES = 4  # preferred stimuli and top examples each, per unit


def ranked(maps: np.ndarray, top: int = TOP) -> tuple[list[dict], list[dict]]:
    """A unit's inputs (maps: (source channels, k, k)) ranked by their strongest
    positive and strongest negative weight: (excitatory, inhibitory)."""
    peak, trough = maps.reshape(len(maps), -1).max(1), maps.reshape(len(maps), -1).min(1)
    excitatory = [{"index": int(i), "weight": round(float(peak[i]), 5)} for i in np.argsort(-peak)[:top] if peak[i] > 0]
    inhibitory = [{"index": int(i), "weight": round(float(trough[i]), 5)} for i in np.argsort(trough)[:top]
                  if trough[i] < 0]
    return excitatory, inhibitory


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    spatial = [layer for layer in layers if layer.spatial]
    keys: dict[str, list[str]] = {}
    with ctx.progress(max(len(spatial) - 1, 0), f"{model.name}: circuits") as bar:
        for source, target in zip(spatial, spatial[1:]):
            inputs = ctx.artifacts.get(target.name, {})
            key = artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model), source=source.name,
                               target=target.name, units=target.units, source_units=source.units,
                               tuning=inputs.get("tuning"), examples=inputs.get("examples"), seed=ctx.config.sweep.seed)
            keys[target.name] = [key]
            if ctx.needs(STAGE, key):
                _compute(ctx, model, source, target, key)
            ctx.store.record(STAGE, key, {"model": model.name, "layer": target.name, "source": source.name})
            bar.update(1)
    return keys


def _compute(ctx: StageContext, model: LoadedModel, source: LayerInfo, target: LayerInfo, key: str) -> None:
    try:
        expanded = expanded_weights(model, source.name, target.name, target.units, images=_reference(ctx, model))
    except ValueError:  # the target does not read the source: an artifact that says so
        with ctx.store.writing(STAGE, key) as folder:
            write(folder, Circuits(source=source.name, target=target.name, connected=False, units={}, outputs={}))
        return
    reason = no_answer(expanded.weights, expanded.linearised)
    if reason:
        ctx.no_answer(STAGE, f"{source.name} -> {target.name}", reason)
        with ctx.store.writing(STAGE, key) as folder:
            write(folder, Circuits(source=source.name, target=target.name, connected=True, units={}, outputs={},
                                   linearised=expanded.linearised, no_answer=reason))
        return
    units: dict[str, Any] = {}
    for row, unit in enumerate(target.units):
        excitatory, inhibitory = ranked(expanded.weights[row])
        units[str(unit)] = {"inputs": excitatory, "inhibitory": inhibitory}
    outputs = {}
    for s in source.units:  # downstream uses: the target units this source unit weighs on most
        excitatory, inhibitory = ranked(expanded.weights[:, s], TOP)
        outputs[str(s)] = {"excitatory": [{**e, "index": target.units[e["index"]]} for e in excitatory],
                           "inhibitory": [{**e, "index": target.units[e["index"]]} for e in inhibitory]}
    edits = edit_effects(ctx, model, source, target, {int(u): [e["index"] for e in d["inputs"][:EDIT_K]]
                                                       for u, d in units.items()})
    for unit, effect in edits.items():
        units[str(unit)]["edit"] = effect
    with ctx.store.writing(STAGE, key) as folder:
        half = expanded.weights.astype(np.float16)  # half the size, unless it loses the weights
        np.save(folder / Circuits.WEIGHTS, half if no_answer(half) is None else expanded.weights.astype(np.float32))
        write(folder, Circuits(
            source=source.name, target=target.name, connected=True, source_channels=int(expanded.weights.shape[1]),
            units_order=list(target.units), kernel=list(expanded.weights.shape[2:]), passes=expanded.passes,
            units=units, outputs=outputs, edit_k=EDIT_K, random_draws=RANDOM_DRAWS, linearised=expanded.linearised))


def no_answer(weights: np.ndarray, linearised: Sequence[str] = ()) -> str | None:
    """Why expanded weights are no answer (non-finite, or all zero: the linear path
    cancels, or only attention connects the layers), or None."""
    if not np.isfinite(weights).all():
        return "the linear path gives non-finite weights"
    if not np.abs(weights).max(initial=0) > 0:
        if "attention" in linearised:
            return "through attention: only attention connects these layers, and its pattern depends on the image"
        return "the linear path cancels: every expanded weight is zero"
    return None


def _reference(ctx: StageContext, model: LoadedModel) -> torch.Tensor:
    """Images that the linear path holds its norms and gates at: the dataset's first
    ``REFERENCE``, or without a dataset the stimulus bank's."""
    device = next(model.module.parameters()).device
    if ctx.dataset is not None:
        batch = next(ctx.dataset.batches(model.input_size, REFERENCE), None)
        if batch is not None:
            return torch.from_numpy(batch[1].transpose(0, 3, 1, 2).astype(np.float32) / 255).to(device)
    bank = stimulus_bank(model.input_size, model.input_size / 2)
    step = max(len(bank.images) // REFERENCE, 1)
    return torch.from_numpy(np.stack(bank.images[::step][:REFERENCE])).to(device)


def edit_effects(ctx: StageContext, model: LoadedModel, source: LayerInfo, target: LayerInfo,
                 top_inputs: dict[int, list[int]]) -> dict[int, dict[str, Any]]:
    """Per target unit: the relative drop in its response to its probes when its top
    inputs are removed, and when as many random source channels are."""
    probes = _probes(ctx, model, target)
    effects = {}
    for unit, top in top_inputs.items():
        if unit not in probes or not top:
            continue
        images, positions = probes[unit]
        generator = np.random.default_rng(derive_seed(ctx.config.sweep.seed, "edit", target.name, unit))
        removals = [[], top] + [generator.choice(source.shape[0], size=len(top), replace=False).tolist()
                                for _ in range(RANDOM_DRAWS)]
        base, *edited = responses_with_removed(model, source.name, target.name, unit, images, positions, removals)
        if base <= 1e-8:
            continue  # the unit does not fire on its probes: nothing to drop
        drops = [1 - value / base for value in edited]
        effects[unit] = {"removed": [int(c) for c in top], "drop_top": round(drops[0], 4),
                         "drop_random": round(float(np.mean(drops[1:])), 4), "probes": len(images)}
    return effects


def responses_with_removed(model: LoadedModel, source: str, target: str, unit: int, images: torch.Tensor,
                           positions: list[tuple[int, int]], removals: list[list[int]]) -> list[float]:
    """For each set of removed source channels (zeroed in the real network), the
    unit's mean response over ``images``, each read at its position: one batched pass."""
    module = find_modules(model.module, [source])[source]
    n = len(images)
    mask: torch.Tensor | None = None

    def remove(_module, _inputs, out):
        return edited(out, model.input_size, masked)

    def masked(maps: torch.Tensor) -> torch.Tensor:
        nonlocal mask
        if mask is None:
            mask = torch.ones(len(removals) * n, maps.shape[1], 1, 1, device=maps.device, dtype=maps.dtype)
            for i, removed in enumerate(removals):
                mask[i * n:(i + 1) * n, removed] = 0
        return maps * mask

    handle = module.register_forward_hook(remove)
    try:
        with torch.no_grad():
            out = capture(model.module, model.normalize(images.repeat(len(removals), 1, 1, 1)), [target])[target]
    finally:
        handle.remove()
    ys, xs = zip(*positions)
    at = out[:, unit][torch.arange(len(out)), torch.tensor(ys * len(removals)), torch.tensor(xs * len(removals))]
    return at.view(len(removals), n).mean(1).tolist()


def _probes(ctx: StageContext, model: LoadedModel, target: LayerInfo) -> dict[int, tuple[torch.Tensor, list]]:
    """Per unit: its preferred stimuli (at the centre) and its top dataset examples
    (where it fired), at most ``PROBES`` of each, as one batch with positions."""
    inputs = ctx.artifacts.get(target.name, {})
    device = next(model.module.parameters()).device
    height, width = target.shape[1:]
    found: dict[int, tuple[list, list]] = {}
    if inputs.get("tuning"):
        tuning = ctx.store.read(Tuning, inputs["tuning"][0]).json()
        bank = tuning_bank(model.input_size, tuning)  # drawn on the centre unit's field
        for unit, summary in tuning["units"].items():
            best = sorted(summary["preferred"].values(), key=lambda p: -p["response"])[:PROBES]
            found[int(unit)] = ([bank.images[p["index"]] for p in best], [(height // 2, width // 2)] * len(best))
    if inputs.get("examples") and ctx.dataset is not None:
        data = ctx.store.read(Examples, inputs["examples"][0]).json()
        for unit, summary in data["units"].items():
            images, positions = found.setdefault(int(unit), ([], []))
            for ex in summary["top"][:PROBES]:
                pixels = ctx.dataset.load(ex["image"], model.input_size)
                if pixels is not None:
                    images.append(pixels.transpose(2, 0, 1).astype(np.float32) / 255)
                    positions.append((ex["y"], ex["x"]))
    return {u: (torch.from_numpy(np.stack(images)).to(device), positions)
            for u, (images, positions) in found.items() if images}


COST_PER_UNIT = 0.027  # seconds per target unit: its edges, edits and summaries
FORWARDS_PER_UNIT = 10.8  # forward passes' worth of backward passes per target unit


def cost(m: Measured) -> Cost:
    return Cost([m.units[layer.name] * (COST_PER_UNIT + FORWARDS_PER_UNIT * m.to(layer.name))
                 for layer in m.spatial[1:]],
                "expanded weights")
