"""The compatibility matrix: every torchvision classification architecture through every per-unit stage.

Each architecture, with seeded random weights and a small input, gets the layers
``atlas init`` would propose (the stem, or a transformer's patch embedding, and two
consecutive layers midway, so that circuits apply), a few units each, and a sweep of every per-unit stage (feature
visualization, weights, examples, tuning, circuits, the null, families,
polysemanticity) with tiny settings, then a render. For each stage the table says
whether its layers got values or a stated reason (and which), from the site's
``catalog.json``; a stage that gave neither, or any exception, fails the row.

Run:  python benchmarks/compatibility.py [--archs resnet18,mobilenet_v2] [--size 64]
The test suite runs the whole matrix (tests/test_compatibility.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARCHS = ("alexnet", "vgg11_bn", "resnet18", "resnext50_32x4d", "wide_resnet50_2", "googlenet", "inception_v3",
         "densenet121", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_v2_s", "mnasnet0_5",
         "shufflenet_v2_x0_5", "squeezenet1_0", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t")
SIZE = 32  # pixels on a side of the input
# inception_v3: its stem has no padding; alexnet: its pools; the transformers: a grid of 4 x 4 patches
SMALLEST = {"inception_v3": 80, "alexnet": 64, "vit_b_16": 64, "swin_t": 64}
STAGES = ("featurevis", "weights", "examples", "tuning", "circuits", "null", "families", "polysemanticity")
UNITS = 2


@dataclass
class Row:
    arch: str
    layers: list[str]
    answers: dict[str, Counter] = field(default_factory=dict)  # stage -> {"values" or a reason: units}
    seconds: float = 0.0

    @property
    def empty(self) -> list[str]:
        """Stages that gave a unit neither values nor a reason."""
        return [stage for stage, counts in self.answers.items() if counts.get("empty")]


def layers_for(arch: str, size: int) -> list[str]:
    """The stem and two consecutive layers midway, of the level ``atlas init`` proposes from."""
    import torch

    from atlas.config import ModelConfig
    from atlas.models import load_model
    from atlas.nn.capture import describe_layers
    from atlas.stages.weights import input_conv
    from atlas.starter import propose_layers

    model = load_model(ModelConfig(name=arch, arch=f"torchvision:{arch}", layers=(), input_size=size),
                       root=Path.cwd(), key="")
    _, level = propose_layers(describe_layers(model.module, model.normalize(torch.zeros(1, 3, size, size))), 3)
    middle = max(len(level) // 2, 2)
    stem = level[0]
    if input_conv(model.module.get_submodule(stem)) is None:  # a transformer's blocks: its patch embedding
        embedding = input_conv(model.module)
        stem = next(name for name, module in model.module.named_modules() if module is embedding)
    return list(dict.fromkeys([stem, *level[middle - 1:middle + 1]]))


def config_text(arch: str, layers: list[str], size: int) -> str:
    quoted = ", ".join(f'"{name}"' for name in layers)
    stages = ", ".join(f'"{stage}"' for stage in STAGES)
    return f"""
[data]
images = "world"
limit = 12

[sweep]
cache = "cache"
batch_size = 12
stages = [{stages}]

[featurevis]
steps = 2
size = 32
thumbnail = 16
objectives = ["channel"]
redirect = 1

[examples]
top = 3

[null]
units = 8
twins = 1
images = 8

[[models]]
name = "{arch}"
arch = "torchvision:{arch}"
input_size = {size}
units = {UNITS}
layers = [{quoted}]
"""


def check(arch: str, size: int | None = None, folder: Path | None = None) -> Row:
    """Sweep and render ``arch``; classify each unit's answer per stage from the catalog."""
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.render import render_site
    from atlas.render.catalog import read_catalog

    size = max(size or SIZE, SMALLEST.get(arch, 0))
    start = time.perf_counter()
    row = Row(arch, layers_for(arch, size))
    with tempfile.TemporaryDirectory() as temporary:
        root = folder or Path(temporary)
        (root / "atlas.toml").write_text(config_text(arch, row.layers, size))
        config = load_config(root / "atlas.toml")
        sweep(config)
        site = render_site(config).out
        catalog = read_catalog(site)
    for position, layer in enumerate(catalog["models"][0]["layers"]):
        for unit in layer["units"]:
            for stage, answer in answers(unit, first=position == 0).items():
                row.answers.setdefault(stage, Counter())[answer] += 1
    row.seconds = time.perf_counter() - start
    return row


def answers(unit: dict, first: bool) -> dict[str, str]:
    """Per stage, one unit's answer in the catalog: "values", a stated reason, or "empty"."""
    dead = unit["dead_reason"] if unit["dead"] else None
    test = unit["family_test"] or {}
    found = {
        "featurevis": "failed (stated)" if unit["featurevis_failed"] else "values" if unit["featurevis"] else "empty",
        "weights": "values" if unit["weights"] else unit["weights_no_answer"] or
                   ("not a convolution over RGB" if not first else "empty"),
        "examples": "values" if unit["examples"] else dead or "empty",
        "tuning": "values" if unit["tuning"] else unit["tuning_no_answer"] or dead or "empty",
        "families": "values" if unit["family"] else dead or "empty",
        "null": "values" if test.get("null") else dead or
                ("not tested (stated)" if test.get("family") else "no label claimed, nothing to test"),
        "polysemanticity": "values" if unit["polysemanticity"] is not None else
                           unit["polysemanticity_no_answer"] or dead or "empty",
    }
    circuit = unit["circuit"]
    if circuit is None:
        found["circuits"] = "no swept layer before it" if first else "empty"
    else:
        found["circuits"] = circuit["no_answer"] or ("values" if circuit["inputs"] or circuit["inhibitory"]
                                                     else "empty")
    return found


def table(rows: list[Row]) -> str:
    lines = [f"| architecture | layers | {' | '.join(STAGES)} | s |", "|---" * (len(STAGES) + 3) + "|"]
    for row in rows:
        cells = []
        for stage in STAGES:
            counts = row.answers.get(stage, Counter())
            cells.append(", ".join(f"{answer} {n}" if answer != "values" else f"✓ {n}"
                                   for answer, n in sorted(counts.items(), key=lambda item: item[0] != "values")))
        lines.append(f"| {row.arch} | {', '.join(f'`{name}`' for name in row.layers)} | {' | '.join(cells)} | "
                     f"{row.seconds:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated torchvision names")
    parser.add_argument("--size", type=int, help=f"input size (default: {SIZE}, or what the architecture needs)")
    args = parser.parse_args()
    rows, failed = [], []
    for arch in args.archs.split(","):
        try:
            rows.append(check(arch, args.size))
        except Exception:  # the matrix goes on; the traceback says what broke
            traceback.print_exc()
            failed.append(arch)
            continue
        print(f"{arch}: {rows[-1].seconds:.1f} s{'; EMPTY: ' + ', '.join(rows[-1].empty) if rows[-1].empty else ''}",
              file=sys.stderr, flush=True)
    print(table(rows))
    empty = [row.arch for row in rows if row.empty]
    if empty or failed:
        sys.exit(f"failed: {', '.join(failed) or 'none'}; stages with neither values nor a reason: "
                 f"{', '.join(empty) or 'none'}")


if __name__ == "__main__":
    main()
