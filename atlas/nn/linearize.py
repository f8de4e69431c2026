"""The linear path of a network, as expanded weights read it.

"Visualizing Weights" (Voss et al., 2021) sets the nonlinearities aside: the map from
one layer's output to a later layer's is made linear, and its gradient is then the
weight whatever the input. ``Linearized`` makes it so, by these rules:

- **Elementwise activations** (``ACTIVATIONS``: ReLU, ReLU6 and every clamp, the leaky and
  parametric ReLUs, ELU, SELU, CELU, GELU, SiLU, Mish, Hardswish, Softplus, ...) are the
  identity. Sigmoid and tanh are left as they are: they are gates more often than
  activations, and their slope at zero is not zero.
- **Max pools** average over the same windows; **local response norms** are the identity.
- **Per-sample normalisers** (layer, group and instance norm) keep their centring, and
  divide by a scale *held* at its mean over reference images (``Held``): at the blank
  probe their variance is zero, and dividing by it would blow the path up by 1/sqrt(eps).
- **Data-dependent gates**, a module whose output is its input times a factor that is
  constant over space and changes with the image (squeeze-and-excitation, as in
  EfficientNet-B0, MobileNetV3 and RegNetY), are held at their mean factor over the
  reference images. They are found by that property, not by name.
- **Attention** is left out: an attention pattern depends on the image, so no weight
  passes through it. Softmax and torch's attention functions give zero, and the path
  is the direct one, through the residual stream and the MLPs (the "direct path" of
  "A Mathematical Framework for Transformer Circuits", Elhage et al. 2021). Between
  layers that only attention connects every expanded weight is zero, and the circuits
  stage says so.
- Everything else (convolutions, linear layers, batch norm in eval mode, sums,
  concatenations) computes as it is.

``Linearized.seen`` records which rules a pass used, for the circuit page to say.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

ACTIVATIONS = {  # functional names (and their in-place forms) that become the identity
    "relu", "relu6", "hardtanh", "leaky_relu", "prelu", "rrelu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "hardswish", "softplus", "threshold", "clamp", "clamp_min", "clamp_max", "clip", "softsign", "softshrink",
    "hardshrink", "tanhshrink",
}
_IDENTITY = ACTIVATIONS | {f"{name}_" for name in ACTIVATIONS} | {"_threshold", "local_response_norm"}
_MAX_POOLS = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices"}
_POOL_ARGS = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_NORMS = {"layer_norm", "group_norm", "instance_norm"}
_ATTENTION = {"softmax", "_softmax", "scaled_dot_product_attention", "multi_head_attention_forward",
              "_native_multi_head_attention"}
GATE_TOLERANCE = 1e-3  # relative spread over space of a gate's factor


@dataclass
class Held:
    """Data-dependent factors held at their mean over reference images: each
    per-sample normaliser call's inverse scale (in call order, per group), and each
    gate module's factor (per channel)."""

    norms: list[torch.Tensor] = field(default_factory=list)
    gates: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def measure(cls, module: nn.Module, images: torch.Tensor) -> Held:
        """Run ``images`` (already normalised) through ``module`` once and keep the means."""
        held = cls()
        recorder = _NormRecorder(held.norms)
        handles = [m.register_forward_hook(_gate_probe(name, held.gates)) for name, m in module.named_modules() if name]
        try:
            with torch.no_grad(), recorder:
                module(images)
        finally:
            for handle in handles:
                handle.remove()
        return held

    @contextlib.contextmanager
    def gating(self, module: nn.Module, keep: tuple[str, ...] = ()) -> Iterator[list[str]]:
        """Inside: each held gate multiplies its input by its mean factor, except gates
        that are or hold a layer in ``keep`` (a source or a target must stay reachable).
        Yields the names of the gates held."""
        held = [name for name in self.gates if not any(k == name or k.startswith(name + ".") for k in keep)]
        modules = dict(module.named_modules())
        handles = [modules[name].register_forward_hook(
            lambda _m, inputs, _o, factor=self.gates[name]: inputs[0] * factor.to(inputs[0]).view(1, -1, 1, 1))
            for name in held]
        try:
            yield held
        finally:
            for handle in handles:
                handle.remove()


class Linearized(TorchFunctionMode):
    """Inside this mode a network computes its linear path (see the module's rules)."""

    def __init__(self, held: Held | None = None) -> None:
        super().__init__()
        self.held = held or Held()
        self.seen: set[str] = set()
        self._norm_calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _IDENTITY:
            self.seen.add(name.strip("_"))
            return args[0]
        if name in _MAX_POOLS:
            self.seen.add("max_pool2d")
            given = {**dict(zip(_POOL_ARGS, args)), **kwargs}
            pooled = F.avg_pool2d(given["input"], given["kernel_size"], given.get("stride") or given["kernel_size"],
                                  given.get("padding", 0), given.get("ceil_mode", False), count_include_pad=False)
            return (pooled, None) if given.get("return_indices") else pooled
        if name in _ATTENTION:
            self.seen.add("attention")
            return _without_attention(name, args, kwargs)
        if name in _NORMS:
            call, self._norm_calls = self._norm_calls, self._norm_calls + 1
            if call < len(self.held.norms) and _per_sample(name, args, kwargs):
                self.seen.add(name)
                return _held_norm(name, args, kwargs, self.held.norms[call])
        return func(*args, **kwargs)


