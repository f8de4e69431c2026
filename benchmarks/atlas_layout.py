"""Activation atlas layouts: t-SNE (scikit-learn) against UMAP (umap-learn), side by side.

For one zoo layer (zoo:inception mixed3b over the embedded world) and one real
ImageNet layer (EfficientNet-Lite0 _blocks.5 over the photograph crops of
``atlas data samples data/photos``), the activation atlas stage's own sample of
activation vectors is laid out by each method, and for each it prints:

- seconds: the layout and its trustworthiness score, as the stage computes them
  (the vectors are sampled once);
- trustworthiness (k = 10; sklearn.manifold.trustworthiness): how far a point's
  nearest neighbours on the map are its nearest in the layer (1: all are);
- label agreement: the share of each point's 10 nearest neighbours on the map whose
  image has its label, beside the same in the layer itself (the ceiling);
- filled: the share of the atlas grid's cells with enough vectors to be drawn.

UMAP runs only where umap-learn is installed (``pip install umap-learn``).

Run:  python benchmarks/atlas_layout.py [--points 4000] [--grid 12] [--stage] [--methods tsne umap]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (config, model name, layer): the layer's model, dataset and feature vis settings come from the config.
LAYERS = {"zoo:inception mixed3b (world)": ("atlas.toml", "inception", "mixed3b"),
          "EfficientNet-Lite0 _blocks.5 (photos)": ("configs/efficientnet-lite0.toml", "efficientnet-lite0",
                                                    "_blocks.5")}


def setup(config_path: str, name: str, layer: str, points: int):
    """(context, model, the layer's info) as a sweep of the config would have them, on a scratch store."""
    import dataclasses
    import tempfile

    from atlas.config import load_config
    from atlas.data import open_dataset
    from atlas.models import load_model
    from atlas.pipeline import inspect_layers, no_progress
    from atlas.stages import StageContext
    from atlas.store import Store

    config = load_config(ROOT / config_path)
    config = dataclasses.replace(config, atlas=dataclasses.replace(config.atlas, points=points))
    spec = next(m for m in config.models if m.name == name)
    model = load_model(spec, root=config.root)
    dataset = open_dataset(config.data.images, config.data.limit, config.root)
    info = inspect_layers(model, (layer,), spec.units, torch.device("cpu"), "models[0]")
    ctx = StageContext(config=config, store=Store(Path(tempfile.mkdtemp(prefix="atlas-bench-"))),
                       device=torch.device("cpu"), progress=no_progress, dataset=dataset)
    return ctx, model, info


def agreement(x: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Share of each point's k nearest neighbours (in x) with its label."""
    from sklearn.neighbors import NearestNeighbors

    _, near = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return float((labels[near[:, 1:]] == labels[:, None]).mean())


def filled(places: np.ndarray, grid: int, min_count: int = 3) -> float:
    rows = np.minimum((places[:, 1] * grid).astype(int), grid - 1)
    columns = np.minimum((places[:, 0] * grid).astype(int), grid - 1)
    counts = np.bincount(rows * grid + columns, minlength=grid * grid)
    return float((counts >= min_count).mean())


def main() -> None:
    from atlas.artifacts import ActivationAtlas
    from atlas.stages import activation_atlas
    from atlas.stages.activation_atlas import layout, reduced, sample

    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--grid", type=int, default=12)
    parser.add_argument("--stage", action="store_true", help="also run the whole stage: sample, layout, images")
    parser.add_argument("--methods", nargs="+", default=["tsne", "umap"], choices=["tsne", "umap"])
    args = parser.parse_args()
    methods = [m for m in args.methods if m != "umap" or importlib.util.find_spec("umap")]
    if "umap" in args.methods and "umap" not in methods:
        print("umap-learn is not installed: t-SNE only")
    print(f"{'layer':38} {'method':6} {'vectors':>7} {'seconds':>8} {'trust':>6} {'labels':>7} {'(layer)':>8} "
          f"{'filled':>7}")
    for title, (config_path, name, layer) in LAYERS.items():
        try:
            ctx, model, info = setup(config_path, name, layer, args.points)
        except Exception as error:  # noqa: BLE001 - a missing dataset or wheel: say so, go on
            print(f"{title}: skipped ({error})")
            continue
        vectors, owners = sample(ctx, model, info)[layer]
        alive = np.linalg.norm(vectors, axis=1) > 1e-6
        vectors, owners = vectors[alive], owners[alive]
        labels = np.asarray([ctx.dataset.records[i].label for i in owners])
        ceiling = agreement(reduced(vectors), labels)
        for method in methods:
            start = time.perf_counter()
            places, trust = layout(vectors, method, 0)
            seconds = time.perf_counter() - start
            print(f"{title:38} {method:6} {len(vectors):7d} {seconds:8.1f} {trust:6.3f} "
                  f"{agreement(places, labels):7.3f} {ceiling:8.3f} {filled(places, args.grid):7.2f}")
        if args.stage:
            start = time.perf_counter()
            (key,) = activation_atlas.run(ctx, model, info)[layer]
            found = ctx.store.read(ActivationAtlas, key)
            fv = ctx.config.featurevis
            print(f"{title:38} stage: {time.perf_counter() - start:.0f} s in all; {found.seconds} s by phase; "
                  f"{len(found.cells)} cells, {sum(c['failed'] for c in found.cells)} failed "
                  f"(feature vis {fv.steps} steps at {fv.size} px)")


if __name__ == "__main__":
    main()
