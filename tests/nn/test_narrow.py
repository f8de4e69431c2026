import logging

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from atlas.models.zoo import Mixed
from atlas.nn import narrow
from atlas.nn.narrow import narrow_layer


class Block(nn.Module):
    """Inception-like: a 1x1 branch (2 channels), a 1x1 -> 3x3 branch (3), a pool -> 1x1 branch (1)."""

    def __init__(self):
        super().__init__()
        self.one = nn.Sequential(nn.Conv2d(4, 2, 1), nn.ReLU(inplace=True))
        self.three = nn.Sequential(nn.Conv2d(4, 3, 1), nn.ReLU(), nn.Conv2d(3, 3, 3, padding=1))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(4, 1, 1))

    def forward(self, x):
        return torch.relu(torch.cat([self.one(x), self.three(x), self.pool(x)], 1))


class NormBlock(nn.Module):
    """conv -> unfolded batch norm -> relu, then a cross-channel op narrowing cannot pass."""

    def __init__(self, cross_channel: bool):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6)
        self.lrn = nn.LocalResponseNorm(3) if cross_channel else nn.Identity()
        with torch.no_grad():
            self.bn.running_mean.copy_(torch.linspace(-1, 1, 6))
            self.bn.running_var.copy_(torch.linspace(0.5, 2, 6))
            self.bn.weight.copy_(torch.linspace(2, -1, 6))

    def forward(self, x):
        return self.lrn(nn.functional.relu(self.bn(self.conv(x)), inplace=True))


class SharedInPlace(nn.Module):
    """An in-place ReLU on a value something else read before it, under a cross-channel
    op (so the graph runs in full): evaluated out of program order, it must not mutate."""

    def __init__(self):
        super().__init__()
        self.conv, self.relu, self.lrn = nn.Conv2d(4, 3, 1), nn.ReLU(inplace=True), nn.LocalResponseNorm(2)

    def forward(self, x):
        y = self.conv(x)
        doubled = y * 2
        return self.lrn(torch.cat([self.relu(y), doubled], 1))


def layers():
    torch.manual_seed(0)
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval()
    resnet = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # batch norms with statistics, so they are not identities
        for module in resnet.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return {
        "block": (Block(), 4, [0, 4, 2, 5, 1, 3]),
        "googlenet inception3a": (googlenet.inception3a, 192, [0, 70, 250, 200, 3, 64]),
        "resnet18 layer1 (in-place sums)": (resnet.layer1, 64, [5, 0, 63, 17]),
        "zoo mixed": (Mixed(8, 4, 4, 6, 2, 4, 2), 8, [0, 15, 4, 9, 11]),
        "batch norm": (NormBlock(cross_channel=False), 4, [5, 0, 2]),
        "cross-channel": (NormBlock(cross_channel=True), 4, [5, 0, 2]),
        "in-place on a shared value": (SharedInPlace(), 4, [0, 5, 3]),
        "conv": (nn.Conv2d(4, 3, 3), 4, [2, 0, 1, 1, 2]),  # more elements than channels: computed in full
    }


@pytest.mark.parametrize("name", list(layers()))
def test_narrowed_layer_equals_the_full_layer_and_its_gradient(name):
    module, channels_in, channels = layers()[name]
    module.eval().requires_grad_(False)
    torch.manual_seed(1)
    x = torch.randn(len(channels), channels_in, 11, 11)
    narrowed = narrow_layer(module, channels, x)
    assert narrowed is not None

    x_full, x_narrow = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected = module(x_full)[torch.arange(len(channels)), torch.tensor(channels)]
    found = narrowed(x_narrow)
    assert found.shape == (len(channels), 1, *expected.shape[1:])
    torch.testing.assert_close(found[:, 0], expected, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (found[:, 0] * upstream).sum().backward()
    torch.testing.assert_close(x_narrow.grad, x_full.grad, rtol=1e-4, atol=1e-5)


def test_only_the_branches_holding_the_channels_run():
    block = Block().eval()
    calls = {name: 0 for name in ("one", "three", "pool")}
    for name in calls:
        block.get_submodule(name)[-1].register_forward_hook(
            lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    narrowed = narrow_layer(block, [0, 1], torch.randn(2, 4, 5, 5))
    calls.update(one=0, three=0, pool=0)  # narrow_layer ran the full layer once, to check itself
    narrowed(torch.randn(2, 4, 5, 5))
    assert calls == {"one": 1, "three": 0, "pool": 0}


def test_narrowed_inception_block_does_a_fraction_of_the_work():
    torch.manual_seed(0)
    block = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval().inception3a
    x = torch.randn(8, 192, 19, 19)
    narrowed = narrow_layer(block, list(range(8)), x)  # all in the 1x1 branch: 8 of its 64 channels
    counts = []
    for run in (lambda: block(x), lambda: narrowed(x)):
        with FlopCounterMode(display=False) as counter:
            run()
        counts.append(counter.get_total_flops())
    full, narrow_flops = counts
    assert narrow_flops == 2 * 8 * 8 * 192 * 19 * 19  # one 1x1 convolution: 8 elements x 8 channels
    assert narrow_flops < 0.02 * full


class DataDependent(nn.Module):
    def forward(self, x):
        return x if x.sum() > 0 else -x  # control flow torch.fx cannot trace


def test_layers_that_cannot_be_narrowed_give_none(monkeypatch, caplog):
    x = torch.randn(2, 4, 5, 5)
    assert narrow_layer(DataDependent(), [0, 1], x) is None
    assert narrow_layer(nn.Flatten(), [0, 1], x) is None  # not spatial
    assert narrow_layer(Block(), [0, 9], x) is None  # no channel 9
    # A graph that narrows to something else than the layer computes is caught by the check.
    monkeypatch.setattr(narrow.NarrowedLayer, "__call__", lambda self, x: torch.zeros(len(x), 1, 5, 5))
    with caplog.at_level(logging.WARNING):
        assert narrow_layer(Block().eval(), [0, 1], x) is None
    assert "computing it in full" in caplog.text


def test_elements_taken_by_branches_give_a_channels_last_gradient_to_a_channels_last_input():
    # Convolutions and pools before the layer run channels-last; a gradient in another
    # layout would be converted at each of them.
    x = torch.randn(4, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    narrowed = narrow_layer(Block().eval(), [0, 3, 5, 2], x)
    before = x.clone().requires_grad_() * 2  # the output of a layer before, channels-last
    seen = []
    before.register_hook(seen.append)
    narrowed(before).sum().backward()
    assert seen[0].is_contiguous(memory_format=torch.channels_last)
