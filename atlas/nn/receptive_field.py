"""Receptive fields of any architecture, measured rather than derived.

The receptive field of a unit at (y, x) of a layer is the input region that can
change its value. Rather than composing kernel sizes, strides and paddings (which
breaks on branches, skips and odd modules), we backpropagate from one position to
the input over a few random images and take the bounding box of the pixels whose
gradient is ever nonzero. Two neighbouring positions give the stride, so the box of
any position follows by translation (clipped to the image).

Through attention a patch's field is the whole image: every patch can change every
token. A token layer (``atlas.nn.tokens``) whose measured field is the whole input is
given the field of its patch and the patches around it (``local``), marked
``through_attention``: examples are cut there and pages say why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atlas.models import LoadedModel
from atlas.nn.capture import capture, device_of
from atlas.nn.tokens import grid_of


@dataclass(frozen=True)
class ReceptiveField:
    """Position (y, x) of a layer sees input rows ``y * stride_y + offset_y`` onwards,
    ``size_y`` of them (likewise columns), before clipping to the image."""

    size_y: int
    size_x: int
    stride_y: float
    stride_x: float
    offset_y: float
    offset_x: float
    input_size: int
    effective: float = 0.0  # the diameter (pixels) of the centred disc holding 90% of the gradient's energy
    through_attention: bool = False  # measured as the whole image; this is the patch and its neighbours

    def local(self, patches: int = 3) -> "ReceptiveField":
        """The field of a patch and its neighbours, ``patches`` patches across."""
        size_y, size_x = round(patches * self.stride_y), round(patches * self.stride_x)
        return ReceptiveField(size_y, size_x, self.stride_y, self.stride_x, -(patches // 2) * self.stride_y,
                              -(patches // 2) * self.stride_x, self.input_size, float(max(size_y, size_x)),
                              through_attention=True)

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), exclusive, of position (y, x), clipped to the image."""
        top, left = round(y * self.stride_y + self.offset_y), round(x * self.stride_x + self.offset_x)
        clip = lambda v: min(max(v, 0), self.input_size)  # noqa: E731
        return clip(top), clip(left), clip(top + self.size_y), clip(left + self.size_x)


def _support(model: LoadedModel, layer: str, y: int, x: int, probes: torch.Tensor
             ) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """Bounding box (top, left, bottom, right) of input pixels that reach position (y, x),
    and the gradient's energy at every input pixel (H, W).

    Max pooling sends the gradient to one input of each window and a ReLU to its
    active inputs only, so one probe can miss part of the field: the union over
    many random probes (a few at a time, to bound memory) finds all of it."""
    energy = torch.zeros(probes.shape[2:], dtype=torch.float64)
    step = max(1, (4 * 224 * 224) // (probes.shape[2] * probes.shape[3]))  # about four 224 px images at once
    for start in range(0, len(probes), step):
        images = probes[start:start + step].clone().requires_grad_(True)
        acts = capture(model.module, images, [layer], detach=False)[layer]
        # Squared, so that channels whose weights are each other's negatives cannot
        # cancel in the sum (a plain sum has zero gradient for such a pair).
        acts[:, :, y, x].pow(2).sum().backward()
        # A weight that is not finite anywhere in the layer makes every gradient NaN (0 x NaN in the
        # backward pass): it tells nothing, and the field falls back to the whole image.
        energy += images.grad.double().nan_to_num(0.0, 0.0, 0.0).pow(2).sum((0, 1)).cpu()
    where = (energy > 0).nonzero()
    if len(where) == 0:
        return (0, 0, probes.shape[2], probes.shape[3]), energy
    (top, left), (bottom, right) = where.min(0).values.tolist(), where.max(0).values.tolist()
    return (top, left, bottom + 1, right + 1), energy


def _effective(energy: torch.Tensor, share: float = 0.9) -> float:
    """The diameter of the disc about the energy's centre of mass that holds ``share`` of it."""
    total = float(energy.sum())
    if total <= 0:
        return 0.0
    ys, xs = torch.meshgrid(torch.arange(energy.shape[0], dtype=torch.float64),
                            torch.arange(energy.shape[1], dtype=torch.float64), indexing="ij")
    cy, cx = float((energy * ys).sum()) / total, float((energy * xs).sum()) / total
    radius = torch.hypot(ys - cy, xs - cx).flatten()
    order = radius.argsort()
    held = energy.flatten()[order].cumsum(0) / total
    return float(2 * radius[order][int(torch.searchsorted(held, share))] + 1)


def _measure(model: LoadedModel, layer: str, images: torch.Tensor) -> tuple[ReceptiveField, bool]:
    """The field measured on probe images; and whether it touched their border (clipped)."""
    side = images.shape[-1]
    with torch.no_grad():
        height, width = capture(model.module, images[:1], [layer])[layer].shape[-2:]
    cy, cx = height // 2, width // 2
    (top, left, bottom, right), energy = _support(model, layer, cy, cx, images)
    stride_y, stride_x = side / height, side / width  # fallback for 1x1 maps
    if height > 1 and width > 1:
        ny, nx = (cy + 1, cx + 1) if cy + 1 < height and cx + 1 < width else (cy - 1, cx - 1)
        (t2, l2, b2, r2), _ = _support(model, layer, ny, nx, images)
        # Centres move by one stride per position; they are robust to a clipped edge.
        measured_y = ((t2 + b2) - (top + bottom)) / 2 / (ny - cy)
        measured_x = ((l2 + r2) - (left + right)) / 2 / (nx - cx)
        stride_y = measured_y if measured_y > 0 else stride_y
        stride_x = measured_x if measured_x > 0 else stride_x
    clipped = top == 0 or left == 0 or bottom == side or right == side
    field = ReceptiveField(bottom - top, right - left, stride_y, stride_x,
                           top - cy * stride_y, left - cx * stride_x, model.input_size, _effective(energy))
    return field, clipped


def receptive_field(model: LoadedModel, layer: str, *, probes: int = 16, seed: int = 0) -> ReceptiveField:
    """Measure the receptive field of a spatial ``layer`` on random images.

    Probes are zero-mean noise fed to the network directly (past the normalisation),
    so every ReLU is active for about half of them. They start at the model's input
    size; a field that reaches their border is measured again on probes three times
    larger, so fields wider than the input are measured whole (models that accept
    only their own size keep the clipped measurement)."""
    device = device_of(model.module)
    generator = torch.Generator().manual_seed(seed)
    probe = torch.randn(probes, 3, model.input_size, model.input_size, generator=generator).to(device)
    field, clipped = _measure(model, layer, probe)
    if clipped and field.size_y >= model.input_size and field.size_x >= model.input_size \
            and _is_tokens(model, layer, probe[:1]):
        return field.local()
    if clipped:
        side = 3 * model.input_size
        try:
            field, _ = _measure(model, layer, torch.randn(probes, 3, side, side, generator=generator).to(device))
        except (RuntimeError, AssertionError):  # the model accepts only its own input size (a ViT asserts it)
            pass
    return field


def _is_tokens(model: LoadedModel, layer: str, probe: torch.Tensor) -> bool:
    """Whether ``layer`` outputs tokens (a transformer's), not a convolution's map."""
    with torch.no_grad():
        output = capture(model.module, probe, [layer], as_maps=False)[layer]
    return grid_of(tuple(output.shape[1:]), probe.shape[-1]) is not None
