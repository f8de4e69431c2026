import math

import numpy as np
import torch

from atlas.stages.weights.kernels import kernel_stats


def gabor(k: int, theta: float, frequency: float, sigma: float) -> torch.Tensor:
    c = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    xr = xx * math.cos(theta) + yy * math.sin(theta)
    return torch.exp(-(xx ** 2 + yy ** 2) / (2 * sigma ** 2)) * torch.cos(2 * math.pi * frequency * xr)


def test_gabor_kernels_fit_and_color_energy_is_measured():
    k = 9
    g = gabor(k, math.pi / 3, 0.2, 2.0)
    luminance_gabor = g.expand(3, k, k)  # the same Gabor in R, G and B: no color
    red_green = torch.stack([torch.ones(k, k), -torch.ones(k, k), torch.zeros(k, k)])  # flat, all chromatic
    noise = torch.randn(3, k, k, generator=torch.Generator().manual_seed(0))
    stats = kernel_stats(torch.stack([luminance_gabor, red_green * 0.5, noise]))
    assert stats["gabor_r2"][0] > 0.95
    assert np.isclose(stats["gabor_frequency"][0], 0.2, atol=0.02)
    assert stats["gabor_r2"][2] < 0.6  # noise is no Gabor
    assert stats["color_fraction"][0] < 1e-6 and stats["color_fraction"][1] > 0.99
