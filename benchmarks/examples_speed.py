"""Dataset examples: extraction versus a bare forward pass, and memory versus N.

For each model and dataset size N, in a fresh process (so peak memory is its own):
  - bare: a plain full forward pass over the N images (loading included);
  - atlas: the examples stage's pass over the same images (loading, capture of every
    requested layer, streaming top-k, image reservoir, fraction active).
Prints wall times, their ratio (must be <= 1.25) and peak resident memory; memory must
not grow with N.

Models: zoo:inception (conv2d0 .. mixed4a, 64 px) and torchvision GoogLeNet with
random weights (conv1 .. inception5b, 224 px). Images: the embedded world.

Run:  python benchmarks/examples_speed.py [--sizes 500 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {
    "zoo:inception": ["conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a"],
    "torchvision:googlenet": ["conv1", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
                              "inception4c", "inception4d", "inception4e", "inception5a", "inception5b"],
}


def setup(arch: str, layers: list[str], count: int):
    """A model of the benchmark (zoo weights trained, torchvision random), its layers and N world images."""
    from atlas.config import ModelConfig
    from atlas.data import WorldDataset
    from atlas.models import load_model
    from atlas.pipeline import inspect_layers

    weights = "trained" if arch.startswith("zoo") else "none"
    spec = ModelConfig(name="m", arch=arch, layers=tuple(layers), weights=weights)
    model = load_model(spec)
    return model, inspect_layers(model, spec.layers, None, torch.device("cpu"), "models[0]"), WorldDataset(count)


def bare_pass(model, dataset) -> None:
    """A plain full forward pass over the dataset, loading included: the floor to compare with."""
    with torch.no_grad():
        for _, pixels in dataset.batches(model.input_size, 32):
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
            model.module(model.normalize(x))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(arch: str, count: int, mode: str) -> dict:
    from atlas.config import Config, SweepConfig
    from atlas.pipeline import no_progress
    from atlas.stages import StageContext, examples
    from atlas.store import Store

    model, layers, dataset = setup(arch, MODELS[arch], count)
    config = Config(models=(), sweep=SweepConfig(batch_size=32))
    start = time.perf_counter()
    if mode == "bare":
        bare_pass(model, dataset)
    else:
        ctx = StageContext(config=config, store=Store(Path("/tmp/atlas-bench-store")), device=torch.device("cpu"),
                           progress=no_progress, dataset=dataset)
        examples._sweep_dataset(ctx, model, layers)
    return {"seconds": time.perf_counter() - start, "peak_mb": peak_mb()}


def compare(script: str, runs: list[tuple[str, int]]) -> None:
    """Run ``script --one ARCH N MODE`` for bare and atlas in fresh processes; print the table."""
    print(f"{'model':<22} {'N':>5}  {'bare s':>7} {'atlas s':>8} {'ratio':>6}  {'bare MB':>8} {'atlas MB':>9}")
    for arch, count in runs:
        result = {}
        for mode in ("bare", "atlas"):
            out = subprocess.run([sys.executable, script, "--one", arch, str(count), mode],
                                 capture_output=True, text=True, check=True).stdout
            result[mode] = json.loads(out.strip().splitlines()[-1])
        ratio = result["atlas"]["seconds"] / result["bare"]["seconds"]
        print(f"{arch:<22} {count:>5}  {result['bare']['seconds']:>7.1f} {result['atlas']['seconds']:>8.1f} "
              f"{ratio:>6.2f}  {result['bare']['peak_mb']:>8.0f} {result['atlas']['peak_mb']:>9.0f}")


def arguments(doc: str, measure: Callable[[str, int, str], dict],
              extra: Callable[[argparse.ArgumentParser], None] = lambda parser: None) -> argparse.Namespace | None:
    """The benchmark's arguments (``--sizes`` and ``extra``'s); None when this process was
    started by ``compare`` to measure one run (``--one``), which it then did."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--one", nargs=3, metavar=("ARCH", "N", "MODE"), help=argparse.SUPPRESS)
    extra(parser)
    args = parser.parse_args()
    if args.one:
        arch, count, mode = args.one
        print(json.dumps(measure(arch, int(count), mode)))
        return None
    return args


def main() -> None:
    args = arguments(__doc__, measure)
    if args is not None:
        compare(__file__, [(arch, count) for arch in MODELS for count in args.sizes])


if __name__ == "__main__":
    main()
