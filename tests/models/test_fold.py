import torch
from torch import nn

from atlas.models.fold import fold_batchnorms
from atlas.nn.capture import capture


def with_statistics(bn: nn.BatchNorm2d, seed: int) -> nn.BatchNorm2d:
    """Running statistics and affine parameters far from the identity, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    c = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g))
        bn.running_var.copy_(torch.rand(c, generator=g) * 3 + 0.2)
        if bn.affine:
            bn.weight.copy_(torch.randn(c, generator=g))
            bn.bias.copy_(torch.randn(c, generator=g))
    return bn


class Block(nn.Module):
    """conv -> bn -> relu twice; the second conv has no bias and an affine-free norm."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = with_statistics(nn.BatchNorm2d(4, eps=1e-3), 1)
        self.conv2 = nn.Conv2d(4, 5, 1, bias=False)
        self.bn2 = with_statistics(nn.BatchNorm2d(5, affine=False), 2)

    def forward(self, x):
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def test_folded_model_computes_the_same_function_and_the_original_is_untouched():
    model = Block().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, count = fold_batchnorms(model)
    x = torch.rand(2, 3, 8, 8)
    assert count == 2
    assert isinstance(folded.bn1, nn.Identity) and isinstance(folded.bn2, nn.Identity)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Hooks on a batch norm's name still see its output.
    torch.testing.assert_close(capture(folded, x, ["bn1"])["bn1"], capture(model, x, ["bn1"])["bn1"],
                               rtol=1e-5, atol=1e-5)


def test_a_requested_convolution_keeps_its_own_output():
    model = Block().eval()
    folded, count = fold_batchnorms(model, keep=["conv1"])
    x = torch.rand(1, 3, 8, 8)
    assert count == 1 and isinstance(folded.bn1, nn.BatchNorm2d)
    torch.testing.assert_close(capture(folded, x, ["conv1"])["conv1"], capture(model, x, ["conv1"])["conv1"])


class Shared(nn.Module):
    """The conv's output also feeds a skip connection; a second conv is called twice."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = with_statistics(nn.BatchNorm2d(3), 3)
        self.twice = nn.Conv2d(3, 3, 1)
        self.bn2 = with_statistics(nn.BatchNorm2d(3), 4)

    def forward(self, x):
        y = self.conv(x)
        y = self.bn(y) + y
        return self.bn2(self.twice(self.twice(y)))


class Untraceable(Block):
    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
            x = -x
        return super().forward(x)


def test_only_safe_pairs_are_folded():
    shared = Shared().eval()
    assert fold_batchnorms(shared) == (shared, 0)
    untraceable = Untraceable().eval()
    assert fold_batchnorms(untraceable) == (untraceable, 0)
    training = Block().train()
    assert fold_batchnorms(training) == (training, 0)
