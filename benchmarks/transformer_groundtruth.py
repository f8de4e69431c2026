"""Hand-built vision transformers: their units' families and feature visualizations against the truth.

Draws seeded transformers (``atlas.stages.families.groundtruth.make_transformer``: patches of
5-11 px embedded by the ground truth's first-layer kernels, a class token, attention set by
its mask so that each patch sees itself only or gives 5-10% of its weight to each of its
four neighbours, MLP neurons that copy the embedding's features) and, for the patch
embedding (``embed``) and the MLP's neurons (``mlp.0``):

- labels every unit as a sweep does (``groundtruth.families_of``): by the criteria alone,
  then tested against untrained twins, counting the built labels kept and the units named
  into a family they were not built for;
- renders every unit's channel image (``--steps``, 512 by default, as the config's default)
  and counts the checkable ones (Gabors and color units) that show the built orientation
  and frequency, or color (``groundtruth.image_matches``).

Run:  python benchmarks/transformer_groundtruth.py [--seeds 12] [--steps 512] [--no-images]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from atlas.optvis.render import render_units  # noqa: E402
from atlas.stages.families import groundtruth  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--steps", type=int, default=512, help="feature visualization steps (lr 0.05)")
    parser.add_argument("--no-images", action="store_true", help="labels only")
    args = parser.parse_args()
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 7)  # right, units, kept, built, wrong, shown, checked
    start = time.perf_counter()
    for seed in range(args.first, args.first + args.seeds):
        model, construction = groundtruth.make_transformer(seed)
        attention = f"mixing {construction.mixing:.3f}" if construction.mixing else "itself"
        for layer, truths in construction.layers.items():
            plain = groundtruth.families_of(model, layer, null=False)
            tested = groundtruth.families_of(model, layer)
            built = [t.family for t in truths]
            right = sum(plain[u]["family"] == family for u, family in enumerate(built))
            kept = sum(tested[u]["family"] == family for u, family in enumerate(built) if family != "Ot")
            wrong = sum(tested[u]["family"] not in (family, "Ot") for u, family in enumerate(built))
            shown = checked = 0
            if not args.no_images:
                images = render_units(model, layer, list(range(len(truths))), objectives=("channel",), diversity=1,
                                      diversity_weight=0.0, steps=args.steps, size=model.input_size, lr=0.05, seed=0,
                                      device=torch.device("cpu")).images
                matches = [groundtruth.image_matches(images[u], truth) for u, truth in enumerate(truths)]
                shown, checked = sum(m is True for m in matches), sum(m is not None for m in matches)
            row = "embed" if layer == "embed" else f"mlp.0, attention on {'neighbours' if construction.mixing else 'itself'}"
            for i, value in enumerate((right, len(built), kept, sum(f != "Ot" for f in built), wrong, shown, checked)):
                totals[row][i] += value
            print(f"seed {seed} ({construction.kernel} px patches, attention {attention}) {layer}: criteria "
                  f"{right}/{len(built)}, kept against twins {kept}/{sum(f != 'Ot' for f in built)}, "
                  f"named wrongly {wrong}" + ("" if args.no_images else f", images {shown}/{checked}"), flush=True)
    print(f"\nseeds {args.first}-{args.first + args.seeds - 1}, {time.perf_counter() - start:.0f} s")
    print("| layer | in their family by the criteria | built labels kept against twins | named into another "
          "family | images that show the truth |")
    print("|---|---|---|---|---|")
    for row, (right, units, kept, built, wrong, shown, checked) in totals.items():
        images = "not rendered" if args.no_images else f"{shown}/{checked}"
        print(f"| {row} | {right}/{units} ({right / units:.1%}) | {kept}/{built} | {wrong} | {images} |")


if __name__ == "__main__":
    main()
