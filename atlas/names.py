"""Names that become URLs.

Model names come from the user's config and may contain anything (spaces, slashes,
even HTML). Pages show the name as text; paths use its slug, which keeps only
characters that are safe in a file name and a URL on every platform.
"""

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """`My <b>net</b> v2` -> `My-b-net-b-v2`; dots survive, so layer names stay readable."""
    cleaned = _UNSAFE.sub("-", name).strip("-.")
    return cleaned or "unnamed"
