"""Redirected rectifier gradients: feature visualization that cannot start dead.

An image optimised through a ReLU whose input is negative everywhere gets no
gradient: every unit of the layer before is silent on the starting image (a small
negative bias suffices), the ReLUs pass nothing, and the image never changes. Lucid's
answer (``lucid/misc/redirected_relu_grad.py``) is to let the gradient through a
rectifier where the true one is zero, but only in the direction that would bring the
input back into the active range, and only for images (batch elements) that get no
gradient at all through it; after the first steps the true gradient takes over, so
the final image is optimised for the network as it is.

``redirected_rectifiers()`` is a ``TorchFunctionMode`` that does this for every
rectifier a forward pass calls, whatever the model's code looks like: ``nn.ReLU``,
``F.relu``, ``Tensor.relu``, ``nn.ReLU6`` and ``F.hardtanh``, ``clamp`` with a number
for a bound, hard swish, and GELU, SiLU and ELU (whose gradients vanish far below zero). In-place
variants are computed out of place (the result is what the model uses either way).

A batch element is *silent* at a rectifier when none of its inputs lies in the range
``(low, high)`` where the rectifier passes its gradient (below zero for a ReLU; below
zero or above six for a ReLU6; below zero for GELU, SiLU and ELU, whose gradients
vanish far below it). Found in the forward pass, so a rectifier with no silent element
runs as it is, with its own backward. A silent element's gradient, for rectifier input
``x`` and incoming gradient ``g`` (of a loss that is minimised), is ``g``, except where
it would push ``x`` further out of range (``x < low`` and ``g > 0``, or ``x > high``
and ``g < 0``), where it is zero; every other element keeps the true gradient.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _Redirected(torch.autograd.Function):
    """``forward(x)``, whose backward is redirected for the silent elements."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rectifier: "Rectifier", silent: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, silent)
        ctx.rectifier = rectifier
        return rectifier.forward(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, silent = ctx.saved_tensors
        r = ctx.rectifier
        if r.piecewise:  # slope 1 inside the range, 0 outside: no need to differentiate
            true = grad * _inside(x, r)
        else:
            with torch.enable_grad():
                leaf = x.detach().requires_grad_(True)
                (true,) = torch.autograd.grad(r.forward(leaf), leaf, grad)
        blocked = torch.zeros_like(x, dtype=torch.bool)
        if r.low is not None:
            blocked |= (x < r.low) & (grad > 0)
        if r.high is not None:
            blocked |= (x > r.high) & (grad < 0)
        redirected = grad.masked_fill(blocked, 0)
        return torch.where(silent.view(-1, *([1] * (x.dim() - 1))), redirected, true), None, None


def _inside(x: torch.Tensor, r: "Rectifier") -> torch.Tensor:
    """Where the rectifier passes its gradient."""
    inside = torch.ones_like(x, dtype=torch.bool)
    if r.low is not None:
        inside &= x > r.low
    if r.high is not None:
        inside &= x < r.high
    return inside


def _bound(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class Rectifier:
    """A rectifier call: its out-of-place function of the input, and the range outside
    which its derivative vanishes (None: it does not vanish on that side)."""

    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    low: float | None
    high: float | None
    piecewise: bool = False  # slope 1 between low and high, 0 outside (ReLU, ReLU6, clamps)


def rectifier_call(func: Callable, args: tuple, kwargs: dict) -> Rectifier | None:
    """The rectifier that ``func(*args, **kwargs)`` applies to ``args[0]``, or None."""
    rest = {k: v for k, v in kwargs.items() if k != "inplace"}

    def arg(i: int, name: str, default: Any = None) -> Any:
        return args[i] if len(args) > i else rest.get(name, default)

    if func in _RELUS:
        return Rectifier("ReLU", torch.relu, 0.0, None, True)
    if func is F.relu6:
        return Rectifier("ReLU6", F.relu6, 0.0, 6.0, True)
    if func is F.hardtanh:
        low, high = arg(1, "min_val", -1.0), arg(2, "max_val", 1.0)
        name = "ReLU6" if (low, high) == (0, 6) else f"hardtanh({low:g}, {high:g})"
        return Rectifier(name, lambda x: F.hardtanh(x, low, high), _bound(low), _bound(high), True)
    if func in _CLAMPS:
        low, high = arg(1, "min"), arg(2, "max")
        if func in (torch.clamp_min, torch.Tensor.clamp_min, torch.Tensor.clamp_min_):
            high = None
        if not all(b is None or isinstance(b, (int, float)) for b in (low, high)) or (low is None and high is None):
            return None  # tensor bounds: not a rectifier
        return Rectifier(f"clamp({low}, {high})", lambda x: torch.clamp(x, low, high), _bound(low), _bound(high),
                         True)
    if func is F.hardswish:
        return Rectifier("hard swish", F.hardswish, -3.0, None)
    if func is F.gelu:
        approximate = arg(1, "approximate", "none")
        return Rectifier("GELU", lambda x: F.gelu(x, approximate=approximate), 0.0, None)
    if func is F.silu:
        return Rectifier("SiLU", F.silu, 0.0, None)
    if func is F.elu:
        alpha = arg(1, "alpha", 1.0)
        return Rectifier("ELU", lambda x: F.elu(x, alpha), 0.0, None)
    if func is F.leaky_relu:
        slope = arg(1, "negative_slope", 0.01)
        return Rectifier("leaky ReLU", lambda x: F.leaky_relu(x, slope), None, None)
    return None


_RELUS = {F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}
_CLAMPS = {torch.clamp, torch.clip, torch.clamp_min, torch.Tensor.clamp, torch.Tensor.clamp_, torch.Tensor.clip,
           torch.Tensor.clamp_min, torch.Tensor.clamp_min_}


class _RedirectMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        found = rectifier_call(func, args, kwargs) if args and isinstance(args[0], torch.Tensor) else None
        passes = found is not None and (found.low is not None or found.high is not None)
        if not passes or not args[0].requires_grad or args[0].dim() == 0:
            return func(*args, **kwargs)
        x = args[0]
        silent = ~_inside(x.detach(), found).reshape(len(x), -1).any(1)
        if not silent.any():  # the common case once the optimisation is under way
            return func(*args, **kwargs)
        return _Redirected.apply(x, found, silent)


@contextlib.contextmanager
def redirected_rectifiers(enabled: bool = True) -> Iterator[None]:
    """Within this block, rectifiers' gradients are redirected (see the module's docstring)."""
    if not enabled:
        yield
        return
    with _RedirectMode():
        yield
