"""Dictionary learning: a sparse autoencoder takes a layer apart into cleaner features.

As in "Towards Monosemanticity" (Bricken et al. 2023): the layer's activation
vectors x (every position of every image, sampled) are encoded as
``f = ReLU(W_e (x - b_d) + b_e)`` with more features than the layer has units,
decoded as ``x' = W_d f + b_d`` with unit-norm decoder columns, and trained on
``|x - x'|^2 / C + l1 * sum(f)`` (inputs scaled so that their mean squared norm is
C, so ``l1`` means the same on every layer).

Each feature then gets what a unit gets: the model with the encoder appended to the
layer (``DictionaryModel``, a 1x1 convolution of the pre-activations) is swept by the
feature visualization and dataset examples stages as if its features were the
layer's channels, and the polysemanticity measure scores features and units the
same way: the layer's vectors at their strongest examples, each feature's decoder
direction taken out.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from atlas.artifacts import Dictionary, write
from atlas.config import DictionaryConfig
from atlas.models import LoadedModel
from atlas.nn.capture import capture, find_modules
from atlas.seeds import derive_seed
from atlas.stages import (Cost, Derived, LayerInfo, Made, Measured, StageContext, artifact_key, model_identity,
                          polysemantic)

log = logging.getLogger(__name__)
STAGE = "dictionary"
FORMAT = 1


class SparseAutoencoder(nn.Module):
    def __init__(self, inputs: int, features: int, generator: torch.Generator | None = None):
        super().__init__()
        decoder = torch.randn(inputs, features, generator=generator)
        self.decoder = nn.Parameter(decoder / decoder.norm(dim=0, keepdim=True))  # (C, F), unit columns
        self.encoder = nn.Parameter(self.decoder.detach().T.clone())  # (F, C)
        self.encoder_bias = nn.Parameter(torch.zeros(features))
        self.decoder_bias = nn.Parameter(torch.zeros(inputs))

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.decoder_bias) @ self.encoder.T + self.encoder_bias

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.relu(self.pre(x))
        return f @ self.decoder.T + self.decoder_bias, f


@dataclass
class Trained:
    sae: SparseAutoencoder
    scale: float  # inputs were multiplied by this before training
    stats: dict[str, Any]


def train(samples: torch.Tensor, features: int, *, l1: float, steps: int, batch: int, lr: float,
          seed: int) -> Trained:
    """A sparse autoencoder with ``features`` features over ``samples`` (N, C)."""
    generator = torch.Generator().manual_seed(seed)
    x = samples.float()
    channels = x.shape[1]
    scale = float(np.sqrt(channels / max(float((x ** 2).sum(1).mean()), 1e-12)))
    x = x * scale
    sae = SparseAutoencoder(channels, features, generator)
    with torch.no_grad():
        sae.decoder_bias.copy_(x.mean(0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr)
    for step in range(steps):
        rows = torch.randint(len(x), (batch,), generator=generator)
        reconstruction, f = sae(x[rows])
        loss = ((reconstruction - x[rows]) ** 2).sum(1).mean() / channels + l1 * f.sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            sae.decoder.div_(sae.decoder.norm(dim=0, keepdim=True).clamp(min=1e-8))
    with torch.no_grad():
        reconstruction, f = sae(x)
        residual = ((x - reconstruction) ** 2).sum(1).mean()
        variance = ((x - x.mean(0)) ** 2).sum(1).mean()
        firing = (f > 0).float().mean(0)
    stats = {"features": features, "inputs": channels, "samples": len(x), "l1": l1, "steps": steps,
             "explained_variance": round(float(1 - residual / variance), 4),
             "l0": round(float((f > 0).float().sum(1).mean()), 2),
             "dead": int((firing == 0).sum()), "firing": firing.numpy().round(5).tolist()}
    return Trained(sae, scale, stats)


def encoder_affine(trained: Trained) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's pre-activations as one affine map of the layer's raw activations:
    ``W_e (s x - b_d) + b_e = (s W_e) x + (b_e - W_e b_d)``."""
    sae = trained.sae
    weight = (sae.encoder.detach() * trained.scale).clone()
    return weight, (sae.encoder_bias - sae.encoder @ sae.decoder_bias).detach().clone()


