import pytest
import torch
from torch import nn

from atlas.models import LoadedModel
from atlas.models.zoo import Mixed
from atlas.nn.receptive_field import receptive_field


def wrap(module: nn.Module, size: int = 32) -> LoadedModel:
    return LoadedModel("m", "test", module.eval(), (0.0,) * 3, (1.0,) * 3, size, "d")


def test_stacked_convolutions_compose_size_stride_and_offset():
    torch.manual_seed(0)
    # 3x3 (stride 1, pad 1) then 3x3 (stride 2, pad 1): output y reads conv1 rows 2y-1..2y+1,
    # which read input rows 2y-2..2y+2: five rows, starting at 2y - 2.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1))
    field = receptive_field(wrap(net), "2")
    assert (field.size_y, field.size_x, field.stride_y, field.offset_y) == (5, 5, 2.0, -2.0)
    assert field.box(5, 7) == (8, 12, 13, 17)
    assert field.box(0, 0) == (0, 0, 3, 3)  # clipped at the image border


@pytest.mark.parametrize("seed", range(6))
def test_parallel_branches_take_the_widest_field(seed):
    torch.manual_seed(seed)  # any random weights: each branch is only two channels wide
    net = nn.Sequential(nn.Conv2d(3, 8, 1), Mixed(8, 2, 2, 2, 2, 2, 2))
    field = receptive_field(wrap(net), "1")
    assert (field.size_y, field.stride_y, field.offset_y) == (5, 1.0, -2.0)  # the 5x5 branch


def test_a_field_wider_than_the_image_is_measured_whole():
    net = nn.Sequential(*[nn.Conv2d(3, 3, 9, padding=4) for _ in range(4)])  # 33 px wide
    field = receptive_field(wrap(net, size=16), "3")
    assert field.size_y == 33 and field.box(8, 8) == (0, 0, 16, 16)


def test_fields_are_found_through_relus_whatever_the_weights():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=2), nn.ReLU(), nn.MaxPool2d(2))
    field = receptive_field(wrap(net), "2")
    assert (field.size_y, field.stride_y) == (7, 4.0)


def test_through_attention_a_patch_is_given_itself_and_its_neighbours_and_says_so():
    from tests.tiny_models import TokenBlock, TokenNet

    attended = receptive_field(wrap(TokenBlock(), size=16), "hidden")
    assert attended.through_attention  # every patch reaches every token
    assert (attended.size_y, attended.stride_y, attended.offset_y) == (12, 4, -4)  # 3 patches of 4 px, centred
    assert attended.box(1, 2) == (0, 4, 12, 16)  # patch (1, 2) and the patches around it, clipped
    own = receptive_field(wrap(TokenNet(), size=16), "mlp.0")  # each token on its own: no attention
    assert not own.through_attention and (own.size_y, own.stride_y) == (4, 4)
