"""Activation atlases (Carter et al., "Activation Atlas", Distill 2019): a map of what a
layer represents, made of the activations the dataset gives it.

For each swept layer:

1. **Sample.** Activation vectors (every channel) at ``atlas.points`` (image, position)
   pairs: images drawn from the dataset, a few random positions in each (seeded), each
   vector as the network reads it (``atlas.nn.response``). Zero vectors (a rectified layer
   silent there) are left out: they have no direction.
2. **Lay out.** Each vector scaled to unit length (the direction is what a cell's image
   shows), reduced to ``PCA`` principal components, and placed in 2-D by t-SNE
   (scikit-learn) or, with ``atlas.layout = "umap"``, by UMAP (umap-learn, when
   installed). t-SNE is the default: ``benchmarks/atlas_layout.py`` measured it as
   trustworthy as UMAP on a zoo layer and an EfficientNet-Lite0 layer, at a cost small
   beside the feature visualizations, with no extra dependency. The layout's
   trustworthiness (k = ``TRUST_K``) is stored with it.
3. **Grid.** The layout, scaled to the unit square, is cut into ``atlas.grid`` cells on a
   side; a cell with at least ``atlas.min_count`` vectors is drawn. Each gets its count,
   its vectors' dataset labels, the units that carry its mean most (the mean over its
   vectors less the mean over all, in units of each channel's spread), the images its
   vectors come from nearest its centre, and a feature visualization of its mean
   activation vector less the mean of all vectors (what sets the cell apart: every
   rectified vector shares the layer's mean, which random images match as well): the
   ``direction`` objective (``atlas.optvis.render.render_directions``) measured from that mean,
   all of a layer's cells in batches, checked against start and random images.

The featurevis settings (steps, size, parameterisation) are the unit images'.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from typing import Any, Sequence

import numpy as np
import torch

from atlas import optvis
from atlas.artifacts import ActivationAtlas, write
from atlas.images import save_webp
from atlas.models import LoadedModel
from atlas.nn.capture import capture
from atlas.nn.response import as_read, layer_response
from atlas.optvis.render import prepare, render_directions
from atlas.seeds import derive_seed
from atlas.stages import (Cost, LayerInfo, Measured, StageContext, artifact_key, chunks, examples, featurevis,
                          model_identity)

log = logging.getLogger(__name__)
STAGE = "atlas"
FORMAT = 3  # 2: a cell's direction is its mean less the layer's; 3: at every position
PCA = 50  # principal components the layout starts from
TRUST_K = 10  # neighbours of the trustworthiness score
TRUST_SAMPLE = 2000  # vectors the score is computed on (it is quadratic)
EXAMPLES, UNITS, LABELS = 4, 3, 3  # per cell: images shown, units named, labels listed


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> dict[str, list[str]]:
    if ctx.dataset is None:
        return {}
    cfg, fv = ctx.config.atlas, ctx.config.featurevis
    precision = featurevis.resolve_precision(fv.precision, ctx.device)
    keys = {layer.name: artifact_key(
        stage=STAGE, format=FORMAT, model=model_identity(model), layer=layer.name, data=ctx.dataset.digest(),
        points=cfg.points, grid=cfg.grid, min_count=cfg.min_count, layout=cfg.layout, seed=ctx.config.sweep.seed,
        steps=fv.steps, size=fv.size, lr=fv.lr, param=fv.param, redirect=fv.redirect, precision=precision,
    ) for layer in layers}
    todo = [layer for layer in layers if ctx.needs(STAGE, keys[layer.name])]
    if todo:
        started = time.perf_counter()
        samples = sample(ctx, model, todo)
        sampling = (time.perf_counter() - started) / len(todo)
        prepared = prepare(model, [layer.name for layer in todo], ctx.device)
        with ctx.progress(len(todo), f"{model.name}: activation atlas") as bar:
            for layer in todo:
                _compute(ctx, prepared, layer, keys[layer.name], *samples[layer.name], sampling, precision)
                bar.update(1)
    return ctx.recorded(STAGE, model.name, keys)


def sample(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]
           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: (vectors (N, channels) float32, the image of each (N,)), from one
    pass over the images drawn; a layer's positions are drawn per image, seeded."""
    points = ctx.config.atlas.points
    total = len(ctx.dataset.records)
    rng = np.random.default_rng(derive_seed(ctx.config.sweep.seed, "atlas", model.digest))
    chosen = np.sort(rng.choice(total, size=min(points, total), replace=False)).tolist()
    per_image = math.ceil(points / max(len(chosen), 1))
    responses = {layer.name: layer_response(model, layer.name, ctx.device) for layer in layers}
    channels = {layer.name: torch.arange(layer.channels, device=ctx.device) for layer in layers}
    found: dict[str, tuple[list, list]] = {layer.name: ([], []) for layer in layers}
    with torch.no_grad():
        for indices, pixels in ctx.dataset.batches(model.input_size, ctx.config.sweep.batch_size, chosen):
            x = torch.from_numpy(pixels).to(ctx.device).permute(0, 3, 1, 2).float() / 255
            acts = capture(model.module, model.normalize(x), list(found))
            for layer in layers:
                values = as_read(responses[layer.name], acts[layer.name], channels[layer.name]).float()
                if values.dim() == 4:
                    values, images = _at_random_places(values, indices, per_image, ctx.config.sweep.seed, layer.name)
                else:
                    images = np.asarray(indices)
                vectors, owners = found[layer.name]
                vectors.append(values.cpu().numpy())
                owners.append(images)
    out = {}
    for name, (vectors, owners) in found.items():
        v, o = np.concatenate(vectors), np.concatenate(owners)
        if len(v) > points:  # the last image's positions overshoot: a seeded subset
            keep = np.sort(rng.choice(len(v), size=points, replace=False))
            v, o = v[keep], o[keep]
        out[name] = (v.astype(np.float32), o.astype(np.int64))
    return out


