"""Seeds for pieces of work: each derived from the global seed and the work's own id, so
a result never depends on what else ran, in which order, or on which rank."""

from __future__ import annotations

import hashlib
from typing import Any


def derive_seed(seed: int, *parts: Any) -> int:
    """A seed for one piece of work, derived from the global seed and the work's id."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
