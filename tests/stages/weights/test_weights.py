import torch
from torch import nn

from atlas.stages.weights import input_conv, kernel_images
from tests.tiny_models import ColorNet


def test_kernel_images_map_zero_to_grey_and_the_largest_weight_to_full_color():
    images = kernel_images(ColorNet().conv1.weight)  # unit 0 = R - G, unit 2 = B
    assert images.shape == (4, 1, 1, 3)
    assert images[0, 0, 0].tolist() == [255, 0, 128]
    assert images[2, 0, 0].tolist() == [128, 128, 255]
    assert images[3, 0, 0].tolist() == [255, 255, 255]


def test_kernel_images_keep_spatial_layout():
    weight = torch.zeros(1, 3, 2, 2)
    weight[0, :, 0, 1] = -2.0  # top right is strongly negative in every channel
    image = kernel_images(weight)[0]
    assert image[0, 1].tolist() == [0, 0, 0] and image[1, 0].tolist() == [128, 128, 128]


def test_input_conv_finds_the_rgb_convolution_inside_a_block():
    block = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
    assert input_conv(block) is block[0]
    assert input_conv(nn.Conv2d(8, 8, 3)) is None
    images = kernel_images(block[0].weight).reshape(8, -1).astype(int)
    # Each kernel is scaled by its own largest weight: that weight is full black or full color.
    assert images.shape == (8, 27) and all(row.min() == 0 or row.max() == 255 for row in images)
