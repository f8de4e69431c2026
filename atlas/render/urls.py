"""Relative links, so the site works from file://, a local server and a sub-path.

Every link in every template goes through ``relative_url``: targets are written
as site-root paths (``models/resnet18/index.html``) and rendered relative to the
page being written. No page ever contains a root-absolute (``/...``) link.
"""

import functools


@functools.lru_cache(maxsize=8192)
def _folder(page: str) -> tuple[str, ...]:
    return tuple(page.split("/")[:-1])


def relative_url(target: str, page: str) -> str:
    """``target`` (site-root path) as seen from ``page`` (site-root path of a file).

    Both are clean site paths (no ``.`` or ``..`` parts), so the link is the page's
    folders climbed back to where the two paths part, then the rest of the target
    (the render calls this for every link of every page: ``posixpath.relpath`` was a
    sixth of the render's time)."""
    if target.startswith(("http://", "https://", "//", "/")):
        raise ValueError(f"links must be site-relative paths, got {target!r}")
    path, hash_, fragment = target.partition("#")
    parts = (path or page).split("/")
    folder = _folder(page)
    common = 0
    while common < len(folder) and common < len(parts) - 1 and parts[common] == folder[common]:
        common += 1
    return "/".join([".."] * (len(folder) - common) + parts[common:]) + hash_ + fragment


UNITS_PER_FOLDER = 32
"""Units whose pages and images share a folder: a unit has two pages and up to about
thirty images, so a folder stays under a thousand files (GitHub Pages serves any
number, but repositories and browsers of the site slow down past that)."""


def unit_folder(layer: str, unit: int) -> str:
    """The folder of ``unit``'s pages and images under a layer's folder ``layer``:
    ``<layer>/64-95`` for units 64 to 95."""
    start = unit // UNITS_PER_FOLDER * UNITS_PER_FOLDER
    return f"{layer}/{start}-{start + UNITS_PER_FOLDER - 1}"
