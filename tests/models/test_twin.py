import numpy as np
import pytest
import torch
from torch import nn

from atlas.config import ModelConfig
from atlas.models import load_model
from atlas.models.twin import PERMUTED, TWIN, null_kind, null_model, permuted, pink_noise, recalibrate


class WithRawParameter(nn.Module):
    """A layer whose parameter no ``reset_parameters`` can draw again."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x):
        return self.conv(x) * self.scale


def make_raw():
    torch.manual_seed(0)  # loaded weights: the same whatever the seed
    return WithRawParameter()


def test_each_model_gets_the_null_it_can_have(tmp_path):
    vision = ModelConfig(name="r", arch="torchvision:resnet18", layers=("layer1",))
    kind = null_kind(vision, load_model(vision), tmp_path)
    assert (kind.kind, kind.method) == (TWIN, "rebuild")
    hand_set = ModelConfig(name="c", arch="tests.tiny_models:make_color_net", layers=("conv1",))
    kind = null_kind(hand_set, load_model(hand_set), tmp_path)
    assert (kind.kind, kind.method) == (TWIN, "reset")  # the factory sets its weights: each layer reset
    raw = ModelConfig(name="w", arch="tests.models.test_twin:make_raw", layers=("conv",))
    kind = null_kind(raw, load_model(raw), tmp_path)
    assert (kind.kind, kind.method) == (PERMUTED, "permute") and "permuted" in kind.why
    assert null_kind(vision, load_model(vision), tmp_path, wanted="permuted").kind == PERMUTED


def test_twins_differ_by_seed_and_keep_the_models_preprocessing(tmp_path):
    spec = ModelConfig(name="r", arch="torchvision:resnet18", layers=("layer1",), mean=(0.1, 0.2, 0.3))
    model = load_model(spec)
    kind = null_kind(spec, model, tmp_path)
    a, b = (null_model(spec, model, kind, seed, tmp_path) for seed in (1, 2))
    assert a.digest != b.digest != model.digest and a.mean == model.mean
    assert null_model(spec, model, kind, 1, tmp_path).digest == a.digest  # seeded


def test_permuted_kernels_keep_their_values_and_norms():
    spec = ModelConfig(name="w", arch="tests.models.test_twin:make_raw", layers=("conv",))
    model = load_model(spec)
    shuffled = permuted(model, 3)
    before, after = model.module.conv.weight.flatten(1), shuffled.module.conv.weight.flatten(1)
    assert not torch.equal(before, after)
    assert torch.equal(before.sort(1).values, after.sort(1).values)  # each unit's own values, reordered
    assert torch.equal(model.module.scale, shuffled.module.scale)  # not a kernel


def test_recalibrated_batch_norms_hold_the_statistics_of_the_images():
    spec = ModelConfig(name="r", arch="torchvision:resnet18", layers=("layer1",))
    model = load_model(spec)
    images = [torch.from_numpy(pink_noise(np.random.default_rng(i), 8, 64)) for i in range(2)]
    recalibrate(model, images, torch.device("cpu"))
    assert not model.module.training and not model.module.bn1.training
    with torch.no_grad():
        first = model.module.conv1(model.normalize(torch.cat(images)))
    assert torch.allclose(model.module.bn1.running_mean, first.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(model.module.bn1.running_var, first.var((0, 2, 3)), rtol=1e-2)


def test_the_craft_trunk_loads_its_trained_weights_and_its_twin_does_not():
    pytest.importorskip("easyocr_en_models")
    from atlas.models.craft import vgg16_bn, vgg16_bn_untrained

    trained, untrained = vgg16_bn(), vgg16_bn_untrained()
    assert isinstance(trained.features[10], nn.Conv2d) and trained.features[10].out_channels == 128  # conv2_2
    assert not torch.equal(trained.features[0].weight, untrained.features[0].weight)
    assert trained.features[1].running_var.mean() != 1.0  # trained batch norm statistics, not the defaults


def test_multi_head_attention_is_drawn_again_by_its_own_initialisation():
    from atlas.models import LoadedModel
    from atlas.models.twin import reinitialised
    from tests.tiny_models import TokenBlock

    model = LoadedModel("m", "test", TokenBlock().eval(), (0.0,) * 3, (1.0,) * 3, 16, "d")
    twin = reinitialised(model, seed=3)
    assert twin is not None  # every parameter, the attention's projections included, can be drawn again
    before, after = model.module.attention.in_proj_weight, twin.module.attention.in_proj_weight
    assert not torch.equal(before, after) and after.std() > 0
    assert torch.equal(reinitialised(model, seed=3).module.attention.in_proj_weight, after)  # seeded
