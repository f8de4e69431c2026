"""The optimisation loop: many units' images rendered in one batch, each checked.

``render_units`` optimises every (unit, objective) element of a batch together, the
first ``redirect`` steps with redirected rectifier gradients (``atlas.nn.redirect``),
so no image starts dead; ``render_directions`` does the same for directions of a
whole layer (activation atlas cells). Every image is then checked (``failures``)
against its start and against random probe images: one that did not raise its
objective clearly, or whose objective is not finite, failed, and says so.
``prepare`` gives the model as the loop runs it (batch norms folded, space-to-depth
stems on a CPU, channels-last).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from atlas import optvis
from atlas.images import to_uint8
from atlas.models import LoadedModel
from atlas.models.fold import fold_batchnorms
from atlas.models.stem import space_to_depth_stems
from atlas.nn.capture import capture, layer_grid, layer_inputs
from atlas.nn.narrow import NarrowedLayer, narrow_layer
from atlas.nn.redirect import redirected_rectifiers
from atlas.nn.tokens import split
from atlas.nn.response import Response, find_response
from atlas.registry import objective
from atlas.seeds import derive_seed

log = logging.getLogger(__name__)

PROBES = 8  # random images each unit's optimised image must beat
GAIN = 0.1  # ... and its start by this share of the larger of the two
FLOOR = 1e-3  # ... and by this share of the layer's largest response to a random image


@dataclass
class Rendered:
    """One optimisation's results, one entry per batch element."""

    units: list[int]
    kinds: list[str]
    images: np.ndarray  # uint8 (N, size, size, 3)
    activations: np.ndarray  # (N,) each element's objective value on its final image (signed for negative)
    start: np.ndarray  # (N,) the same on the starting image
    random: np.ndarray  # (N,) the same on the best of PROBES random images
    failed: np.ndarray  # (N,) bool: the image did not raise the objective clearly (``failures``)
    layer_mean: np.ndarray  # (N,) the layer's own channel mean on the final image, before any rectification
    response: str  # what the channel objective maximised (``atlas.nn.response``)


class _Read(NamedTuple):
    """What one forward pass of ``render_units`` reads of its layer."""

    acts: torch.Tensor | None  # the layer's activations (None when narrowed)
    maps: torch.Tensor  # each element's own unit's map
    others: torch.Tensor | None = None  # its values at a token layer's other tokens, where an objective reads them


def prepare(model: LoadedModel, layers: Sequence[str], device: torch.device) -> LoadedModel:
    """The model as feature visualization runs it: batch norms folded into the
    convolutions (except into a requested layer), on a CPU strided stems computed over
    space-to-depth inputs (``atlas.models.stem``), channels-last. A copy when anything
    changed, and always a module of its own: the stages after this one run the model
    as it was (a model torch.fx cannot trace used to be made channels-last in place, so
    those stages' arithmetic depended on whether feature vis ran in the same process).
    The weights digest stays, as the function computed is the same."""
    module, folded = fold_batchnorms(model.module, keep=layers)
    stems = 0
    if device.type == "cpu":  # measured on a CPU only
        module, stems = space_to_depth_stems(module, keep=layers)
    log.debug("%s: folded %d batch norms, %d stems to space-to-depth", model.name, folded, stems)
    if module is model.module:
        module = copy.deepcopy(module)
    return dataclasses.replace(model, module=module.to(memory_format=torch.channels_last))


def failures(start: torch.Tensor, end: torch.Tensor, random: torch.Tensor, scale: float) -> torch.Tensor:
    """Which optimisations failed, from objective values (to maximise): an image must
    beat every random probe image, and its start by ``GAIN`` of the larger value and by
    ``FLOOR`` of the layer's scale (a unit at numerical noise cannot pass); a value that
    is not finite fails."""
    gain = end - start
    passed = (gain > GAIN * torch.maximum(start.abs(), end.abs()) + FLOOR * scale) & (end > random)
    return ~passed  # NaN compares false


def element_seeds(seed: int, units: Sequence[int], kinds: Sequence[str]) -> list[int]:
    """Each batch element's seed, from (unit, objective, which image of it), never from
    its position in the batch: a unit's images do not depend on what it is batched with."""
    seen: dict[tuple[int, str], int] = {}
    seeds = []
    for unit, kind in zip(units, kinds):
        k = seen[(unit, kind)] = seen.get((unit, kind), -1) + 1
        seeds.append(derive_seed(seed, unit, kind, k))
    return seeds


