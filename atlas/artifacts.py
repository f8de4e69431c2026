"""What the stages write and what render reads: the sweep plan and every stage's
artifact, as plain dataclasses (no torch).

A stage builds its artifact's record and writes it with ``write(folder, record)``;
render reads it back with ``Store.read(Record, key)`` into the same class, so a field
renamed on one side fails on the other at once, not as a blank figure. Each record
class names the files beside its ``data.json`` (``Featurevis.image``...), so nobody
rebuilds a stage's file names by hand. Nested structures (one entry per unit, per
cluster) stay JSON objects; the comments say their shape.

``SCHEMA`` is the layout of the store's objects and plans. A store remembers the
schema that wrote it (``<cache>/schema``); one written by another schema is refused
with a message instead of being misread.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from atlas.errors import AtlasError
from atlas.files import write_json
from atlas.names import slug
from atlas.registry import PRIMARY

SCHEMA = 1
OTHER = "Ot"  # the families stage's symbol for units no named or discovered family claims
# The seven arguments of "Zoom In" in a family's scorecard: id -> the name its records carry.
ARGUMENTS = {"featurevis": "feature visualization", "examples": "dataset examples", "synthetic": "synthetic examples",
             "joint": "joint tuning", "implementation": "feature implementation", "use": "feature use",
             "handwritten": "handwritten circuit"}

# -- the sweep plan -------------------------------------------------------------------


@dataclass
class LayerEntry:
    """One swept layer of a model (or a dictionary's features, with ``of`` set)."""

    name: str
    shape: list[int]  # output shape without the batch: (C, H, W) or (C,)
    units: list[int]
    artifacts: dict[str, list[str]]  # stage -> the keys of its artifacts for this layer
    of: str | None = None  # a dictionary's features: the layer they take apart

    @property
    def spatial(self) -> bool:
        return len(self.shape) == 3

    def keys(self, stage: str) -> list[str]:
        return self.artifacts.get(stage, [])

    def key(self, stage: str) -> str | None:
        """The layer's one artifact of ``stage`` (per-layer stages make one), if any."""
        return next(iter(self.keys(stage)), None)

    def to_json(self) -> dict[str, Any]:
        entry = {"name": self.name, "shape": self.shape, "units": self.units, "artifacts": self.artifacts}
        return entry if self.of is None else {**entry, "of": self.of}


@dataclass
class ModelEntry:
    name: str
    arch: str
    weights: str
    digest: str
    input_size: int
    mean: list[float]
    std: list[float]
    layers: list[LayerEntry]
    dictionaries: list[LayerEntry] = field(default_factory=list)  # layers derived from the model's own
    artifacts: dict[str, list[str]] = field(default_factory=dict)  # stage -> artifacts about the whole model

    def key(self, stage: str) -> str | None:
        return next(iter(self.artifacts.get(stage, [])), None)

    def to_json(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if f.name not in ("layers", "dictionaries")},
                "layers": [layer.to_json() for layer in self.layers],
                "dictionaries": [layer.to_json() for layer in self.dictionaries]}

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> "ModelEntry":
        return cls(**{**entry, "layers": [LayerEntry(**layer) for layer in entry["layers"]],
                      "dictionaries": [LayerEntry(**layer) for layer in entry.get("dictionaries", [])]})


