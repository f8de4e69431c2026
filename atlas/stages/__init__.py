"""Analyses of a model, one module per stage (``atlas.registry`` lists them).

Every stage is a ``run`` around pure functions (tensors in, arrays out) that tests
call with no disk; ``run`` reads and writes the store and returns the keys of the
artifacts it made or found, which the pipeline records in the sweep plan that
``render`` reads. Its arguments follow its scope (``atlas.registry``).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

import torch

from atlas.config import Config, ModelConfig
from atlas.distributed import Shard
from atlas.models import LoadedModel
from atlas.store import Store, artifact_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerInfo:
    name: str
    shape: tuple[int, ...]  # output shape without the batch: (C, H, W) or (C,)
    units: tuple[int, ...]  # the units (channels) swept

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def spatial(self) -> bool:
        """A feature map (C, H, W), not a vector of units."""
        return len(self.shape) == 3


@dataclass
class Derived:
    """A layer a stage derives from a model's own (a dictionary's features), swept by the
    pipeline as a layer of ``model`` (the stages marked ``derived`` in the registry)."""

    model: LoadedModel  # the model whose ``layer`` module outputs the derived units
    layer: LayerInfo
    of: str  # the model's layer it derives from
    name: str  # its name in the plan and on the site
    artifacts: dict[str, list[str]]  # what the deriving stage made for it


@dataclass
class Made:
    """A model-scope stage's keys per layer, and the layers it derived."""

    keys: dict[str, list[str]]
    derived: list[Derived] = field(default_factory=list)
    model: list[str] = field(default_factory=list)  # artifacts about the whole model (a summary of its layers)


@dataclass
class Measured:
    """What ``atlas plan`` measured on the device, for the stages' cost models: each
    stage's module may define ``cost(measured) -> Cost | None`` beside its ``run``
    (None: the stage has nothing to do here, as without a dataset). A model-scope stage
    is asked once per model; an atlas-scope one once, with ``models`` filled."""

    config: Config
    device: torch.device
    images: int  # in the dataset; 0 without one
    model: LoadedModel | None = None  # the model being costed (None for the atlas scope)
    spec: ModelConfig | None = None  # its config entry
    layers: list[LayerInfo] = field(default_factory=list)
    forward: float = 0.0  # seconds per image of a forward pass to the swept layers
    forward_to: dict[str, float] = field(default_factory=dict)  # ... that stops at each layer
    # ... and in the small batches stimuli and turned examples are shown in (``atlas.plan.SHOWN_BATCH``):
    # on a CPU a large batch of 224 px images runs out of cache (EfficientNet-Lite0: 47 ms an image at
    # 32, 29 at 12).
    shown_to: dict[str, float] = field(default_factory=dict)
    build: float = 0.0  # seconds to build the model (a null network is built the same way)
    models: dict[str, float] = field(default_factory=dict)  # per model: seconds per image folded, channels-last
    notes: dict[str, Any] = field(default_factory=dict)  # what one cost model leaves for a later one

    @property
    def spatial(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.spatial]

    def to(self, layer: str) -> float:
        """Seconds per image of a forward pass that stops at ``layer``."""
        return self.forward_to.get(layer, self.forward)

    def shown(self, layer: str) -> float:
        """... in the small batches of stimuli and turned examples."""
        return self.shown_to.get(layer, self.to(layer))

    @property
    def units(self) -> dict[str, int]:
        return {layer.name: len(layer.units) for layer in self.layers}


@dataclass
class Cost:
    """A stage's estimate: seconds per artifact it claims (how ranks share them), and
    what was counted."""

    items: list[float]
    detail: str


class Progress(Protocol):
    def update(self, n: int = 1) -> object: ...


ProgressFactory = Callable[[int, str], ContextManager[Progress]]


