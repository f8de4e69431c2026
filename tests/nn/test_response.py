import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from atlas.nn.response import AS_IS, FOLLOWING, POSITIVE, find_response


class ConvFunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.out = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.out(F.relu(self.bn(self.conv(x)), inplace=True))


def _eval(module):
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(-1, 1)  # negative scales too: the response must follow their sign
            m.bias.data.uniform_(-1, 1)
    return module.eval()


def test_a_convolution_before_batch_norm_and_relu_is_rectified_by_them():
    net = _eval(ConvFunctionalRelu())
    x = torch.randn(2, 3, 8, 8)
    response = find_response(net, "conv", x)
    assert response.kind == FOLLOWING and "ReLU" in response.description and "bn" in response.description
    maps = net.conv(x)
    channels = torch.tensor([3, 1])
    own = maps[torch.arange(2), channels]
    expected = F.relu(net.bn(maps))[torch.arange(2), channels]
    torch.testing.assert_close(response(own, channels), expected)
    torch.testing.assert_close(response.signed(own, channels), net.bn(maps)[torch.arange(2), channels])


def test_module_activations_are_followed_and_their_bounds_kept():
    net = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Dropout(), nn.ReLU6()).eval()
    response = find_response(net, "0", torch.randn(1, 3, 4, 4))
    assert response.kind == FOLLOWING and response.activation_name == "ReLU6 (without its ceiling)"
    maps = torch.tensor([[-1.0, 3.0, 9.0]])
    # The ceiling is dropped: a field saturating every position must not be an optimum.
    assert response(maps, torch.tensor([0])).tolist() == [[0.0, 3.0, 9.0]]


@pytest.mark.parametrize("layer, kind", [
    ("layer1.0.conv1", FOLLOWING),  # -> bn1 -> relu
    ("layer1.0.bn2", POSITIVE),  # -> += identity: a sum comes first
    ("layer2.0.downsample.0", POSITIVE),  # -> batch norm -> the block's sum
    ("layer1", AS_IS),  # a block's output, after its ReLU
    ("fc", POSITIVE),  # logits: nothing follows
])
def test_resnet_layers(layer, kind):
    net = torchvision.models.resnet18(weights=None).eval()
    response = find_response(net, layer, torch.randn(1, 3, 64, 64))
    assert response.kind == kind
    if layer == "layer1.0.conv1":
        assert [n.name for n in response.norms] == ["layer1.0.bn1"]


def test_googlenet_branch_convolution_is_followed_through_its_functional_relu():
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()
    response = find_response(net, "inception3a.branch2.1.conv", torch.randn(1, 3, 64, 64))
    assert response.kind == FOLLOWING and [n.name for n in response.norms] == ["inception3a.branch2.1.bn"]
    assert find_response(net, "inception3a", torch.randn(1, 3, 64, 64)).kind == AS_IS
