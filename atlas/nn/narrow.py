"""Compute only the channels feature visualization optimises.

A channel objective reads one channel of the target layer per batch element, yet a
layer computes all of them: an Inception block runs four branches ending in
convolutions of up to 384 output channels. ``narrow_layer`` traces the layer's
module with ``torch.fx`` and evaluates its graph backwards from the output for each
element's channel:

- a concatenation over channels sends each element to the input that holds its
  channel, so only that branch runs, and only on those elements;
- per-channel operations (activations, pooling, eval-mode batch norm, sums and
  products of equal shapes) pass the channel through to their inputs;
- a convolution computes only the channels asked for: ``conv(x, W[channels])`` gives
  each of the n elements all n asked-for channels (n x n maps instead of n x out)
  and the diagonal is kept; from n >= out channels on, the full convolution is cheaper;
- anything else is computed in full (on its elements only) and indexed.

The result equals ``layer(x)[i, channels[i]]``, and ``narrow_layer`` checks that on
the first inputs it sees, falling back to the full layer if it does not hold (a graph
whose in-place operations alias, say). A module ``torch.fx`` cannot trace, with
several inputs, or with a non-spatial output is not narrowed at all.
"""

from __future__ import annotations

import logging
import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

log = logging.getLogger(__name__)

Rows = tuple[int, ...]

PER_CHANNEL_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                       nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d)
PER_CHANNEL_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6, F.leaky_relu, F.elu, F.gelu,
                         F.silu, torch.sigmoid, torch.tanh, F.max_pool2d, F.avg_pool2d, F.dropout}
PER_CHANNEL_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
ELEMENTWISE_BINARY = {operator.add, operator.iadd, torch.add, operator.mul, operator.imul, torch.mul}
IN_PLACE = {operator.iadd: operator.add, operator.imul: operator.mul, torch.relu_: torch.relu, F.relu_: F.relu}


