"""Ground-truth networks: seeded constructions whose every unit is known.

A method that labels units or draws what they detect is only as good as its record
on networks where the answer is known, and on many of them, not one fixture.
``make_network(seed)`` draws one network of a varied construction:

- ``conv1`` reads RGB (in [0, 1]; the network subtracts grey, so a grey image is
  zero) with kernels of size 5-11 at stride 1 or 2: luminance **Gabors** (random
  orientation, frequency, phase and sign; half of them, from 5 px, on smoothed noise
  of a third to two thirds of their norm and tinted by up to 20% per channel, as
  trained first layers have them), **color-opponent** units (red-green or
  blue-yellow, either sign, as an edge or a blob), **center-surround** units
  (difference of Gaussians, on or off) and **noise** units (smoothed random kernels),
  in shuffled channel order; with or without a bias that keeps it silent on grey;
- then, maybe, eval-mode batch norm (per-channel scales of either sign: a negative
  one flips what the unit detects, and the truth records that), an activation
  (ReLU, ReLU6 or GELU) and max or average pooling;
- ``conv2`` reads ``conv1``'s rectified units: each **combination** unit adds up the
  Gabors of one orientation over a small neighbourhood, behind a first layer that is
  silent on the starting image whenever ``conv1`` has its negative bias.

Layers are named by their ``Conv2d`` modules, so the requested outputs are linear,
as a user who picks modules by name gets them. ``truth`` records, per layer and
channel, the unit's kind and what it prefers (orientation of the wave vector in
degrees, x right and y down, modulo 180; frequency in cycles per input pixel; the
color axis it prefers, sign included).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from atlas.models import LoadedModel
from atlas.stages.families.contours import CONTOUR_AXES, curve_weights, line_detectors, line_weights

GABOR, COLOR, CENTER_SURROUND, NOISE, COMBINATION = "gabor", "color", "center-surround", "noise", "combination"
LINE, CURVE = "line", "curve"
RED_GREEN = (1.0, -1.0, 0.0)
BLUE_YELLOW = (-0.5, -0.5, 1.0)


@dataclass(frozen=True)
class UnitTruth:
    kind: str
    orientation: float | None = None  # degrees in [0, 180): the wave vector's direction, x right, y down
    frequency: float | None = None  # cycles per input pixel
    color: tuple[float, float, float] | None = None  # the color axis that drives the unit, sign included
    silent_start: bool = False  # every input of the unit is silent on a grey image
    bandwidth: float | None = None  # a Gabor's frequency tuning width, 1 / (2 pi sigma), cycles per pixel
    family: str = "Ot"  # the family (atlas.stages.families) the unit was built to belong to


@dataclass
class Construction:
    """How one network was drawn (for reports)."""

    kernel: int
    stride: int
    norm: bool
    activation: str
    pool: str | None
    silent: bool
    layers: dict[str, list[UnitTruth]] = field(default_factory=dict)
    mixing: float = 0.0  # a transformer's attention: the weight a patch gives each neighbour


class GroundTruthNet(nn.Module):
    def __init__(self, conv1: nn.Conv2d, after: nn.Sequential, conv2: nn.Conv2d, lines: nn.Sequential,
                 contours: nn.Conv2d):
        super().__init__()
        self.conv1, self.after, self.conv2 = conv1, after, conv2
        self.lines, self.contours = lines, contours
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x - 0.5
        early = self.act2(self.conv2(self.after(self.conv1(grey)))).mean((2, 3))
        return early.sum(1) + self.act2(self.contours(self.lines(grey))).mean((2, 3)).sum(1)


def _grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(k) - (k - 1) / 2
    return c[None, :], c[:, None]  # x right, y down: array columns and rows


def gabor(k: int, orientation: float, frequency: float, sigma: float, phase: float) -> np.ndarray:
    x, y = _grid(k)
    t = math.radians(orientation)
    along = x * math.cos(t) + y * math.sin(t)
    return np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2)) * np.cos(2 * math.pi * frequency * along + phase)


def gaussian(k: int, sigma: float) -> np.ndarray:
    x, y = _grid(k)
    g = np.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _smoothed_noise(k: int, rng: np.random.Generator) -> np.ndarray:
    """Random RGB kernels blurred at a tenth of their size: noise at the kernel's own
    scale (blurred more, a small kernel would be one smooth gradient, an edge detector)."""
    noise = rng.normal(size=(3, k + 4, k + 4))
    blur = gaussian(5, max(k / 10, 0.5))
    out = np.zeros((3, k, k))
    for c in range(3):
        for i in range(k):
            for j in range(k):
                out[c, i, j] = (noise[c, i:i + 5, j:j + 5] * blur).sum()
    return out


def _unit_norm(kernel: np.ndarray) -> np.ndarray:
    return kernel / np.sqrt((kernel ** 2).sum())


def first_layer(k: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[UnitTruth]]:
    """Kernels (3, k, k) of unit norm and their truths, in shuffled order. A kernel of
    3 pixels has no room for smoothed noise that is not an edge or a blob detector
    itself, so it gets no noise units."""
    kernels, truths = [], []
    noisy = np.random.default_rng(int(rng.integers(2**31)))
    sigma = max(k / 4.5, 0.9)
    for _ in range(6):
        orientation = float(rng.uniform(0, 180))
        frequency = float(rng.uniform(min(max(0.1, 1.2 / k), 0.25), 0.3))  # a cycle or more in the kernel
        spatial = gabor(k, orientation, frequency, sigma, float(rng.uniform(0, 2 * math.pi)))
        spatial -= spatial.mean()
        kernels.append(np.stack([spatial] * 3) * rng.choice([-1, 1]))
        truths.append(UnitTruth(GABOR, orientation, frequency, bandwidth=1 / (2 * math.pi * sigma), family="Ga"))
    for index in range(3 if k >= 5 else 0):  # as trained first layers have them: a Gabor on noise, tinted
        kernel = _unit_norm(kernels[index])
        noise = _smoothed_noise(k, noisy)
        kernels[index] = kernel * noisy.uniform(0.8, 1.2, (3, 1, 1)) + noise / np.sqrt((noise ** 2).sum()) / \
            noisy.uniform(1.5, 3.0)
    dog = gaussian(k, k / 9) - gaussian(k, k / 4)  # a centre and its surround: zero on a uniform field
    for shape in ("edge", "edge", "spot", "spot"):
        axis = RED_GREEN if rng.random() < 0.5 else BLUE_YELLOW
        sign = float(rng.choice([-1, 1]))
        if shape == "spot":  # single-opponent: the color in the centre, its opponent around it
            spatial = dog
        else:  # an edge between the color and its opponent
            spatial = gabor(k, float(rng.uniform(0, 180)), 1.0 / (2 * k), k / 3.5, math.pi / 2)
        kernels.append(np.stack([spatial * c for c in axis]) * sign)
        truths.append(UnitTruth(COLOR, color=tuple(sign * c for c in axis), family="Cc" if shape == "edge" else "Cs"))
    for _ in range(2):
        kernels.append(np.stack([dog] * 3) * rng.choice([-1, 1]))
        truths.append(UnitTruth(CENTER_SURROUND, family="Bw"))
    for _ in range(2 if k >= 5 else 0):
        kernels.append(_smoothed_noise(k, rng))
        truths.append(UnitTruth(NOISE))
    order = rng.permutation(len(kernels))
    return [_unit_norm(kernels[i]) for i in order], [truths[i] for i in order]


def make_network(seed: int) -> tuple[LoadedModel, Construction]:
    """A seeded ground-truth network, as a ``LoadedModel`` (input RGB in [0, 1])."""
    rng = np.random.default_rng(seed)
    k = int(rng.choice([5, 7, 9, 11]))
    stride = int(rng.choice([1, 2]))
    norm = bool(rng.random() < 0.5)
    activation = str(rng.choice(["relu", "relu6", "gelu"]))
    pool = [None, "max", "avg"][int(rng.integers(3))]
    silent = bool(rng.random() < 0.6)
    kernels, truths = first_layer(k, rng)
    scales = np.ones(len(kernels))
    if norm:  # per-channel scales of either sign
        scales = rng.uniform(0.5, 2.0, len(kernels)) * rng.choice([-1, 1], len(kernels), p=[0.25, 0.75])
    conv1 = nn.Conv2d(3, len(kernels), k, stride=stride, padding=k // 2)
    with torch.no_grad():
        conv1.weight.copy_(torch.tensor(np.stack(kernels), dtype=torch.float32))
        # Silent on grey: below zero after the scale, whatever its sign.
        conv1.bias.copy_(torch.tensor(-0.2 * np.sign(scales) if silent else np.zeros(len(kernels)),
                                      dtype=torch.float32))
    after: list[nn.Module] = []
    if norm:
        bn = nn.BatchNorm2d(len(kernels))
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(scales, dtype=torch.float32))
            bn.bias.zero_()
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)
        after.append(bn)
        # A negative scale: the rectified unit fires for the opposite polarity.
        truths = [_flipped(t) if s < 0 else t for t, s in zip(truths, scales)]
    after.append({"relu": nn.ReLU(inplace=True), "relu6": nn.ReLU6(), "gelu": nn.GELU()}[activation])
    if pool == "max":
        after.append(nn.MaxPool2d(3, 2, 1))
    elif pool == "avg":
        after.append(nn.AvgPool2d(3, 2, 1))
    conv2, second = _second_layer(truths, silent and activation != "gelu", rng)
    lines, contours, contour_truths = contour_layer(np.random.default_rng([seed, 1]), activation)
    net = GroundTruthNet(conv1, nn.Sequential(*after), conv2, lines, contours).eval().requires_grad_(False)
    construction = Construction(k, stride, norm, activation, pool, silent,
                                {"conv1": truths, "conv2": second, "contours": contour_truths})
    size = 64
    return LoadedModel(f"groundtruth-{seed}", f"groundtruth:{seed}", net, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                       size, f"groundtruth-{seed}"), construction


def network(seed: int = 2) -> nn.Module:
    """The module of ``make_network(seed)``, for a config's ``arch =
    "atlas.stages.families.groundtruth:network"`` (RGB in [0, 1], no normalisation)."""
    return make_network(seed)[0].module


class GroundTruthViT(nn.Module):
    """A vision transformer whose units are known: ``embed`` cuts patches of ``k`` px with
    the first-layer kernels of ``first_layer`` (stride ``k``); a class token goes first;
    one block adds attention that you set, then an MLP whose hidden neuron j (``mlp.0``,
    GELU after it) reads feature j of the residual stream.

    The attention's queries and keys are zero, so where a token looks is its mask alone:
    each patch gives ``1 - 4 * mixing`` of its weight to itself and ``mixing`` to each of
    its four neighbours (renormalised at the grid's edge); the class token sees itself.
    Its values are the tokens and its output half of them, so the MLP's neuron j adds up
    feature j over a patch and its neighbours, and is still affine in the pixels."""

    def __init__(self, kernels: list[np.ndarray], k: int, silent: bool, grid: int = 8, mixing: float = 0.0):
        super().__init__()
        width = len(kernels)
        self.embed = nn.Conv2d(3, width, k, stride=k)
        self.register_buffer("cls", torch.zeros(1, 1, width))  # the class token: no parameter to train
        self.mixing = mixing
        self.register_buffer("mask", _neighbour_mask(grid, mixing))
        self.attention = nn.MultiheadAttention(width, 1, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        eye = torch.eye(width)
        with torch.no_grad():
            self.embed.weight.copy_(torch.tensor(np.stack(kernels), dtype=torch.float32))
            self.embed.bias.fill_(-0.2 if silent else 0.0)
            self.attention.in_proj_weight.copy_(torch.cat([torch.zeros_like(eye), torch.zeros_like(eye), eye]))
            self.attention.in_proj_bias.zero_()
            self.attention.out_proj.weight.copy_(0.5 * eye)
            self.attention.out_proj.bias.zero_()
            self.mlp[0].weight.copy_(eye)
            self.mlp[0].bias.zero_()
            self.mlp[2].weight.copy_(eye)
            self.mlp[2].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.embed(x - 0.5).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(patches), -1, -1), patches], dim=1)
        mask = self.mask if tokens.shape[1] == len(self.mask) else \
            _neighbour_mask(math.isqrt(tokens.shape[1] - 1), self.mixing).to(x.device)  # another input size
        tokens = tokens + self.attention(tokens, tokens, tokens, attn_mask=mask, need_weights=False)[0]
        tokens = tokens + self.mlp(tokens)
        return tokens[:, 0].sum(1)


def _neighbour_mask(grid: int, mixing: float) -> torch.Tensor:
    """An additive attention mask (1 + grid^2 tokens, the class token first): the log of the
    weight each patch gives itself (``1 - 4 mixing``) and its four neighbours (``mixing``)."""
    weights = torch.zeros(1 + grid * grid, 1 + grid * grid)
    weights[0, 0] = 1.0
    for y in range(grid):
        for x in range(grid):
            i = 1 + y * grid + x
            weights[i, i] = 1 - 4 * mixing
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                if 0 <= y + dy < grid and 0 <= x + dx < grid and mixing > 0:
                    weights[i, 1 + (y + dy) * grid + x + dx] = mixing
    return weights.log()


def make_transformer(seed: int) -> tuple[LoadedModel, Construction]:
    """A seeded ground-truth vision transformer (``GroundTruthViT``): 8 x 8 patches of the
    first-layer kernels' size, attention that mixes each patch with its neighbours or
    not (``mixing`` 0 to 0.1); ``embed`` and ``mlp.0`` have the first layer's truths."""
    rng = np.random.default_rng([seed, 7])
    k = int(rng.choice([5, 7, 9, 11]))
    silent = bool(rng.random() < 0.5)
    mixing = float(rng.choice([0.0, rng.uniform(0.05, 0.1)]))
    kernels, truths = first_layer(k, rng)
    net = GroundTruthViT(kernels, k, silent, 8, mixing).eval().requires_grad_(False)
    construction = Construction(k, k, False, "gelu", None, silent, {"embed": truths, "mlp.0": truths}, mixing)
    return LoadedModel(f"groundtruth-vit-{seed}", f"groundtruth-vit:{seed}", net, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                       8 * k, f"groundtruth-vit-{seed}"), construction


def transformer(seed: int = 0) -> nn.Module:
    """The module of ``make_transformer(seed)``, for a config's ``arch =
    "atlas.stages.families.groundtruth:transformer"`` (RGB in [0, 1], input ``8 k`` px)."""
    return make_transformer(seed)[0].module


def _flipped(truth: UnitTruth) -> UnitTruth:
    if truth.color is None:
        return truth  # orientation and frequency do not depend on the sign
    return dataclasses.replace(truth, color=tuple(-c for c in truth.color))


def _second_layer(truths: list[UnitTruth], silent: bool, rng: np.random.Generator
                  ) -> tuple[nn.Conv2d, list[UnitTruth]]:
    """Combination units: each adds up the Gabors of one orientation (3x3 taps)."""
    gabors = [i for i, t in enumerate(truths) if t.kind == GABOR]
    picks = list(rng.permutation(gabors)[:4])
    conv2 = nn.Conv2d(len(truths), len(picks), 3, padding=1)
    second = []
    with torch.no_grad():
        conv2.weight.zero_()
        conv2.bias.fill_(-0.01)
        for out, source in enumerate(picks):
            conv2.weight[out, source] = torch.tensor(gaussian(3, 1.0) * 9, dtype=torch.float32)
            t = truths[source]
            second.append(dataclasses.replace(t, kind=COMBINATION, silent_start=silent, family="Ga"))
    return conv2, second


# -- contours: lines and curves built from line detectors ----------------------------------


def contour_layer(rng: np.random.Generator, activation: str) -> tuple[nn.Sequential, nn.Conv2d, list[UnitTruth]]:
    """A hidden layer of line detectors (kernel 5 or 7, stride 1 or 2) and ``contours``
    over it: curve units (random orientation, radius and polarity), long-line units
    and noise units (random taps), in shuffled order, each with a threshold at a random
    fraction of what its own stimulus gives it."""
    from atlas.data import stimuli

    k_line, stride = int(rng.choice([5, 7])), int(rng.choice([1, 2]))
    width = float(rng.choice([1.0, 1.5]))
    lines = nn.Conv2d(3, 2 * len(CONTOUR_AXES), k_line, stride=stride, padding=k_line // 2, bias=False)
    # Curves wider than a line detector is long, or line detectors cannot follow them.
    radius = float(rng.uniform(1.3, 1.8)) * k_line / stride  # in line-detector pixels
    k = 2 * math.ceil(radius) + 3
    weights, truths, stimulus = [], [], []
    for _ in range(4):
        orientation, polarity = float(rng.uniform(0, 360)), int(rng.integers(2))
        weights.append(curve_weights(k, orientation, radius, polarity))
        truths.append(UnitTruth(CURVE, orientation=orientation, family="Cv"))
        stimulus.append((stimuli.curve(64, orientation, radius * stride, width=width * stride), polarity))
    for _ in range(3):
        normal, polarity = float(rng.uniform(0, 180)), int(rng.integers(2))
        weights.append(line_weights(k, normal, polarity))
        truths.append(UnitTruth(LINE, orientation=normal, family="Ln"))
        stimulus.append((stimuli.line(64, normal, 2 * k * stride, width=width * stride), polarity))
    for _ in range(2):
        # Dense random taps: a few sparse ones would make a shifted line detector.
        weights.append(rng.normal(size=(2 * len(CONTOUR_AXES), k, k)) * (rng.random((2 * len(CONTOUR_AXES), k, k)) < 0.3))
        truths.append(UnitTruth(NOISE))
        stimulus.append(None)
    order = rng.permutation(len(weights))
    contours = nn.Conv2d(2 * len(CONTOUR_AXES), len(weights), k, padding=k // 2)
    act = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "gelu": nn.GELU()}[activation]
    with torch.no_grad():
        lines.weight.copy_(torch.tensor(line_detectors(k_line, width), dtype=torch.float32))
        contours.weight.copy_(torch.tensor(np.stack([weights[i] for i in order]), dtype=torch.float32))
        contours.bias.zero_()
        hidden = nn.Sequential(lines, act)
        for row, i in enumerate(order):
            if stimulus[i] is not None:
                coverage, polarity = stimulus[i]
                image = torch.tensor(coverage if polarity == 0 else -coverage, dtype=torch.float32) * 0.5
                peak = contours(hidden(image.expand(1, 3, 64, 64)))[0, row, 32 // stride, 32 // stride]
                contours.bias[row] = -float(rng.uniform(0.2, 0.5)) * float(peak.clamp_min(0))
    return hidden, contours, [truths[i] for i in order]


# -- what an image shows -------------------------------------------------------------

def dominant_grating(image: np.ndarray, lowest: float = 0.03) -> tuple[float, float]:
    """The orientation (degrees, [0, 180), x right and y down) and frequency (cycles
    per pixel) of the strongest Fourier component of an image's luminance (H, W, 3),
    ignoring frequencies below ``lowest``. Strongest against natural images' spectrum
    (power times f squared): both parameterisations start from a 1 / f amplitude
    spectrum, so what an optimisation added shows above that prior, as a reader sees
    stripes over shading."""
    luminance = image.astype(np.float64).mean(-1)
    luminance = luminance - luminance.mean()
    h, w = luminance.shape
    window = np.outer(np.hanning(h), np.hanning(w))  # no edge artefacts in the spectrum
    power = np.abs(np.fft.fft2(luminance * window)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius = np.hypot(fx, fy)
    power = power * radius ** 2
    power[radius < lowest] = 0
    i = np.unravel_index(np.argmax(power), power.shape)
    return math.degrees(math.atan2(fy[i], fx[i])) % 180, float(radius[i])


def orientation_error(a: float, b: float) -> float:
    """Degrees between two orientations, modulo 180."""
    d = abs(a - b) % 180
    return min(d, 180 - d)


def color_share(image: np.ndarray, axis: tuple[float, float, float]) -> tuple[float, float]:
    """How much of an image's chromatic content lies along a color axis: (its share of
    the chromatic variance, the mean projection onto the axis, in [0, 1] pixel units)."""
    pixels = image.reshape(-1, 3).astype(np.float64) / 255
    luminance = np.ones(3) / math.sqrt(3)
    a = np.asarray(axis, dtype=np.float64)
    a = a - a.dot(luminance) * luminance
    a /= np.linalg.norm(a)
    b = np.cross(luminance, a)
    centred = pixels - 0.5
    along, across = centred @ a, centred @ b
    share = (along ** 2).mean() / ((along ** 2).mean() + (across ** 2).mean() + 1e-12)
    return float(share), float(along.mean())


def image_matches(image: np.ndarray, truth: UnitTruth) -> bool | None:
    """Whether a unit's channel image shows what the unit was built to detect: a Gabor
    (or a combination of Gabors) its grating, at its orientation (within 15 degrees)
    and frequency (within its tuning width: a grating there drives it to at least 61%
    of its best); a color unit its colors (most of the chromatic variance on its axis,
    and a mean on the right side of grey for a blob). None: no criterion for the kind."""
    if truth.kind in (GABOR, COMBINATION):
        orientation, frequency = dominant_grating(image)
        return (orientation_error(orientation, truth.orientation) <= 15
                and abs(frequency - truth.frequency) <= truth.bandwidth)
    if truth.kind == COLOR:
        share, _ = color_share(image, truth.color)
        return share > 0.5
    return None


# -- families checked against the truth ------------------------------------------------

def families_of(model: LoadedModel, layer: str, device: torch.device | str = "cpu", null: bool = True,
                twin: bool = True, seed: int = 0) -> dict[int, dict]:
    """Every unit of a ground-truth layer labelled as a sweep labels it (tuning on the
    stimulus bank, kernel statistics for a convolution over RGB, the family criteria,
    each label tested against the null: untrained twins, every layer drawn again by
    its default initialisation, or with ``twin=False`` the kernels permuted), without a store: {unit: the
    families stage's per-unit record}."""
    from atlas.artifacts import Null
    from atlas.data.bank import field_centre, stimulus_bank
    from atlas.models.twin import PERMUTED, TWIN, permuted, reinitialised
    from atlas.nn.capture import capture
    from atlas.nn.receptive_field import receptive_field
    from atlas.nn.response import layer_response
    from atlas.stages import families, tuning
    from atlas.stages.families import taxonomy
    from atlas.stages.families.handwritten import Matches
    from atlas.stages.null import networks_for
    from atlas.stages.weights import kernel_source
    from atlas.stages.weights.kernels import kernel_stats

    with torch.no_grad():
        blank = torch.zeros(1, 3, model.input_size, model.input_size)
        units = list(range(capture(model.module, blank, [layer])[layer].shape[1]))
    field = receptive_field(model, layer)
    extent = max(field.size_y, field.size_x)
    bank = stimulus_bank(model.input_size, extent, field_centre(field, model.input_size), round(field.effective, 2))
    source = kernel_source(model, layer, len(units))  # as the weights stage decides
    first = source is not None

    def measure(network: LoadedModel) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        responses = tuning.respond(network, layer, bank, units, torch.device(device),
                                   response=layer_response(network, layer, device))
        return responses, kernel_stats(source.kernels(network, layer, len(units))) if first else None

    responses, stats = measure(model)
    summaries = dict(zip(units, tuning.summarize(responses, bank)))
    kernels = {u: {name: float(v[u]) for name, v in stats.items()} for u in units} if first else None
    matcher = Matches(bank, extent, taxonomy.DETECTORS)
    per_unit = taxonomy.label_units(units, summaries, responses, bank.params, kernels, extent, field.effective,
                                    families.matches_of(matcher, summaries, responses, units))
    if not null:
        return per_unit
    draw = reinitialised if twin else permuted
    measured = [measure(draw(model, seed + i)) for i in range(networks_for(len(units), 256, 64))]
    record = Null(kind=TWIN if twin else PERMUTED, why="", networks=len(measured), seeds=[], channels=len(units),
                  calibration="none", kernels={name: np.concatenate([k[name] for _, k in measured]).tolist()
                                               for name in measured[0][1]} if first else None)
    families.against_null(per_unit, units, record, np.concatenate([r for r, _ in measured], axis=1),
                          bank.params, extent, field.effective, first, 0.05, matcher)
    return per_unit
