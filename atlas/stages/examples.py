"""Dataset examples: which images excite each unit, where, and how strongly.

One pass over the dataset captures every requested layer at once. A unit's response
to an image is its maximum over space (and where that maximum is). Three summaries
are streamed, so memory stays bounded whatever the dataset size:

- ``StreamingTopK``: the ``examples.top`` strongest images per unit; each is stored
  as a crop of the unit's receptive field around where it fired (``receptive_field``).
- ``ImageReservoir``: a uniform sample of at most ``SAMPLE`` images (the same images
  for every unit), with every unit's response to them: the unit's activation
  quantiles, its histogram, and examples drawn from each tenth of its range (as
  dashboards for language-model features do), all estimated from the sample.
- the fraction of all positions (image x place) where the unit is active (> 0), exact.

A unit's value is its response as the network reads it (``atlas.nn.response``): for a
linear layer that a batch norm and an activation follow (a convolution before its
BN-ReLU), that activation's output, so that "active" is what the network's own
rectifier passes and the strongest images are the ones it passes most (a batch norm
of negative scale turns the raw maximum into the minimum). A layer whose output is
signed and that no activation takes (a residual block's sum) has no threshold: about
half of its positions are above zero by construction, so no fraction active is given
(None, with the reason on the page), and its most negative images are kept beside the
strongest (``bottom``): a signed direction has two ends.

**No near-duplicates.** A dataset often holds the same place more than once (crops of
one photograph, near-identical frames, ImageNet's own duplicates), and a unit's top
images then repeat one picture. ``POOL`` times as many candidates as shown are kept,
and a candidate whose receptive-field crop is a near-duplicate of one already shown
(``near_duplicate``: the 8x8 thumbnails of the crops, grown to at least ``CONTEXT``
pixels a side, differ by less than ``DUPLICATE`` on average) is skipped; each unit records how many were (``duplicates``).

Images are shown from one set of thumbnails per dataset (``thumbnails`` artifact).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from atlas.artifacts import THUMBNAILS, Examples, thumbnail, write
from atlas.images import save_webp
from atlas.models import LoadedModel
from atlas.nn.capture import capture
from atlas.nn.response import Response, as_read, layer_response
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key, layer_receptive_field, model_identity

STAGE = "examples"
FORMAT = 6  # part of the key: bump when the artifact's files change (3: responses, signed layers; 4, 5: distinct;
# 6: "dead" is the reason)
THUMBNAIL = 96  # pixels on a side of a dataset image on the pages
CROP = 64  # pixels on a side of a receptive-field crop
SAMPLE = 1024  # images in the reservoir that quantiles and histograms are estimated from
BINS, PER_BIN = 10, 5  # quantile examples: tenths of the range, examples per tenth
POOL = 4  # candidates kept per top example shown: room to skip near-duplicates
DUPLICATE = 0.05  # two crops whose 8x8 thumbnails differ by less (mean |difference|, 0-1) show one place
NOT_FINITE = "its activations on the dataset are not finite (NaN or infinity)"
CONTEXT = 32  # pixels on a side, at least, of the window compared: a 3 px field's crops are one color each


@dataclass
class StreamingTopK:
    """The k largest values per unit over a stream of batches, with where they came from."""

    units: int
    k: int

    def __post_init__(self) -> None:
        self.values = torch.full((self.units, 0), float("-inf"))
        self.images = torch.zeros((self.units, 0), dtype=torch.long)
        self.positions = torch.zeros((self.units, 0), dtype=torch.long)

    def update(self, values: torch.Tensor, image_ids: torch.Tensor, positions: torch.Tensor) -> None:
        """values, positions: (B, units); image_ids: (B,)."""
        values = torch.cat([self.values, values.T.float().cpu()], dim=1)
        images = torch.cat([self.images, image_ids.cpu().expand(self.units, -1)], dim=1)
        positions = torch.cat([self.positions, positions.T.cpu()], dim=1)
        k = min(self.k, values.shape[1])
        self.values, order = values.topk(k, dim=1)
        self.images = images.gather(1, order)
        self.positions = positions.gather(1, order)


class ImageReservoir:
    """A uniform random sample of the stream's images (Algorithm R), with every
    unit's response to each: memory is ``size x units``, whatever the stream's length."""

    def __init__(self, units: int, size: int = SAMPLE, seed: int = 0):
        self.size, self.seen = size, 0
        self.values = np.zeros((size, units), np.float32)
        self.positions = np.zeros((size, units), np.int64)
        self.images = np.full(size, -1, np.int64)
        self._rng = np.random.default_rng(seed)

    def update(self, values: torch.Tensor, image_ids: torch.Tensor, positions: torch.Tensor) -> None:
        values, positions = values.float().cpu().numpy(), positions.cpu().numpy()
        for row, image in enumerate(image_ids.tolist()):
            slot = self.seen if self.seen < self.size else int(self._rng.integers(0, self.seen + 1))
            self.seen += 1
            if slot < self.size:
                self.values[slot], self.positions[slot], self.images[slot] = values[row], positions[row], image

    def sample(self, unit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, images, positions) of the sampled images for one unit, by value."""
        filled = self.images >= 0
        order = np.argsort(self.values[filled, unit], kind="stable")
        return (self.values[filled, unit][order], self.images[filled][order], self.positions[filled, unit][order])


