"""Files written whole or not at all, with the modes the umask gives.

``write_atomic`` writes into a temp file beside the target and renames it into place,
so a reader sees the old content or the new, never a part; ``write_json`` writes strict
JSON (a NaN or infinity is a bug: ``EmptyResult``). Temp files and folders from
``mkstemp``/``mkdtemp`` are private (0600, 0700); ``file_mode`` and ``folder_mode`` give
what ``open`` and ``mkdir`` would, so a web server running as another user can read a
site made from them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from atlas.errors import DISK_FULL, DiskFull, EmptyResult


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """What open() would give a new file now; mkstemp's files are private (0600)."""
    return 0o666 & ~_umask()


def folder_mode() -> int:
    """What mkdir() would give a new folder now; mkdtemp's folders are private (0700)."""
    return 0o777 & ~_umask()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in DISK_FULL:
            raise DiskFull(path.parent, len(payload), path.name) from None
        raise


def write_json(path: Path, data: Any) -> None:
    """Strict JSON: a NaN or infinity is refused (``EmptyResult``), as browsers would refuse it."""
    try:
        text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as error:
        raise EmptyResult(f"{path.name}: {error}; a value that is not finite must be stored as no answer "
                          "with the reason") from None
    write_atomic(path, text)
