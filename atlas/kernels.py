"""First-layer kernels measured: Gabor fits and chromatic energy.

A convolution over RGB has kernels that are small images. "An Overview of Early
Vision" calls most of InceptionV1's conv2d0 units Gabor filters or color contrast
detectors; these functions measure both for any such kernel, so that the weights
stage can store them and the families stage can use them as evidence.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def fit_gabors(maps: torch.Tensor, steps: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares Gabor fit of each (k, k) map; returns (R^2, frequency) per map.

    Gradient descent from a grid of starting orientations, frequencies and phases,
    all maps and starts in one batch; the best start per map wins."""
    n, k, _ = maps.shape
    coords = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    thetas, freqs, phases = torch.meshgrid(torch.arange(8) * math.pi / 8, torch.tensor([0.02, 0.1, 0.2, 0.3]),
                                           torch.arange(4) * math.pi / 2, indexing="ij")
    starts = thetas.numel()
    params = {
        "theta": thetas.flatten().repeat(n, 1), "log_f": freqs.flatten().log().repeat(n, 1),
        "phase": phases.flatten().repeat(n, 1), "x0": torch.zeros(n, starts), "y0": torch.zeros(n, starts),
        "log_sx": torch.full((n, starts), math.log(k / 4)), "log_sy": torch.full((n, starts), math.log(k / 4)),
        "amp": maps.abs().amax((1, 2)).view(n, 1).repeat(1, starts),
    }
    for p in params.values():
        p.requires_grad_(True)
    target = maps.view(n, 1, k, k)
    optimizer = torch.optim.Adam(params.values(), lr=0.05)

    def model():
        p = {name: v.view(n, starts, 1, 1) for name, v in params.items()}
        xr = (xx - p["x0"]) * torch.cos(p["theta"]) + (yy - p["y0"]) * torch.sin(p["theta"])
        yr = -(xx - p["x0"]) * torch.sin(p["theta"]) + (yy - p["y0"]) * torch.cos(p["theta"])
        envelope = torch.exp(-0.5 * (xr / p["log_sx"].exp()) ** 2 - 0.5 * (yr / p["log_sy"].exp()) ** 2)
        return p["amp"] * envelope * torch.cos(2 * math.pi * p["log_f"].exp() * xr + p["phase"])

    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model() - target) ** 2).sum()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        sse = ((model() - target) ** 2).sum((2, 3))
        sst = ((target - target.mean((2, 3), keepdim=True)) ** 2).sum((2, 3)).clamp_min(1e-12)
        r2 = 1 - sse / sst
        best = r2.argmax(1)
        rows = torch.arange(n)
        return r2[rows, best], params["log_f"].detach().exp()[rows, best]


def kernel_stats(weight: torch.Tensor) -> dict[str, np.ndarray]:
    """Per unit of a convolution over RGB: how well the kernel's dominant color
    component fits a Gabor (``gabor_r2``, ``gabor_frequency`` in cycles/pixel), and
    the fraction of its energy that is chromatic (``color_fraction``)."""
    w = weight.detach().float()
    c, _, k, _ = w.shape
    luminance = torch.ones(3) / math.sqrt(3)
    lum = torch.einsum("cihw,i->chw", w, luminance)
    chroma = w - lum[:, None] * luminance.view(1, 3, 1, 1)
    color_fraction = (chroma ** 2).sum((1, 2, 3)) / (w ** 2).sum((1, 2, 3)).clamp_min(1e-12)
    # The dominant color component of each kernel: its best rank-1 (color x space) factor.
    u, s, vh = torch.linalg.svd(w.view(c, 3, k * k), full_matrices=False)
    spatial = (s[:, :1, None] * vh[:, :1]).view(c, k, k)
    r2, freq = fit_gabors(spatial)
    return {"gabor_r2": r2.numpy(), "gabor_frequency": freq.numpy(), "color_fraction": color_fraction.numpy()}
