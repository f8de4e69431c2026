"""Feature visualization, batched: one optimisation renders many images at once.

The pieces follow Lucid and lucent, rearranged so a whole batch of units runs as
one optimisation with no per-step Python work the device would wait on:

- **Parameterisation** (lucent's): each image is a spectrum in a decorrelated
  Fourier basis (``rfft2d_freqs``, 1/f scaling), mapped to RGB through lucent's
  color-correlation matrix and a sigmoid. Each batch element is initialised from
  its own seed, so a unit's image does not depend on which units share its batch.
- **Transformation robustness** (lucent's ``standard_transforms``: pad 12, jitter 8,
  scale 0.9-1.1, rotate -10..10 degrees, jitter 4), drawn independently for every
  batch element from a CPU generator and applied as *one* affine resampling per
  step (lucent applies four ops, three of them warps, with one draw for the batch).
- **MaCo** (Fel et al., NeurIPS 2023), the other parameterisation: only the Fourier
  phase is optimised; the magnitude spectrum is fixed to natural images' (the 1 / f
  power law, ``NATURAL_AMPLITUDE``), so an image keeps natural contrast at every
  scale: it cannot drift into high-frequency noise or a flat field.
- **Objectives** per batch element, on the unit's response (``atlas.nn.response``: the
  activation that follows a linear layer, or its positive part): ``channel`` (mean
  over space), ``neuron`` (the spatial centre), ``negative`` (minimise the signed
  value before the activation), and ``diversity`` (a group of images of one unit,
  penalised for similar Gram matrices, as lucent's ``diversity`` objective); and
  ``direction`` for a direction of the whole layer instead of a unit
  (``direction_values``: an activation atlas cell's mean activation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from atlas.optvis import objectives
from atlas.registry import objective


def _lucent_constants() -> tuple[np.ndarray, np.ndarray]:
    """lucent's frequency grid function and color-correlation matrix."""
    import warnings

    with warnings.catch_warnings():  # kornia 0.4 (imported by lucent) uses deprecated torch.jit.script
        warnings.filterwarnings("ignore", category=FutureWarning)
        from lucent.optvis.param.color import color_correlation_normalized
        from lucent.optvis.param.spatial import rfft2d_freqs
    return rfft2d_freqs, color_correlation_normalized


class FourierImages(torch.nn.Module):
    """A batch of images parameterised as decorrelated Fourier spectra (lucent's ``param.image``)."""

    def __init__(self, seeds: Sequence[int], size: int, device: torch.device, sd: float = 0.01,
                 decay_power: float = 1.0):
        super().__init__()
        rfft2d_freqs, color_matrix = _lucent_constants()
        freqs = rfft2d_freqs(size, size)
        spectra = [torch.randn((3, *freqs.shape, 2), generator=torch.Generator().manual_seed(int(s))) * sd
                   for s in seeds]
        self.spectrum = torch.nn.Parameter(torch.stack(spectra).to(device))
        scale = 1.0 / np.maximum(freqs, 1.0 / size) ** decay_power
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32, device=device)[None, None, ..., None])
        self.register_buffer("colors", torch.tensor(color_matrix.T, dtype=torch.float32, device=device))
        self.size = size

    def forward(self) -> torch.Tensor:
        """RGB images in [0, 1], (N, 3, size, size)."""
        spectrum = torch.view_as_complex(self.scale * self.spectrum)
        image = torch.fft.irfftn(spectrum, s=(self.size, self.size), norm="ortho")[:, :, :self.size, :self.size]
        image = image / 4.0  # lucent's (and Lucid's) "magic" constant against saturation
        # The 3x3 color mix as one matmul over flattened pixels: 7x faster forward and
        # backward on a CPU than the einsum it equals (which runs as a batched matmul).
        image = (self.colors.T @ image.flatten(2)).view_as(image)
        return torch.sigmoid(image)


