"""Dataset examples: the images that excite each unit most.

One pass over the dataset captures every requested layer at once. Each unit's
response to an image is its maximum over space (where in the image it fired is
kept too), and a streaming top-k keeps the best ``examples.top`` images per unit,
so memory stays bounded whatever the dataset size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from atlas.capture import capture
from atlas.images import save_webp
from atlas.models import LoadedModel
from atlas.stages import LayerInfo, StageContext, artifact_key, model_identity
from atlas.store import write_json

STAGE = "examples"
THUMBNAIL = 96  # pixels on a side of an example image on the pages


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


def spatial_max(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> max over space and its flat index, each (B, C); (B, C) passes through."""
    if acts.dim() == 2:
        return acts, torch.zeros_like(acts, dtype=torch.long)
    return acts.flatten(2).max(dim=2)


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    if ctx.dataset is None:
        return {}
    dataset, cfg = ctx.dataset, ctx.config
    keys = {layer.name: artifact_key(
        stage=STAGE, model=model_identity(model), input_size=model.input_size, layer=layer.name,
        units=layer.units, data=dataset.digest(), top=cfg.examples.top, thumbnail=THUMBNAIL,
    ) for layer in layers}
    todo = [layer for layer in layers if ctx.needs(STAGE, keys[layer.name])]
    if todo:
        tops = _sweep_dataset(ctx, model, todo)
        for layer in todo:
            _write(ctx, keys[layer.name], layer, tops[layer.name])
    for layer in layers:
        ctx.store.record(STAGE, keys[layer.name], {"model": model.name, "layer": layer.name})
    return {name: [key] for name, key in keys.items()}


def _sweep_dataset(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, StreamingTopK]:
    tops = {layer.name: StreamingTopK(len(layer.units), ctx.config.examples.top) for layer in layers}
    selected = {layer.name: torch.tensor(layer.units, device=ctx.device) for layer in layers}
    names = [layer.name for layer in layers]
    with ctx.progress(len(ctx.dataset.records), f"{model.name}: dataset examples") as bar, torch.no_grad():
        for indices, pixels in ctx.dataset.batches(model.input_size, ctx.config.sweep.batch_size):
            x = torch.from_numpy(pixels).to(ctx.device).permute(0, 3, 1, 2).float() / 255
            acts = capture(model.module, model.normalize(x), names)
            ids = torch.tensor(indices)
            for name in names:
                values, positions = spatial_max(acts[name].index_select(1, selected[name]))
                tops[name].update(values, ids, positions)
            bar.update(len(indices))
    return tops


def _write(ctx: StageContext, key: str, layer: LayerInfo, top: StreamingTopK) -> None:
    height, width = layer.shape[1:] if len(layer.shape) == 3 else (1, 1)
    units = {}
    for row, unit in enumerate(layer.units):
        units[str(unit)] = [
            {"image": int(i), "value": float(v), "y": int(p) // width, "x": int(p) % width}
            for v, i, p in zip(top.values[row], top.images[row], top.positions[row])
            if v > float("-inf")
        ]
    used = sorted({example["image"] for examples in units.values() for example in examples})
    with ctx.store.writing(STAGE, key) as folder:
        for index in used:
            pixels = ctx.dataset.load(index, THUMBNAIL)
            if pixels is not None:
                save_webp(pixels, folder / f"img-{index}.webp")
        write_json(folder / "data.json", {
            "units": units, "grid": [height, width],
            "images": {str(i): {"name": ctx.dataset.records[i].name,
                                "label": ctx.dataset.records[i].label} for i in used},
        })
