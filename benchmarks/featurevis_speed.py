"""Feature visualization: Atlas versus lucent's render_vis, side by side in one run.

Same model, layers, units, steps, image size and transforms (lucent's standard
transforms: pad 12, jitter 8, scale 0.9-1.1, rotate +-10, jitter 4; the network sees
152 px for a 128 px image in both). lucent renders one unit per ``render_vis`` call,
as its notebooks do; Atlas renders all units of a layer in one batched optimisation
that stops at the layer, computes only their channels of it (``atlas.nn.narrow``), with
frozen weights. The units are spread over the layer's channels, as a full sweep's
are: in an Inception block, some in each branch.

Quality: every final image, Atlas's and lucent's, is scored by the same function
(the unit's mean activation on the untransformed image); the ratio of medians must
be at least 0.9.

Roofline: the FLOPs of Atlas's optimisation (forward to the layer, its units' channels
of the layer, backward to the image, counted by torch's FlopCounterMode) divided by
the device's measured matmul peak (in the precision Atlas computes in there: bf16 on
CUDA and on CPUs with native bf16, fp32 on others) is the least time any implementation of the same optimisation can take. The
table prints those FLOPs as a share of computing the layer in full ("work"), the
fraction of the peak Atlas reaches, and the speed-up over lucent that the peak would
give: the ceiling of the ratio on this machine.

Model: torchvision GoogLeNet with random weights (nothing to download), its batch
norms calibrated on noise so deep activations do not vanish; plus a zoo model.

Run:  python benchmarks/featurevis_speed.py [--units 8] [--steps 64] [--size 128]
      [--layers inception3a inception4a inception5a] [--device cpu] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=FutureWarning)

from atlas.config import ModelConfig  # noqa: E402
from atlas.models import LoadedModel, load_model  # noqa: E402
from atlas.models.loading import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from atlas.nn.capture import capture, layer_inputs  # noqa: E402
from atlas.nn.narrow import narrow_layer  # noqa: E402
from atlas.optvis import unit_maps  # noqa: E402
from atlas.optvis.render import prepare  # noqa: E402
from atlas.stages.featurevis import render_batches, resolve_precision, workers_for  # noqa: E402


def calibrated_googlenet(device: torch.device) -> LoadedModel:
    """GoogLeNet, random weights, batch-norm statistics taken from noise images."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True, transform_input=False)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batches
    net.train().to(device)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    with torch.no_grad():
        for _ in range(4):
            net((torch.rand(16, 3, 152, 152, device=device) - mean) / std)
    net.eval().requires_grad_(False)
    return LoadedModel("googlenet", "torchvision:googlenet", net, IMAGENET_MEAN, IMAGENET_STD, 224, "calibrated")


def score(model: LoadedModel, layer: str, units: list[int], images: np.ndarray, device: torch.device) -> np.ndarray:
    """Each unit's mean activation on its own image (uint8 (N, H, W, 3))."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        acts = capture(model.module, model.normalize(x), [layer])[layer]
    return unit_maps(acts, torch.tensor(units, device=device)).flatten(1).mean(1).cpu().numpy()


def matmul_peak(device: torch.device, precision: str) -> float:
    """Measured FLOP/s of a large matmul in the precision Atlas computes in on ``device``."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def layer_channels(model: LoadedModel, layer: str, side: int, device: torch.device) -> int:
    with torch.no_grad():
        return capture(model.module, torch.rand(1, 3, side, side, device=device), [layer])[layer].shape[1]


