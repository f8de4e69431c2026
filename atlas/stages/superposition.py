"""Toy models of superposition (Elhage et al. 2022), trained during the build.

A toy model stores ``n`` features in ``m < n`` dimensions and reads them back:
``x' = ReLU(W^T W x + b)``, trained to minimise ``sum_i I_i (x_i - x'_i)^2`` where
feature i is 0 with probability S (the sparsity) and uniform in [0, 1] otherwise,
and I_i = DECAY^i is its importance. Dense features are stored one per dimension,
the ``m`` most important ones, and the rest dropped; as features grow sparse the
model starts storing more features than it has dimensions, in superposition
(nearly orthogonal, interfering rarely), and in two dimensions their directions
arrange into regular polygons. Every model for every sparsity is trained at once,
batched in one tensor (a few seconds on a CPU).

Two experiments: ``n=5, m=2`` (the geometry, plotted as the columns of W) and
``n=20, m=5`` (how many features are stored, with how much interference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from atlas.artifacts import Plan, Superposition, write
from atlas.seeds import derive_seed
from atlas.stages import Cost, Measured, StageContext, artifact_key

STAGE = "superposition"
FORMAT = 2  # 2: the geometry experiment's importances decay (0.9 ** i)
SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999)
DECAY = 0.85  # importance of feature i: DECAY ** i, for n = 20 (0.9 ** i for n = 5)
EXPERIMENTS = ({"name": "geometry", "features": 5, "dims": 2, "decay": 0.9},
               {"name": "capacity", "features": 20, "dims": 5, "decay": DECAY})
STORED = 0.5  # a feature counts as stored when its column's norm is at least this
BATCH, LR = 512, 0.01


@dataclass
class ToyModels:
    weights: np.ndarray  # (sparsities, dims, features)
    biases: np.ndarray  # (sparsities, features)
    sparsities: tuple[float, ...]
    importance: np.ndarray  # (features,)
    losses: np.ndarray  # (sparsities,) final loss of each


def train(features: int, dims: int, sparsities: Sequence[float], *, decay: float, steps: int = 1500,
          batch: int = BATCH, lr: float = LR, seed: int = 0) -> ToyModels:
    """One toy model per sparsity, all trained together."""
    generator = torch.Generator().manual_seed(seed)
    k = len(sparsities)
    weights = torch.empty(k, dims, features).uniform_(-1, 1, generator=generator) * (1 / dims ** 0.5)
    weights = torch.nn.Parameter(weights)
    biases = torch.nn.Parameter(torch.zeros(k, features))
    importance = decay ** torch.arange(features, dtype=torch.float32)
    keep = 1 - torch.tensor(sparsities, dtype=torch.float32)[:, None, None]  # (k, 1, 1) chance a feature is on
    optimizer = torch.optim.Adam([weights, biases], lr=lr)
    for _ in range(steps):
        x = torch.rand(k, batch, features, generator=generator)
        x = x * (torch.rand(k, batch, features, generator=generator) < keep)
        loss = _loss(weights, biases, x, importance)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        optimizer.step()
    with torch.no_grad():
        x = torch.rand(k, 8 * batch, features, generator=generator)
        x = x * (torch.rand(k, 8 * batch, features, generator=generator) < keep)
        losses = _loss(weights, biases, x, importance)
    return ToyModels(weights.detach().numpy(), biases.detach().numpy(), tuple(sparsities), importance.numpy(),
                     losses.numpy())


def _loss(weights: torch.Tensor, biases: torch.Tensor, x: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
    hidden = torch.einsum("kmn,kbn->kbm", weights, x)
    out = torch.relu(torch.einsum("kmn,kbm->kbn", weights, hidden) + biases[:, None, :])
    return (importance * (x - out) ** 2).sum(-1).mean(-1)


def norms(models: ToyModels) -> np.ndarray:
    """(sparsities, features): how strongly each feature is stored."""
    return np.linalg.norm(models.weights, axis=1)


def interference(models: ToyModels) -> np.ndarray:
    """(sparsities, features): sum over the other features j of (W_i/|W_i| . W_j)^2,
    0 for a feature with a dimension to itself."""
    w = models.weights
    unit = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-9)
    overlap = np.einsum("kmi,kmj->kij", unit, w) ** 2
    for k in range(len(w)):
        np.fill_diagonal(overlap[k], 0)
    return overlap.sum(-1)


def stored(models: ToyModels, threshold: float = STORED) -> np.ndarray:
    """(sparsities,) how many features each model stores."""
    return (norms(models) >= threshold).sum(1)


def summary(models: ToyModels) -> dict[str, Any]:
    n, i = norms(models), interference(models)
    dims = models.weights.shape[1]
    return {
        "features": models.weights.shape[2], "dims": dims, "sparsities": list(models.sparsities),
        "importance": models.importance.round(4).tolist(),
        "models": [{
            "sparsity": s, "loss": round(float(models.losses[k]), 6), "stored": int((n[k] >= STORED).sum()),
            # Dimensions per feature (the paper's D*): m / |W|_F^2.
            "dims_per_feature": round(float(dims / max((models.weights[k] ** 2).sum(), 1e-9)), 4),
            "columns": models.weights[k].T.round(4).tolist(), "norms": n[k].round(4).tolist(),
            "interference": i[k].round(4).tolist(), "bias": models.biases[k].round(4).tolist(),
        } for k, s in enumerate(models.sparsities)],
    }


def run(ctx: StageContext, plan: Plan) -> str:
    """Train both experiments once per build (cached like every artifact); the key."""
    seed = derive_seed(ctx.config.sweep.seed, STAGE)
    steps = ctx.config.superposition.steps
    key = artifact_key(stage=STAGE, format=FORMAT, sparsities=SPARSITIES, experiments=EXPERIMENTS, steps=steps,
                       batch=BATCH, lr=LR, seed=seed)
    with ctx.artifact(STAGE, key) as folder:
        if folder is not None:
            with ctx.progress(len(EXPERIMENTS), "toy models of superposition") as bar:
                results = {}
                for experiment in EXPERIMENTS:
                    models = train(experiment["features"], experiment["dims"], SPARSITIES,
                                   decay=experiment["decay"], steps=steps, seed=seed)
                    results[experiment["name"]] = summary(models)
                    bar.update(1)
            write(folder, Superposition(stored_threshold=STORED, **results))
    return key


COST_PER_STEP = 0.0024  # seconds per step: both toy experiments, all sparsities


def cost(m: Measured) -> Cost:
    return Cost([m.config.superposition.steps * COST_PER_STEP], f"{m.config.superposition.steps} steps")
