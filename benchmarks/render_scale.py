"""Rendering a site of many units: time, memory, size and the fullest folder, versus N.

A synthetic store, made by a real sweep of a cheap model: a 64-channel convolution, then
a chain of 1,000-channel ones on a 4 x 4 map (as wide as a real network's layers), over
32 px images of the embedded world; N units are the first N / 1,000 of the wide layers. Every per-unit stage runs (feature visualization at
two steps, weights, dataset examples, tuning, circuits, families, polysemanticity), so
each unit has its pages, images and charts as a real model's would. Then, for each N,
a render in a fresh process (so its peak memory is its own), on one core and on all.

Prints, per N: the render's seconds and pages per second, its peak resident memory,
the site's size per unit, its file count and its fullest folder. Time and memory
should grow linearly with N: the seconds and the memory each further thousand units
add, against the size before (about constant). The first wide layer feeds no later
one in the smallest store (no "used by" on its pages), so its seconds per unit are
lower: compare the added seconds, not seconds per unit.

Run:  python benchmarks/render_scale.py [--sizes 1000 3000 10000] [--root /tmp/atlas-render-scale]
The sweeps are cached under --root: a second run only renders.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WIDTH = 1_000
DEPTH = 10  # wide layers: up to 10,000 units


def wide():
    """The benchmark's model: layer ``0`` (64 channels, 16 x 16) feeds a chain of ``DEPTH``
    layers of ``WIDTH`` channels, ``2``, ``4``, ... (4 x 4: small maps, cheap to compute)."""
    from torch import nn  # here: the render's process must not import torch

    chain = [nn.Conv2d(3, 64, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(64, WIDTH, 3, stride=4, padding=1), nn.ReLU()]
    for _ in range(DEPTH - 1):
        chain += [nn.Conv2d(WIDTH, WIDTH, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*chain)


def wide_layers(units: int) -> list[str]:
    """The wide layers that hold ``units`` units (a multiple of ``WIDTH``)."""
    if units % WIDTH or not 0 < units <= WIDTH * DEPTH:
        raise SystemExit(f"--sizes: multiples of {WIDTH} up to {WIDTH * DEPTH}, got {units}")
    return [str(2 + 2 * i) for i in range(units // WIDTH)]


CONFIG = """
[site]
title = "Render scale: {units} units"
out = "site"

[data]
images = "world"
limit = 200

[sweep]
cache = "../cache"
stages = ["featurevis", "weights", "examples", "tuning", "circuits", "families", "polysemanticity"]

[featurevis]
steps = 2
size = 32
thumbnail = 32
objectives = ["channel"]

[null]
kind = "none"

[[models]]
name = "wide"
arch = "benchmarks.render_scale:wide"
layers = {layers}
input_size = 32
"""


def config_for(root: Path, units: int) -> Path:
    folder = root / str(units)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "atlas.toml"
    path.write_text(textwrap.dedent(CONFIG.format(units=units, layers=json.dumps(["0", *wide_layers(units)]))))
    return path


def sweep(path: Path) -> float:
    from atlas.config import load_config
    from atlas.pipeline import sweep as run

    start = time.perf_counter()
    run(load_config(path))
    return time.perf_counter() - start


def render(path: Path, workers: int) -> dict:
    """One render (in this process: run it in a fresh one for its own peak memory)."""
    from atlas.config import load_config
    from atlas.render import render_site

    report = render_site(load_config(path), workers=workers)
    return {"seconds": report.seconds, "pages": report.pages, "bytes": report.size.bytes,
            "files": report.size.files, "fullest": list(report.size.fullest_folder), "units": report.size.units,
            "peak_mb": peak_mb()}


def peak_mb() -> float:
    """This process's peak resident memory since its exec: /proc's VmHWM (getrusage's
    maxrss would count the parent's memory at the fork, here a whole sweep's)."""
    try:
        status = Path("/proc/self/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--root", type=Path, default=Path("/tmp/atlas-render-scale"))
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(render(Path(args.one[0]), int(args.one[1]))))
        return
    print(f"{'units':>6} {'sweep s':>8} {'workers':>7} {'render s':>9} {'pages/s':>8} {'peak MB':>8} "
          f"{'KB/unit':>8} {'files':>7} {'s/1k more':>9} {'MB/1k more':>10}  fullest folder")
    before: dict[int, tuple[int, float, float]] = {}  # workers: (units, seconds, peak MB)
    for units in sorted(args.sizes):
        path = config_for(args.root, units)
        swept = sweep(path)
        for workers in (1, 0):  # 0: one per core
            out = subprocess.run([sys.executable, __file__, "--one", str(path), str(workers)],
                                 capture_output=True, text=True, check=True).stdout
            found = json.loads(out.strip().splitlines()[-1])
            if workers in before:
                units_then, seconds_then, mb_then = before[workers]
                per_1k = 1000 / (units - units_then)
                added = f"{(found['seconds'] - seconds_then) * per_1k:>9.1f} {(found['peak_mb'] - mb_then) * per_1k:>10.1f}"
            else:
                added = f"{'-':>9} {'-':>10}"
            before[workers] = (units, found["seconds"], found["peak_mb"])
            print(f"{units:>6} {swept:>8.1f} {workers or 'all':>7} {found['seconds']:>9.1f} "
                  f"{found['pages'] / found['seconds']:>8.0f} {found['peak_mb']:>8.0f} "
                  f"{found['bytes'] / units / 1024:>8.1f} {found['files']:>7} "
                  f"{added}  "
                  f"{found['fullest'][0]} ({found['fullest'][1]} files)")
            swept = 0.0


if __name__ == "__main__":
    main()
