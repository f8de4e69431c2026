"""Read ``atlas.toml`` into typed, frozen config objects.

The dataclasses below *are* the schema: each field's type hint says what the TOML
value must be, its default says whether the key is optional, and its comment says
why it exists. ``load_config`` walks the TOML tables against these dataclasses, so
an unknown key, a wrong type or a missing key is reported with its full key path
and the file it came from::

    atlas.toml: models[0].layer: unknown key (did you mean 'layers'?)

``--set key.path=value`` overrides are applied to the raw TOML before it is
checked, so they are validated exactly like the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atlas import registry
from atlas.errors import ConfigError
from atlas.names import slug

STAGES = registry.names()
"""Every analysis `atlas sweep` knows, in the order it runs them (``atlas.registry``)."""

DEVICES = ("auto", "cpu", "cuda")
LAYOUTS = ("tsne", "umap")
NULL_KINDS = ("auto", "permuted", "none")  # how the null networks are drawn (``atlas.models.twin``); none: no test  # activation atlas layouts (``atlas.stages.activation_atlas``)
# A unit's feature visualization objectives (``atlas.registry``; "direction" is the activation atlas's).
OBJECTIVES = tuple(name for name, o in registry.OBJECTIVES.items() if not o.along)
PRECISIONS = ("auto", "fp32", "bf16")  # feature visualization arithmetic; auto: bf16 where the device has it natively


def ranged(default: Any, low: float, high: float, *, above: bool = False, how: bool = False) -> Any:
    """A number field's default and its range: ``low <= value <= high`` (``low < value``
    when ``above``), checked on load like a type, for every item of a list; ``how``: see
    ``how_only``."""
    return field(default=default, metadata={"range": (low, high, above), "how": how})


def how_only(default: Any) -> Any:
    """A setting that changes how or where a sweep runs (its device, its cache, batch
    sizes), never what it finds: left out of ``Config.sweep_digest``, so a render finds
    a sweep made with other such settings."""
    return field(default=default, metadata={"how": True})


@dataclass(frozen=True)
class SiteConfig:
    title: str = "Atlas"  # shown in every page header
    out: Path = Path("site")  # output folder (relative to the config file)


@dataclass(frozen=True)
class DataConfig:
    images: str  # a folder of images (flat, or one subfolder per class)
    limit: int = ranged(2000, 1, 10_000_000)  # use the first N images in sorted order: a fixed, reproducible set


@dataclass(frozen=True)
class SweepConfig:
    device: str = how_only("auto")  # auto picks cuda when available; cpu and cuda force one
    seed: int = ranged(0, 0, 2**63 - 1)  # global seed; each unit's seed derives from it and the unit's id
    cache: Path = how_only(Path(".atlas-cache"))  # the artifact store (relative to the config file)
    stages: tuple[str, ...] = registry.defaults()  # which analyses run
    batch_size: int = ranged(32, 1, 65_536, how=True)  # images per forward pass when streaming a dataset


@dataclass(frozen=True)
class FeaturevisConfig:
    steps: int = ranged(512, 1, 1_000_000)  # optimisation steps per image (Lucid's default threshold)
    size: int = ranged(128, 16, 4096)  # side of the optimised image, in pixels
    lr: float = ranged(0.05, 0, 100, above=True)  # Adam learning rate on the image parameterisation
    param: str = "fft"  # fft: lucent's decorrelated Fourier spectrum; maco: its phase only, natural magnitude
    precision: str = "auto"  # auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), else fp32
    redirect: int = ranged(16, 0, 1_000_000)  # first steps with redirected rectifier gradients (no dead starts); 0: never
    objectives: tuple[str, ...] = OBJECTIVES  # which images each unit gets
    diversity: int = ranged(4, 2, 256)  # images per unit for the diversity objective
    diversity_weight: float = ranged(0.5, 0, 1000)  # strength of the diversity penalty, relative to the activation
    batch: int | None = ranged(None, 1, 65_536, how=True)  # units optimised together; unset: as many as fit the device
    workers: int | None = ranged(None, 1, 1024, how=True)  # CPU processes optimising batches side by side; unset: one per thread
    thumbnail: int = ranged(64, 8, 4096)  # side of the thumbnails shown in grids


@dataclass(frozen=True)
class ExamplesConfig:
    top: int = ranged(9, 1, 10_000)  # dataset examples kept per unit, strongest first


@dataclass(frozen=True)
class TuningConfig:
    # Joint tuning: each unit's top examples turn about where it fired (``atlas.stages.tuning``).
    joint_examples: int = ranged(3, 0, 1000)  # top examples turned per unit; 0: no joint tuning
    joint_step: int = ranged(15, 1, 180)  # degrees between turns (24 angles at 15)


@dataclass(frozen=True)
class AtlasConfig:
    points: int = ranged(4000, 16, 1_000_000)  # activation vectors (image x position) laid out per layer
    grid: int = ranged(12, 2, 256)  # cells on a side of the layout's grid
    min_count: int = ranged(3, 1, 1_000_000)  # vectors a cell needs to be drawn
    layout: str = "tsne"  # tsne (scikit-learn) | umap (umap-learn, if installed)


@dataclass(frozen=True)
class DictionaryConfig:
    expansion: int = ranged(4, 1, 1024)  # dictionary features per unit of the layer
    l1: float = ranged(0.01, 0, 1000)  # sparsity penalty (inputs are scaled to mean squared norm = their width)
    steps: int = ranged(3000, 1, 10_000_000)  # Adam steps
    batch: int = ranged(1024, 1, 10_000_000)  # activation vectors per step
    samples: int = ranged(65536, 1, 100_000_000)  # activation vectors (image x position) it is trained on, drawn from the dataset
    lr: float = ranged(0.003, 0, 100, above=True)


@dataclass(frozen=True)
class NullConfig:
    units: int = ranged(256, 8, 1_000_000)  # null units per layer: untrained twins are drawn until there are this many
    twins: int = ranged(16, 1, 1000)  # ... but at most this many networks
    images: int = ranged(256, 1, 1_000_000)  # images the null networks' batch norm statistics are estimated on
    rate: float = ranged(0.05, 0, 1, above=True)  # the false discovery rate of a layer's family labels
    # auto: untrained twins where the architecture can be drawn untrained; permuted: kernels shuffled;
    # none: no null, and every label's page says it was not tested (hand-built fixtures, debugging)
    kind: str = "auto"


@dataclass(frozen=True)
class SuperpositionConfig:
    steps: int = ranged(1500, 1, 10_000_000)  # Adam steps of the toy models (all sparsities train at once)


@dataclass(frozen=True)
class ModelConfig:
    name: str  # id used in URLs and on the pages
    arch: str  # torchvision:<name> | lucent:inceptionv1 | package.module:factory
    layers: tuple[str, ...]  # dotted names from named_modules()
    weights: str = "none"  # none | a named weight set | a path to a state dict
    units: int | None = ranged(None, 1, 10_000_000)  # only the first N units of each layer (all when unset)
    mean: tuple[float, ...] | None = ranged(None, -1000, 1000)  # input normalisation, for import-path models
    std: tuple[float, ...] | None = ranged(None, 0, 1000, above=True)
    input_size: int | None = ranged(None, 8, 8192)  # side of the model's input image
    dictionary: tuple[str, ...] = ()  # layers (of ``layers``) to take apart with a sparse autoencoder
    # An import path building the same architecture untrained, for the null's twins, when
    # ``arch`` returns a loaded model (without it such a model's null permutes its kernels).
    untrained: str | None = None
    # Re-estimate the batch norms' running statistics on the dataset before the sweep (train mode,
    # ``[null] images`` images): what an untrained network's are, as a sanity check sweeps it.
    recalibrate: bool = False

    @property
    def slug(self) -> str:
        return slug(self.name)


@dataclass(frozen=True)
class Config:
    models: tuple[ModelConfig, ...]
    site: SiteConfig = how_only(SiteConfig())  # the site's looks: not what a sweep finds
    data: DataConfig | None = None  # no [data]: no dataset examples
    sweep: SweepConfig = SweepConfig()
    featurevis: FeaturevisConfig = FeaturevisConfig()
    examples: ExamplesConfig = ExamplesConfig()
    # Added after sweeps were cached: left out of the digest at its defaults, so those sweeps stay found.
    tuning: TuningConfig = field(default=TuningConfig(), metadata={"digest_default": False})
    atlas: AtlasConfig = AtlasConfig()
    dictionary: DictionaryConfig = DictionaryConfig()
    superposition: SuperpositionConfig = SuperpositionConfig()
    null: NullConfig = NullConfig()
    # Not TOML keys: where the config came from, to resolve relative paths.
    root: Path = field(default=Path("."), metadata={"internal": True, "how": True})
    source: str = field(default="atlas.toml", metadata={"internal": True, "how": True})

    def resolve(self, path: str | Path) -> Path:
        """A path from the config, taken relative to the config file's folder."""
        return (self.root / Path(path).expanduser()).resolve()

    def sweep_digest(self) -> str:
        """A digest of everything that decides sweep results: not the site's looks, and
        not what only changes how fast they come (the device, batch sizes, workers), so
        that `atlas render` finds a sweep made with other such settings."""
        return _digest(_plain(self, results_only=True))


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read, override and check a config file. Raises ConfigError naming the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (create one, or pass --config)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    source = path.name
    config = _parse(raw, source)
    for override in overrides:
        _apply_override(raw, override)
        config = _parse(raw, f"--set {override}")
    config = dataclasses.replace(config, root=path.resolve().parent, source=source)
    _check_folders(config)
    return config


