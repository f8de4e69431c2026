"""A transformer through a sweep and a render: its token layers are swept as maps, and
its pages say what attention changes."""

from __future__ import annotations

import numpy as np
import torch

from atlas.artifacts import Weights
from atlas.config import load_config
from atlas.models import LoadedModel
from atlas.optvis.render import render_units
from atlas.pipeline import sweep
from atlas.render import render_site
from atlas.render.catalog import read_catalog
from atlas.stages.featurevis import layer_objectives
from atlas.store import Store
from tests.conftest import make_images, write_config
from tests.tiny_models import TokenNet

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


def _tokens(**options) -> LoadedModel:
    return LoadedModel("tokens", "test", TokenNet(**options).eval(), (0.0,) * 3, (1.0,) * 3, 16, "digest")


def _render(model: LoadedModel, objectives: tuple[str, ...]):
    return render_units(model, "mlp.0", [0, 1], objectives=objectives, diversity=1, diversity_weight=0.0,
                        steps=48, size=16, lr=0.1, seed=0, device=torch.device("cpu"))


def _red_then_blue(first: np.ndarray, second: np.ndarray) -> None:
    """The first image is redder (red - green) than the second, the second bluer (blue -
    the others' mean) than the first, each by 0.15 (in [0, 1] units)."""
    (r1, g1, b1), (r2, g2, b2) = ((image.astype(float) / 255).reshape(-1, 3).mean(0) for image in (first, second))
    assert (r1 - g1) - (r2 - g2) > 0.15 and (b2 - (r2 + g2) / 2) - (b1 - (r1 + g1) / 2) > 0.15


def test_the_class_token_is_its_own_objective_where_it_reads_the_image():
    """TokenNet(pooled=True)'s class token is the mean of the patches: unit 0 there is the
    whole image's red - green, unit 1 its blue. Their class-token images are red and blue;
    where the class token is a constant (TokenNet's 9, 0, 0) nothing raises it, and the
    image says it failed."""
    rendered = _render(_tokens(pooled=True), ("channel", "class_token"))
    images = {(u, k): i for i, (u, k) in enumerate(zip(rendered.units, rendered.kinds))}
    _red_then_blue(rendered.images[images[0, "class_token"]], rendered.images[images[1, "class_token"]])
    assert not rendered.failed[[images[0, "class_token"], images[1, "class_token"]]].any()
    constant = _render(_tokens(), ("class_token",))
    assert constant.failed.all()


def test_only_layers_with_a_class_token_get_its_objective():
    default = ("channel", "neuron", "class_token")
    assert layer_objectives(default, _tokens(), "mlp.0") == default
    assert layer_objectives(default, _tokens(grid=True), "mlp.0") == ("channel", "neuron")  # channels last
    assert layer_objectives(default, _tokens(), "embed") == ("channel", "neuron")  # a convolution's map


def test_a_channels_last_layers_units_are_its_features_when_optimised():
    """Swin's layout (B, H, W, C): each element optimises its own feature, not a row of
    the grid (narrowing a layer reads dimension 1 as its channels: token layers are not
    narrowed)."""
    rendered = _render(_tokens(grid=True), ("channel",))
    _red_then_blue(rendered.images[0], rendered.images[1])
