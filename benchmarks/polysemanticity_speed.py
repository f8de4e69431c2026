"""Polysemanticity, dictionary learning and toy models: what they cost.

For each model and dataset size N, in a fresh process (so peak memory is its own):
  - bare: one plain forward pass over the N images (loading included);
  - atlas: the polysemanticity stage's two passes (``polysemantic.strongest``) for every
    listed layer at once: streaming top-48 per unit and channel means, then the
    layers' vectors at the strong examples' images only.
Prints wall times, the ratio to the bare pass (two passes cost at least 2x: the floor)
and peak resident memory, which must not grow with N beyond the vectors kept
(units x 48 x channels per layer).

Then, in-process: a sparse autoencoder of the default atlas's size (144 -> 576
features, 65,536 vectors, 3,000 steps) and both toy-model experiments of superposition
(10 sparsities each, 1,500 steps), as the default build trains them.

Models: zoo:inception (conv2d0 .. mixed4a, 64 px) and torchvision GoogLeNet with
random weights (inception3a .. inception5b, 224 px). Images: the embedded world.

Run:  python benchmarks/polysemanticity_speed.py [--sizes 500 2000] [--googlenet 128]
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

MODELS = {
    "zoo:inception": ["conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a"],
    "torchvision:googlenet": ["inception3a", "inception3b", "inception4a", "inception4e", "inception5b"],
}


def measure(arch: str, count: int, mode: str) -> dict:
    from atlas.config import ModelConfig
    from atlas.data import WorldDataset
    from atlas.models import load_model
    from atlas.pipeline import inspect_layers
    from atlas.stages import polysemantic

    weights = "trained" if arch.startswith("zoo") else "none"
    spec = ModelConfig(name="m", arch=arch, layers=tuple(MODELS[arch]), weights=weights)
    model = load_model(spec)
    device = torch.device("cpu")
    layers = inspect_layers(model, spec.layers, None, device, "models[0]")
    dataset = WorldDataset(count)
    start = time.perf_counter()
    if mode == "bare":
        with torch.no_grad():
            for _, pixels in dataset.batches(model.input_size, 32):
                x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
                model.module(model.normalize(x))
    else:
        probes = [polysemantic.Probe(layer, lambda acts: acts, layer.channels) for layer in layers]
        polysemantic.strongest(model, probes, dataset, top=polysemantic.TOP, batch_size=32, device=device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_process() -> None:
    from atlas.stages import dictionary, superposition

    torch.manual_seed(0)
    samples = torch.relu(torch.randn(65536, 144))
    start = time.perf_counter()
    trained = dictionary.train(samples, 576, l1=0.01, steps=3000, batch=1024, lr=3e-3, seed=0)
    print(f"sparse autoencoder 144 -> 576 features, 65,536 vectors, 3,000 steps: "
          f"{time.perf_counter() - start:.1f} s (explained variance {trained.stats['explained_variance']:.2f}, "
          f"L0 {trained.stats['l0']:.1f}; random data)")
    start = time.perf_counter()
    for experiment in superposition.EXPERIMENTS:
        superposition.train(experiment["features"], experiment["dims"], superposition.SPARSITIES,
                            decay=experiment["decay"], seed=0)
    print(f"toy models of superposition, both experiments x {len(superposition.SPARSITIES)} sparsities, "
          f"1,500 steps: {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--googlenet", type=int, nargs="+", default=[64, 128], help="images for GoogLeNet")
    parser.add_argument("--one", nargs=3, metavar=("ARCH", "N", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        arch, count, mode = args.one
        print(json.dumps(measure(arch, int(count), mode)))
        return
    print(f"{'model':<22} {'N':>5}  {'bare s':>7} {'atlas s':>8} {'ratio':>6}  {'bare MB':>8} {'atlas MB':>9}")
    for arch, sizes in (("zoo:inception", args.sizes), ("torchvision:googlenet", args.googlenet)):
        for count in sizes:
            result = {}
            for mode in ("bare", "atlas"):
                out = subprocess.run([sys.executable, __file__, "--one", arch, str(count), mode],
                                     capture_output=True, text=True, check=True).stdout
                result[mode] = json.loads(out.strip().splitlines()[-1])
            ratio = result["atlas"]["seconds"] / result["bare"]["seconds"]
            print(f"{arch:<22} {count:>5}  {result['bare']['seconds']:>7.1f} {result['atlas']['seconds']:>8.1f} "
                  f"{ratio:>6.2f}  {result['bare']['peak_mb']:>8.0f} {result['atlas']['peak_mb']:>9.0f}")
    in_process()


if __name__ == "__main__":
    main()
