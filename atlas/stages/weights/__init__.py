"""Weights: first-layer kernels as images, and expanded weights between layers.

A convolution that reads the RGB input directly has kernels that are themselves
small images: Gabor-like edges, color contrasts, blobs. Each unit's kernel is
scaled by its own largest magnitude, so that grey is zero and full color is the
strongest weight, then enlarged with nearest-neighbour so each weight stays one
visible square (as the Circuits articles show them).

Each kernel is also measured (``atlas.stages.weights.kernels``): how well it fits a Gabor and how
much of its energy is chromatic; the families stage uses both as evidence.

A layer gets weight images when its module is, or contains, a convolution over 3
input channels.

**Expanded weights** (``expanded_weights``) connect any two layers, adjacent or not:
the linear path from one to the other with the nonlinearities set aside, as
"Visualizing Weights" (Voss et al., 2021) defines them. Under ``atlas.nn.linearize.Linearized``
every elementwise activation passes its input through, max pools average, and
per-sample norms and data-dependent gates are held at their mean over reference
images, so the map from the source layer's output to the target's is linear; its
gradient is then the weight, whatever the input. A forward hook replaces the source's output with a
batch of zeros that requires grad, one batch element per target unit, and one
backward pass from each element's own unit at the target's centre gives every
source channel's spatial weight map for all units at once. Branches (Inception) and
skips (ResNet) are handled by autograd like any other path; a path that bypasses the
source does not depend on it and contributes nothing. The circuits stage stores them.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from torch import nn

from atlas.artifacts import Weights, write
from atlas.images import save_webp, to_uint8
from atlas.models import LoadedModel
from atlas.nn import affine
from atlas.nn.affine import Region
from atlas.nn.capture import capture, device_of, find_modules
from atlas.nn.tokens import edited
from atlas.nn.linearize import Held, Linearized
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, model_identity
from atlas.stages.weights.kernels import kernel_stats

STAGE = "weights"
FORMAT = 4  # part of the key: bump when the artifact's files change (4: units with no answer)
IMAGE_SIZE = 64  # pixels on a side of a kernel image


def input_conv(module: nn.Module) -> nn.Conv2d | None:
    """The convolution over RGB that a layer module is or begins with, if any."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d) and sub.in_channels == 3 and sub.groups == 1:
            return sub
    return None


def kernel_images(weight: torch.Tensor) -> np.ndarray:
    """Conv weights (C_out, 3, k, k) -> uint8 images (C_out, k, k, 3), grey = 0."""
    w = weight.detach().float().cpu()
    scale = w.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return to_uint8((0.5 + 0.5 * w / scale).permute(0, 2, 3, 1).numpy())


@dataclass(frozen=True)
class KernelSource:
    """Where a layer's units have kernels on the input: a convolution over RGB (its own
    weights, ``region`` None) or a layer affine in the pixels (its gradients over ``region``)."""

    region: Region | None = None

    def kernels(self, model: LoadedModel, layer: str, channels: int) -> torch.Tensor:
        """(channels, 3, k, k): every unit's kernel; of a null network too, where a
        gradient is taken at the dataset's mean image whether or not it is affine."""
        if self.region is None:
            return input_conv(find_modules(model.module, [layer])[layer]).weight.detach().float().cpu()
        return affine.input_kernels(model.module, layer, model.input_size, range(channels), self.region).float()


def kernel_source(model: LoadedModel, layer: str, channels: int) -> KernelSource | None:
    """How a layer's units are kernels on the input, or None: neither a convolution over
    RGB nor affine in the pixels (or its kernels wider than ``affine.LARGEST``)."""
    conv = input_conv(find_modules(model.module, [layer])[layer])
    if conv is not None and conv.out_channels == channels:
        return KernelSource()
    if not affine.is_affine(model.module, layer, model.input_size):
        return None
    region = affine.kernel_region(model.module, layer, model.input_size, channels)
    return KernelSource(region) if region is not None and region.side <= affine.LARGEST else None


