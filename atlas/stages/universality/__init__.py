"""Universality: the same features in different models, matched unit by unit.

Claim 3 of "Zoom In": analogous features form across models. For every pair of
models of the atlas, both see the same images (the dataset, then the stimulus bank
drawn over the whole image), each at its own input size, and every unit of one is
correlated with every unit of the other, layer by layer:

- **spatially aligned**: both layers' maps are averaged down to a common grid (the
  smaller of the two) and each (image, position) is an observation, so two units
  match only if they fire on the same things in the same places;
- **spatially pooled**: each image is an observation of the units' mean activation.

A unit's score against another model is its best aligned correlation over that
model's layers (pooled where a layer has no space). Everything is accumulated as
streaming sums (``PairMoments``), so memory does not grow with the number of images.

**Chance.** The other model's architecture with random weights sees the same images:
a unit's chance level against a model is its best correlation with any unit of the
random network. A match counts only when it beats chance by ``MARGIN``. (A random
network's units are filters too: first-layer units that follow luminance or color
find close matches in it, and so do not count as evidence of universality.)

**Best buddies.** Two units are best buddies when each is the other's best match
(Rosetta Neurons, Dravid et al. 2023). Connected sets of buddies with at most one
unit per model are the atlas's matched sets.

**Layer similarity.** Linear CKA (Kornblith et al. 2019) between every layer of one
model and every layer of the other, on the pooled activations, with the random
network's CKA beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from atlas.artifacts import OTHER, Families, Plan, UniversalityPair, UniversalitySummary, write
from atlas.config import ModelConfig
from atlas.data.bank import stimulus_bank
from atlas.models import LoadedModel, load_model
from atlas.models.fold import fold_batchnorms
from atlas.models.twin import reset
from atlas.nn.capture import capture
from atlas.seeds import derive_seed
from atlas.stages import Cost, LayerInfo, Measured, StageContext, artifact_key
from atlas.stages.polysemantic.mixing import family_agreement
from atlas.stages.universality.matching import MARGIN, summarize

STAGE = "universality"
FORMAT = 1
SUMMARY_FORMAT = 3  # of the summary artifact, computed from the pairs' artifacts (3: families agreement)


class Moments:
    """Streaming sums of one set of variables: their sum and second moments (all
    products with ``full``, squares only without), in float64 around a shift (the first
    batch's means), so that large means do not cancel the variances away."""

    def __init__(self, full: bool = False):
        self.full = full
        self.n = 0

    def add(self, x: torch.Tensor) -> torch.Tensor:
        """Add observations ``x`` (n, a); return them shifted, for cross products."""
        x = x.float()
        if self.n == 0:
            self.shift = x.mean(0)
            self.sum = torch.zeros(x.shape[1], dtype=torch.float64)
            self.squares = torch.zeros((x.shape[1],) * (2 if self.full else 1), dtype=torch.float64)
        x = x - self.shift
        self.n += len(x)
        self.sum += x.sum(0).double().cpu()
        self.squares += (x.T @ x if self.full else x.square().sum(0)).double().cpu()
        return x

    @property
    def mean(self) -> torch.Tensor:
        """The mean of the shifted variables."""
        return self.sum / self.n

    def centred(self) -> torch.Tensor:
        """Centred second moments (sums, not means): (a, a) with ``full``, else (a,)."""
        m = self.mean
        return self.squares - self.n * (torch.outer(m, m) if self.full else m.square())

    def variances(self) -> torch.Tensor:
        centred = self.centred()
        return (centred.diagonal() if self.full else centred).clamp(min=0)


class PairMoments:
    """Streaming sums over observations of two sets of variables seen together: enough
    for every correlation between them and, with full moments, their linear CKA, in
    memory that does not depend on the number of observations. ``x`` and ``y`` may be
    shared with other pairs (``compare`` adds each layer's observations once per batch
    and only the cross products per pair)."""

    def __init__(self, x: Moments | None = None, y: Moments | None = None, full: bool = False):
        self.x, self.y = x or Moments(full), y or Moments(full)
        self.cross: torch.Tensor | None = None

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add observations: ``x`` (n, a) and ``y`` (n, b), row i of each seen together."""
        self.add_cross(self.x.add(x), self.y.add(y))

    def add_cross(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the cross products of observations already shifted by ``x`` and ``y``'s ``add``."""
        product = (x.T @ y).double().cpu()
        self.cross = product if self.cross is None else self.cross + product

    def _centred_cross(self) -> torch.Tensor:
        return self.cross - self.x.n * torch.outer(self.x.mean, self.y.mean)

    def correlation(self) -> np.ndarray:
        """Pearson correlation of every x with every y: (a, b); 0 where a variable is constant."""
        scale = torch.outer(self.x.variances().sqrt(), self.y.variances().sqrt())
        tiny = 1e-9 * max(float(scale.max()), 1e-30)
        cxy = self._centred_cross()
        return torch.where(scale > tiny, cxy / scale.clamp(min=1e-30), torch.zeros_like(cxy)).numpy()

    def cka(self) -> float:
        """Linear CKA: ||X'Y||² / (||X'X|| ||Y'Y||) on centred X and Y (Kornblith et al. 2019)."""
        if not (self.x.full and self.y.full):
            raise ValueError("CKA needs the full second moments: PairMoments(full=True)")
        denominator = float(torch.linalg.matrix_norm(self.x.centred()) * torch.linalg.matrix_norm(self.y.centred()))
        return float(self._centred_cross().square().sum()) / denominator if denominator > 0 else 0.0


def pooled(acts: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) or (B, C) -> (B, C): each image one observation of the mean activation."""
    return acts.flatten(2).mean(2) if acts.dim() == 4 else acts


def aligned(acts: torch.Tensor, grid: int) -> torch.Tensor:
    """(B, C, H, W) -> (B * grid², C): the maps averaged down to grid x grid, each position an observation."""
    if acts.shape[-1] != grid or acts.shape[-2] != grid:
        acts = F.adaptive_avg_pool2d(acts, grid)
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])


# -- comparing two models -----------------------------------------------------------

@dataclasses.dataclass
class Side:
    """One model of a pair: trained, its architecture with random weights, its layers."""

    model: LoadedModel
    random: LoadedModel
    layers: Sequence[LayerInfo]


def _features(model: LoadedModel, layers: Sequence[LayerInfo], x: torch.Tensor) -> dict[str, torch.Tensor]:
    names = [layer.name for layer in layers]
    with torch.no_grad():
        acts = capture(model.module, model.normalize(x), names)
    return {layer.name: acts[layer.name] if len(layer.units) == layer.channels
            else acts[layer.name].index_select(1, torch.tensor(layer.units, device=x.device)) for layer in layers}


def for_inference(model: LoadedModel, layers: Sequence[LayerInfo]) -> LoadedModel:
    """The model with its batch norms folded into the convolutions before them, channels-last
    (the same function, computed faster)."""
    module, _ = fold_batchnorms(model.module, keep=[layer.name for layer in layers])
    return dataclasses.replace(model, module=module.to(memory_format=torch.channels_last))


def compare(a: Side, b: Side, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
    """Stream image batches (the same images at each model's input size, in [0, 1])
    through both models and their random twins; return per layer pair the aligned and
    pooled correlations, each side's best correlations with the other's random twin,
    and the layer-by-layer CKA matrices."""
    pairs = [(la, lb) for la in a.layers for lb in b.layers]
    # Which networks each comparison reads: a vs b, a vs random b, random a vs b.
    kinds = {"trained": ("a", "b"), "random_b": ("a", "random b"), "random_a": ("random a", "b")}
    moments: dict[tuple[str, str, int | None], Moments] = {}  # (network, layer, grid or None = pooled)
    grids = {(la.name, lb.name): min(la.shape[-1], lb.shape[-1]) if la.spatial and lb.spatial else None
             for la, lb in pairs}

    def shared(network: str, layer: str, grid: int | None) -> Moments:
        return moments.setdefault((network, layer, grid), Moments(full=grid is None))

    unit, layer = {}, {}
    for kind, (left, right) in kinds.items():
        for la, lb in pairs:
            grid = grids[la.name, lb.name]
            unit[kind, la.name, lb.name] = PairMoments(shared(left, la.name, grid), shared(right, lb.name, grid))
            # Without a common grid the units' observations are the pooled ones: one object for both.
            layer[kind, la.name, lb.name] = (unit[kind, la.name, lb.name] if grid is None else
                                             PairMoments(shared(left, la.name, None), shared(right, lb.name, None)))
    for xa, xb in batches:
        acts = {"a": _features(a.model, a.layers, xa), "random a": _features(a.random, a.layers, xa),
                "b": _features(b.model, b.layers, xb), "random b": _features(b.random, b.layers, xb)}
        # Each network's observations, shifted, once per batch: pairs add only their cross products.
        rows = {(network, name, grid): m.add(pooled(acts[network][name]) if grid is None
                                             else aligned(acts[network][name], grid))
                for (network, name, grid), m in moments.items()}
        for (kind, la, lb), pair in unit.items():
            left, right = kinds[kind]
            grid = grids[la, lb]
            pair.add_cross(rows[left, la, grid], rows[right, lb, grid])
            if grid is not None:
                layer[kind, la, lb].add_cross(rows[left, la, None], rows[right, lb, None])
    result: dict[str, Any] = {"scores": {}, "pooled": {}, "chance_a": {}, "chance_b": {}}
    for la, lb in pairs:
        pair = (la.name, lb.name)
        result["scores"][pair] = unit["trained", *pair].correlation()
        result["pooled"][pair] = layer["trained", *pair].correlation()
        result["chance_a"][pair] = unit["random_b", *pair].correlation().max(1, initial=0.0)  # per unit of a
        result["chance_b"][pair] = unit["random_a", *pair].correlation().max(0, initial=0.0)  # per unit of b
    for kind in kinds:
        result[f"cka_{kind}"] = np.array([[layer[kind, la.name, lb.name].cka() for lb in b.layers]
                                          for la in a.layers])
    return result


# -- the stage ----------------------------------------------------------------------

def run(ctx: StageContext, plan: Plan) -> dict[str, Any] | None:
    """Compare every pair of swept models; return what the sweep plan records: the
    pair artifacts and the summary artifact (matches per unit, matched sets, CKA)."""
    entries = {entry.name: entry for entry in plan.models}
    specs = [spec for spec in ctx.config.models if spec.name in entries]
    if len(specs) < 2:
        return None
    seed = ctx.config.sweep.seed
    sides: dict[str, Side] = {}  # every model compared so far stays loaded, with its random twin

    def side(spec: ModelConfig) -> Side:
        if spec.name not in sides:
            model = load_model(spec, root=ctx.config.root, seed=seed).to(ctx.device)
            twin = random_twin(model, derive_seed(seed, "chance", spec.name))
            layers = [LayerInfo(l.name, tuple(l.shape), tuple(l.units)) for l in entries[spec.name].layers]
            sides[spec.name] = Side(for_inference(model, layers), for_inference(twin, layers), layers)
        return sides[spec.name]

    def identity(spec: ModelConfig) -> dict[str, Any]:
        """What decides a model's part of a comparison, from the plan (no model is loaded
        to find a finished artifact): its weights, preprocessing, layers and twin."""
        entry = entries[spec.name]
        return {key: getattr(entry, key) for key in ("name", "arch", "digest", "mean", "std", "input_size")} | {
            "twin_seed": derive_seed(seed, "chance", spec.name),
            "layers": [(layer.name, layer.units) for layer in entry.layers]}

    pairs = [(x, y) for i, x in enumerate(specs) for y in specs[i + 1:]]
    keys = []
    with ctx.progress(len(pairs), "universality") as bar:
        for spec_a, spec_b in pairs:
            key = artifact_key(stage=STAGE, format=FORMAT, a=identity(spec_a), b=identity(spec_b),
                               data=ctx.dataset.digest() if ctx.dataset is not None else None)
            if ctx.needs(STAGE, key):
                a, b = side(spec_a), side(spec_b)
                result = compare(a, b, image_batches(ctx.dataset, a.model.input_size, b.model.input_size,
                                                     ctx.config.sweep.batch_size, ctx.device))
                _write_pair(ctx, key, a, b, result)
            ctx.store.record(STAGE, key, {"a": spec_a.name, "b": spec_b.name})
            keys.append(key)
            bar.update(1)
    ctx.sync()  # the summary reads every pair, some of which other ranks compared
    families = {(m.name, layer.name): layer.key("families") for m in plan.models for layer in m.layers
                if layer.key("families")}
    summary_key = artifact_key(stage=STAGE, format=SUMMARY_FORMAT, margin=MARGIN, summary=keys,
                               families=sorted(families.values()))
    with ctx.artifact(STAGE, summary_key, summary=True) as folder:
        if folder is not None:
            summary = summarize([_read_pair(ctx, key) for key in keys])
            summary["agreement"] = family_agreement(buddy_families(summary["matches"], _named_families(ctx, families)))
            write(folder, UniversalitySummary(**summary))
    return {"pairs": keys, "summary": summary_key}


def _named_families(ctx: StageContext, keys: dict[tuple[str, str], str]) -> dict[tuple[str, str, int], str]:
    """(model, layer, unit) -> its named family's symbol (not "other", nor a discovered one)."""
    named = {}
    for (model, layer), key in keys.items():
        found = ctx.store.read(Families, key)
        kinds = {f["symbol"]: f["kind"] for f in found.families}
        for unit, record in found.units.items():
            symbol = record.get("family")
            if symbol and kinds.get(symbol) == "named" and symbol != OTHER:
                named[model, layer, int(unit)] = symbol
    return named


def buddy_families(matches: dict[str, Any], named: dict[tuple[str, str, int], str]) -> list[tuple[str, str]]:
    """The named families of the two units of each best-buddy pair above chance whose
    units both have one; each pair once, its sides in (model, layer, unit) order."""
    pairs = set()
    for model, layers in matches.items():
        for layer, by_unit in layers.items():
            for index, found in by_unit.items():
                for m in found:
                    a, b = (model, layer, int(index)), (m["model"], m["layer"], m["index"])
                    if m["buddy"] and m["above_chance"] and a in named and b in named:
                        pairs.add(tuple(sorted((a, b))))
    return [(named[a], named[b]) for a, b in sorted(pairs)]


def random_twin(model: LoadedModel, seed: int) -> LoadedModel:
    """The same architecture with fresh random weights: every module's own initialisation
    (``reset_parameters``), seeded."""
    module = reset(model.module, seed)
    return model.with_module(module.eval(), name=f"{model.name} (random)")


def image_batches(dataset: Any, size_a: int, size_b: int, batch: int, device: torch.device,
                  bank: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The same images for two models, each at its own size, in [0, 1]: the dataset's
    (if any), then the stimulus bank drawn over the whole image."""
    def tensor(pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(pixels).to(device).permute(0, 3, 1, 2).float() / 255

    if dataset is not None and size_a == size_b:
        for _, pixels in dataset.batches(size_a, batch):
            x = tensor(pixels)
            yield x, x
    elif dataset is not None:
        for (_, xa), (_, xb) in zip(dataset.batches(size_a, batch), dataset.batches(size_b, batch)):
            yield tensor(xa), tensor(xb)
    if bank:
        bank_a, bank_b = stimulus_bank(size_a, size_a), stimulus_bank(size_b, size_b)
        for start in range(0, len(bank_a.images), batch):
            yield tuple(torch.from_numpy(np.stack(b.images[start:start + batch])).to(device) for b in (bank_a, bank_b))


def _name(*parts: str) -> str:
    return "::".join(parts)


def _write_pair(ctx: StageContext, key: str, a: Side, b: Side, result: dict[str, Any]) -> None:
    arrays = {_name(field, la, lb): np.asarray(value, dtype=np.float32)
              for field in ("scores", "pooled", "chance_a", "chance_b")
              for (la, lb), value in result[field].items()}
    with ctx.store.writing(STAGE, key) as folder:
        np.savez_compressed(folder / UniversalityPair.CORRELATIONS, **arrays)
        write(folder, UniversalityPair(
            a={"model": a.model.name, "layers": [{"name": l.name, "units": list(l.units)} for l in a.layers]},
            b={"model": b.model.name, "layers": [{"name": l.name, "units": list(l.units)} for l in b.layers]},
            **{f"cka_{kind}": np.round(result[f"cka_{kind}"], 4).tolist()
               for kind in ("trained", "random_b", "random_a")}))


def _read_pair(ctx: StageContext, key: str) -> dict[str, Any]:
    folder = ctx.store.path(STAGE, key)
    data = UniversalityPair.read(folder).json()
    with np.load(folder / UniversalityPair.CORRELATIONS) as arrays:
        data["arrays"] = {tuple(name.split("::")): arrays[name] for name in arrays.files}
    return data


PASSES = 2.4  # forward passes' worth of work per image, per model and its random twin, folded and channels-last


def cost(m: Measured) -> Cost | None:
    from atlas.stages.tuning import BANK

    names = list(m.models)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    if not (pairs and m.images):
        return None
    return Cost([(m.images + BANK) * (m.models[a] + m.models[b]) * 2 * PASSES for a, b in pairs],
                f"{len(pairs)} pairs of models and their random twins")
