"""The sweep: models x layers x stages -> the artifact store.

``sweep`` loads each model in turn, checks its layers, and runs every configured
stage over them. Stages skip artifacts the store already has, so a second sweep
does no work and an interrupted one resumes. At the end of each model the sweep
plan is written: which artifacts belong to which model, layer and stage. The plan
is the only thing ``render`` needs besides the artifacts; it is stored under the
config's sweep digest, so ``atlas render`` after ``atlas sweep`` finds it.

Started by torchrun, every process runs this same sweep and computes its share of
the artifacts (``atlas.distributed``): the ranks agree on each artifact's owner as
the stages ask for them, and wait for each other after every stage of every model.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Callable, Iterator

import torch

import atlas
from atlas import registry
from atlas.allocator import keep_freed_memory
from atlas.artifacts import DatasetScan, LayerEntry, ModelEntry, Plan, write
from atlas.config import Config
from atlas.data import open_dataset
from atlas.distributed import Shard, from_environment
from atlas.errors import AtlasError
from atlas.models import LoadedModel, load_model
from atlas.models.twin import calibration_images, recalibrate
from atlas.nn.capture import capture, find_modules
from atlas.registry import Stage
from atlas.stages import Derived, LayerInfo, Made, ProgressFactory, StageContext, examples
from atlas.store import Store, artifact_key

log = logging.getLogger(__name__)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def no_progress(total: int, description: str) -> Iterator[_Silent]:
    yield _Silent()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AtlasError("sweep.device: cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def sweep(config: Config, *, force: bool = False, progress: ProgressFactory = no_progress,
          after_model: Callable[[], None] | None = None) -> Plan:
    """Fill the store with every artifact the config asks for; return the sweep plan.
    One sweep writes a store at a time: a second one waits for the first, then finds
    its work done. ``after_model`` is called (on rank 0) each time a model's plan is
    written, while more work remains: ``atlas build`` renders the site so far."""
    keep_freed_memory()
    checked = _preflight(config)
    shard = from_environment()
    store = Store(config.resolve(config.sweep.cache), manifests=shard.main)

    def waiting(holder: str) -> None:
        log.warning("%s: another atlas sweep (pid %s) is writing this cache; waiting for it to finish, "
                    "then its work is reused", store.root, holder)

    # Rank 0 holds the lock for all ranks: the others wait for it at their first claim.
    try:
        with store.lock(waiting) if shard.main else contextlib.nullcontext():
            return _sweep(config, store, force, progress if shard.main else no_progress, shard,
                          after_model if shard.main else None, checked)
    finally:
        shard.close()


def _sweep(config: Config, store: Store, force: bool, progress: ProgressFactory, shard: Shard,
           after_model: Callable[[], None] | None, checked: LoadedModel | None = None) -> Plan:
    stages = registry.ordered(config.sweep.stages)  # later stages read earlier ones
    dataset = None
    if config.data is not None and any(s.needs_dataset or s.uses_dataset for s in stages):
        dataset = open_dataset(config.data.images, config.data.limit, config.root)
    ctx = StageContext(config=config, store=store,
                       device=pick_device(shard.device(config.sweep.device)), progress=progress,
                       force=force, dataset=dataset, shard=shard)

    def write_plan() -> None:
        if shard.main:
            ctx.store.write_plan(config.sweep_digest(), plan)

    plan = Plan(atlas=atlas.__version__, data=_dataset_summary(ctx) if dataset is not None else None)
    per_model = [s for s in stages if s.scope != "atlas"]
    across = [s for s in stages if s.scope == "atlas"]
    for i, spec in enumerate(config.models):
        key = f"{config.source}: models[{i}]"
        model = (checked if checked is not None else
                 load_model(spec, root=config.root, seed=config.sweep.seed, key=key)).to(ctx.device)
        checked = None
        if spec.recalibrate:
            model = recalibrated(model, ctx, config, spec.layers)
        layers = inspect_layers(model, spec.layers, spec.units, ctx.device, key)
        log.info("%s: %d layers, %d units", model.name, len(layers), sum(len(l.units) for l in layers))
        ctx.artifacts = {layer.name: {} for layer in layers}
        derived: list[Derived] = []
        whole: dict[str, list[str]] = {}  # artifacts about the whole model, per stage
        for stage in per_model:
            with _timed(f"{model.name}: {stage.name}"):
                made = _run_stage(ctx, stage, model, layers)
            derived += made.derived
            if made.model:
                whole[stage.name] = made.model
        dictionaries = [_sweep_derived(ctx, [s for s in per_model if s.derived], d) for d in derived]
        # A factory that loads its own weights says which (``atlas_weights``), where the config says "none".
        weights = getattr(model.module, "atlas_weights", spec.weights) if spec.weights == "none" else spec.weights
        plan.models.append(_model_entry(model, weights, layers, ctx.artifacts, dictionaries, whole))
        write_plan()
        del model
        if after_model is not None and (i + 1 < len(config.models) or across):
            after_model()
    for stage in across:
        with _timed(stage.name):
            made = stage.runner()(ctx, plan)
            ctx.sync()
        if made:
            plan.across[stage.name] = made
        write_plan()
    if ctx.notes.get("no_answer"):
        log.warning("no answer (with its reason in the artifact) this sweep: %s",
                    ", ".join(f"{stage} {n}" for stage, n in ctx.notes["no_answer"].items()))
    if shard.world > 1:
        log.info("rank %d of %d computed %d of the %d artifacts this sweep needed", shard.rank, shard.world,
                 shard.computed, shard.needed)
    return plan


def recalibrated(model: LoadedModel, ctx: StageContext, config: Config, layers: tuple[str, ...]) -> LoadedModel:
    """The model with its batch norms' statistics estimated again on the dataset (or on
    1/f noise without one), as the null's networks are (``atlas.models.twin``)."""
    images = calibration_images(ctx.dataset, model.input_size, config.null.images, config.sweep.seed)
    recalibrate(model, images, ctx.device, upto=layers)
    model.known_digest = None  # its weights changed: hash them again when asked
    return model


