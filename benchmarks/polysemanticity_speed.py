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

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.examples_speed import arguments, bare_pass, compare, peak_mb, setup  # noqa: E402

MODELS = {
    "zoo:inception": ["conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a"],
    "torchvision:googlenet": ["inception3a", "inception3b", "inception4a", "inception4e", "inception5b"],
}


def measure(arch: str, count: int, mode: str) -> dict:
    from atlas.stages import polysemantic

    model, layers, dataset = setup(arch, MODELS[arch], count)
    start = time.perf_counter()
    if mode == "bare":
        bare_pass(model, dataset)
    else:
        probes = [polysemantic.Probe(layer, lambda acts: acts, layer.channels) for layer in layers]
        polysemantic.strongest(model, probes, dataset, top=polysemantic.TOP, batch_size=32, device=torch.device("cpu"))
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


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
    args = arguments(__doc__, measure, lambda parser: parser.add_argument(
        "--googlenet", type=int, nargs="+", default=[64, 128], help="images for GoogLeNet"))
    if args is None:
        return
    compare(__file__, [("zoo:inception", n) for n in args.sizes] + [("torchvision:googlenet", n) for n in args.googlenet])
    in_process()


if __name__ == "__main__":
    main()