# Natural images' amplitude spectrum in lucent's decorrelated color space: amplitude
# proportional to 1 / f^EXPONENT (the classical power law of natural images, Field
# 1987), per channel relative to the first. MaCo's own template is ImageNet's mean
# spectrum, which cannot be downloaded here; fitting the law to the photographs that
# ship with scikit-image is left to do.
NATURAL_AMPLITUDE = {"exponent": 1.0, "channels": (1.0, 1.0, 1.0)}


class MacoImages(torch.nn.Module):
    """A batch of images whose Fourier magnitude is fixed to natural images' and whose
    phase is optimised (MaCo). Same interface as ``FourierImages``."""

    def __init__(self, seeds: Sequence[int], size: int, device: torch.device,
                 exponent: float = NATURAL_AMPLITUDE["exponent"],
                 channels: Sequence[float] = NATURAL_AMPLITUDE["channels"]):
        super().__init__()
        rfft2d_freqs, color_matrix = _lucent_constants()
        freqs = rfft2d_freqs(size, size)
        phases = [torch.randn((3, *freqs.shape), generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        self.phase = torch.nn.Parameter(torch.stack(phases).to(device))
        magnitude = 1.0 / np.maximum(freqs, 1.0 / size) ** exponent
        magnitude[0, 0] = 0.0  # no DC term: the mean color is the sigmoid's centre, grey
        magnitude = np.asarray(channels, dtype=np.float64)[:, None, None] * magnitude[None]
        self.register_buffer("magnitude", torch.tensor(magnitude, dtype=torch.float32, device=device)[None])
        self.register_buffer("colors", torch.tensor(color_matrix.T, dtype=torch.float32, device=device))
        self.size = size

    def forward(self) -> torch.Tensor:
        """RGB images in [0, 1], (N, 3, size, size)."""
        spectrum = torch.polar(self.magnitude.expand_as(self.phase), self.phase)
        image = torch.fft.irfftn(spectrum, s=(self.size, self.size), norm="ortho")
        # Standardised per image: the magnitude fixes the contrast, the phase only arranges it.
        flat = image.flatten(1)
        image = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-8)).view_as(image)
        image = (self.colors.T @ image.flatten(2)).view_as(image)
        return torch.sigmoid(image)


PARAMETERISATIONS = {"fft": FourierImages, "maco": MacoImages}