def _without_attention(name: str, args, kwargs) -> torch.Tensor | tuple[torch.Tensor, None]:
    """What an attention call gives on the direct path: zero, in its output's shape, still
    a function of its inputs (so a layer that only attention reaches is seen to depend on
    the source, with weights of zero)."""
    query = args[0] if args else kwargs.get("input", kwargs.get("query"))
    if name in ("softmax", "_softmax"):
        return query * 0
    if name == "scaled_dot_product_attention":
        value = args[2] if len(args) > 2 else kwargs["value"]
        return query.new_zeros(*query.shape[:-1], value.shape[-1]) + 0 * value.sum()
    return query * 0, None  # multi-head attention: (output, weights)


class _NormRecorder(TorchFunctionMode):
    """Records each normaliser call's mean inverse scale over the batch (nothing changes)."""

    def __init__(self, into: list[torch.Tensor]) -> None:
        super().__init__()
        self.into = into

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _NORMS:
            name = func.__name__
            x, groups, dims, eps = _norm_layout(name, args, kwargs)
            grouped = x.reshape(x.shape[0], groups, -1) if dims is None else x
            variance = grouped.var(dim=-1 if dims is None else dims, unbiased=False)
            inverse = (variance + eps).rsqrt()
            self.into.append(inverse.mean(0).flatten().detach() if dims is None else inverse.mean().reshape(1))
        return func(*args, **kwargs)


def _norm_layout(name: str, args, kwargs) -> tuple[torch.Tensor, int, tuple[int, ...] | None, float]:
    """(input, groups, normalised dims (layer norm) or None (grouped), eps) of a normaliser call."""
    x = args[0] if args else kwargs["input"]
    if name == "layer_norm":
        shape = args[1] if len(args) > 1 else kwargs["normalized_shape"]
        eps = args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
        return x, 1, tuple(range(-len(tuple(shape)), 0)), eps
    if name == "group_norm":
        groups = args[1] if len(args) > 1 else kwargs["num_groups"]
        return x, groups, None, args[4] if len(args) > 4 else kwargs.get("eps", 1e-5)
    eps = args[7] if len(args) > 7 else kwargs.get("eps", 1e-5)
    return x, x.shape[1], None, eps  # instance norm: one group per channel


def _per_sample(name: str, args, kwargs) -> bool:
    if name != "instance_norm":
        return True
    return bool(args[5] if len(args) > 5 else kwargs.get("use_input_stats", True))


def _held_norm(name: str, args, kwargs, inverse: torch.Tensor) -> torch.Tensor:
    """The normaliser with its centring kept and its division by the held scale."""
    x, groups, dims, _ = _norm_layout(name, args, kwargs)
    if name == "layer_norm":
        weight = args[2] if len(args) > 2 else kwargs.get("weight")
        bias = args[3] if len(args) > 3 else kwargs.get("bias")
        out = (x - x.mean(dim=dims, keepdim=True)) * inverse.to(x)
        return out * (1 if weight is None else weight) + (0 if bias is None else bias)
    index = (2, 3) if name == "group_norm" else (3, 4)
    weight = args[index[0]] if len(args) > index[0] else kwargs.get("weight")
    bias = args[index[1]] if len(args) > index[1] else kwargs.get("bias")
    grouped = x.reshape(x.shape[0], groups, -1)
    out = ((grouped - grouped.mean(-1, keepdim=True)) * inverse.to(x).view(1, -1, 1)).reshape(x.shape)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return out * (1 if weight is None else weight.view(shape)) + (0 if bias is None else bias.view(shape))


def _gate_probe(name: str, gates: dict[str, torch.Tensor]):
    """A forward hook that keeps a module's mean factor when it acts as a gate: output =
    input × a factor constant over space (per image and channel) that changes with the image."""

    def hook(_module: nn.Module, inputs, output) -> None:
        if len(inputs) != 1 or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        x = inputs[0]
        if output is x or x.dim() != 4 or output.shape != x.shape or x.shape[0] < 2 or x.shape[2] * x.shape[3] < 4:
            return
        valid = x.abs() > 1e-6 * x.abs().amax().clamp_min(1e-30)
        ratio = torch.where(valid, output / torch.where(valid, x, 1), torch.nan).flatten(2)
        if valid.flatten(2).sum(-1).min() < 2:
            return
        top, bottom = ratio.nan_to_num(-torch.inf).amax(-1), ratio.nan_to_num(torch.inf).amin(-1)
        factor = ratio.nanmean(-1)  # (images, channels)
        if ((top - bottom) > GATE_TOLERANCE * factor.abs().clamp_min(1e-6)).any():
            return  # not constant over space: not a gate
        if (factor.std(0) <= GATE_TOLERANCE * factor.abs().mean(0).clamp_min(1e-6)).all():
            return  # the same for every image: a fixed scale, linear already
        gates[name] = factor.mean(0).detach()

    return hook
