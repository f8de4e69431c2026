"""Layers that are affine in the pixels, and their units' kernels.

A convolution over RGB has kernels that are small images, and the weights and
families stages measure them (Gabor and center-surround fits, color). So does any
layer whose output is an affine function of the input: a batch norm after that
convolution, a transformer's MLP input when its attention does not depend on the
image, a linear layer over a patch embedding. Such a unit's kernel is its gradient
with respect to the input: exact, and the same at every input.

``is_affine`` checks additivity on random images (``f(a + b) - f(a) - f(b) + f(0)``
is zero to ``TOLERANCE`` of the responses for an affine map and far from it through
any rectifier, softmax or norm over the image). ``input_kernels`` takes every unit's
gradient at the centre of the layer's map, cropped to a square ``Region`` of the input
that holds them all (found by one pass over all units with random signs, so that
nothing cancels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from atlas.nn.capture import capture, device_of

TOLERANCE = 1e-3  # of the responses' range: what float arithmetic leaves of an exact identity
READS = 0.05  # of the largest weight: where a kernel reads the input (below: tails, or what attention mixes in)
LARGEST = 48  # pixels: a wider kernel is not measured as one (the fits' grids grow with its area)


@dataclass(frozen=True)
class Region:
    """A square of the input (pixels at the model's input size), possibly over its edge."""

    top: int
    left: int
    side: int

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        """(..., H, W) -> (..., side, side), zero where the square leaves the image."""
        h, w = images.shape[-2:]
        out = images.new_zeros(*images.shape[:-2], self.side, self.side)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, h), min(self.left + self.side, w)
        if y1 > y0 and x1 > x0:
            out[..., y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left] = images[..., y0:y1, x0:x1]
        return out


def is_affine(module: nn.Module, layer: str, size: int, seed: int = 0) -> bool:
    """Whether ``layer``'s output (a map) is an affine function of the input, checked on
    random images of ``size`` px."""
    a, b = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    probe = torch.stack([torch.zeros_like(a), a, b, a + b]).to(device_of(module))
    with torch.no_grad():
        out = capture(module, probe, [layer])[layer]
    if out.dim() != 4:
        return False
    f0, fa, fb, fab = out.double()
    scale = float((fa - f0).abs().max() + (fb - f0).abs().max())
    return scale > 0 and bool(torch.isfinite(out).all()) and \
        float((fab - fa - fb + f0).abs().max()) <= TOLERANCE * scale


def _gradients(module: nn.Module, layer: str, size: int, seeds: torch.Tensor) -> torch.Tensor:
    """(n, 3, size, size): row i is the gradient at a zero input of the layer's units at
    the centre of its map, weighted by ``seeds[i]`` (n, its first units)."""
    x = torch.zeros(len(seeds), 3, size, size, device=device_of(module), requires_grad=True)
    out = capture(module, x, [layer], detach=False)[layer]
    grad_out = torch.zeros_like(out)
    grad_out[:, :seeds.shape[1], out.shape[2] // 2, out.shape[3] // 2] = seeds.to(out)
    (grad,) = torch.autograd.grad(out, x, grad_out, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad.detach()


def kernel_region(module: nn.Module, layer: str, size: int, channels: int) -> Region | None:
    """The smallest square of the input that holds the kernel of every unit at the centre
    of the layer's map, or None where no unit reads the input there."""
    signs = torch.randn(4, channels, generator=torch.Generator().manual_seed(0))
    support = _gradients(module, layer, size, signs).abs().amax((0, 1))
    ys, xs = (support > support.max() * READS).nonzero(as_tuple=True)
    if not len(ys):
        return None
    height, width = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
    side = max(height, width)
    return Region(int(ys.min()) - (side - height) // 2, int(xs.min()) - (side - width) // 2, side)


def input_kernels(module: nn.Module, layer: str, size: int, units: Sequence[int], region: Region,
                  chunk: int = 32) -> torch.Tensor:
    """(len(units), 3, side, side): each unit's gradient at a zero input, at the centre of
    the layer's map, over ``region``: its kernel, where the layer is affine."""
    out = []
    for start in range(0, len(units), chunk):
        rows = list(units[start:start + chunk])
        seeds = torch.zeros(len(rows), max(rows) + 1)
        seeds[torch.arange(len(rows)), rows] = 1.0
        out.append(region.crop(_gradients(module, layer, size, seeds)).cpu())
    return torch.cat(out)
