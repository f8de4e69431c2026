"""The linear path: every elementwise activation is the identity, norms and gates held at known values."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from atlas.nn.linearize import Held, Linearized
from atlas.render.catalog import read_catalog
from atlas.stages.circuits import no_answer
from atlas.stages.weights import expanded_weights
from tests.stages.test_circuits import loaded
from tests.tiny_models import TokenBlock


class Clamp(nn.Module):
    def forward(self, x):
        return x.clamp(0, 6)


ACTIVATIONS = [nn.ReLU(), nn.ReLU6(), nn.Hardtanh(), nn.LeakyReLU(0.1), nn.PReLU(4), nn.RReLU(), nn.ELU(), nn.SELU(),
               nn.CELU(), nn.GELU(), nn.GELU("tanh"), nn.SiLU(), nn.Mish(), nn.Hardswish(), nn.Softplus(),
               nn.Threshold(0.5, 0.0), nn.Softsign(), Clamp(), nn.ReLU(inplace=True), nn.ReLU6(inplace=True)]


def two_convs(activation: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(a=nn.Conv2d(3, 4, 3, padding=1), act=activation,
                                     b=nn.Conv2d(4, 2, 3, padding=1)))


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda m: repr(m))
def test_every_elementwise_activation_is_the_identity_on_the_linear_path(activation):
    net = two_convs(activation)
    found = expanded_weights(loaded(net), "a", "b", [0, 1])
    np.testing.assert_allclose(found.weights, net.b.weight.numpy(), atol=1e-6)
    assert found.linearised  # and says which rule it used


def test_a_mobilenet_style_relu6_stem_gives_its_weights_and_names_the_rule():
    torch.manual_seed(0)

    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU6())

    net = nn.Sequential(block(3, 8), block(8, 6)).eval()
    for bn in (net[0][1], net[1][1]):  # batch norms that are not the identity
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
    found = expanded_weights(loaded(net), "0.2", "1.2", [0, 3, 5])  # activation to activation
    bn = net[1][1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    expected = net[1][0].weight[[0, 3, 5]] * scale[[0, 3, 5]].view(-1, 1, 1, 1)
    np.testing.assert_allclose(found.weights, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert found.linearised == ["hardtanh"]  # nn.ReLU6 is a Hardtanh
    assert no_answer(found.weights) is None


def test_mobilenet_v2_block_gives_the_convolutions_path_beside_the_skip():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v2(weights=None).eval()
    block = net.features[3]  # 24 -> 144 -> 24, stride 1, with its skip
    assert block.use_res_connect
    for module in block.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
    found = expanded_weights(loaded(net.features, 64), "2", "3", [0, 7])

    def folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
        return conv.weight * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).view(-1, 1, 1, 1)

    expand = folded(block.conv[0][0], block.conv[0][1])[:, :, 0, 0]  # (144, 24)
    depthwise = folded(block.conv[1][0], block.conv[1][1])[:, 0]  # (144, 3, 3)
    project = folded(block.conv[2], block.conv[3])[:, :, 0, 0]  # (24, 144)
    # By hand: the skip (the unit's own channel at the centre) plus project · depthwise · expand.
    expected = torch.einsum("um,myx,mc->ucyx", project[[0, 7]], depthwise, expand)
    expected[0, 0, 1, 1] += 1
    expected[1, 7, 1, 1] += 1
    np.testing.assert_allclose(found.weights, expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert "hardtanh" in found.linearised


class Gated(nn.Module):
    """conv a -> squeeze-and-excitation -> conv b."""

    def __init__(self):
        super().__init__()
        from torchvision.ops import SqueezeExcitation

        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.se = SqueezeExcitation(4, 2)
        self.b = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.b(self.se(self.a(x)))


def test_a_squeeze_and_excitation_gate_is_found_and_held_at_its_mean_over_the_images():
    pytest.importorskip("torchvision")
    net = Gated().eval()
    images = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        mean_gate = net.se._scale(net.a(images)).mean(0).flatten()  # by hand: the gate per channel
    found = expanded_weights(loaded(net), "a", "b", [0, 1], images=images)
    np.testing.assert_allclose(found.weights, (net.b.weight * mean_gate.view(1, -1, 1, 1)).detach().numpy(),
                               rtol=1e-5, atol=1e-7)
    assert "gate se" in found.linearised
    held = Held.measure(net, images)
    assert list(held.gates) == ["se"]  # neither the convolutions nor the gate's own parts
    blank = expanded_weights(loaded(net), "a", "b", [0, 1])  # no images: the gate at the blank probe
    assert "gate se" not in blank.linearised and np.abs(blank.weights).max() > 0


class ChannelNorm(nn.Module):
    """ConvNeXt's layer norm over channels at each position."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_a_layer_norm_keeps_its_centring_and_divides_by_its_mean_scale_over_the_images():
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(a=nn.Conv2d(3, 4, 3, padding=1), norm=ChannelNorm(4),
                                    b=nn.Conv2d(4, 2, 1))).eval()
    images = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        x = net.a(images)
        inverse = (x.var(1, unbiased=False) + net.norm.norm.eps).rsqrt().mean()  # by hand
    found = expanded_weights(loaded(net), "a", "b", [0, 1], images=images)
    # b ∘ (weight · (x - mean over channels) · inverse): a 1x1 map.
    w = net.b.weight[:, :, 0, 0] * net.norm.norm.weight
    expected = (w - w.mean(1, keepdim=True)) * inverse
    np.testing.assert_allclose(found.weights[:, :, 0, 0], expected.detach().numpy(), rtol=1e-4, atol=1e-6)
    assert "layer_norm" in found.linearised
    blank = expanded_weights(loaded(net), "a", "b", [0, 1])  # at the blank probe: 1/sqrt(eps)
    assert np.abs(blank.weights).max() > 10 * np.abs(found.weights).max()


