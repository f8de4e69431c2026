"""Names that become URLs.

Model names come from the user's config and may contain anything (spaces, slashes,
even HTML). Pages show the name as text; paths use its slug, which keeps only
characters that are safe in a file name and a URL on every platform: letters and digits
of any script (a model named in Japanese keeps its name, percent-encoded by browsers),
dots, dashes and underscores.
"""

import re
import unicodedata

_UNSAFE = re.compile(r"[^\w.-]+")  # \w: letters, digits and underscores of every script


def slug(name: str) -> str:
    """`My <b>net</b> v2` -> `My-b-net-b-v2`; dots survive, so layer names stay readable."""
    cleaned = _UNSAFE.sub("-", unicodedata.normalize("NFC", name)).strip("-.")
    return cleaned or "unnamed"
