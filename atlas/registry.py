"""The stages Atlas knows, in the order a sweep runs them (no torch: the config reads it).

A ``Stage`` says what it runs over (``scope``), whether it needs the dataset, which
stages' artifacts it reads (those run first), and where its ``run`` lives, imported
only when the stage runs. The calling convention follows the scope:

- ``layer``: ``run(ctx, model, layer) -> [keys]`` for each swept layer (an empty list:
  nothing for this layer);
- ``model``: ``run(ctx, model, layers) -> {layer: [keys]}`` (or ``Made``, when it
  derives layers the sweep then treats as a model's own, as a dictionary's features);
- ``atlas``: ``run(ctx, plan)`` after every model, across them; what it returns (a key,
  or JSON of keys) goes into the plan under the stage's name.

To add a stage, write its module and add one line to ``STAGES`` (docs/architecture.md,
"How to add a stage").
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

SCOPES = ("layer", "model", "atlas")


@dataclass(frozen=True)
class Stage:
    name: str
    scope: str  # layer | model | atlas
    run: str | Callable[..., Any]  # "module:function", or the function itself
    needs_dataset: bool = False  # skipped (with nothing made) when the config has no [data]
    uses_dataset: bool = False  # reads the dataset when there is one (implied by needs_dataset)
    reads: tuple[str, ...] = ()  # stages whose artifacts of the same model it reads
    derived: bool = False  # also runs over derived layers (a dictionary's features)
    default: bool = True  # in a config's default stage list
    measures: bool = False  # its artifacts are ``atlas.artifacts.Measures``: shown on unit pages as they are
    requires: tuple[str, ...] = ()  # stages that run whenever this one does, listed or not

    def runner(self) -> Callable[..., Any]:
        if callable(self.run):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)

    def cost_model(self) -> Callable[..., Any] | None:
        """The ``cost`` function beside the stage's ``run`` (``atlas.stages.Measured``
        in, ``atlas.stages.Cost`` or None out), or None where it has none."""
        module = self.run.__module__ if callable(self.run) else self.run.partition(":")[0]
        return getattr(importlib.import_module(module), "cost", None)


STAGES: list[Stage] = [
    Stage("featurevis", "model", "atlas.stages.featurevis:run", derived=True),
    Stage("weights", "layer", "atlas.stages.weights:run"),
    Stage("examples", "model", "atlas.stages.examples:run", needs_dataset=True, derived=True),
    Stage("tuning", "model", "atlas.stages.tuning:run", reads=("examples",)),
    Stage("circuits", "model", "atlas.stages.circuits:run", reads=("tuning", "examples")),
    Stage("null", "model", "atlas.stages.null:run", uses_dataset=True, reads=("weights", "tuning")),
    Stage("families", "model", "atlas.stages.families:run",
          reads=("featurevis", "weights", "examples", "tuning", "circuits", "null"), requires=("null",)),
    Stage("polysemanticity", "model", "atlas.stages.polysemantic:run", needs_dataset=True, reads=("featurevis",)),
    Stage("atlas", "model", "atlas.stages.activation_atlas:run", needs_dataset=True, default=False),
    Stage("dictionary", "model", "atlas.stages.dictionary:run", needs_dataset=True),
    Stage("universality", "atlas", "atlas.stages.universality:run", uses_dataset=True, reads=("families",)),
    Stage("superposition", "atlas", "atlas.stages.superposition:run"),
]


@dataclass(frozen=True)
class Objective:
    """How feature visualization lays out and reports an objective (its value is
    ``atlas.optvis.objectives``'), and what the unit page says of it."""

    name: str
    caption: str  # on the unit page, after the objective's name
    negative: bool = False  # minimises the unit's signed value (what turns it off): its activation is reported
    grouped: bool = False  # ``featurevis.diversity`` images per unit, pushed apart (lucent's diversity)
    along: bool = False  # a given direction of the whole layer, not a unit (an activation atlas cell)
    extra_token: bool = False  # reads a token layer's class token: only layers that have one get its image


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("channel", "excites the whole channel (the mean over space)"),
    Objective("neuron", "excites only the centre position"),
    Objective("negative", "minimises the channel (its activation is shown)", negative=True),
    Objective("diversity", "images excite the unit while differing from each other, showing the different things "
                           "it responds to", grouped=True),
    Objective("class_token", "excites the unit at the class token, the token a vision transformer's classifier "
                             "reads (it sees every patch through attention)", extra_token=True),
    Objective("direction", "excites a direction of the whole layer", along=True),
)}


def objective(kind: str) -> Objective:
    """A named objective's record, or a user's (``package.module:name``, an
    ``atlas.optvis.objectives.Objective``): one image per unit, reported as it is."""
    return OBJECTIVES.get(kind) or Objective(kind, "is an objective this config defines")
PRIMARY = "channel"  # the objective whose image stands for the unit: thumbnail, its families' first argument
PARAMETERISATIONS = ("fft", "maco")  # how feature visualization parameterises its images (``atlas.optvis``)


def variant(kind: str, index: int) -> str:
    """The name of one image of an objective: the objective's own name, or for a grouped
    one (diversity) the objective and which image of the group it is: ``diversity-2``."""
    return f"{kind}-{index}" if objective(kind).grouped else kind


def objective_of(name: str) -> str:
    """The objective a variant's name (``variant``) is an image of."""
    kind, _, index = name.rpartition("-")
    return kind if index.isdigit() and kind in OBJECTIVES else name


def names() -> tuple[str, ...]:
    return tuple(stage.name for stage in STAGES)


def defaults() -> tuple[str, ...]:
    return tuple(stage.name for stage in STAGES if stage.default)


def stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def ordered(wanted: tuple[str, ...] | list[str]) -> list[Stage]:
    """The stages asked for and those they require, in the order that lets each read
    what it needs."""
    wanted = set(wanted)
    for s in reversed(STAGES):  # a stage's requirements come before it
        if s.name in wanted:
            wanted.update(s.requires)
    return [s for s in STAGES if s.name in wanted]


def check() -> None:
    """Every stage reads only stages before it, and has a known scope."""
    seen: set[str] = set()
    for s in STAGES:
        assert s.scope in SCOPES, f"{s.name}: unknown scope {s.scope!r}"
        assert set(s.reads) <= seen, f"{s.name} reads {set(s.reads) - seen}, which run after it"
        seen.add(s.name)
