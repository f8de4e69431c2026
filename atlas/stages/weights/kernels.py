"""First-layer kernels measured: Gabor and center-surround fits against a null, and color.

A convolution over RGB has kernels that are small images. "An Overview of Early
Vision" calls most of InceptionV1's conv2d0 units Gabor filters or color contrast
detectors; these functions measure any such kernel so that the weights stage can
store the numbers and the families stage can use them as evidence.

A fit means something only against what it reaches on kernels with no such
structure: a 3x3 kernel, or a very smooth one, fits a Gabor almost perfectly
whatever it is. So every kernel's fits are also taken on **surrogates**: random
kernels of the same size with the same radial power spectrum (white noise filtered
to the kernel's own smoothness, in every direction alike). A fit is evidence by how
far it beats the surrogates' 90th percentile (``NULL_QUANTILE``).

Both fits are least squares over a fixed grid of shapes, each with its amplitudes
solved exactly (a Gabor's cosine and sine parts; a centre and a surround Gaussian),
so they are deterministic and fast enough to fit every surrogate too.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

SURROGATES = 24  # random kernels per kernel
NULL_QUANTILE = 0.9


def _coords(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    return torch.meshgrid(c, c, indexing="ij")  # y (rows), x (columns)


def _offsets(k: int) -> list[float]:
    d = max(0.5, k / 8)
    return [-d, 0.0, d]


@functools.lru_cache(maxsize=16)
def _gabor_basis(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine Gabors over a grid of orientations, frequencies, envelopes and
    centres: (shapes, 2, k * k) and each shape's frequency (shapes,)."""
    yy, xx = _coords(k)
    thetas = torch.arange(12, dtype=torch.float64) * math.pi / 12
    freqs = torch.logspace(math.log10(0.03), math.log10(0.45), 16, dtype=torch.float64)
    sigmas = [max(0.6, k / 8), k / 5, k / 3]
    shapes, frequency = [], []
    for oy in _offsets(k):
        for ox in _offsets(k):
            x, y = xx - ox, yy - oy
            for theta in thetas:
                along = x * torch.cos(theta) + y * torch.sin(theta)
                across = -x * torch.sin(theta) + y * torch.cos(theta)
                for sa in sigmas:
                    for sc in sigmas:
                        envelope = torch.exp(-0.5 * (along / sa) ** 2 - 0.5 * (across / sc) ** 2)
                        for f in freqs:
                            phase = 2 * math.pi * f * along
                            shapes.append(torch.stack([envelope * torch.cos(phase), envelope * torch.sin(phase)]))
                            frequency.append(float(f))
    return torch.stack(shapes).flatten(2).float(), torch.tensor(frequency)


@functools.lru_cache(maxsize=16)
def _dog_basis(k: int) -> torch.Tensor:
    """A centre and a surround Gaussian, concentric, over a grid of centres and widths:
    (shapes, 2, k * k). The widest surround is flat over the kernel: a plain blob."""
    yy, xx = _coords(k)
    shapes = []
    for oy in _offsets(k):
        for ox in _offsets(k):
            r2 = (xx - ox) ** 2 + (yy - oy) ** 2
            for s1 in np.geomspace(0.5, max(k / 3, 0.75), 6):
                for ratio in (1.6, 2.5, 4.0, 50.0):
                    shapes.append(torch.stack([torch.exp(-0.5 * r2 / s1 ** 2), torch.exp(-0.5 * r2 / (s1 * ratio) ** 2)]))
    return torch.stack(shapes).flatten(2).float()


