"""A transformer through a sweep and a render: its token layers are swept as maps, and
its pages say what attention changes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from atlas.artifacts import UniversalitySummary, Weights
from atlas.config import load_config
from atlas.models import LoadedModel
from atlas.nn.capture import capture
from atlas.optvis.render import render_directions, render_units
from atlas.pipeline import sweep
from atlas.render import render_site
from atlas.render.catalog import read_catalog
from atlas.stages import LayerInfo
from atlas.stages.dictionary import dictionary_model, train
from atlas.stages.families import groundtruth as gt
from atlas.stages.featurevis import layer_objectives
from atlas.stages.universality import Side, compare, random_twin
from atlas.stages.universality.matching import MARGIN, best_buddies
from atlas.store import Store
from tests.conftest import make_images, write_config
from tests.tiny_models import TokenNet

CONFIG = """
[data]
images = "images"

[sweep]
cache = "cache"
stages = ["featurevis", "examples", "tuning", "circuits", "dictionary", "atlas", "universality"]

[featurevis]
steps = 4
size = 16
objectives = ["channel", "class_token"]

[examples]
top = 2

[dictionary]
expansion = 2
steps = 50
samples = 512

[atlas]
points = 48
grid = 3
min_count = 2

[[models]]
name = "block"
arch = "tests.tiny_models:make_token_block"
layers = ["embed", "hidden"]
input_size = 16
dictionary = ["hidden"]

[[models]]
name = "color"
arch = "tests.tiny_models:make_color_net"
layers = ["conv1"]
input_size = 16
"""


def test_a_token_layer_is_swept_on_its_patch_grid_and_its_pages_say_what_attention_changes(tmp_path):
    """A transformer through every per-layer stage and, beside a CNN, universality: its
    token layers (and their dictionary's features) on the patch grid, the class token
    apart, its own feature-visualization objective on the layer that has it."""
    make_images(tmp_path / "images")
    config = load_config(write_config(tmp_path, CONFIG))
    plan = sweep(config)
    site = render_site(config).out
    catalog = read_catalog(site)
    layers = {layer["name"]: layer for layer in catalog["models"][0]["layers"]}
    hidden = layers["hidden"]
    assert hidden["shape"] == [5, 4, 4]  # 5 features on the 4 x 4 patch grid, the class token apart
    unit = hidden["units"][0]
    assert unit["examples"] and unit["tuning"]
    page = (site / "models" / "block" / "hidden" / "0-15" / "0.html").read_text()
    assert "the patch where it fired and the patches around it" in page
    assert "stimuli drawn in the centre patch and the patches around it" in page
    assert "class_token" in page and "the token a vision transformer" in page
    assert "class_token" not in (site / "models" / "block" / "embed" / "0-15" / "0.html").read_text()
    circuit = (site / "models" / "block" / "hidden" / "0-15" / "circuits" / "0.html").read_text()
    assert "attention left out (the direct path" in circuit
    swept = {layer.name: layer for layer in plan.models[0].layers}
    assert swept["hidden"].key("atlas") and swept["hidden"].key("dictionary")
    features = next(layer for layer in plan.models[0].dictionaries if layer.of == "hidden")
    assert features.shape == [10, 4, 4]  # 2 x 5 dictionary features, on the same grid
    assert plan.across["universality"]["pairs"]  # the transformer against the CNN
    found = Store(config.resolve(config.sweep.cache)).read(UniversalitySummary, plan.across["universality"]["summary"])
    assert {match["model"] for match in found.matches["block"]["hidden"]["0"]} == {"color"}  # a score, and chance
    assert "block" in (site / "universality.html").read_text()


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


@pytest.mark.parametrize("grid", [False, True], ids=["tokens", "channels-last"])
def test_a_dictionary_reads_a_token_layers_features_at_its_patches(grid):
    """A dictionary's readout keeps the layer's layout, so its features are read on the
    patch grid like the layer's units, the class token apart."""
    model = _tokens(grid=grid)
    trained = train(torch.rand(512, 2), 3, l1=0.01, steps=20, batch=64, lr=1e-2, seed=0)
    wrapped = dictionary_model(model, "mlp.0", trained, "key")
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        units = capture(model.module, x, ["mlp.0"])["mlp.0"]  # (2, 2, 4, 4)
        features = capture(wrapped.module, x, ["mlp.0"])["mlp.0"]
        expected = trained.sae.pre(units.permute(0, 2, 3, 1).reshape(-1, 2) * trained.scale)
    assert features.shape == (2, 3, 4, 4)
    assert torch.allclose(features.permute(0, 2, 3, 1).reshape(-1, 3), expected, atol=1e-5)


def test_a_cnn_and_a_vit_built_from_the_same_kernels_are_matched_unit_by_unit():
    """Universality across architectures with a known answer: the hand-built transformer
    (seed 0) and a CNN whose one convolution has the same kernels, shuffled, at the
    patch stride. Read as a map of patches, each MLP neuron's best buddy is the CNN's
    unit with its kernel, correlated perfectly, and far above chance (each architecture
    with random weights); the CKA of the two layers is 1."""
    vit, construction = gt.make_transformer(0)
    k, size = construction.kernel, vit.input_size
    order = torch.randperm(14, generator=torch.Generator().manual_seed(0))  # CNN unit j has ViT unit order[j]'s kernel
    conv = nn.Conv2d(3, 14, k, stride=k)
    with torch.no_grad():
        conv.weight.copy_(vit.module.embed.weight[order])
    cnn = LoadedModel("cnn", "test", nn.Sequential(conv).eval(), (0.0,) * 3, (1.0,) * 3, size, "cnn")
    a = Side(vit, random_twin(vit, 1), [LayerInfo("mlp.0", (14, 8, 8), tuple(range(14)))])
    b = Side(cnn, random_twin(cnn, 2), [LayerInfo("0", (14, 8, 8), tuple(range(14)))])
    generator = torch.Generator().manual_seed(0)
    batches = ((x, x) for x in (torch.rand(16, 3, size, size, generator=generator) for _ in range(4)))
    result = compare(a, b, batches)
    scores = result["scores"]["mlp.0", "0"]
    assert sorted((i, j) for i, j, _ in best_buddies(scores)) == sorted((int(order[j]), j) for j in range(14))
    matched = scores[order, torch.arange(14)]
    assert matched.min() > 0.999
    assert (matched - result["chance_b"]["mlp.0", "0"]).min() > MARGIN
    assert result["cka_trained"][0, 0] > 0.999 > result["cka_random_b"][0, 0]


def test_an_activation_atlas_direction_on_a_token_layer_turns_toward_it():
    """TokenNet's MLP input read as a map of patches: the direction of unit 0 (red - green)
    gives a red image, that of unit 1 (blue) a blue one."""
    rendered = render_directions(_tokens(), "mlp.0", np.array([[1, 0], [0, 1]], np.float32), steps=60, size=16,
                                 lr=0.3, seed=0, device=torch.device("cpu"))
    _red_then_blue(rendered.images[0], rendered.images[1])
    assert not rendered.failed.any()