def signature(pixels: np.ndarray) -> np.ndarray:
    """A crop (H, W, 3 uint8) as the 8x8 RGB thumbnail (0-1) that near-duplicates share:
    small shifts, rescaling and compression noise all but vanish at this size."""
    return np.asarray(Image.fromarray(pixels).resize((8, 8), Image.Resampling.BOX), np.float32) / 255


def context(box: Sequence[int], size: int, minimum: int = CONTEXT) -> tuple[int, int, int, int]:
    """A crop's box (top, left, bottom, right), grown about its centre to at least
    ``minimum`` a side within a ``size`` image: what tells two places apart when the
    receptive field alone is a few pixels of one color."""
    grown = []
    for low, high in ((box[0], box[2]), (box[1], box[3])):
        side = min(max(high - low, minimum), size)
        start = min(max((low + high - side) // 2, 0), size - side)
        grown.append((start, start + side))
    (top, bottom), (left, right) = grown
    return top, left, bottom, right


def near_duplicate(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two signatures show the same place."""
    return float(np.abs(a - b).mean()) < DUPLICATE


def spatial_max(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> max over space and its flat index, each (B, C); (B, C) passes through."""
    if acts.dim() == 2:
        return acts, torch.zeros_like(acts, dtype=torch.long)
    return acts.flatten(2).max(dim=2)


def quantile_examples(values: np.ndarray, bins: int = BINS, per_bin: int = PER_BIN) -> list[list[int]]:
    """For values sorted ascending: indices of ``per_bin`` evenly spread members of
    each of ``bins`` equal-count bins, strongest bin first."""
    n = len(values)
    groups = []
    for b in range(bins):
        lo, hi = b * n // bins, (b + 1) * n // bins
        if hi > lo:
            picks = np.linspace(lo, hi - 1, min(per_bin, hi - lo)).round().astype(int)
            groups.append(sorted(set(picks.tolist()), reverse=True))
        else:
            groups.append([])
    return groups[::-1]


@dataclass
class _LayerSummary:
    top: StreamingTopK
    reservoir: ImageReservoir
    active: torch.Tensor  # (units,) positions with activation > 0
    response: Response
    bottom: StreamingTopK | None = None  # an unrectified layer's most negative images (of the negated values)
    positions: int = 0  # positions seen per unit


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    if ctx.dataset is None:
        return {}
    dataset, cfg = ctx.dataset, ctx.config
    keys = {layer.name: artifact_key(
        stage=STAGE, format=FORMAT, model=model_identity(model), input_size=model.input_size, layer=layer.name,
        units=layer.units, data=dataset.digest(), top=cfg.examples.top, crop=CROP, sample=SAMPLE, pool=POOL,
        duplicate=DUPLICATE,
    ) for layer in layers}
    todo = [layer for layer in layers if ctx.needs(STAGE, keys[layer.name])]
    if todo:
        summaries = _sweep_dataset(ctx, model, todo)
        for layer in todo:
            _write(ctx, model, keys[layer.name], layer, summaries[layer.name])
    return ctx.recorded(STAGE, model.name, keys)


def thumbnails(ctx: StageContext) -> str:
    """The dataset's thumbnails, once per dataset: ``<index>.webp`` for every readable image."""
    key = artifact_key(stage=THUMBNAILS, data=ctx.dataset.digest(), size=THUMBNAIL)
    if ctx.needs(THUMBNAILS, key):
        with ctx.store.writing(THUMBNAILS, key) as folder:
            for index, pixels in _images(ctx.dataset, THUMBNAIL):
                save_webp(pixels, folder / thumbnail(index))
    return key


def _images(dataset, size: int):
    for index in range(len(dataset.records)):
        pixels = dataset.load(index, size)
        if pixels is not None:
            yield index, pixels


def _sweep_dataset(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, _LayerSummary]:
    seed, pool = ctx.config.sweep.seed, ctx.config.examples.top * POOL
    summaries = {}
    for layer in layers:
        response = layer_response(model, layer.name, ctx.device)
        summaries[layer.name] = _LayerSummary(
            StreamingTopK(len(layer.units), pool), ImageReservoir(len(layer.units), seed=seed),
            torch.zeros(len(layer.units), dtype=torch.long), response,
            StreamingTopK(len(layer.units), pool) if response.unrectified else None)
    channels = {layer.name: torch.tensor(layer.units, device=ctx.device) for layer in layers}
    everything = {layer.name: list(layer.units) == list(range(layer.channels)) for layer in layers}

    def reduce(name: str, acts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A layer's map -> per-image maxima and their positions, positions active, and
        for an unrectified layer the minima (negated) and theirs."""
        if not everything[name]:
            acts = acts.index_select(1, channels[name])
        response = summaries[name].response
        values = as_read(response, acts, channels[name])
        maxima, positions = spatial_max(values)
        # Summing over the contiguous spatial axis in int32 is twice as fast as over (0, 2, 3).
        active = values.flatten(2).gt(0).sum(2, dtype=torch.int32).sum(0) if values.dim() == 4 else values.gt(0).sum(0)
        minima = spatial_max(-acts) if response.unrectified else None
        return maxima, positions, active, acts[:, 0].numel(), minima

    names = [layer.name for layer in layers]
    with ctx.progress(len(ctx.dataset.records), f"{model.name}: dataset examples") as bar, torch.no_grad():
        for indices, pixels in ctx.dataset.batches(model.input_size, ctx.config.sweep.batch_size):
            x = torch.from_numpy(pixels).to(ctx.device).permute(0, 3, 1, 2).float() / 255
            reduced = capture(model.module, model.normalize(x), names, reduce=reduce)
            ids = torch.tensor(indices)
            for name in names:
                values, positions, active, count, minima = reduced[name]
                summary = summaries[name]
                summary.top.update(values, ids, positions)
                summary.reservoir.update(values, ids, positions)
                summary.active += active.cpu()
                summary.positions += count
                if minima is not None:
                    summary.bottom.update(*minima[:1], ids, minima[1])
            bar.update(len(indices))
    return summaries


@dataclass
class _Cropper:
    """A layer's examples as stored: each strongest one a crop of the receptive field
    where the unit fired (near-duplicates of a stronger one skipped); every image used
    remembered for the record."""

    folder: Path
    load: Callable[[int], np.ndarray | None]
    receptive: Any  # the layer's ReceptiveField, or None for a vector layer
    input_size: int
    width: int  # of the feature map
    top: int
    used: set[int] = field(default_factory=set)

    def example(self, value: float, image: int, position: int) -> dict[str, Any]:
        self.used.add(int(image))
        return {"image": int(image), "value": float(value), "y": int(position) // self.width,
                "x": int(position) % self.width}

    def strongest(self, found: StreamingTopK, row: int, unit: int, kind: str,
                  sign: float = 1.0) -> tuple[list[dict[str, Any]], int]:
        """A unit's strongest ``top`` images that are not near-duplicates of a stronger
        one, each with a crop of its receptive field where it fired; and how many were skipped."""
        kept, shown, skipped = [], [], 0
        for v, i, p in zip(found.values[row].tolist(), found.images[row].tolist(), found.positions[row].tolist()):
            if v == float("-inf") or len(kept) == self.top:
                break
            ex = {"image": int(i), "value": sign * v, "y": int(p) // self.width, "x": int(p) % self.width}
            pixels = self.load(ex["image"])
            if pixels is not None:
                whole = (0, 0, self.input_size, self.input_size)
                box = self.receptive.box(ex["y"], ex["x"]) if self.receptive else whole
                y0, x0, y1, x1 = context(box, self.input_size)
                mark = signature(pixels[y0:y1, x0:x1])
                if any(near_duplicate(mark, other) for other in shown):
                    skipped += 1
                    continue
                shown.append(mark)
                ex["box"], ex["crop"] = list(box), f"crop-{kind}{unit}-{len(kept)}.webp"
                save_webp(pixels[box[0]:box[2], box[1]:box[3]], self.folder / ex["crop"], size=CROP)
            self.used.add(ex["image"])
            kept.append(ex)
        return kept, skipped


def _write(ctx: StageContext, model: LoadedModel, key: str, layer: LayerInfo, summary: _LayerSummary) -> None:
    height, width = layer.shape[1:] if layer.spatial else (1, 1)
    field_ = layer_receptive_field(ctx, model, layer.name) if layer.spatial else None
    load = functools.lru_cache(maxsize=512)(lambda image: ctx.dataset.load(image, model.input_size))
    with ctx.store.writing(STAGE, key) as folder:
        crops = _Cropper(folder, load, field_, model.input_size, width, ctx.config.examples.top)
        units = {str(unit): _unit(crops, summary, row, unit) for row, unit in enumerate(layer.units)}
        write(folder, Examples(
            units=units, grid=[height, width], input_size=model.input_size,
            response=summary.response.description, unrectified=summary.response.unrectified,
            receptive_field=None if field_ is None else {
                "size": [field_.size_y, field_.size_x], "stride": [field_.stride_y, field_.stride_x],
                **({"through_attention": True} if field_.through_attention else {})},
            images={str(i): {"name": ctx.dataset.records[i].name, "label": ctx.dataset.records[i].label}
                    for i in sorted(crops.used)},
            sample=int(min(summary.reservoir.seen, summary.reservoir.size))))
    ctx.unanswered(STAGE, f"{model.name} {layer.name}", {int(u): d["dead"] for u, d in units.items() if d["dead"]})


def _unit(crops: _Cropper, summary: _LayerSummary, row: int, unit: int) -> dict[str, Any]:
    """One unit's record: its strongest examples, its quantiles and histogram from the
    sample, the fraction of places it is active, and why it has no answer, if it has none."""
    values, images, positions = summary.reservoir.sample(row)
    ranked = np.asarray(summary.top.values[row], np.float64)
    if not (np.isfinite(values).all() and np.isfinite(ranked[ranked != -np.inf]).all()):
        return {"top": [], "duplicates": 0, "quantiles": [], "activation_quantiles": [],
                "histogram": _histogram(values[:0]), "fraction_active": None, "dead": NOT_FINITE}
    unrectified = summary.response.unrectified
    strongest, duplicates = crops.strongest(summary.top, row, unit, "")
    record = {
        "top": strongest, "duplicates": duplicates,
        "quantiles": [[crops.example(values[i], images[i], positions[i]) for i in group]
                      for group in quantile_examples(values)],
        "activation_quantiles": np.quantile(values, np.linspace(0, 1, BINS + 1)).round(5).tolist()
        if len(values) else [],
        "histogram": _histogram(values),
        # An unrectified layer has no threshold: "above zero" is about half by construction.
        "fraction_active": None if unrectified else float(summary.active[row]) / max(summary.positions, 1),
        "dead": no_answer([ex["value"] for ex in strongest], values) or False,
    }
    if unrectified:
        record["bottom"], record["bottom_duplicates"] = crops.strongest(summary.bottom, row, unit, "negative-",
                                                                        sign=-1.0)
    return record


def no_answer(strongest: Sequence[float], sample: np.ndarray) -> str | None:
    """Why a unit's (finite) dataset examples say nothing about it, or None: it is never
    above zero, or the same everywhere (a unit of bias alone), which ranks its
    "strongest" images on rounding errors."""
    values = np.concatenate([np.asarray(strongest, np.float64), np.asarray(sample, np.float64)])
    if not len(strongest) or strongest[0] <= 0:
        return "never active on the dataset"
    if np.ptp(values) <= 1e-6 * float(np.abs(values).max()):
        return f"the same activation ({strongest[0]:.3g}) on every image and at every place"
    return None


def _histogram(values: np.ndarray, bins: int = 20) -> dict[str, list[float]]:
    """Counts over ``bins`` equal bins of the values' range, in float64: a float32 range
    a few of its own steps wide (a unit that barely varies) has no 20 distinct edges."""
    if len(values) == 0:
        return {"counts": [], "edges": []}
    counts, edges = np.histogram(np.asarray(values, np.float64), bins=bins)
    return {"counts": counts.tolist(), "edges": edges.round(5).tolist()}


PASSES = 1.0  # forward passes' worth of work per image (``atlas.plan``: fitted on the zoo's cold build)
COST_PER_IMAGE_LAYER = 0.00095  # seconds per image per layer: top-k and reservoir bookkeeping
COST_PER_UNIT = 0.001  # seconds per unit: its summaries
# Seconds per crop, and per pixel of the image it is cut from (resizing a field as wide as a
# 224 px photograph to 64 px is most of it): fitted on the zoo's 64 px images (5.2 ms a unit of
# 9 crops) and the whole EfficientNet-Lite0's 224 px photographs (61 ms a unit of 17).
COST_PER_CROP = 0.0002
COST_PER_CROP_PIXEL = 6.6e-8


def cost(m: Measured) -> Cost | None:
    if not m.images:
        return None
    share = m.images * m.forward * PASSES / len(m.layers)  # one dataset pass for every layer
    crop = COST_PER_CROP + COST_PER_CROP_PIXEL * m.model.input_size ** 2
    per_layer = []
    for layer in m.layers:  # an unrectified layer's units have their most negative examples too
        crops = m.config.examples.top * (2 if layer_response(m.model, layer.name, m.device).unrectified else 1)
        per_layer.append(share + m.images * COST_PER_IMAGE_LAYER + m.units[layer.name] * (COST_PER_UNIT + crops * crop))
    return Cost(per_layer, f"{m.images} images x {m.forward * 1e3:.2f} ms, crops of {m.model.input_size} px images")
