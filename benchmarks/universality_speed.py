"""Universality: all-pairs unit correlation between two models, time and memory versus N.

For each pair of models and number of images N, in a fresh process (so peak memory is
its own), the universality stage's comparison (``atlas.stages.universality.compare``):
both models and their random-weight twins see the same N world images, and every
unit of every layer of one is correlated with every unit of every layer of the other
(spatially aligned and pooled, against the twins too), plus the layer-by-layer CKA.

Prints wall time, images per second, peak resident memory and the memory the
models alone take (memory must not grow with N), and, from a profiled run, the share
of the time spent in the correlation matrix products (``aten::mm``) and in the
models' convolutions.

Pairs: zoo:inception x zoo:resnet (64 px, every swept layer of the default atlas) and
torchvision GoogLeNet x ResNet-18 with random weights (224 px).

Run:  python benchmarks/universality_speed.py [--sizes 256 1024] [--pairs zoo torchvision]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAIRS = {
    "zoo": [("zoo:inception", ["conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a"]),
            ("zoo:resnet", ["conv1", "layer1", "layer2", "layer3"])],
    "torchvision": [("torchvision:googlenet", ["conv3", "inception3a", "inception3b", "inception4a", "inception4c",
                                               "inception4e", "inception5b"]),
                    ("torchvision:resnet18", ["layer1", "layer2", "layer3", "layer4"])],
}
MATMUL = {"aten::mm", "aten::addmm", "aten::matmul"}
CONVOLUTION = {"aten::mkldnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d",
               "aten::_nnpack_spatial_convolution", "aten::thnn_conv2d"}


def measure(pair: str, count: int, profile: bool) -> dict:
    from atlas.config import ModelConfig
    from atlas.data import WorldDataset
    from atlas.models import load_model
    from atlas.pipeline import inspect_layers
    from atlas.stages.universality import Side, compare, for_inference, image_batches, random_twin

    device = torch.device("cpu")
    sides = []
    for i, (arch, layers) in enumerate(PAIRS[pair]):
        spec = ModelConfig(name=arch, arch=arch, layers=tuple(layers),
                           weights="trained" if arch.startswith("zoo") else "none")
        model = load_model(spec)
        layers = inspect_layers(model, spec.layers, None, device, "m")
        sides.append(Side(for_inference(model, layers), for_inference(random_twin(model, i + 1), layers), layers))
    models_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    a, b = sides
    batches = image_batches(WorldDataset(count), a.model.input_size, b.model.input_size, 32, device, bank=False)
    start = time.perf_counter()
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            compare(a, b, batches)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        share = {name: sum(e.self_cpu_time_total for e in events if e.key in keys) / total
                 for name, keys in (("matmul", MATMUL), ("convolution", CONVOLUTION))}
    else:
        compare(a, b, batches)
        share = {}
    seconds = time.perf_counter() - start
    pairs = sum(la.channels * lb.channels for la in a.layers for lb in b.layers)
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "models_mb": models_mb, "unit_pairs": pairs, **share}


def run_one(pair: str, count: int, profile: bool) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", pair, str(count), str(int(profile))],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        pair, count, profile = args.one
        print(json.dumps(measure(pair, int(count), profile == "1")))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'pair':<12} {'unit pairs':>10} {'N':>6} {'seconds':>8} {'images/s':>9} {'peak MB':>8} "
          f"{'models MB':>10} {'matmul':>7} {'conv':>6}")
    for pair in args.pairs:
        for count in args.sizes:
            timed = run_one(pair, count, profile=False)
            profiled = run_one(pair, count, profile=True) if count == min(args.sizes) else {}
            matmul = f"{profiled['matmul']:.0%}" if profiled else ""
            conv = f"{profiled['convolution']:.0%}" if profiled else ""
            print(f"{pair:<12} {timed['unit_pairs']:>10} {count:>6} {timed['seconds']:>8.1f} "
                  f"{count / timed['seconds']:>9.1f} {timed['peak_mb']:>8.0f} {timed['models_mb']:>10.0f} "
                  f"{matmul:>7} {conv:>6}")


if __name__ == "__main__":
    main()
