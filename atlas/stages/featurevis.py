"""Feature visualization: the image that most excites each unit.

Following Lucid and lucent, the image is parameterised in a decorrelated Fourier
basis (lucent's ``param.image``) and optimised through lucent's standard
transformation robustness (pad, jitter, scale, rotate), with the channel
objective: the mean activation of the unit over space.

Many units of a layer are optimised at once, one unit per batch element, so a
batch of ``featurevis.batch`` units costs about one optimisation, and the forward
pass stops at the target layer (``capture`` ends it there). Model weights are
frozen, so autograd computes gradients for the image only.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Sequence

import numpy as np
import torch

from atlas.capture import capture
from atlas.images import save_webp, to_uint8
from atlas.models import LoadedModel
from atlas.stages import LayerInfo, StageContext, artifact_key, chunks, derive_seed, model_identity
from atlas.store import write_json

log = logging.getLogger(__name__)
STAGE = "featurevis"


def visualize_channels(model: LoadedModel, layer: str, units: Sequence[int], *, steps: int,
                       size: int, lr: float, seed: int, device: torch.device
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Optimise one image per unit. Returns uint8 images (N, size, size, 3) and the
    unit's mean activation on its final image (N,)."""
    param, transform = _lucent()

    torch.manual_seed(seed)
    np.random.seed(seed)  # lucent's jitter and scale draw from numpy's global RNG
    with _lucent_on(device):
        params, image_f = param.image(size, batch=len(units))
        robustness = transform.compose(transform.standard_transforms)
    optimizer = torch.optim.Adam(params, lr=lr)
    rows = torch.arange(len(units), device=device)
    channels = torch.tensor(list(units), device=device)

    def unit_activations(images: torch.Tensor) -> torch.Tensor:
        acts = capture(model.module, model.normalize(images), [layer], detach=False)[layer]
        acts = acts[rows, channels]
        return acts.flatten(1).mean(1) if acts.dim() > 1 else acts

    with _lucent_on(device):
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = -unit_activations(robustness(image_f())).sum()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            images = image_f()
            final = unit_activations(images)
    pixels = to_uint8(images.permute(0, 2, 3, 1).float().cpu().numpy())
    return pixels, final.float().cpu().numpy()


def _lucent():
    with warnings.catch_warnings():  # kornia 0.4 uses torch.jit.script, now deprecated
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
        from lucent.optvis import param, transform
    return param, transform


@contextlib.contextmanager
def _lucent_on(device: torch.device):
    """lucent keeps its device in module globals; point them at ours for a while."""
    from lucent.optvis.param import spatial

    _, transform = _lucent()

    saved = spatial.device, transform.device
    spatial.device = transform.device = device
    try:
        yield
    finally:
        spatial.device, transform.device = saved


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    cfg = ctx.config.featurevis
    seed = ctx.config.sweep.seed
    params = {"steps": cfg.steps, "size": cfg.size, "lr": cfg.lr, "thumbnail": cfg.thumbnail, "seed": seed}
    keys: dict[str, list[str]] = {}
    total = sum(len(layer.units) for layer in layers)
    with ctx.progress(total, f"{model.name}: feature vis") as bar:
        for layer in layers:
            keys[layer.name] = []
            for units in chunks(layer.units, cfg.batch):
                key = artifact_key(stage=STAGE, model=model_identity(model), layer=layer.name,
                                   units=units, **params)
                keys[layer.name].append(key)
                if ctx.needs(STAGE, key):
                    _compute(ctx, model, layer.name, units, key, seed)
                ctx.store.record(STAGE, key, {"model": model.name, "layer": layer.name, "units": list(units)})
                bar.update(len(units))
    return keys


def _compute(ctx: StageContext, model: LoadedModel, layer: str, units: tuple[int, ...],
             key: str, seed: int) -> None:
    cfg = ctx.config.featurevis
    images, activations = visualize_channels(
        model, layer, units, steps=cfg.steps, size=cfg.size, lr=cfg.lr, device=ctx.device,
        seed=derive_seed(seed, model.digest, layer, units[0]),
    )
    with ctx.store.writing(STAGE, key) as folder:
        for unit, pixels in zip(units, images):
            save_webp(pixels, folder / f"{unit}.webp")
            save_webp(pixels, folder / f"{unit}-thumb.webp", size=cfg.thumbnail)
        write_json(folder / "data.json", {
            "units": list(units), "activation": [float(a) for a in activations],
            "size": cfg.size, "thumbnail": cfg.thumbnail,
        })
