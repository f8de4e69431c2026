"""Tiny models with hand-set weights, so tests know the right answer exactly.

Importable as ``tests.tiny_models:make_color_net`` by the import-path model source.
"""

import torch
from torch import nn


class Boom(nn.Module):
    """A layer that must never run (it proves the forward pass stopped early)."""

    def forward(self, x):
        raise AssertionError("the forward pass went past the last captured layer")


class ColorNet(nn.Module):
    """conv1 reads RGB with 1x1 kernels: unit 0 = R - G, 1 = G - R, 2 = B, 3 = mean(RGB).

    Its input is RGB in [0, 1] (no normalisation), so a pure red image gives unit 0
    an activation of exactly 1.
    """

    def __init__(self, boom: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 2, kernel_size=3, padding=1)
        self.head = Boom() if boom else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([
                [1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3],
            ]).view(4, 3, 1, 1))
            self.conv1.bias.zero_()
            self.conv2.weight.copy_(torch.linspace(-1, 1, 2 * 4 * 9).view(2, 4, 3, 3))
            self.conv2.bias.zero_()

    def forward(self, x):
        return self.head(self.conv2(self.relu(self.conv1(x))))


def make_color_net() -> ColorNet:
    return ColorNet()


TWIN_ORDER = (1, 2, 3, 0)  # the twin's conv1 unit k is ColorNet's unit TWIN_ORDER[k]


def make_twin_color_net() -> ColorNet:
    """ColorNet with conv1's channels reordered (conv2 reads them in the new order, so it
    computes the same): universality must match each unit to its original."""
    net, order = ColorNet(), list(TWIN_ORDER)
    with torch.no_grad():
        net.conv1.weight.copy_(net.conv1.weight[order])
        net.conv2.weight.copy_(net.conv2.weight[:, order])
    return net


def make_not_a_model() -> str:
    return "not a module"


class SignedNet(nn.Module):
    """Two ways a layer's output is signed.

    ``pre`` (1x1 over RGB): unit 0 = R - G, unit 1 = B - 0.5, then a batch norm whose
    scale is -1 on unit 1 and a ReLU: the network passes unit 1 where blue is *below*
    half. ``block`` (1x1 over RGB): unit 0 = R - G, unit 1 = G - B, added to a skip of
    zeros and read by a convolution: signed, and no activation ever takes it.
    """

    def __init__(self):
        super().__init__()
        self.pre = nn.Conv2d(3, 2, kernel_size=1)
        self.bn = nn.BatchNorm2d(2)
        self.block = nn.Conv2d(3, 2, kernel_size=1)
        self.head = nn.Conv2d(4, 2, kernel_size=1)
        with torch.no_grad():
            self.pre.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]).view(2, 3, 1, 1))
            self.pre.bias.copy_(torch.tensor([0.0, -0.5]))
            self.bn.weight.copy_(torch.tensor([1.0, -1.0]))
            self.bn.bias.zero_()
            self.bn.running_var.fill_(1.0 - self.bn.eps)  # exactly unit scale
            self.block.weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]]).view(2, 3, 1, 1))
            self.block.bias.zero_()
        self.eval()

    def forward(self, x):
        rectified = torch.relu(self.bn(self.pre(x)))
        summed = self.block(x) + torch.zeros_like(x[:, :2])  # a residual sum: signed, no activation
        return self.head(torch.cat([rectified, summed], 1))


def make_signed_net() -> SignedNet:
    return SignedNet()


class CancellingNet(nn.Module):
    """ColorNet's conv1, whose path to conv2 cancels (conv2 reads ``relu(x) - relu(x)``):
    the circuit between them has no answer."""

    def __init__(self):
        super().__init__()
        self.conv1 = make_color_net().conv1
        self.conv2 = nn.Conv2d(4, 2, kernel_size=3, padding=1)

    def forward(self, x):
        y = self.conv1(x)
        return self.conv2(torch.relu(y) - torch.relu(y))


def make_cancelling_net() -> CancellingNet:
    return CancellingNet().eval()