def render_units(model: LoadedModel, layer: str, units: Sequence[int], *, objectives: Sequence[str],
                 diversity: int, diversity_weight: float, steps: int, size: int, lr: float, seed: int,
                 device: torch.device, param: str = "fft", redirect: int = 16, precision: str = "fp32") -> Rendered:
    """Optimise the images of ``units`` for every objective in one batch, the first
    ``redirect`` steps with redirected rectifier gradients (``atlas.nn.redirect``)."""
    element_units, kinds, groups = optvis.objective_batch(units, objectives, diversity)
    seeds = element_seeds(seed, element_units, kinds)
    images = optvis.PARAMETERISATIONS[param](seeds, size, device)
    robustness = optvis.Robustness()
    draws = robustness.draw(seeds, steps).to(device)
    unit_index = torch.tensor(element_units, device=device)
    bf16 = precision == "bf16"
    # Channels-last convolutions: 1.25-1.34x faster on a 2-core AVX2 CPU at every
    # GoogLeNet depth we measured, and the layout tensor cores want on CUDA.
    model.module.to(memory_format=torch.channels_last)
    with torch.no_grad():
        first = robustness(images()[:1], draws[0, :1])
        response = find_response(model.module, layer, model.normalize(first))
        tokens = layer_grid(model.module, layer, model.normalize(first)) is not None
    extras = any(objective(kind).extra_token for kind in kinds)  # the class token is read too
    # The diversity penalty compares whole layers; every other objective reads one
    # channel per element, so the layer computes only those (``atlas.nn.narrow``), unless
    # its channels are a token layer's features (narrowing reads dimension 1 as channels).
    narrowed = None if (groups and diversity_weight > 0) or tokens else \
        _narrowed_layer(model, layer, element_units, images)

    def layer_maps(x: torch.Tensor) -> _Read:
        x = model.normalize(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if narrowed is not None:
                return _Read(None, narrowed(*layer_inputs(model.module, x, layer))[:, 0].float())
            acts = capture(model.module, x, [layer], detach=False, as_maps=not extras)[layer].float()
        others = None
        if extras:
            acts, others = split(acts, x.shape[-1])
            others = None if others is None else optvis.unit_maps(others, unit_index)
        return _Read(acts, optvis.unit_maps(acts, unit_index), others)

    def objectives_of(read: _Read, x: torch.Tensor, warm_up: bool = False) -> torch.Tensor:
        signed = response.signed(read.maps, unit_index)
        rectify = response.signed if warm_up else response
        others = None if read.others is None else rectify(read.others, unit_index)
        return optvis.objective_values(rectify(read.maps, unit_index), signed, kinds, x, others)

    def loss(x: torch.Tensor, warm_up: bool) -> torch.Tensor:
        read = layer_maps(x)
        values = objectives_of(read, x, warm_up=warm_up)
        if groups and diversity_weight > 0:
            penalty = optvis.diversity_penalty(read.acts, groups)
            return -values.sum() + diversity_weight * values.detach().abs().mean() * penalty
        return -values.sum()

    with torch.no_grad():
        begun = images()
        start = objectives_of(layer_maps(begun), begun)
    _optimise(images, loss, robustness, draws, lr=lr, redirect=redirect)
    with torch.no_grad():
        final = images()
        read = layer_maps(final)
        maps = read.maps
        values = objectives_of(read, final)
        random, scale = _random_probes(model, layer, response, element_units, kinds, size, seed, device)
    negative = torch.tensor([objective(k).negative for k in kinds], device=device)
    # Report what the unit did, not the loss: a negative image's channel mean stays negative-signed.
    reported = lambda v: torch.where(negative, -v, v).float().cpu().numpy()  # noqa: E731
    return Rendered(element_units, kinds, to_uint8(final.permute(0, 2, 3, 1).float().cpu().numpy()),
                    reported(values), reported(start), reported(random),
                    failures(start, values, random, scale).cpu().numpy(),
                    maps.flatten(1).mean(1).float().cpu().numpy() if maps.dim() > 1 else maps.float().cpu().numpy(),
                    response.description)


def _optimise(images: torch.nn.Module, loss: Callable[[torch.Tensor, bool], torch.Tensor],
              robustness: optvis.Robustness, draws: torch.Tensor, *, lr: float, redirect: int) -> None:
    """Adam on the images' parameters, one step per draw of the transforms; ``loss`` of
    the transformed images, told whether rectifier gradients are still redirected."""
    optimizer = torch.optim.Adam(images.parameters(), lr=lr)
    for step in range(len(draws)):
        optimizer.zero_grad(set_to_none=True)
        with redirected_rectifiers(step < redirect):
            value = loss(robustness(images(), draws[step]), step < redirect)
        value.backward()
        optimizer.step()


def render_directions(model: LoadedModel, layer: str, directions: np.ndarray, *, steps: int, size: int, lr: float,
                      seed: int, device: torch.device, param: str = "fft", redirect: int = 16,
                      precision: str = "fp32", origin: np.ndarray | None = None) -> Rendered:
    """One image per direction of the layer's activation space (directions: (N,
    channels), e.g. activation atlas cells' mean activations less the layer's), all in
    one batch: the ``direction`` objective (``optvis.direction_values``) on the layer's
    response at every position, less ``origin`` (channels,) if given, checked like a unit's
    image against its start and random images. Element i is seeded by (seed, i). The
    model must be ``prepare``d."""
    seeds = [derive_seed(seed, "direction", i) for i in range(len(directions))]
    images = optvis.PARAMETERISATIONS[param](seeds, size, device)
    robustness = optvis.Robustness()
    draws = robustness.draw(seeds, steps).to(device)
    along = torch.as_tensor(np.asarray(directions), dtype=torch.float32, device=device)
    centre = None if origin is None else torch.as_tensor(np.asarray(origin), dtype=torch.float32, device=device)
    value = functools.partial(optvis.direction_values, origin=centre)
    model.module.to(memory_format=torch.channels_last)
    with torch.no_grad():
        response = find_response(model.module, layer, model.normalize(images()[:1]))
    channels = torch.arange(along.shape[1], device=device)

    def read(x: torch.Tensor, warm_up: bool = False) -> torch.Tensor:
        """The layer's response to images x over all its channels (signed while warming up)."""
        x = model.normalize(x).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            acts = capture(model.module, x, [layer], detach=False)[layer].float()
        flat, index = acts.flatten(0, 1), channels.repeat(len(acts))
        return (response.signed if warm_up else response)(flat, index).view_as(acts)

    with torch.no_grad():
        start = value(read(images()), along)
    _optimise(images, lambda x, warm_up: -value(read(x, warm_up), along).sum(), robustness,
              draws, lr=lr, redirect=redirect)
    with torch.no_grad():
        final = images()
        values = value(read(final), along)
        probes = read(probe_images(size, seed).to(device))
        random = torch.stack([value(probes[p:p + 1].expand(len(along), *probes.shape[1:]), along)
                              for p in range(PROBES)]).amax(0)
    n = len(directions)
    return Rendered(list(range(n)), ["direction"] * n, to_uint8(final.permute(0, 2, 3, 1).float().cpu().numpy()),
                    values.cpu().numpy(), start.cpu().numpy(), random.cpu().numpy(),
                    failures(start, values, random, float(random.abs().max())).cpu().numpy(), np.zeros(n, np.float32),
                    response.description)


def probe_images(size: int, seed: int) -> torch.Tensor:
    """``PROBES`` random images an optimised image must beat: uniform noise, half of it blurred."""
    noise = torch.rand(PROBES, 3, size, size, generator=torch.Generator().manual_seed(seed))
    noise[PROBES // 2:] = torch.nn.functional.avg_pool2d(noise[PROBES // 2:], 5, 1, 2, count_include_pad=False)
    return noise


def _random_probes(model: LoadedModel, layer: str, response: Response, units: Sequence[int], kinds: Sequence[str],
                   size: int, seed: int, device: torch.device) -> tuple[torch.Tensor, float]:
    """Each element's best objective value on ``PROBES`` random images (uniform noise,
    half of it blurred), and the layer's scale: the largest mean response of any of its
    units to one of them. The probes depend on the layer's seed only, never on the batch."""
    probes = probe_images(size, seed).to(device)
    x = model.normalize(probes).contiguous(memory_format=torch.channels_last)
    acts, others = split(capture(model.module, x, [layer], as_maps=False)[layer].float(), size)  # (P, C, ...)
    channels = torch.arange(acts.shape[1], device=device)
    index = channels.repeat_interleave(PROBES)

    def channel_major(values: torch.Tensor) -> torch.Tensor:
        return values.transpose(0, 1).reshape(values.shape[1] * PROBES, *values.shape[2:])

    flat = channel_major(acts)
    rectified = response(flat, index)
    signed = response.signed(flat, index)
    others = None if others is None else response(channel_major(others), index)
    means = (rectified.flatten(1).mean(1) if rectified.dim() > 1 else rectified).view(-1, PROBES)
    scale = float(means.abs().nan_to_num(0.0, 0.0, 0.0).max())  # a unit that is not finite has no scale
    best = []
    for unit, kind in zip(units, kinds):
        rows = slice(unit * PROBES, (unit + 1) * PROBES)
        best.append(optvis.objective_values(rectified[rows], signed[rows], [kind] * PROBES, probes,
                                            None if others is None else others[rows]).max())
    return torch.stack(best), scale


def _narrowed_layer(model: LoadedModel, layer: str, channels: Sequence[int],
                    images: optvis.FourierImages) -> NarrowedLayer | None:
    """``atlas.nn.narrow``'s layer for these channels, checked on the first images; or None."""
    with torch.no_grad():
        x = model.normalize(images()).contiguous(memory_format=torch.channels_last)
        inputs = layer_inputs(model.module, x, layer)
    if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor):
        return None
    return narrow_layer(model.module.get_submodule(layer), channels, inputs[0])
