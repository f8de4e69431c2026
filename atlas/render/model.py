"""Page models: what the templates and ``catalog.json`` are made from.

Plain dataclasses, filled by ``atlas.render.read`` from the sweep plan and the
artifacts: every model, layer and unit with the site-relative paths of its images.
Templates and the catalog both read them, so they always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atlas import registry
from atlas.artifacts import MixingSummary
from atlas.images import WEBP_SIDE


@dataclass
class Sprite:
    """One unit's crops in one image, stacked top to bottom (``atlas.images.sprite``): a
    page shows a tile through a window its size, so a unit's thirty crops are one file
    (each crop once, however many figures show it)."""

    path: str  # site path
    side: int = 64  # pixels on a side of a tile (the stages' crops)
    sources: list[Path | str] = field(default_factory=list)  # store files, in tile order
    tiles: dict[Any, int] = field(default_factory=dict)  # what a crop is of (its image, place) -> tile

    @property
    def full(self) -> bool:
        return len(self.sources) >= WEBP_SIDE // self.side

    def tile(self, key: Any, source: Path | str) -> int:
        """The tile of the crop ``key`` (``source`` stacked the first time it is asked for)."""
        if key not in self.tiles:
            self.tiles[key] = len(self.sources)
            self.sources.append(source)
        return self.tiles[key]


@dataclass
class Picture:
    """An image as a page shows it: a file, or one tile of a sprite."""

    src: str  # site path of the file (the sprite, for a tile)
    sprite: Sprite | None = None
    tile: int = 0

    @property
    def tiles(self) -> int:
        return len(self.sprite.sources) if self.sprite else 1

    @property
    def ref(self) -> str:
        """As ``catalog.json`` names it: the path, with ``#tile`` for a sprite's tile."""
        return f"{self.src}#{self.tile}" if self.sprite else self.src


@dataclass
class Example:
    image: int  # its number in the dataset
    src: str  # site-relative path of the whole image's thumbnail
    value: float
    name: str  # the image's name in the dataset
    label: str
    x: float  # where the unit fired, as a fraction of the image width
    y: float
    crop: Picture | None = None  # the receptive-field crop (top examples), a tile of the unit's sprite

    @property
    def picture(self) -> Picture:
        """The crop, or the whole image's thumbnail where there is none."""
        return self.crop or Picture(self.src)


@dataclass
class Variant:
    """A feature visualization other than the channel one (neuron, negative, diversity)."""

    kind: str  # neuron | negative | diversity-0 ...
    src: str
    activation: float
    failed: bool = False  # the image did not raise its objective clearly


@dataclass
class Edge:
    """A weight between two units: ``other`` is the unit at the other end."""

    other: "Unit"
    layer: str  # the other unit's layer
    weight: float  # the strongest weight of the map (the most negative, for inhibition)
    map: np.ndarray  # the expanded weight's spatial map (float32, height x width)


@dataclass
class Match:
    """A unit's best counterpart in another model (universality)."""

    model: str
    unit: "Unit"
    layer: str
    score: float  # correlation of the two units' activations on the same images
    chance: float  # the unit's best correlation with the other architecture with random weights
    buddy: bool  # each is the other's best match
    above_chance: bool


NAMED = 0.4  # a cluster is named after the thing under most of its examples when that is at least this share


@dataclass
class Meaning:
    """One cluster of a unit's strong examples."""

    size: int  # examples in it (of the unit's strongest, ``Polysemanticity.top``)
    examples: list[Example]  # the strongest few, cropped
    things: list[list[Any]]  # [[what is under the place it fired, share]], most common first
    labels: list[list[Any]]  # [[image label, share]]

    @property
    def name(self) -> str | None:
        """What most of its examples are on, if one thing is (at least NAMED of them)."""
        return self.things[0][0] if self.things and self.things[0][1] >= NAMED else None


@dataclass
class Polysemanticity:
    score: float  # higher = more mixed (see atlas.stages.polysemantic)
    separation: float
    balance: float
    purity: float  # share of the strong examples on the most common ground-truth object
    meanings: list[Meaning]
    diversity: float | None = None  # disagreement of the diversity visualizations, when made
    top: int = 0
    explained: float | None = None  # variance the split explains; and the same with channels shuffled
    null: float | None = None

    @property
    def distinct(self) -> bool:
        """Each cluster is mostly one thing, and not the same one (by the ground truth or labels)."""
        names = [m.name for m in self.meanings]
        return len(names) == 2 and None not in names and names[0] != names[1]