def run(ctx: StageContext, model: LoadedModel, layer: LayerInfo) -> list[str]:
    """The kernels of a layer computed by one convolution over RGB (a first layer), or
    of one that is affine in the pixels."""
    source = kernel_source(model, layer.name, layer.channels)
    if source is None:
        return []
    region = source.region
    # A convolution's key is as it was before affine layers had kernels: its artifacts stay valid.
    where = {} if region is None else {"region": [region.top, region.left, region.side]}
    key = artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model), layer=layer.name,
                       units=layer.units, size=IMAGE_SIZE, **where)
    with ctx.artifact(STAGE, key, model=model.name, layer=layer.name) as folder:
        if folder is not None:
            weight = source.kernels(model, layer.name, layer.channels)
            reasons = {u: why for u, why in no_answers(weight).items() if u in layer.units}
            weight = torch.where(weight.isfinite(), weight, torch.zeros(()))  # measure the others alone
            images, stats = kernel_images(weight), kernel_stats(weight)
            answered = [u for u in layer.units if u not in reasons]
            for unit in answered:
                save_webp(images[unit], folder / Weights.image(unit), size=IMAGE_SIZE, lossless=True)
            write(folder, Weights(units=list(layer.units), kernel=list(weight.shape[-2:]), stats={
                str(u): {name: round(float(v[u]), 4) for name, v in stats.items()} for u in answered},
                no_answer={str(u): why for u, why in reasons.items()}, **where))
            ctx.unanswered(STAGE, f"{model.name} {layer.name}", reasons)
    return [key]


def no_answers(weight: torch.Tensor) -> dict[int, str]:
    """Units whose kernel is no answer, and why: not finite, or all zero (it reads
    nothing from the image; its image would be a grey square and its fits noise)."""
    flat = weight.flatten(1)
    reasons = {}
    for unit, row in enumerate(flat):
        if not row.isfinite().all():
            reasons[unit] = "its kernel is not finite (NaN or infinity)"
        elif not row.any():
            reasons[unit] = "its kernel is all zero: it reads nothing from the image"
    return reasons


@dataclass
class ExpandedWeights:
    """Weights from every channel of ``source`` to each listed unit of ``target``."""

    source: str
    target: str
    units: list[int]  # target units, one row each
    weights: np.ndarray  # (len(units), source channels, k_y, k_x): the map around the target's centre
    passes: int  # backward passes used
    linearised: list[str] = field(default_factory=list)  # the rules the path used (``Linearized.seen``), gates held


