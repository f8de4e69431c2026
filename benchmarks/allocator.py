"""Forward passes with glibc's default thresholds against memory kept (``atlas.allocator``).

Each setting runs in a fresh process (malloc's thresholds are per process): a model at
224 px, batches of 16 (as stimuli and turned examples are shown) and 32 (the sweep's
batch), the best of five passes to each of three depths. Prints milliseconds an image,
side by side, and the ratio.

Run:  python benchmarks/allocator.py [--arch atlas.models.efficientnet_lite:lite0]
(default: EfficientNet-Lite0 where the `real` extra is installed, else torchvision's
ResNet-50 with random weights)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = {"atlas.models.efficientnet_lite:lite0": ["_blocks.1", "_blocks.8", "_conv_head"],
          "torchvision:resnet50": ["layer1", "layer3", "layer4"]}


def default_arch() -> str:
    try:
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return "torchvision:resnet50"
    return "atlas.models.efficientnet_lite:lite0"


def measure(arch: str, keep: bool) -> dict[str, float]:
    """Milliseconds an image to each layer, per batch size, in this process."""
    import torch

    from atlas.allocator import keep_freed_memory
    from atlas.config import ModelConfig
    from atlas.models import load_model
    from atlas.plan import forward_seconds

    if keep:
        assert keep_freed_memory(), "this C library has no mallopt"
    model = load_model(ModelConfig(name="m", arch=arch, layers=()), root=Path.cwd(), key="")
    found = {}
    for batch in (16, 32):
        for layer, seconds in forward_seconds(model, LAYERS[arch], batch, torch.device("cpu")).items():
            found[f"{layer} @{batch}"] = seconds * 1e3
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(LAYERS), default=None)
    parser.add_argument("--one", nargs=2, metavar=("ARCH", "KEEP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1] == "1")))
        return
    arch = args.arch or default_arch()
    runs = {keep: json.loads(subprocess.run([sys.executable, __file__, "--one", arch, keep], capture_output=True,
                                            text=True, check=True).stdout.strip().splitlines()[-1])
            for keep in ("0", "1")}
    print(f"{arch}, ms an image (best of 5 passes), glibc's defaults against memory kept")
    print(f"{'layer @ batch':<22} {'default':>8} {'kept':>8} {'ratio':>6}")
    for name, default in runs["0"].items():
        kept = runs["1"][name]
        print(f"{name:<22} {default:>8.2f} {kept:>8.2f} {default / kept:>6.2f}")


if __name__ == "__main__":
    main()
