"""How big a site is, and whether GitHub Pages will publish it.

GitHub Pages refuses a published site over 1 GB and, through git, any file over
100 MB; a folder of many thousand files is slow to list for git hosts, file browsers
and people, so Atlas holds itself to ``FOLDER_FILES`` per folder. ``measure`` walks a
built site; ``SiteSize.report`` is what ``atlas build`` and ``atlas render`` print last.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


PAGES_SITE = 1 << 30  # bytes: GitHub Pages' limit on a published site
PAGES_FILE = 100 << 20  # bytes: the largest file git hosting (and so Pages) accepts
FOLDER_FILES = 1_000  # files: Atlas's own budget per folder
# What a site takes per unit, measured on the default atlas's (2026-12-07: 48.9 MB, 11,074
# files for 1,184 units; the whole EfficientNet-Lite0 of configs/efficientnet-lite0-whole.toml:
# 39.4 KB a unit).
PER_UNIT = 42.3 * 1024  # bytes


@dataclass(frozen=True)
class SiteSize:
    bytes: int
    files: int
    largest_file: tuple[str, int]  # (path in the site, bytes)
    largest_folder: tuple[str, int]  # (path, bytes of the files directly in it)
    fullest_folder: tuple[str, int]  # (path, files directly in it)
    units: int = 0  # units the site shows (for the size per unit)

    def problems(self) -> list[str]:
        """Why GitHub Pages would refuse the site (empty: it fits)."""
        found = []
        if self.bytes > PAGES_SITE:
            found.append(f"the site is {_size(self.bytes)}, over 1 GB")
        if self.largest_file[1] > PAGES_FILE:
            found.append(f"{self.largest_file[0]} is {_size(self.largest_file[1])}, over 100 MB")
        return found

    def crowded(self) -> bool:
        return self.fullest_folder[1] > FOLDER_FILES

    def report(self) -> str:
        per_unit = f" ({_size(self.bytes / self.units)} per unit, {self.units:,} units)" if self.units else ""
        problems = self.problems()
        verdict = "it fits GitHub Pages (1 GB a site, 100 MB a file)" if not problems else \
            "it does not fit GitHub Pages: " + "; ".join(problems)
        crowded = f"; {self.fullest_folder[0]}/ holds over Atlas's {FOLDER_FILES:,} files a folder" \
            if self.crowded() else ""
        return (f"site: {_size(self.bytes)} in {self.files:,} files{per_unit}; largest file "
                f"{self.largest_file[0]} ({_size(self.largest_file[1])}); largest folder "
                f"{self.largest_folder[0] or '.'}/ ({_size(self.largest_folder[1])}); fullest folder "
                f"{self.fullest_folder[0] or '.'}/ ({self.fullest_folder[1]:,} files); {verdict}{crowded}")


def estimate(layers: dict[str, int]) -> str:
    """What ``atlas plan`` says of the site before any work, from the units of each
    layer (``{"model/layer": units}``) at the default atlas's measured size per unit.
    (No folder grows with a layer: ``urls.unit_folder`` keeps its units in folders of
    ``UNITS_PER_FOLDER``.)"""
    units = sum(layers.values())
    if not units:
        return "site: no units to show"
    verdict = "it would fit GitHub Pages" if units * PER_UNIT <= PAGES_SITE else "it would not fit GitHub Pages (1 GB)"
    return (f"site: about {_size(units * PER_UNIT)} for {units:,} units (at {_size(PER_UNIT)} a unit, as the "
            f"default atlas measures); {verdict}")


def measure(site: Path, units: int = 0) -> SiteSize:
    """Every file of ``site`` counted once (links not followed)."""
    total = files = 0
    largest_file, largest_folder, fullest_folder = ("", 0), ("", 0), ("", 0)
    for folder, _, names in os.walk(site):
        relative = os.path.relpath(folder, site)
        relative = "" if relative == "." else relative.replace(os.sep, "/")
        here = count = 0
        for name in names:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            size = os.stat(path).st_size
            here, count = here + size, count + 1
            if size > largest_file[1]:
                largest_file = (f"{relative}/{name}" if relative else name, size)
        total, files = total + here, files + count
        if here > largest_folder[1]:
            largest_folder = (relative, here)
        if count > fullest_folder[1]:
            fullest_folder = (relative, count)
    return SiteSize(total, files, largest_file, largest_folder, fullest_folder, units)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
