from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from atlas.models.loading import LoadedModel
from atlas.nn.linearize import Linearized
from atlas.stages.circuits import ranked, responses_with_removed
from atlas.stages.weights import expanded_weights


class Chain(nn.Module):
    """Three convs with ReLUs and a max pool between: expanded weights in closed form."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 5, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.c = nn.Conv2d(5, 2, 3, padding=1)

    def forward(self, x):
        return self.c(self.pool(F.relu(self.b(F.relu(self.a(x), inplace=True)))))


def loaded(module: nn.Module, size: int = 16) -> LoadedModel:
    return LoadedModel("m", "test", module.eval().requires_grad_(False), (0, 0, 0), (1, 1, 1), size, "digest")


def with_stem(block: nn.Module) -> nn.Sequential:
    """``block`` after a 1x1 convolution from RGB to 2 channels, named ``stem`` and ``block``."""
    return nn.Sequential(OrderedDict(stem=nn.Conv2d(3, 2, 1), block=block))


def composed(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The kernel of outer ⋆ (inner ⋆ x), cross-correlations both: (O, I, k1 + k2 - 1, ...)."""
    return torch.stack([torch.stack([
        sum(F.conv_transpose2d(outer[o, m][None, None], inner[m, i][None, None])[0, 0] for m in range(inner.shape[0]))
        for i in range(inner.shape[1])]) for o in range(outer.shape[0])])


def test_adjacent_layers_give_the_kernel_and_distant_ones_the_product_of_kernels():
    net = Chain()
    model = loaded(net)
    adjacent = expanded_weights(model, "a", "b", [0, 1, 2, 3, 4])
    np.testing.assert_allclose(adjacent.weights, net.b.weight.numpy(), atol=1e-6)
    two_steps = expanded_weights(model, "a", "b", [4, 2], chunk=1)  # units in any order, one pass each
    assert two_steps.passes == 1 + 2 and two_steps.weights.shape == (2, 4, 3, 3)  # and one to find the window
    np.testing.assert_allclose(two_steps.weights[0], net.b.weight[4].numpy(), atol=1e-6)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    chain = nn.Sequential(nn.Identity(), inner)
    deep = expanded_weights(loaded(chain), "0", "1.2", [0, 1])
    # From the input (layer "0") through two convs with a ReLU set aside: the composed kernel over RGB.
    np.testing.assert_allclose(deep.weights, composed(inner[2].weight, inner[0].weight).numpy(), atol=1e-5)


def test_a_max_pool_becomes_an_average_on_the_linear_path():
    net = Chain()
    x = torch.randn(1, 5, 8, 8)
    with Linearized():
        pooled = net.pool(x)
        relu = F.relu(x)
    torch.testing.assert_close(pooled, F.avg_pool2d(x, 2))
    assert torch.equal(relu, x)  # a ReLU passes everything
    weights = expanded_weights(loaded(net), "b", "c", [0]).weights
    # Through a 2x2 average: each of c's taps spreads over a 2x2 block at a quarter of the weight.
    assert weights.shape == (1, 5, 6, 6)
    np.testing.assert_allclose(weights[0, :, ::2, ::2] * 4, net.c.weight[0].numpy(), atol=1e-6)


def test_weights_through_branches_and_skips_add_up():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.left = nn.Conv2d(2, 2, 1, bias=False)
            self.right = nn.Conv2d(2, 2, 1, bias=False)

        def forward(self, x):
            return x + torch.cat([self.left(x), self.right(x)], 1)[:, :2] + self.right(x)

    net = with_stem(Block())
    weights = expanded_weights(loaded(net, 4), "stem", "block", [0, 1]).weights[:, :, 0, 0]
    expected = torch.eye(2) + net.block.left.weight[:, :, 0, 0] + net.block.right.weight[:, :, 0, 0]
    np.testing.assert_allclose(weights, expected.numpy(), atol=1e-6)


def test_ranked_inputs_are_strongest_first_by_sign():
    maps = np.zeros((4, 3, 3))
    maps[0, 1, 1], maps[1, 0, 0], maps[2, 2, 2], maps[3, 0, 1] = 0.5, 2.0, -3.0, -0.1
    excitatory, inhibitory = ranked(maps)
    assert [e["index"] for e in excitatory] == [1, 0]
    assert [e["index"] for e in inhibitory] == [2, 3]