@dataclass
class StageContext:
    config: Config
    store: Store
    device: torch.device
    progress: ProgressFactory
    force: bool = False  # recompute artifacts that exist
    dataset: Any = None  # an atlas.data dataset, when [data] is given
    notes: dict[str, Any] = field(default_factory=dict)  # memos shared by stages (receptive fields)
    # The current model's artifacts so far, {layer: {stage: [keys]}}: a stage reads
    # what earlier stages made (tuning rotates the examples; families reads them all).
    artifacts: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    shard: Shard = field(default_factory=Shard)  # this process's share of a sharded sweep

    def needs(self, stage: str, key: str, cost: float = 1.0) -> bool:
        """Whether this process computes the artifact: it is missing, damaged or forced
        (and, in a sharded sweep, claimed by this rank: ``atlas.distributed``; every
        rank asks for the same keys in the same order, and ``cost`` balances them)."""
        damage = None if self.force else self.store.damage(stage, key)
        if damage not in (None, "missing") and self.shard.main:
            log.warning("store: the %s artifact %s is damaged (%s); recomputing it", stage, key, damage)
        return self.shard.claim(self.force or damage is not None, cost)

    def recorded(self, stage: str, model: str, keys: dict[str, str | list[str]]) -> dict[str, list[str]]:
        """Record each layer's artifacts (``keys``: layer -> a key or keys) in the stage's
        manifest as {"model", "layer"}; returns them as the pipeline takes them, {layer: [keys]}."""
        listed = {layer: [found] if isinstance(found, str) else list(found) for layer, found in keys.items()}
        for layer, found in listed.items():
            for key in found:
                self.store.record(stage, key, {"model": model, "layer": layer})
        return listed

    @contextlib.contextmanager
    def artifact(self, stage: str, key: str, cost: float = 1.0, **meta: Any) -> Iterator[Path | None]:
        """The skeleton of every artifact: yields a folder to fill when this process makes
        it (``needs``; it becomes the artifact if the block succeeds), else None; then
        records it in the stage's manifest with ``meta``."""
        if self.needs(stage, key, cost):
            with self.store.writing(stage, key) as folder:
                yield folder
        else:
            yield None
        self.store.record(stage, key, meta)

    def no_answer(self, stage: str, what: str, reason: str) -> None:
        """Say (and count, for the sweep's summary) that a result is no answer, and why:
        the artifact stores the reason instead of values."""
        log.warning("%s: %s: no answer: %s", stage, what, reason)
        counts = self.notes.setdefault("no_answer", {})
        counts[stage] = counts.get(stage, 0) + 1

    def unanswered(self, stage: str, what: str, reasons: dict[int, str]) -> None:
        """Say (one line per reason) and count the units of ``what`` (a model's layer)
        that have no answer in a result that has values for the others."""
        if not reasons:
            return
        by_reason: dict[str, list[int]] = {}
        for unit, reason in reasons.items():
            by_reason.setdefault(reason, []).append(unit)
        for reason, units in by_reason.items():
            shown = ", ".join(map(str, units[:8])) + (f" and {len(units) - 8} more" if len(units) > 8 else "")
            log.warning("%s: %s: no answer for unit%s %s: %s", stage, what, "s" * (len(units) > 1), shown, reason)
        counts = self.notes.setdefault("no_answer", {})
        counts[f"{stage} units"] = counts.get(f"{stage} units", 0) + len(reasons)

    def sync(self) -> None:
        """In a sharded sweep, wait for every rank's claimed artifacts (a no-op in one process)."""
        self.shard.sync()


def layer_receptive_field(ctx: StageContext, model: LoadedModel, layer: str):
    """The layer's receptive field, measured once per sweep and shared by the stages."""
    from atlas.nn.receptive_field import receptive_field

    fields = ctx.notes.setdefault("receptive_fields", {})
    key = (model.digest, layer, model.input_size)
    if key not in fields:
        fields[key] = receptive_field(model, layer)
    return fields[key]


def model_identity(model: LoadedModel) -> dict[str, Any]:
    """What identifies a model's behaviour in artifact keys: weights and preprocessing."""
    return {"digest": model.digest, "mean": model.mean, "std": model.std}


def chunks(items: Sequence[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


__all__ = ["Derived", "LayerInfo", "Made", "StageContext", "ProgressFactory", "artifact_key", "chunks",
           "derive_seed", "layer_receptive_field", "model_identity"]