def _at_random_places(values: torch.Tensor, indices: Sequence[int], per_image: int, seed: int, layer: str
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """A layer's maps (B, C, H, W) -> the vectors (B x k, C) at k distinct random places
    of each image (seeded by the image, never by its batch), and each one's image."""
    flat = values.flatten(2)
    take = min(per_image, flat.shape[2])
    where = torch.stack([torch.from_numpy(np.random.default_rng(derive_seed(seed, "atlas", layer, i)).choice(
        flat.shape[2], size=take, replace=False)) for i in indices]).to(values.device)
    picked = flat.gather(2, where[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)
    return picked.reshape(-1, flat.shape[1]), np.repeat(np.asarray(indices), take)


def layout(vectors: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, float]:
    """Vectors (N, C) -> their places (N, 2) in the unit square, and the layout's
    trustworthiness (k = ``TRUST_K``, on at most ``TRUST_SAMPLE`` of them)."""
    from sklearn.manifold import trustworthiness

    x = reduced(vectors)
    if method == "umap":
        try:
            import umap
        except ImportError as error:
            raise RuntimeError("atlas.layout = \"umap\" needs umap-learn: pip install umap-learn") from error
        places = umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform(x)
    else:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
        places = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    places = np.asarray(places, np.float64)
    low, high = places.min(0), places.max(0)
    square = (places - low) / np.where(high > low, high - low, 1.0)
    subset = np.random.default_rng(seed).choice(len(x), size=min(len(x), TRUST_SAMPLE), replace=False)
    k = min(TRUST_K, max(1, len(subset) // 2 - 1))
    trust = float(trustworthiness(x[subset], square[subset], n_neighbors=k)) if len(subset) > 3 else float("nan")
    return square.astype(np.float32), trust


def reduced(vectors: np.ndarray) -> np.ndarray:
    """Unit-length vectors, centred, on their first ``PCA`` principal components."""
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    x = x - x.mean(0)
    dims = min(PCA, x.shape[1], max(len(x) - 1, 1))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return (x @ vt[:dims].T).astype(np.float32)


def cells(places: np.ndarray, vectors: np.ndarray, owners: np.ndarray, labels: Sequence[str], grid: int,
          min_count: int, units: Sequence[int]) -> list[dict[str, Any]]:
    """The grid's drawn cells, row by row: each {row, column, count, labels, units,
    examples, direction} (direction: the mean of its vectors, (C,))."""
    rows = np.minimum((places[:, 1] * grid).astype(int), grid - 1)
    columns = np.minimum((places[:, 0] * grid).astype(int), grid - 1)
    mean, spread = vectors.mean(0), vectors.std(0) + 1e-8
    swept = set(units)
    found = []
    for r in range(grid):
        for c in range(grid):
            members = np.flatnonzero((rows == r) & (columns == c))
            if len(members) < min_count:
                continue
            direction = vectors[members].mean(0)
            strength = (direction - mean) / spread
            top = [int(u) for u in np.argsort(-strength) if int(u) in swept and strength[u] > 0][:UNITS]
            counted = collections.Counter(labels[int(owners[m])] for m in members)
            centre = np.array([(c + 0.5) / grid, (r + 0.5) / grid])
            nearest = members[np.argsort(np.linalg.norm(places[members] - centre, axis=1))]
            examples = list(dict.fromkeys(int(owners[m]) for m in nearest))[:EXAMPLES]
            found.append({"row": r, "column": c, "count": int(len(members)),
                          "labels": [[label, round(n / len(members), 3)] for label, n in counted.most_common(LABELS)
                                     if label],
                          "units": [[u, round(float(strength[u]), 3)] for u in top],
                          "examples": examples, "direction": direction})
    return found


def _compute(ctx: StageContext, model: LoadedModel, layer: LayerInfo, key: str, vectors: np.ndarray,
             owners: np.ndarray, sampling: float, precision: str) -> None:
    cfg, fv = ctx.config.atlas, ctx.config.featurevis
    seed = derive_seed(ctx.config.sweep.seed, model.digest, layer.name, STAGE)
    alive = np.linalg.norm(vectors, axis=1) > 1e-6
    kept, kept_owners = vectors[alive], owners[alive]
    started = time.perf_counter()
    places, trust = layout(kept, cfg.layout, seed) if len(kept) > 3 else (np.zeros((0, 2), np.float32), None)
    laid_out = time.perf_counter() - started
    labels = [record.label for record in ctx.dataset.records]
    drawn = cells(places, kept, kept_owners, labels, cfg.grid, cfg.min_count, layer.units) if len(places) else []
    started = time.perf_counter()
    side = fv.size + 2 * optvis.Robustness.pad
    batch = fv.batch or featurevis.auto_batch(ctx.device, 1, side)
    origin = kept.mean(0) if len(kept) else None  # a cell's image shows what sets it apart from the layer's mean
    rendered = [render_directions(
        model, layer.name, np.stack([drawn[i]["direction"] - origin for i in part]), steps=fv.steps, size=fv.size,
        lr=fv.lr, seed=derive_seed(seed, part[0]), device=ctx.device, param=fv.param, redirect=fv.redirect,
        precision=precision, origin=origin) for part in chunks(range(len(drawn)), batch)]
    painted = time.perf_counter() - started
    response = rendered[0].response if rendered else ""
    with ctx.store.writing(STAGE, key) as folder:
        np.save(folder / ActivationAtlas.POINTS, places.astype(np.float16))
        for cell, (part, j) in zip(drawn, [(part, j) for part in rendered for j in range(len(part.units))]):
            del cell["direction"]
            cell.update(activation=round(float(part.activations[j]), 5), start=round(float(part.start[j]), 5),
                        random=round(float(part.random[j]), 5), failed=bool(part.failed[j]))
            save_webp(part.images[j], folder / ActivationAtlas.image(cell["row"], cell["column"]))
        records = ctx.dataset.records
        used = sorted({image for cell in drawn for image in cell["examples"]})
        write(folder, ActivationAtlas(
            layer=layer.name, method=cfg.layout, grid=cfg.grid, points=int(len(kept)), sampled=int(len(vectors)),
            images={str(i): {"name": records[i].name, "label": records[i].label} for i in used},
            cells=drawn, seconds={"sample": round(sampling, 2), "layout": round(laid_out, 2),
                                  "featurevis": round(painted, 2)},
            trustworthiness=None if trust is None or math.isnan(trust) else round(trust, 4), response=response))
    failed = sum(cell["failed"] for cell in drawn)
    log.info("%s %s: activation atlas of %d vectors, %d cells (%d images failed); layout %.1fs, images %.1fs",
             model.name, layer.name, len(kept), len(drawn), failed, laid_out, painted)


COST_PER_POINT = 0.007  # seconds per vector laid out: t-SNE of 4,000 took 24-32 s here (README, "Activation atlases")
FILLED = 0.75  # share of the grid's cells drawn (114 and 95 of 144 on the two layers measured)


def cost(m: Measured) -> Cost | None:
    """A dataset pass for every layer's vectors, the layout, and one image per cell
    (each costs what one objective of a unit of the layer does)."""
    if not m.images:
        return None
    cfg, fv = m.config.atlas, m.config.featurevis
    per_image = {name: seconds / featurevis.elements_per_unit(fv.objectives, fv.diversity)
                 for name, seconds in featurevis.unit_seconds(m).items()}
    share = m.images * m.forward * examples.PASSES / len(m.layers)
    cells = FILLED * cfg.grid ** 2
    return Cost([share + COST_PER_POINT * cfg.points + cells * per_image[layer.name] for layer in m.layers],
                f"{cfg.points} vectors laid out and about {cells:.0f} cells' images per layer")