def _check_folders(config: Config) -> None:
    """The site and the store are folders, and neither inside the other: rendering
    replaces the whole site folder (a cache inside it would be deleted), and a sweep
    would index a site inside the cache."""
    site, cache = config.resolve(config.site.out), config.resolve(config.sweep.cache)
    for key, folder in (("site.out", site), ("sweep.cache", cache)):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{config.source}: {key}: {folder} is a file, not a folder")
    if site == cache or site in cache.parents:
        raise ConfigError(f"{config.source}: sweep.cache: {cache} is inside site.out ({site}), which every render "
                          "replaces; keep the cache outside the site")
    if cache in site.parents:
        raise ConfigError(f"{config.source}: site.out: {site} is inside sweep.cache ({cache}); "
                          "keep the site outside the cache")


def _parse(raw: dict, source: str) -> Config:
    try:
        config = _build(Config, raw, "")
        _check(config)
    except _KeyProblem as e:
        raise ConfigError(f"{source}: {e.key}: {e.problem}") from None
    return config


class _KeyProblem(Exception):
    def __init__(self, key: str, problem: str):
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


def valid_device(name: str) -> bool:
    return name in DEVICES or (name.startswith("cuda:") and name[5:].isdigit())


def _check(config: Config) -> None:
    """Value checks that types alone cannot express."""
    def require(ok: bool, key: str, problem: str) -> None:
        if not ok:
            raise _KeyProblem(key, problem)

    require(valid_device(config.sweep.device), "sweep.device",
            f"must be one of {', '.join(DEVICES)} or cuda:N (got {config.sweep.device!r})")
    for i, stage in enumerate(config.sweep.stages):
        require(stage not in config.sweep.stages[:i], f"sweep.stages[{i}]", f"{stage!r} is listed twice")
        known = registry.names()  # read now: a stage may be registered after import
        require(stage in known, f"sweep.stages[{i}]", f"unknown stage {stage!r}{_suggest(stage, known)}"
                f"; stages are {', '.join(known)}")
    require(len(config.featurevis.objectives) > 0, "featurevis.objectives", "list at least one objective")
    for i, kind in enumerate(config.featurevis.objectives):
        require(kind in OBJECTIVES or _import_path(kind), f"featurevis.objectives[{i}]",
                f"unknown objective {kind!r}{_suggest(kind, OBJECTIVES)}; objectives are {', '.join(OBJECTIVES)}, "
                "or package.module:name of an atlas.optvis.objectives.Objective")
    require(config.featurevis.param in registry.PARAMETERISATIONS, "featurevis.param",
            f"must be one of {', '.join(registry.PARAMETERISATIONS)} (got {config.featurevis.param!r})")
    require(config.null.kind in NULL_KINDS, "null.kind",
            f"must be one of {', '.join(NULL_KINDS)} (got {config.null.kind!r})")
    require(config.atlas.layout in LAYOUTS, "atlas.layout",
            f"unknown layout {config.atlas.layout!r}; layouts are {', '.join(LAYOUTS)}")
    require(config.featurevis.precision in PRECISIONS, "featurevis.precision",
            f"must be one of {', '.join(PRECISIONS)} (got {config.featurevis.precision!r})")
    require(len(config.models) > 0, "models", "at least one [[models]] table is required")
    seen: dict[str, str] = {}
    for i, model in enumerate(config.models):
        key = f"models[{i}]"
        require(model.name.strip() != "", f"{key}.name", "must not be empty")
        require(model.slug not in seen, f"{key}.name",
                f"{model.name!r} clashes with {seen.get(model.slug)!r} (same URL '{model.slug}')")
        seen[model.slug] = model.name
        require(len(model.layers) > 0, f"{key}.layers", "list at least one layer")
        require(len(set(model.layers)) == len(model.layers), f"{key}.layers", "a layer is listed twice")
        for j, layer in enumerate(model.dictionary):
            require(layer in model.layers, f"{key}.dictionary[{j}]",
                    f"{layer!r} is not one of the model's layers ({', '.join(model.layers)})")
        for name in ("mean", "std"):
            value = getattr(model, name)
            require(value is None or len(value) == 3, f"{key}.{name}", "give three values (R, G, B)")


