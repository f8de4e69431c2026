"""The configs Atlas ships must load and name layers their models really have."""

from pathlib import Path

import pytest
import torch
import torchvision.models as tvm

from atlas.config import load_config
from atlas.models import zoo
from atlas.nn.capture import find_modules
from tests.conftest import REPO

CONFIGS = [REPO / "atlas.toml", *sorted((REPO / "configs").glob("*.toml"))]


def _skeleton(arch: str) -> torch.nn.Module:
    """The architecture without real weights (meta tensors: no memory, no init)."""
    source, _, name = arch.partition(":")
    with torch.device("meta"):
        if source == "torchvision":
            return tvm.get_model(name)
        if source == "zoo":
            return zoo.ZOO[name].build()
        if source == "atlas.models.efficientnet_lite":
            efficientnet = pytest.importorskip("efficientnet_lite_pytorch")  # the real extra
            return efficientnet.EfficientNet.from_name(f"efficientnet-{name}")
        from lucent.modelzoo.inceptionv1 import InceptionV1
        return InceptionV1()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_its_layers_exist(path: Path):
    config = load_config(path)
    for model in config.models:
        find_modules(_skeleton(model.arch), model.layers)
