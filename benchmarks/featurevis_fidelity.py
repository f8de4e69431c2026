"""Feature visualization on ground-truth networks: does the image show what the unit detects?

Draws seeded networks of varied construction (``atlas.stages.families.groundtruth``: kernel sizes
5-11, strides 1-2, batch norm of either sign or none, ReLU / ReLU6 / GELU, max or
average pooling, a first layer silent on grey or not), renders every unit of both
layers with Atlas's feature visualization and checks each image against its unit's
construction (``image_matches``): Gabors and their combinations at their orientation
and frequency, color-opponent units in their colors. Units behind silent ReLUs must be
lifted above their start. Every optimisation that did not raise its objective must be
flagged; one that was not flagged is a silent failure.

Run:  python benchmarks/featurevis_fidelity.py [--networks 24] [--param fft] [--steps 128]
      [--lr 0.1] [--redirect 16]   (compare: --param maco, --redirect 0)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.optvis.render import render_units  # noqa: E402
from atlas.stages.families import groundtruth  # noqa: E402
from atlas.stages.featurevis import resolve_precision  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=24)
    parser.add_argument("--param", default="fft", choices=["fft", "maco"])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--redirect", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    counts: dict[str, Counter] = {}
    start = time.perf_counter()
    for seed in range(args.networks):
        model, construction = groundtruth.make_network(seed)
        for layer, truths in construction.layers.items():
            rendered = render_units(model, layer, list(range(len(truths))), objectives=("channel",), diversity=2,
                                    diversity_weight=0.0, steps=args.steps, size=args.size, lr=args.lr, seed=seed,
                                    device=torch.device("cpu"), param=args.param, redirect=args.redirect,
                                    precision=resolve_precision(args.precision, torch.device("cpu")))
            for unit, truth in enumerate(truths):
                c = counts.setdefault(truth.kind, Counter())
                c["units"] += 1
                matches = groundtruth.image_matches(rendered.images[unit], truth)
                flagged = bool(rendered.failed[unit])
                lifted = rendered.activations[unit] > rendered.start[unit]
                c["checked"] += matches is not None
                c["match"] += bool(matches)
                c["flagged"] += flagged
                c["silent start"] += truth.silent_start
                c["lifted from a silent start"] += truth.silent_start and lifted and not flagged
                c["not raised, not flagged"] += (not lifted) and not flagged
    elapsed = time.perf_counter() - start
    print(f"{args.networks} networks, param={args.param}, steps={args.steps}, lr={args.lr}, "
          f"redirect={args.redirect}, precision={resolve_precision(args.precision, torch.device('cpu'))}: {elapsed:.0f} s")
    print(f"{'kind':16} {'units':>5} {'image shows it':>15} {'flagged':>8} {'silent start lifted':>20} "
          f"{'silent failures':>16}")
    for kind, c in sorted(counts.items()):
        shows = f"{c['match']}/{c['checked']} ({c['match'] / c['checked']:.0%})" if c["checked"] else "-"
        lifted = (f"{c['lifted from a silent start']}/{c['silent start']}" if c["silent start"] else "-")
        print(f"{kind:16} {c['units']:5d} {shows:>15} {c['flagged']:8d} {lifted:>20} "
              f"{c['not raised, not flagged']:16d}")


if __name__ == "__main__":
    main()
