"""The model sources behind ``load_model`` (see the package docstring)."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import os
import urllib.error
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from atlas.config import ModelConfig
from atlas.errors import AtlasError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Lucid's InceptionV1 takes pixels in [-117, 138]: x * 255 - 117 == (x - 117/255) / (1/255).
INCEPTIONV1_MEAN = (117 / 255,) * 3
INCEPTIONV1_STD = (1 / 255,) * 3


@dataclass
class LoadedModel:
    """A model ready for analysis: frozen, in eval mode, with its preprocessing."""

    name: str
    arch: str
    module: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int
    known_digest: str | None = None  # names the weights; None: hashed from them when first asked

    @property
    def digest(self) -> str:
        """Identifies the weights: same digest, same model. Hashing a large network takes
        a second or more, so a model that nothing keys (a null network) never pays it."""
        if self.known_digest is None:
            self.known_digest = weights_digest(self.module)
        return self.known_digest

    def with_module(self, module: nn.Module, **changes) -> "LoadedModel":
        """The same model around other weights (its digest hashed from them when asked)."""
        return dataclasses.replace(self, module=module, **{"known_digest": None, **changes})

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1], shape (N, 3, H, W), as the model expects them: resized to its
        size where it takes one size only (a vision transformer's position embeddings fix
        its grid: its ``image_size``), as feature visualization's images need."""
        fixed = getattr(self.module, "image_size", None)
        if isinstance(fixed, int) and images.shape[-2:] != (fixed, fixed):
            images = F.interpolate(images, size=(fixed, fixed), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - mean) / std

    def to(self, device: torch.device | str) -> "LoadedModel":
        self.module.to(device)
        return self


@dataclass
class _Built:
    module: nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: int


def load_model(spec: ModelConfig, *, root: Path = Path("."), seed: int = 0,
               key: str = "models[0]") -> LoadedModel:
    """Build the model of a config entry. ``key`` names the entry in error messages
    (``models[0]``); an empty key names the fields alone (for `atlas layers`)."""
    key = f"{key}." if key else ""  # from here on, key is the prefix of a field name
    scheme, _, name = spec.arch.partition(":")
    if not name:
        raise AtlasError(f"{key}arch: {spec.arch!r} is not SOURCE:NAME "
                         "(torchvision:resnet18, lucent:inceptionv1 or package.module:factory)")
    torch.manual_seed(seed)  # weights = "none" means a seeded, reproducible init
    build: Callable[..., _Built] = _SOURCES.get(scheme, _from_import_path)
    built = build(spec, name if scheme in _SOURCES else spec.arch, root, key)
    module = built.module.eval().requires_grad_(False)
    return LoadedModel(
        name=spec.name, arch=spec.arch, module=module,
        mean=spec.mean or built.mean, std=spec.std or built.std,
        input_size=spec.input_size or built.input_size,
    )


def weights_digest(module: nn.Module) -> str:
    """A hash of every parameter and buffer: the identity of a trained model."""
    h = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# -- torchvision ------------------------------------------------------------------

def _torchvision(spec: ModelConfig, name: str, root: Path, key: str) -> _Built:
    import torchvision.models as tvm

    available = tvm.list_models(module=tvm)
    if name not in available:
        raise AtlasError(f"{key}arch: torchvision has no classification model {name!r}"
                         f"{_close(name, available)}")
    weight_enum = tvm.get_model_weights(name)
    preset = weight_enum.DEFAULT  # its preprocessing applies whatever the weights
    if spec.weights in weight_enum.__members__:  # IMAGENET1K_V1, DEFAULT, ...
        preset = weight_enum[spec.weights]
        _ensure_in_hub_cache(preset.url, f"{key}weights", f"{name} {spec.weights}")
        module = tvm.get_model(name, weights=preset)
    elif spec.weights == "none":
        module = tvm.get_model(name, weights=None)
    else:
        module = tvm.get_model(name, weights=None)
        _load_state_dict(module, _weights_path(spec, root, key, list(weight_enum.__members__)), key)
    transforms = preset.transforms()
    size = int(transforms.crop_size[0])
    if spec.input_size and spec.input_size != getattr(module, "image_size", spec.input_size):
        module, size = _vit_at(name, module, spec.input_size, key), spec.input_size
    return _Built(module, tuple(transforms.mean), tuple(transforms.std), size)


def _vit_at(name: str, module: nn.Module, size: int, key: str) -> nn.Module:
    """A torchvision vision transformer (built for its own image size) at ``size``: the
    same weights, its position embeddings interpolated to the new grid of patches."""
    import torchvision.models as tvm
    from torchvision.models.vision_transformer import interpolate_embeddings

    if size % module.patch_size:
        raise AtlasError(f"{key}input_size: {name} cuts {module.patch_size} px patches; "
                         f"{size} is not a multiple of {module.patch_size}")
    resized = tvm.get_model(name, weights=None, image_size=size)
    resized.load_state_dict(interpolate_embeddings(size, module.patch_size, module.state_dict()))
    return resized


