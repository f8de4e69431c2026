import json

import numpy as np
import pytest
import torch

from atlas.config import ModelConfig
from atlas.models import load_model
from atlas.nn.narrow import narrow_layer
from atlas.optvis import render as optvis_render
from atlas.optvis.render import prepare, render_units
from atlas.stages import featurevis


def color_net():
    spec = ModelConfig(name="c", arch="tests.tiny_models:make_color_net", layers=("conv1",), input_size=16)
    return load_model(spec)


def render(units, objectives=("channel",), seed=0, steps=64, diversity=3, diversity_weight=0.5, precision="fp32"):
    return render_units(color_net(), "conv1", units, objectives=objectives, diversity=diversity,
                        diversity_weight=diversity_weight, steps=steps, size=32, lr=0.05, seed=seed,
                        device=torch.device("cpu"), precision=precision)


def mean_rgb(image):
    return image.reshape(-1, 3).mean(0)


def test_each_unit_gets_the_color_it_detects_in_one_batch():
    result = render([0, 1, 2])  # R - G, G - R, B, each followed by conv1's ReLU
    red, green, blue = (mean_rgb(image) for image in result.images)
    assert red[0] > red[1] + 20 and green[1] > green[0] + 20 and blue[2] > blue[:2].max() + 15
    assert not result.failed.any() and result.response == "the ReLU that follows this linear layer"
    assert result.images.shape == (3, 32, 32, 3) and result.images.dtype == np.uint8


def test_bf16_autocast_finds_the_same_colors_and_reports_fp32_values():
    fp32, bf16 = render([0, 1, 2]), render([0, 1, 2], precision="bf16")
    red, green, blue = (mean_rgb(image) for image in bf16.images)
    assert red[0] > red[1] + 20 and green[1] > green[0] + 20 and blue[2] > blue[:2].max() + 15
    assert bf16.activations.dtype == np.float32 and not bf16.failed.any()
    np.testing.assert_allclose(bf16.activations, fp32.activations, rtol=0.1)


def test_precision_auto_is_bf16_only_where_the_device_has_it():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert featurevis.resolve_precision("auto", cpu) == ("bf16" if native else "fp32")
    assert featurevis.resolve_precision("auto", cuda) == "bf16"
    assert featurevis.resolve_precision("fp32", cuda) == "fp32" and featurevis.resolve_precision("bf16", cpu) == "bf16"


def test_optimisation_raises_the_activation_it_reports():
    before = render([0, 3], steps=1)
    after = render([0, 3])
    assert (after.activations > before.activations + 0.1).all()
    pixels = torch.from_numpy(after.images[0]).float().div(255)
    red_minus_green = pixels[..., 0] - pixels[..., 1]
    # What was maximised is the ReLU that follows conv1; the layer's own mean is kept beside it.
    assert after.activations[0] == pytest.approx(red_minus_green.clamp(min=0).mean().item(), abs=0.01)
    assert after.layer_mean[0] == pytest.approx(red_minus_green.mean().item(), abs=0.01)
    np.testing.assert_allclose(after.start, before.start)  # the starting image does not depend on the steps


def test_negative_and_neuron_objectives():
    result = render([0], objectives=("negative", "neuron"))
    negative, neuron = result.images
    assert mean_rgb(negative)[1] > mean_rgb(negative)[0] + 30  # unit 0 = R - G: minimised by green
    assert result.activations[0] < 0  # the reported value is the unit's own (negative) mean
    centre = neuron[12:20, 12:20].reshape(-1, 3).mean(0)
    border = np.concatenate([neuron[:4].reshape(-1, 3), neuron[-4:].reshape(-1, 3)]).mean(0)
    assert centre[0] - centre[1] > border[0] - border[1] + 20  # only the centre position is optimised


def test_images_are_deterministic_and_independent_of_batch_mates():
    a, b = render([0, 2], seed=7), render([0, 2], seed=7)
    assert np.array_equal(a.images, b.images)
    alone = render([2], seed=7)
    assert np.abs(alone.images[0].astype(int) - a.images[1].astype(int)).max() <= 1
    assert not np.array_equal(render([0, 2], seed=8).images, a.images)


