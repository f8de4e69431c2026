"""A transformer through a sweep and a render: its token layers are swept as maps, and
its pages say what attention changes."""

from __future__ import annotations

from atlas.artifacts import Weights
from atlas.config import load_config
from atlas.pipeline import sweep
from atlas.render import render_site
from atlas.render.catalog import read_catalog
from atlas.store import Store
from tests.conftest import make_images, write_config

CONFIG = """
[data]
images = "images"

[sweep]
cache = "cache"
stages = ["featurevis", "examples", "tuning", "circuits"]

[featurevis]
steps = 4
size = 16
objectives = ["channel"]

[examples]
top = 2

[[models]]
name = "block"
arch = "tests.tiny_models:make_token_block"
layers = ["embed", "hidden"]
input_size = 16
"""


def test_a_token_layer_is_swept_on_its_patch_grid_and_its_pages_say_what_attention_changes(tmp_path):
    make_images(tmp_path / "images")
    config = load_config(write_config(tmp_path, CONFIG))
    sweep(config)
    site = render_site(config).out
    layers = read_catalog(site)["models"][0]["layers"]
    hidden = next(layer for layer in layers if layer["name"] == "hidden")
    assert hidden["shape"] == [5, 4, 4]  # 5 features on the 4 x 4 patch grid, the class token apart
    unit = hidden["units"][0]
    assert unit["examples"] and unit["tuning"]
    page = (site / "models" / "block" / "hidden" / "0-15" / "0.html").read_text()
    assert "the patch where it fired and the patches around it" in page
    assert "stimuli drawn in the centre patch and the patches around it" in page
    circuit = (site / "models" / "block" / "hidden" / "0-15" / "circuits" / "0.html").read_text()
    assert "attention left out (the direct path" in circuit


AFFINE_CONFIG = """
[sweep]
cache = "cache"
stages = ["weights"]

[[models]]
name = "tokens"
arch = "tests.tiny_models:make_token_net"
layers = ["mlp.0", "mlp.1"]
input_size = 16
"""


def test_a_token_layer_affine_in_the_pixels_gets_kernels_and_its_page_says_why(tmp_path):
    """TokenNet's MLP input is a linear read of each patch's colors: its units get kernels
    on the input (their gradients over the centre patch); after the GELU they do not."""
    config = load_config(write_config(tmp_path, AFFINE_CONFIG))
    plan = sweep(config)
    store = Store(config.resolve(config.sweep.cache))
    layers = {layer.name: layer for layer in plan.models[0].layers}
    assert layers["mlp.1"].key("weights") is None
    found = store.read(Weights, layers["mlp.0"].key("weights"))
    assert found.region == [8, 8, 4] and found.kernel == [4, 4]  # the patch at (2, 2) of the 4 x 4 grid
    assert found.stats["0"]["color_fraction"] > 0.9  # red against green
    site = render_site(config).out
    page = (site / "models" / "tokens" / "mlp.0" / "0-15" / "0.html").read_text()
    assert "this layer is an affine function of the image" in page and "over the 4×4 px" in page
