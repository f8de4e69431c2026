"""First-layer weights as images.

A convolution that reads the RGB input directly has kernels that are themselves
small images: Gabor-like edges, color contrasts, blobs. Each unit's kernel is
scaled by its own largest magnitude, so that grey is zero and full color is the
strongest weight, then enlarged with nearest-neighbour so each weight stays one
visible square (as the Circuits articles show them).

Each kernel is also measured (``atlas.kernels``): how well it fits a Gabor and how
much of its energy is chromatic; the families stage uses both as evidence.

A layer gets weight images when its module is, or contains, a convolution over 3
input channels; deeper weights (between hidden units) belong to the circuits stage.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from atlas.capture import find_modules
from atlas.images import save_webp, to_uint8
from atlas.kernels import kernel_stats
from atlas.models import LoadedModel
from atlas.stages import LayerInfo, StageContext, artifact_key, model_identity
from atlas.store import write_json

STAGE = "weights"
FORMAT = 2  # part of the key: bump when the artifact's files change
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


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    modules = find_modules(model.module, [layer.name for layer in layers])
    keys: dict[str, list[str]] = {}
    for layer in layers:
        conv = input_conv(modules[layer.name])
        if conv is None or conv.out_channels != layer.channels:
            continue
        key = artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model), layer=layer.name,
                           units=layer.units, size=IMAGE_SIZE)
        keys[layer.name] = [key]
        if ctx.needs(STAGE, key):
            images = kernel_images(conv.weight)
            stats = kernel_stats(conv.weight.detach().cpu())
            with ctx.store.writing(STAGE, key) as folder:
                for unit in layer.units:
                    save_webp(images[unit], folder / f"{unit}.webp", size=IMAGE_SIZE, lossless=True)
                write_json(folder / "data.json", {
                    "units": list(layer.units), "kernel": list(conv.kernel_size),
                    "stats": {str(u): {name: round(float(v[u]), 4) for name, v in stats.items()} for u in layer.units},
                })
        ctx.store.record(STAGE, key, {"model": model.name, "layer": layer.name})
    return keys
