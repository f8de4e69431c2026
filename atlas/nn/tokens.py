"""Token layers read as maps: a transformer's features over its grid of patches.

A vision transformer's blocks output (batch, tokens, features): a class token (and
perhaps distillation or register tokens) then one token per patch, row by row. Swin's
stages output (batch, height, width, channels). Atlas reads both as a convolution's
(batch, channels, height, width): the features are the units, the patches the
positions, so every stage that reads a feature map reads a transformer's layer as it
reads a CNN's. The tokens that are not patches are kept apart (``Grid.extras``).

The layout is found from the output's shape and the input's size, the way the model
laid its patches out: a square grid of ``g`` x ``g`` patches of 2 px or more (the patch
embedding's stride times any merging since), after at most ``MOST_EXTRA`` other tokens. A (C, H, H) map is a convolution's; (H, H, C), with
C != H, is channels-last (down to 1 x 1, as Swin's last stage at a small input).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

MOST_EXTRA = 16  # class, distillation and register tokens before the patches, at most


@dataclass(frozen=True)
class Grid:
    """How a layer's output lays out its patches: ``extra`` tokens first, then
    ``height`` x ``width`` patches row by row (``tokens``), or (H, W, C) (channels-last)."""

    height: int
    width: int
    extra: int = 0
    tokens: bool = True  # (T, D); else (H, W, C)

    def to_map(self, output: torch.Tensor) -> torch.Tensor:
        """(B, T, D) or (B, H, W, C) -> (B, D, H, W), the extra tokens left out."""
        if self.tokens:
            patches = output[:, self.extra:]
            return patches.transpose(1, 2).reshape(output.shape[0], output.shape[2], self.height, self.width)
        return output.permute(0, 3, 1, 2)

    def from_map(self, maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """A map (B, D, H, W) back in the layer's own layout, the extra tokens taken from ``like``
        (the layer's output): what a hook that replaces the output returns."""
        if self.tokens:
            patches = maps.reshape(maps.shape[0], maps.shape[1], -1).transpose(1, 2)
            others = like[:, :self.extra].to(patches).expand(len(patches), -1, -1)
            return torch.cat([others, patches], dim=1)
        return maps.permute(0, 2, 3, 1)

    def extras(self, output: torch.Tensor) -> torch.Tensor:
        """The tokens that are not patches: (B, extra, D)."""
        return output[:, :self.extra]

    def describe(self) -> str:
        if not self.tokens:
            return f"{self.height}x{self.width} positions, channels last"
        extra = f" after {self.extra} other token{'s' if self.extra != 1 else ''}" if self.extra else ""
        return f"tokens: {self.height}x{self.width} patches{extra}"


def grid_of(shape: tuple[int, ...], input_size: int) -> Grid | None:
    """The patch grid of an output of ``shape`` (without the batch), or None where it is
    not a token layout (a convolution's map, a vector, anything else)."""
    if len(shape) == 3:
        height, width, channels = shape
        if height == width != channels and _patches(height, input_size, least=1):
            return Grid(height, width, tokens=False)
        return None
    if len(shape) != 2:
        return None
    tokens = shape[0]
    for extra in range(min(MOST_EXTRA, tokens) + 1):
        side = math.isqrt(tokens - extra)
        if side * side == tokens - extra and _patches(side, input_size) and extra < side * side:
            return Grid(side, side, extra)
    return None


def _patches(side: int, input_size: int, least: int = 2) -> bool:
    """Whether ``side`` patches a side can come from the input: at least ``least`` (a token
    sequence of one patch and a class token is no grid to speak of), each 2 px or more. A
    patch embedding leaves out what its stride does not reach, so the input need not be a
    whole number of patches (feature visualization's jittered images are not)."""
    return least <= side <= input_size // 2


def as_map(output: torch.Tensor, input_size: int) -> torch.Tensor:
    """A layer's output as a map where it is a token layout; otherwise as it is."""
    grid = grid_of(tuple(output.shape[1:]), input_size)
    return output if grid is None else grid.to_map(output)


def split(output: torch.Tensor, input_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A layer's output as (its map, its other tokens as (B, D, extra)); the second is
    None where the output is not a token layout with other tokens."""
    grid = grid_of(tuple(output.shape[1:]), input_size)
    if grid is None:
        return output, None
    return grid.to_map(output), grid.extras(output).transpose(1, 2) if grid.tokens and grid.extra else None


def edited(output: torch.Tensor, input_size: int, edit: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``edit`` (of a map) applied to a layer's output, given back in the layer's own
    layout (the other tokens as they were): what a hook that changes a layer returns."""
    grid = grid_of(tuple(output.shape[1:]), input_size)
    return edit(output) if grid is None else grid.from_map(edit(grid.to_map(output)), like=output)
