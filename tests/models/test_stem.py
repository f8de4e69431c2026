import pytest
import torch
from torch import nn

from atlas.models.stem import SpaceToDepthConv, space_to_depth_stems
from atlas.nn.capture import capture


@pytest.mark.parametrize("kernel, stride, padding, size",
                         [(7, 2, 3, 152), (7, 2, 3, 151), (3, 2, 1, 33), (4, 4, 0, 64), (5, 3, 2, 50)])
def test_space_to_depth_computes_the_same_convolution(kernel, stride, padding, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, kernel, stride, padding)
    x = torch.randn(2, 3, size, size, requires_grad=True)
    expected = conv(x)
    found = SpaceToDepthConv(conv)(x)
    torch.testing.assert_close(found, expected, rtol=1e-5, atol=1e-5)
    assert found._base is None  # not a view: an in-place ReLU on a view makes autograd copy its gradient
    # And the gradient feature visualization needs: the input's.
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), x)
    (grad_found,) = torch.autograd.grad(SpaceToDepthConv(conv)(x).square().sum(), x)
    torch.testing.assert_close(grad_found, grad_expected, rtol=1e-4, atol=1e-4)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 7, 2, 3)
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, 2, 1))  # strided, but over 4 hidden channels

    def forward(self, x):
        return self.body(self.stem(x))


def test_only_stems_are_converted_in_a_copy_with_their_names():
    net = Net().eval()
    converted, count = space_to_depth_stems(net)
    assert count == 1 and isinstance(converted.stem, SpaceToDepthConv) and isinstance(net.stem, nn.Conv2d)
    assert isinstance(converted.body[1], nn.Conv2d)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(capture(converted, x, ["stem", "body"])["body"], capture(net, x, ["body"])["body"],
                               rtol=1e-5, atol=1e-5)
    assert space_to_depth_stems(net, keep=["stem"]) == (net, 0)