def expanded_weights(model: LoadedModel, source: str, target: str, units: Sequence[int], *,
                     chunk: int = 64, images: torch.Tensor | None = None) -> ExpandedWeights:
    """The expanded weights from ``source`` to ``target``, ``chunk`` target units per backward pass.

    ``images`` (pixels in [0, 1]) are the reference for what ``Linearized`` holds at its
    mean (norms' scales, gates); without them those are taken at the blank probe.
    Only the window of the source that reaches the target's centre matters, so after
    one full-size pass finds it (for all units at once, with random signs so that
    nothing cancels), the batched passes run on that window plus a margin; the sum of
    their gradients with the same signs must reproduce the full-size pass, or the
    window is abandoned for the full size."""
    module = model.module
    device = device_of(module)
    probe = torch.zeros(1, 3, model.input_size, model.input_size, device=device)
    held = Held.measure(module, model.normalize(images.to(device))) if images is not None else Held()
    linear = _Linear(module, held, (source, target))
    with torch.no_grad(), linear():
        shapes = {name: out.shape[1:] for name, out in capture(module, probe, [source, target]).items()}
    if len(shapes[source]) != 3 or len(shapes[target]) != 3:
        raise ValueError(f"expanded weights need spatial layers ({source} -> {target})")
    channels, height, width = shapes[source]
    centre = (shapes[target][1] // 2, shapes[target][2] // 2)
    signs = torch.randn(len(units), generator=torch.Generator().manual_seed(0))
    pass_ = functools.partial(_linear_backward, module, find_modules(module, [source])[source], probe, target, linear)
    check = pass_(1, (channels, height, width), centre, [list(units)], [signs])[0]
    support = check.abs().amax(0) > check.abs().max() * 1e-6
    ys, xs = support.nonzero(as_tuple=True)
    if len(ys) == 0:
        return ExpandedWeights(source, target, list(units), np.zeros((len(units), channels, 1, 1)), 1, linear.used)
    window = _window(ys, xs, (height, width), (height // shapes[target][1], width // shapes[target][2]), centre)
    passes, maps = 1, None
    for top, left, bottom, right, inner_centre in (window, (0, 0, height, width, centre)):
        try:
            maps = torch.cat([pass_(len(rows), (channels, bottom - top, right - left), inner_centre,
                                    [[u] for u in rows], [torch.ones(1)] * len(rows))
                              for rows in (list(units[i:i + chunk]) for i in range(0, len(units), chunk))])
        except RuntimeError:  # e.g. a skip from before the source meets the smaller window
            continue
        finally:
            passes += -(-len(units) // chunk)
        if torch.allclose(torch.einsum("u,uchw->chw", signs, maps), check[:, top:bottom, left:right],
                          rtol=1e-4, atol=1e-6 * float(check.abs().max())):
            break
    if maps is None:
        raise RuntimeError(f"expanded weights {source} -> {target}: the model fails on a replaced batch")
    y0, x0 = int(ys.min()) - top, int(xs.min()) - left
    weights = maps[:, :, y0:y0 + int(ys.max() - ys.min()) + 1, x0:x0 + int(xs.max() - xs.min()) + 1]
    return ExpandedWeights(source, target, list(units), weights.numpy(), passes, linear.used)


class _Linear:
    """The linear network of one expanded-weights computation: each call is a context
    in which it runs linearised, its gates held (except those around the source and
    target); ``used`` gathers the rules every pass applied."""

    def __init__(self, module: nn.Module, held: Held, keep: tuple[str, ...]) -> None:
        self.module, self.held, self.keep = module, held, keep
        self.seen: set[str] = set()
        self.gates: list[str] = []

    @contextlib.contextmanager
    def __call__(self):
        mode = Linearized(self.held)
        with self.held.gating(self.module, self.keep) as gates, mode:
            yield
        self.seen |= mode.seen
        self.gates = gates

    @property
    def used(self) -> list[str]:
        return sorted(self.seen) + [f"gate {name}" for name in self.gates]


MARGIN = 2  # pixels around the support: enough for the pooling at InceptionV1's and ResNet's edges (checked)


def _window(ys: torch.Tensor, xs: torch.Tensor, size: tuple[int, int], stride: tuple[int, int],
            centre: tuple[int, int]) -> tuple[int, int, int, int, tuple[int, int]]:
    """The part of the source to compute on: the support with a margin of ``MARGIN``
    pixels (padding and pooling at the window's edge must not reach the support),
    starting on a multiple of the stride so that downsampling keeps its phase; and
    where the target's centre falls in the output it gives."""
    bounds = []
    for found, limit, step in ((ys, size[0], stride[0]), (xs, size[1], stride[1])):
        margin = MARGIN
        start = max(0, int(found.min()) - margin) // max(step, 1) * max(step, 1)
        bounds.append((start, min(limit, int(found.max()) + 1 + margin)))
    (top, bottom), (left, right) = bounds
    return top, left, bottom, right, (centre[0] - top // max(stride[0], 1), centre[1] - left // max(stride[1], 1))


def _linear_backward(module: nn.Module, source_module: nn.Module, probe: torch.Tensor, target: str, linear: _Linear,
                     batch: int,
                     shape: tuple[int, int, int], centre: tuple[int, int], units: list[list[int]],
                     weights: list[torch.Tensor]) -> torch.Tensor:
    """One backward pass of the linearized network with the source's output replaced
    by ``batch`` zero maps of ``shape``: element i's gradient of the target at
    ``centre``, summed over ``units[i]`` weighted by ``weights[i]``. (batch, *shape)."""
    replacement = torch.zeros(batch, *shape, device=probe.device, requires_grad=True)
    # A copy, not the leaf itself: the model may change its layer output in place (`out += identity`).
    handle = source_module.register_forward_hook(
        lambda _m, _i, output: edited(output, probe.shape[-1], lambda _: replacement.clone()))
    try:
        with linear():
            try:
                out = capture(module, probe, [target], detach=False)[target]
            except RuntimeError:
                if batch == 1:
                    raise
                # A model that takes its batch size from the image (a ViT's reshape and class token).
                out = capture(module, probe.expand(batch, -1, -1, -1), [target], detach=False)[target]
    finally:
        handle.remove()
    if len(out) != batch or not out.requires_grad:  # the replaced batch never reached the target
        raise ValueError(f"{target} does not depend on the replaced layer")
    seed = torch.zeros_like(out)
    for i, (rows, w) in enumerate(zip(units, weights)):
        seed[i, rows, centre[0], centre[1]] = w.to(seed)
    (grad,) = torch.autograd.grad(out, replacement, seed, allow_unused=True)
    if grad is None:
        raise ValueError(f"{target} does not depend on the replaced layer")
    return grad.detach().cpu()


COST_PER_UNIT = 0.002  # seconds per unit: its kernel image and fits (``atlas.plan`` explains the fits)


def cost(m: Measured) -> Cost:
    return Cost([COST_PER_UNIT * n for n in m.units.values()], "kernel images")
