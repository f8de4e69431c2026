import pytest
import torch
import torch.nn.functional as F
from torch import nn

from atlas.nn.redirect import redirected_rectifiers

RECTIFIERS = {
    "module relu": nn.ReLU(inplace=True),
    "F.relu": F.relu,
    "Tensor.relu": torch.Tensor.relu,
    "relu6": nn.ReLU6(),
    "F.relu6": F.relu6,
    "hardtanh": lambda x: F.hardtanh(x, 0.0, 2.0),
    "clamp": lambda x: x.clamp(min=0),
    "clamp_min": lambda x: torch.clamp_min(x, 0.0),
    "hardswish": nn.Hardswish(),
    "gelu": nn.GELU(),
    "elu": nn.ELU(),
}


@pytest.mark.parametrize("name", RECTIFIERS)
def test_a_silent_rectifier_passes_the_gradient_that_would_wake_it(name):
    rectifier = RECTIFIERS[name]
    x = torch.full((2, 3), -5.0, requires_grad=True)
    with redirected_rectifiers():
        y = rectifier(x)
    (-y.sum()).backward()  # minimising -y: the gradient asks every input to rise
    assert torch.all(x.grad < 0)  # descent moves x up, towards the active range
    value = rectifier(torch.full((2, 3), -5.0))
    torch.testing.assert_close(y.detach(), value)  # the forward pass is unchanged


def test_it_never_pushes_a_silent_input_further_down():
    x = torch.tensor([[-2.0, -1.0]], requires_grad=True)
    with redirected_rectifiers():
        y = torch.relu(x)
    (y * torch.tensor([[1.0, -1.0]])).sum().backward()  # asks x0 to fall, x1 to rise
    assert x.grad.tolist() == [[0.0, -1.0]]


def test_elements_with_a_live_gradient_keep_the_true_one():
    x = torch.tensor([[-1.0, 2.0], [-1.0, -3.0]], requires_grad=True)
    with redirected_rectifiers():
        y = F.relu(x)
    (-y.sum()).backward()
    # Element 0 has a live input, so its true gradient stands (zero below zero);
    # element 1 has none, so it gets the redirected gradient everywhere.
    assert x.grad.tolist() == [[0.0, -1.0], [-1.0, -1.0]]


def test_outside_the_block_the_gradient_is_the_true_one():
    x = torch.full((1, 2), -1.0, requires_grad=True)
    with redirected_rectifiers(enabled=False):
        F.relu(x).sum().backward()
    assert x.grad.abs().sum() == 0


def test_a_dead_start_behind_silent_relus_is_woken():
    """conv(bias -1) -> ReLU -> conv: on a grey image nothing upstream fires, so without
    redirection the image gets no gradient at all."""
    torch.manual_seed(0)
    first = nn.Conv2d(3, 4, 3, padding=1)
    second = nn.Conv2d(4, 1, 3, padding=1)
    with torch.no_grad():
        first.bias.fill_(-1.0)
        second.weight.abs_()
    net = nn.Sequential(first, nn.ReLU(), second)
    image = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    (-net(image).mean()).backward()  # the loss a feature visualization minimises
    assert image.grad.abs().sum() == 0
    image.grad = None
    with redirected_rectifiers():
        loss = -net(image).mean()
    loss.backward()
    assert image.grad.abs().sum() > 0
