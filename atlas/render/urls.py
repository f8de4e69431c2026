"""Relative links, so the site works from file://, a local server and a sub-path.

Every link in every template goes through ``relative_url``: targets are written
as site-root paths (``models/resnet18/index.html``) and rendered relative to the
page being written. No page ever contains a root-absolute (``/...``) link.
"""

import posixpath


def relative_url(target: str, page: str) -> str:
    """``target`` (site-root path) as seen from ``page`` (site-root path of a file)."""
    if target.startswith(("http://", "https://", "//", "/")):
        raise ValueError(f"links must be site-relative paths, got {target!r}")
    path, hash_, fragment = target.partition("#")
    rel = posixpath.relpath(path or page, posixpath.dirname(page) or ".")
    return rel + hash_ + fragment