# -- generic TOML -> dataclass conversion -------------------------------------------

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path"}


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise _KeyProblem(where or "(top level)", f"expected a table, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else key
        if key not in fields:
            raise _KeyProblem(path, f"unknown key{_suggest(key, fields)}")
        kwargs[key] = _convert(value, hints[key], path)
        if "range" in fields[key].metadata:
            _check_range(kwargs[key], *fields[key].metadata["range"], path)
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in kwargs:
            raise _KeyProblem(f"{where}.{name}" if where else name, "missing required key")
    return cls(**kwargs)


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):  # `X | None`: TOML has no null, so it is X
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise _KeyProblem(where, f"expected a list, got {_describe(value)}")
        return tuple(_convert(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        Path: isinstance(value, str),
    }[tp]
    if not ok:
        raise _KeyProblem(where, f"expected {_TYPE_NAMES[tp]}, got {_describe(value)}")
    if tp is float and not math.isfinite(value):
        raise _KeyProblem(where, f"must be a finite number (got {value})")
    return tp(value)


def _check_range(value: Any, low: float, high: float, above: bool, where: str) -> None:
    for i, v in enumerate(value) if isinstance(value, tuple) else [(None, value)]:
        key = where if i is None else f"{where}[{i}]"
        if above and v <= low:
            raise _KeyProblem(key, f"must be more than {low} (got {v})")
        if v < low:
            raise _KeyProblem(key, f"must be at least {low} (got {v})")
        if v > high:
            raise _KeyProblem(key, f"must be at most {high} (got {v})")


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} ({json.dumps(value, default=str)[:40]})" if not isinstance(value, dict) else kind


