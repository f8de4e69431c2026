"""Objectives as values: they compose as Lucid's do, a config names a user's own, and
the unit page says what each image maximised."""

from __future__ import annotations


import pytest
import torch

from atlas.optvis import objectives
from atlas.optvis.objectives import View, channel, l1, negative, neuron
from atlas.render.catalog import read_catalog


def _view() -> View:
    response = torch.arange(18.0).view(2, 3, 3)
    images = torch.zeros(2, 3, 4, 4)
    images[1] = 1.0  # element 1 is white: 0.5 from grey everywhere
    return View(response=response, signed=response - 10, images=images)


def test_objectives_add_subtract_scale_and_negate_and_say_so():
    view = _view()
    assert channel(view).tolist() == [4.0, 13.0] and neuron(view).tolist() == [4.0, 13.0]
    assert negative(view).tolist() == [6.0, -3.0]  # minus the mean of response - 10
    assert l1(view).tolist() == [0.5, 0.5]
    sharp = channel - 0.1 * l1
    assert sharp(view).tolist() == pytest.approx([3.95, 12.95])
    assert (2 * channel + -neuron)(view).tolist() == [4.0, 13.0]
    assert sharp.caption == "the mean over space of the unit's response, minus 0.1 times the images' mean distance from grey"
    mixed = objectives.values(view, ["channel", "negative"])  # one objective per element
    assert mixed.tolist() == [4.0, -3.0]


def test_a_user_objective_is_named_by_its_import_path_and_must_be_an_objective():
    from tests.tiny_models import sharp_channel

    assert objectives.resolve("tests.tiny_models:sharp_channel") is sharp_channel
    with pytest.raises(TypeError, match="not an atlas.optvis.objectives.Objective"):
        objectives.resolve("tests.tiny_models:make_color_net")


def test_a_config_names_a_user_objective_and_its_images_reach_the_page(tiny_project):
    from atlas.config import ConfigError, load_config
    from atlas.pipeline import sweep
    from atlas.render import render_site

    with pytest.raises(ConfigError, match="featurevis.objectives.1.*package.module:name"):
        load_config(tiny_project / "atlas.toml", ["featurevis.objectives=['channel', 'sharp channel']"])
    config = load_config(tiny_project / "atlas.toml", [
        "featurevis.objectives=['channel', 'tests.tiny_models:sharp_channel']", "featurevis.steps=4",
        "sweep.stages=['featurevis']"])
    sweep(config)
    site = render_site(config).out
    unit = read_catalog(site)["models"][0]["layers"][0]["units"][0]
    variant = unit["featurevis_variants"]["tests.tiny_models:sharp_channel"]
    assert (site / variant["src"]).is_file() and variant["src"].endswith("0-tests.tiny_models-sharp_channel.webp")
    page = (site / unit["url"]).read_text()
    assert "<em>tests.tiny_models:sharp_channel</em> is an objective this config defines." in page
