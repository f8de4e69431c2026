"""Contact sheets of swept units: what a reader judges a unit by, one row per unit.

Each row shows the unit's feature visualization (rendered here: the channel objective,
``--steps`` steps), its strongest dataset examples (the examples stage's crops) and,
in a first layer, its kernel. The units come from a model of
``benchmarks/null_control.py`` already swept into its cache (run that first):

- ``--family Cv``: every unit of the layer labelled with that family after the test
  against the null (the curve units a network keeps);
- ``--family Cv --before``: every unit the family criteria alone labelled so, each
  marked kept or lost (what the test against the null removed);
- ``--blind N --seed S``: N labelled units drawn at random over the swept layers, in
  random order, with no label on the sheet; their labels go to a separate key file, to
  be read only after each unit has been judged from its row.

Run:  python benchmarks/null_control.py --models craft   (once)
      python benchmarks/contact_sheet.py craft --layer features.10 --family Cv --out craft-conv2_2.png
      python benchmarks/contact_sheet.py lite0 --blind 20 --seed 7 --out lite0-blind.png
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from null_control import MODELS, config_text  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

CELL = 96  # pixels per image on the sheet


def swept(name: str, units: int, images: int):
    """The model's plan (the sweep reuses its cache), config and store."""
    from atlas.config import load_config
    from atlas.pipeline import sweep
    from atlas.store import Store

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "atlas.toml"
        path.write_text(config_text(name, units, images))
        config = load_config(path)
        plan = sweep(config)
    return plan, config, Store(config.resolve(config.sweep.cache))


def chosen(plan, store, layer: str | None, family: str | None, blind: int, seed: int,
           before: bool = False) -> list[tuple[str, int, str]]:
    """(layer, unit, label) of the units on the sheet; ``before``: by the label the
    family criteria alone gave (before the test against the null), marked kept or lost."""
    from atlas.artifacts import Families

    labelled = []
    for entry in plan.models[0].layers:
        if layer and entry.name != layer:
            continue
        data = store.read(Families, entry.key("families"))
        for u, record in sorted(data.units.items(), key=lambda item: int(item[0])):
            label = (record.get("test") or {}).get("criteria") if before else record["family"]
            if record.get("dead") or label in (None, "Ot"):
                continue
            if family is None or label == family:
                kept = "" if not before else (" (kept)" if record["family"] == label else " (lost)")
                labelled.append((entry.name, int(u), label + kept))
    if blind:
        random.Random(seed).shuffle(labelled)
        labelled = labelled[:blind]
    return labelled


def _tile(pixels: np.ndarray | Image.Image) -> Image.Image:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    return image.convert("RGB").resize((CELL, CELL), Image.NEAREST if image.width < CELL // 2 else Image.BICUBIC)


def row(plan, config, store, model, layer: str, unit: int, steps: int, top: int) -> list[Image.Image]:
    """Feature visualization, top examples, kernel (first layer) of one unit."""
    from atlas.artifacts import Examples, Weights
    from atlas.optvis.render import render_units

    entry = next(e for e in plan.models[0].layers if e.name == layer)
    rendered = render_units(model, layer, [unit], objectives=("channel",), diversity=2, diversity_weight=0.0,
                            steps=steps, size=128, lr=0.05, seed=config.sweep.seed, device=torch.device("cpu"))
    tiles = [_tile(rendered.images[0])]
    key = entry.key("examples")
    examples = store.read(Examples, key)
    folder = store.path("examples", key)
    for ex in examples.units[str(unit)]["top"][:top]:
        if "crop" in ex and (folder / ex["crop"]).exists():
            tiles.append(_tile(Image.open(folder / ex["crop"])))
    weights = entry.key("weights")
    if weights and (store.path("weights", weights) / Weights.image(unit)).exists():
        tiles.append(_tile(Image.open(store.path("weights", weights) / Weights.image(unit))))
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--layer", help="one swept layer (default: all)")
    parser.add_argument("--family", help="the units labelled with this family symbol")
    parser.add_argument("--before", action="store_true",
                        help="select by the criteria's label before the null's test, and say whether it was kept")
    parser.add_argument("--blind", type=int, default=0, help="draw this many labelled units, labels hidden")
    parser.add_argument("--seed", type=int, default=0, help="the blind draw's seed (say it before judging)")
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    from atlas.models import load_model

    plan, config, store = swept(args.model, args.units, args.images)
    units = chosen(plan, store, args.layer, args.family, args.blind, args.seed, args.before)
    if not units:
        sys.exit("no unit matches")
    model = load_model(config.models[0], root=config.root, seed=config.sweep.seed)
    rows = [(layer, unit, label, row(plan, config, store, model, layer, unit, args.steps, args.top))
            for layer, unit, label in units]
    width = max(len(tiles) for *_, tiles in rows) * (CELL + 4) + 150
    sheet = Image.new("RGB", (width, len(rows) * (CELL + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (layer, unit, label, tiles) in enumerate(rows):
        y = 8 + i * (CELL + 8)
        caption = f"#{i + 1}\n{layer}\nunit {unit}" + ("" if args.blind else f"\n{label}")
        draw.multiline_text((6, y + 4), caption, fill="black")
        for j, tile in enumerate(tiles):
            sheet.paste(tile, (150 + j * (CELL + 4), y))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{len(rows)} units -> {args.out}")
    if args.blind:
        key = args.out.with_suffix(".key.json")
        key.write_text(json.dumps([{"row": i + 1, "layer": layer, "unit": unit, "label": label}
                                   for i, (layer, unit, label, _) in enumerate(rows)], indent=1))
        print(f"labels (read after judging) -> {key}")


if __name__ == "__main__":
    main()