def pre_activations(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Activations -> feature pre-activations, in the layer's own layout: (B, C, H, W) ->
    (B, F, H, W); features last, (B, C), a transformer's tokens (B, T, C) or Swin's
    channels-last (B, H, W, C) -> (B, ..., F)."""
    if x.dim() == 4 and x.shape[1] == weight.shape[1]:
        return torch.einsum("fc,bchw->bfhw", weight, x) + bias[None, :, None, None]
    return x @ weight.T + bias


class DictionaryReadout(nn.Module):
    """Appended to a layer: its output becomes the dictionary's feature pre-activations
    (``f = ReLU`` of them), one channel per feature."""

    def __init__(self, layer: nn.Module, trained: Trained):
        super().__init__()
        self.layer = layer
        weight, bias = encoder_affine(trained)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return pre_activations(self.layer(*args, **kwargs), self.weight, self.bias)


def dictionary_model(model: LoadedModel, layer: str, trained: Trained, key: str) -> LoadedModel:
    """A copy of the model whose ``layer`` outputs the dictionary's features: stages
    see them as that layer's channels. Its digest names the dictionary, so its
    artifacts never mix with the layer's own."""
    module = copy.deepcopy(model.module)
    parent_name, _, child = layer.rpartition(".")
    parent = find_modules(module, [parent_name])[parent_name] if parent_name else module
    setattr(parent, child, DictionaryReadout(getattr(parent, child), trained))
    digest = hashlib.sha256(f"{model.digest}/{key}".encode()).hexdigest()[:16]
    return model.with_module(module, known_digest=digest, name=f"{model.name} {layer} dictionary")


def sample_activations(model: LoadedModel, layer: LayerInfo, dataset, count: int, *, batch_size: int,
                       device: torch.device, seed: int) -> torch.Tensor:
    """About ``count`` activation vectors of ``layer``: every position of every image,
    each kept with the same probability (seeded), at most ``count``."""
    positions = int(np.prod(layer.shape[1:])) if layer.spatial else 1
    keep = min(1.0, count / max(1, positions * len(dataset.records)))
    generator = torch.Generator().manual_seed(seed)
    kept = []
    with torch.no_grad():
        for _, pixels in dataset.batches(model.input_size, batch_size):
            x = torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float() / 255
            acts = capture(model.module, model.normalize(x), [layer.name])[layer.name].float().cpu()
            vectors = acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1]) if acts.dim() == 4 else acts
            kept.append(vectors[torch.rand(len(vectors), generator=generator) < keep])
    return torch.cat(kept)[:count]


def run(ctx: StageContext, model: LoadedModel, layers: Sequence[LayerInfo]) -> Made:
    """A dictionary per listed layer, and its features as a derived layer (which the
    pipeline sweeps with feature visualization and examples, as a layer's units)."""
    wanted = next((m.dictionary for m in ctx.config.models if m.name == model.name), ())
    if ctx.dataset is None or not wanted:
        return Made({})
    cfg: DictionaryConfig = ctx.config.dictionary
    made = Made({})
    for layer in layers:
        if layer.name not in wanted:
            continue
        key = artifact_key(stage=STAGE, format=FORMAT, model=model_identity(model), input_size=model.input_size,
                           layer=layer.name, data=ctx.dataset.digest(), **dataclasses.asdict(cfg),
                           seed=ctx.config.sweep.seed)
        with ctx.artifact(STAGE, key, model=model.name, layer=layer.name) as folder:
            if folder is not None:
                seed = derive_seed(ctx.config.sweep.seed, model.digest, layer.name, STAGE)
                samples = sample_activations(model, layer, ctx.dataset, cfg.samples,
                                             batch_size=ctx.config.sweep.batch_size, device=ctx.device, seed=seed)
                log.info("%s %s: training a dictionary of %d features on %d vectors", model.name, layer.name,
                         cfg.expansion * layer.channels, len(samples))
                trained = train(samples, cfg.expansion * layer.channels, l1=cfg.l1, steps=cfg.steps,
                                batch=cfg.batch, lr=cfg.lr, seed=seed)
                torch.save({"state": trained.sae.state_dict(), "scale": trained.scale}, folder / Dictionary.MODEL)
                write(folder, Dictionary(layer=layer.name, **trained.stats))
        made.keys[layer.name] = [key]
        ctx.sync()  # its features are swept by every rank, from the dictionary one rank trained
        made.derived.append(_features(ctx, model, layer, key))
    return made