class NarrowedLayer:
    """``module(x)[i, channels[i]]`` for every element i of a batch, as (N, 1, H, W)."""

    def __init__(self, module: nn.Module, channels: Sequence[int]):
        self.graph_module = fx.symbolic_trace(nn.Sequential(module))
        self.modules = dict(self.graph_module.named_modules())
        self.channels = tuple(int(c) for c in channels)
        self.output = next(n for n in self.graph_module.graph.nodes if n.op == "output").args[0]
        self._indices: dict[tuple, torch.Tensor] = {}
        self._full: dict[tuple[str, Rows], torch.Tensor] = {}
        self._input: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._input, self._full = x, {}
        try:
            return self._narrow(self.output, tuple(range(len(self.channels))), self.channels)
        finally:
            self._input, self._full = None, {}

    # -- the graph, evaluated for some elements (rows) at one channel each ------------

    def _narrow(self, node: fx.Node, rows: Rows, channels: Rows) -> torch.Tensor:
        """Node's output at ``channels[k]`` for element ``rows[k]``: (len(rows), 1, H, W)."""
        if node.op == "placeholder":
            return self._pick(self._input, rows, channels)
        if _is_channel_cat(node):
            return self._narrow_cat(node, rows, channels)
        if node.op == "call_module":
            module = self.modules[node.target]
            if isinstance(module, PER_CHANNEL_MODULES):
                return module(self._narrow(node.args[0], rows, channels))
            if isinstance(module, nn.Conv2d) and module.groups == 1 and len(rows) < module.out_channels:
                return self._narrow_conv(module, self._eval(node.args[0], rows), channels)
            if isinstance(module, nn.BatchNorm2d) and not module.training and module.track_running_stats:
                return _batch_norm_channels(module, self._narrow(node.args[0], rows, channels),
                                            self._index(channels))
        if _per_channel_call(node):
            return _call(node, self._narrow(node.args[0], rows, channels))
        if node.op == "call_function" and node.target in ELEMENTWISE_BINARY and _same_shapes(node):
            left, right = (self._narrow(arg, rows, channels) for arg in node.args[:2])
            return IN_PLACE.get(node.target, node.target)(left, right)
        return self._pick(self._eval(node, rows), tuple(range(len(rows))), channels)

    def _narrow_cat(self, node: fx.Node, rows: Rows, channels: Rows) -> torch.Tensor:
        """Each element from the input of the concatenation that holds its channel."""
        parts, order, start = [], [], 0
        for part in node.args[0]:
            end = start + part.meta["tensor_meta"].shape[1]
            mine = [k for k, c in enumerate(channels) if start <= c < end]
            if mine:
                parts.append(self._narrow(part, tuple(rows[k] for k in mine), tuple(channels[k] - start for k in mine)))
                order += mine
            start = end
        joined = torch.cat(parts) if len(parts) > 1 else parts[0]
        if order == sorted(order):
            return joined
        return joined[self._index(tuple(sorted(range(len(order)), key=order.__getitem__)))]

    def _narrow_conv(self, conv: nn.Conv2d, x: torch.Tensor, channels: Rows) -> torch.Tensor:
        """Only the asked-for output channels: all of them for every element, then the diagonal."""
        index = self._index(channels)
        bias = None if conv.bias is None else conv.bias[index]
        out = conv._conv_forward(x, conv.weight[index], bias)  # (n, n, H, W)
        diagonal = self._index(tuple(range(len(channels))))[:, None]
        return out[diagonal, diagonal]

    def _eval(self, node: fx.Node, rows: Rows) -> torch.Tensor | object:
        """Node's full output for the elements ``rows`` (memoised per step)."""
        if not isinstance(node, fx.Node):
            return node
        key = (node.name, rows)
        if key in self._full:
            return self._full[key]
        if node.op == "placeholder":
            value = self._input if rows == tuple(range(len(self._input))) else \
                _TakeRows.apply(self._input, self._index(rows))
        elif node.op == "get_attr":
            value = operator.attrgetter(node.target)(self.graph_module)
        else:
            args = fx.node.map_arg(node.args, lambda a: self._eval(a, rows))
            kwargs = fx.node.map_arg(node.kwargs, lambda a: self._eval(a, rows))
            if self._mutates(node) and any(len(a.users) > 1 for a in _tensor_args(node)):
                args = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
            if node.op == "call_module":
                value = self.modules[node.target](*args, **kwargs)
            elif node.op == "call_function":
                value = node.target(*args, **kwargs)
            else:
                value = getattr(args[0], node.target)(*args[1:], **kwargs)
        self._full[key] = value
        return value

    def _mutates(self, node: fx.Node) -> bool:
        """Whether the node writes into its input (which must then not be shared)."""
        if node.op == "call_module":
            return bool(getattr(self.modules[node.target], "inplace", False))
        return (node.kwargs.get("inplace", False) or node.target in IN_PLACE
                or (node.op == "call_method" and str(node.target).endswith("_")))

    def _pick(self, full: torch.Tensor, rows: Rows, channels: Rows) -> torch.Tensor:
        """full[rows[k], channels[k]] as (n, 1, H, W): advanced indexing, a copy, never a view."""
        return full[self._index(rows)[:, None], self._index(channels)[:, None]]

    def _index(self, values: Rows) -> torch.Tensor:
        """An index tensor on the input's device, made once and kept: no per-step transfers."""
        device = self._input.device if self._input is not None else torch.device("cpu")
        key = (values, device)
        if key not in self._indices:
            self._indices[key] = torch.tensor(values, dtype=torch.long, device=device)
        return self._indices[key]