def _run_stage(ctx: StageContext, stage: Stage, model: LoadedModel, layers: list[LayerInfo]) -> Made:
    """Run a layer- or model-scope stage and note its keys in ``ctx.artifacts``."""
    if stage.needs_dataset and ctx.dataset is None:
        return Made({})
    if stage.scope == "layer":
        made = Made({layer.name: stage.runner()(ctx, model, layer) for layer in layers})
    else:
        found = stage.runner()(ctx, model, layers)
        made = found if isinstance(found, Made) else Made(found)
    for layer_name, keys in made.keys.items():
        if keys or stage.scope == "model":
            ctx.artifacts[layer_name][stage.name] = keys
    ctx.sync()  # the next stage reads this one's artifacts, whichever rank made them
    return made


def _sweep_derived(ctx: StageContext, stages: list[Stage], derived: Derived) -> LayerEntry:
    """Sweep a derived layer (a dictionary's features) with the stages that take one, as a
    layer of its own model; its plan entry."""
    saved, ctx.artifacts = ctx.artifacts, {derived.layer.name: {}}
    try:
        for stage in stages:
            _run_stage(ctx, stage, derived.model, [derived.layer])
        artifacts = {**derived.artifacts, **ctx.artifacts[derived.layer.name]}
    finally:
        ctx.artifacts = saved
    return LayerEntry(derived.name, list(derived.layer.shape), list(derived.layer.units), artifacts, of=derived.of)


@contextlib.contextmanager
def _timed(what: str) -> Iterator[None]:
    """Log how long ``what`` took (``-v``): the stage-by-stage breakdown of a sweep."""
    start = time.perf_counter()
    yield
    log.info("%s: %.1f s", what, time.perf_counter() - start)


def _preflight(config: Config) -> LoadedModel | None:
    """Load every model and check its layers before any work, one at a time (so memory
    holds one model), so that a mistake in the last model is reported before the first
    is swept. The one model of a one-model config is kept for the sweep (not loaded twice)."""
    for i, spec in enumerate(config.models):
        key = f"{config.source}: models[{i}]"  # errors name the file and the key
        model = load_model(spec, root=config.root, seed=config.sweep.seed, key=key)
        inspect_layers(model, spec.layers, spec.units, torch.device("cpu"), key)
        if len(config.models) == 1:
            return model
        del model
    return None


def _dataset_summary(ctx: StageContext) -> dict[str, Any]:
    """How many images the dataset has and which are unreadable (scanned once, cached)."""
    dataset = ctx.dataset
    key = artifact_key(stage=DatasetScan.STAGE, data=dataset.digest())
    if ctx.needs(DatasetScan.STAGE, key):
        with ctx.store.writing(DatasetScan.STAGE, key) as folder:
            write(folder, DatasetScan(skipped=dataset.scan()))
    ctx.sync()  # one rank scanned it
    skipped = ctx.store.read(DatasetScan, key).skipped
    dataset.skipped.update(skipped)  # known bad files are skipped silently from now on
    if skipped and ctx.shard.main:
        log.warning("%s: %d unreadable images skipped: %s", dataset.root, len(skipped),
                    ", ".join(sorted(skipped)[:5]) + (" ..." if len(skipped) > 5 else ""))
    return {"images": str(dataset.root), "count": len(dataset.records) - len(skipped), "skipped": skipped,
            "thumbnails": examples.thumbnails(ctx)}


def inspect_layers(model: LoadedModel, names: tuple[str, ...], units: int | None,
                   device: torch.device, key: str) -> list[LayerInfo]:
    """Check the layers exist and learn their output shapes from one forward pass."""
    try:
        find_modules(model.module, names)
    except AtlasError as e:
        raise AtlasError(f"{key}.layers: {e}") from None
    probe = torch.zeros(1, 3, model.input_size, model.input_size, device=device)
    with torch.no_grad():
        outputs = capture(model.module, model.normalize(probe), names)
    layers = []
    for name in names:
        shape = tuple(outputs[name].shape[1:])
        if len(shape) not in (1, 3):
            raise AtlasError(f"{key}.layers: {name!r} outputs shape {shape}; "
                             "Atlas needs (channels, height, width) or (units,)")
        count = shape[0] if units is None else min(units, shape[0])
        layers.append(LayerInfo(name, shape, tuple(range(count))))
    return layers


def _model_entry(model: LoadedModel, weights_name: str, layers: list[LayerInfo],
                 artifacts: dict[str, dict[str, list[str]]], dictionaries: list[LayerEntry],
                 whole: dict[str, list[str]]) -> ModelEntry:
    return ModelEntry(
        name=model.name, arch=model.arch, weights=weights_name, digest=model.digest,
        input_size=model.input_size, mean=list(model.mean), std=list(model.std),
        layers=[LayerEntry(layer.name, list(layer.shape), list(layer.units), artifacts[layer.name])
                for layer in layers], dictionaries=dictionaries, artifacts=whole)