class DegenerateNet(nn.Module):
    """conv1 (1x1, then a ReLU) has one unit with an answer and three without:
    0 = R - G; 1 = 0.5 everywhere (a bias alone); 2 = never active (a negative bias
    alone); 3 = not finite (a NaN weight)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=1)
        self.relu = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.zero_()
            self.conv1.weight[0, :2] = torch.tensor([1.0, -1.0]).view(2, 1, 1)
            self.conv1.weight[3, 0] = float("nan")
            self.conv1.bias.copy_(torch.tensor([0.0, 0.5, -1.0, 0.0]))

    def forward(self, x):
        return self.relu(self.conv1(x))


def make_degenerate_net() -> DegenerateNet:
    return DegenerateNet().eval()


def _sharp_channel():
    from atlas.optvis.objectives import channel, l1

    return channel - 0.1 * l1


sharp_channel = _sharp_channel()  # a user's objective, as a config names it: tests.tiny_models:sharp_channel


class TokenNet(nn.Module):
    """A vision transformer in miniature: 4 px patches of a 16 px image (a 4 x 4 grid),
    each embedded as its mean red, green and blue, one class token (9, 0, 0) before
    them; ``mixer`` (a residual MLP per token: hidden unit 0 = red - green of its own
    patch) and a class-token head. Token layout (B, 17, 3); ``grid`` gives it as
    channels-last (B, 4, 4, 3) instead, as Swin does. With ``pooled``, the class token is
    the mean of the patches (as attention spread evenly would make it), so the MLP's
    unit 0 at the class token is the whole image's red - green."""

    def __init__(self, grid: bool = False, pooled: bool = False):
        super().__init__()
        self.grid, self.pooled = grid, pooled
        self.embed = nn.Conv2d(3, 3, kernel_size=4, stride=4)
        self.mlp = nn.Sequential(nn.Linear(3, 2), nn.GELU(), nn.Linear(2, 3))
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            self.embed.weight.zero_()
            for c in range(3):
                self.embed.weight[c, c] = 1 / 16
            self.embed.bias.zero_()
            self.mlp[0].weight.copy_(torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]))
            self.mlp[0].bias.zero_()
            self.mlp[2].weight.fill_(0.5)
            self.mlp[2].bias.zero_()

    def forward(self, x):
        patches = self.embed(x).flatten(2).transpose(1, 2)  # (B, 16, 3)
        if self.grid:
            side = int(patches.shape[1] ** 0.5)
            tokens = patches.reshape(-1, side, side, 3)
            return self.head(self.mlp(tokens).mean(dim=(1, 2)))
        cls = torch.zeros_like(patches[:, :1])
        cls[..., 0] = 9.0
        tokens = torch.cat([patches.mean(1, keepdim=True) if self.pooled else cls, patches], dim=1)
        tokens = tokens + self.mlp(tokens)
        return self.head(tokens[:, 0])


def make_token_net() -> TokenNet:
    return TokenNet().eval()


class TokenBlock(nn.Module):
    """Patches of 4 px (a 4 x 4 grid of a 16 px image) embedded by ``embed``, a class token
    before them, one residual attention block (torch's multi-head attention, or a softmax
    written out), then ``hidden`` reads the residual stream and ``mixed`` the attention's
    output alone."""

    def __init__(self, written_out: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.written_out = written_out
        self.embed = nn.Conv2d(3, 6, 4, stride=4)
        self.attention = nn.MultiheadAttention(6, 2, batch_first=True)
        self.hidden = nn.Linear(6, 5)
        self.mixed = nn.Linear(6, 3)

    def attend(self, x):
        if not self.written_out:
            return self.attention(x, x, x, need_weights=False)[0]
        pattern = torch.softmax(x @ x.transpose(1, 2) / 6 ** 0.5, dim=-1)
        return pattern @ x

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([torch.ones_like(tokens[:, :1]), tokens], dim=1)
        attended = self.attend(tokens)
        return self.hidden(tokens + attended), self.mixed(attended)


def make_token_block() -> TokenBlock:
    return TokenBlock().eval()