class Planted(nn.Module):
    """A target unit built from source channels 0 and 1 only (a planted circuit);
    channels 2-7 feed other target units."""

    def __init__(self):
        super().__init__()
        self.source = nn.Conv2d(3, 8, 1)
        self.target = nn.Conv2d(8, 2, 1)
        with torch.no_grad():
            self.source.weight.fill_(1.0)
            self.source.bias.zero_()
            self.target.weight.zero_()
            self.target.bias.zero_()
            self.target.weight[0, :2] = 1.0
            self.target.weight[1, 2:] = 1.0

    def forward(self, x):
        return self.target(F.relu(self.source(x)))


def test_removing_a_planted_circuits_inputs_silences_it_and_random_removals_mostly_do_not():
    model = loaded(Planted(), 4)
    images = torch.rand(3, 3, 4, 4)
    weights = expanded_weights(model, "source", "target", [0]).weights[0]
    top = [e["index"] for e in ranked(weights)[0][:2]]
    assert sorted(top) == [0, 1]
    base, planted, other = responses_with_removed(model, "source", "target", 0, images, [(1, 1)] * 3,
                                                  [[], top, [5, 6]])
    assert base > 0 and planted == 0.0 and other == base


def test_a_skip_around_the_source_falls_back_to_the_full_size_and_stays_exact():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(1)
            self.inner = nn.Conv2d(2, 2, 3, padding=1)
            self.outer = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.outer(self.inner(x)) + x  # the skip starts before "inner"

    net = with_stem(Residual())
    found = expanded_weights(loaded(net, 12), "block.inner", "block", [0, 1])
    np.testing.assert_allclose(found.weights, net.block.outer.weight.numpy(), atol=1e-6)
    assert found.passes == 1 + 1 + 1  # the window failed (the skip is full size), the full size worked


def test_a_layer_that_does_not_read_the_source_is_reported():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1)

        def forward(self, x):
            return self.a(x) + self.b(x)

    with pytest.raises(ValueError, match="does not depend"):
        expanded_weights(loaded(TwoHeads(), 4), "a", "b", [0, 1])


def test_expanded_weights_from_inside_a_torchvision_resnet_block_and_into_its_downsample():
    """Layers inside blocks, batch norms and downsample branches, where torchvision's
    ``out += identity`` changes the source's output in place."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    model = loaded(net, 64)
    # bn2 -> (+ identity) -> ReLU (set aside) -> the block output -> layer2's 1x1 stride-2 downsample.
    into_downsample = expanded_weights(model, "layer1.1.bn2", "layer2.0.downsample.0", [0, 3, 7])
    np.testing.assert_allclose(into_downsample.weights, net.layer2[0].downsample[0].weight[[0, 3, 7]].numpy(),
                               atol=1e-6)
    inside = expanded_weights(model, "layer1.0.conv1", "layer1.1.bn2", [0, 1])
    assert np.isfinite(inside.weights).all() and np.abs(inside.weights).max() > 0
    assert inside.weights.shape[:2] == (2, 64)


def test_expanded_weights_through_a_vgg_max_pool_and_a_googlenet_inception_block():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    vgg = torchvision.models.vgg11(weights=None)
    found = expanded_weights(loaded(vgg.features, 32), "0", "3", [0, 5])  # conv, ReLU, max pool 2, conv
    # The max pool averages on the linear path: each 3x3 weight spreads over a 2x2 block at a quarter.
    expected = np.kron(vgg.features[3].weight[[0, 5]].numpy(), np.ones((2, 2)) / 4)
    np.testing.assert_allclose(found.weights, expected, atol=1e-6)
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    inception = expanded_weights(loaded(googlenet, 64), "inception3a", "inception3b", [0, 200])
    assert inception.weights.shape[:2] == (2, 256) and np.abs(inception.weights).max() > 0
    # Unit 0 is in the 1x1 branch: a 1x1 convolution of the source, batch norm folded in.
    branch = googlenet.inception3b.branch1
    bn = branch.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    direct = (branch.conv.weight[0, :, 0, 0] * scale[0]).numpy()
    centre = [s // 2 for s in inception.weights.shape[2:]]
    np.testing.assert_allclose(inception.weights[0, :, centre[0], centre[1]], direct, atol=1e-5)


def test_expanded_weights_on_efficientnet_lite0():
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    net = efficientnet.EfficientNet.from_name("efficientnet-lite0")
    found = expanded_weights(loaded(net, 64), "_blocks.1", "_blocks.2", [0, 1])
    assert found.weights.shape[:2] == (2, 24) and np.isfinite(found.weights).all()
    assert np.abs(found.weights).max() > 0
