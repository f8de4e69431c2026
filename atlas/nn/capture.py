"""Capture the activations of many layers in one forward pass.

Layers are addressed by their dotted ``named_modules()`` names. ``capture`` hooks
exactly the requested modules (never every submodule), clones what they output
(torchvision's ResNet reuses one in-place ReLU several times per block, so an
uncloned tensor would be overwritten), and stops the forward pass as soon as the
last requested layer has produced its output: layers past it are never computed.
Hooks are registered in ``try`` and removed in ``finally``, whatever happens.

A transformer's token layer is returned as a map (``atlas.nn.tokens``): (B, tokens,
features) as (B, features, grid height, grid width), so every stage reads its features
at their patches as it reads a convolution's channels at their positions.

A module called more than once in a forward pass is captured at its first call.
``layer_inputs`` stops at a layer's input instead (feature visualization computes
the layer itself in part: ``atlas.nn.narrow``).
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Sequence

import torch
from torch import nn

from atlas.errors import AtlasError
from atlas.nn.tokens import Grid, as_map, grid_of


class _EnoughLayers(Exception):
    """Raised from a hook to end the forward pass early; never escapes `capture`."""


def device_of(module: nn.Module) -> torch.device:
    """Where a module's parameters are (the CPU for one without any)."""
    return next(iter(module.parameters()), torch.zeros(())).device


def find_modules(model: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    """The modules named by ``layers``; an unknown name is an error with suggestions."""
    modules = dict(model.named_modules())
    found = {}
    for name in layers:
        if name not in modules or name == "":
            close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise AtlasError(f"layer {name!r} is not a module of this model{hint}; "
                             f"`atlas layers ARCH` lists them")
        found[name] = modules[name]
    return found


def capture(model: nn.Module, x: torch.Tensor, layers: Sequence[str], *,
            detach: bool = True, stop_early: bool = True, as_maps: bool = True,
            reduce: Callable[[str, torch.Tensor], Any] | None = None) -> dict[str, Any]:
    """Run ``model(x)`` and return ``{layer: output}`` for each requested layer.

    With ``detach=False`` the outputs stay in the autograd graph (for feature
    visualization); with ``stop_early`` the pass ends after the last layer needed;
    with ``as_maps=False`` a token layer's output is returned in its own layout.
    With ``reduce``, each output is replaced by ``reduce(layer, output)``, computed
    in the hook: a summary of a large map costs no copy of the map (and needs none,
    as nothing can overwrite the output before the hook returns).
    """
    wanted = find_modules(model, layers)
    outputs: dict[str, Any] = {}
    size = x.shape[-1]

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            if name in outputs:
                return
            tensor = output.detach() if detach else output
            tensor = as_map(tensor, size) if as_maps else tensor
            outputs[name] = reduce(name, tensor) if reduce is not None else tensor.clone()
            if stop_early and len(outputs) == len(wanted):
                raise _EnoughLayers
        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in wanted.items()]
    try:
        model(x)
    except _EnoughLayers:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in layers if name not in outputs]
    if missing:
        raise AtlasError(f"layers {missing} were never called in the forward pass "
                         f"(a module defined but not used by forward()?)")
    return {name: outputs[name] for name in layers}


def layer_inputs(model: nn.Module, x: torch.Tensor, layer: str) -> tuple:
    """The positional inputs ``layer`` receives at its first call in ``model(x)``; the
    forward pass stops there, so the layer itself is not computed."""
    module = find_modules(model, [layer])[layer]
    seen: list[tuple] = []

    def hook(module: nn.Module, inputs) -> None:
        seen.append(inputs)
        raise _EnoughLayers

    handle = module.register_forward_pre_hook(hook)
    try:
        model(x)
    except _EnoughLayers:
        pass
    finally:
        handle.remove()
    if not seen:
        raise AtlasError(f"layer {layer!r} was never called in the forward pass")
    return seen[0]


def layer_grid(model: nn.Module, layer: str, x: torch.Tensor) -> Grid | None:
    """The token layout of ``layer``'s output on input ``x`` (None: not a token layer)."""
    with torch.no_grad():
        output = capture(model, x, [layer], as_maps=False)[layer]
    return grid_of(tuple(output.shape[1:]), x.shape[-1])


def describe_layers(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Every named module with its type, output shape as Atlas reads it (a token layer as
    a map, ``grid`` its layout) and call count (for `atlas layers`)."""
    records: dict[str, dict] = {}

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            record = records.setdefault(name, {"name": name, "type": type(module).__name__,
                                               "shape": None, "grid": None, "calls": 0})
            record["calls"] += 1
            if record["shape"] is None and isinstance(output, torch.Tensor):
                record["grid"] = grid_of(tuple(output.shape[1:]), x.shape[-1])
                record["shape"] = tuple(as_map(output, x.shape[-1]).shape[1:])
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    return sorted(records.values(), key=lambda r: order[r["name"]])
