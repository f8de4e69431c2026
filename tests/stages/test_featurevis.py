import numpy as np
import torch

from atlas.config import ModelConfig
from atlas.models import load_model
from atlas.stages.featurevis import visualize_channels


def color_net():
    spec = ModelConfig(name="c", arch="tests.tiny_models:make_color_net", layers=("conv1",), input_size=16)
    return load_model(spec)


def render(units, seed=0, steps=64):
    return visualize_channels(color_net(), "conv1", units, steps=steps, size=32, lr=0.05,
                              seed=seed, device=torch.device("cpu"))


def test_each_unit_gets_the_color_it_detects_in_one_batch():
    images, activations = render([0, 1, 2])  # R - G, G - R, B
    mean_rgb = images.reshape(3, -1, 3).mean(axis=1)
    assert mean_rgb[0, 0] > mean_rgb[0, 1] + 30  # unit 0: red over green
    assert mean_rgb[1, 1] > mean_rgb[1, 0] + 30  # unit 1: green over red
    assert mean_rgb[2, 2] > mean_rgb[2, :2].max() + 15  # unit 2: blue
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8


def test_optimisation_raises_the_activation():
    _, before = render([0, 3], steps=1)
    _, after = render([0, 3])
    assert (after > before + 0.1).all()
    # The reported activation is the unit's mean response to its final image.
    images, activations = render([0])
    pixels = torch.from_numpy(images).float().div(255)
    expected = (pixels[..., 0] - pixels[..., 1]).mean().item()
    assert abs(activations[0] - expected) < 0.01  # up to uint8 rounding


def test_same_seed_same_images():
    a, _ = render([0, 2], seed=7)
    b, _ = render([0, 2], seed=7)
    c, _ = render([0, 2], seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
