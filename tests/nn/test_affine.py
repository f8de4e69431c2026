"""Layers affine in the pixels, and their units' kernels (gradients over a region)."""

import pytest
import torch
from torch import nn

from atlas.nn.affine import Region, input_kernels, is_affine, kernel_region
from tests.tiny_models import TokenBlock, TokenNet


def _conv_bn(scales: list[float]) -> nn.Sequential:
    """A 5x5 convolution over RGB with seeded kernels, then an eval-mode batch norm of
    the given scales (a negative one flips a kernel), then a ReLU."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, len(scales), 5, padding=2)
    bn = nn.BatchNorm2d(len(scales))
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(scales))
        bn.bias.fill_(0.3)
        bn.running_mean.fill_(0.1)
        bn.running_var.fill_(4.0 - bn.eps)  # a scale of weight / 2
    return nn.Sequential(conv, bn, nn.ReLU()).eval()


def test_a_batch_norm_after_a_convolution_over_rgb_is_affine_and_its_kernels_are_the_scaled_weights():
    net = _conv_bn([1.0, -2.0, 0.5])
    assert is_affine(net, "0", 32) and is_affine(net, "1", 32)
    assert not is_affine(net, "2", 32)  # rectified
    region = kernel_region(net, "1", 32, 3)
    assert region == Region(14, 14, 5)  # the 5x5 kernel at the map's centre (16, 16)
    kernels = input_kernels(net, "1", 32, [0, 1, 2], region)
    expected = net[0].weight * torch.tensor([1.0, -2.0, 0.5]).view(-1, 1, 1, 1) / 2
    assert torch.allclose(kernels, expected, atol=1e-6)
    assert torch.allclose(input_kernels(net, "1", 32, [2], region), expected[2:], atol=1e-6)  # any subset


def test_a_token_layer_after_a_patch_embedding_is_affine_at_its_centre_patch():
    """TokenNet's MLP input is a linear read of each 4 px patch's colors (its class token
    apart): affine, and its kernel lies on the centre patch."""
    net = TokenNet().eval()
    assert is_affine(net, "mlp.0", 16)
    region = kernel_region(net, "mlp.0", 16, 2)
    assert region == Region(8, 8, 4)  # the patch at (2, 2) of the 4 x 4 grid
    kernels = input_kernels(net, "mlp.0", 16, [0], region)
    assert torch.allclose(kernels[0, 0], torch.ones(4, 4) / 16) and torch.allclose(kernels[0, 1], -torch.ones(4, 4) / 16)


class _Normed(nn.Module):
    """4 px patches embedded, then a layer norm over each token's features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.norm(self.embed(x).flatten(2).transpose(1, 2))


@pytest.mark.parametrize("net", [TokenBlock(), TokenBlock(written_out=True), _Normed()],
                         ids=["attention", "softmax written out", "layer norm"])
def test_attention_that_depends_on_the_image_or_a_norm_over_features_is_not_affine(net):
    layer = "norm" if isinstance(net, _Normed) else "hidden"
    assert not is_affine(net.eval(), layer, 16)
    assert is_affine(net.eval(), "embed", 16)


def test_a_region_over_the_images_edge_is_cropped_with_zeros():
    images = torch.arange(16.0).view(1, 4, 4)
    assert torch.equal(Region(-1, 2, 3).crop(images), torch.tensor([[[0.0, 0, 0], [2, 3, 0], [6, 7, 0]]]))
