"""Write docs/world.webp: a grid of held-out world scenes, a row per class.

Run:  python scripts/world-samples.py [--out docs/world.webp] [--per-class 8]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from atlas.data import world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/world.webp"))
    parser.add_argument("--per-class", type=int, default=8)
    args = parser.parse_args()
    rows: dict[int, list[np.ndarray]] = {label: [] for label in range(len(world.CLASSES))}
    index = 0
    while any(len(r) < args.per_class for r in rows.values()):
        scene = world.make_scene(0, index, "atlas")
        if len(rows[scene.label]) < args.per_class:
            rows[scene.label].append(np.pad(scene.image, ((1, 1), (1, 1), (0, 0)), constant_values=255))
        index += 1
    grid = np.concatenate([np.concatenate(r, axis=1) for r in rows.values()], axis=0)
    Image.fromarray(grid).save(args.out, quality=90)
    print(f"wrote {args.out}: classes top to bottom: {', '.join(world.CLASSES)}")


if __name__ == "__main__":
    main()
