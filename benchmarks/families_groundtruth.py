"""Family labels on ground-truth networks: a confusion matrix per family.

Draws seeded networks of varied construction (``atlas.groundtruth``: first-layer
kernels of 3-11 px at stride 1 or 2, batch norm of either sign or none, ReLU / ReLU6 /
GELU, max or average pooling; Gabors, color-contrast edges, color and black-and-white
center-surround units and smoothed-noise units, both polarities, in shuffled order; a
second layer pooling Gabors; a contour layer of curve, line and dense-noise units built
from line detectors of 5 or 7 px at stride 1 or 2), labels every unit as a sweep does
(``groundtruth.families_of``: the stimulus bank, first-layer kernel fits against their
nulls, the family criteria) and counts each unit's label against the family it was
built to be ("Ot": noise units, which no named family should claim).

The criteria were developed on seeds 0-5; seeds from 6 on are held out.

Run:  python benchmarks/families_groundtruth.py [--first 6] [--networks 24] [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas import groundtruth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=6, help="the first seed (0-5 were used to develop)")
    parser.add_argument("--networks", type=int, default=24)
    parser.add_argument("--verbose", action="store_true", help="print every unit that lands elsewhere")
    args = parser.parse_args()
    confusion: dict[str, Counter] = defaultdict(Counter)
    start = time.perf_counter()
    for seed in range(args.first, args.first + args.networks):
        model, construction = groundtruth.make_network(seed)
        for layer, truths in construction.layers.items():
            found = groundtruth.families_of(model, layer)
            for unit, truth in enumerate(truths):
                label = found[unit]["family"]
                confusion[truth.family][label] += 1
                if args.verbose and label != truth.family:
                    print(f"seed {seed} {layer} unit {unit}: built {truth.family}, labelled {label} "
                          f"(kernel {construction.kernel}, stride {construction.stride})")
    labels = sorted({label for row in confusion.values() for label in row} | set(confusion))
    header = "built / labelled"
    print(f"{header:>16} " + " ".join(f"{label:>4}" for label in labels) + "  right")
    for family in sorted(confusion):
        row = confusion[family]
        print(f"{family:>16} " + " ".join(f"{row[label]:>4}" for label in labels)
              + f"  {row[family] / sum(row.values()):6.1%}")
    right = sum(confusion[f][f] for f in confusion)
    total = sum(sum(row.values()) for row in confusion.values())
    print(f"{right}/{total} units in their family ({right / total:.1%}) on seeds {args.first}-"
          f"{args.first + args.networks - 1}, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