def _ensure_in_hub_cache(url: str, key: str, what: str) -> None:
    """Download named weights into the hub cache once; offline, say where the file goes."""
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if cached.exists():
        return
    try:
        torch.hub.download_url_to_file(url, str(cached), progress=False)
    except (urllib.error.URLError, OSError) as e:
        raise AtlasError(
            f"{key}: could not download the weights {what} ({e}). On a machine without "
            f"internet, copy the file {cached.name} (from {url}) to {cached}"
        ) from None


# -- lucent InceptionV1 -----------------------------------------------------------

def _lucent(spec: ModelConfig, name: str, root: Path, key: str) -> _Built:
    if name != "inceptionv1":
        raise AtlasError(f"{key}arch: lucent has no model {name!r} (lucent:inceptionv1 is the one)")
    from lucent.modelzoo.inceptionv1 import InceptionV1, model_urls

    module = InceptionV1(pretrained=False)
    if spec.weights == "pretrained":
        url = model_urls["inceptionv1"]
        _ensure_in_hub_cache(url, f"{key}weights", "lucent inceptionv1")
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
        _load_state_dict(module, cached, key)
    elif spec.weights != "none":
        _load_state_dict(module, _weights_path(spec, root, key, ["pretrained"]), key)
    return _Built(module, INCEPTIONV1_MEAN, INCEPTIONV1_STD, 224)


# -- package.module:factory -------------------------------------------------------

def _from_import_path(spec: ModelConfig, path: str, root: Path, key: str) -> _Built:
    module_name, _, attr = path.partition(":")
    try:
        target = importlib.import_module(module_name)
    except ImportError as e:
        raise AtlasError(f"{key}arch: cannot import {module_name!r} ({e}); known sources are "
                         "torchvision:NAME, lucent:inceptionv1, or an importable package.module:factory") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise AtlasError(f"{key}arch: {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    model = target()
    if not isinstance(model, nn.Module):
        raise AtlasError(f"{key}arch: {path} returned {type(model).__name__}, not a torch.nn.Module")
    if spec.weights != "none":
        _load_state_dict(model, _weights_path(spec, root, key, []), key)
    return _Built(model, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 224)


# -- the embedded zoo --------------------------------------------------------------

def _zoo(spec: ModelConfig, name: str, root: Path, key: str) -> _Built:
    from atlas.models import zoo

    if name not in zoo.ZOO:
        raise AtlasError(f"{key}arch: the zoo has no model {name!r}{_close(name, list(zoo.ZOO))}; "
                         f"it has {', '.join(zoo.ZOO)}")
    module = zoo.ZOO[name].build()
    if spec.weights == "trained":
        path = zoo.weights_path(name)
        if not path.is_file():
            raise AtlasError(f"{key}weights: no trained weights for zoo:{name} at {path}; "
                             f"`atlas train {name}` makes them")
        _load_state_dict(module, path, key)
    elif spec.weights != "none":
        _load_state_dict(module, _weights_path(spec, root, key, ["trained"]), key)
    return _Built(module, zoo.WORLD_MEAN, zoo.WORLD_STD, zoo.INPUT_SIZE)


_SOURCES = {"torchvision": _torchvision, "lucent": _lucent, "zoo": _zoo}


# -- state dicts --------------------------------------------------------------------

def _weights_path(spec: ModelConfig, root: Path, key: str, names: list[str]) -> Path:
    path = (root / Path(spec.weights).expanduser()).resolve()
    if not path.is_file():
        named = f"; or one of: none, {', '.join(names)}" if names else "; or none"
        raise AtlasError(f"{key}weights: {spec.weights!r} is not a file ({path}){named}")
    return path


def _load_state_dict(module: nn.Module, path: Path, key: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file
        raise AtlasError(f"{key}weights: {path} is not a readable state dict ({e})") from None
    if isinstance(state, dict):
        for wrapper in ("state_dict", "model"):  # common checkpoint layouts
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
    if not isinstance(state, dict):
        raise AtlasError(f"{key}weights: {path} holds a {type(state).__name__}, not a state dict")
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even when not strict
        detail = str(e).strip().splitlines()[-1].strip()
        raise AtlasError(f"{key}weights: {path} does not fit the architecture: {detail}") from None
    # Auxiliary classifiers (GoogLeNet, Inception v3) are unused at eval time.
    missing = [k for k in result.missing_keys if not k.startswith("aux")]
    unexpected = [k for k in result.unexpected_keys if not k.startswith("aux")]
    if missing or unexpected:
        raise AtlasError(f"{key}weights: {path} does not fit the architecture: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")


def _close(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