def test_a_group_norm_is_held_per_group():
    torch.manual_seed(0)
    x = torch.randn(4, 6, 5, 5)
    norm = nn.GroupNorm(3, 6).eval()
    held = Held.measure(norm, x)
    by_hand = (x.reshape(4, 3, -1).var(-1, unbiased=False) + norm.eps).rsqrt().mean(0)
    torch.testing.assert_close(held.norms[0], by_hand)
    with Linearized(held) as mode:
        y = norm(x[:1])
    grouped = x[:1].reshape(1, 3, -1)
    expected = ((grouped - grouped.mean(-1, keepdim=True)) * by_hand.view(1, 3, 1)).reshape(1, 6, 5, 5)
    torch.testing.assert_close(y, expected)
    assert mode.seen == {"group_norm"}


def test_a_path_that_cancels_is_no_answer_with_its_reason():
    class Cancels(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 3, padding=1)

        def forward(self, x):
            y = self.a(x)
            return self.b(F.relu(y) - F.relu(y))

    found = expanded_weights(loaded(Cancels()), "a", "b", [0, 1])
    assert no_answer(found.weights) == "the linear path cancels: every expanded weight is zero"
    assert no_answer(np.array([[np.nan]])) == "the linear path gives non-finite weights"


def test_a_cancelling_circuit_is_stored_shown_and_cataloged_as_no_answer(tmp_path, caplog):

    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.render import render_site
    from tests.conftest import TINY_CONFIG, make_images, write_config

    make_images(tmp_path / "images")
    text = TINY_CONFIG.replace('"tests.tiny_models:make_color_net"', '"tests.tiny_models:make_cancelling_net"').replace(
        "batch_size = 4\n", 'batch_size = 4\nstages = ["circuits"]\n', 1)
    config = load_config(write_config(tmp_path, text))
    sweep(config)
    assert "circuits: conv1 -> conv2: no answer: the linear path cancels" in caplog.text
    assert "no answer (with its reason in the artifact) this sweep: circuits 1" in caplog.text
    site = render_site(config).out
    conv2 = read_catalog(site)["models"][0]["layers"][1]
    reason = "the linear path cancels: every expanded weight is zero"
    assert all(u["circuit"]["no_answer"] == reason and u["inputs"] == [] for u in conv2["units"])
    page = (site / conv2["units"][0]["url"]).read_text()
    assert f"Circuit from <code>conv1</code>: no answer ({reason})." in page
    assert not list(site.glob("models/*/*/*/circuits/*.html"))  # no empty circuit pages


@pytest.mark.parametrize("written_out", [False, True], ids=["multi-head attention", "softmax written out"])
def test_attention_is_left_out_so_a_token_layer_gets_the_direct_path(written_out):
    net = TokenBlock(written_out).eval()
    model = loaded(net, size=16)
    found = expanded_weights(model, "embed", "hidden", [0, 3])
    # The residual stream carries each patch to its own position: the weight is the
    # linear layer's, one patch wide.
    np.testing.assert_allclose(found.weights[:, :, 0, 0], net.hidden.weight[[0, 3]].numpy(), atol=1e-6)
    assert found.weights.shape[2:] == (1, 1) and "attention" in found.linearised
    assert no_answer(found.weights, found.linearised) is None
    only = expanded_weights(model, "embed", "mixed", [0, 1])
    assert no_answer(only.weights, only.linearised).startswith("through attention: only attention connects")
