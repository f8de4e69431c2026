"""Family labels on ground-truth networks: a confusion matrix per family.

Draws seeded networks of varied construction (``atlas.stages.families.groundtruth``: first-layer
kernels of 3-11 px at stride 1 or 2, batch norm of either sign or none, ReLU / ReLU6 /
GELU, max or average pooling; Gabors, color-contrast edges, color and black-and-white
center-surround units and smoothed-noise units, both polarities, in shuffled order; a
second layer pooling Gabors; a contour layer of curve, line and dense-noise units built
from line detectors of 5 or 7 px at stride 1 or 2), labels every unit as a sweep does
(``groundtruth.families_of``: the stimulus bank, first-layer kernel fits against their
nulls, the family criteria) and counts each unit's label against the family it was
built to be ("Ot": noise units, which no named family should claim).

The criteria were developed on seeds 0-5; seeds from 6 on are held out.

Each label is tested against untrained twins (every layer drawn again by its default
initialisation) as a sweep tests it; the tables show the labels before and after the
test, and the reliability of the confidence shown (``atlas/stages/families/calibration.py``: a
probability, fitted with ``--fit`` on the development seeds 0-5).

Run:  python benchmarks/families_groundtruth.py [--first 6] [--networks 24] [--verbose] [--fit]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from atlas.stages.families import (
    calibration,  # noqa: E402
    groundtruth,  # noqa: E402
)


def confusion_table(confusion: dict[str, Counter], title: str) -> None:
    labels = sorted({label for row in confusion.values() for label in row} | set(confusion))
    print(title)
    header = "built / labelled"
    print(f"{header:>16} " + " ".join(f"{label:>4}" for label in labels) + "  right")
    for family in sorted(confusion):
        row = confusion[family]
        print(f"{family:>16} " + " ".join(f"{row[label]:>4}" for label in labels)
              + f"  {row[family] / sum(row.values()):6.1%}")
    right = sum(confusion[f][f] for f in confusion)
    total = sum(sum(row.values()) for row in confusion.values())
    print(f"{right}/{total} units in their family ({right / total:.1%})")


def reliability(pairs: list[tuple[float, bool]], bins: int = 10) -> float:
    """Print the reliability table of (confidence, right) pairs; return the expected calibration error."""
    confidence = np.array([c for c, _ in pairs])
    right = np.array([r for _, r in pairs], dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    print(f"{'confidence':>12} {'units':>6} {'mean conf.':>10} {'right':>7}")
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap = abs(confidence[inside].mean() - right[inside].mean())
            error += inside.mean() * gap
            print(f"{edges[b]:5.1f}-{edges[b + 1]:<5.1f} {int(inside.sum()):>6} {confidence[inside].mean():>10.3f} "
                  f"{right[inside].mean():>7.1%}")
    print(f"expected calibration error {error:.3f} over {len(pairs)} units")
    return error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=6, help="the first seed (0-5 were used to develop)")
    parser.add_argument("--networks", type=int, default=24)
    parser.add_argument("--verbose", action="store_true", help="print every unit that lands elsewhere")
    parser.add_argument("--fit", action="store_true",
                        help="print the calibration table (stages/families/calibration.py) fitted on these networks")
    args = parser.parse_args()
    before: dict[str, Counter] = defaultdict(Counter)
    after: dict[str, Counter] = defaultdict(Counter)
    pairs, raw = [], []
    start = time.perf_counter()
    for seed in range(args.first, args.first + args.networks):
        model, construction = groundtruth.make_network(seed)
        for layer, truths in construction.layers.items():
            found = groundtruth.families_of(model, layer)
            for unit, truth in enumerate(truths):
                record = found[unit]
                criteria = (record.get("test") or {}).get("criteria") or record["family"]
                before[truth.family][criteria] += 1
                after[truth.family][record["family"]] += 1
                right = record["family"] == truth.family
                pairs.append((record["confidence"], right))
                raw.append((calibration.group(record), record["raw_confidence"], right))
                if args.verbose and not right:
                    print(f"seed {seed} {layer} unit {unit}: built {truth.family}, criteria {criteria}, labelled "
                          f"{record['family']} (test {record.get('test')})")
        print(f"seed {seed}: {sum(r for _, r in pairs)}/{len(pairs)} right so far, "
              f"{time.perf_counter() - start:.0f} s", flush=True)
    seeds = f"seeds {args.first}-{args.first + args.networks - 1}"
    confusion_table(before, f"By the criteria alone ({seeds}):")
    confusion_table(after, f"Tested against untrained twins at a 5% false discovery rate ({seeds}):")
    print("\nReliability of the confidence shown:")
    reliability(pairs)
    if args.fit:
        print("\nCALIBRATION =", calibration.fit(raw))
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
