import pytest
import torch
from torch import nn

from atlas.errors import AtlasError
from atlas.nn.capture import capture, describe_layers, layer_inputs
from tests.tiny_models import ColorNet


def _image(rgb):
    return torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 4, 4)


def test_capture_returns_exact_values_of_many_layers_in_one_pass():
    model = ColorNet().eval()
    acts = capture(model, _image([0.75, 0.25, 0.5]), ["conv1", "relu"])
    assert acts["conv1"][0, :, 0, 0].tolist() == pytest.approx([0.5, -0.5, 0.5, 0.5])
    assert acts["relu"][0, :, 0, 0].tolist() == pytest.approx([0.5, 0.0, 0.5, 0.5])


def test_outputs_are_cloned_so_an_inplace_op_cannot_overwrite_them():
    # ColorNet's ReLU is in place: without a clone, conv1's captured output would
    # be rectified by the time capture returns.
    acts = capture(ColorNet().eval(), _image([0.0, 1.0, 0.0]), ["conv1"], stop_early=False)
    assert acts["conv1"][0, 0, 0, 0].item() == pytest.approx(-1.0)


def test_forward_pass_stops_after_the_last_requested_layer_and_hooks_are_removed():
    model = ColorNet(boom=True).eval()  # its head raises if it ever runs
    acts = capture(model, _image([1.0, 0.0, 0.0]), ["conv2", "conv1"])
    assert list(acts) == ["conv2", "conv1"]  # in the order asked for
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(AssertionError, match="went past"):
        capture(model, _image([1.0, 0.0, 0.0]), ["conv1"], stop_early=False)
    assert all(not m._forward_hooks for m in model.modules())


def test_gradients_flow_through_captured_outputs_when_not_detached():
    x = _image([0.2, 0.1, 0.0]).clone().requires_grad_(True)
    acts = capture(ColorNet().eval(), x, ["conv1"], detach=False)
    acts["conv1"][0, 0].sum().backward()
    assert x.grad[0, :, 0, 0].tolist() == pytest.approx([1.0, -1.0, 0.0])


def test_unknown_layer_is_an_error_with_suggestions():
    with pytest.raises(AtlasError, match=r"layer 'conv3' is not a module of this model \(did you mean 'conv2', 'conv1'"):
        capture(ColorNet(), _image([0, 0, 0]), ["conv3"])


def test_unused_module_is_reported():
    model = ColorNet()
    model.unused = nn.Identity()
    with pytest.raises(AtlasError, match=r"never called"):
        capture(model, _image([0, 0, 0]), ["unused"])


def test_describe_layers_lists_shapes_and_repeated_calls():
    shared = nn.ReLU()
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2), shared, nn.Conv2d(5, 7, 1), shared)
    records = {r["name"]: r for r in describe_layers(model, torch.zeros(1, 3, 9, 9))}
    assert records["0"]["shape"] == (5, 4, 4) and records["2"]["shape"] == (7, 4, 4)
    assert records["1"]["calls"] == 2 and records["1"]["shape"] == (5, 4, 4)


def test_layer_inputs_are_what_the_layer_receives_and_the_layer_never_runs():
    model = ColorNet(boom=True).eval()  # its head raises if it ever runs
    x = _image([0.75, 0.25, 0.5])
    (inputs,) = layer_inputs(model, x, "head")
    torch.testing.assert_close(inputs, capture(model, x, ["conv2"])["conv2"])
    assert all(not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(AtlasError, match="not a module"):
        layer_inputs(model, x, "conv3")