def load(ctx: StageContext, key: str) -> Trained:
    folder = ctx.store.path(STAGE, key)
    saved = torch.load(folder / Dictionary.MODEL, map_location="cpu", weights_only=True)
    decoder = saved["state"]["decoder"]
    sae = SparseAutoencoder(*decoder.shape)
    sae.load_state_dict(saved["state"])
    return Trained(sae.requires_grad_(False), saved["scale"], Dictionary.read(folder).json())


def _features(ctx: StageContext, model: LoadedModel, layer: LayerInfo, key: str) -> Derived:
    """The dictionary's features as a layer whose units they are, scored for
    polysemanticity here (with each feature's decoder direction)."""
    trained = load(ctx, key)
    features = trained.stats["features"]
    wrapped = dictionary_model(model, layer.name, trained, key)
    info = LayerInfo(layer.name, (features, *layer.shape[1:]), tuple(range(features)))
    poly = artifact_key(stage=polysemantic.STAGE, format=polysemantic.FORMAT, model=model_identity(model),
                        input_size=model.input_size, layer=layer.name, dictionary=key, data=ctx.dataset.digest(),
                        top=polysemantic.TOP)
    if ctx.needs(polysemantic.STAGE, poly):
        weight, bias = (t.to(ctx.device) for t in encoder_affine(trained))
        with ctx.progress(len(ctx.dataset.records), f"{model.name}: polysemanticity {layer.name} dictionary") as bar:
            probe = polysemantic.Probe(layer, lambda acts: torch.relu(pre_activations(acts, weight, bias)), features)
            (found,) = polysemantic.strongest(model, [probe], ctx.dataset, top=polysemantic.TOP,
                                              batch_size=ctx.config.sweep.batch_size, device=ctx.device, progress=bar)
        directions = trained.sae.decoder.detach().T.numpy()
        polysemantic.write(ctx, wrapped, polysemantic.STAGE, poly, info, found, directions,
                           names=list(range(features)))
    ctx.store.record(polysemantic.STAGE, poly, {"model": model.name, "layer": layer.name, "dictionary": key})
    return Derived(wrapped, info, of=layer.name, name=f"{layer.name} dictionary",
                   artifacts={"dictionary": [key], "polysemanticity": [poly]})


PASSES = 1.0  # forward passes' worth of work per image to sample the vectors
COST_PER_STEP = 0.016  # one Adam step of a dictionary of 576 features, per 1,000 vectors


def cost(m: Measured) -> Cost | None:
    """Sampling, training, and the features swept as units are (feature visualization,
    examples, polysemanticity)."""
    from atlas.stages import examples, featurevis

    wanted = [layer for layer in m.layers if m.spec and layer.name in m.spec.dictionary]
    if not (m.images and wanted):
        return None
    cfg = m.config.dictionary
    per_unit = featurevis.unit_seconds(m) if "featurevis" in m.config.sweep.stages else {}
    passes = PASSES + examples.PASSES + polysemantic.PASSES
    return Cost([m.images * m.forward * passes + cfg.steps * COST_PER_STEP * cfg.batch / 1000
                 + cfg.expansion * layer.channels * per_unit.get(layer.name, 0.0) for layer in wanted],
                f"{len(wanted)} dictionaries")