@dataclass(frozen=True)
class Robustness:
    """lucent's standard transforms, drawn per batch element, applied as one warp."""

    pad: int = 12
    jitter: int = 8
    scales: tuple[float, ...] = tuple(1 + (i - 5) / 50.0 for i in range(11))
    angles: tuple[float, ...] = tuple(range(-10, 11)) + (0,) * 5
    jitter_after: int = 4

    def draw(self, seeds: Sequence[int], steps: int) -> torch.Tensor:
        """Every step's transform for every element: (steps, N, 4) = shift x, shift y,
        scale, angle. Drawn up front from each element's own seed, so no random numbers
        are made during optimisation and an element's draws do not depend on its batch."""
        draws = []
        for seed in seeds:
            g = torch.Generator().manual_seed(int(seed) + 1)
            shift = (torch.randint(self.jitter, (steps, 2), generator=g)
                     + torch.randint(self.jitter_after, (steps, 2), generator=g)).float()
            scale = torch.tensor(self.scales)[torch.randint(len(self.scales), (steps,), generator=g)]
            angle = torch.tensor(self.angles, dtype=torch.float32)[torch.randint(len(self.angles), (steps,), generator=g)]
            draws.append(torch.cat([shift, scale[:, None], torch.deg2rad(angle)[:, None]], 1))
        return torch.stack(draws, 1)

    def __call__(self, images: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        """Apply one step's draws (N, 4) to images (N, 3, H, W): pad, then one affine warp."""
        padded = F.pad(images, [self.pad] * 4, value=0.5)
        size = images.shape[-2] + 2 * self.pad
        dx, dy, scale, angle = (draw[:, k].to(images.dtype)[:, None, None] for k in range(4))
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # Output to input coordinates in [-1, 1] (pixel centres, as affine_grid with
        # align_corners=False): rotation and scale undone about the centre, then the
        # shift (pixels -> normalised units). Built as two broadcast sums, 10x faster on
        # a CPU than affine_grid's batched matmul over every pixel.
        centres = (torch.arange(size, device=images.device, dtype=images.dtype) * 2 + 1) / size - 1
        across, down = centres[None, None, :], centres[None, :, None]
        grid = torch.stack([cos * across - sin * down - dx * 2 / size, sin * across + cos * down - dy * 2 / size], -1)
        # Sampled around grey, so what a rotation brings in from outside is grey, not
        # black: black corners are edges that early units fire on, and their gradient
        # reaches no pixel of the image (it traps a silent unit at the border).
        return F.grid_sample(padded - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def unit_maps(acts: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Each batch element's own unit from layer activations (N, C, H, W) or (N, C):
    (N, H, W) or (N,)."""
    return acts[torch.arange(acts.shape[0], device=acts.device), units]


def objective_values(response: torch.Tensor, signed: torch.Tensor, kinds: Sequence[str],
                     images: torch.Tensor | None = None, extras: torch.Tensor | None = None) -> torch.Tensor:
    """Each batch element's objective value (to maximise), from its unit's map.

    response, signed: (N, H, W) or (N,), element i's own unit's response and its
    signed value before the activation (``atlas.nn.response``); kinds: the objective of
    each element (``atlas.optvis.objectives``: named, or the user's); images: the batch,
    for objectives of the images themselves; extras: (N, tokens), the unit's response at
    a token layer's other tokens (its class token). Diversity elements use the channel
    objective here; the group penalty is ``diversity_penalty``."""
    return objectives.values(objectives.View(response, signed, images, extras), kinds)


def direction_values(acts: torch.Tensor, directions: torch.Tensor, origin: torch.Tensor | None = None,
                     floor: float = 0.1) -> torch.Tensor:
    """The ``direction`` objective: at each position, the layer's activation vector
    (acts: (N, C, H, W) or (N, C), the layer's response) less ``origin`` (C,) if given,
    along the element's direction (N, C), times their cosine floored at ``floor``
    (Carter et al.'s "dot x cosine": the image should point the way of the direction,
    not just far along it); the mean over positions. (N,)

    Over every position, as the channel objective: measured on the zoo's mixed3b, 6 of
    32 atlas cells' images failed so, against 10 at the centre position alone."""
    if acts.dim() == 2:
        acts = acts[:, :, None, None]
    if origin is not None:
        acts = acts - origin[None, :, None, None]
    dot = (acts * F.normalize(directions, dim=1)[:, :, None, None]).sum(1)
    cosine = dot / acts.norm(dim=1).clamp_min(1e-8)
    return (dot * cosine.clamp_min(floor)).flatten(1).mean(1)


def diversity_penalty(acts: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Summed cosine similarity of Gram matrices within each group (lucent's diversity)."""
    if acts.dim() != 4 or not groups:
        return acts.new_zeros(())
    flat = acts.flatten(2)
    grams = F.normalize(torch.bmm(flat, flat.transpose(1, 2)).flatten(1), dim=1)
    total = acts.new_zeros(())
    for group in groups:
        g = grams[list(group)]
        similarity = g @ g.T
        total = total + (similarity.sum() - similarity.diagonal().sum())
    return total


def objective_batch(units: Sequence[int], objectives: Sequence[str], diversity: int
                    ) -> tuple[list[int], list[str], list[list[int]]]:
    """Lay out a batch: for each unit, one element per objective (``diversity`` for
    the diversity objective). Returns per-element units, kinds and the diversity groups."""
    element_units, kinds, groups = [], [], []
    for unit in units:
        for kind in objectives:
            count = diversity if objective(kind).grouped else 1
            if objective(kind).grouped:
                groups.append(list(range(len(kinds), len(kinds) + count)))
            element_units += [unit] * count
            kinds += [kind] * count
    return element_units, kinds, groups