@dataclass
class Plan:
    """What one sweep made: per model and layer, each stage's artifact keys; and the
    artifacts made across models (``atlas`` scope: universality, superposition)."""

    atlas: str  # the version that swept
    models: list[ModelEntry] = field(default_factory=list)
    data: dict[str, Any] | None = None  # {"images", "count", "skipped", "thumbnails": key}
    across: dict[str, Any] = field(default_factory=dict)  # atlas-scope stage -> what its run returned
    schema: int = SCHEMA

    def model(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {"atlas": self.atlas, "schema": self.schema, "models": [m.to_json() for m in self.models],
                "data": self.data, **self.across}

    @classmethod
    def from_json(cls, plan: dict[str, Any]) -> "Plan":
        across = {k: v for k, v in plan.items() if k not in ("atlas", "schema", "models", "data") and v}
        return cls(atlas=plan["atlas"], models=[ModelEntry.from_json(m) for m in plan["models"]],
                   data=plan.get("data"), across=across, schema=plan.get("schema", SCHEMA))

    def artifacts(self) -> list[tuple[str, str]]:
        """Every (stage, key) the plan names: what a render reads."""
        found = [(stage, key) for model in self.models for layer in model.layers + model.dictionaries
                 for stage, keys in layer.artifacts.items() for key in keys]
        found += [(stage, key) for model in self.models for stage, keys in model.artifacts.items() for key in keys]
        if (self.data or {}).get("thumbnails"):
            found.append((THUMBNAILS, self.data["thumbnails"]))
        for stage, made in self.across.items():  # a key, or {name: key or [keys]}
            for value in made.values() if isinstance(made, dict) else [made]:
                found += [(stage, key) for key in (value if isinstance(value, list) else [value])]
        return found


# -- each stage's artifact --------------------------------------------------------------

R = TypeVar("R", bound="Record")


@dataclass
class Record:
    """A stage's ``data.json``: subclasses list its fields."""

    STAGE: ClassVar[str]
    FILE: ClassVar[str] = "data.json"

    @classmethod
    def read(cls: type[R], folder: Path) -> R:
        data = json.loads((folder / cls.FILE).read_text())
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise AtlasError(f"{folder / cls.FILE}: fields {', '.join(unknown)} are not in the {cls.STAGE} "
                             f"artifact of store schema {SCHEMA}; sweep into a fresh cache (sweep.cache)")
        return cls(**data)

    def json(self) -> dict[str, Any]:
        """Its fields by name, in the order of the file (sorted), as a reader of the file sees them."""
        return {name: getattr(self, name) for name in sorted(f.name for f in dataclasses.fields(self))}


@dataclass
class Featurevis(Record):
    """A chunk of units' feature visualizations. Per unit (str) and variant
    (``channel``, ``neuron``, ``negative``, ``diversity-K``): the objective's value
    on the image, on its starting image and on the best random image."""

    STAGE: ClassVar[str] = "featurevis"
    units: list[int]
    activation: dict[str, dict[str, float]]
    start: dict[str, dict[str, float]]
    random: dict[str, dict[str, float]]
    failed: dict[str, list[str]]  # unit -> the variants that did not clearly raise their objective
    layer_mean: dict[str, float]  # unit -> the layer's own channel mean on its channel image
    response: str  # what the channel objective maximised
    param: str
    objectives: list[str]
    diversity: int
    size: int
    thumbnail: int

    @staticmethod
    def image(unit: int | str, variant: str = PRIMARY) -> str:
        """A named objective's name, or a user's ``package.module:name`` made a file name."""
        return f"{unit}.webp" if variant == PRIMARY else f"{unit}-{slug(variant)}.webp"

    @staticmethod
    def thumb(unit: int | str) -> str:
        return f"{unit}-thumb.webp"


@dataclass
class Weights(Record):
    STAGE: ClassVar[str] = "weights"
    units: list[int]
    kernel: list[int]
    stats: dict[str, dict[str, float]]  # unit -> kernel_stats' numbers (stages/weights/kernels.py), units with an answer
    no_answer: dict[str, str] = field(default_factory=dict)  # unit -> why its kernel is no answer (no image)
    # [top, left, side] of the input (``atlas.nn.affine.Region``) where the kernels are a
    # layer's gradients (it is affine in the pixels); None: a convolution's own weights
    region: list[int] | None = None

    @staticmethod
    def image(unit: int | str) -> str:
        return f"{unit}.webp"


@dataclass
class Examples(Record):
    """Per unit (str): {"top", "quantiles", "activation_quantiles", "histogram",
    "fraction_active", "dead", and "bottom" for an unrectified layer}; each example
    {"image", "value", "y", "x", "crop"?}."""

    STAGE: ClassVar[str] = "examples"
    units: dict[str, dict[str, Any]]
    grid: list[int]  # the feature map's height and width
    input_size: int
    response: str
    unrectified: bool
    receptive_field: dict[str, list[int]] | None
    images: dict[str, dict[str, str]]  # dataset index -> {"name", "label"}
    sample: int


@dataclass
class Tuning(Record):
    """Per unit (str): the tuning summary (``atlas.stages.tuning.summarize``), with
    ``joint`` when examples were rotated. Beside it ``responses.npy`` (stimuli x units)."""

    STAGE: ClassVar[str] = "tuning"
    units: dict[str, dict[str, Any]]
    stimuli: list[dict[str, Any]]  # the bank's parameters, one per stimulus
    extent: float
    effective: float
    centre: list[float]
    no_answer: str | None = None  # why no unit has an answer (each unit's summary says it too)
    RESPONSES: ClassVar[str] = "responses.npy"

    @staticmethod
    def stimulus(index: int) -> str:
        return f"s-{index}.webp"


@dataclass
class Null(Record):
    """The null networks' view of one layer (``atlas.stages.null``): beside it
    ``responses.npy`` (stimuli x null units: every channel of each network in turn),
    and for a first layer each null unit's kernel statistics (name -> one per unit)."""

    STAGE: ClassVar[str] = "null"
    kind: str  # "untrained twin" or "permuted kernels"
    why: str  # how the null networks were drawn, for the page
    networks: int
    seeds: list[int]
    channels: int  # null units per network
    calibration: str  # what their batch norm statistics were estimated on
    kernels: dict[str, list[float]] | None = None
    RESPONSES: ClassVar[str] = "responses.npy"


@dataclass
class Circuits(Record):
    """Weights from a source layer into a target layer, expanded through what lies
    between. Per target unit: {"inputs", "inhibitory", "edit"?}; per source unit:
    {"excitatory", "inhibitory"}; each edge {"index", "weight"}."""

    STAGE: ClassVar[str] = "circuits"
    source: str
    target: str
    connected: bool
    units: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    source_channels: int = 0
    units_order: list[int] = field(default_factory=list)  # rows of weights.npy
    kernel: list[int] = field(default_factory=list)
    passes: int = 0
    edit_k: int = 0
    random_draws: int = 0
    linearised: list[str] = field(default_factory=list)  # what the linear path set aside or held (its rules)
    no_answer: str | None = None  # why the weights are no answer (then there are none)
    WEIGHTS: ClassVar[str] = "weights.npy"  # (targets, source channels, height, width), float16


@dataclass
class Families(Record):
    """Per unit (str): {"family", "confidence", "scores", "metrics", "second",
    "second_score", "borderline", "dead"?...}; families in order, each {"symbol", "name",
    "kind", "description", "order_by", "members", "evidence", ...}."""

    STAGE: ClassVar[str] = "families"
    criteria: list[dict[str, Any]]
    confident: float
    units: dict[str, dict[str, Any]]
    families: list[dict[str, Any]]
    dead: list[int]
    possible: list[str] | None = None  # the named families the layer can show
    null: dict[str, Any] | None = None  # the null networks and what their units show (chance.label_layer)
    circuits_from: list[dict[str, Any]] = field(default_factory=list)
    unions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Polysemanticity(Record):
    """Per unit (str): {"score", "separation", "balance", "explained", "null",
    "null_spread", "purity", "clusters", "diversity"?}, or a null score."""

    STAGE: ClassVar[str] = "polysemanticity"
    units: dict[str, dict[str, Any]]
    grid: list[int]
    top: int
    balanced: float
    images: dict[str, dict[str, str]]


@dataclass
class MixingSummary(Record):
    """A model's polysemanticity across its layers (``atlas.stages.polysemantic.mixing``): per layer
    {"layer", "median", "mixed": [units], "agreement"}; spread features, each {"unit",
    "score", "layer", "next", "target", "uses": [[unit, weight]], "mixed"}."""

    STAGE: ClassVar[str] = "polysemanticity"
    FILE: ClassVar[str] = "summary.json"
    top: int
    layers: list[dict[str, Any]]
    spread: list[dict[str, Any]]


@dataclass
class ActivationAtlas(Record):
    """A layer's activation atlas: its sampled activation vectors laid out in 2-D and
    gridded. Each cell {"row", "column", "count", "labels": [[label, share]],
    "units": [[unit, strength]], "examples": [image], "activation", "start", "random",
    "failed"}, with its direction's feature visualization ``cell-R-C.webp``."""

    STAGE: ClassVar[str] = "atlas"
    layer: str
    method: str  # tsne | umap
    grid: int
    points: int  # vectors laid out (zero vectors left out)
    sampled: int  # vectors drawn
    images: dict[str, dict[str, str]]  # dataset index -> {"name", "label"}
    cells: list[dict[str, Any]]
    seconds: dict[str, float]  # sample, layout, featurevis
    trustworthiness: float | None  # of the layout, k = TRUST_K (sklearn.manifold.trustworthiness)
    response: str  # what the direction images maximised
    POINTS: ClassVar[str] = "layout.npy"  # (points, 2) in [0, 1], the vectors' places

    @staticmethod
    def image(row: int, column: int) -> str:
        return f"cell-{row}-{column}.webp"


@dataclass
class Dictionary(Record):
    STAGE: ClassVar[str] = "dictionary"
    layer: str
    features: int
    inputs: int
    samples: int
    steps: int
    l1: float
    explained_variance: float
    l0: float
    dead: int
    firing: list[float]
    MODEL: ClassVar[str] = "sae.pt"


@dataclass
class Superposition(Record):
    STAGE: ClassVar[str] = "superposition"
    stored_threshold: float
    geometry: dict[str, Any]
    capacity: dict[str, Any]


@dataclass
class UniversalityPair(Record):
    STAGE: ClassVar[str] = "universality"
    a: dict[str, Any]  # {"model", "layers": [{"name", "units"}]}
    b: dict[str, Any]
    cka_trained: list[list[float]]
    cka_random_b: list[list[float]]
    cka_random_a: list[list[float]]
    CORRELATIONS: ClassVar[str] = "correlations.npz"


@dataclass
class UniversalitySummary(Record):
    STAGE: ClassVar[str] = "universality"
    FILE: ClassVar[str] = "summary.json"
    margin: float
    matches: dict[str, Any]  # model -> layer -> unit -> [{"model", "layer", "index", "score", ...}]
    sets: list[dict[str, Any]]
    cka: list[dict[str, Any]]
    # Best buddies above chance that both have a named family: how often it is the same one,
    # against chance (``atlas.stages.polysemantic.mixing.family_agreement``); None without families.
    agreement: dict[str, Any] | None = None


@dataclass
class Measures(Record):
    """A per-unit stage's numbers (a stage registered with ``measures=True``): each unit's
    page shows them as a table under ``title``, and ``catalog.json`` lists them, with
    no render code of the stage's own."""

    STAGE: ClassVar[str] = "measures"  # any such stage: read with Measures.read(store.path(stage, key))
    title: str
    about: str  # one sentence: what the numbers are
    units: dict[str, dict[str, float | int | str | None]]  # unit -> {measure: value}


@dataclass
class DatasetScan(Record):
    STAGE: ClassVar[str] = "dataset"
    skipped: dict[str, str]  # file -> why it could not be read


THUMBNAILS = "thumbnails"  # a dataset's thumbnails: <index>.webp


def thumbnail(index: int | str) -> str:
    return f"{index}.webp"


def write(folder: Path, record: Record) -> None:
    """Write ``record`` as its artifact's JSON file in ``folder`` (a stage's temp folder)."""
    write_json(folder / record.FILE, record.json())
