"""What a unit's feature visualization maximises: its response.

The channel objective is the mean over space of the unit's map. On a layer whose
output is linear (a convolution before its batch norm and ReLU, a stem with no bias,
a block output without an activation) that is degenerate: the mean response of a
zero-mean filter depends only on the image's borders, so the optimum is a grey field
with colored edges, not the unit's pattern. What the network itself does with such a
unit's output is rectify it, so the objective does too:

- **following**: the output goes through per-channel operations only (eval-mode batch
  norm, dropout) into an activation function; the response is that activation's
  output without its ceiling, if it has one, e.g. ``ReLU(batch norm _bn0(x))`` for
  EfficientNet's stem, whose ReLU6 would make a saturating flat field an optimum;
- **positive part**: the output is signed, but no activation takes it directly (a
  residual sum comes first, or nothing follows); the response is ``relu(x)``;
- **as is**: the output is never negative (it is a ReLU's): the response is ``x``.

``find_response`` decides by running the model once under a ``TorchFunctionMode``
that follows the layer's output tensor from call to call, whatever the model's code
looks like (modules or functions). The negative objective minimises the signed value
before the activation (``Response.signed``): below zero a rectifier is flat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from atlas.nn.narrow import batch_norm_channels
from atlas.nn.redirect import Rectifier, rectifier_call

FOLLOWING, POSITIVE, AS_IS = "following", "positive part", "as is"
_PASS_THROUGH = {F.dropout, F.dropout2d, F.dropout1d, F.alpha_dropout, torch.Tensor.contiguous, torch.Tensor.clone}


@dataclass(frozen=True)
class _BatchNorm:
    """An eval-mode batch norm, applied to each element's own channel."""

    name: str
    mean: torch.Tensor
    var: torch.Tensor
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def __call__(self, maps: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        return batch_norm_channels(maps, channels, self.mean, self.var, self.weight, self.bias, self.eps)


@dataclass(frozen=True)
class Response:
    """A unit's response from its map: ``activation(affine(map))``."""

    kind: str  # FOLLOWING, POSITIVE or AS_IS
    norms: tuple[_BatchNorm, ...] = ()
    activation: Callable[[torch.Tensor], torch.Tensor] | None = None
    activation_name: str = ""

    def signed(self, maps: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """The value before the activation: maps (N, H, W) or (N,), element i of channel ``channels[i]``."""
        for norm in self.norms:
            maps = norm(maps, channels)
        return maps

    def __call__(self, maps: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        if self.kind == AS_IS:
            return maps
        if self.kind == POSITIVE:
            return torch.relu(maps)
        return self.activation(self.signed(maps, channels))

    def of_layer(self, acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """The response of a layer's output (B, U, ...), whose column i is channel ``channels[i]``."""
        return self(acts.transpose(0, 1), channels).transpose(0, 1)

    @property
    def unrectified(self) -> bool:
        """Whether the layer's output is signed with no activation after it: then zero is
        not a threshold the network uses, and "active" (above zero) means nothing."""
        return self.kind == POSITIVE

    @property
    def description(self) -> str:
        """For the page: what the channel objective maximised."""
        if self.kind == AS_IS:
            return "the layer's output (never negative)"
        if self.kind == POSITIVE:
            return "the positive part of the layer's output, which is signed and which no activation takes directly"
        norms = "".join(f" after batch norm {n.name}" for n in reversed(self.norms))
        return f"the {self.activation_name} that follows this linear layer{norms}"


AS_IS_RESPONSE = Response(AS_IS)


def layer_response(model, layer: str, device: torch.device | str = "cpu", seed: int = 0) -> Response:
    """How the network reads ``layer``'s output (a ``LoadedModel``'s), from one pass of a
    seeded noise image."""
    noise = torch.rand(1, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(seed))
    return find_response(model.module, layer, model.normalize(noise.to(device)))


def as_read(response: Response | None, acts: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """A layer's output (B, U, ...) as the network reads it: through the activation that
    follows (after its batch norm) where one does; as it is otherwise, signed or not."""
    return response.of_layer(acts, channels) if response is not None and response.kind == FOLLOWING else acts


def find_response(module: nn.Module, layer: str, example: torch.Tensor) -> Response:
    """The response of ``layer``'s units, learnt from one forward pass of ``example``
    (model inputs, normalised)."""
    target = module.get_submodule(layer)
    names = {id(m.running_mean): name for name, m in module.named_modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None}
    follower = _Follow(names)
    handle = target.register_forward_hook(follower.start)
    try:
        with torch.no_grad(), follower:
            module(example)
    except _Found:
        pass
    except Exception:  # noqa: BLE001 - a model may fail past the layer (a head that needs other sizes)
        if follower.output is None:
            raise
    finally:
        handle.remove()
    if follower.output is None:
        return AS_IS_RESPONSE  # the layer did not run: nothing to learn
    if follower.activation is not None:
        return Response(FOLLOWING, tuple(follower.norms), *_without_ceiling(follower.activation))
    signed = bool((follower.output < 0).any())
    return Response(POSITIVE) if signed else AS_IS_RESPONSE


def _without_ceiling(rectifier: Rectifier) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The activation as the objective uses it: a ceiling (ReLU6's 6) is dropped. Every
    position at the ceiling maximises a capped mean, so a flat field that saturates the
    unit everywhere would be an optimum, and it shows nothing of what the unit detects."""
    if not (rectifier.piecewise and rectifier.high is not None):
        return rectifier.forward, rectifier.name
    low = rectifier.low
    return (torch.relu if low == 0 else (lambda x: torch.clamp(x, min=low))), f"{rectifier.name} (without its ceiling)"


class _Found(Exception):
    """Raised to end the forward pass once the layer's consumer is known."""


class _Follow(TorchFunctionMode):
    """Follows the layer's output through per-channel calls to an activation."""

    def __init__(self, norm_names: dict[int, str]):
        super().__init__()
        self.norm_names = norm_names
        self.output: torch.Tensor | None = None  # the layer's own output
        self.tracked: torch.Tensor | None = None  # the value followed so far
        self.norms: list[_BatchNorm] = []
        self.activation = None

    def start(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if self.output is None and isinstance(output, torch.Tensor):
            self.output = self.tracked = output

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tracked = self.tracked
        if tracked is None or not isinstance(out, torch.Tensor) or not _uses(tracked, args, kwargs):
            return out  # not a consumer (shape queries return no tensor)
        if args and args[0] is tracked:
            rectifier = rectifier_call(func, args, kwargs)
            if rectifier is not None:
                self.activation = rectifier
                raise _Found
            if func in _PASS_THROUGH:
                self.tracked = out
                return out
            if func is F.batch_norm and not _arg(args, kwargs, 5, "training", False):
                mean, var = _arg(args, kwargs, 1, "running_mean"), _arg(args, kwargs, 2, "running_var")
                if mean is not None and var is not None:
                    self.norms.append(_BatchNorm(self.norm_names.get(id(mean), "(unnamed)"), mean, var,
                                                 _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias"),
                                                 float(_arg(args, kwargs, 7, "eps", 1e-5))))
                    self.tracked = out
                    return out
        self.norms = []  # any other consumer: no activation takes the output directly
        raise _Found


def _arg(args: tuple, kwargs: dict, index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _uses(tensor: torch.Tensor, args: Sequence, kwargs: dict) -> bool:
    def walk(values: Any) -> Iterator[Any]:
        for value in values:
            if isinstance(value, (list, tuple)):
                yield from walk(value)
            else:
                yield value
    return any(value is tensor for value in walk([*args, *kwargs.values()]))
