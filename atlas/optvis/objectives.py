"""Objectives as values: what an optimised image maximises, composable as Lucid's are.

An ``Objective`` is a function of what the network does on a batch of images (a
``View``: each batch element's own unit, as the network reads it and before its
activation), one value per element, to maximise. Objectives add, subtract, scale and
negate, so a new one is one definition:

    from atlas.optvis.objectives import channel, l1
    sharp_channel = channel - 0.1 * l1

and ``[featurevis] objectives = ["channel", "mypackage.objectives:sharp_channel"]``
renders it for every unit, in the same batches as the named ones. Each carries its
caption, the words the unit page shows for it.

The named objectives (``atlas.registry.OBJECTIVES``) are values of this module:
``channel`` (the mean over space), ``neuron`` (the centre position), ``negative``
(minus the mean of the value before the activation), ``class_token`` (a transformer's
class token, which is at no position of the map); ``diversity`` is the channel
objective on a group of images pushed apart (``atlas.optvis.diversity_penalty``), and
``direction`` a direction of the whole layer (``atlas.optvis.direction_values``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Sequence

import torch


@dataclass(frozen=True)
class View:
    """What an objective sees of a batch: element i's own unit's map, (N, H, W) or (N,)."""

    response: torch.Tensor  # as the network reads it (``atlas.nn.response``)
    signed: torch.Tensor  # the same before the activation
    images: torch.Tensor | None = None  # (N, 3, S, S) in [0, 1], where the caller has them
    # A token layer's unit at the tokens that are not patches, (N, extra), class token first
    # (``atlas.nn.tokens``), as the network reads it; None where the caller did not read them.
    extras: torch.Tensor | None = None


class Objective:
    """A function of a ``View``, one value per element, to maximise; and its caption."""

    def __init__(self, value: Callable[[View], torch.Tensor], caption: str):
        self.value, self.caption = value, caption

    def __call__(self, view: View) -> torch.Tensor:
        return self.value(view)

    def __add__(self, other: Objective) -> Objective:
        return Objective(lambda v: self(v) + other(v), f"{self.caption}, plus {other.caption}")

    def __sub__(self, other: Objective) -> Objective:
        return Objective(lambda v: self(v) - other(v), f"{self.caption}, minus {other.caption}")

    def __mul__(self, scale: float) -> Objective:
        return Objective(lambda v: scale * self(v), f"{scale:g} times {self.caption}")

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return Objective(lambda v: -self(v), f"minus {self.caption}")


def spatial_mean(maps: torch.Tensor) -> torch.Tensor:
    return maps.flatten(1).mean(1) if maps.dim() > 1 else maps


def centre(maps: torch.Tensor) -> torch.Tensor:
    if maps.dim() == 1:
        return maps
    h, w = maps.shape[1:]
    return maps[:, h // 2, w // 2]


channel = Objective(lambda v: spatial_mean(v.response), "the mean over space of the unit's response")
neuron = Objective(lambda v: centre(v.response), "the unit's response at the centre of the feature map")
negative = Objective(lambda v: -spatial_mean(v.signed),
                     "minus the mean over space of the unit's value before its activation")
def _class_token(view: View) -> torch.Tensor:
    if view.extras is None or view.extras.shape[1] == 0:
        raise ValueError("the class_token objective needs a token layer with a class token")
    return view.extras[:, 0]


class_token = Objective(_class_token, "the unit's response at the class token")
l1 = Objective(lambda v: (v.images - 0.5).abs().flatten(1).mean(1), "the images' mean distance from grey")
NAMED: dict[str, Objective] = {"channel": channel, "neuron": neuron, "negative": negative, "diversity": channel,
                               "class_token": class_token}


def resolve(kind: str) -> Objective:
    """A named objective, or one of the user's: ``package.module:name``."""
    if kind in NAMED:
        return NAMED[kind]
    module, _, name = kind.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not isinstance(found, Objective):
        raise TypeError(f"{kind} is a {type(found).__name__}, not an atlas.optvis.objectives.Objective")
    return found


def values(view: View, kinds: Sequence[str]) -> torch.Tensor:
    """Each batch element's objective value (``kinds``: the objective of each element)."""
    chosen = {kind: resolve(kind)(view) for kind in dict.fromkeys(kinds)}
    if len(chosen) == 1:
        return chosen[kinds[0]]
    return torch.stack([chosen[kind][i] for i, kind in enumerate(kinds)])