_RULE_WORDS = {
    "max_pool2d": "max pools averaged over their windows",
    "local_response_norm": "local response norms set aside",
    "layer_norm": "layer norms centred and divided by their mean scale over the dataset",
    "group_norm": "group norms centred and divided by their mean scale over the dataset",
    "instance_norm": "instance norms centred and divided by their mean scale over the dataset",
    "attention": "attention left out (the direct path: the residual stream and the MLPs)",
}


_ACTIVATION_NAMES = {"hardtanh": "ReLU6 (hardtanh)", "relu": "ReLU", "relu6": "ReLU6", "gelu": "GELU", "silu": "SiLU",
                     "hardswish": "hard swish", "leaky_relu": "leaky ReLU", "elu": "ELU", "selu": "SELU"}


def linearised_words(rules: list[str]) -> str:
    """``atlas.nn.linearize`` rules as a clause: "ReLU, ReLU6 (hardtanh) taken as the identity; max
    pools averaged over their windows; the gate ``se`` held at its mean over the dataset"."""
    activations = [_ACTIVATION_NAMES.get(r, r) for r in rules if r not in _RULE_WORDS and not r.startswith("gate ")]
    gates = [r.removeprefix("gate ") for r in rules if r.startswith("gate ")]
    parts = [f"{', '.join(activations)} taken as the identity"] if activations else []
    parts += [_RULE_WORDS[r] for r in rules if r in _RULE_WORDS]
    if gates:
        parts.append(f"the gate{'s' if len(gates) > 1 else ''} {', '.join(gates)} held at "
                     f"{'their' if len(gates) > 1 else 'its'} mean over the dataset")
    return "; ".join(parts)