def _import_path(text: str) -> bool:
    """``package.module:name``, as a user's objective is named (imported when the sweep runs)."""
    module, _, name = text.partition(":")
    return bool(module and name) and all(part.isidentifier() for part in (*module.split("."), name))


def _suggest(key: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _apply_override(raw: dict, override: str) -> None:
    """Set ``a.b[0].c=value`` in the raw TOML dict; the value is parsed as TOML."""
    keypath, sep, text = override.partition("=")
    if not sep or not keypath.strip():
        raise ConfigError(f"--set {override}: expected KEY=VALUE (e.g. featurevis.steps=64)")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: take it as a string
    node: Any = raw
    parts = keypath.strip().split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth + 1])
        name, bracket, index = part.partition("[")
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override}: {'.'.join(parts[:depth])}: is not a table")
        if not name or (bracket and not (index.endswith("]") and index[:-1].isdigit())):
            raise ConfigError(f"--set {override}: {where}: expected a key, or a key and a list index as in models[0]")
        last = depth == len(parts) - 1
        if bracket:
            items, i = node.get(name), int(index[:-1])
            if not isinstance(items, list) or not 0 <= i < len(items):
                raise ConfigError(f"--set {override}: {where}: no such list item")
            if last:
                items[i] = value
            node = items[i]
        elif last:
            node[name] = value
        else:
            node = node.setdefault(name, {})


def _plain(obj: Any, results_only: bool = False) -> Any:
    """A config as JSON-able plain data (``results_only``: without the ``how_only`` settings)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name), results_only) for f in dataclasses.fields(obj)
                if not (results_only and (f.metadata.get("how") or _left_out_at_default(obj, f)))}
    if isinstance(obj, (tuple, list)):
        return [_plain(v, results_only) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _left_out_at_default(obj: Any, f: dataclasses.Field) -> bool:
    return f.metadata.get("digest_default") is False and getattr(obj, f.name) == f.default


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