def _fit(maps: torch.Tensor, basis: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares of each map (n, k * k) on every two-function shape of ``basis``:
    (R^2 of the best shape, its index) per map."""
    gram = basis @ basis.transpose(1, 2) + 1e-6 * torch.eye(2)  # (shapes, 2, 2)
    inverse = torch.linalg.inv(gram)
    r2, best = [], []
    for start in range(0, len(maps), batch):
        m = maps[start:start + batch].float()
        p = torch.einsum("sij,nj->nsi", basis, m)  # projections (n, shapes, 2)
        explained = torch.einsum("nsi,sij,nsj->ns", p, inverse, p)
        total = (m ** 2).sum(1, keepdim=True)
        centred = ((m - m.mean(1, keepdim=True)) ** 2).sum(1, keepdim=True).clamp_min(1e-20)
        value, index = (1 - (total - explained) / centred).max(1)
        r2.append(value)
        best.append(index)
    return torch.cat(r2), torch.cat(best)


def fit_gabors(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares Gabor fit of each (k, k) map: (R^2, frequency in cycles/pixel)."""
    n, k, _ = maps.shape
    basis, frequency = _gabor_basis(k)
    r2, best = _fit(maps.reshape(n, -1), basis)
    return r2, frequency[best]


def fit_dogs(maps: torch.Tensor) -> torch.Tensor:
    """Least-squares difference-of-Gaussians fit of each (k, k) map: R^2."""
    n, k, _ = maps.shape
    return _fit(maps.reshape(n, -1), _dog_basis(k))[0]


def surrogates(maps: torch.Tensor, count: int = SURROGATES, seed: int = 0) -> torch.Tensor:
    """Random maps with each map's radial power spectrum: (n, count, k, k), each of
    the map's own norm."""
    n, k, _ = maps.shape
    spectrum = torch.fft.fft2(maps.double()).abs()
    fy, fx = torch.meshgrid(torch.fft.fftfreq(k), torch.fft.fftfreq(k), indexing="ij")
    ring = torch.round(torch.hypot(fx, fy) * k).long().flatten()  # which radius each frequency has
    rings = int(ring.max()) + 1
    sums = torch.zeros(n, rings, dtype=torch.float64).index_add_(1, ring, spectrum.flatten(1) ** 2)
    counts = torch.zeros(rings, dtype=torch.float64).index_add_(0, ring, torch.ones_like(ring, dtype=torch.float64))
    amplitude = (sums / counts).sqrt()[:, ring].view(n, 1, k, k)
    noise = torch.randn(n, count, k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    out = torch.fft.ifft2(torch.fft.fft2(noise) * amplitude).real
    norms = maps.double().flatten(1).norm(dim=1).view(n, 1, 1, 1)
    return (out / out.flatten(2).norm(dim=2).clamp_min(1e-20)[..., None, None] * norms).float()


def kernel_stats(weight: torch.Tensor) -> dict[str, np.ndarray]:
    """Per unit of a convolution over RGB, on the kernel's dominant color component
    (its best rank-1 color x space factor): the Gabor fit (``gabor_r2``,
    ``gabor_frequency`` in cycles/pixel) and the difference-of-Gaussians fit
    (``dog_r2``), each with the surrogates' 90th percentile (``gabor_null``,
    ``dog_null``); the fraction of the kernel's energy that is chromatic
    (``color_fraction``); how much of it the dominant component holds
    (``separability``); and the kernel's norm over the layer's median (``norm``)."""
    w = weight.detach().float().cpu()
    c, _, k, _ = w.shape
    luminance = torch.ones(3) / math.sqrt(3)
    lum = torch.einsum("cihw,i->chw", w, luminance)
    chroma = w - lum[:, None] * luminance.view(1, 3, 1, 1)
    energy = (w ** 2).sum((1, 2, 3))
    color_fraction = (chroma ** 2).sum((1, 2, 3)) / energy.clamp_min(1e-30)
    u, s, vh = torch.linalg.svd(w.view(c, 3, k * k), full_matrices=False)
    spatial = (s[:, :1, None] * vh[:, :1]).view(c, k, k)
    null = surrogates(spatial).view(c * SURROGATES, k, k)
    gabor_r2, frequency = fit_gabors(spatial)
    dog_r2 = fit_dogs(spatial)
    gabor_null = fit_gabors(null)[0].view(c, SURROGATES).quantile(NULL_QUANTILE, dim=1)
    dog_null = fit_dogs(null).view(c, SURROGATES).quantile(NULL_QUANTILE, dim=1)
    norm = energy.sqrt()
    # Opponency of the dominant color axis: its negative weights against its positive ones
    # (1 for red vs green or blue vs yellow, 0 for a single channel or for gray).
    axis = u[:, :, 0]
    positive, negative = axis.clamp_min(0).sum(1), (-axis).clamp_min(0).sum(1)
    opponency = torch.minimum(positive, negative) / torch.maximum(positive, negative).clamp_min(1e-30)
    return {"gabor_r2": gabor_r2.numpy(), "gabor_frequency": frequency.numpy(), "gabor_null": gabor_null.numpy(),
            "dog_r2": dog_r2.numpy(), "dog_null": dog_null.numpy(), "color_fraction": color_fraction.numpy(),
            "separability": (s[:, 0] ** 2 / (s ** 2).sum(1).clamp_min(1e-30)).numpy(),
            "axis_opponency": opponency.numpy(),
            "norm": (norm / norm.median().clamp_min(1e-30)).numpy()}