@dataclass
class Unit:
    index: int
    url: str
    featurevis: str | None = None
    featurevis_thumb: str | None = None
    featurevis_activation: float | None = None
    featurevis_start: float | None = None  # the same objective on the starting image
    featurevis_random: float | None = None  # ... and on the best of a few random images
    featurevis_failed: bool = False  # the image did not raise its objective clearly
    featurevis_objective: str | None = None  # what the channel objective maximised
    dead: bool = False  # never active on the dataset
    dead_reason: str = "never active on the dataset"  # why its numbers are noise
    variants: list[Variant] = field(default_factory=list)
    weights: str | None = None
    weights_no_answer: str | None = None  # why its kernel is no answer (not finite, all zero)
    weights_side: int | None = None  # pixels a side of its kernel where it is a gradient (an affine layer)
    examples: list[Example] = field(default_factory=list)  # strongest first, no two of one place
    duplicates: int = 0  # near-duplicates of a stronger example, left out of ``examples``
    quantiles: list[list[Example]] = field(default_factory=list)  # tenths of the range, top first
    activation_quantiles: list[float] = field(default_factory=list)  # 0%, 10%, ..., 100%
    histogram: dict[str, list[float]] | None = None
    fraction_active: float | None = None
    negative_examples: list[Example] = field(default_factory=list)  # an unrectified layer's most negative
    unrectified: bool = False  # its layer is signed and no activation follows: no "active", two ends
    through_attention: bool = False  # a token layer: its field is the whole image, its crops the patch and neighbours
    tuning: dict[str, Any] | None = None  # summary numbers, preferred stimuli, orientation curves
    takeover: list[dict[str, Any]] = field(default_factory=list)  # joint tuning: units owning each angle
    prev_url: str | None = None
    next_url: str | None = None
    family: "Family | None" = None
    family_confidence: float | None = None
    # The best-scoring named family other than its own, its score, and whether the two are close.
    family_second: dict[str, Any] | None = None
    # Its label against the null (``atlas.stages.families.chance``): {"family" tested, "criteria" (what the criteria
    # alone said), "statistic", "p", "q", "passed", "null": {"meets", "p95", "max"}}; None: not tested.
    family_test: dict[str, Any] | None = None
    # Circuits: strongest inputs from the swept layer before, uses in the one after.
    inputs: list[Edge] = field(default_factory=list)
    inhibitory: list[Edge] = field(default_factory=list)
    outputs: list[Edge] = field(default_factory=list)
    outputs_inhibitory: list[Edge] = field(default_factory=list)
    edit: dict[str, Any] | None = None  # the drop when its top inputs are removed, and for random ones
    # The circuits artifact into this unit: {"source", "linearised" (the linear path's rules,
    # ``atlas.nn.linearize``), "no_answer" (why there are no weights, or None)}; None: none swept.
    circuit: dict[str, Any] | None = None
    union: list["Unit"] = field(default_factory=list)  # two mirror-image inputs this unit unions, if it does
    matches: list[Match] = field(default_factory=list)  # best counterpart per other model, best first
    polysemanticity: Polysemanticity | None = None
    polysemanticity_no_answer: str | None = None  # why it has no score (its strongest responses are all equal)
    # Per-unit stages without render code of their own: [{"stage", "title", "about", "values"}].
    measures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tile(self) -> tuple[Picture, str] | None:
        """(the image, what it is) of the unit's tile on grids: its feature visualization
        even where that failed (the tile dims it and says so), else its weights, else its
        strongest dataset example."""
        if self.featurevis_thumb:
            return Picture(self.featurevis_thumb), "feature visualization"
        if self.weights:
            return Picture(self.weights), "weights"
        if self.examples:
            return self.examples[0].picture, "top dataset example"
        return None

    @property
    def picture(self) -> tuple[Picture, str] | None:
        """(the image, what it is) that stands for the unit in small: its
        feature visualization, unless that failed (a grey square shows nothing it
        detects), else its weights, else its strongest dataset example."""
        if self.featurevis_failed:
            return (Picture(self.weights), "weights") if self.weights else \
                (self.examples[0].picture, "top dataset example") if self.examples else None
        return self.tile

    @property
    def other_objectives(self) -> list[tuple[str, str]]:
        """Each objective of its other images once, in the registry's order (the user's
        after), with what the page says it does (``registry.Objective.caption``)."""
        kinds = {registry.objective_of(variant.kind) for variant in self.variants}
        ordered = [kind for kind in registry.OBJECTIVES if kind in kinds] + sorted(kinds - set(registry.OBJECTIVES))
        return [(kind, registry.objective(kind).caption) for kind in ordered]

    @property
    def circuit_rules(self) -> str:
        """The linear path's rules into this unit, in words (empty: none applied)."""
        return linearised_words((self.circuit or {}).get("linearised", []))

    @property
    def circuit_url(self) -> str | None:
        if not (self.inputs or self.inhibitory or self.outputs or self.outputs_inhibitory):
            return None
        folder, _, name = self.url.rpartition("/")
        return f"{folder}/circuits/{name}"


@dataclass
class Family:
    """A family in one layer: a cell of the periodic table, with its own page."""

    symbol: str
    name: str
    layer: str
    kind: str  # named | discovered
    description: str
    url: str
    members: list[Unit]  # in the family's order (orientation, hue or confidence)
    share: float  # of the layer's swept units
    representative: Unit
    order_by: str
    evidence: list[dict[str, Any]]  # the seven arguments in order: {id, argument, verdict, value, rule}
    confidence: float | None = None  # the members' median confidence
    borderline: int = 0  # members whose runner-up family scores within a margin of their own
    # How the layer's null units do on this family: {"meets": its criteria, "passed": the same test, "units"}.
    null: dict[str, Any] | None = None
    handwritten_scatter: dict[str, list[float]] | None = None  # the representative's and its detector's responses
    # Grids of weights from the previous layer's families: {source, source_name, strength, equivariance,
    # rows (Units of this family), columns (Units of the source family), maps}.
    circuits_from: list[dict[str, Any]] = field(default_factory=list)

    @property
    def glimpse(self) -> list[Unit]:
        """Up to three members with a picture, for the periodic table's element: the most
        typical first, then members spread across the family's order."""
        pictured = [u for u in self.members if u.picture and u is not self.representative]
        spread = [pictured[0], pictured[-1]] if len(pictured) > 1 else pictured
        return ([self.representative] if self.representative.picture else []) + spread


