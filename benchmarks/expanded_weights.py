"""Expanded weights between two GoogLeNet layers: batched autograd against one pass per unit.

Atlas computes the expanded weights from every channel of a source layer to many
target units in one backward pass (``chunk`` target units per pass, one batch
element each), on the window of the source that reaches the target's centre. The
baseline is the obvious loop: one backward pass per target unit over the whole
source map (already far better than one per pair of units, which would take
units x channels passes). Both run the same linearized network; the script checks
they agree and prints the time, the backward passes, and the ratio.

Model: torchvision GoogLeNet with random weights (the computation does not depend on
the weights' values), at its 224 px input.

Run:  python benchmarks/expanded_weights.py [--source inception3a] [--target inception3b]
      [--units 480] [--chunk 64] [--baseline-units 32]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=FutureWarning)

from atlas.models.loading import IMAGENET_MEAN, IMAGENET_STD, LoadedModel  # noqa: E402
from atlas.nn.capture import (
    capture,  # noqa: E402
    find_modules,  # noqa: E402
)
from atlas.nn.linearize import Held  # noqa: E402
from atlas.stages.weights import _Linear, _linear_backward, expanded_weights  # noqa: E402


def googlenet() -> LoadedModel:
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True).eval().requires_grad_(False)
    return LoadedModel("googlenet", "torchvision:googlenet", net, IMAGENET_MEAN, IMAGENET_STD, 224, "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="inception3a")
    parser.add_argument("--target", default="inception3b")
    parser.add_argument("--units", type=int, default=480, help="target units (inception3b has 480)")
    parser.add_argument("--chunk", type=int, default=64, help="target units per backward pass")
    parser.add_argument("--baseline-units", type=int, default=32,
                        help="units the one-pass-per-unit baseline runs (its time is scaled to --units)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    model = googlenet()
    units = list(range(args.units))

    start = time.perf_counter()
    batched = expanded_weights(model, args.source, args.target, units, chunk=args.chunk)
    batched_s = time.perf_counter() - start

    some = units[:args.baseline_units]
    probe = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        shapes = {name: out.shape[1:] for name, out in
                  capture(model.module, probe, [args.source, args.target]).items()}
    centre = (shapes[args.target][1] // 2, shapes[args.target][2] // 2)
    source_module = find_modules(model.module, [args.source])[args.source]
    linear = _Linear(model.module, Held(), (args.source, args.target))
    start = time.perf_counter()
    single = torch.cat([_linear_backward(model.module, source_module, probe, args.target, linear, 1,
                                         tuple(shapes[args.source]), centre, [[u]], [torch.ones(1)]) for u in some])
    single_s = (time.perf_counter() - start) * len(units) / len(some)

    # Compare on the batched maps' window, the union of all units' supports (the full maps are zero elsewhere).
    union = _linear_backward(model.module, source_module, probe, args.target, linear, 1, tuple(shapes[args.source]), centre,
                             [units], [torch.randn(len(units))])
    ys, xs = (union.abs().amax((0, 1)) > union.abs().max() * 1e-6).nonzero(as_tuple=True)
    full = single[:, :, ys.min():ys.max() + 1, xs.min():xs.max() + 1].numpy()
    agree = np.abs(batched.weights[:len(some)] - full).max()
    print(f"{args.source} -> {args.target}: {len(units)} target units x {batched.weights.shape[1]} source channels, "
          f"maps {batched.weights.shape[2]}x{batched.weights.shape[3]}")
    print(f"batched   : {batched_s:7.2f} s, {batched.passes} backward passes ({args.chunk} units each)")
    print(f"per unit  : {single_s:7.2f} s, {len(units)} backward passes over the whole map "
          f"(measured on {len(some)}, scaled)")
    print(f"speed-up  : {single_s / batched_s:.1f}x; max difference {agree:.2e}")


if __name__ == "__main__":
    main()
