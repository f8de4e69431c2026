"""Token layers read as maps: a transformer's features at their patches."""

import pytest
import torch

from atlas.nn.capture import capture, describe_layers
from atlas.nn.tokens import Grid, grid_of
from tests.tiny_models import TokenNet


def _red_patch(row: int, col: int) -> torch.Tensor:
    """A 16 px image, black but for the 4 px patch at (row, col), pure red."""
    x = torch.zeros(1, 3, 16, 16)
    x[0, 0, row * 4:row * 4 + 4, col * 4:col * 4 + 4] = 1.0
    return x


@pytest.mark.parametrize("grid", [False, True], ids=["tokens", "channels-last"])
def test_a_patch_token_is_read_at_its_place_in_the_grid_and_the_class_token_kept_apart(grid):
    acts = capture(TokenNet(grid=grid).eval(), _red_patch(1, 2), ["mlp.0"])["mlp.0"]
    assert acts.shape == (1, 2, 4, 4)  # hidden units x the 4 x 4 patches
    expected = torch.zeros(4, 4)
    expected[1, 2] = 1.0  # unit 0 = red - green of its own patch
    assert torch.allclose(acts[0, 0], expected)
    assert acts[0, 0].max() == 1.0  # the class token (9 for unit 0) is at no position


def test_grids_are_found_from_the_shape_and_the_input_size():
    assert grid_of((197, 768), 224) == Grid(14, 14, extra=1)  # ViT-B/16: a class token, 14 x 14 patches
    assert grid_of((201, 384), 224) == Grid(14, 14, extra=5)  # a class token and four registers
    assert grid_of((56, 56, 96), 224) == Grid(56, 56, tokens=False)  # Swin, channels last
    assert grid_of((1, 1, 768), 32) == Grid(1, 1, tokens=False)  # ... its last stage at 32 px
    assert grid_of((64, 56, 56), 224) is None  # a convolution's map
    assert grid_of((1000,), 224) is None
    assert grid_of((197, 768), 230) == Grid(14, 14, extra=1)  # 16 px patches, the last 6 px left out
    assert grid_of((197, 768), 20) is None  # 14 patches of 20 px would be 1 px each
    assert grid_of((3, 300), 224) is None  # too few tokens for a grid


@pytest.mark.parametrize("grid", [Grid(4, 4, extra=2), Grid(4, 4, tokens=False)], ids=["tokens", "channels-last"])
def test_a_map_goes_back_to_the_layers_own_layout_with_its_other_tokens(grid):
    output = torch.randn(2, 18, 5) if grid.tokens else torch.randn(2, 4, 4, 5)
    maps = grid.to_map(output)
    assert maps.shape == (2, 5, 4, 4)
    assert torch.equal(grid.from_map(maps, like=output), output)
    if grid.tokens:  # the class and register tokens, apart
        assert torch.equal(grid.extras(output), output[:, :2])


def test_atlas_layers_states_the_layout_it_reads():
    records = {r["name"]: r for r in describe_layers(TokenNet().eval(), torch.zeros(1, 3, 16, 16))}
    assert records["mlp.0"]["shape"] == (2, 4, 4)
    assert records["mlp.0"]["grid"].describe() == "tokens: 4x4 patches after 1 other token"
    assert records["embed"]["shape"] == (3, 4, 4) and records["embed"]["grid"] is None  # a convolution