@dataclass
class AtlasCell:
    """One cell of an activation atlas: a feature visualization of its mean activation."""

    row: int
    column: int
    count: int  # activation vectors in it
    src: str  # its direction's feature visualization
    failed: bool  # the image did not clearly raise its objective
    labels: list[list[Any]]  # [[dataset label, share of its vectors]]
    units: list[tuple[Unit | None, int, float]]  # the units carrying it most: (page, index, strength)
    images: list[tuple[str, str]]  # (thumbnail, name) of the images its vectors come from, nearest its centre first


@dataclass
class ActivationAtlas:
    """A layer's activation atlas (Carter et al. 2019): its sampled activations laid out and gridded."""

    url: str
    method: str
    grid: int
    points: int
    sampled: int
    cells: list[AtlasCell]
    seconds: dict[str, float]
    trustworthiness: float | None


@dataclass
class Layer:
    name: str
    url: str
    shape: list[int]
    units: list[Unit]
    families: list[Family] = field(default_factory=list)
    prev_url: str | None = None  # the model's previous and next swept layers
    next_url: str | None = None
    dictionary: dict[str, Any] | None = None  # a dictionary's features: its training numbers, {"of": layer}
    # Named families this layer cannot show (a first layer's linear filters, or a field too small for them).
    impossible: list[str] = field(default_factory=list)
    atlas: ActivationAtlas | None = None
    # The null its labels were tested against (``stages.families.chance.label_layer``): kind, why, networks, units,
    # calibration, rate, meets and passed per family; None: labels not tested.
    null: dict[str, Any] | None = None

    def family(self, symbol: str) -> Family | None:
        return next((f for f in self.families if f.symbol == symbol), None)

    @property
    def discovered(self) -> list[Family]:
        return [f for f in self.families if f.kind == "discovered"]

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass
class Model:
    name: str
    slug: str
    url: str
    arch: str
    weights: str
    digest: str
    input_size: int
    layers: list[Layer]
    criteria: list[dict[str, Any]] = field(default_factory=list)  # the named families, as the sweep defined them
    dictionaries: list[Layer] = field(default_factory=list)  # sparse dictionaries' features, as pseudo-layers
    mixing: MixingSummary | None = None  # the polysemanticity stage's summary of the model

    @property
    def polysemanticity_url(self) -> str | None:
        if not any(u.polysemanticity for layer in self.layers for u in layer.units):
            return None
        return f"models/{self.slug}/polysemanticity.html"

    @property
    def families_url(self) -> str:
        return f"models/{self.slug}/families.html"

    @property
    def columns(self) -> list[dict[str, Any]]:
        """The periodic table's named-family columns: those found in some layer, in definition order."""
        found = {f.symbol for layer in self.layers for f in layer.families}
        return [c for c in self.criteria if c["symbol"] in found]


@dataclass
class Universality:
    """What the universality page shows: matched sets of units across models, and the
    layer-by-layer CKA of every pair of models."""

    url: str
    margin: float  # a match counts when it beats its chance level by this much
    sets: list[dict[str, Any]]  # {"units": [(model name, layer name, Unit)], "score"}
    cka: list[dict[str, Any]]  # {"a", "b", "layers_a", "layers_b", "trained", "random"}
    # Named families x models: {"symbol", "name", "cells": [(Model, [Family per layer it appears in])], "models"}
    families: list[dict[str, Any]] = field(default_factory=list)
    # Best buddies above chance whose units both have a named family: how often it is the same one,
    # against how often it would be if families were drawn independently: {"pairs", "same", "expected"}.
    agreement: dict[str, Any] | None = None


@dataclass
class SiteModel:
    models: list[Model]
    data: dict[str, Any] | None
    copies: dict[str, Path | str] = field(default_factory=dict)  # site path -> store file
    recoded: dict[str, tuple[Path | str, int]] = field(default_factory=dict)  # site path -> (store file, quality)
    sprites: dict[str, Sprite] = field(default_factory=dict)  # site path -> the crops stacked in it
    images: dict[int, list[str]] = field(default_factory=dict)  # dataset image shown -> [name, label]
    universality: Universality | None = None
    superposition: dict[str, Any] | None = None  # the toy models' results, when trained

    @property
    def superposition_url(self) -> str | None:
        return "superposition.html" if self.superposition else None

    @property
    def symbols(self) -> list[str]:
        """Named families found in any model, in definition order: the combined table's columns."""
        return list(dict.fromkeys(c["symbol"] for m in self.models for c in m.columns))
