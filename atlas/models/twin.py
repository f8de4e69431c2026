"""The null networks a label must beat: untrained twins, or the network's kernels permuted.

"Sanity Checks for Saliency Maps" (Adebayo et al., 2018): a method's output means
something about a trained network only if it differs from its output on the same
architecture with random weights. Atlas draws its nulls here:

- an **untrained twin**: the same architecture, its weights drawn again by the
  architecture's own default initialisation under a seed (the config's ``arch``
  built with ``weights = "none"``, or the import path a model names as
  ``untrained`` when its ``arch`` returns a loaded model);
- where the architecture cannot be rebuilt untrained (a factory that returns loaded
  or hand-set weights and names no ``untrained`` builder), a twin whose every layer is
  drawn again by its own ``reset_parameters`` (PyTorch's default initialisation);
- where even that cannot be done (a parameter outside any layer that can reset it),
  or when ``[null] kind = "permuted"``, the **permuted** network: every convolution's
  and linear layer's kernels with their entries shuffled within each output unit, so
  each kernel keeps its values and its norm and loses its structure.

Either way the batch norms' running statistics are estimated again on images
(``recalibrate``), as any untrained network has them: in train mode, a cumulative
average over the calibration batches.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from atlas.config import ModelConfig
from atlas.models.loading import LoadedModel, load_model

TWIN, PERMUTED = "untrained twin", "permuted kernels"


@dataclass(frozen=True)
class NullKind:
    kind: str  # TWIN or PERMUTED
    method: str  # "rebuild" (the config's arch, or its ``untrained`` builder), "reset" or "permute"
    why: str  # for the page: how the null networks were drawn


def null_kind(spec: ModelConfig, model: LoadedModel, root: Path, wanted: str = "auto") -> NullKind:
    """Which null a model gets (``wanted``: "auto" or "permuted"): a twin drawn
    by rebuilding the architecture when two seeds give two networks whose every kernel
    differs; else, when every parameter belongs to a layer with ``reset_parameters``,
    a twin with each layer drawn by PyTorch's default initialisation; else (or when
    asked) the model with its kernels permuted."""
    recalibrated = "; batch norm statistics re-estimated"
    if wanted != "permuted":
        if spec.untrained:
            return NullKind(TWIN, "rebuild", f"untrained twins built by {spec.untrained}{recalibrated}")
        if spec.arch.startswith("torchvision:") or _seeds_give_new_kernels(spec, root):
            return NullKind(TWIN, "rebuild", f"untrained twins: {spec.arch} with its default initialisation, "
                                             f"seeded{recalibrated}")
        if reinitialised(model, 0) is not None:
            return NullKind(TWIN, "reset", f"untrained twins: every layer of {spec.arch} drawn again by PyTorch's "
                                           f"default initialisation ({spec.arch} builds the same weights whatever "
                                           f"the seed){recalibrated}")
    return NullKind(PERMUTED, "permute", f"{spec.arch} with every kernel's entries permuted (its values and norm "
                                         f"kept, its structure lost){recalibrated}")


def _seeds_give_new_kernels(spec: ModelConfig, root: Path) -> bool:
    """Whether two seeds build the architecture untrained with every kernel (a parameter
    of 2+ dimensions) different: a factory that sets some weights itself, or loads them,
    gives equal ones. (torchvision's builders are known to: they are not asked.)"""
    untrained = dataclasses.replace(spec, weights="none")
    a, b = (load_model(untrained, root=root, seed=seed, key="").module for seed in (1, 2))
    kernels = [(x, y) for x, y in zip(a.parameters(), b.parameters()) if x.dim() >= 2]
    return bool(kernels) and all(not torch.allclose(x, y, rtol=0, atol=0, equal_nan=True) for x, y in kernels)


def null_model(spec: ModelConfig, model: LoadedModel, kind: NullKind, seed: int, root: Path) -> LoadedModel:
    """One null network (not yet recalibrated), with the model's preprocessing."""
    if kind.method == "rebuild":
        source = dataclasses.replace(spec, arch=spec.untrained, weights="none") if spec.untrained \
            else dataclasses.replace(spec, weights="none")
        twin = load_model(source, root=root, seed=seed, key="")
        return dataclasses.replace(twin, name=model.name, arch=model.arch, mean=model.mean, std=model.std,
                                   input_size=model.input_size)
    if kind.method == "reset":
        return reinitialised(model, seed)
    return permuted(model, seed)


def _resetter(module: nn.Module):
    """The method that draws ``module``'s own parameters again by its default
    initialisation, or None (multi-head attention names it ``_reset_parameters``)."""
    if hasattr(module, "reset_parameters"):
        return module.reset_parameters
    return module._reset_parameters if isinstance(module, nn.MultiheadAttention) else None


def reset(module: nn.Module, seed: int) -> nn.Module:
    """A copy of ``module`` with every submodule that can reset its parameters drawn
    again (PyTorch's default initialisation; batch norms back to 0 and 1), seeded."""
    module = copy.deepcopy(module)
    torch.manual_seed(seed)
    with torch.no_grad():
        for submodule in module.modules():
            if (draw := _resetter(submodule)) is not None:
                draw()
    return module


def reinitialised(model: LoadedModel, seed: int) -> LoadedModel | None:
    """The model with every parameter drawn again by its layer's own initialisation,
    or None where some parameter belongs to no layer that can reset it."""
    resettable = [m for m in model.module.modules() if _resetter(m) is not None]
    covered = {id(p) for m in resettable for p in m.parameters(recurse=False)}
    if any(id(p) not in covered for p in model.module.parameters()):
        return None
    module = reset(model.module, seed).requires_grad_(False)
    return model.with_module(module)


def permuted(model: LoadedModel, seed: int) -> LoadedModel:
    """The model with every kernel (a weight of 2+ dimensions, per output unit) shuffled."""
    generator = torch.Generator().manual_seed(seed)
    module = copy.deepcopy(model.module)
    with torch.no_grad():
        for sub in module.modules():
            weight = getattr(sub, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                flat = weight.reshape(weight.shape[0], -1)
                order = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
                weight.copy_(torch.gather(flat, 1, order.to(flat.device)).reshape(weight.shape))
    return model.with_module(module)


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def recalibrate(model: LoadedModel, batches: Iterable[torch.Tensor], device: torch.device,
                upto: Sequence[str] = ()) -> LoadedModel:
    """Re-estimate every batch norm's running statistics on ``batches`` (images in [0, 1],
    (N, 3, S, S)): train mode for the norms alone (dropout stays off), a cumulative
    average; then eval mode again. With ``upto`` (layer names), each pass stops after
    the deepest of them: the norms beyond it do not change what those layers output."""
    from atlas.nn.capture import capture

    norms = [m for m in model.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch
        norm.train()
    try:
        with torch.no_grad():
            for images in batches:
                x = model.normalize(images.to(device))
                capture(model.module, x, list(upto)) if upto else model.module(x)
    finally:
        for norm in norms:
            norm.eval()
    return model


def calibration_images(dataset, size: int, count: int, seed: int, batch: int = 32) -> Iterator[torch.Tensor]:
    """Batches of images to estimate batch norm statistics on: the dataset's first
    ``count`` readable images, or without a dataset seeded noise with the 1/f spectrum
    of natural images."""
    if dataset is not None:
        only = range(min(count, len(dataset.records)))
        for _, images in dataset.batches(size, batch, only=only):
            yield torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
        return
    rng = np.random.default_rng(seed)
    for start in range(0, count, batch):
        yield torch.from_numpy(pink_noise(rng, min(batch, count - start), size))


def pink_noise(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """Images (count, 3, size, size) in [0, 1] with a 1/f amplitude spectrum."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    amplitude = 1 / np.maximum(np.sqrt(fx ** 2 + fy ** 2), 1 / size)
    phase = rng.uniform(0, 2 * math.pi, (count, 3, size, size // 2 + 1))
    images = np.fft.irfft2(amplitude * np.exp(1j * phase), s=(size, size))
    images /= images.std(axis=(2, 3), keepdims=True) * 6
    return np.clip(images + 0.5, 0, 1).astype(np.float32)