def test_narrowing_the_layer_changes_no_image(monkeypatch):
    made = []
    monkeypatch.setattr(optvis_render, "narrow_layer", lambda *args: made.append(narrow_layer(*args)) or made[-1])
    narrowed = render([0, 2, 3], steps=16)
    assert len(made) == 1 and made[0] is not None  # conv1 computes the 3 channels asked for, not all 4
    monkeypatch.setattr(optvis_render, "_narrowed_layer", lambda *args: None)
    full = render([0, 2, 3], steps=16)
    assert np.abs(narrowed.images.astype(int) - full.images.astype(int)).max() <= 1
    np.testing.assert_allclose(narrowed.activations, full.activations, rtol=1e-4, atol=1e-5)


def test_batches_shared_among_worker_processes_give_the_same_images():
    options = dict(objectives=("channel", "negative"), diversity=2, diversity_weight=0.0, steps=16, size=32,
                   lr=0.05, seed=3, device=torch.device("cpu"))
    model = prepare(color_net(), ["conv1"], torch.device("cpu"))
    serial = featurevis.render_batches(model, "conv1", [0, 1, 2, 3], batch_units=4, **options)
    forked = featurevis.render_batches(model, "conv1", [0, 1, 2, 3], batch_units=4, workers=2, **options)
    assert forked.units == serial.units == [0, 0, 1, 1, 2, 2, 3, 3] and forked.kinds == serial.kinds
    assert np.abs(forked.images.astype(int) - serial.images.astype(int)).max() <= 1
    np.testing.assert_allclose(forked.activations, serial.activations, rtol=1e-4, atol=1e-5)



def test_diversity_images_differ():
    result = render([3], objectives=("diversity",), diversity=3, steps=32)
    assert result.kinds == ["diversity"] * 3 and result.units == [3, 3, 3]
    assert not np.array_equal(result.images[0], result.images[1])


def test_out_of_memory_halves_the_batch_and_gives_the_same_result(tiny_project, monkeypatch):
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from tests.test_pipeline import _artifacts

    overrides = ["sweep.stages=['featurevis']", "featurevis.batch=4", "featurevis.objectives=['channel']",
                 "featurevis.workers=1"]  # the monkeypatched renderer counts its calls in this process
    sweep(load_config(tiny_project / "atlas.toml", overrides))
    expected = _artifacts(tiny_project / "cache")
    original, tried, done = featurevis.render_units, [], []

    def small_device(model, layer, units, **kwargs):
        tried.append(len(units))
        if len(units) > 1:
            raise torch.cuda.OutOfMemoryError("pretend the device is full")
        done.append(len(units))
        return original(model, layer, units, **kwargs)

    monkeypatch.setattr(featurevis, "render_units", small_device)
    sweep(load_config(tiny_project / "atlas.toml", overrides), force=True)
    assert tried[:3] == [4, 2, 1] and set(done) == {1} and len(done) == 6  # every unit, one at a time
    again = _artifacts(tiny_project / "cache")
    assert again.keys() == expected.keys()
    for path, content in expected.items():
        if path.endswith("data.json"):  # activations: batched and single convolutions round differently
            a, b = json.loads(content)["activation"], json.loads(again[path])["activation"]
            assert a.keys() == b.keys() and all(a[u]["channel"] == pytest.approx(b[u]["channel"], rel=1e-4) for u in a)
        else:
            assert again[path] == content, path


def test_prepare_never_changes_the_model_later_stages_run():
    """A model torch.fx cannot trace gets nothing folded; its prepared copy is still a copy,
    so the original is not made channels-last under the stages that follow."""
    from atlas.models import LoadedModel

    class Untraceable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx gives up
                x = x * 1.0
            return self.norm(self.conv(x))

    module = Untraceable().eval()
    model = LoadedModel("u", "test", module, (0.5,) * 3, (0.25,) * 3, 16, "digest")
    prepared = prepare(model, ["conv"], torch.device("cpu"))
    assert prepared.module is not module
    assert module.conv.weight.is_contiguous() and isinstance(module.norm, torch.nn.BatchNorm2d)
    assert prepared.module.conv.weight.is_contiguous(memory_format=torch.channels_last)
