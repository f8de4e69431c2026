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


UNITS_PER_FOLDER = 16
"""Units whose pages and images share a folder: a unit has two pages and about thirty
images (more with more objectives or examples), so its folder of images stays well
under a thousand files (GitHub Pages serves any number, but git hosts, file browsers
and people slow down past that), and a layer's folder holds a thousand of these
folders only past 16,000 units."""
IMAGES_PER_FOLDER = 500  # dataset thumbnails per folder of data/


def unit_folder(layer: str, unit: int) -> str:
    """The folder of ``unit``'s pages and images under a layer's folder ``layer``:
    ``<layer>/64-79`` for units 64 to 79."""
    return f"{layer}/{_block(unit, UNITS_PER_FOLDER)}"


def dataset_image(image: int) -> str:
    """The site path of a dataset image's thumbnail: ``data/500-999/img-512.webp``."""
    return f"data/{_block(image, IMAGES_PER_FOLDER)}/img-{image}.webp"


def _block(n: int, size: int) -> str:
    start = n // size * size
    return f"{start}-{start + size - 1}"
