"""The GPU path, measured: one short script to run when a GPU is lent (a few minutes on
one), and on the CPU with ``--device cpu --quick`` (which the tests run).

1. Feature visualization against lucent's ``render_vis`` on GoogLeNet ``inception4a``
   (random weights, batch norms calibrated on noise, as ``featurevis_speed.py``): units/s
   of each, the speed-up (the target on a GPU is 50x), and the quality ratio (each
   final image scored by the unit's mean activation on it).
2. A full channel sweep of InceptionV1-size layers (GoogLeNet ``inception3a`` to
   ``inception5b``, every channel, 512 steps, 128 px) as the featurevis stage runs it:
   the batch size it chooses for the device (halved and retried on out-of-memory),
   the time per layer, and the ideal time (FLOPs per step, counted by torch, x steps /
   the device's measured matmul peak in the precision Atlas computes in), so the share
   of the peak reached.

Run:  python benchmarks/gpu_sweep.py [--device cuda] [--steps 512] [--layers ...]
      python benchmarks/gpu_sweep.py --device cpu --quick    # a check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", category=FutureWarning)

from featurevis_speed import calibrated_googlenet, layer_channels, matmul_peak, run_lucent, score, step_flops  # noqa: E402

from atlas import optvis  # noqa: E402
from atlas.optvis.render import prepare  # noqa: E402
from atlas.stages.featurevis import auto_batch, render_batches, resolve_precision, workers_for  # noqa: E402

LAYERS = ["inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
          "inception5a", "inception5b"]


def sweep_layer(model, layer: str, units: list[int], steps: int, size: int, device: torch.device,
                precision: str) -> tuple[float, int, object]:
    """(seconds, batch size, rendered) of every unit of the layer, as the stage renders them."""
    batch = auto_batch(device, 1, size + 2 * optvis.Robustness.pad)
    workers = workers_for(device)
    start = time.perf_counter()
    while True:
        try:
            rendered = [render_batches(model, layer, units[i:i + batch * workers], batch_units=batch, workers=workers,
                                       objectives=("channel",), diversity=2, diversity_weight=0.0, steps=steps,
                                       size=size, lr=0.1, seed=0, device=device, precision=precision)
                        for i in range(0, len(units), batch * workers)]
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            torch.cuda.empty_cache()
            start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, batch, rendered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=512, help="steps of the full sweep")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--layers", nargs="+", default=LAYERS)
    parser.add_argument("--lucent-units", type=int, default=8, help="units of the comparison with lucent")
    parser.add_argument("--lucent-steps", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that the script runs")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.size, args.layers, args.lucent_units, args.lucent_steps = 4, 32, ["inception3a"], 2, 4
    device = torch.device(args.device)
    torch.set_grad_enabled(True)
    precision = resolve_precision("auto", device)
    peak = matmul_peak(device, precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), Atlas in {precision}; {precision} matmul peak {peak / 1e12:.1f} TFLOP/s")
    model = calibrated_googlenet(device)
    prepared = prepare(model, args.layers + ["inception4a"], device)

    layer = "inception4a"
    channels = layer_channels(model, layer, args.size, device)
    units = [i * channels // args.lucent_units for i in range(args.lucent_units)]
    render_batches(prepared, layer, units, batch_units=len(units), objectives=("channel",), diversity=2,
                   diversity_weight=0.0, steps=1, size=args.size, lr=0.1, seed=0, device=device,
                   precision=precision)  # warm-up: kernels chosen, memory taken
    start = time.perf_counter()
    ours = render_batches(prepared, layer, units, batch_units=len(units), objectives=("channel",), diversity=2,
                          diversity_weight=0.0, steps=args.lucent_steps, size=args.size, lr=0.05, seed=0,
                          device=device, precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    atlas_s = time.perf_counter() - start
    lucent_s, theirs = run_lucent(model, layer, units, args.lucent_steps, args.size, device)
    a = statistics.median(score(model, layer, units, ours.images, device))
    b = statistics.median(score(model, layer, units, theirs, device))
    print(f"\n1. {layer}, {len(units)} units, {args.lucent_steps} steps, {args.size} px: Atlas "
          f"{len(units) / atlas_s:.2f} units/s, lucent {len(units) / lucent_s:.2f} units/s: "
          f"{lucent_s / atlas_s:.1f}x (target on a GPU: 50x); quality {a:.3f} / {b:.3f} = {a / b:.2f}")

    print(f"\n2. every channel, {args.steps} steps, {args.size} px")
    print(f"{'layer':<12} {'units':>5} {'batch':>5} {'seconds':>8} {'units/s':>8} {'ideal s':>8} {'of peak':>7} "
          f"{'failed':>6}")
    total = ideal_total = 0.0
    for layer in args.layers:
        units = list(range(layer_channels(model, layer, args.size, device)))
        seconds, batch, rendered = sweep_layer(prepared, layer, units, args.steps, args.size, device, precision)
        ideal = step_flops(model, layer, units[:8], args.size + 2 * optvis.Robustness.pad, device) \
            * len(units) * args.steps / peak
        failed = sum(int(r.failed.sum()) for r in rendered)
        total, ideal_total = total + seconds, ideal_total + ideal
        print(f"{layer:<12} {len(units):>5} {batch:>5} {seconds:>8.1f} {len(units) / seconds:>8.2f} "
              f"{ideal:>8.1f} {ideal / seconds:>7.0%} {failed:>6}")
    print(f"{'all':<12} {'':>5} {'':>5} {total:>8.1f} {'':>8} {ideal_total:>8.1f} {ideal_total / total:>7.0%}")


if __name__ == "__main__":
    main()