def step_flops(model: LoadedModel, layer: str, units: list[int], side: int, device: torch.device,
               narrowed: bool = True) -> float:
    """FLOPs of one optimisation step per image: forward to ``layer``, backward to the
    pixels; with ``narrowed``, the layer computes only each image's unit, as Atlas does."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(len(units), 3, side, side, device=device, requires_grad=True)
    module = model.module.get_submodule(layer)
    with torch.no_grad():
        example = layer_inputs(model.module, model.normalize(x), layer)[0]
    narrow = narrow_layer(module, units, example) if narrowed else None
    with FlopCounterMode(display=False) as counter:
        (inputs,) = layer_inputs(model.module, model.normalize(x), layer)
        maps = narrow(inputs) if narrow is not None else unit_maps(module(inputs), torch.tensor(units))
        maps.sum().backward()
    return counter.get_total_flops() / len(units)


def run_atlas(model, layer, units, steps, size, device, precision) -> tuple[float, np.ndarray]:
    """As the featurevis stage renders them: the whole layer's units in one batch, which
    on a CPU is shared among one single-threaded process per torch thread."""
    start = time.perf_counter()
    rendered = render_batches(prepare(model, [layer], device), layer, units, batch_units=len(units),
                              workers=workers_for(device), objectives=("channel",), diversity=2,
                              diversity_weight=0.0, steps=steps, size=size, lr=0.05, seed=0, device=device,
                              precision=precision)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, rendered.images


def run_lucent(model, layer, units, steps, size, device) -> tuple[float, np.ndarray]:
    """lucent's render_vis, one call per unit, with lucent's standard transforms plus the
    model's normalisation, and a fixed network input of size + 24 px (Atlas's, after padding)."""
    from lucent.optvis import objectives, param, render, transform

    net = model.module.requires_grad_(True)  # as lucent's notebooks leave it
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1)
    images = []
    start = time.perf_counter()
    try:
        for unit in units:
            torch.manual_seed(unit)
            np.random.seed(unit)
            result = render.render_vis(
                net, objectives.channel(layer.replace(".", "_"), unit), param_f=lambda: param.image(size),
                transforms=transform.standard_transforms + [lambda x: (x - mean) / std],
                preprocess=False, thresholds=(steps,), show_image=False, progress=False,
                fixed_image_size=size + 24)
            images.append((np.clip(result[-1][0], 0, 1) * 255).round().astype(np.uint8))
    finally:
        net.requires_grad_(False)
    return time.perf_counter() - start, np.stack(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--layers", nargs="+", default=["inception3a", "inception4a", "inception5a"])
    parser.add_argument("--zoo", default="inception:mixed3b", help="zoo model and layer, or '' to skip")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side; the best is kept")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="Atlas's featurevis.precision (lucent computes in fp32)")
    args = parser.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.set_grad_enabled(True)

    jobs = [(calibrated_googlenet(device), layer, args.size) for layer in args.layers]
    if args.zoo:
        name, layer = args.zoo.split(":")
        zoo_model = load_model(ModelConfig(name=name, arch=f"zoo:{name}", layers=(), weights="trained")).to(device)
        jobs.append((zoo_model, layer, 64))
    peak = matmul_peak(device, precision)
    print(f"device {device}, {args.units} units per layer (spread over its channels), {args.steps} steps, "
          f"best of {args.repeat}; Atlas in {precision}, lucent in fp32, one render_vis per unit; "
          f"{precision} matmul peak {peak / 1e9:.0f} GFLOP/s")
    print(f"{'model':<10} {'layer':<12} {'size':>4}  {'atlas u/s':>9} {'lucent u/s':>10} {'speed-up':>8}  "
          f"{'work':>5} {'of peak':>7} {'ceiling':>7}  {'quality (median act. atlas / lucent)':>36}")
    speedups, qualities = [], []
    for model, layer, size in jobs:
        channels = layer_channels(model, layer, size, device)
        # Spread over the layer, as a full sweep's batches are: in an Inception block,
        # units of every branch.
        units = [i * channels // args.units for i in range(args.units)]
        atlas_s = lucent_s = float("inf")
        for _ in range(args.repeat):  # interleaved, so a slow spell of a shared machine hits both
            seconds, atlas_images = run_atlas(model, layer, units, args.steps, size, device, precision)
            atlas_s = min(atlas_s, seconds)
            seconds, lucent_images = run_lucent(model, layer, units, args.steps, size, device)
            lucent_s = min(lucent_s, seconds)
        flops = step_flops(model, layer, units, size + 24, device)
        work = flops / step_flops(model, layer, units, size + 24, device, narrowed=False)
        ideal_s = flops * len(units) * args.steps / peak  # the work itself
        a = statistics.median(score(model, layer, units, atlas_images, device))
        b = statistics.median(score(model, layer, units, lucent_images, device))
        speedup, quality = lucent_s / atlas_s, a / b if b > 0 else float("nan")
        if model.name == "googlenet":
            speedups.append(speedup)
            qualities.append(quality)
        print(f"{model.name:<10} {layer:<12} {size:>4}  {len(units) / atlas_s:>9.2f} {len(units) / lucent_s:>10.2f} "
              f"{speedup:>7.1f}x  {work:>5.0%} {ideal_s / atlas_s:>7.0%} {lucent_s / ideal_s:>6.1f}x  "
              f"{a:>12.3f} / {b:<8.3f} = {quality:.2f}")
    print(f"googlenet average speed-up over {len(speedups)} depths: {statistics.mean(speedups):.1f}x; "
          f"quality ratio min {min(qualities):.2f}")


if __name__ == "__main__":
    main()