def narrow_layer(module: nn.Module, channels: Sequence[int], example: torch.Tensor) -> NarrowedLayer | None:
    """A function of the layer's input giving each element's own channel (N, 1, H, W),
    or None where the layer cannot be narrowed (then compute it in full). ``example``
    is an input of the batch's size; each use gets a copy, as a layer may write into it."""
    example = example.detach()
    try:
        narrowed = NarrowedLayer(module, channels)
        with torch.no_grad():
            ShapeProp(narrowed.graph_module).propagate(example.clone())
    except Exception as error:  # noqa: BLE001 - tracing arbitrary user code fails in arbitrary ways
        log.debug("layer %s not narrowed: %s", type(module).__name__, error)
        return None
    shape = narrowed.output.meta["tensor_meta"].shape
    if len(shape) != 4 or len(example) != len(narrowed.channels) or not all(0 <= c < shape[1] for c in channels):
        return None
    with torch.no_grad():
        rows = torch.arange(len(example), device=example.device)
        expected = module(example.clone())[rows, torch.tensor(narrowed.channels, device=example.device)]
        found = narrowed(example.clone())[:, 0]
    if found.shape != expected.shape or not torch.allclose(found.float(), expected.float(), rtol=1e-3, atol=1e-4):
        log.warning("layer %s: its narrowed graph does not compute what it does; computing it in full",
                    type(module).__name__)
        return None
    return narrowed


class _TakeRows(torch.autograd.Function):
    """``x[index]`` whose gradient keeps ``x``'s memory format. Plain indexing's backward
    scatters into a new NCHW tensor, and a channels-last layer before it then converts
    (GoogLeNet's pool before inception3a: 6 instead of 1.3 ms per 8 images)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.shape = x.shape
        ctx.channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        return x[index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (index,) = ctx.saved_tensors
        layout = torch.channels_last if ctx.channels_last else torch.contiguous_format
        out = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=layout).zero_()
        return out.index_copy_(0, index, grad), None  # rows are distinct: a copy, no atomics on CUDA


# -- node predicates ------------------------------------------------------------------

def _is_channel_cat(node: fx.Node) -> bool:
    if node.op != "call_function" or node.target not in (torch.cat, torch.concat):
        return False
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    shape = node.meta["tensor_meta"].shape
    return isinstance(node.args[0], (list, tuple)) and len(shape) == 4 and dim in (1, -3)


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    return [a for a in node.args if isinstance(a, fx.Node)]


def _per_channel_call(node: fx.Node) -> bool:
    """A function or method of one tensor that acts on each channel alone."""
    if node.op == "call_method":
        return node.target in PER_CHANNEL_METHODS
    return node.op == "call_function" and node.target in PER_CHANNEL_FUNCTIONS and not _tensor_args(node)[1:]


def _same_shapes(node: fx.Node) -> bool:
    args = node.args[:2]
    return (len(node.args) == 2 and not node.kwargs and all(isinstance(a, fx.Node) for a in args)
            and args[0].meta["tensor_meta"].shape == args[1].meta["tensor_meta"].shape)


def _call(node: fx.Node, x: torch.Tensor) -> torch.Tensor:
    """The node's function (or method) on ``x`` in place of its first argument."""
    if node.op == "call_method":
        return getattr(x, node.target)(*node.args[1:], **node.kwargs)
    return node.target(x, *node.args[1:], **node.kwargs)


def _batch_norm_channels(bn: nn.BatchNorm2d, x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    return batch_norm_channels(x, channels, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)


def batch_norm_channels(x: torch.Tensor, channels: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                        weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """Eval-mode batch norm of each element's one channel, with that channel's statistics:
    element i of ``x`` ((N, ...), any trailing shape) is of channel ``channels[i]``."""
    scale = torch.rsqrt(var[channels] + eps)
    if weight is not None:
        scale = scale * weight[channels]
    shift = -mean[channels] * scale
    if bias is not None:
        shift = shift + bias[channels]
    shape = (-1,) + (1,) * (x.dim() - 1)
    return x * scale.view(shape).to(x.dtype) + shift.view(shape).to(x.dtype)
