"""Is the zoo good enough to study? Measures what the embedded-demo issue asks for.

For each zoo model:
  1. held-out accuracy on the world's test split (for its task: the class, or the quarter turn);
  2. first layer: the fraction of units whose kernel fits a Gabor function well
     (oriented edges), and the fraction that are mostly chromatic (color contrast);
  3. a middle layer: curve detectors, units that respond more to curves than to
     straight lines, and whether their preferred orientations tile the circle;
and finally whether the same kinds of units appear in all the models.

Run:  python benchmarks/zoo_quality.py [--test-images 2000] [--png docs/zoo-first-layers.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.config import ModelConfig  # noqa: E402
from atlas.data.bank import resultant  # noqa: E402
from atlas.data.stimuli import curve_bank, line_bank, to_rgb  # noqa: E402
from atlas.models import load_model  # noqa: E402
from atlas.models.zoo import ZOO  # noqa: E402
from atlas.nn.capture import capture  # noqa: E402
from atlas.stages.weights import input_conv  # noqa: E402
from atlas.stages.weights.kernels import kernel_stats  # noqa: E402
from atlas.train import evaluate, generate  # noqa: E402

FIRST_LAYER = {"inception": "conv2d0", "resnet": "conv1", "alexnet": "conv1"}
MIDDLE_LAYERS = {"inception": ["conv2d2", "mixed3a", "mixed3b"], "resnet": ["layer1", "layer2"],
                 "alexnet": ["conv2", "conv3"]}

GABOR_R2 = 0.7  # a kernel "fits a Gabor well" above this R^2 ...
GABOR_MIN_FREQ = 0.06  # ... with at least this spatial frequency (cycles/pixel): oriented, not a blob
COLOR_FRACTION = 0.5  # a unit is color contrast when most of its kernel's energy is chromatic
CURVE_PREFERENCE = 1.5  # a curve detector answers curves this much more than any straight line
CURVE_SELECTIVITY = 0.25  # ... and prefers an orientation (resultant length of its tuning)


def first_layer_kinds(weight: torch.Tensor) -> dict[str, np.ndarray]:
    """Per unit: the kernel's Gabor fit and chromatic energy, with this benchmark's verdicts."""
    stats = kernel_stats(weight)
    gabor = (stats["gabor_r2"] >= GABOR_R2) & (stats["gabor_frequency"] >= GABOR_MIN_FREQ)
    return {"r2": stats["gabor_r2"], "freq": stats["gabor_frequency"], "gabor": gabor,
            "color": stats["color_fraction"] >= COLOR_FRACTION}


# -- curve detectors -------------------------------------------------------------------

def curve_detectors(model, layer: str, size: int) -> dict[str, np.ndarray]:
    """Responses of each unit at the centre of ``layer`` to curves and lines."""
    curve_orients = np.arange(0, 360, 15.0)
    line_orients = np.arange(0, 180, 15.0)
    curves = curve_bank(size, curve_orients, radii=(6.0, 10.0, 16.0), width=2.0)  # (3, 24, S, S)
    lines = line_bank(size, line_orients, lengths=(12.0, 20.0, 28.0), width=2.0)  # (3, 12, S, S)

    def respond(coverage: np.ndarray) -> np.ndarray:
        out = []
        for ink, paper in ((1.0, 0.0), (0.0, 1.0)):  # both polarities
            x = torch.from_numpy(to_rgb(coverage.reshape(-1, size, size), ink=ink, paper=paper))
            with torch.no_grad():
                acts = capture(model.module, model.normalize(x), [layer])[layer]
            h, w = acts.shape[-2:]
            out.append(acts[:, :, h // 2, w // 2].numpy())  # (stimuli, units)
        return np.stack(out)  # (polarity, stimuli, units)

    rc = respond(curves).reshape(2, 3, len(curve_orients), -1)
    rl = respond(lines).reshape(2, 3, len(line_orients), -1)
    best_curve, best_line = rc.max((0, 1, 2)), rl.max((0, 1, 2))
    # Orientation tuning at the unit's best polarity and radius.
    flat = rc.reshape(6, len(curve_orients), -1)
    best = flat.max(1).argmax(0)
    tuning = np.clip(flat[best, :, np.arange(flat.shape[2])], 0, None)  # (units, orientations)
    orientation, selectivity = resultant(tuning.T, curve_orients, 360)  # as the site's tuning stage does
    is_curve = (best_curve > 0) & (best_curve >= CURVE_PREFERENCE * np.clip(best_line, 1e-6, None)) \
        & (selectivity >= CURVE_SELECTIVITY)
    return {"curve": is_curve, "orientation": orientation,
            "preference": best_curve / np.clip(best_line, 1e-6, None)}


def first_layer_png(kernels: dict[str, torch.Tensor], kinds: dict[str, dict], path: Path, per_row: int = 16) -> None:
    """First-layer kernels, a block of rows per model (grey gaps between models);
    Gabor fits framed white, color-contrast units framed red."""
    from PIL import Image

    from atlas.stages.weights import kernel_images

    scale, blocks = 8, []
    for name, weight in kernels.items():
        images = kernel_images(weight)
        k = images.shape[1]
        cell = k * scale + 4
        rows = -(-len(images) // per_row)
        block = np.full((rows * cell, per_row * cell, 3), 40, np.uint8)
        for i, image in enumerate(images):
            y, x = (i // per_row) * cell, (i % per_row) * cell
            frame = (255, 255, 255) if kinds[name]["gabor"][i] else (220, 40, 40) if kinds[name]["color"][i] else (40, 40, 40)
            block[y:y + cell, x:x + cell] = frame
            block[y + 2:y + cell - 2, x + 2:x + cell - 2] = np.kron(image, np.ones((scale, scale, 1), np.uint8))
        blocks += [block, np.full((12, per_row * cell, 3), 128, np.uint8)]
    Image.fromarray(np.concatenate(blocks[:-1])).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--png", type=Path, help="write the first-layer kernels of all models here")
    args = parser.parse_args()

    test_x, test_y = generate(0, "test", args.test_images, workers=2)
    kinds, kernels, found = {}, {}, {}
    print(f"{'model':<16} {'accuracy':>8}  {'gabor':>7} {'color':>7}  curve detectors (layer: count, orientation bins of 8 covered)")
    for name, entry in ZOO.items():
        start = time.perf_counter()
        model = load_model(ModelConfig(name=name, arch=f"zoo:{name}", layers=(), weights="trained"))
        accuracy = evaluate(model.module, test_x, test_y, entry.task)
        conv = input_conv(dict(model.module.named_modules())[FIRST_LAYER[entry.arch]])
        kernels[name] = conv.weight.detach()
        kinds[name] = first_layer_kinds(conv.weight)
        curves = []
        for layer in MIDDLE_LAYERS[entry.arch]:
            result = curve_detectors(model, layer, model.input_size)
            bins = len({int(o // 45) for o in result["orientation"][result["curve"]]})
            curves.append((layer, int(result["curve"].sum()), bins, result["curve"].size))
        found[name] = {"gabor": kinds[name]["gabor"].mean(), "color": kinds[name]["color"].mean(),
                       "curve": max(c[1] for c in curves)}
        print(f"{name:<16} {accuracy:>8.3f}  {kinds[name]['gabor'].mean():>7.0%} {kinds[name]['color'].mean():>7.0%}  "
              + ", ".join(f"{layer}: {n}/{total} ({bins}/8)" for layer, n, bins, total in curves)
              + f"   [{time.perf_counter() - start:.0f}s]")
    everywhere = [kind for kind in ("gabor", "color", "curve") if all(f[kind] > 0 for f in found.values())]
    print(f"kinds found in all {len(found)} models: {', '.join(everywhere) or 'none'}")
    print(f"criteria: Gabor R^2 >= {GABOR_R2} and frequency >= {GABOR_MIN_FREQ} cycles/px; color: chromatic energy >= "
          f"{COLOR_FRACTION:.0%}; curve: best curve >= {CURVE_PREFERENCE}x best line and resultant >= {CURVE_SELECTIVITY}")
    if args.png:
        first_layer_png(kernels, kinds, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
